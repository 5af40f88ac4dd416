// kafkasim's admin helper for the real-cluster harness (sim/real), run as a Java 17 single-file source:
//   java -cp 'libs/*' KafkasimAdmin.java create BOOTSTRAP TOPIC PARTITIONS RF TIMEOUT_MS [key=value ...]
//   java -cp 'libs/*' KafkasimAdmin.java poll   BOOTSTRAP INTERVAL_MS TOPIC [TOPIC ...]
//   java -cp 'libs/*' KafkasimAdmin.java dump   BOOTSTRAP TIMEOUT_MS TOPIC [TOPIC ...]
// Every output line is one JSON object with "timestamp" (wall clock, ms) and "name".
//  create: creates the topic with the configs, waits until every partition has a leader and its full ISR.
//  poll:   describes the topics every INTERVAL_MS with the Admin client (DescribeTopics, answered from a
//          broker's metadata cache) and prints a "partition_state" line whenever a partition's leader or
//          ISR changes (and once for each partition at start): leader -1 means no leader (offline).
//  dump:   reads every partition from the beginning to its end offset (read_uncommitted: up to the high
//          watermark) and prints one "record" line per record: partition, offset, leader epoch, value.
import java.time.Duration;
import java.util.*;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.common.*;
import org.apache.kafka.common.serialization.StringDeserializer;

