"""Client faults (issue 13, kind 10): producer crash, consumer crash and pause with consumer groups.

Each test asserts the fault's measured effect: what the checker, the group's events and the
redelivery count show, not that a method was called.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import sim
from sim.model.group import assign
from sim.scenario.schema import ScenarioError, load_scenario

ROOT = Path(__file__).resolve().parent.parent
FAULTS = ROOT / "scenarios/faults"


def _kinds(r, *kinds):
    return r.events[r.events.kind.isin(kinds)]


# --- producer crash --------------------------------------------------------------------------------
def test_a_producer_crash_leaves_its_pending_records_unknown_loses_nothing_acked_and_restarts_with_a_new_id():
    box = {}
    r = sim.run(FAULTS / "producer-crash.yaml", prepare=lambda c: box.setdefault("cluster", c))
    s = r.summary
    crash, restart = _kinds(r, "producer_crash"), _kinds(r, "producer_restart")
    assert crash.time_ms.tolist() == [20_000.0] and restart.time_ms.tolist() == [25_000.0]
    assert _kinds(r, "fault_start").fault.tolist() == ["producer_crash"]
    assert _kinds(r, "fault_end").target.tolist() == ["producer producer-0"]
    # its in-flight and queued batches end unknown, and only those: every other batch has its answer
    b = r.batches
    unknown = b[b.outcome == "unknown"]
    assert s["records_unknown"] > 0 and len(unknown) == len(b[b.outcome != "acked"])
    assert unknown.first_arrival_ms.max() <= 20_000.0 and unknown.first_arrival_ms.min() > 20_000.0 - 1000.0
    assert s["acked_lost"] == 0 and s["records_lost"] == 0 and s["invariant_violations"] == 0
    # while it is down nothing is produced; afterwards it produces again at its rate
    assert not ((b.first_arrival_ms > 20_000.0) & (b.first_arrival_ms < 25_000.0)).any()
    after = b[b.first_arrival_ms >= 25_000.0]
    assert after.record_count.sum() == pytest.approx(5000 * 15, rel=0.05)
    assert (after.outcome == "acked").all()
    # a new producer id (InitProducerId) whose sequences start at 0 in every partition's log
    old_pid, new_pid = int(crash.value.iloc[0]), int(restart.value.iloc[0])
    assert old_pid == 1000 and new_pid != old_pid
    cluster = box["cluster"]
    for spec in cluster.partitions:
        log = cluster.brokers[cluster.controller.state[spec.index].leader].logs[spec.index]
        pids, seqs = np.asarray(log.pid), np.asarray(log.seq)
        assert set(pids.tolist()) == {old_pid, new_pid}
        assert seqs[pids == new_pid][0] == 0 and np.all(np.diff(seqs[pids == new_pid]) == 1)
        assert np.all(np.diff(np.nonzero(pids == new_pid)[0]) == 1) and pids[-1] == new_pid


# --- consumer groups: the assignors ------------------------------------------------------------------
def test_range_and_roundrobin_assignors_follow_kafkas_and_cooperative_sticky_keeps_owned_partitions():
    members = {"b": (), "a": (), "c": ()}
    assert assign("range", members, list(range(7))) == {"a": [0, 1, 2], "b": [3, 4], "c": [5, 6]}
    assert assign("roundrobin", members, list(range(7))) == {"a": [0, 3, 6], "b": [1, 4], "c": [2, 5]}
    # c leaves: a and b keep what they owned and share c's partitions
    owned = {"a": (0, 1), "b": (2, 3)}
    sticky = assign("cooperative-sticky", owned, list(range(6)))
    assert set(owned["a"]) <= set(sticky["a"]) and set(owned["b"]) <= set(sticky["b"])
    assert sorted(sticky["a"] + sticky["b"]) == list(range(6)) and len(sticky["a"]) == len(sticky["b"]) == 3


# --- consumer crash ----------------------------------------------------------------------------------
def _group_run(path: Path, **overrides):
    r = sim.run(path, overrides=overrides or None)
    assert r.summary["invariant_violations"] == 0, r.summary["invariant_examples"]
    return r


def test_a_consumer_crash_rebalances_after_the_session_timeout_and_redelivers_at_most_a_commit_interval():
    r = _group_run(FAULTS / "consumer-crash.yaml")
    s, sc = r.summary, r.scenario
    c = sc.consumers[0]
    rate = sc.producers[0].rate / 1000.0  # records per ms
    removed = _kinds(r, "group_member_removed")
    # the coordinator removes the silent member session.timeout.ms after its last heartbeat
    assert removed.reason.tolist() == ["session timeout"] and removed.client.tolist() == ["readers-1"]
    delay = removed.time_ms.iloc[0] - 20_000.0
    assert c.session_timeout_ms - c.heartbeat_interval_ms <= delay <= c.session_timeout_ms + 5
    rebalances = _kinds(r, "group_rebalance")
    assert (rebalances.time_ms == removed.time_ms.iloc[0]).sum() == 1
    stable = _kinds(r, "group_stable")
    after = stable[stable.time_ms > removed.time_ms.iloc[0]]
    assert len(after) >= 1 and "readers-1" not in after.detail.iloc[0]
    # at-least-once: the crashed member's records since its last commit are delivered again, and no more
    redelivered = s["records_redelivered"]
    assert 0 < redelivered <= c.auto_commit_interval_ms * rate
    # ... they are on the crashed member's partitions, received again by the survivors
    con_parts = set(r.events.query("kind == 'consumer_assigned' and client == 'readers-1'").detail.iloc[0]
                    .split(": ")[1].strip("[]").split(", "))
    b = r.batches
    twice = b[b.times_consumed > 1]
    assert {str(p).rsplit("-", 1)[1] for p in twice.partition} <= con_parts
    assert s["records_consumed"] == s["records_produced"] and s["acked_lost"] == 0
    # the lag piles up while the crashed member's partitions wait, and drains after the rebalance
    ts = r.timeseries
    assert ts.consumer_lag.max() == s["consumer_lag_max"] > 0.5 * 40 * rate * 1000 / 3
    assert ts.consumer_lag.iloc[-1] < 100


def test_redelivery_after_a_consumer_crash_scales_with_the_auto_commit_interval():
    run = lambda ms: _group_run(FAULTS / "consumer-crash.yaml",  # noqa: E731
                                **{"consumers.0.auto.commit.interval.ms": ms, "duration": "70s"})
    short, long = run(1000), run(10_000)
    rate = short.scenario.producers[0].rate / 1000.0
    assert 0 < short.summary["records_redelivered"] <= 1000 * rate
    assert 0 < long.summary["records_redelivered"] <= 10_000 * rate
    assert long.summary["records_redelivered"] > short.summary["records_redelivered"]


# --- consumer pause ----------------------------------------------------------------------------------
def test_a_consumer_pause_shorter_than_the_session_timeout_causes_no_rebalance_and_no_redelivery():
    r = _group_run(FAULTS / "consumer-pause.yaml", **{"faults.0.duration": "30s"})
    assert _kinds(r, "fault_start").fault.tolist() == ["consumer_pause"]
    assert _kinds(r, "consumer_pause").time_ms.tolist() == [20_000.0]
    assert _kinds(r, "consumer_resume").time_ms.tolist() == [50_000.0]
    assert len(_kinds(r, "group_rebalance")) == 1  # the initial join only
    assert _kinds(r, "group_member_removed").empty and _kinds(r, "offset_commit_rejected").empty
    assert r.summary["records_redelivered"] == 0
    # it was frozen: it received nothing during the pause, then caught up
    con = r.events  # consumption of readers-1 is in the batches' times; check its commits stopped instead
    commits = con[(con.kind == "offset_commit") & (con.client == "readers-1")].time_ms
    assert not ((commits > 20_000.0) & (commits < 50_000.0)).any() and (commits >= 50_000.0).any()


def test_overlapping_pauses_of_one_consumer_freeze_it_until_the_later_end_and_each_ends_itself():
    faults = [{"kind": "consumer_pause", "consumer": "readers-1", "at": "20s", "duration": "10s"},
              {"kind": "consumer_pause", "consumer": "readers-1", "at": "25s", "duration": "10s"}]
    r = _group_run(FAULTS / "consumer-pause.yaml", faults=faults, duration="50s")
    assert _kinds(r, "fault_start").time_ms.tolist() == [20_000.0, 25_000.0]
    ends = _kinds(r, "fault_end")
    assert ends.time_ms.tolist() == [30_000.0, 35_000.0] and ends.fault_index.tolist() == [0, 1]
    # one freeze, 20-35 s: frozen once, running again when the later pause ends
    assert _kinds(r, "consumer_pause").time_ms.tolist() == [20_000.0]
    assert _kinds(r, "consumer_resume").time_ms.tolist() == [35_000.0]
    commits = r.events[(r.events.kind == "offset_commit") & (r.events.client == "readers-1")].time_ms
    assert not ((commits > 20_000.0) & (commits < 35_000.0)).any() and (commits >= 35_000.0).any()


def test_a_consumer_crash_during_its_pause_is_still_restarted_at_the_heal():
    # the pause (20-30 s) ends after the crash (25 s, left to the heal): the crash is still the consumer's fault
    faults = [{"kind": "consumer_pause", "consumer": "readers-1", "at": "20s", "duration": "10s"},
              {"kind": "consumer_crash", "consumer": "readers-1", "at": "25s"}]
    r = _group_run(FAULTS / "consumer-pause.yaml", faults=faults, duration="50s")
    ends = _kinds(r, "fault_end")
    assert ends.fault.tolist() == ["consumer_pause", "consumer_crash"] and ends.time_ms.tolist() == [30_000.0, 50_000.0]
    assert _kinds(r, "consumer_restart").time_ms.tolist() == [50_000.0]
    assert _kinds(r, "consumer_resume").empty  # the process it froze died: nothing resumed


def test_a_consumer_pause_past_the_session_timeout_rebalances_redelivers_and_fences_the_zombie():
    box = {}
    r = sim.run(FAULTS / "consumer-pause.yaml", prepare=lambda c: box.setdefault("cluster", c))  # 60 s from 20 s
    assert r.summary["invariant_violations"] == 0
    c = r.scenario.consumers[0]
    removed = _kinds(r, "group_member_removed")
    assert removed.client.tolist() == ["readers-1"] and removed.reason.tolist() == ["session timeout"]
    delay = removed.time_ms.iloc[0] - 20_000.0
    assert c.session_timeout_ms - c.heartbeat_interval_ms <= delay <= c.session_timeout_ms + 5
    rate = r.scenario.producers[0].rate / 1000.0
    assert 0 < r.summary["records_redelivered"] <= c.auto_commit_interval_ms * rate
    # the zombie hands out nothing from the pause until it has rejoined and has a new assignment
    con = box["cluster"].recorder.arrays("consumed")
    mine = con["time_ms"][con["consumer"] == 1]
    assigned = r.events.query("kind == 'consumer_assigned' and client == 'readers-1'").time_ms
    assert not ((mine > 20_000.0) & (mine < assigned[assigned > 80_000.0].min())).any()
    # the resumed member's commits carry its old generation: rejected, so the committed offsets never
    # jump past what the survivors consumed
    rejected = _kinds(r, "offset_commit_rejected")
    assert len(rejected) >= 1 and (rejected.time_ms >= 80_000.0).all() and (rejected.client == "readers-1").all()
    lost = _kinds(r, "consumer_partitions_lost")
    assert lost.client.tolist() == ["readers-1"] and lost.time_ms.iloc[0] - 80_000.0 < 100.0
    # it rejoins as a new member and the group ends with all three
    stable = _kinds(r, "group_stable")
    assert stable.time_ms.iloc[-1] > 80_000.0 and stable.detail.iloc[-1].count("readers-") == 3
    assert r.summary["records_consumed"] == r.summary["records_produced"]


def test_without_groups_consumers_have_no_coordinator_and_the_summary_no_group_metrics():
    r = sim.run(ROOT / "scenarios/quickstart.yaml", overrides={"duration": "25s", "settle": "2s"})
    assert "records_redelivered" not in r.summary and "consumer_lag" not in r.timeseries
    assert _kinds(r, "group_rebalance").empty and "JoinGroup" not in r.summary["messages_sent"]


def test_a_consumer_crash_without_group_protocol_resumes_from_the_committed_offset_on_restart():
    r = sim.run(ROOT / "scenarios/quickstart.yaml", overrides={
        "duration": "30s", "settle": "5s", "consumers.0.auto.offset.reset": "earliest",
        "faults": [{"kind": "consumer_crash", "consumer": "readers-0", "at": "12s", "restart_after": "3s"}]})
    s = r.summary
    assert _kinds(r, "consumer_crash").time_ms.tolist() == [12_000.0]
    assert _kinds(r, "consumer_restart").time_ms.tolist() == [15_000.0]
    assert 0 < s["records_redelivered"] <= 5000 * 20_000 / 1000.0
    assert _kinds(r, "group_rebalance").empty


# --- the scenario file ---------------------------------------------------------------------------------
@pytest.mark.parametrize("override, message", [
    ("faults.0.consumer=nobody", "faults.0.consumer: no consumer instance 'nobody' (allowed: readers-0"),
    ("faults=[{kind: consumer_crash, producer: producer-0, at: 1s}]",
     "faults.0: a consumer_crash fault targets a consumer instance"),
    ("faults=[{kind: producer_crash, producer: p9, at: 1s}]", "faults.0.producer: no producer instance 'p9'"),
    ("faults=[{kind: consumer_pause, consumer: readers-0, at: 1s}]", "faults.0.duration: Field required"),
    ("faults=[{kind: consumer_crash, at: 1s}]", "faults.0: a consumer_crash fault needs 'consumer'"),
    ("consumers.0.partition.assignment.strategy=sticky",
     "consumers.0.partition.assignment.strategy: must be one of 'range', 'roundrobin' or 'cooperative-sticky'"),
    ("consumers.0.group.protocol=consumer", "consumers.0.group.protocol: must be one of 'none' or 'classic'"),
    ("consumers.0.heartbeat.interval.ms=50000", "consumers.0: heartbeat.interval.ms must be lower than"),
])
def test_client_fault_errors_are_one_line_naming_the_field(override, message):
    with pytest.raises(ScenarioError) as e:
        load_scenario(FAULTS / "consumer-crash.yaml", [override])
    assert str(e.value).startswith(message) and "\n" not in str(e.value), str(e.value)


def test_client_faults_from_the_python_api_and_the_cli(tmp_path):
    from typer.testing import CliRunner

    from sim.cli.app import app
    from sim.scenario.faults import ConsumerPauseFault, ProducerCrashFault

    sc = load_scenario(FAULTS / "producer-crash.yaml")
    assert isinstance(sc.faults[0], ProducerCrashFault) and sc.faults[0].target == "producer producer-0"
    pause = load_scenario(FAULTS / "consumer-pause.yaml").faults[0]
    assert isinstance(pause, ConsumerPauseFault) and pause.heal_after == 60_000.0
    res = CliRunner().invoke(app, ["validate", str(FAULTS / "consumer-pause.yaml"), "--set", "faults.0.consumer=x"])
    assert res.exit_code == 2 and "faults.0.consumer: no consumer instance 'x'" in res.output


# --- consumers after log truncation (KIP-320; issue 21, defect 4) -----------------------------------
UNCLEAN_CRASHES = [{"kind": "crash", "broker": 1, "at": "10s", "restart_after": "30s"},
                   {"kind": "crash", "broker": 0, "at": "25s", "restart_after": "25s"}]


def _reread_and_skipped(res) -> tuple[int, int]:
    """Records the consumer received more than once, and committed records it never received."""
    b = res.batches
    reread = int((b["record_count"] * np.maximum(b["times_consumed"] - 1, 0)).sum())
    skipped = int(b.loc[(b["copies_in_log"] > 0) & (b["times_consumed"] == 0), "record_count"].sum())
    return reread, skipped


@pytest.mark.parametrize("overrides", [
    {},  # the bundled scenario: auto.offset.reset earliest (re-read about 10,000 records from offset 0)
    {"consumers.0.auto.offset.reset": "latest"},
    # paused across the election, the consumer comes back when the new leader's log has grown past its
    # position again: without validation it went on from there and skipped 14,949 committed records
    {"consumers.0.auto.offset.reset": "latest",
     "faults": [*UNCLEAN_CRASHES, {"kind": "consumer_pause", "consumer": "readers-0", "at": "39s", "duration": "3s"}]},
    # restarted from its committed offset (committed with its leader epoch): validated the same way
    {"faults": [*UNCLEAN_CRASHES, {"kind": "consumer_crash", "consumer": "readers-0", "at": "30s", "restart_after": "15s"}]},
], ids=["earliest", "latest", "latest-paused", "restart-from-commit"])
def test_a_consumer_goes_on_from_the_divergence_point_after_an_unclean_election(overrides):
    res = sim.run(FAULTS / "unclean-consumer.yaml", seed=1, overrides=overrides)
    assert res.summary["unclean_elections"] == 1 and res.summary["acked_lost"] > 10_000  # records really lost
    reread, skipped = _reread_and_skipped(res)
    assert (reread, skipped) == (0, 0)
    ev = res.events
    assert ev[ev["kind"] == "consumer_offset_reset"].empty  # auto.offset.reset never applied
    (hit,) = ev[ev["kind"] == "consumer_truncation_detected"].itertuples()
    # the divergence point is the end offset of the consumer's epoch on the new leader (KIP-320
    # OffsetsForLeaderEpoch), below the position it had reached in the lost history
    assert hit.value == hit.end_offset and 0 < hit.value < hit.from_offset
    assert hit.value == res.batches.query("partition == 'events-0' and copies_in_log > 0").pipe(
        lambda b: int((b.offset + b.record_count)[b.offset < hit.value].max()))
