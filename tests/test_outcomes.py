"""Outcome tests: the published Kafka behaviours the model must reproduce, over many seeds."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import sim
from sim.model.recorder import OUTCOMES

SCEN = Path(__file__).resolve().parents[1] / "scenarios"

# A short leader-crash run: crash at 3 s, restart at 13 s (after the new leader is elected),
# produce until 15 s, settle 10 s.
SHORT = {"duration": "15s", "settle": "10s", "faults.0.at": "3s", "faults.0.restart_after": "10s"}


def _run(name, seed, **over):
    r = sim.run(SCEN / name, seed=seed, overrides={**SHORT, **over})
    # every run keeps the model invariants (sim.measure.invariants), whatever else the test checks
    assert r.summary["invariant_violations"] == 0, r.summary["invariant_examples"]
    return r


@functools.lru_cache(maxsize=None)
def _shared(name, seed, over: tuple):
    """`_run`, once per worker for a run several tests read (a run is a function of scenario and seed);
    the tests that share one are in one xdist_group, so they run on the same worker."""
    return _run(name, seed, **dict(over))


# The acks=1 leader crash under 10 producers on one partition: V1's runs, also the control of the
# acks=all comparison
ACKS1_LOAD = (("producers.0.instances", 10), ("topics.0.partitions", 1))
SHARES_ACKS1_RUNS = pytest.mark.xdist_group("outcomes-acks1-runs")


@SHARES_ACKS1_RUNS
def test_acks1_leader_crash_under_load_loses_acknowledged_records():
    """V1: acks=1 acknowledges the leader's unreplicated tail, which a hard crash then loses."""
    lost = []
    for seed in range(6):
        r = _shared("leader-crash-acks1.yaml", seed, ACKS1_LOAD)
        s = r.summary
        lost.append(s["acked_lost"])
        # the lost records were acknowledged within about one replication round before the crash
        b = r.batches
        gone = b[(b.outcome == "acked") & (b.copies_in_log == 0)]
        if len(gone):
            # (an acknowledgement already on the wire may land just after the crash)
            assert gone.acked_ms.max() <= 3_000 + 5 and gone.acked_ms.min() >= 3_000 - 20
            assert s["truncations"] >= 1  # the old leader cut its divergent tail on rejoining
        assert s["records_lost"] >= s["acked_lost"]
    assert sum(lost) > 0, f"acks=1 never lost an acknowledged record: {lost}"
    assert sum(1 for x in lost if x > 0) >= 2


def test_acks_all_min_insync_2_single_crash_loses_nothing_over_5_seeds():
    """V2 in the default run: its first 5 seeds (the 20-seed test below is marked slow)."""
    _acks_all_min_insync_2_single_crash_loses_nothing(range(5))


@pytest.mark.slow
def test_acks_all_min_insync_2_single_crash_loses_nothing_over_20_seeds():
    """V2: RF 3, min.insync 2, acks=all: a single hard leader crash loses no acknowledged record."""
    _acks_all_min_insync_2_single_crash_loses_nothing(range(20))


def _acks_all_min_insync_2_single_crash_loses_nothing(seeds):
    for seed in seeds:
        s = _run("quickstart.yaml", seed, **{"producers.0.instances": 3}).summary
        assert s["acked_lost"] == 0, f"seed {seed}"
        assert s["records_lost"] == 0 and s["duplicates"] == 0 and s["reordered"] == 0, f"seed {seed}"
        assert s["records_acked"] > 0.99 * s["records_sent"]
        assert s["records_consumed"] == s["records_acked"]