public class KafkasimAdmin {
    static String q(String s) {
        if (s == null) return "null";
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            if (c == '"' || c == '\\') b.append('\\').append(c);
            else if (c < 0x20) b.append(String.format("\\u%04x", (int) c));
            else b.append(c);
        }
        return b.append('"').toString();
    }

    static void emit(String name, String body) {
        System.out.println("{\"timestamp\":" + System.currentTimeMillis() + ",\"name\":" + q(name)
                + (body.isEmpty() ? "" : "," + body) + "}");
        System.out.flush();
    }

    static Admin admin(String bootstrap) {
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "1000");
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "2000");
        p.put(AdminClientConfig.RETRY_BACKOFF_MS_CONFIG, "50");
        p.put(AdminClientConfig.RECONNECT_BACKOFF_MAX_MS_CONFIG, "200");
        p.put(AdminClientConfig.SOCKET_CONNECTION_SETUP_TIMEOUT_MS_CONFIG, "500");
        p.put(AdminClientConfig.SOCKET_CONNECTION_SETUP_TIMEOUT_MAX_MS_CONFIG, "1000");
        return Admin.create(p);
    }

    static String ints(List<Node> nodes) {
        StringJoiner j = new StringJoiner(",", "[", "]");
        for (Node n : nodes) j.add(Integer.toString(n.id()));
        return j.toString();
    }

    public static void main(String[] a) throws Exception {
        switch (a[0]) {
            case "create" -> create(a);
            case "poll" -> poll(a);
            case "dump" -> dump(a);
            default -> throw new IllegalArgumentException("unknown mode " + a[0]);
        }
    }

    static void create(String[] a) throws Exception {
        String topic = a[2];
        int partitions = Integer.parseInt(a[3]);
        short rf = Short.parseShort(a[4]);
        long deadline = System.currentTimeMillis() + Long.parseLong(a[5]);
        Map<String, String> configs = new HashMap<>();
        for (int i = 6; i < a.length; i++) {
            String[] kv = a[i].split("=", 2);
            configs.put(kv[0], kv[1]);
        }
        try (Admin admin = admin(a[1])) {
            while (true) {
                try {
                    admin.createTopics(List.of(new NewTopic(topic, partitions, rf).configs(configs))).all()
                            .get(5, TimeUnit.SECONDS);
                    break;
                } catch (java.util.concurrent.ExecutionException e) {
                    if (e.getCause() instanceof org.apache.kafka.common.errors.TopicExistsException) break;
                    if (System.currentTimeMillis() > deadline) throw e;
                    Thread.sleep(200);
                } catch (java.util.concurrent.TimeoutException e) {
                    if (System.currentTimeMillis() > deadline) throw e;
                }
            }
            while (true) {
                boolean ready = false;
                try {
                    TopicDescription d = admin.describeTopics(List.of(topic)).allTopicNames().get(5, TimeUnit.SECONDS)
                            .get(topic);
                    ready = d.partitions().size() == partitions;
                    for (TopicPartitionInfo p : d.partitions())
                        ready &= p.leader() != null && p.leader().id() >= 0 && p.isr().size() == rf;
                } catch (Exception e) {
                    ready = false;
                }
                if (ready) break;
                if (System.currentTimeMillis() > deadline) {
                    emit("error", "\"message\":" + q("topic " + topic + ": partitions without their full ISR"));
                    System.exit(1);
                }
                Thread.sleep(100);
            }
            emit("topic_ready", "\"topic\":" + q(topic));
        }
    }

    static void poll(String[] a) throws Exception {
        long interval = Long.parseLong(a[2]);
        List<String> topics = Arrays.asList(a).subList(3, a.length);
        Map<String, String> last = new HashMap<>();
        try (Admin admin = admin(a[1])) {
            emit("startup_complete", "");
            while (true) {
                long t0 = System.currentTimeMillis();
                try {
                    Map<String, TopicDescription> ds = admin.describeTopics(topics).allTopicNames()
                            .get(2, TimeUnit.SECONDS);
                    long now = System.currentTimeMillis();
                    for (TopicDescription d : ds.values()) {
                        for (TopicPartitionInfo p : d.partitions()) {
                            String key = d.name() + "-" + p.partition();
                            int leader = p.leader() == null ? -1 : p.leader().id();
                            String state = "\"leader\":" + leader + ",\"isr\":" + ints(p.isr())
                                    + ",\"replicas\":" + ints(p.replicas()) + ",\"elr\":" + ints(p.elr());
                            if (!state.equals(last.get(key))) {
                                last.put(key, state);
                                System.out.println("{\"timestamp\":" + now + ",\"name\":\"partition_state\","
                                        + "\"partition\":" + q(key) + "," + state + "}");
                            }
                        }
                    }
                    System.out.flush();
                } catch (Exception e) {
                    // a describe that timed out (its broker paused or gone): the next poll retries
                }
                long sleep = interval - (System.currentTimeMillis() - t0);
                if (sleep > 0) Thread.sleep(sleep);
            }
        }
    }

    static void dump(String[] a) throws Exception {
        long deadline = System.currentTimeMillis() + Long.parseLong(a[2]);
        List<String> topics = Arrays.asList(a).subList(3, a.length);
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, a[1]);
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_uncommitted");
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(p)) {
            List<TopicPartition> tps = new ArrayList<>();
            for (String t : topics)
                for (PartitionInfo pi : c.partitionsFor(t, Duration.ofSeconds(30)))
                    tps.add(new TopicPartition(t, pi.partition()));
            c.assign(tps);
            c.seekToBeginning(tps);
            Map<TopicPartition, Long> end = c.endOffsets(tps, Duration.ofSeconds(30));
            for (TopicPartition tp : tps)
                emit("end_offset", "\"partition\":" + q(tp.topic() + "-" + tp.partition()) + ",\"offset\":" + end.get(tp));
            while (true) {
                boolean done = true;
                for (TopicPartition tp : tps) done &= c.position(tp) >= end.get(tp);
                if (done) break;
                if (System.currentTimeMillis() > deadline) {
                    emit("error", "\"message\":\"timed out reading the logs\"");
                    System.exit(1);
                }
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(500))) {
                    if (r.offset() >= end.get(new TopicPartition(r.topic(), r.partition()))) continue;
                    System.out.println("{\"name\":\"record\",\"partition\":" + q(r.topic() + "-" + r.partition())
                            + ",\"offset\":" + r.offset() + ",\"leader_epoch\":" + r.leaderEpoch().orElse(-1)
                            + ",\"value\":" + q(r.value()) + "}");
                }
            }
            emit("dump_complete", "");
        }
    }
}
