"""A real Apache Kafka cluster from a scenario: one KRaft controller and N brokers as separate JVMs.

Each broker listens on its own loopback address, 127.0.0.(10+id), the controller on 127.0.0.9
(so firewall rules can single out one process's links), each on a free port; data directories,
``server.properties`` files and logs are under the run's directory. Storage is formatted with
Kafka's ``kafka.tools.StorageTool`` (static quorum ``controller.quorum.voters``). The scenario's
broker settings (the Kafka keys of ``sim.scenario.kafka_config.MODELLED['broker']``) go into every
node's ``server.properties``: ``broker.session.timeout.ms`` and the election settings are read by
the controller, the replication ones by the brokers.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Callable

from sim.real.kafka import admin_source, classpath, java
from sim.real.netfaults import CLIENTS, CONTROLLER_NODE, node_gid
from sim.real.processes import Proc, Processes, wait_for
from sim.scenario.kafka_config import MODELLED
from sim.scenario.schema import Scenario

__all__ = ["RealCluster", "ClusterError", "broker_host", "CONTROLLER_HOST", "JVM_FLAGS"]

CONTROLLER_HOST = "127.0.0.9"
CONTROLLER_ID = 1000
JVM_FLAGS = ["-Xmx384m", "-Xms128m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"]
CLIENT_JVM_FLAGS = ["-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"]
LOG4J = """status = error
appender.file.type = Console
appender.file.name = STDERR
appender.file.target = SYSTEM_ERR
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = STDERR
logger.kafka.name = org.apache.kafka.clients
logger.kafka.level = WARN
# every partition change the controller commits (PartitionRegistration.maybeLogPartitionChange logs
# clean ones at DEBUG): the elections and ISR changes with the controller's own times (sim.real.parse)
logger.rcm.name = org.apache.kafka.controller.ReplicationControlManager
logger.rcm.level = DEBUG
"""
# configs the scenario does not set and Kafka's defaults would make slow or impossible on 1-3 brokers
BASE_CONFIG = {
    "group.initial.rebalance.delay.ms": 0,
    "auto.create.topics.enable": "false",
    "num.partitions": 1,
    "log.segment.bytes": 64 * 1024 * 1024,
    "log.cleaner.enable": "false",
    "num.recovery.threads.per.data.dir": 1,
}
SKIPPED_BROKER_KEYS = ("zookeeper.session.timeout.ms",)  # ZooKeeper mode: refused before a real run


class ClusterError(RuntimeError):
    """The real cluster did not start (one line; the node's log says more)."""


def broker_host(broker: int) -> str:
    return f"127.0.0.{10 + broker}"


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def broker_settings(sc: Scenario) -> dict[str, str]:
    """The scenario's broker-level Kafka configs, as server.properties values."""
    data = sc.cluster.model_dump(by_alias=True)
    return {k: _value(data[k]) for k in MODELLED["broker"] if k in data and k not in SKIPPED_BROKER_KEYS
            and data[k] is not None}


def topic_settings(sc: Scenario, topic) -> dict[str, str]:
    """A topic's configs for CreateTopics (resolved: the broker defaults filled in)."""
    return {"min.insync.replicas": _value(topic.min_insync_replicas),
            "unclean.leader.election.enable": _value(topic.unclean_leader_election_enable)}


class RealCluster:
    """The controller and brokers of one real run, under `root`; processes registered in `procs`."""

    def __init__(self, sc: Scenario, root: Path, procs: Processes, log: Callable[[str], None] = lambda s: None):
        self.sc, self.root, self.procs, self.log = sc, root, procs, log
        self.n = sc.cluster.brokers
        self.cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        self.controller_port = free_port(CONTROLLER_HOST)
        self.ports = {b: free_port(broker_host(b)) for b in range(self.n)}
        self.brokers: dict[int, Proc | None] = {b: None for b in range(self.n)}
        self.controller: Proc | None = None
        self.java = java()
        (root / "log4j2.properties").write_text(LOG4J)

    # --- addresses ------------------------------------------------------------------------------
    @property
    def bootstrap(self) -> str:
        return ",".join(f"{broker_host(b)}:{p}" for b, p in self.ports.items())

    def _props(self, node: str) -> Path:
        return self.root / node / "server.properties"

    def _write_config(self, node: str, props: dict) -> Path:
        path = self._props(node)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"{k}={_value(v)}\n" for k, v in props.items()))
        return path

    def configure(self) -> None:
        """server.properties of the controller and of every broker."""
        voters = f"{CONTROLLER_ID}@{CONTROLLER_HOST}:{self.controller_port}"
        common = {**BASE_CONFIG, **broker_settings(self.sc), "controller.quorum.voters": voters,
                  "controller.listener.names": "CONTROLLER",
                  "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"}
        rf = min(3, self.n)
        self._write_config("controller", {**common, "process.roles": "controller", "node.id": CONTROLLER_ID,
                                          "listeners": f"CONTROLLER://{CONTROLLER_HOST}:{self.controller_port}",
                                          "log.dirs": self.root / "controller" / "data"})
        for b in range(self.n):
            addr = f"{broker_host(b)}:{self.ports[b]}"
            self._write_config(f"broker-{b}", {
                **common, "process.roles": "broker", "node.id": b, "listeners": f"PLAINTEXT://{addr}",
                "advertised.listeners": f"PLAINTEXT://{addr}", "inter.broker.listener.name": "PLAINTEXT",
                "log.dirs": self.root / f"broker-{b}" / "data",
                "offsets.topic.replication.factor": rf, "transaction.state.log.replication.factor": rf,
                "transaction.state.log.min.isr": min(2, rf), "offsets.topic.num.partitions": 3})

    def _java(self, *args: str, flags=CLIENT_JVM_FLAGS) -> list[str]:
        return [self.java, *flags, f"-Dlog4j2.configurationFile={self.root / 'log4j2.properties'}", "-cp", classpath(),
                *args]

    def format(self) -> None:
        """Format every node's storage with Kafka's StorageTool (in parallel: one JVM each)."""
        nodes = ["controller"] + [f"broker-{b}" for b in range(self.n)]
        started = [self.procs.start(f"format-{n}", self._java("kafka.tools.StorageTool", "format", "-t",
                                                               self.cluster_id, "-c", str(self._props(n))),
                                    self.root / n / "format.log") for n in nodes]
        for n, p in zip(nodes, started):
            if not p.wait(120) or p.popen.returncode != 0:
                raise ClusterError(f"kafka-storage format failed for {n} (see {p.log})")

    # --- processes ------------------------------------------------------------------------------
    def _start_node(self, node: str) -> Proc:
        gid = node_gid(CONTROLLER_NODE if node == "controller" else int(node.removeprefix("broker-")))
        return self.procs.start(node, self._java("kafka.Kafka", str(self._props(node)), flags=JVM_FLAGS),
                                self.root / node / "server.log", gid=gid)

    def start(self) -> None:
        self.configure()
        self.format()
        self.controller = self._start_node("controller")
        for b in range(self.n):
            self.brokers[b] = self._start_node(f"broker-{b}")
        for b in range(self.n):
            self.wait_listening(b, 120)

    def wait_listening(self, b: int, timeout: float) -> None:
        def up() -> bool:
            p = self.brokers[b]
            if p is None or not p.running():
                raise ClusterError(f"broker {b} exited while starting (see {self.root / f'broker-{b}' / 'server.log'})")
            try:
                with socket.create_connection((broker_host(b), self.ports[b]), timeout=0.5):
                    return True
            except OSError:
                return False
        if not wait_for(up, timeout, 0.2):
            raise ClusterError(f"broker {b} did not listen within {timeout:.0f} s")

    def address(self, node) -> str | None:
        """A node's listener address (None for the clients, which only connect)."""
        if node == CONTROLLER_NODE:
            return CONTROLLER_HOST
        if node == CLIENTS:
            return None
        return broker_host(int(node))

    def restart_broker(self, b: int) -> None:
        old = self.brokers[b]
        if old is not None:
            old.kill()
        self.brokers[b] = self._start_node(f"broker-{b}")

    def create_topics(self, timeout_s: float = 120) -> None:
        """Create every topic and wait until each partition has a leader and its full ISR."""
        for t in self.sc.topics:
            settings = [f"{k}={v}" for k, v in topic_settings(self.sc, t).items()]
            p = self.procs.start(f"create-{t.name}", self._java(str(admin_source()), "create", self.bootstrap, t.name,
                                                              str(t.partitions), str(t.replication_factor),
                                                              str(int(timeout_s * 1000)), *settings),
                                 self.root / "clients" / f"create-{t.name}.log")
            if not p.wait(timeout_s + 60) or p.popen.returncode != 0:
                raise ClusterError(f"topic {t.name} was not created with its full ISR (see {p.log})")

    def admin(self, name: str, *args: str, log: Path) -> Proc:
        """Start KafkasimAdmin.java in a mode, its stdout piped (the caller reads the JSON lines).

        It runs with the harness's own group, so no network partition ever cuts the measurement."""
        return self.procs.start(name, self._java(str(admin_source()), *args), log, stdout_pipe=True)

    def client(self, name: str, cls: str, *args: str, out: Path) -> Proc:
        """Start a Kafka tool class (VerifiableProducer, ...): its stdout (JSON lines) into `out`; a
        partition `between: [clients]` cuts these."""
        return self.procs.start(name, self._java(cls, *args), out, gid=node_gid(CLIENTS))


