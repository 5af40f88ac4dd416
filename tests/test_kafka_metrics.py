"""The timeseries columns named after Kafka's JMX metrics (docs/metrics.md), each checked on a run
where its value is known.

Kafka's own semantics are the reference: IsrShrinksPerSec counts only the shrinks a leader commits
through AlterPartition (a crashed follower is removed by the controller, which no meter counts),
UnderMinIsrPartitionCount only partitions that have a leader, record-error-rate only records whose
application was told of an error (not acks=0's "unknown", not a producer crash), and so on.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import sim
from sim.measure.metrics import KAFKA_METRICS
from sim.scenario.schema import Scenario

SCEN = Path(__file__).resolve().parents[1] / "scenarios"


def _scenario(**over) -> Scenario:
    """3 brokers, constant 1 ms links, one RF-3 partition (min.insync 2), one acks=1 producer at
    1,000 records/s for 20 s (5 s settle), no faults; `over` replaces top-level keys."""
    data = {
        "name": "metrics",
        "duration": "20s",
        "settle": "5s",
        "seed": 1,
        "cluster": {"brokers": 3},
        "network": {"latency": {"dist": "constant", "value": "1ms"}},
        "topics": [{"name": "t", "partitions": 1, "replication.factor": 3, "min.insync.replicas": 2}],
        "producers": [{"topic": "t", "rate": "1000/s", "record.size": "100B", "acks": 1}],
    }
    data.update(over)
    return Scenario.resolve(data)


def _crash_leader(**over) -> sim.Results:
    return sim.run(_scenario(faults=[{"kind": "crash", "leader_of": "t-0", "at": "5s", "restart_after": "5s"}],
                             **over))


@pytest.fixture(scope="module")
def crash():
    """The partition's leader crashes at 5 s and restarts at 10 s."""
    return _crash_leader()


def test_every_documented_column_is_in_a_run_with_consumers():
    r = sim.run(_scenario(duration="3s", settle="1s",
                          consumers=[{"group.id": "g", "topic": "t"}]))
    assert {col for col, _ in KAFKA_METRICS.values()} <= set(r.timeseries.columns)


