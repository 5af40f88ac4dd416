"""Kafka's Partition exercised directly: HW advance, ISR shrink and expansion, the produce purgatory
and the disk under the log, with a fake broker standing in for ReplicaManager."""

from __future__ import annotations

from types import SimpleNamespace

from sim.model import messages as m
from sim.model.disk import Disk
from sim.model.log import Log
from sim.model.partition import DelayedProduce, Partition, PartitionSpec, PurgatoryEntry
from sim.model.producer import ProducerBatch


class FakeBroker:
    """What a Partition asks of its broker, recorded instead of acted on."""

    def __init__(self, broker_id: int = 0, lag_ms: float = 30_000.0, strict_min_isr: bool = True):
        self.broker_id = broker_id
        self.config = SimpleNamespace(replica_lag_time_max_ms=lag_ms)
        self.env = SimpleNamespace(now=0.0)
        self.strict_min_isr = strict_min_isr
        self.fenced: set[int] = set()
        self.logs = {0: Log()}
        self.disk = Disk(self.logs)
        self.events: list = []
        self.hw: list = []
        self.alter_requests: list[tuple] = []
        self.alter_timeouts = SimpleNamespace(done=lambda req: None)
        self.recorder = SimpleNamespace(
            event=lambda *a, **fields: self.events.append(a[1:]),
            hw_advanced=lambda now, b, p, epoch, hw: self.hw.append((now, hw)))

    def isr_eligible(self, broker_id: int, broker_epoch: int | None = -1) -> bool:
        return broker_id not in self.fenced

    def wall_ms(self) -> float:
        return self.env.now

    def fetch_parked(self, follower: int, p: int) -> bool:
        return False

    def mark_dirty(self, r, wake: bool) -> None:
        pass

    def wake_consumers(self, r) -> None:
        pass

    def track_isr(self, r) -> None:
        pass

    def send_alter_partition(self, r) -> None:
        self.alter_requests.append(r.pending_isr)
        r.alter_in_flight = object()


def _leader(isr=(0, 1, 2), min_isr=2, **kw) -> tuple[Partition, FakeBroker]:
    broker = FakeBroker(**kw)
    spec = PartitionSpec(0, "t-0", (0, 1, 2), min_isr, False)
    r = Partition(broker, spec, broker.logs[0], min_isr)
    r.make_leader(m.PartitionRecord(0, 0, 1, 1, isr, (0, 1, 2), leader_broker_epoch=1), now=0.0)
    return r, broker


def _batch(count: int = 10, batch_id: int = 0, pid: int = -1, seq: int = -1) -> ProducerBatch:
    return ProducerBatch(batch_id, 0, count, 0, 0.0, 0.0, 0.0, pid, seq, count * 100)


def test_the_hw_advances_to_the_minimum_leo_of_the_isr():
    r, broker = _leader()
    assert r.append_records_to_leader(_batch(10), acks=-1) == (m.NONE, 0, True)
    r.maybe_increment_hw()
    assert r.log.hw == 0  # the followers' LEOs are unknown
    broker.env.now = 5.0
    r.update_follower_fetch_state(1, 10, now=5.0)
    assert r.log.hw == 0  # follower 2 still counts
    r.update_follower_fetch_state(2, 4, now=6.0)
    assert r.log.hw == 4 and broker.hw == [(5.0, 4)]
    r.update_follower_fetch_state(2, 10, now=7.0)
    assert r.log.hw == 10


def test_an_acks_all_batch_completes_when_the_hw_covers_it():
    r, _ = _leader()
    batch = _batch(10)
    _, base, _ = r.append_records_to_leader(batch, acks=-1)
    answers = []
    req = SimpleNamespace(batches=[batch], acks=-1)
    delayed = DelayedProduce(req, [None], 1, lambda request, results: answers.append(results))
    r.watch_produce(PurgatoryEntry(base + batch.record_count, delayed, 0), acks=-1)
    r.update_follower_fetch_state(1, 10, now=1.0)
    assert answers == []
    r.update_follower_fetch_state(2, 10, now=1.0)
    assert answers == [[(batch, m.NONE, 0)]] and not r.purgatory


def test_a_retry_is_answered_with_its_first_offset_and_not_appended_again():
    r, _ = _leader()
    assert r.append_records_to_leader(_batch(10, pid=7, seq=0), acks=1) == (m.NONE, 0, True)
    assert r.append_records_to_leader(_batch(10, pid=7, seq=1), acks=1) == (m.NONE, 10, True)
    assert r.append_records_to_leader(_batch(10, pid=7, seq=0), acks=1) == (m.NONE, 0, False)
    assert r.append_records_to_leader(_batch(10, pid=7, seq=5), acks=1)[0] == m.OUT_OF_ORDER_SEQUENCE_NUMBER
    assert r.log.leo == 20 and r.log.producer_state[7].last_seq == 1