class Poller:
    """KafkasimAdmin poll: reads its JSON lines as they come (a thread), keeps the latest state of
    every partition, and keeps every line for the events table."""

    def __init__(self, cluster: RealCluster, interval_ms: int = 100):
        self.lines: list[dict] = []
        self.state: dict[str, dict] = {}
        self._lock = threading.Lock()
        topics = [t.name for t in cluster.sc.topics]
        self.proc = cluster.admin("poller", "poll", cluster.bootstrap, str(interval_ms), *topics,
                                  log=cluster.root / "clients" / "poller.log")
        self._raw = open(cluster.root / "clients" / "poller.jsonl", "w")
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        for raw in self.proc.popen.stdout:
            line = raw.decode("utf-8", "replace").strip()
            if not line.startswith("{"):
                continue
            self._raw.write(line + "\n")
            self._raw.flush()
            try:
                d = json.loads(line)
            except ValueError:
                continue
            with self._lock:
                self.lines.append(d)
                if d.get("name") == "partition_state":
                    self.state[d["partition"]] = d

    def current(self, partition: str) -> dict | None:
        with self._lock:
            return self.state.get(partition)

    def wait_all(self, partitions: list[str], timeout: float) -> bool:
        return wait_for(lambda: all(self.current(p) is not None for p in partitions), timeout)

    def stop(self) -> list[dict]:
        self.proc.kill()
        self._thread.join(5)
        self._raw.close()
        with self._lock:
            return list(self.lines)


def read_json_lines(path: Path) -> list[dict]:
    """The JSON objects of a client's stdout file (other lines, e.g. a stack trace, are skipped)."""
    out = []
    if not path.exists():
        return out
    for line in path.read_text(errors="replace").splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out


def now_ms() -> float:
    return time.time() * 1000.0
