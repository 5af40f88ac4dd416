"""Operator actions as faults (sim/model/operator.py): rolling restart, preferred leader election,
partition reassignment with a KIP-73 throttle, adding and removing a broker.

Each bundled scenario in scenarios/faults/ asks a question in its description; the tests here assert
the measured answer, and the mechanism each action follows in Kafka's controller."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import sim
from analysis import load_run
from analysis.describe import describe
from sim.cli.app import app
from sim.model.operator import ReplicationQuota
from sim.scenario.schema import ScenarioError, load_scenario

ROOT = Path(__file__).resolve().parents[1]
FAULTS = ROOT / "scenarios/faults"


def _events(res, *kinds: str) -> pd.DataFrame:
    return res.events[res.events["kind"].isin(kinds)]


def _bundled(name: str, **overrides):
    sc = load_scenario(FAULTS / f"{name}.yaml", overrides or None)
    assert sc.description.strip().endswith("?") or "?" in sc.description  # it asks the question it answers
    res = sim.run(sc)
    assert res.summary.invariant_violations == 0, res.summary.invariant_examples
    return res


def _lost_acked(res) -> pd.DataFrame:
    b = res.batches
    return b[(b["outcome"] == "acked") & (b["copies_in_log"] == 0)]


def _final_replicas(res) -> dict[str, tuple]:
    """Each partition's replica set at the end: the initial assignment (isr at time 0), then replicas_change."""
    ev = res.events.sort_values("time_ms", kind="stable")
    first = ev[(ev["kind"] == "isr_change") & (ev["time_ms"] == 0)]
    out = {p: tuple(isr) for p, isr in zip(first["partition"], first["isr"])}
    for p, reps in zip(*(ev[ev["kind"] == "replicas_change"][c] for c in ("partition", "isr"))):
        out[p] = tuple(reps)
    return out


def _leaders_at(res, t_ms: float) -> dict[str, int]:
    ev = res.events
    lead = ev[ev["kind"].isin(["leader_elected", "partition_offline"]) & (ev["time_ms"] <= t_ms)]
    return lead.sort_values("time_ms", kind="stable").groupby("partition")["broker"].last().to_dict()


# --- rolling restart ---------------------------------------------------------------------------------------
def test_rolling_restart_under_acks_all_rf3_min_isr_2_loses_nothing_and_waits_for_a_full_isr():
    res = _bundled("rolling-restart")
    s = res.summary
    assert s.acked_lost == 0 and s.records_lost == 0 and s.records_failed == 0
    assert s.under_replicated_partitions_at_end == 0
    starts = _events(res, "fault_start")
    assert starts["fault"].eq("rolling_restart").all() and starts["broker"].tolist() == [0, 1, 2]
    steps = _events(res, "operator_step")
    healthy = steps[steps["reason"] == "no under-replicated partition"]["time_ms"].tolist()
    assert steps["reason"].iloc[-1] == "done" and len(healthy) == 4  # before each broker, and after the last
    # each broker is stopped at the very check that found no partition under-replicated ...
    assert starts["time_ms"].tolist() == healthy[:3]
    # ... and that is true of the controller's committed ISRs then: every partition has all 3 replicas
    isr = _events(res, "isr_change").sort_values("time_ms", kind="stable")
    for t in starts["time_ms"]:
        sizes = isr[isr["time_ms"] <= t].groupby("partition")["value"].last()
        assert (sizes == 3).all(), (t, sizes.to_dict())
    # every leadership the stopped broker held moved before it stopped (a controlled shutdown, not a crash)
    moved = _events(res, "leader_elected")
    assert set(moved[moved["time_ms"] > 0]["reason"]) == {"controlled_shutdown"}
    assert s.failovers and all(f["unavailable_ms"] < 1_000 for f in s.failovers), s.failovers


