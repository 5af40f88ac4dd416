"""Kafka's Partition (kafka.cluster.Partition): one partition replica on a broker.

It owns what Partition.scala owns: the leader's view of its followers (kafka.cluster.Replica), the
high watermark (maybeIncrementLeaderHW), ISR shrink and expansion proposed through AlterPartition
with a pending ISR (KIP-497), the leader append (appendRecordsToLeader) and the produce purgatory
(DelayedProduce, checkEnoughReplicasReachOffset). The broker owning it (ReplicaManager's role)
dispatches requests, sends AlterPartition to the controller and completes parked fetches; the
partition reaches it only through `PartitionHost`, a handful of public methods named below where
they are called. The fetch purgatory is not here: fetch sessions span partitions
(sim.model.fetch_session).
"""

from __future__ import annotations

from collections import deque
from functools import partial
from typing import TYPE_CHECKING, Callable, NamedTuple, Protocol

from sim.model import messages as m
from sim.model.log import Log

if TYPE_CHECKING:
    import simpy

    from sim.model.disk import Disk
    from sim.model.producer import ProducerBatch
    from sim.model.recorder import Recorder
    from sim.model.timeouts import TimeoutQueue
    from sim.scenario.cluster import ClusterConfig

__all__ = ["Partition", "PartitionHost", "PartitionSpec", "RemoteReplica", "DelayedProduce", "PurgatoryEntry",
           "purgatory_entry"]


class PartitionHost(Protocol):
    """What a Partition needs of the broker hosting it (ReplicaManager's role, with its fetch serving)."""

    env: simpy.Environment
    config: ClusterConfig
    recorder: Recorder
    broker_id: int
    strict_min_isr: bool  # KIP-966 part 1: no HW advance under min.insync.replicas
    disk: Disk  # the log's writes go through it
    alter_timeouts: TimeoutQueue  # AlterPartition requests in flight

    def wall_ms(self) -> float: ...

    def isr_eligible(self, broker_id: int, broker_epoch: int | None = -1) -> bool: ...

    def track_isr(self, r: Partition) -> None: ...

    def send_alter_partition(self, r: Partition) -> None: ...

    def mark_dirty(self, r: Partition, wake: bool) -> None: ...

    def wake_consumers(self, r: Partition) -> None: ...

    def fetch_parked(self, follower: int, p: int) -> bool: ...


class PartitionSpec:
    """Static facts of one partition: replica assignment and topic-level configs."""

    __slots__ = ("index", "name", "replicas", "min_isr", "unclean", "flush_messages", "flush_ms")

    def __init__(self, index: int, name: str, replicas: tuple, min_isr: int, unclean: bool,
                 flush_messages: int | None = None, flush_ms: float | None = None):
        self.index, self.name, self.replicas, self.min_isr, self.unclean = index, name, replicas, min_isr, unclean
        self.flush_messages, self.flush_ms = flush_messages, flush_ms  # topic flush.messages / flush.ms (None: never)


class RemoteReplica:
    """The leader's view of one follower (kafka.cluster.Replica state)."""

    __slots__ = ("leo", "last_caught_up_ms", "last_fetch_ms", "last_fetch_leader_leo", "broker_epoch")

    def __init__(self, caught_up_ms: float):
        self.leo = -1  # unknown until the follower fetches
        self.broker_epoch: int | None = None  # KIP-903: the epoch of its last fetch (None: none yet)
        self.last_caught_up_ms = caught_up_ms
        # Kafka starts lastFetchTimeMs at 0, the Unix epoch: long ago on its wall clock. Time 0 of a run
        # is not long ago, so "never" is -inf here (Replica.resetReplicaState, ReplicaState.Empty).
        self.last_fetch_ms = float("-inf")
        self.last_fetch_leader_leo = 0