@SHARES_ACKS1_RUNS
def test_acks_all_keeps_what_acks1_loses_under_the_same_crash():
    """The load at which a crash catches acks=1's unreplicated tail (10 producers on one partition):
    acks=all with min.insync 2 loses nothing on the same seeds. Control: acks=1 loses records."""
    acks1_lost = 0
    for seed in range(6):
        safe = _run("leader-crash-acks1.yaml", seed, **dict(ACKS1_LOAD), **{"producers.0.acks": "all"}).summary
        assert safe["acked_lost"] == 0, f"seed {seed}"
        acks1_lost += _shared("leader-crash-acks1.yaml", seed, ACKS1_LOAD).summary["acked_lost"]
    assert acks1_lost > 0  # the crash does hit an unreplicated tail at this load


def test_duplicates_without_idempotence_and_none_with_it():
    """Ambiguous failures (a leader dies holding acks=all requests) are retried: duplicates
    without idempotence, none with it (same seeds, same arrivals)."""
    dup_off, dup_on = [], []
    for seed in range(4):
        # 5 ms links widen the window between a follower's copy and the producer's acknowledgement
        over = {"producers.0.instances": 5, "topics.0.partitions": 2,
                "network.latency.dist": "constant", "network.latency.value": "5ms"}
        dup_off.append(_run("quickstart.yaml", seed, **over, **{"producers.0.enable.idempotence": False})
                       .summary["duplicates"])
        on = _run("quickstart.yaml", seed, **over).summary
        dup_on.append(on["duplicates"])
        assert on["reordered"] == 0
    assert sum(1 for d in dup_off if d > 0) >= 3, dup_off
    assert dup_on == [0, 0, 0, 0]


# ZooKeeper-era controller, elections one at a time (cluster.controller.mode, kafkasim's own key),
# detection after 9 s as in KRaft; at these seeds the victim is not broker 0, the controller's broker
ZK_SERIAL = {"cluster.controller.mode": "zookeeper", "cluster.kafka.version": "3.9",
             "cluster.zookeeper.session.timeout.ms": 9000}


def test_failover_time_is_session_timeout_plus_election_cost():
    """Detection (broker.session.timeout.ms after the last heartbeat) plus 5 ms per election."""
    over = {"topics.0.partitions": 60, "producers.0.rate": "30000/s"}
    r = _run("quickstart.yaml", 1, **over, **ZK_SERIAL, **{"faults.0.leader_of": "events-0"})
    fo = pd.DataFrame(r.summary["failovers"])
    n = len(fo)
    assert n == 20  # 60 partitions over 3 brokers: the victim led a third
    session, heartbeat, cost = 9_000, 2_000, 5
    elect = np.sort(fo["election_ms"].to_numpy())
    # the first election: fencing 7-9 s after the crash (the last heartbeat was up to 2 s before it)
    assert session - heartbeat <= elect[0] - cost <= session + 150
    # then one election per partition, 5 ms apart
    assert elect[-1] - elect[0] == pytest.approx(cost * (n - 1), abs=1.0)
    # clients find the new leader at their next metadata refresh, which comes with the next failed
    # retry to the dead broker (retry.backoff.max.ms 1 s + 20% jitter), and then retry at once (KIP-951)
    unavailable = fo["unavailable_ms"].to_numpy()
    assert np.all(unavailable >= fo["election_ms"].to_numpy())
    assert np.all(unavailable - fo["election_ms"].to_numpy() < 1_200 + 100)


def test_partition_count_drives_failover():
    """More partitions led by the victim, longer until the last one is back (Rao 2015)."""
    worst = []
    for parts in (6, 300):
        r = _run("quickstart.yaml", 2, **{"topics.0.partitions": parts, "producers.0.rate": "5000/s",
                                           "consumers": []}, **ZK_SERIAL)
        worst.append(r.summary["failover_ms"]["max"])
    assert worst[1] - worst[0] == pytest.approx(5 * (100 - 2), rel=0.05)