def test_rolling_restart_under_acks_1_loses_what_the_old_leader_acknowledged_after_the_move():
    """What it measures: with acks=1 each controlled shutdown loses the writes its broker acknowledged as
    leader between the controller's move and the old leader learning it (the move is committed one
    controller.quorum.append.linger.ms later); the new leader never had them and the old one truncates them."""
    res = _bundled("rolling-restart-acks1")
    s = res.summary
    assert s.acked_lost > 0 and s.records_failed == 0
    lost = _lost_acked(res)
    steps = _events(res, "fault_start")["time_ms"].to_numpy()
    # every lost batch was acknowledged within 50 ms after a broker's SIGTERM, on a partition it led
    assert all(((steps <= t) & (t < steps + 50)).any() for t in lost["acked_ms"]), lost
    moved = _events(res, "leader_elected")
    assert set(lost["partition"]) <= set(moved[moved["reason"] == "controlled_shutdown"]["partition"])
    trunc = _events(res, "truncation")
    assert set(lost["partition"]) <= set(trunc[trunc["removed"] > 0]["partition"])


def test_a_rolling_restart_stops_at_max_wait_while_a_partition_stays_under_replicated():
    """Broker 2 crashed and is not back: the roll waits max_wait for a full ISR and stops without touching a
    broker (the check an operator's script makes; stopping broker 0 now would leave one replica)."""
    res = sim.run(FAULTS / "rolling-restart.yaml", overrides={
        "duration": "30s", "settle": "5s",
        "faults": [{"kind": "crash", "broker": 2, "at": "500ms"},
                   {"kind": "rolling_restart", "brokers": [0, 1], "at": "12s", "max_wait": "10s"}]})
    starts = _events(res, "fault_start")
    assert starts["fault"].tolist() == ["crash"]  # no rolling-restart step ran
    (stop,) = _events(res, "operator_step").itertuples()
    assert stop.reason == "max_wait passed: the roll stops" and stop.time_ms == 22_000 and stop.value == 6
    assert res.summary.acked_lost == 0


# --- preferred leader election -------------------------------------------------------------------------
def test_a_preferred_leader_election_moves_every_partition_back_to_its_first_replica():
    res = _bundled("preferred-leader-election")
    s = res.summary
    assert s.acked_lost == 0 and s.records_failed == 0
    preferred = {p: reps[0] for p, reps in _final_replicas(res).items()}
    before, after = _leaders_at(res, 24_999), _leaders_at(res, 25_100)
    assert before != preferred  # the rolling restart left leadership elsewhere
    assert after == preferred
    results = _events(res, "leader_election_result")
    moved = {p for p in preferred if before[p] != preferred[p]}
    assert set(results[results["reason"] == "NONE"]["partition"]) == moved
    assert set(results[results["reason"] == "ELECTION_NOT_NEEDED"]["partition"]) == set(preferred) - moved
    elected = _events(res, "leader_elected")
    assert set(elected[elected["time_ms"] >= 25_000]["reason"]) == {"preferred"}
    assert s.failovers is not None  # an election is not a failure: no fault took a broker down at 25 s
    lane = _events(res, "fault_start", "fault_end")
    lane = lane[lane["fault"] == "leader_election"]
    assert lane["kind"].tolist() == ["fault_start", "fault_end"] and lane["broker"].eq(-1).all()


def test_a_preferred_election_leaves_a_partition_whose_preferred_replica_is_down():
    res = sim.run(FAULTS / "preferred-leader-election.yaml", overrides={
        "duration": "25s", "settle": "5s",
        "faults": [{"kind": "crash", "broker": 0, "at": "1s"},
                   {"kind": "leader_election", "at": "20s"}]})
    results = _events(res, "leader_election_result")
    first = {p: reps[0] for p, reps in _final_replicas(res).items()}
    on_0 = {p for p, b in first.items() if b == 0}
    assert on_0 and set(results[results["reason"] == "PREFERRED_LEADER_NOT_AVAILABLE"]["partition"]) == on_0
    assert all(_leaders_at(res, 21_000)[p] != 0 for p in on_0)


