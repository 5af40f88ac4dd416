"""An open-loop KafkaProducer: arrivals, partitioner, record accumulator, sender, retries.

Record arrivals are generated in vectorised chunks (constant or Poisson), assigned to partitions
(key hash, sticky or round-robin) and cut into batches by `batch.size` and `linger.ms` with numpy,
so a record never becomes a Python object or a SimPy event: the unit is the batch. The sender
drains at most one batch per partition into each produce request (RecordAccumulator.drain),
keeps at most max.in.flight.requests.per.connection requests per broker, retries retriable errors
with exponential backoff (KIP-580) until delivery.timeout.ms, refreshes metadata on
NOT_LEADER_OR_FOLLOWER or a lost connection, and, when idempotent, stamps each batch with a
producer id and sequence so the broker drops duplicates. Like Kafka's TransactionManager, an
idempotent producer keeps each partition's sequences in order (one retried batch in flight at a
time) and starts a new epoch with sequences from 0 when a gap shows (an out-of-order sequence
right after the last acknowledged one, a failed batch, or an expired batch that was retried).
Records reach the accumulator in linger.ms-sized pieces and join the partition's last batch while
it is not drained and has room (RecordAccumulator.append), so a blocked partition builds full batches.
Left out: buffer.memory back-pressure (arrivals never block), compression, transactions, and
draining a batch before its piece's linger.ms has passed (Kafka drains the open batch of a
partition whose earlier batch is ready).
"""

from __future__ import annotations

from collections import deque
from functools import partial
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import simpy

from sim.model import messages as m
from sim.model.metadata import TIME_EPS, MetadataClient
from sim.model.node import Node
from sim.model.timeouts import TimeoutQueue, exponential_backoff

if TYPE_CHECKING:
    from sim.model.network import Network
    from sim.model.recorder import Recorder
    from sim.scenario.clients import ProducerConfig

__all__ = ["Producer", "ProducerBatch", "close_batches", "ACKED", "FAILED", "UNKNOWN"]

ACKED, FAILED, UNKNOWN = 0, 1, 2
NO_SEQUENCE = -1  # RecordBatch.NO_SEQUENCE: an idempotent batch not drained yet
EPOCH_STRIDE = 1_000_000  # producer id of epoch e: base id + e * EPOCH_STRIDE
RECORD_OVERHEAD_BYTES = 8  # rough per-record framing in a v2 batch (varint lengths, deltas)
BATCH_OVERHEAD_BYTES = 61  # v2 RecordBatch header
# CommonClientConfigs defaults (KIP-601); the scenario has no field for them yet
SOCKET_CONNECTION_SETUP_TIMEOUT_MS = 10_000.0
SOCKET_CONNECTION_SETUP_TIMEOUT_MAX_MS = 30_000.0


class ClosedBatch(NamedTuple):
    """Records of one partition closed into a batch by linger.ms or batch.size, ahead of its close
    time (a tuple: the producer sorts them by close time, then partition slot)."""

    close_ms: float
    slot: int  # index into the producer's partitions
    count: int
    first_ms: float
    last_ms: float
    start: int  # the batch's records are arrival_times[start:start + count]
    arrival_times: object  # numpy array of the partition's arrival times


closed_batch = partial(tuple.__new__, ClosedBatch)  # one per batch: no Python frame (see purgatory_entry)


class ProducerBatch:
    """A closed producer batch: a count and a range of record ids, never the records."""

    __slots__ = ("batch_id", "partition", "record_count", "first_record_id", "first_arrival_ms",
                 "last_arrival_ms", "created_ms", "pid", "seq", "nbytes", "attempts", "retry_at",
                 "ambiguous", "done", "sent_epoch", "in_retry", "seq_reset")

    def __init__(self, batch_id, partition, record_count, first_record_id, first_ms, last_ms, created_ms,
                 pid, seq, nbytes):
        self.batch_id = batch_id
        self.partition = partition
        self.record_count = record_count
        self.first_record_id = first_record_id
        self.first_arrival_ms = first_ms
        self.last_arrival_ms = last_ms
        self.created_ms = created_ms
        self.pid = pid
        self.seq = seq
        self.nbytes = nbytes
        self.attempts = 0
        self.retry_at = 0.0
        self.sent_epoch = -1  # leader epoch the last attempt was sent under
        self.ambiguous = False
        self.done = False
        self.in_retry = False  # ProducerBatch.inRetry: reenqueued after a failed attempt
        self.seq_reset = False  # ProducerBatch.sequenceHasBeenReset: rewritten by an epoch bump


def close_batches(times: np.ndarray, cap: int, linger_ms: float, horizon: float) -> tuple[list, list, int]:
    """Cut one partition's sorted arrival times into batches.

    A batch closes when it holds `cap` records or `linger.ms` after its first record, whichever
    comes first. Returns (end indices, close times, start of the still-open tail): a batch whose
    linger deadline lies beyond `horizon` stays open for the next chunk.
    """
    ends, closes = [], []
    i, n = 0, len(times)
    while i < n:
        deadline = times[i] + linger_ms
        j_full = i + cap
        if j_full <= n and times[j_full - 1] <= deadline:
            ends.append(j_full)
            closes.append(float(times[j_full - 1]))
            i = j_full
            continue
        if deadline > horizon:
            break
        j = int(np.searchsorted(times, deadline, side="right", sorter=None))
        j = min(j, i + cap)
        ends.append(j)
        closes.append(float(deadline))
        i = j
    return ends, closes, i