def test_same_seed_same_results_and_different_seed_differs():
    a = _run("quickstart.yaml", 5)
    b = _run("quickstart.yaml", 5)
    c = _run("quickstart.yaml", 6)
    drop = lambda s: {k: v for k, v in s.items() if k != "wall_time_s"}  # noqa: E731
    assert drop(a.summary) == drop(b.summary)
    pd.testing.assert_frame_equal(a.batches, b.batches)
    pd.testing.assert_frame_equal(a.events, b.events)
    pd.testing.assert_frame_equal(a.timeseries, b.timeseries)
    assert not a.batches[["first_arrival_ms"]].equals(c.batches[["first_arrival_ms"]])


def test_adding_a_consumer_does_not_change_the_producer_or_the_faults():
    """Per-component random streams: a new component does not shift anyone else's draws."""
    a = _run("quickstart.yaml", 3, **{"consumers": []})
    b = _run("quickstart.yaml", 3)
    # The records and their arrival times are the producer's own draws. Batch ids (given when a
    # batch is drained) and the batches a blocked partition fills (a batch stays open until it is
    # drained) follow the sender's timing, which the network's latencies move: compare records.
    ka, kb = (r.batches.assign(end=r.batches.first_record_id + r.batches.record_count) for r in (a, b))
    total = lambda k: k.groupby("partition", observed=True)["record_count"].sum()  # noqa: E731
    pd.testing.assert_series_equal(total(ka), total(kb))
    starts = ka.merge(kb, on=["partition", "first_record_id"])
    ends = ka.merge(kb, on=["partition", "end"])
    assert (starts.first_arrival_ms_x == starts.first_arrival_ms_y).all()
    assert (ends.last_arrival_ms_x == ends.last_arrival_ms_y).all()
    assert len(ka.merge(kb, on=["partition", "first_record_id", "record_count"])) >= 0.99 * len(ka)
    crash = lambda r: r.events[r.events.kind == "fault_start"][["time_ms", "broker"]].reset_index(drop=True)  # noqa: E731
    pd.testing.assert_frame_equal(crash(a), crash(b))
    assert a.summary["records_consumed"] == 0 and b.summary["records_consumed"] > 0


def test_records_are_accounted_exactly_once():
    r = _run("leader-crash-acks1.yaml", 0, **{"producers.0.instances": 4})
    s, b = r.summary, r.batches
    assert s["records_acked"] + s["records_failed"] + s["records_unknown"] == int(b.record_count.sum())
    assert b.batch_id.is_unique and (b.outcome.isin(["acked", "failed", "unknown"])).all()
    # acked batches carry their offset; committed copies match the consumed ones
    acked = b[b.outcome == "acked"]
    assert (acked.offset >= 0).all() and acked.acked_ms.notna().all()
    assert s["records_consumed"] == int(b.record_count[b.times_consumed > 0].sum())


def test_acks0_fate_is_unknown_and_loss_is_counted():
    over = {"producers.0.acks": 0, "producers.0.instances": 5, "topics.0.partitions": 1}
    lost = 0
    for seed in range(3):
        s = _run("leader-crash-acks1.yaml", seed, **over).summary
        assert s["records_acked"] == 0 and s["records_unknown"] == s["records_sent"]
        assert s["acked_lost"] == 0
        lost += s["records_lost"]
    # records sent to the dead leader's socket before the client noticed are gone
    assert lost > 0
    # Kafka sends no ProduceResponse for acks=0; with acks=1 every request the leader got is answered
    assert s["messages_sent"]["ProduceRequest"] > 0 and "ProduceResponse" not in s["messages_sent"]