# --- reassignment -------------------------------------------------------------------------------------------
def _reassignment_ms(res, partition: str) -> tuple[float, float]:
    ch = _events(res, "replicas_change")
    ch = ch[ch["partition"] == partition]
    return float(ch["time_ms"].iloc[0]), float(ch[ch["reason"] == "reassignment_complete"]["time_ms"].iloc[0])


def test_a_throttled_reassignment_copies_at_about_the_throttle_and_loses_nothing():
    res = _bundled("reassign-throttled")
    s = res.summary
    assert s.acked_lost == 0 and s.records_failed == 0 and s.under_replicated_partitions_at_end == 0
    assert _final_replicas(res)["events-0"] == (3, 1, 2)
    started, done = _reassignment_ms(res, "events-0")
    assert started == 30_000
    # the replica removed is deleted on its broker; the new one was created empty on broker 3
    created = _events(res, "replica_created")
    assert created[["broker", "partition"]].values.tolist() == [[3, "events-0"]]
    (deleted,) = _events(res, "replica_deleted").itertuples()
    assert deleted.partition == "events-0" and deleted.broker not in (3, 1, 2) and deleted.time_ms >= done
    # what the new replica copied: the log at the start (1 KB records) and what arrived meanwhile. The leader
    # records every byte of the partition it sends (the two in-sync followers' too) against the 10 MB/s quota
    # (KIP-73), so the copy runs at about 10 MB/s less 2 x the partition's write rate
    b = res.batches
    p0 = b[b["partition"] == "events-0"]
    log_mb = p0[p0["first_arrival_ms"] < started]["record_count"].sum() * 1_000 / 1e6
    write_mb_s = p0[(p0["first_arrival_ms"] >= started)]["record_count"].sum() * 1_000 / 1e6 / (60 - 30)
    copy_s = (done - started) / 1000
    expected = log_mb / (10 - 3 * write_mb_s)  # catch up the log, while it grows, at what the quota leaves
    assert 0.7 * expected < copy_s < 1.3 * expected, (copy_s, expected, log_mb, write_mb_s)
    # unthrottled, the same move takes a few fetch rounds
    fast = sim.run(FAULTS / "reassign-throttled.yaml", overrides={"faults.1.throttle": None})
    f_started, f_done = _reassignment_ms(fast, "events-0")
    assert (f_done - f_started) / 1000 < copy_s / 10 and fast.summary.acked_lost == 0
    # the fault lane shows the reassignment from its request to its completion (kafka-reassign-partitions --verify)
    lane = _events(res, "fault_start", "fault_end")
    lane = lane[lane["fault"] == "reassign_partitions"]
    assert lane["time_ms"].iloc[0] == started and done <= lane["time_ms"].iloc[1] <= done + 100


def test_the_replication_quota_is_kafkas_simple_rate_over_eleven_one_second_windows():
    q = ReplicationQuota(1_000_000)  # 1 MB/s
    assert not q.exceeded(0.0)
    q.record(0.0, 2_000_000)  # 2 MB at once: over one window (the least SimpleRate divides by), 2 MB/s
    assert q.exceeded(0.0) and q.exceeded(1_999.0)
    assert not q.exceeded(2_000.0)  # 2 MB over 2 s
    q.record(2_000.0, 500_000)
    assert q.exceeded(2_000.0) and not q.exceeded(2_500.0)
    assert q.rate(11_000.0) == pytest.approx(500_000 / 9_000)  # the window begun at 0 is 11 x 1 s old: dropped
    assert q.rate(13_000.0) == 0.0