def _new_replica() -> RemoteReplica:
    """A replica the assignment just added: never caught up and never fetched (Kafka's Replica starts with
    lastCaughtUpTimeMs and lastFetchTimeMs at 0, the Unix epoch: long ago), so it does not hold the HW
    back before it has caught up (Replica.isCaughtUp)."""
    rr = RemoteReplica(float("-inf"))
    rr.last_fetch_ms = float("-inf")
    return rr


class DelayedProduce:
    """A produce request waiting in purgatory for some of its batches (DelayedProduce).

    `respond(request, results)` sends the answer once every batch is resolved.
    """

    __slots__ = ("request", "results", "remaining", "done", "timer", "respond")

    def __init__(self, request: m.ProduceRequest, results: list, remaining: int,
                 respond: Callable[[m.ProduceRequest, list], None]):
        self.request, self.results, self.remaining, self.done = request, results, remaining, False
        self.timer = None  # the TimeoutQueue expiring it
        self.respond = respond

    def resolve(self, k: int, error: str, offset: int) -> None:
        """Answer batch `k` of the request; the last one answered sends the response."""
        if self.done or self.results[k] is not None:
            return
        self.results[k] = (self.request.batches[k], error, offset)
        self.remaining -= 1
        if self.remaining == 0:
            self.done = True
            if self.timer is not None:
                self.timer.done(self)
            self.respond(self.request, self.results)

    def expire(self) -> None:
        """DelayedProduce expiry: the request timeout passed before enough replicas had the data."""
        if self.done:
            return
        for k, res in enumerate(self.results):
            if res is None:
                self.resolve(k, m.REQUEST_TIMED_OUT, -1)


class PurgatoryEntry(NamedTuple):
    """Batch `index` of a DelayedProduce, complete once the HW (or N LEOs) reach `required_offset`."""

    required_offset: int
    delayed: DelayedProduce
    index: int


# PurgatoryEntry((required_offset, delayed, index)): one per batch, so built by tuple.__new__ (C)
# rather than the NamedTuple's own __new__ (a Python frame per call)
purgatory_entry = partial(tuple.__new__, PurgatoryEntry)


