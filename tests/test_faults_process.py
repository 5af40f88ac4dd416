"""Process faults (issue 13): pause, controlled shutdown, controller outage, and the follower_of
target. Each test asserts the fault's measured effect, not just that it ran."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import sim
from sim.scenario.schema import ScenarioError, load_scenario
from sim.scenario.faults import ControllerOutageFault, PauseFault

ROOT = Path(__file__).resolve().parents[1]
QUICK = ROOT / "scenarios/quickstart.yaml"
SESSION_MS = 9000.0  # broker.session.timeout.ms (default)


def _run(faults: list[dict], spy=None, **over):
    clusters = []

    def prepare(cluster):
        clusters.append(cluster)
        if spy is not None:
            spy(cluster)
    res = sim.run(QUICK, seed=1, overrides={"duration": "30s", "settle": "15s", "faults": faults, **over},
                  prepare=prepare)
    return res, clusters[0]


def _spy_acks(acks: list):
    """Record every successful produce answer: (time, broker, partition, offset)."""
    def spy(cluster):
        for b in cluster.brokers:
            def respond(req, results, b=b, orig=b._respond_produce):
                acks.extend((b.env.now, b.broker_id, batch.partition, off)
                            for batch, err, off in results if err == "NONE")
                orig(req, results)
            b._respond_produce = respond
    return spy


def _events(res, kind: str) -> pd.DataFrame:
    return res.events[res.events["kind"] == kind]


# --- pause -------------------------------------------------------------------------------------
@pytest.mark.parametrize("acks", ["all", "1"])
def test_a_pause_past_the_session_timeout_moves_leadership_and_the_old_leader_acks_nothing_stale(acks):
    answers: list = []
    res, cluster = _run([{"kind": "pause", "leader_of": "events-0", "at": "10s", "duration": "12s"}],
                        spy=_spy_acks(answers), **{"producers.0.acks": acks, "producers.0.enable.idempotence": False})
    old = int(_events(res, "fault_start")["broker"].iloc[0])
    fenced = _events(res, "broker_fenced")
    assert fenced["broker"].tolist() == [old] and 10_000 + SESSION_MS - 2000 <= fenced["time_ms"].iloc[0] <= 19_100
    moved = _events(res, "leader_elected")
    moved = moved[moved["time_ms"] > 0]
    assert len(moved) >= 1 and (moved["broker"] != old).all()
    elected_ms = dict(zip(moved["partition"], moved["time_ms"]))
    s = res.summary
    # appends by the old leader in its old epoch after the new leader was elected (on resume, from
    # the produce requests queued during the pause, before it learnt the new metadata)
    ap = cluster.recorder.arrays("appended")
    b = res.batches
    part_of = dict(zip(b["partition_index"], b["partition"]))
    stale = set()
    for t, broker, p, off, bid, ep, lead in zip(ap["time_ms"], ap["broker"], ap["partition"], ap["offset"],
                                                ap["batch_id"], ap["leader_epoch"], ap["as_leader"]):
        name = part_of.get(int(p))
        if lead and broker == old and ep == 0 and name in elected_ms and t > elected_ms[name]:
            stale.add((int(p), int(off)))
    # the old leader's own successful answers for those stale appends
    acked_stale = [a for a in answers if a[1] == old and (a[2], a[3]) in stale]
    assert s.invariant_violations == 0
    if acks == "all":
        # acks=all: the followers follow the new leader, so the old leader's HW cannot cover a stale
        # append: nothing is acknowledged in the old epoch, nothing acknowledged is lost
        assert len(acked_stale) == 0 and s.acked_lost == 0
    else:
        # acks=1: the classic loss: the resumed leader acks its queued requests in its old epoch,
        # and its log is truncated to the new leader's when it follows
        assert len(acked_stale) > 0 and s.acked_lost > 0
        lost = b[b["outcome"] == "lost"]
        assert {(int(i), int(o)) for i, o in zip(lost["partition_index"], lost["offset"])} <= stale
    assert len(_events(res, "truncation")) >= 1 or acks == "all"


def test_a_short_pause_moves_no_leader_but_delays_acks_by_about_its_length():
    res, _ = _run([{"kind": "pause", "leader_of": "events-0", "at": "10s", "duration": "1s"}])
    assert (_events(res, "leader_elected")["time_ms"] == 0).all()
    assert _events(res, "broker_fenced").empty and _events(res, "isr_change")["time_ms"].eq(0).all()
    lat = res.summary.produce_latency_ms
    assert lat["p50"] < 20 and 800 <= lat["max"] <= 1200
    f = res.events[res.events["kind"].isin(["fault_start", "fault_end"])]
    assert f["time_ms"].tolist() == [10_000.0, 11_000.0] and (f["fault"] == "pause").all()
    assert not f["kills_process"].any() and f["takes_down"].all()


def test_a_controller_pause_shorter_than_the_session_fences_nobody():
    res, _ = _run([{"kind": "pause", "controller": True, "at": "10s", "duration": "6s"}])
    f = _events(res, "fault_start")
    assert f["target"].tolist() == ["controller"] and f["broker"].tolist() == [-1]
    # the heartbeats queued during the pause are handled before the session check runs again
    assert _events(res, "broker_fenced").empty and res.summary.acked_lost == 0


# --- controlled shutdown -------------------------------------------------------------------------
def test_controlled_shutdown_of_a_leader_costs_ms_not_seconds_and_loses_nothing_under_acks_1():
    over = {"producers.0.acks": "1", "producers.0.enable.idempotence": False}
    res, cluster = _run([{"kind": "controlled_shutdown", "leader_of": "events-0", "at": "10s",
                          "restart_after": "10s"}], **over)
    crash, _ = _run([{"kind": "crash", "leader_of": "events-0", "at": "10s", "restart_after": "10s"}], **over)
    s, c = res.summary, crash.summary
    assert s.acked_lost == 0 and s.invariant_violations == 0
    clean = [fo["unavailable_ms"] for fo in s.failovers]
    hard = [fo["unavailable_ms"] for fo in c.failovers]
    assert clean and max(clean) < 200, clean  # metadata refresh and one retry, not detection
    assert hard and min(hard) > 5000, hard
    # the moves come before the stop: elected within ms, then fenced and stopped; logs flushed
    moved = _events(res, "leader_elected")
    moved = moved[moved["time_ms"] > 0]
    assert (moved["reason"] == "controlled_shutdown").all() and (moved["time_ms"] < 10_010).all()
    (stop,) = _events(res, "broker_shutdown")["time_ms"].tolist()
    assert stop > moved["time_ms"].max() and stop < 10_100
    # every leadership the broker held moved before it stopped, each within 5 ms of the SIGTERM
    # (a controller that moved them only once it fenced the broker would fail here)
    victim = int(_events(res, "fault_start")["broker"].iloc[0])
    became = _events(res, "became_leader")
    became = became[became["time_ms"] < 10_000].sort_values("time_ms")
    led = {p for p, b in became.groupby("partition")["broker"].last().items() if b == victim}
    assert led and set(moved["partition"]) == led and (moved["broker"] != victim).all()
    assert {fo["partition"] for fo in s.failovers} == led
    assert all(fo["election_ms"] < 5 and fo["elected_ms"] < stop for fo in s.failovers), s.failovers
    assert _events(res, "broker_registered")["time_ms"].min() >= 20_000  # restarted after restart_after


def test_a_restart_due_before_the_controlled_shutdown_stopped_the_broker_runs_once_it_has_stopped():
    """restart_after shorter than the shutdown itself (the controller lets the broker go a few ms
    after SIGTERM): the broker stops, then restarts at once; it used to stay down for good."""
    res, cluster = _run([{"kind": "controlled_shutdown", "leader_of": "events-0", "at": "10s",
                          "restart_after": "1ms"}])
    (stop,) = _events(res, "broker_shutdown")["time_ms"].tolist()
    assert stop > 10_001  # still shutting down when the restart came due
    (end,) = _events(res, "fault_end")["time_ms"].tolist()
    assert end == 10_001
    back = _events(res, "broker_registered")
    assert len(back) == 1 and back["time_ms"].iloc[0] >= stop
    assert all(b.alive for b in cluster.brokers)
    assert res.summary.under_replicated_partitions_at_end == 0 and res.summary.invariant_violations == 0


def test_controlled_shutdown_flushes_the_logs_before_it_stops():
    seen = []

    def spy(cluster):
        b = cluster.brokers[1]

        def crash(orig=b.crash):
            seen.append([(b.disk.flushed_offset(p), log.leo, log.checkpointed_hw, log.hw) for p, log in b.logs.items()])
            orig()
        b.crash = crash
    _run([{"kind": "controlled_shutdown", "broker": 1, "at": "10s"}], spy=spy, duration="12s", settle="1s")
    (logs,) = seen
    assert logs and all(flushed == leo > 0 and ckpt == hw for flushed, leo, ckpt, hw in logs)


# --- controller outage -------------------------------------------------------------------------------
def test_a_crash_inside_a_controller_outage_fails_over_after_the_outage_plus_the_session_timeout():
    faults = [{"kind": "controller_outage", "at": "8s", "duration": "6s"},
              {"kind": "crash", "leader_of": "events-0", "at": "10s", "restart_after": "25s"}]
    res, _ = _run(faults, duration="40s")
    fo = res.summary.failovers
    assert fo
    for f in fo:
        # the new controller gives every broker a fresh session at 14 s: fenced at 14 + 9 s
        assert 14_000 + SESSION_MS <= f["elected_ms"] <= 14_000 + SESSION_MS + 200, f
    fenced = _events(res, "broker_fenced")
    assert fenced["time_ms"].min() >= 14_000 + SESSION_MS  # nobody fenced at once on the quorum's return
    assert fenced["broker"].nunique() == 1
    # without the outage the same crash fails over within the session timeout
    base, _ = _run(faults[1:], duration="40s")
    assert max(f["elected_ms"] for f in base.summary.failovers) <= 10_000 + SESSION_MS + 200
    f = res.events[(res.events["fault"] == "controller_outage")]
    assert f["kind"].tolist() == ["fault_start", "fault_end"] and f["time_ms"].tolist() == [8000.0, 14_000.0]
    assert not f["takes_down"].any()


def test_no_isr_change_commits_during_a_controller_outage():
    # a follower crashes inside the outage: its ISR removal waits for the quorum (plus its session)
    faults = [{"kind": "controller_outage", "at": "8s", "duration": "10s"},
              {"kind": "crash", "follower_of": "events-0", "at": "9s", "restart_after": "25s"}]
    res, _ = _run(faults, duration="40s")
    changes = _events(res, "isr_change")
    changes = changes[changes["time_ms"] > 0]
    assert not changes.empty and changes["time_ms"].min() >= 18_000


# --- targets and validation ----------------------------------------------------------------------------
def test_follower_of_hits_a_replica_that_is_not_the_leader():
    res, cluster = _run([{"kind": "pause", "follower_of": "events-0", "at": "5s", "duration": "1s"}],
                        duration="8s", settle="1s")
    f = _events(res, "fault_start")
    leader = cluster.controller.state[0].leader
    assert f["target"].tolist() == ["follower_of events-0"]
    target = int(f["broker"].iloc[0])
    assert target != leader and target in cluster.partitions[0].replicas
    # deterministic: the first live ISR follower in assignment order
    assert target == [b for b in cluster.partitions[0].replicas if b != leader][0]


@pytest.mark.parametrize("fault, message", [
    ({"kind": "pause", "broker": 0, "at": "1s"}, "faults.0.duration: Field required"),
    ({"kind": "pause", "at": "1s", "duration": "1s"},
     "a fault needs exactly one of 'broker', 'leader_of', 'follower_of', 'brokers', 'rack', 'zone' or 'controller'"),
    ({"kind": "controller_outage", "broker": 1, "at": "1s", "duration": "1s"}, "exactly one of"),
    ({"kind": "controlled_shutdown", "controller": True, "at": "1s"}, "controller"),
    ({"kind": "crash", "follower_of": "nope-0", "at": "1s"}, "faults.0.follower_of: 'nope-0' is not a topic-partition"),
])
def test_fault_spec_errors_are_one_line(fault, message):
    with pytest.raises(ScenarioError) as e:
        load_scenario(QUICK, {"faults": [fault]})
    assert message in str(e.value) and "\n" not in str(e.value)


def test_follower_of_needs_a_replicated_topic():
    with pytest.raises(ScenarioError, match="faults.0.follower_of: topic events has replication.factor 1"):
        load_scenario(QUICK, {"topics.0.replication.factor": 1, "topics.0.min.insync.replicas": 1,
                              "faults": [{"kind": "crash", "follower_of": "events-0", "at": "1s"}]})


def test_specs_from_python():
    assert PauseFault(at="1s", broker=0, duration="2s").heal_after == 2000.0
    assert ControllerOutageFault(at="1s", duration="3s").target == "controller"


def _bundled(name: str):
    sc = load_scenario(ROOT / f"scenarios/faults/{name}.yaml")
    assert sc.description and "\n" not in sc.description.strip()
    res = sim.run(sc)
    assert res.summary.invariant_violations == 0 and res.summary.records_consumed > 0
    return res


def test_bundled_gc_pause_shows_what_its_description_claims():
    res = _bundled("gc-pause")
    s = res.summary
    assert res.scenario.producers[0].acks == 1 and s.acked_lost > 0  # acked in the stale epoch, then truncated
    assert s.failovers and all(7000 < f["election_ms"] < 9500 for f in s.failovers)  # fenced during the pause
    assert all(f["unavailable_ms"] >= 12_000 for f in s.failovers)  # clients wait for the paused leader


def test_bundled_controlled_shutdown_shows_what_its_description_claims():
    s = _bundled("controlled-shutdown").summary
    assert s.acked_lost == 0 and s.failovers and all(f["unavailable_ms"] < 200 for f in s.failovers)


def test_bundled_controller_outage_shows_what_its_description_claims():
    s = _bundled("controller-outage").summary
    # crash at 10 s inside the outage 8-14 s: 4 s of outage left, then the 9 s session
    assert s.acked_lost == 0 and s.failovers and all(13_000 <= f["election_ms"] <= 13_300 for f in s.failovers)


def test_pausing_costs_nothing_when_unused():
    res, cluster = _run([], duration="3s", settle="1s")
    assert all(b._paused is None and b._resumed is None for b in cluster.brokers)
    assert np.isfinite(res.summary.produce_latency_ms["max"])


def test_sigterm_to_a_paused_broker_takes_effect_when_it_resumes():
    faults = [{"kind": "pause", "leader_of": "events-0", "at": "10s", "duration": "2s"},
              {"kind": "controlled_shutdown", "leader_of": "events-0", "at": "11s"}]
    res, _ = _run(faults, duration="20s", settle="5s")
    moved = _events(res, "leader_elected")
    moved = moved[moved["time_ms"] > 0]
    assert (moved["reason"] == "controlled_shutdown").all() and moved["time_ms"].min() >= 12_000
    (stop,) = _events(res, "broker_shutdown")["time_ms"].tolist()
    assert 12_000 < stop < 12_200


def test_an_isr_shrink_proposed_during_a_controller_outage_commits_soon_after_it():
    # the follower dies at 5 s; its leader proposes the shrink after replica.lag.time.max.ms (3 s),
    # inside the outage (8-14 s): refused, then sent again once the quorum is back, well before the
    # AlterPartition request timeout (30 s) and before the follower's fresh session ends (23 s)
    faults = [{"kind": "crash", "follower_of": "events-0", "at": "5s", "restart_after": "25s"},
              {"kind": "controller_outage", "at": "8s", "duration": "6s"}]
    res, cluster = _run(faults, **{"cluster.replica.lag.time.max.ms": 3000})
    changes = _events(res, "isr_change")
    shrinks = changes[(changes["time_ms"] > 5000) & (changes["reason"] == "alter_partition")
                      & (changes["isr"].map(len) < changes["isr_before"].map(len))]
    assert not shrinks.empty
    assert shrinks["time_ms"].min() >= 14_000 and shrinks["time_ms"].max() <= 14_000 + 2000 + 200
    assert res.summary.messages_sent["AlterPartition"] < 200  # a retry per heartbeat interval, no storm


# --- controller outage overlapping other faults (issue 13: the random-schedule property test) -------
def test_a_broker_restarted_inside_a_controller_outage_registers_soon_after_the_quorum_returns():
    # BrokerLifecycleManager resends a refused registration after an exponential backoff (100 ms
    # doubling, at most broker.session.timeout.ms), not after the 30 s request timeout. The new
    # controller gives every registered broker a fresh session when the outage ends at 14 s
    # (ClusterControlManager.activate), so the crashed incarnation's session lasts until 23 s and the
    # broker restarted at 11 s is refused (DUPLICATE_BROKER_REGISTRATION) until then; it is then
    # registered at its next retry, unfenced and back in every ISR.
    faults = [{"kind": "controller_outage", "at": "8s", "duration": "6s"},
              {"kind": "crash", "follower_of": "events-0", "at": "9s", "restart_after": "2s"}]
    res, cluster = _run(faults, duration="30s")
    registered = _events(res, "broker_registered")
    fenced = _events(res, "broker_fenced")
    assert fenced["time_ms"].tolist() == [pytest.approx(14_000 + SESSION_MS, abs=101)]
    assert not registered.empty and 14_000 + SESSION_MS < registered["time_ms"].min() <= 23_100 + 6_400 + 10
    assert res.summary["under_replicated_partitions_at_end"] == 0
    assert all(not reg.fenced for reg in cluster.controller.registrations.values())


def test_a_controller_outage_of_a_paused_controller_is_skipped_and_the_pause_still_ends():
    faults = [{"kind": "pause", "controller": True, "at": "8s", "duration": "4s"},
              {"kind": "controller_outage", "at": "9s", "duration": "3s"},
              {"kind": "crash", "follower_of": "events-0", "at": "13s", "restart_after": "10s"}]
    res, _ = _run(faults)
    ev = res.events
    f = ev[ev["kind"].isin(["fault_start", "fault_end", "fault_skipped"])]
    assert list(zip(f["kind"], f["fault"])) == [
        ("fault_start", "pause"), ("fault_skipped", "controller_outage"), ("fault_end", "pause"),
        ("fault_start", "crash"), ("fault_end", "crash")]
    assert f["reason"].tolist()[1] == "controller paused"
    # the controller still fences a broker that stops heartbeating
    assert 13_000 < _events(res, "broker_fenced")["time_ms"].min() <= 13_000 + SESSION_MS + 200


def test_a_quorum_lost_while_the_controller_is_paused_does_not_stop_its_loops():
    # Controller.lose_quorum of a paused controller: its loops waited for the pause to end; they must
    # wait for the quorum instead, or the controller never fences nor elects again.
    def spy(cluster):
        ctl, env = cluster.controller, cluster.env
        for at, act in ((8_000, ctl.pause), (9_000, ctl.lose_quorum), (12_000, ctl.regain_quorum)):
            env.timeout(at).callbacks.append(lambda _ev, act=act: act())
    res, _ = _run([{"kind": "crash", "follower_of": "events-0", "at": "13s", "restart_after": "10s"}], spy=spy)
    assert 13_000 < _events(res, "broker_fenced")["time_ms"].min() <= 13_000 + SESSION_MS + 200


def test_a_second_controlled_shutdown_of_a_broker_shutting_down_is_skipped():
    faults = [{"kind": "controlled_shutdown", "broker": 1, "at": "8s"},
              {"kind": "controlled_shutdown", "broker": 1, "at": "8s"}]
    res, _ = _run(faults)
    ev = res.events
    f = ev[ev["kind"].isin(["fault_start", "fault_end", "fault_skipped"])]
    assert f["kind"].tolist() == ["fault_start", "fault_skipped", "fault_end"]
    assert f["fault_index"].tolist() == [0, 1, 0]
    assert f["reason"].tolist()[1] == "already shutting down"


def test_every_fault_that_starts_ends_even_when_a_later_one_on_its_broker_overlaps_it():
    # a crash of a broker still shutting down: the SIGTERM's restart (at 11 s) ends the SIGTERM, and the
    # heal ends the crash although it has nothing left to undo (the injector kept one record per broker,
    # the crash's: the heal found it with nothing to undo and the crash never ended)
    faults = [{"kind": "controlled_shutdown", "broker": 1, "at": "8s", "restart_after": "3s"},
              {"kind": "crash", "broker": 1, "at": "8001ms"}]
    res, _ = _run(faults)
    ev = res.events
    f = ev[ev["kind"].isin(["fault_start", "fault_end"])]
    assert list(zip(f["kind"], f["fault"], f["time_ms"])) == [
        ("fault_start", "controlled_shutdown", 8_000.0), ("fault_start", "crash", 8_001.0),
        ("fault_end", "controlled_shutdown", 11_000.0), ("fault_end", "crash", 30_000.0)]
def _lifecycles(at_ms: list[float], broker: int, into: list):
    """A spy: broker `broker`'s lifecycle at each of `at_ms`."""
    def spy(cluster):
        b = cluster.brokers[broker]
        for t in at_ms:
            cluster.env.timeout(t).callbacks.append(lambda _ev, t=t: into.append((t, b.lifecycle)))
    return spy


