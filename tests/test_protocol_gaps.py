"""Protocol rules no test pinned down before (issue 10, "missing tests"): each test here fails on a
plausible bug that every other test let through.

- ISR expansion waits until the follower's log end reaches the HW and the leader epoch's start;
- idempotence state is rebuilt when a log is truncated;
- a producer retries at once, without waiting out its backoff, when the leader changed (KIP-951).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

import sim
from sim.model import messages as m
from sim.model.log import Log
from sim.runs.runner import simulate
from tests.conftest import Tiny, tiny_scenario

SCEN = Path(__file__).resolve().parents[1] / "scenarios"


def _log_end_before(t: Tiny, broker: int, time_ms: float, count: int | dict) -> int:
    """A broker's log end offset just before `time_ms`, from its appends (batches of `count` records)."""
    ends = [off + (count[bid] if isinstance(count, dict) else count)
            for at, b, off, bid in t.appended() if b == broker and at < time_ms]
    return max(ends, default=0)


def _joined(t: Tiny, broker: int) -> list[float]:
    """When the controller took `broker` (back) into the ISR at its leader's request (AlterPartition)."""
    out = []
    for time_ms, _, _, _, _, detail in t.events("isr_change"):
        if "->" not in detail or not detail.endswith("alter_partition"):
            continue
        before, after = ({int(x) for x in s.strip("[]").split(",") if x} for s in detail.split()[0].split("->"))
        if broker in after and broker not in before:
            out.append(time_ms)
    return out


def test_a_catching_up_follower_rejoins_the_isr_only_at_the_hw():
    """Partition.isFollowerInSync: a follower's log end must reach the HW. A follower restarted
    after 2000 batches were committed without it fetches one batch per fetch (replica.fetch.max.bytes)
    and is unfenced long before it has caught up: it rejoins only when its log end reaches the HW."""
    t = Tiny(tiny_scenario(**{"cluster/replica.fetch.max.bytes": 1000}))
    net = t.cluster.network
    t.run(10)
    leader = t.leader()
    lagging = [b for b in t.cluster.partitions[0].replicas if b != leader][0]
    t.brokers[lagging].crash()
    for i in range(2000):
        t.client.produce(net, t.brokers[leader], [t.client.batch(count=10, batch_id=100 + i)], acks=1)
    t.run(12_000)  # fenced at ~9 s: the other follower alone commits the 20,000 records
    assert lagging not in t.cluster.controller.state[0].isr and t.brokers[leader].logs[0].hw == 20_000
    t.brokers[lagging].restart()
    t.run(20_000)
    unfenced = [e[0] for e in t.events("broker_unfenced") if e[2] == lagging]
    (joined,) = _joined(t, lagging)
    assert unfenced and unfenced[0] < joined - 1_000  # eligible a second before it caught up
    # what it held when the leader proposed it (one 1 ms link before the controller's record)
    assert _log_end_before(t, lagging, joined, 10) >= 20_000
    assert lagging in t.cluster.controller.state[0].isr


def test_a_catching_up_follower_rejoins_the_isr_only_at_the_leader_epochs_start():
    """Partition.isFollowerInSync also wants the follower at the start offset of the leader's epoch:
    a new leader whose HW (learned one fetch late) is below its log end does not take a follower
    back in between, although that follower has reached the HW."""
    t = Tiny(tiny_scenario(**{"cluster/replica.fetch.max.bytes": 1000, "cluster/replica.lag.time.max.ms": 500}))
    net = t.cluster.network
    t.run(10)
    old, new, lagging = t.cluster.partitions[0].replicas  # `new` is next in assignment order
    t.stall_fetcher(lagging)
    for i in range(100):
        t.client.produce(net, t.brokers[old], [t.client.batch(count=10, batch_id=100 + i)], acks=1)
    t.run(2_000)  # `lagging` left the ISR; `new` has all 1000 records and knows the HW is 1000
    assert t.cluster.controller.state[0].isr == (old, new) and t.brokers[new].logs[0].hw == 1000
    t.client.produce(net, t.brokers[old], [t.client.batch(count=500, batch_id=999)], acks=1)
    while t.brokers[new].logs[0].leo < 1500:
        t.run(t.env.now + 0.5)
    t.brokers[old].crash()  # before `new` learns that the HW moved to 1500
    t.run(15_000)  # `lagging` follows `new`, one batch per fetch
    rep = t.brokers[new].replicas[0]
    assert t.leader() == new and rep.leader_epoch == 1 and rep.leader_epoch_start == 1500
    # the fenced leader leaves the ISR at once (handleBrokerFenced); the election keeps [new]
    assert [e[5] for e in t.events("isr_change") if e[0] > 2_000][0] == f"[{old},{new}]->[{new}] fenced"
    (joined,) = _joined(t, lagging)
    # the new leader's HW: 1000 (learned as a follower), stalled under min.insync 2 until `lagging` joined
    assert [e[4] for e in t.events("hw_stall") if e[2] == new] == [1000]
    assert not [h for h in t.hw_advances() if h[1] == new and h[0] < joined]
    counts = {100 + i: 10 for i in range(100)} | {999: 500}
    assert _log_end_before(t, lagging, joined, counts) >= 1500  # not at 1000, where it reached the HW