def test_round_trips_are_counted_and_follow_batching():
    """messages_sent counts requests on the wire: doubling batch.size at the same rate halves batches
    but not produce requests or follower fetches (round trips are bounded by RTT and max.in.flight)."""
    over = {"producers.0.instances": 2, "topics.0.partitions": 3, "duration": "6s", "settle": "2s",
            "faults": []}
    small = _run("leader-crash-acks1.yaml", 0, **over, **{"producers.0.batch.size": "4KiB"}).summary
    big = _run("leader-crash-acks1.yaml", 0, **over, **{"producers.0.batch.size": "8KiB"}).summary
    for s in (small, big):
        m = s["messages_sent"]
        # one response per request when nothing fails (fetches still parked at the end are unanswered)
        assert m["ProduceResponse"] == m["ProduceRequest"]
        assert 0.99 * m["FetchRequest"] <= m["FetchResponse"] <= m["FetchRequest"]
        assert m["ProduceRequest"] <= s["batches"]  # a request carries one batch or more
    assert big["batches"] < 0.6 * small["batches"]
    assert big["messages_sent"]["ProduceRequest"] < small["messages_sent"]["ProduceRequest"]


def _expired_in_flight(recorder, end_ms: float) -> pd.DataFrame:
    """Batches whose last attempt was on the wire, unanswered, when delivery.timeout.ms ended them
    (not acknowledged, no error after the last send, ended before the run did)."""
    sent = pd.DataFrame(recorder.arrays("batch_sent")).groupby("batch_id")["time_ms"].max()
    err = pd.DataFrame(recorder.arrays("produce_error")).groupby("batch_id")["time_ms"].max()
    done = pd.DataFrame(recorder.arrays("batch_done")).set_index("batch_id")
    done["last_sent"], done["last_error"] = sent, err
    unanswered = done["last_sent"].notna() & ~(done["last_error"] >= done["last_sent"])
    return done[unanswered & (done["outcome"] != OUTCOMES.index("acked")) & (done["time_ms"] < end_ms)]


@pytest.mark.parametrize("request_timeout_ms, delivery_timeout_ms", [
    (30_000, 31_000),
    # Known open defect, found 2026-12-08 after the workload stream changed this run's arrivals: the
    # idempotent producer duplicates 151 records after its batches expire (Kafka's TransactionManager
    # bumps the epoch only once the partition's in-flight batches are resolved, so it never does).
    # strict: the day it is fixed this fails, and the mark goes.
    pytest.param(3_000, 4_000, marks=pytest.mark.xfail(strict=True, reason="open defect: 151 duplicates after "
                                                                          "expiry with a 3 s request timeout"))])
def test_idempotent_producer_recovers_after_a_batch_expires(request_timeout_ms, delivery_timeout_ms):
    """KIP-360: a batch that expires leaves a hole in the sequence; the producer bumps its epoch
    and resets sequences, so writes succeed again once the cluster is healthy. A batch that
    expires while its request is on the wire may have been appended: its fate is unknown, never
    a definite failure (with 3 s request timeouts, requests hang until the dead ISR members are
    fenced, and batches queued behind them expire in flight)."""
    from unittest import mock

    import sim.runs.runner

    over = {"producers.0.rate": "2000/s", "producers.0.request.timeout.ms": request_timeout_ms,
            "producers.0.delivery.timeout.ms": delivery_timeout_ms, "duration": "90s", "settle": "10s",
            "faults": [{"kind": "crash", "broker": 1, "at": "10s", "restart_after": "40s"},
                       {"kind": "crash", "broker": 2, "at": "10s", "restart_after": "40s"}]}
    facts = {}
    check_invariants = sim.runs.runner.check_invariants_by_rule

    def keep_facts(recorder):
        facts["recorder"] = recorder
        return check_invariants(recorder)

    with mock.patch.object(sim.runs.runner, "check_invariants_by_rule", keep_facts):
        r = sim.run(SCEN / "quickstart.yaml", seed=1, overrides=over)
    b = r.batches
    assert (b.outcome != "acked").any()  # min.insync 2 with two brokers down: some batches expired
    late = b[b.first_arrival_ms > 60_000]  # written once the ISR is whole again
    assert len(late) > 0 and (late.outcome == "acked").all()
    assert r.summary["acked_lost"] == 0 and r.summary["duplicates"] == 0
    assert r.summary["invariant_violations"] == 0
    in_flight = _expired_in_flight(facts["recorder"], 100_000)
    assert (in_flight["outcome"] == OUTCOMES.index("unknown")).all(), in_flight  # not "failed"
    if request_timeout_ms < 10_000:
        assert len(in_flight) >= 5