def test_overlapping_pauses_of_one_broker_freeze_it_until_the_later_end_and_each_ends_itself():
    # 10-12 s and 11-14 s: frozen from 10 s to 14 s, two fault_start and two fault_end
    faults = [{"kind": "pause", "broker": 0, "at": "10s", "duration": "2s"},
              {"kind": "pause", "broker": 0, "at": "11s", "duration": "3s"}]
    seen: list = []
    res, cluster = _run(faults, spy=_lifecycles([10_500.0, 12_500.0, 13_900.0, 14_100.0], 0, seen),
                        duration="20s", settle="5s")
    assert _events(res, "fault_start")["time_ms"].tolist() == [10_000.0, 11_000.0]
    ends = _events(res, "fault_end")
    assert ends["time_ms"].tolist() == [12_000.0, 14_000.0] and ends["fault_index"].tolist() == [0, 1]
    assert [s for _, s in seen] == ["paused", "paused", "paused", "up"]
    assert cluster.brokers[0].pause_depth == 0 and cluster.brokers[0]._paused is None


def test_a_pause_whose_broker_crashed_meanwhile_still_ends_and_leaves_the_restarted_process_running():
    faults = [{"kind": "pause", "broker": 0, "at": "10s", "duration": "5s"},
              {"kind": "crash", "broker": 0, "at": "11s", "restart_after": "2s"}]
    seen: list = []
    res, _ = _run(faults, spy=_lifecycles([12_000.0, 14_000.0, 16_000.0], 0, seen), duration="20s", settle="5s")
    ends = _events(res, "fault_end")
    assert ends["fault"].tolist() == ["crash", "pause"] and ends["time_ms"].tolist() == [13_000.0, 15_000.0]
    assert [s for _, s in seen] == ["crashed", "up", "up"]  # the new process was never paused
    assert res.summary.invariant_violations == 0


def test_the_heal_ends_a_sigterm_a_later_pause_of_its_broker_started_on_top_of():
    # SIGTERM without restart_after (left to the heal), then a pause of the same broker before it stopped: the
    # pause is the broker's latest fault and ends first; the heal at 20 s still restarts the broker
    faults = [{"kind": "controlled_shutdown", "broker": 0, "at": "10s"},
              {"kind": "pause", "broker": 0, "at": "10005ms", "duration": "1s"}]
    res, cluster = _run(faults, duration="20s", settle="10s")
    ends = _events(res, "fault_end")
    assert ends["fault"].tolist() == ["pause", "controlled_shutdown"]
    assert ends["time_ms"].tolist() == [11_005.0, 20_000.0] and ends["reason"].tolist()[1] == "heal"
    assert len(_events(res, "broker_shutdown")) == 1 and cluster.brokers[0].alive
    assert res.summary.under_replicated_partitions_at_end == 0