def test_one_leader_crash_is_exactly_one_election_in_its_second(crash):
    ts, ev = crash.timeseries, crash.events
    elected = ev[(ev.kind == "leader_elected") & (ev.time_ms > 0)]
    assert len(elected) == 1 and crash.summary["leader_elections"] == 1
    assert ts["leader_elections_per_sec"].sum() == 1
    assert ts.loc[ts["leader_elections_per_sec"] == 1, "second"].item() == int(elected.time_ms.item() // 1000)
    assert ts["unclean_leader_elections_per_sec"].sum() == 0


def test_a_crashed_follower_is_no_isr_shrink_of_the_leader_but_its_return_is_an_expansion(crash):
    """The controller removes the crashed broker from the ISR when it fences it (KRaft): Kafka's
    IsrShrinksPerSec (a leader's AlterPartition) does not count that; the leader adds it back through
    AlterPartition when it has caught up, which IsrExpandsPerSec counts."""
    ts = crash.timeseries
    assert crash.summary["isr_shrinks"] == 1 and crash.summary["isr_expands"] == 1
    assert ts["isr_shrinks_per_sec"].sum() == 0
    assert ts["isr_expands_per_sec"].sum() == 1
    back = ts.loc[ts["isr_expands_per_sec"] == 1, "second"].item()
    ev = crash.events
    unfenced = ev.loc[ev.kind == "broker_unfenced", "time_ms"].item()  # back at 10 s, registered once fenced
    assert unfenced // 1000 <= back <= unfenced // 1000 + 1


def test_retries_count_every_resent_record(crash):
    """record-retry-rate: each attempt after the first, in records (the batches table's attempts)."""
    b = crash.batches
    resent = int(((b["attempts"] - 1).clip(lower=0) * b["record_count"]).sum())
    assert resent > 0
    assert crash.timeseries["record_retry_rate"].sum() == resent
    assert crash.timeseries["record_error_rate"].sum() == 0  # all retried in time: nobody was told of an error


def test_request_latency_is_the_round_trip_for_acks_1():
    """Constant 1 ms links, no hardware model: an acks=1 produce request is answered in exactly 2 ms."""
    ts = sim.run(_scenario(duration="5s", settle="1s")).timeseries
    lat = ts["request_latency_avg_ms"].dropna()
    assert len(lat) >= 5
    assert np.allclose(lat, 2.0)
    slower = sim.run(_scenario(duration="5s", settle="1s", producers=[
        {"topic": "t", "rate": "1000/s", "record.size": "100B", "acks": "all"}])).timeseries
    assert (slower["request_latency_avg_ms"].dropna() > 2.5).all()  # acks=all waits for the followers' fetch


def test_expired_records_are_errors_and_acks_0_records_are_not():
    """RF 1, the only replica down for 8 s, delivery.timeout.ms 3 s: every batch for it expires and its
    application gets a TimeoutException (record-error-rate); nothing ends unanswered."""
    r = sim.run(_scenario(
        topics=[{"name": "t", "partitions": 1, "replication.factor": 1, "min.insync.replicas": 1}],
        producers=[{"topic": "t", "rate": "1000/s", "record.size": "100B", "acks": 1,
                    "delivery.timeout.ms": "3s", "request.timeout.ms": "1s", "linger.ms": 5}],
        faults=[{"kind": "crash", "leader_of": "t-0", "at": "5s", "restart_after": "8s"}]))
    s, ts = r.summary, r.timeseries
    errors = s["records_failed"] + s["records_unknown"]
    assert errors > 3000
    assert ts["record_error_rate"].sum() == errors
    assert ts.loc[ts["second"] < 5, "record_error_rate"].sum() == 0
    zero = sim.run(_scenario(duration="3s", settle="1s", producers=[
        {"topic": "t", "rate": "1000/s", "record.size": "100B", "acks": 0, "enable.idempotence": False}]))
    assert zero.summary["records_unknown"] > 2000  # acks=0: never told, never an error
    assert zero.timeseries["record_error_rate"].sum() == 0
    assert zero.timeseries["request_latency_avg_ms"].isna().all()  # no response, no latency


def test_a_producer_crash_tells_its_application_nothing():
    r = sim.run(SCEN / "faults" / "producer-crash.yaml")
    assert r.summary["records_unknown"] > 0
    assert r.timeseries["record_error_rate"].sum() == r.summary["records_failed"]


def test_unclean_elections_on_the_unclean_scenario():
    """unclean-consumer.yaml: broker 1 comes back at 40 s and is elected outside the ISR, once."""
    r = sim.run(SCEN / "faults" / "unclean-consumer.yaml")
    ts = r.timeseries
    assert r.summary["unclean_elections"] == 1
    assert ts["unclean_leader_elections_per_sec"].sum() == 1
    assert 40 <= ts.loc[ts["unclean_leader_elections_per_sec"] == 1, "second"].item() <= 50


def test_under_min_isr_while_only_the_leader_is_in_sync():
    """elr.yaml: both followers' disks stall at 20 s and the leader shrinks the ISR to itself (one
    AlterPartition, after replica.lag.time.max.ms 10 s and its check every 5 s): under min ISR (1 < 2)
    until the controller fences the leader that lost power at 40 s (its session expires at ~47 s)
    and elects a follower from the ELR, whose ISR of one is under min ISR until the other rejoins."""
    r = sim.run(SCEN / "faults" / "elr.yaml")
    ts = r.timeseries.set_index("second")
    ev = r.events
    shrunk = ev[(ev.kind == "isr_change") & (ev.reason == "alter_partition") & (ev.value == 1)].time_ms.min()
    assert 30_000 <= shrunk < 36_000
    assert ts.loc[:39, "isr_shrinks_per_sec"].sum() == 1
    second = int(shrunk // 1000)  # the second the ISR shrank in counts only its part after the shrink
    assert ts.loc[:second - 1, "under_min_isr_partitions"].eq(0).all()
    assert ts.loc[second + 1:46, "under_min_isr_partitions"].eq(1).all()
    assert ts.loc[:, "under_replicated_partitions"].ge(ts.loc[:, "under_min_isr_partitions"] - 1e-9).all()
    assert ts["under_min_isr_partitions"].iloc[-1] == 0


def test_records_lag_max_is_the_lag_of_the_one_partition():
    """One partition, one group: the largest partition lag is the total lag, second by second; a
    paused consumer's lag grows by the rate."""
    r = sim.run(_scenario(
        duration="12s", settle="4s",
        consumers=[{"group.id": "g", "topic": "t", "group.protocol": "classic"}],
        faults=[{"kind": "consumer_pause", "consumer": "g-0", "at": "4s", "duration": "5s"}]))
    ts = r.timeseries
    assert (ts["records_lag_max"] == ts["consumer_lag"]).all()
    assert ts["records_lag_max"].max() >= 4000  # 1,000 records/s for 5 s