class Producer(Node):
    """One KafkaProducer instance producing to one topic."""

    base_name = "producer"

    def __init__(self, env: simpy.Environment, index: int, name: str, config: "ProducerConfig",
                 partitions: list[int], brokers: list, network: "Network", recorder: "Recorder",
                 rng: np.random.Generator, end_ms: float, producer_id: int, batch_ids,
                 workload_rng: np.random.Generator, parent_scope: str = "cluster"):
        self.init_node(env, f"{parent_scope}.{name}")
        self.index = index
        self.name = name
        self.config = config
        self.partitions = partitions  # global partition indices of the topic, in order
        self.brokers = brokers
        self.network = network
        self.recorder = recorder
        self.rng = rng  # the client's own draws: bootstrap broker, backoff and timeout jitter
        # The application's draws (arrival times, partition picks, keys) come from a stream of their
        # own, so two runs with the same seed offer the same records whatever the client settings:
        # a paired comparison (acks=1 vs acks=all) then differs only where the configuration does.
        self.workload_rng = workload_rng
        self.end_ms = end_ms
        self.base_pid = producer_id
        self.epoch = 0
        self.pid = producer_id if config.enable_idempotence else -1
        self._batch_ids = batch_ids  # shared counter: batch ids are unique per run
        self.acks = config.acks
        self.queues: dict[int, deque] = {p: deque() for p in partitions}
        self.ready: set[int] = set()
        # No queued batch reaches delivery.timeout.ms before this time (a lower bound), so an
        # append to a saturated broker need not run the sender just to look for expired batches.
        self._expiry_bound = float("inf")
        self.metadata = MetadataClient(env, self, network, brokers, partitions, int(rng.integers(len(brokers))),
                                       config.retry_backoff_ms, config.request_timeout_ms, self.maybe_send)
        self.in_flight: dict[int, tuple] = {}  # request id -> (broker id, request)
        self.in_flight_per_broker = [0] * len(brokers)
        # NetworkClient connection state: after a reset, nothing is sent to that broker until a
        # reconnect attempt succeeds (reconnect.backoff.ms doubling to reconnect.backoff.max.ms).
        self.connected = [True] * len(brokers)
        self._reconnect_backoff = [config.reconnect_backoff_ms] * len(brokers)
        self._probes: dict[int, m.MetadataRequest] = {}
        self._setup_failures = [0] * len(brokers)  # failed connection attempts since the last success
        self.next_seq = dict.fromkeys(partitions, 0)
        # TransactionManager's per-partition bookkeeping (TopicPartitionEntry), idempotent only: the
        # producer id (epoch) the partition's sequences belong to, its last acknowledged sequence,
        # the batches drained and not completed in sequence order (inflightBatchesBySequence, which
        # includes batches waiting for a retry), and the partitions whose sequences are unresolved
        # because a batch that had been retried expired (partitionsWithUnresolvedSequences).
        self._part_pid = dict.fromkeys(partitions, self.pid)
        self._last_acked = dict.fromkeys(partitions, -1)
        self._inflight: dict[int, deque] = {p: deque() for p in partitions}
        self._unresolved: dict[int, int] = {}
        self._bump_required = False
        self._rewrite: set[int] = set()  # partitionsToRewriteSequences
        self.next_record_id = dict.fromkeys(partitions, 0)
        self.request_ids = 0
        self.timeouts = TimeoutQueue(env, config.request_timeout_ms, self._request_timed_out)
        self._wake_at: set[float] = set()
        self.record_bytes = config.record_size + RECORD_OVERHEAD_BYTES
        self.records_per_batch = max(1, (config.batch_size - BATCH_OVERHEAD_BYTES) // self.record_bytes)
        self.processes: list[simpy.Process] = []
        self._finished = False
        # cluster.hardware.client.per_record (sim/model/hardware.py): records/s the application
        # thread can hand to send(); None: unlimited
        self.send_capacity: float | None = None

    def _offered(self) -> tuple[float, str]:
        """The arrival rate (records/s) and process: the configured ones, unless the application
        thread cannot call send() that fast; then it calls it back to back at its capacity."""
        cap = self.send_capacity
        if cap is not None and cap < self.config.rate:
            return cap, "constant"
        return self.config.rate, self.config.arrival

    def start(self) -> None:
        self.processes = [self.env.process(self.send_batches()), self.env.process(self.expire_batches())]

    # --- arrivals and batching -------------------------------------------------------------
    def _arrivals(self, t0: float, t1: float, n_before: int) -> np.ndarray:
        """Arrival times in [t0, t1) (ms)."""
        rate, arrival = self._offered()
        rate_ms = rate / 1000.0
        start = self.config.start
        if arrival == "constant":
            n_end = int(np.floor((t1 - start) * rate_ms))
            return start + (np.arange(n_before, n_end) + 0.5) / rate_ms
        n = self.workload_rng.poisson(rate_ms * (t1 - t0))
        return np.sort(self.workload_rng.uniform(t0, t1, n))

    def _split_by_partition(self, times: np.ndarray) -> list:
        """The arrival times of each partition (slot 0..P-1 of the topic), each in arrival order."""
        P = len(self.partitions)
        cfg = self.config
        n = len(times)
        if cfg.partitioner == "sticky":
            # Sticky (KIP-480, uniform since KIP-794): stay on one partition for batch.size bytes,
            # then move to a random one. The records come in runs, so each partition's times are
            # its runs joined; the chunk's partition switches are drawn in one call.
            rpb = self.records_per_batch
            first = min(max(self._sticky_left, 0), n)  # the rest of the current partition's run
            switches = -(-(n - first) // rpb)
            runs: list[list] = [[] for _ in range(P)]
            if first:
                runs[self._sticky_partition].append(times[:first])
                self._sticky_left -= first
            if switches:
                picks = self.workload_rng.integers(P, size=switches).tolist()
                for i, k in zip(range(first, n, rpb), picks):
                    runs[k].append(times[i:i + rpb])
                self._sticky_partition = picks[-1]
                self._sticky_left = rpb - (n - first - (switches - 1) * rpb)
            return [r[0] if len(r) == 1 else np.concatenate(r) if r else times[:0] for r in runs]
        if cfg.partitioner == "hash":
            keys = self.workload_rng.integers(0, cfg.keys, n, dtype=np.uint64)
            # A fixed integer hash stands in for murmur2(key bytes): same key, same partition.
            h = (keys * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(33)
            parts = (h % np.uint64(P)).astype(np.int64)
        elif cfg.partitioner == "round-robin":
            parts = (self._rr + np.arange(n)) % P
            self._rr = (self._rr + n) % P
        else:  # pragma: no cover - the scenario validates the partitioner
            raise ValueError(f"unknown partitioner {cfg.partitioner!r}")
        order = np.argsort(parts, kind="stable")
        bounds = np.searchsorted(parts[order], np.arange(P + 1))
        return [times[order[bounds[k]:bounds[k + 1]]] for k in range(P)]

    def send_batches(self, t_from: float | None = None):
        """Generate arrivals chunk by chunk, close batches, and hand each to the sender on time.

        `t_from`: a restarted producer's first arrival time (records before it were never produced).
        """
        cfg = self.config
        rate_ms = self._offered()[0] / 1000.0
        chunk_ms = max(5.0 * max(cfg.linger_ms, 1.0), min(1000.0, 20000.0 / max(rate_ms, 1e-9)))
        self._rr, self._sticky_left, self._sticky_partition = 0, 0, 0
        P = len(self.partitions)
        open_times = [np.empty(0) for _ in range(P)]
        t0 = cfg.start
        n_generated = 0
        if t_from is not None and t_from > t0:
            t0 = t_from
            # constant arrivals are start + (i + 0.5) / rate: skip those before the restart
            n_generated = max(0, int(np.ceil((t_from - cfg.start) * rate_ms - 0.5)))
        try:
            if t0 > self.env.now:
                yield self.env.timeout(t0 - self.env.now)
            self.metadata.request()
            while True:
                t1 = min(t0 + chunk_ms, self.end_ms)
                final = t1 >= self.end_ms
                times = self._arrivals(t0, t1, n_generated)
                n_generated += len(times)
                per_partition = self._split_by_partition(times) if len(times) else None
                closed: list[ClosedBatch] = []
                for k in range(P):
                    if per_partition is not None:
                        mine = per_partition[k]
                        pt = np.concatenate((open_times[k], mine)) if len(open_times[k]) else mine
                    else:
                        pt = open_times[k]
                    if not len(pt):
                        continue
                    ends, closes, rest = close_batches(pt, self.records_per_batch, cfg.linger_ms,
                                                       float("inf") if final else t1)
                    start = 0
                    for e, c in zip(ends, closes):
                        closed.append(closed_batch((c, k, e - start, float(pt[start]), float(pt[e - 1]), start, pt)))
                        start = e
                    open_times[k] = pt[rest:]
                closed.sort()
                # Each batch closes at its own time: one timer event per batch, carrying the batch
                # as its value, with a callback (cheaper than resuming this process per batch).
                # The hottest timer of the model: not through Node.schedule, whose generic _fire
                # would add a call per batch; _close_batch checks the incarnation itself.
                now = self.env.now
                timeout, on_close, incarnation = self.env.timeout, self._close_batch, self.incarnation
                for batch in closed:
                    timeout(max(batch.close_ms - now, 0.0)).callbacks.append(partial(on_close, incarnation, batch))
                if final:
                    break
                t0 = t1
                if t0 > self.env.now:
                    yield self.env.timeout(t0 - self.env.now)
        except simpy.Interrupt:
            return

    def _close_batch(self, incarnation: int, batch: ClosedBatch, _ev=None) -> None:
        """A batch's linger is over: hand its records to the accumulator (as Node._fire would call it)."""
        if self.alive and self.incarnation == incarnation and not self._finished:
            if self._paused is not None:
                self._paused.append((self._close_batch, (incarnation, batch)))
                return
            _, k, count, first_ms, last_ms, start, times = batch
            self._enqueue_new(self.partitions[k], count, first_ms, last_ms, times, start)

    def _enqueue_new(self, p: int, count: int, first_ms: float, last_ms: float, times=None, start: int = 0) -> None:
        """Hand `count` records (arrival times `times[start:start + count]`) to the accumulator.

        RecordAccumulator.append: records go into the last batch of the partition's deque while it
        is open (not drained yet) and has room under batch.size (tryAppend), and start a new batch
        otherwise. Records are handed over in linger.ms-sized pieces, so a partition that cannot
        send (no leader, no connection, a full in-flight window, retries ahead) fills whole batches
        instead of queueing one per linger.ms; a batch is one object however many pieces it takes.
        """
        first_id = self.next_record_id[p]
        self.next_record_id[p] = first_id + count
        q = self.queues[p]
        if q:
            tail = q[-1]
            room = self.records_per_batch - tail.record_count
            if tail.attempts == 0 and room > 0 and (count <= room or times is not None):
                take = count if count <= room else room
                tail.record_count += take
                tail.nbytes += take * self.record_bytes
                if take == count:
                    tail.last_arrival_ms = last_ms
                    if self.env.now + TIME_EPS >= self._expiry_bound:
                        self.maybe_send()
                    return
                tail.last_arrival_ms = float(times[start + take - 1])
                count -= take
                first_id += take
                first_ms = float(times[start + take])
        if self.pid >= 0:
            seq = NO_SEQUENCE  # idempotent: the producer id and sequence are assigned when drained
        else:
            seq = self.next_seq[p]  # no idempotence: the sequence only orders retries in the queue
            self.next_seq[p] = seq + 1
        # delivery.timeout.ms counts from the first record's append to the batch (ProducerBatch.createdMs).
        # The batch id is given, and the batch recorded, when it is closed for good (_record_created).
        b = ProducerBatch(-1, p, count, first_id, first_ms, last_ms, first_ms, -1, seq,
                          BATCH_OVERHEAD_BYTES + count * self.record_bytes)
        q = self.queues[p]
        leader = self.metadata.leaders.get(p, (-1, -1))[0]
        cfg = self.config
        sendable = self._can_send_to(leader)
        if (sendable and not q and cfg.max_in_flight > 1 and not self._bump_required and p not in self._unresolved
                and (not self._inflight[p] or self._part_pid[p] == self.pid)):
            # Fast path: a broker with a free in-flight slot has nothing else ready to drain
            # (it would have been sent already), so the request holds just this batch (which an
            # idempotent producer may drain: see _stop_drain).
            self._send_request(leader, [b])
            return
        q.append(b)
        self.ready.add(p)
        expires = first_ms + cfg.delivery_timeout_ms
        if expires < self._expiry_bound:
            self._expiry_bound = expires
        if not sendable and self.env.now + TIME_EPS < self._expiry_bound:
            # Nothing can go out now: every sendable batch was sent when its broker last freed a
            # slot, this one's broker has none, and no queued batch is due to expire.
            return
        self.maybe_send()

    # --- the sender ------------------------------------------------------------------------
    def _can_send_to(self, broker: int) -> bool:
        """A known leader, connected, with a free in-flight slot (NetworkClient.isReady/canSendMore)."""
        return broker >= 0 and self.connected[broker] and self.in_flight_per_broker[broker] < self.config.max_in_flight

    def maybe_send(self) -> None:
        """Drain ready batches into produce requests, one batch per partition per request."""
        if self._bump_required or self._unresolved:
            self._resolve_sequences()  # Sender.runOnce, before draining
        ready = self.ready
        if not ready:
            return
        now = self.env.now + TIME_EPS
        cfg = self.config
        max_in_flight = cfg.max_in_flight
        in_flight = self.in_flight_per_broker
        leaders = self.metadata.leaders
        queues = self.queues
        oldest_alive = now - cfg.delivery_timeout_ms
        by_broker: dict[int, list] = {}
        emptied = []
        connected = self.connected
        for p in sorted(ready) if len(ready) > 1 else tuple(ready):
            q = queues[p]
            while q and q[0].created_ms <= oldest_alive:
                b = q.popleft()  # delivery.timeout.ms passed while waiting in the accumulator
                self._expire(b, UNKNOWN if b.ambiguous else FAILED)
            if not q:
                emptied.append(p)
                continue
            leader, epoch = leaders.get(p, (-1, -1))
            # _can_send_to, inlined: this loop runs on every response
            if leader < 0 or not connected[leader] or in_flight[leader] >= max_in_flight:
                continue
            head = q[0]
            if head.retry_at > now:
                if epoch <= head.sent_epoch:
                    continue
                # KIP-951: the leader moved since the last attempt, so retry without backoff.
                for b in q:
                    if b.retry_at > now and epoch > b.sent_epoch:
                        b.retry_at = now
            if max_in_flight == 1 and self._partition_in_flight(p):
                continue  # max.in.flight=1 guarantees order by muting the partition
            parts = by_broker.get(leader)
            if parts is None:
                by_broker[leader] = [p]
            else:
                parts.append(p)
        idempotent = self.pid >= 0
        for broker, parts in by_broker.items():
            while in_flight[broker] < max_in_flight and parts:
                batches = []
                rest = []
                for p in parts:
                    q = queues[p]
                    head = q[0]
                    if head.retry_at <= now and not (idempotent and self._stop_drain(p, head)):
                        batches.append(q.popleft())
                        if q:
                            rest.append(p)
                        else:
                            emptied.append(p)
                parts = rest
                if not batches:
                    break
                self._send_request(broker, batches)
        for p in emptied:
            if not queues[p]:
                ready.discard(p)
        # From the heads left now: a retried batch of an older producer epoch may sit behind newer ones.
        oldest = float("inf")
        for p in ready:
            q = queues[p]
            if q and q[0].created_ms < oldest:
                oldest = q[0].created_ms
        self._expiry_bound = oldest + cfg.delivery_timeout_ms

    def _partition_in_flight(self, p: int) -> bool:
        return any(b.partition == p for _, req in self.in_flight.values() for b in req.batches)

    def _stop_drain(self, p: int, head: ProducerBatch) -> bool:
        """RecordAccumulator.shouldStopDrainBatchesForPartition, for an idempotent producer (Kafka
        then stops draining the node for this request; the model skips just this partition)."""
        inflight = self._inflight[p]
        if head.seq == NO_SEQUENCE:
            # A new batch waits while the partition has batches of an older epoch in flight (a
            # new epoch's sequence 0 must not overtake them) or its sequences are unresolved.
            return bool(inflight) and self._part_pid[p] != self.pid or p in self._unresolved
        # A retried batch goes only when it is the first unacknowledged one of its partition
        # (firstInFlightSequence): during retries a partition has one batch in flight.
        return bool(inflight) and inflight[0] is not head

    def _send_request(self, broker: int, batches: list) -> None:
        now = self.env.now
        self.request_ids += 1
        leaders = self.metadata.leaders
        sent = self.recorder.batch_sent
        nbytes = 0
        for b in batches:
            if b.batch_id < 0:
                self._record_created(b)  # first drained: closed for appends (ProducerBatch.close)
            if b.seq == NO_SEQUENCE:
                # RecordAccumulator.drain: a batch gets the current producer id, epoch and next
                # sequence when first drained; a retry keeps them (changing them could duplicate it).
                p = b.partition
                if self._part_pid[p] != self.pid:
                    # TransactionManager.maybeUpdateProducerIdAndEpoch: the partition's last batches
                    # of an older epoch have completed (_stop_drain waited for them): start the
                    # new epoch's sequences at 0.
                    self._part_pid[p] = self.pid
                    self.next_seq[p] = 0
                    self._last_acked[p] = -1
                b.pid, b.seq = self.pid, self.next_seq[p]
                self.next_seq[p] = b.seq + 1
                self._inflight[p].append(b)  # TransactionManager.addInFlightBatch
            b.attempts += 1
            b.sent_epoch = leaders[b.partition][1]
            sent(now, b.batch_id, broker, b.attempts)
            nbytes += b.nbytes
        req = m.ProduceRequest(self, self.request_ids, self.acks, self.config.request_timeout_ms, batches, nbytes)
        self.network.send(self, self.brokers[broker], req, nbytes)
        if self.acks == 0:
            # acks=0: "considered sent" once on the socket; the client never learns the fate.
            for b in batches:
                self._complete(b, UNKNOWN, -1, broker)
            return
        self.in_flight[req.request_id] = (broker, req)
        self.in_flight_per_broker[broker] += 1
        self.timeouts.add(req)

    def broker_added(self) -> None:
        """A broker joined the cluster (add_broker): NetworkClient learns it from the next metadata; its
        connection state starts fresh."""
        self.in_flight_per_broker.append(0)
        self.connected.append(True)
        self._reconnect_backoff.append(self.config.reconnect_backoff_ms)
        self._setup_failures.append(0)

    def handle(self, msg) -> None:
        t = type(msg)
        if t is m.ProduceResponse:
            self.on_produce_response(msg)
        elif t is m.MetadataResponse:
            probe = self._probes.get(msg.broker)
            if probe is not None and probe.request_id == msg.request_id:
                self._connected(msg.broker)
            else:
                self.metadata.on_response(msg)

    def on_produce_response(self, resp: m.ProduceResponse) -> None:
        entry = self.in_flight.pop(resp.request_id, None)
        if entry is None:
            return  # already timed out
        broker, req = entry
        self.timeouts.done(req)
        self.in_flight_per_broker[broker] -= 1
        for batch, error, offset in resp.results:
            if batch.done:
                continue  # expired in flight (delivery.timeout.ms): the answer comes too late
            if error == m.NONE or error == m.DUPLICATE_SEQUENCE_NUMBER:
                self._complete(batch, ACKED, offset, broker)
            else:
                self._on_error(batch, error, broker)
        self.maybe_send()

    def _fail_request(self, request_id: int, error: str) -> None:
        entry = self.in_flight.pop(request_id, None)
        if entry is None:
            return
        broker, req = entry
        self.timeouts.done(req)
        self.in_flight_per_broker[broker] -= 1
        for batch in req.batches:
            if not batch.done:
                self._on_error(batch, error, broker)

    def _request_timed_out(self, req: m.ProduceRequest) -> None:
        """NetworkClient.handleTimedOutRequests: a request past request.timeout.ms closes the
        connection to its node (processTimeoutDisconnection), which fails every request in flight
        to that node ambiguously (cancelInFlightRequests: NETWORK_EXCEPTION, as a disconnect), puts
        the node in reconnect backoff and asks for a metadata update."""
        entry = self.in_flight.get(req.request_id)
        if entry is not None:
            # the socket is closed, and what was still queued on it (a cut link retransmitting) goes with it
            self.network.drop_connection(self, self.brokers[entry[0]])
            self._disconnected(entry[0])

    def connection_lost(self, peer) -> None:
        """A broker's connection was reset (or refused): NetworkClient.processDisconnection."""
        broker = getattr(peer, "broker_id", None)
        if broker is not None:
            self._disconnected(broker)

    def _disconnected(self, broker: int) -> None:
        """NetworkClient.processDisconnection: every request in flight to the broker fails (it may
        or may not have been appended), the connection enters reconnect backoff
        (ClusterConnectionStates.disconnected) and the client asks for fresh metadata."""
        for rid, (b, _req) in list(self.in_flight.items()):
            if b == broker:
                self._fail_request(rid, m.NETWORK_EXCEPTION)
        self.metadata.connection_lost(broker)
        cfg = self.config
        if self.connected[broker]:
            self.connected[broker] = False
            self._reconnect_backoff[broker] = cfg.reconnect_backoff_ms
            self._setup_failures[broker] = 0
        elif broker in self._probes:  # a reconnect attempt failed (refused, or timed out)
            del self._probes[broker]
            self._reconnect_backoff[broker] = min(self._reconnect_backoff[broker] * 2,
                                                  max(cfg.reconnect_backoff_max_ms, cfg.reconnect_backoff_ms))
            self._setup_failures[broker] += 1  # ClusterConnectionStates.updateConnectionSetupTimeout
        else:
            return
        delay = self._reconnect_backoff[broker] * float(self.rng.uniform(0.8, 1.2))
        self.schedule(delay, self._reconnect, broker)
        self.metadata.request()  # NetworkClient asks for a metadata update on a disconnect
        self.maybe_send()

    def _reconnect(self, broker: int) -> None:
        """Try to connect again (a metadata round trip stands in for the TCP handshake and ApiVersions).

        The attempt fails if the broker refuses it (a reset, see connection_lost) or if no answer
        comes within socket.connection.setup.timeout.ms (NetworkClient.handleTimedOutConnections):
        10 s doubling per failed attempt up to socket.connection.setup.timeout.max.ms (30 s), with
        +-20 % jitter (ClusterConnectionStates.connectionSetupTimeout).
        """
        if self.connected[broker] or broker in self._probes or not self.alive:
            return
        self.request_ids += 1
        probe = m.MetadataRequest(self, self.request_ids)
        self._probes[broker] = probe
        self.network.send(self, self.brokers[broker], probe)
        term = exponential_backoff(SOCKET_CONNECTION_SETUP_TIMEOUT_MS, SOCKET_CONNECTION_SETUP_TIMEOUT_MAX_MS,
                                   self._setup_failures[broker])
        sent_at = self.env.now
        # The jitter is drawn only if the probe is still unanswered at the earliest deadline, so
        # answered probes (nearly all) leave the random stream alone.
        self.schedule(0.8 * term, self._probe_overdue, broker, probe, sent_at, term, None)

    def _probe_overdue(self, broker: int, probe: m.MetadataRequest, sent_at: float, term: float,
                       deadline: float | None) -> None:
        if self._probes.get(broker) is not probe or not self.alive or self._finished:
            return  # answered, or refused, meanwhile
        if deadline is None:
            deadline = sent_at + min(term * float(self.rng.uniform(0.8, 1.2)), SOCKET_CONNECTION_SETUP_TIMEOUT_MAX_MS)
            if deadline > self.env.now:
                self.schedule(deadline - self.env.now, self._probe_overdue, broker, probe, sent_at, term, deadline)
                return
        self.network.drop_connection(self, self.brokers[broker])  # the probe still being retransmitted
        self._disconnected(broker)  # a failed connection attempt: back off and try again

    def _connected(self, broker: int) -> None:
        del self._probes[broker]
        self.connected[broker] = True
        self._reconnect_backoff[broker] = self.config.reconnect_backoff_ms
        self._setup_failures[broker] = 0  # ClusterConnectionStates.ready
        self.maybe_send()

    def _on_error(self, batch: ProducerBatch, error: str, broker: int) -> None:
        """Sender.completeBatch for an error: retry (reenqueue) or fail the batch."""
        now = self.env.now
        cfg = self.config
        self.recorder.record("produce_error", now, batch.batch_id, broker, error)
        if error in m.AMBIGUOUS:
            batch.ambiguous = True
        if error in (m.NOT_LEADER_OR_FOLLOWER, m.NETWORK_EXCEPTION, m.FENCED_LEADER_EPOCH, m.UNKNOWN_LEADER_EPOCH):
            self.metadata.request()
        # Sender.canRetry: delivery.timeout.ms not reached and retries left, then the error decides
        # (TransactionManager.canRetry when idempotent).
        if (now < batch.created_ms + cfg.delivery_timeout_ms and batch.attempts <= cfg.retries
                and (self._can_retry_idempotent(batch, error) if batch.pid >= 0 else error in m.RETRIABLE)):
            batch.retry_at = now + self._backoff(batch.attempts)
            batch.in_retry = True  # ProducerBatch.reenqueued
            self._reenqueue(batch)
            self._wake(batch.retry_at)
            return
        if batch.pid >= 0 and self.alive and not self._finished:
            # TransactionManager.handleFailedBatch (idempotent, not transactional): the failed batch
            # leaves a hole in the partition's sequence unless the broker has it, so start a new
            # epoch for the partition. Sender.failBatch adjusts sequences only if the batch still
            # had retries left (otherwise the broker may have taken it).
            if error == m.OUT_OF_ORDER_SEQUENCE_NUMBER or batch.attempts <= cfg.retries:
                self._request_bump(batch.partition)
        self._complete(batch, UNKNOWN if batch.ambiguous else FAILED, -1, broker)

    def _can_retry_idempotent(self, batch: ProducerBatch, error: str) -> bool:
        """TransactionManager.canRetry for an idempotent, non-transactional producer."""
        if error == m.OUT_OF_ORDER_SEQUENCE_NUMBER:
            p = batch.partition
            unresolved = self._unresolved.get(p)
            if unresolved is None and (batch.seq_reset or batch.seq != self._last_acked[p] + 1):
                # Not the batch right after the last acknowledged one: an earlier batch failed and
                # this one is bound to be out of order until that one is resolved. Retry as is.
                return True
            if unresolved is None or batch.seq == unresolved:
                # The next batch after the last acknowledged one is out of order: the log has a gap
                # (an unclean election lost acknowledged batches, or a batch expired). Bump the epoch
                # and restart this partition's sequences at 0 (bumpIdempotentEpochAndResetIdIfNeeded).
                self._request_bump(p)
            return True
        return error in m.RETRIABLE

    def _request_bump(self, p: int) -> None:
        """TransactionManager.requestEpochBumpForPartition: done by the sender before its next drain."""
        self._bump_required = True
        self._rewrite.add(p)

    def _resolve_sequences(self) -> None:
        """TransactionManager.maybeResolveSequences, then bumpIdempotentEpochAndResetIdIfNeeded."""
        if self._unresolved:
            for p in [p for p in self._unresolved if not self._inflight[p]]:
                # The partition drained: if the last acknowledged batch is the one before the next
                # sequence, the expired batch made it (later ones were acknowledged); otherwise bump.
                if self.next_seq[p] != self._last_acked[p] + 1:
                    self._request_bump(p)
                del self._unresolved[p]
        if self._bump_required and self.alive and not self._finished:
            self._bump_epoch()

    def _backoff(self, attempts: int) -> float:
        """KIP-580 (3.7+): retry.backoff.ms doubling to retry.backoff.max.ms, with +-20% jitter.

        Before 3.7 (the kafka.version row says so) every retry waits a constant retry.backoff.ms.
        """
        cfg = self.config
        if not cfg.version_defaults.exponential_retry_backoff:
            return cfg.retry_backoff_ms  # 3.6 RecordAccumulator: a fixed retryBackoffMs, no jitter
        base = exponential_backoff(cfg.retry_backoff_ms, max(cfg.retry_backoff_max_ms, cfg.retry_backoff_ms),
                                   max(attempts - 1, 0))
        return base * float(self.rng.uniform(0.8, 1.2))

    def _reenqueue(self, batch: ProducerBatch) -> None:
        """Put a retried batch back in sequence order (RecordAccumulator.reenqueue / insertInSequenceOrder)."""
        q = self.queues[batch.partition]
        i = 0
        while i < len(q) and 0 <= q[i].seq < batch.seq:  # before the batches never sent
            i += 1
        q.insert(i, batch)
        self.ready.add(batch.partition)
        self._expiry_bound = min(self._expiry_bound, batch.created_ms + self.config.delivery_timeout_ms)

    def _wake(self, at: float) -> None:
        if at in self._wake_at:
            return
        self._wake_at.add(at)

        self.schedule(max(at - self.env.now, 0.0), self._woken, at)

    def _woken(self, at: float) -> None:
        self._wake_at.discard(at)
        self.maybe_send()

    def _record_created(self, b: ProducerBatch) -> None:
        """Give the batch its id and record it, once no record can join it any more (drained, or
        completed without being sent): ids are dense and in the order batches are recorded."""
        b.batch_id = batch_id = next(self._batch_ids)
        self.recorder.batch_created(batch_id, self.index, b.partition, b.record_count, b.first_record_id,
                                    b.first_arrival_ms, b.last_arrival_ms)

    def _complete(self, batch: ProducerBatch, outcome: int, offset: int, broker: int) -> None:
        if batch.done:
            return
        batch.done = True
        if batch.batch_id < 0:
            self._record_created(batch)
        self.recorder.batch_done(self.env.now, batch.batch_id, outcome, offset, broker)
        if batch.pid >= 0:  # drained by an idempotent producer
            p = batch.partition
            inflight = self._inflight[p]
            if inflight and inflight[0] is batch:
                inflight.popleft()  # TransactionManager.removeInFlightBatch
            elif batch in inflight:
                inflight.remove(batch)
            if outcome == ACKED and batch.seq > self._last_acked[p]:
                self._last_acked[p] = batch.seq  # maybeUpdateLastAckedSequence

    def _expire(self, batch: ProducerBatch, outcome: int) -> None:
        """Sender.sendProducerData for an expired batch: fail it without adjusting sequences; a batch
        that was retried may or may not be in the log, so its partition's sequences are unresolved
        (TransactionManager.markSequenceUnresolved) and no new batch of it is drained until the
        batches in flight tell (maybeResolveSequences)."""
        self._complete(batch, outcome, -1, -1)
        self.recorder.record("batch_expired", self.env.now, batch.batch_id)  # the client is told: record-error-rate
        if batch.pid >= 0 and batch.in_retry:
            p = batch.partition
            nxt = batch.seq + 1
            if nxt > self._unresolved.get(p, -1):
                self._unresolved[p] = nxt

    def _bump_epoch(self) -> None:
        """KIP-360, TransactionManager.bumpIdempotentProducerEpoch: a new producer epoch; the
        partitions that asked for it (partitionsToRewriteSequences) restart their sequences at 0,
        rewriting the producer id and sequence of their unacknowledged batches in order
        (startSequencesAtBeginning; ProducerBatch.resetProducerState). Other partitions switch to
        the new epoch, from sequence 0, once their batches in flight have completed
        (maybeUpdateProducerIdAndEpoch, when their next batch is drained).

        A new epoch is modelled as a new producer id (the broker keeps idempotence state per id;
        the broker asks a new epoch of a producer it knows to start at sequence 0). A rewritten
        batch may still be on the wire in an earlier request: the model's request carries the batch
        itself, so the broker reads the rewritten identity where Kafka's bytes have the old one;
        both are out of order there (the old leader's state is behind), so the outcome is the same.
        """
        self.epoch += 1
        self.pid = pid = self.base_pid + self.epoch * EPOCH_STRIDE
        for p in self._rewrite:
            seq = 0
            for b in self._inflight[p]:
                b.pid, b.seq, b.seq_reset = pid, seq, True
                seq += 1
            self._part_pid[p] = pid
            self.next_seq[p] = seq
            self._last_acked[p] = -1
            self._unresolved.pop(p, None)
        self._rewrite.clear()
        self._bump_required = False

    def _expire_in_flight(self) -> None:
        """Sender.getExpiredInflightBatches: in-flight batches past delivery.timeout.ms fail now."""
        limit = self.env.now - self.config.delivery_timeout_ms
        for _, req in list(self.in_flight.values()):
            for b in req.batches:
                if not b.done and b.created_ms <= limit:
                    self._expire(b, UNKNOWN)  # it was sent: its fate is unknown

    def expire_batches(self):
        """Fail batches that waited in the accumulator past delivery.timeout.ms."""
        try:
            while True:
                yield self.env.timeout(1000.0)
                self._expire_in_flight()
                self.maybe_send()
        except simpy.Interrupt:
            return

    # --- crash and restart (fault kind producer_crash) ---------------------------------------
    def crash(self) -> None:
        """Process crash: every queued and in-flight batch ends unknown (the application never
        hears back); the accumulator, connections, metadata and producer id are memory and go.

        Records still lingering in an open batch when it crashes (at most linger.ms of them) were
        never closed into a batch here, so they vanish instead of ending unknown. Records arriving
        while the producer is down are not produced and not counted: the open-loop source keeps
        no backlog for a dead process.
        """
        if not self.alive:
            return
        self._pending_unknown()
        self.mark_crashed()
        for proc in self.processes:
            if proc.is_alive:
                proc.interrupt("crash")
        self.processes = []
        self.timeouts.clear()
        self.metadata.reset()
        self.recorder.event(self.env.now, "producer_crash", -1, -1, self.pid, self.name, client=self.name)
        self.network.reset_connections(self)

    def restart(self) -> None:
        """A new incarnation: a new producer id (InitProducerId) with sequences from 0, an empty
        accumulator, fresh connections; arrivals resume from now."""
        if self.alive or self._finished:
            return
        self.mark_up()
        cfg = self.config
        # A fresh id from InitProducerId, distinct from every epoch of earlier incarnations (an
        # epoch bump is base id + epoch * EPOCH_STRIDE, see _bump_epoch).
        self.base_pid += 1000 * EPOCH_STRIDE
        self.epoch = 0
        self.pid = self.base_pid if cfg.enable_idempotence else -1
        n = len(self.brokers)
        self.in_flight, self.in_flight_per_broker = {}, [0] * n
        self.connected, self._reconnect_backoff = [True] * n, [cfg.reconnect_backoff_ms] * n
        self._probes, self._setup_failures = {}, [0] * n
        self.ready, self._wake_at, self._expiry_bound = set(), set(), float("inf")
        parts = self.partitions
        self.queues = {p: deque() for p in parts}
        self.next_seq = dict.fromkeys(parts, 0)
        self._part_pid = dict.fromkeys(parts, self.pid)
        self._last_acked = dict.fromkeys(parts, -1)
        self._inflight = {p: deque() for p in parts}
        self._unresolved, self._bump_required, self._rewrite = {}, False, set()
        self.recorder.event(self.env.now, "producer_restart", -1, -1, self.pid, self.name, client=self.name)
        self.processes = [self.env.process(self.expire_batches())]
        if self.env.now < self.end_ms:
            self.processes.append(self.env.process(self.send_batches(self.env.now)))
        else:
            self.metadata.request()

    def _pending_unknown(self) -> None:
        """Every batch queued or in flight ends unknown (no answer will come)."""
        for q in self.queues.values():
            for b in q:
                self._complete(b, UNKNOWN, -1, -1)
            q.clear()
        for _, req in self.in_flight.values():
            for b in req.batches:
                self._complete(b, UNKNOWN, -1, -1)
        self.in_flight.clear()

    def finish(self) -> None:
        """End of the run: whatever is still pending has no answer (indeterminate)."""
        self._finished = True
        self._pending_unknown()
        for proc in self.processes:
            if proc.is_alive:
                proc.interrupt("end")