class Partition:
    """One partition on a broker: its log (on disk) and, when leading, the leader state (Partition.scala)."""

    __slots__ = ("broker", "disk", "spec", "log", "is_leader", "leader_id", "leader_epoch", "partition_epoch", "isr",
                 "remote", "pending_isr", "alter_in_flight", "leader_epoch_start", "purgatory", "legacy_waiters",
                 "parked_consumers", "hw_stalled", "min_isr", "replica_lag_time_max_ms", "replicas")

    def __init__(self, broker: PartitionHost, spec: PartitionSpec, log: Log, min_isr: int):
        self.broker = broker
        self.disk = broker.disk
        self.spec = spec
        self.log = log
        self.min_isr = min_isr  # effective min.insync.replicas
        self.replica_lag_time_max_ms = broker.config.replica_lag_time_max_ms
        self.is_leader = False
        self.leader_id = -1
        self.leader_epoch = -1
        self.partition_epoch = -1
        self.isr: tuple = ()
        self.remote: dict[int, RemoteReplica] = {}
        self.pending_isr: tuple | None = None  # AlterPartition in flight
        self.alter_in_flight: m.AlterPartition | None = None
        self.leader_epoch_start = 0
        self.purgatory: deque[PurgatoryEntry] = deque()  # acks=all, ascending required offset
        self.legacy_waiters: list[PurgatoryEntry] = []  # acks=N >= 2 (Kafka 0.8)
        self.parked_consumers: list = []
        self.hw_stalled = False
        self.replicas: tuple = spec.replicas  # the current assignment (a reassignment changes it: PartitionRecord)

    def maximal_isr(self) -> tuple:
        """KIP-497: a pending expansion already counts; a pending shrink does not yet."""
        if self.pending_isr is not None and len(self.pending_isr) > len(self.isr):
            return self.pending_isr
        return self.isr

    # --- leadership --------------------------------------------------------------------------
    def make_leader(self, rec: m.PartitionRecord, now: float) -> None:
        """Partition.makeLeader: the leader state of a new epoch."""
        self.is_leader = True
        self.leader_id = self.broker.broker_id
        self.leader_epoch = rec.leader_epoch
        self.partition_epoch = rec.partition_epoch
        self.isr = rec.isr
        self.replicas = rec.replicas
        self.pending_isr = None
        self.alter_in_flight = None
        self.hw_stalled = False
        self.log.assign_epoch_start_offset(rec.leader_epoch, self.log.leo)
        self.leader_epoch_start = self.log.leo
        # resetReplicaState: ISR members count as caught up now; LEOs unknown until they fetch.
        # (a replica outside the ISR has never been caught up: -inf, as Kafka's 0 is the Unix epoch)
        me = self.broker.broker_id
        self.remote = {follower: RemoteReplica(now if follower in rec.isr else float("-inf"))
                       for follower in rec.replicas if follower != me}

    def make_follower(self, rec: m.PartitionRecord, leader: int) -> None:
        """Partition.makeFollower: follow `leader` (-1: none) in the record's epoch."""
        self.is_leader = False
        self.leader_id = leader
        self.leader_epoch = rec.leader_epoch
        self.partition_epoch = rec.partition_epoch
        self.isr = rec.isr
        self.replicas = rec.replicas
        self.remote = {}
        self.pending_isr = None
        self.alter_in_flight = None

    # --- leader append and the produce purgatory -----------------------------------------------
    def append_records_to_leader(self, batch: "ProducerBatch", acks: int) -> tuple[str, int, bool]:
        """Partition.appendRecordsToLeader for one batch: (error, base offset, appended now).

        A retry of a batch already in the log (idempotence) is answered with its first offset and
        not appended again.
        """
        # reject before appending when the ISR is too small
        if acks == -1 and len(self.isr) < self.min_isr:
            return m.NOT_ENOUGH_REPLICAS, -1, False
        log = self.log
        pid = batch.pid
        if pid >= 0:
            entry = log.producer_state.entries.get(pid)
            # the usual case, the producer's next sequence, needs no checkSequence
            if entry is None or batch.seq != entry.last_seq + 1:
                duplicate, error = log.producer_state.check_sequence(pid, batch.seq)
                if error is not None:
                    return error, -1, False
                if duplicate is not None:
                    return m.NONE, duplicate, False
        base = self.disk.append(log, batch.record_count, self.leader_epoch, batch.batch_id, batch.pid, batch.seq,
                                batch.nbytes)
        return m.NONE, base, True

    def watch_produce(self, entry: PurgatoryEntry, acks: int) -> None:
        """DelayedOperationPurgatory.watch: acks=all waits for the HW, acks=N (0.8) for N LEOs."""
        if acks != -1:
            self.legacy_waiters.append(entry)
            return
        # Keep the purgatory in ascending required-offset order (a duplicate may need less than the tail).
        purgatory = self.purgatory
        if not purgatory or purgatory[-1][0] <= entry[0]:
            purgatory.append(entry)
            return
        i = len(purgatory)
        while i > 0 and purgatory[i - 1][0] > entry[0]:
            i -= 1
        purgatory.insert(i, entry)

    def fail_delayed_produce(self, error: str) -> None:
        """Answer every waiting batch with `error` (leadership lost)."""
        for _, delayed, k in list(self.purgatory) + self.legacy_waiters:
            delayed.resolve(k, error, -1)
        self.purgatory.clear()
        self.legacy_waiters.clear()

    def try_complete_delayed_produce(self) -> None:
        """Partition.checkEnoughReplicasReachOffset for requests the HW now covers."""
        hw = self.log.hw
        q = self.purgatory
        if not q or q[0][0] > hw:
            return
        error = m.NONE if len(self.maximal_isr()) >= self.min_isr else m.NOT_ENOUGH_REPLICAS_AFTER_APPEND
        while q and q[0][0] <= hw:
            required, delayed, k = q.popleft()
            if not delayed.done:
                batch = delayed.request.batches[k]
                delayed.resolve(k, error, required - batch.record_count)

    def check_legacy_waiters(self) -> None:
        """Kafka 0.8 acks=N: any N ISR replicas (leader included) with LEO >= the offset."""
        if not self.legacy_waiters:
            return
        me = self.broker.broker_id
        leos = [self.log.leo] + [self.remote[follower].leo for follower in self.isr if follower != me]
        keep = []
        for entry in self.legacy_waiters:
            required, delayed, k = entry
            if delayed.done:
                continue
            if sum(1 for x in leos if x >= required) >= delayed.request.acks:
                batch = delayed.request.batches[k]
                delayed.resolve(k, m.NONE, required - batch.record_count)
            else:
                keep.append(entry)
        self.legacy_waiters = keep

    # --- high watermark ------------------------------------------------------------------------
    def caught_up(self, rr: RemoteReplica, leader_leo: int, now: float) -> bool:
        """Replica.isCaughtUp: at the leader's LEO, or caught up within the lag time.

        `now` and `last_caught_up_ms` are the leader's wall clock (Broker.wall_ms), as in Kafka: a
        clock stepped back keeps a stuck follower "caught up" for as long as the step.
        """
        return rr.leo >= leader_leo or now - rr.last_caught_up_ms <= self.replica_lag_time_max_ms

    def maybe_increment_hw(self) -> None:
        """Advance the HW to the minimum LEO across the maximal ISR (Partition.maybeIncrementLeaderHW)."""
        log = self.log
        broker = self.broker
        if broker.strict_min_isr and len(self.isr) < self.min_isr:
            # KIP-966 part 1: "Not increasing HWM because partition is under min ISR".
            if not self.hw_stalled and log.leo > log.hw:
                self.hw_stalled = True
                broker.recorder.event(broker.env.now, "hw_stall", broker.broker_id, self.spec.index, log.hw,
                                      f"isr={list(self.isr)} under min.insync.replicas={self.spec.min_isr}",
                                      isr=tuple(self.isr), min_isr=self.spec.min_isr)
            return
        if self.hw_stalled:
            self.hw_stalled = False
            broker.recorder.event(broker.env.now, "hw_resume", broker.broker_id, self.spec.index, log.hw)
        leo = log.leo
        hw = log.hw
        if leo <= hw:
            return
        new_hw = leo
        pending = self.pending_isr  # self.maximal_isr(), inlined: this runs on every append and fetch
        maximal = pending if pending is not None and len(pending) > len(self.isr) else self.isr
        for follower, rr in self.remote.items():
            # in the maximal ISR, or caught up and eligible to join it (Partition.maybeIncrementLeaderHW)
            if rr.leo < new_hw and (follower in maximal
                                    or (self.caught_up(rr, leo, broker.wall_ms())
                                        and broker.isr_eligible(follower, rr.broker_epoch))):
                new_hw = rr.leo
                if new_hw <= hw:
                    return  # a replica that counts is no further than the HW: it cannot move
        if new_hw > hw:
            log.hw = new_hw
            broker.recorder.hw_advanced(broker.env.now, broker.broker_id, self.spec.index, self.leader_epoch, new_hw)
            broker.mark_dirty(self, wake=False)
            self.try_complete_delayed_produce()
            broker.wake_consumers(self)

    def update_follower_fetch_state(self, follower: int, fetch_offset: int, now: float,
                                    broker_epoch: int = -1) -> None:
        """Replica.updateFetchStateOrThrow (the follower's offset and, KIP-903, the broker epoch it
        fetched with), then maybe expand the ISR and advance the HW."""
        rr = self.remote.get(follower)
        if rr is None:
            return
        rr.broker_epoch = broker_epoch
        leo = self.log.leo
        if fetch_offset >= leo:
            rr.last_caught_up_ms = max(rr.last_caught_up_ms, now)
        elif fetch_offset >= rr.last_fetch_leader_leo:
            rr.last_caught_up_ms = max(rr.last_caught_up_ms, rr.last_fetch_ms)
        rr.last_fetch_leader_leo = leo
        rr.last_fetch_ms = now
        advanced = fetch_offset > rr.leo
        rr.leo = fetch_offset
        if follower not in self.isr:
            self.maybe_expand_isr(fetching=follower)
        if advanced:
            self.maybe_increment_hw()
            self.check_legacy_waiters()

    # --- ISR (AlterPartition, KIP-497) -----------------------------------------------------------
    def maybe_shrink_isr(self, now: float) -> None:
        """Partition.maybeShrinkIsr: propose dropping followers not caught up within replica.lag.time.max.ms."""
        if not self.is_leader or self.pending_isr is not None:
            return
        leo = self.log.leo
        me = self.broker.broker_id
        out = [follower for follower in self.isr
               if follower != me and not self.caught_up(self.remote[follower], leo, now)]
        if out:
            self.alter_partition(tuple(x for x in self.isr if x not in out))

    def maybe_expand_isr(self, fetching: int | None = None) -> None:
        """Propose adding caught-up, unfenced followers to the ISR (Partition.maybeExpandIsr).

        Kafka checks this on each follower fetch. With incremental fetch sessions an idle
        follower lists nothing, so it is also checked when the ISR changes and when a broker is
        unfenced, for followers that are fetching right now (their fetch is parked here).
        """
        if not self.is_leader or self.pending_isr is not None:
            return
        hw, start = self.log.hw, self.leader_epoch_start
        broker = self.broker
        for follower, rr in self.remote.items():
            if (follower in self.isr or not broker.isr_eligible(follower, rr.broker_epoch) or rr.leo < hw
                    or rr.leo < start):
                continue
            if follower == fetching or broker.fetch_parked(follower, self.spec.index):
                self.alter_partition(tuple(x for x in self.replicas if x in self.isr or x == follower))
                return

    def alter_partition(self, new_isr: tuple) -> None:
        """Propose an ISR change to the controller (AlterPartition, KIP-497); it stays pending until
        the controller's answer or the metadata log brings the new partition epoch."""
        self.pending_isr = new_isr
        self.broker.send_alter_partition(self)
        if len(new_isr) > len(self.isr):
            self.maybe_increment_hw()  # the maximal ISR grew

    def apply_isr_record(self, rec: m.PartitionRecord) -> None:
        """A newer partition epoch within our leader epoch: adopt its ISR (from the metadata log or an
        AlterPartition reply, whichever arrives first)."""
        if rec.leader_epoch == self.leader_epoch and rec.partition_epoch > self.partition_epoch:
            self.isr = rec.isr
            self.partition_epoch = rec.partition_epoch
            if rec.replicas != self.replicas:
                self.reassign(rec.replicas)
            self.pending_isr = None
            if self.alter_in_flight is not None:
                self.broker.alter_timeouts.done(self.alter_in_flight)
                self.alter_in_flight = None
            if self.is_leader:
                self.on_isr_changed()

    def reassign(self, replicas: tuple) -> None:
        """Partition.makeLeader/makeFollower with a new assignment in the same leader epoch
        (updateAssignmentAndIsr): a leader starts tracking the replicas being added (never caught up yet)."""
        self.replicas = replicas
        if self.is_leader:
            me = self.broker.broker_id
            self.remote = {b: self.remote.get(b) or _new_replica() for b in replicas if b != me}

    def on_isr_changed(self) -> None:
        """A committed ISR change: requests may now complete (or fail under min ISR)."""
        self.broker.track_isr(self)
        self.maybe_increment_hw()
        self.maybe_expand_isr()
        self.try_complete_delayed_produce()
        self.check_legacy_waiters()