def test_only_a_sent_idempotent_batch_that_fails_starts_a_new_epoch():
    """RecordAccumulator.drain gives a batch its producer id and sequence when it is first sent, so
    a batch that expires in the accumulator leaves no hole and needs no new epoch (KIP-360)."""
    from sim.runs.runner import simulate

    # a 1 KiB-batch backlog behind max.in.flight=1 that delivery.timeout.ms keeps expiring
    over = ["duration=2s", "settle=1s", "faults=[]", "producers.0.instances=1", "producers.0.rate=20000/s",
            "producers.0.acks=all", "producers.0.max.in.flight.requests.per.connection=1",
            "producers.0.linger.ms=0", "producers.0.batch.size=1KiB", "producers.0.request.timeout.ms=500",
            "producers.0.delivery.timeout.ms=520", "network.bandwidth=50MB/s"]
    sc = sim.load_scenario(SCEN / "quickstart.yaml", overrides=over)
    cluster, rec, _ = simulate(sc, seed=1)
    done, sent = rec.arrays("batch_done"), set(rec.arrays("batch_sent")["batch_id"].tolist())
    failed = done["batch_id"][done["outcome"] != 0].tolist()
    unsent = [b for b in failed if b not in sent]
    assert len(unsent) > 100  # expired before their first send (full 1 KiB batches: a batch stays open until drained)
    assert cluster.producers[0].epoch <= len(failed) - len(unsent)  # at most one per failed sent batch


@pytest.mark.parametrize("partitioner", ["sticky", "round-robin"])
def test_sticky_partitioner_fills_one_partition_at_a_time(partitioner):
    """KIP-480: unkeyed records stick to one partition for a batch's worth, so batches of different
    partitions never overlap in time and are larger than round-robin's at the same rate."""
    over = {"faults": [], "consumers": [], "duration": "3s", "settle": "1s", "topics.0.partitions": 6,
            "producers.0.instances": 1,
            "producers.0.rate": "20000/s", "producers.0.partitioner": partitioner, "producers.0.acks": 1}
    b = sim.run(SCEN / "leader-crash-acks1.yaml", seed=4, overrides=over).batches.sort_values("first_arrival_ms")
    first, last = b["first_arrival_ms"].to_numpy(), b["last_arrival_ms"].to_numpy()
    overlapping = int((first[1:] < last[:-1]).sum())
    mean_records = b["record_count"].mean()
    if partitioner == "sticky":
        assert overlapping == 0
        assert mean_records > 60  # linger.ms (5 ms at 20,000 records/s: about 100) closes most batches
    else:
        assert overlapping > len(b) / 2
        assert mean_records < 25  # each of 6 partitions gets a sixth of the records per linger.ms


def test_a_broker_still_down_at_the_end_leaves_its_partitions_under_replicated():
    """summary.under_replicated_partitions_at_end counts the partitions whose ISR is still short."""
    # back only after the run: faults heal at `duration`, and a restarted broker registers, catches
    # up and rejoins every ISR within a second, so no settle period at all
    over = {"duration": "30s", "settle": "0s", "faults.0.restart_after": "100s"}
    r = sim.run(SCEN / "quickstart.yaml", seed=0, overrides=over)
    assert r.scenario.cluster.brokers == 3 and all(t.replication_factor == 3 for t in r.scenario.topics)
    # RF 3 on 3 brokers: the broker still down holds a replica of every partition
    assert r.summary["under_replicated_partitions_at_end"] == sum(t.partitions for t in r.scenario.topics)
    healed = sim.run(SCEN / "quickstart.yaml", seed=0, overrides={"duration": "30s", "settle": "15s"})  # healed at 30 s
    assert healed.summary["under_replicated_partitions_at_end"] == 0