def _idempotent_log() -> Log:
    """Producer 7's batches with sequences 0, 1, 2 at offsets 0, 10, 20."""
    log = Log()
    for seq in range(3):
        log.append(10, 0, 100 + seq, 7, seq, 1000)
    return log


def test_truncation_drops_the_truncated_sequences_from_the_producer_state():
    """After a truncation the idempotence state is rebuilt from what is left: a retry of a truncated
    batch is a new sequence to append, not a duplicate to answer with its old offset."""
    log = _idempotent_log()
    assert log.producer_state[7].last_seq == 2 and log.producer_state[7].offset_of(1) == 10
    removed = log.truncate_to(10)
    assert removed == 20 and log.leo == 10
    entry = log.producer_state[7]
    assert entry.last_seq == 0 and entry.offset_of(0) == 0
    assert entry.offset_of(1) is None and entry.offset_of(2) is None
    log.truncate_to(0)
    assert 7 not in log.producer_state


def test_a_retry_of_a_truncated_batch_is_appended_again(tiny):
    """The broker consults the rebuilt state: after its log lost sequences 1 and 2, their retries
    are appended (at the log end) rather than answered with offsets the log no longer has."""
    t = tiny
    net = t.cluster.network
    t.run(10)
    leader = t.brokers[t.leader()]
    batches = [t.client.batch(count=10, pid=7, seq=s, batch_id=100 + s) for s in range(3)]
    for b in batches:
        t.client.produce(net, leader, [b], acks=1)
    t.run(20)
    log = leader.logs[0]
    assert list(log.batch_id) == [100, 101, 102]
    log.truncate_to(10)  # as a follower truncating a diverged tail would
    t.client.produce(net, leader, [batches[1]], acks=1)
    t.client.produce(net, leader, [batches[2]], acks=1)
    t.run(40)
    assert list(log.batch_id) == [100, 101, 102]
    res = [(bid, err, off) for _, bid, err, off in t.client.results()[3:]]
    assert res == [(101, m.NONE, 10), (102, m.NONE, 20)]
    assert [a[2:] for a in t.appended() if a[0] > 20 and a[1] == leader.broker_id] == [(10, 101), (20, 102)]


def test_a_batch_in_retry_backoff_is_resent_at_once_when_the_leader_changes():
    """KIP-951: the producer does not wait out a batch's retry backoff once it learns of a new
    leader. min.insync 3 with a follower down makes every attempt fail (request timeouts, then
    NOT_ENOUGH_REPLICAS) and the backoff grow towards retry.backoff.max.ms (20 s); when the leader
    crashes and another is elected, the batches in backoff go to it within a metadata refresh
    (retry.backoff.ms, 1 s), seconds before their backoff would have let them."""
    over = {"duration": "60s", "settle": "5s", "consumers": [], "topics.0.partitions": 1,
            "topics.0.min.insync.replicas": 3, "producers.0.instances": 5, "producers.0.rate": "100/s",
            "producers.0.linger.ms": 50, "producers.0.request.timeout.ms": 3000,
            "producers.0.retry.backoff.ms": 1000, "producers.0.retry.backoff.max.ms": 20_000,
            "faults": [{"kind": "crash", "broker": 1, "at": "1s"},
                       {"kind": "crash", "leader_of": "events-0", "at": "40s"}]}
    sc = sim.load_scenario(SCEN / "quickstart.yaml", overrides=over)
    _, rec, _ = simulate(sc, seed=3)
    cfg = sc.producers[0]
    ev = pd.DataFrame(rec.arrays("events"))
    elections = ev[(ev.kind == "leader_elected") & (ev.time_ms > 0)]
    assert len(elections) == 1 and elections.time_ms.iloc[0] > 40_000  # broker 1 was a follower
    elected_ms, new_leader = elections.time_ms.iloc[0], elections.broker.iloc[0]
    sent = pd.DataFrame(rec.arrays("batch_sent"))
    err = pd.DataFrame(rec.arrays("produce_error"))
    # each failed attempt (the k-th error of a batch ends its k-th attempt) and its batch's next attempt
    err = err.sort_values("time_ms", kind="stable").assign(attempt=lambda d: d.groupby("batch_id").cumcount() + 1)
    nxt = sent.rename(columns={"time_ms": "resent_ms", "broker": "to"}).assign(attempt=lambda d: d.attempt - 1)
    retry = err.merge(nxt[["batch_id", "attempt", "resent_ms", "to"]], on=["batch_id", "attempt"])
    # the least backoff after attempt k fails (KIP-580: doubling, capped, jitter at most -20%)
    base = np.minimum(cfg.retry_backoff_ms * 2.0 ** (retry["attempt"] - 1), cfg.retry_backoff_max_ms)
    retry["backoff_ends_ms"] = retry["time_ms"] + 0.8 * base
    waiting = retry[(retry["time_ms"] < elected_ms) & (retry["backoff_ends_ms"] > elected_ms + 1_500)]
    assert len(waiting) >= 3  # batches in backoff when the new leader was elected
    assert (waiting["to"] == new_leader).all()
    assert (waiting["resent_ms"] < elected_ms + 2 * cfg.retry_backoff_ms + 500).all(), waiting
    assert (waiting["resent_ms"] < waiting["backoff_ends_ms"] - 1_000).all(), waiting