# --- adding and removing a broker ---------------------------------------------------------------------------
def test_broker_0_is_replaced_by_a_new_broker_without_losing_or_failing_a_write(tmp_path):
    res = _bundled("replace-broker")
    s = res.summary
    assert s.acked_lost == 0 and s.records_lost == 0 and s.records_failed == 0 and s.records_unknown == 0
    assert s.under_replicated_partitions_at_end == 0 and s.offline_partitions_at_end == 0
    final = _final_replicas(res)
    assert all(0 not in reps and 3 in reps for reps in final.values()), final
    # the new broker registered and was unfenced at once, hosting nothing until the reassignment
    reg = _events(res, "broker_registered", "broker_unfenced")
    assert reg[reg["broker"] == 3]["time_ms"].max() < 3_200
    assert _events(res, "replica_created")["time_ms"].min() >= 10_000
    # broker 0 was unregistered with nothing left on it and never came back (not even at the heal)
    (gone,) = _events(res, "broker_unregistered").itertuples()
    assert gone.broker == 0 and gone.value == 0 and gone.time_ms > 30_000
    assert not ((reg["broker"] == 0) & (reg["time_ms"] > 0)).any()
    assert _leaders_at(res, 1e9) == {p: reps[0] for p, reps in final.items()}
    assert s.records_consumed > 0
    # kafkasim describe shows the replica lists as they were at each moment (kafka-topics --describe)
    run = load_run(res.write(tmp_path / "run"))
    assert all(0 in r for r in describe(run, 9_000)["Replicas"])
    during = describe(run, 10_000, "under_replicated")  # broker 3 added, still copying: Isr < Replicas
    assert len(during) == 3 and all(len(r) == 4 for r in during["Replicas"])
    end = describe(run)
    assert [tuple(r) for r in end["Replicas"]] == [final[f"events-{i}"] for i in range(3)]


# --- input errors --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fault, message", [
    ({"kind": "add_broker", "at": "1s", "broker.id": 5},
     "faults.0.broker.id: 5 is not the next broker id at 1s (allowed: 3)"),
    ({"kind": "remove_broker", "at": "1s", "broker.id": 3}, "faults.0.broker.id: no broker 3 at 1s (allowed: 0..2)"),
    ({"kind": "rolling_restart", "at": "1s", "broker": 1}, "broker: a rolling_restart does not take it (allowed: brokers)"),
    ({"kind": "reassign_partitions", "at": "1s", "reassignments": [{"partition": "events-9", "replicas": [0, 1, 2]}]},
     "faults.0.reassignments.0.partition: 'events-9' is not a topic-partition"),
    ({"kind": "reassign_partitions", "at": "1s", "reassignments": [{"partition": "events-0", "replicas": [0, 1, 3]}]},
     "faults.0.reassignments.0.replicas: no broker 3 at 1s (allowed: 0..2)"),
    ({"kind": "reassign_partitions", "at": "1s", "reassignments": [{"partition": "events-0", "replicas": [0, 1]}]},
     "replication.factor is 3"),
    ({"kind": "leader_election", "at": "1s", "partitions": ["nope-0"]},
     "faults.0.partitions: 'nope-0' is not a topic-partition"),
])
def test_operator_action_errors_are_one_line(fault, message):
    with pytest.raises(ScenarioError) as e:
        load_scenario(FAULTS / "rolling-restart.yaml", {"faults": [fault]})
    assert message in str(e.value) and "\n" not in str(e.value)


def test_a_bad_operator_action_on_the_command_line_exits_2_with_one_line(tmp_path):
    r = CliRunner().invoke(app, ["validate", str(FAULTS / "replace-broker.yaml"), "--set", "faults.0.broker.id=4"])
    assert r.exit_code == 2, r.output
    assert "faults.0.broker.id: 4 is not the next broker id" in r.output and "Traceback" not in r.output


def test_a_crashed_broker_that_is_removed_stays_down_when_the_faults_heal():
    clusters = []
    res = sim.run(FAULTS / "rolling-restart.yaml", prepare=clusters.append, overrides={
        "duration": "10s", "settle": "5s",
        "faults": [{"kind": "crash", "broker": 0, "at": "1s"}, {"kind": "remove_broker", "broker.id": 0, "at": "3s"}]})
    assert not clusters[0].brokers[0].alive  # the crash's end at the heal restarts nothing
    assert _events(res, "broker_unregistered")["broker"].tolist() == [0]
    reg = _events(res, "broker_registered")
    assert not ((reg["broker"] == 0) & (reg["time_ms"] > 0)).any()  # never back, not even at the heal (10 s)
    assert set(_events(res, "fault_end")["fault"]) == {"crash", "remove_broker"}