def test_acks_all_is_refused_under_min_isr_and_the_hw_stalls():
    r, broker = _leader(isr=(0,))
    assert r.append_records_to_leader(_batch(10), acks=-1) == (m.NOT_ENOUGH_REPLICAS, -1, False)
    r.append_records_to_leader(_batch(10), acks=1)
    r.maybe_increment_hw()
    assert r.log.hw == 0 and r.hw_stalled and broker.events[0][0] == "hw_stall"


def test_a_follower_lagging_past_the_lag_time_is_proposed_out_of_the_isr():
    r, broker = _leader(lag_ms=100.0)
    r.append_records_to_leader(_batch(10), acks=1)
    r.update_follower_fetch_state(1, 10, now=50.0)  # caught up
    r.update_follower_fetch_state(2, 0, now=50.0)  # behind since the election at 0
    r.maybe_shrink_isr(now=90.0)
    assert broker.alter_requests == []  # both within replica.lag.time.max.ms
    r.maybe_shrink_isr(now=120.0)
    assert broker.alter_requests == [(0, 1)] and r.pending_isr == (0, 1)
    assert r.isr == (0, 1, 2)  # pending until the controller commits it (KIP-497)
    r.maybe_shrink_isr(now=200.0)
    assert len(broker.alter_requests) == 1  # one proposal at a time
    r.apply_isr_record(m.PartitionRecord(0, 0, 1, 2, (0, 1), (0, 1, 2)))
    assert r.isr == (0, 1) and r.pending_isr is None


def test_a_caught_up_follower_is_proposed_back_into_the_isr_and_counts_at_once():
    r, broker = _leader(isr=(0, 1))
    r.append_records_to_leader(_batch(10), acks=1)
    r.update_follower_fetch_state(1, 10, now=1.0)
    assert r.log.hw == 10
    r.append_records_to_leader(_batch(10), acks=1)
    r.update_follower_fetch_state(2, 10, now=2.0)  # at the HW: eligible
    assert broker.alter_requests == [(0, 1, 2)] and r.maximal_isr() == (0, 1, 2)
    r.update_follower_fetch_state(1, 20, now=3.0)
    assert r.log.hw == 10  # the pending member already holds the HW back


def test_a_fenced_follower_is_not_proposed_into_the_isr():
    r, broker = _leader(isr=(0, 1))
    broker.fenced.add(2)
    r.update_follower_fetch_state(2, 0, now=1.0)
    assert broker.alter_requests == []


def test_the_disk_keeps_the_flushed_offset_of_each_log():
    log_a, log_b = Log(), Log()
    disk = Disk({0: log_a, 1: log_b})
    disk.append(log_a, 10, 0, 1, -1, -1, 1000)
    disk.append(log_b, 5, 0, 2, -1, -1, 500)
    assert disk.flushed_offset(0) == 0 and disk.flushed_offset(1) == 0
    disk.flush(0)
    assert disk.flushed_offset(0) == 10 and disk.flushed_offset(1) == 0
    disk.append(log_a, 10, 0, 3, -1, -1, 1000)
    assert disk.flushed_offset(0) == 10 and log_a.leo == 20
    disk.flush()
    assert disk.flushed_offset(0) == 20 and disk.flushed_offset(1) == 5
    assert disk.truncate(0, 10) == 10
    assert disk.flushed_offset(0) == 10  # never beyond the log end
    disk.append(log_a, 10, 1, 4, -1, -1, 1000)
    assert disk.flushed_offset(0) == 10


def test_a_follower_outside_the_isr_that_never_fetched_does_not_hold_the_hw_back():
    """Replica.resetReplicaState: a follower outside the ISR starts with lastFetchTimeMs 0 (the Unix
    epoch, long ago), so its first fetch below the leader's LEO does not make it "caught up" and it
    does not hold the HW back until it reaches the LEO. Time 0 of a run is not long ago: with
    last_fetch_ms 0.0, a behind follower counted as caught up for the first replica.lag.time.max.ms
    (30 s) of the run and held every acks=all write back while it caught up."""
    r, broker = _leader(isr=(0, 1))
    r.append_records_to_leader(_batch(10), acks=1)
    broker.env.now = 1_000.0
    r.update_follower_fetch_state(1, 10, now=1_000.0)
    assert r.log.hw == 10
    r.append_records_to_leader(_batch(10), acks=1)
    r.update_follower_fetch_state(2, 2, now=1_000.0)  # outside the ISR, below the HW: not eligible to join
    assert broker.alter_requests == []
    r.update_follower_fetch_state(1, 20, now=1_000.0)
    assert r.log.hw == 20
