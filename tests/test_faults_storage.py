"""Storage faults (issue 13, kinds 5, 6 and 8) and Eligible Leader Replicas (KIP-966): their measured effects.

Power loss keeps only what was on stable storage (flush.messages, flush.ms, the OS writeback), a
process crash keeps the page cache; disk loss re-replicates from the leaders; a slow disk delays
acknowledgements and, long enough, shrinks the ISR; ELR keeps the last-replica-standing case from
losing committed data.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import sim
from sim.scenario.schema import ScenarioError, Scenario

FAULTS = Path(__file__).resolve().parent.parent / "scenarios" / "faults"


def _run(name: str, **overrides):
    r = sim.run(FAULTS / name, overrides=overrides or None)
    assert r.summary["invariant_violations"] == 0, r.summary["invariant_examples"]
    return r


def _kinds(r, kind):
    return r.events[r.events.kind == kind]


# --- power loss ---------------------------------------------------------------------------------
def test_power_loss_of_every_broker_loses_the_unflushed_acknowledged_records():
    r = _run("power-loss.yaml")
    # default flush: the OS writes a page back 30-35 s after it was written; power fails at 60 s and
    # the last writeback ran at 60 s, so the records of [30 s, 60 s) are gone: ~30 s x 2000/s
    assert 50_000 <= r.summary["acked_lost"] <= 70_000
    lost = _kinds(r, "log_lost_tail")
    assert set(lost.broker) == {0, 1, 2} and (lost.removed > 0).all()


def test_power_loss_with_flush_messages_1_loses_nothing():
    r = _run("power-loss-flushed.yaml")
    assert r.summary["records_acked"] > 100_000 and r.summary["acked_lost"] == 0
    assert _kinds(r, "log_lost_tail").empty


def test_a_process_crash_of_every_broker_keeps_the_page_cache():
    r = _run("power-loss.yaml", **{f"faults.{i}.kind": "crash" for i in range(3)})
    assert r.summary["records_acked"] > 100_000 and r.summary["acked_lost"] == 0
    assert _kinds(r, "log_lost_tail").empty


def test_the_os_writeback_window_sets_how_much_is_lost():
    # os.dirty_expire 10 s instead of 30 s: about a third of the loss
    r = _run("power-loss.yaml", **{"cluster.os.dirty_expire": "10s"})
    assert 15_000 <= r.summary["acked_lost"] <= 30_000


def test_flush_ms_takes_effect_with_the_flush_scheduler():
    # flush every 1 s (flush.ms with log.flush.scheduler.interval.ms): at most ~1 s of records lost
    r = _run("power-loss.yaml", **{"topics.0.flush.ms": 1000, "cluster.log.flush.scheduler.interval.ms": 1000})
    assert r.summary["acked_lost"] <= 2_500


# --- slow disk ----------------------------------------------------------------------------------
def test_a_slow_disk_raises_latency_by_the_injected_latency_and_a_stall_shrinks_the_isr():
    r = _run("slow-disk.yaml")
    ts = r.timeseries.set_index("second")
    before, during, after = (ts.loc[a:b, "latency_p50_ms"].median() for a, b in ((3, 9), (11, 19), (21, 24)))
    # the leader's disk is 5 ms slower from 10 s to 20 s: acks=1 latency rises by about that
    assert during - before == pytest.approx(5.0, abs=1.0) and after == pytest.approx(before, abs=0.5)
    # follower broker 0 stalls from 25 s: out of the ISR after replica.lag.time.max.ms (10 s) ...
    isr = _kinds(r, "isr_change")
    shrink = isr[(isr.time_ms > 25_000) & isr.isr.map(lambda s: 0 not in s)]
    assert len(shrink) and 35_000 <= shrink.time_ms.iloc[0] <= 40_000
    # ... and back in once its disk recovers at 50 s
    back = isr[(isr.time_ms >= 50_000) & isr.isr.map(lambda s: 0 in s)]
    assert len(back) and back.time_ms.iloc[0] < 52_000


def test_a_stall_shorter_than_the_lag_time_keeps_the_isr():
    r = _run("slow-disk.yaml", **{"faults.1.latency": "5s", "faults.1.duration": "5s"})
    isr = _kinds(r, "isr_change")
    assert (isr.time_ms > 0).sum() == 0


def test_two_slow_disk_faults_of_one_broker_each_end_themselves_and_the_slower_counts_while_both_last():
    faults = [{"kind": "slow_disk", "broker": 2, "at": "10s", "latency": "5ms", "duration": "10s"},
              {"kind": "slow_disk", "broker": 2, "at": "12s", "latency": "8ms", "duration": "3s"}]
    r = _run("slow-disk.yaml", faults=faults, duration="25s", settle="5s")
    ends = _kinds(r, "fault_end")
    assert ends.time_ms.tolist() == [15_000.0, 20_000.0] and ends.fault_index.tolist() == [1, 0]
    b = r.batches
    latency = (b.acked_ms - b.sent_ms)[b.outcome == "acked"]
    before, both, first, after = (latency[(b.sent_ms > lo) & (b.sent_ms < hi)].median()
                                  for lo, hi in ((3e3, 9e3), (12.5e3, 14.5e3), (16e3, 19.5e3), (21e3, 24e3)))
    assert both - before == pytest.approx(8.0, abs=1.0)  # the slower of the two
    assert first - before == pytest.approx(5.0, abs=1.0)  # the first is still in effect after the second ends
    assert after == pytest.approx(before, abs=0.5)


def test_the_heal_ends_a_fault_another_fault_of_its_broker_started_on_top_of():
    # the second ends first (15 s); the first would last until 110 s: the heal at `duration` (20 s) ends it
    faults = [{"kind": "slow_disk", "broker": 2, "at": "10s", "latency": "5ms", "duration": "100s"},
              {"kind": "slow_disk", "broker": 2, "at": "12s", "latency": "8ms", "duration": "3s"}]
    clusters = []
    r = sim.run(FAULTS / "slow-disk.yaml", overrides={"faults": faults, "duration": "20s", "settle": "5s"},
                prepare=clusters.append)
    ends = _kinds(r, "fault_end")
    assert ends.time_ms.tolist() == [15_000.0, 20_000.0] and ends.reason.tolist() == ["scheduled", "heal"]
    assert ends.fault_index.tolist() == [1, 0] and clusters[0].brokers[2].slow_disk is None  # healthy again


def test_a_random_slow_disk_under_a_scheduled_one_still_ends_at_its_repair():
    """Found by the random-schedule property test: broker 3's random slow disk (from 211 ms) was under a scheduled
    one (432-817 ms); the scheduled one's end took the broker off the injector's list, so the random firing never
    ended (no fault_end, and the disk stayed slow through the settle)."""
    sc = Scenario.resolve({
        "name": "property", "duration": "3165ms", "settle": "6s",
        "cluster": {"brokers": 4, "broker.session.timeout.ms": 1500, "broker.heartbeat.interval.ms": 300},
        "network": {"latency": {"dist": "lognormal", "median": "1ms", "sigma": 0.5}},
        "topics": [{"name": "t", "partitions": 2, "min.insync.replicas": 1}],
        "producers": [{"topic": "t", "rate": "2220/s", "arrival": "constant", "keys": 4, "partitioner": "hash",
                       "acks": 1, "linger.ms": 5}],
        "faults": [{"kind": "slow_disk", "at": "432ms", "broker": 3, "latency": "50ms", "duration": "385ms"}],
        "random_faults": [{"kind": "slow_disk", "fault": {"latency": "16ms"}, "per": "broker", "mean_interval": "1264ms",
                           "mean_repair": "1374ms", "start": "200ms", "max_down": 3}]})
    clusters = []
    r = sim.run(sc, seed=312, prepare=clusters.append)
    ev = r.events
    key = ["fault_source", "fault_index", "broker"]
    starts = ev[ev.kind == "fault_start"][key].value_counts().sort_index()
    ends = ev[ev.kind == "fault_end"][key].value_counts().sort_index()
    assert starts.equals(ends)
    (b3,) = ev[(ev.kind == "fault_start") & (ev.broker == 3) & (ev.fault_source == "random_faults")].time_ms
    (end3,) = ev[(ev.kind == "fault_end") & (ev.broker == 3) & (ev.fault_source == "random_faults")].time_ms
    assert b3 < 432.0 and 817.0 < end3 < sc.duration  # its own repair time, not the heal
    assert all(getattr(b, "slow_disk", None) is None for b in clusters[0].brokers)


def test_a_random_process_does_not_fire_again_on_a_broker_its_last_firing_still_holds():
    """Found by the random-schedule property test: broker 0's random slow disk (from 1318 ms) was under a pause
    (1942-2337 ms) whose end took the broker off the injector's list, so the process (per: cluster) fired on it
    again: two firings of one source on one broker, one of which never ended (its slow disk stayed forever)."""
    sc = Scenario.resolve({
        "name": "property", "duration": "4376ms", "settle": "6s",
        "cluster": {"brokers": 5, "broker.session.timeout.ms": 1500, "broker.heartbeat.interval.ms": 300},
        "network": {"latency": {"dist": "lognormal", "median": "0.2ms", "sigma": 0.1}},
        "topics": [{"name": "t", "partitions": 4, "min.insync.replicas": 1}],
        "producers": [{"topic": "t", "instances": 3, "rate": "1558/s", "keys": 21, "partitioner": "hash", "acks": 1,
                       "linger.ms": 1}],
        "faults": [{"kind": "pause", "at": "1942ms", "leader_of": "t-2", "duration": "395ms"},
                   {"kind": "crash", "at": "845ms", "broker": 4, "restart_after": "270ms"}],
        "random_faults": [{"kind": "slow_disk", "fault": {"latency": "42ms"}, "mean_interval": "894ms",
                           "mean_repair": "1712ms", "start": "200ms", "max_down": 4}]})
    clusters = []
    r = sim.run(sc, seed=65536, prepare=clusters.append)
    ev = r.events
    key = ["fault_source", "fault_index", "broker"]
    assert ev[ev.kind == "fault_start"][key].value_counts().sort_index().equals(
        ev[ev.kind == "fault_end"][key].value_counts().sort_index())
    random0 = ev[(ev.broker == 0) & (ev.fault_source == "random_faults")]
    assert random0.kind.tolist() == ["fault_start", "fault_end"] and random0.time_ms.iloc[1] > 2337.0
    assert all(getattr(b, "slow_disk", None) is None for b in clusters[0].brokers)


@pytest.mark.parametrize("pause_first", [False, True])
def test_a_slow_disk_and_a_pause_of_one_broker_each_keep_their_effect(pause_first, monkeypatch):
    """The leader (broker 2) is paused inside its slow-disk fault, or its disk turns slow while it is paused: it
    handles nothing while paused, and its writes are slow after the resume until the slow disk ends (19 s)."""
    from sim.model.broker import Broker
    handled = []
    orig = Broker.handle

    def spy(self, msg):
        handled.append((self.env.now, self.broker_id))
        orig(self, msg)
    monkeypatch.setattr(Broker, "handle", spy)
    slow = {"kind": "slow_disk", "broker": 2, "latency": "5ms", "duration": "9s"}
    pause = {"kind": "pause", "broker": 2, "duration": "1s"}
    faults = ([{**pause, "at": "10s"}, {**slow, "at": "10500ms"}] if pause_first
              else [{**slow, "at": "10s"}, {**pause, "at": "10500ms"}])
    r = _run("slow-disk.yaml", faults=faults, duration="25s", settle="5s")
    paused = (10_000.0, 11_000.0) if pause_first else (10_500.0, 11_500.0)
    assert not [t for t, b in handled if b == 2 and paused[0] < t < paused[1]]
    b = r.batches
    latency = (b.acked_ms - b.sent_ms)[b.outcome == "acked"]
    before, after = (latency[(b.sent_ms > lo) & (b.sent_ms < hi)].median() for lo, hi in ((3e3, 9e3), (13e3, 18e3)))
    assert after - before == pytest.approx(5.0, abs=1.0)
    assert len(_kinds(r, "fault_start")) == len(_kinds(r, "fault_end")) == 2


# --- disk loss ----------------------------------------------------------------------------------
def test_disk_loss_of_a_follower_re_replicates_and_loses_nothing():
    r = _run("disk-loss.yaml")
    lost = _kinds(r, "log_lost_tail")
    assert set(lost.broker) == {1} and (lost.value == 0).all() and lost.removed.sum() > 30_000
    assert r.summary["records_acked"] > 70_000 and r.summary["acked_lost"] == 0
    # broker 1 is back in the ISR of all 3 partitions: it fetched everything again from offset 0
    isr = _kinds(r, "isr_change")
    back = isr[(isr.time_ms > 25_000) & isr.isr.map(lambda s: 1 in s)]
    assert set(back.partition) == {"events-0", "events-1", "events-2"}


# brokers 0 and 2 crash as broker 1's disk is lost; broker 1 returns (empty) at 22 s, they at 40 s
LAST_STANDING_EMPTY = {
    "topics.0.min.insync.replicas": 1,
    "faults": [{"kind": "crash", "broker": 0, "at": "20s", "restart_after": "20s"},
               {"kind": "crash", "broker": 2, "at": "20s", "restart_after": "20s"},
               {"kind": "disk_loss", "broker": 1, "at": "20s", "restart_after": "2s"}],
}


def test_disk_loss_with_unclean_election_loses_committed_data():
    r = _run("disk-loss.yaml", **LAST_STANDING_EMPTY, **{"topics.0.unclean.leader.election.enable": True})
    # the only live replica, broker 1 on its empty disk, is elected uncleanly; 0 and 2 truncate to it
    assert set(_kinds(r, "unclean_election").broker) == {1}
    assert r.summary["acked_lost"] > 30_000
    # without unclean election the partitions wait, offline, for 0 and 2: nothing acknowledged is lost
    clean = _run("disk-loss.yaml", **LAST_STANDING_EMPTY)
    assert _kinds(clean, "unclean_election").empty and clean.summary["acked_lost"] == 0


# --- Eligible Leader Replicas (KIP-966) ---------------------------------------------------------
def test_elr_saves_the_last_replica_standing_case():
    on = _run("elr.yaml")
    elected = _kinds(on, "leader_elected")
    assert (elected.reason == "elr").sum() == 1 and elected[elected.reason == "elr"].broker.iloc[0] in (0, 1)
    assert on.summary["acked_lost"] == 0
    off = _run("elr.yaml", **{"cluster.eligible.leader.replicas.enable": False})
    # the leader returns without its unflushed tail, is the ISR's last member and is re-elected
    assert _kinds(off, "elr_change").empty
    assert off.summary["acked_lost"] > 5_000
    assert _kinds(off, "log_lost_tail").removed.sum() > 5_000


# elr.yaml, and the two followers (in the ELR from 30 s) stop cleanly at 31 s and return at 69 s: the
# leader, fenced when its session expires after its stop at 40 s, is then the partition's only live ELR
# member. (A restarted broker cannot register before its old session expires, DUPLICATE_BROKER_REGISTRATION,
# so while the followers were up an ELR member would already lead by then.)
def _followers_away(kind: str, restart_after: str) -> dict:
    return {"faults": [
        {"kind": "slow_disk", "broker": 0, "at": "20s", "latency": "25s", "duration": "30s"},
        {"kind": "slow_disk", "broker": 1, "at": "20s", "latency": "25s", "duration": "30s"},
        {"kind": kind, "leader_of": "events-0", "at": "40s", "restart_after": restart_after},
        {"kind": "controlled_shutdown", "broker": 0, "at": "31s", "restart_after": "38s"},
        {"kind": "controlled_shutdown", "broker": 1, "at": "31s", "restart_after": "38s"}]}


def test_elr_excludes_a_broker_back_from_an_unclean_shutdown():
    # the leader comes back from its power loss: it registered after an unclean shutdown, so it leaves
    # the ELR (it may have lost its unflushed tail: it must not lead) and the ELR members take over
    # when they return at 69 s
    r = _run("elr.yaml", **_followers_away("power_loss", "2s"))
    elr = _kinds(r, "elr_change")
    dropped = elr[elr.reason == "unclean_shutdown"]
    assert len(dropped) == 1 and 2 in dropped.isr_before.iloc[0] and 2 not in dropped.isr.iloc[0]
    elected = _kinds(r, "leader_elected")
    assert set(elected[elected.time_ms > 40_000].broker) <= {0, 1}
    assert _kinds(r, "log_lost_tail").removed.sum() > 0
    assert r.summary["acked_lost"] == 0


@pytest.mark.parametrize("kind, unclean", [("controlled_shutdown", False), ("crash", True)])
def test_elr_treats_a_controlled_shutdown_as_clean_and_a_crash_as_unclean(kind, unclean):
    """KIP-966: a controlled shutdown leaves the clean-shutdown file (its broker epoch), so the
    restarted broker registers with previousBrokerEpoch = its last epoch and keeps its ELR place;
    after a SIGKILL there is no file and the controller handles an unclean shutdown. The leader
    (the ISR's last member) stops at 40 s and is back 20 ms later; it registers (after a SIGKILL,
    once its old session has expired) while it is still in the ELR."""
    r = _run("elr.yaml", **_followers_away(kind, "20ms"))
    started = _kinds(r, "fault_start")
    assert kind in set(started.fault)
    changes = pd.concat([_kinds(r, "elr_change"), _kinds(r, "isr_change")])
    assert (changes.reason == "unclean_shutdown").any() == unclean


def test_elr_needs_kafka_4():
    with pytest.raises(ScenarioError, match=r"cluster.eligible.leader.replicas.enable: true needs kafka.version 4.0"):
        Scenario.resolve(FAULTS / "elr.yaml", ["cluster.kafka.version=3.9"])


# --- specs, validation and the CLI --------------------------------------------------------------
def test_every_storage_scenario_is_tested_here_and_runs_from_its_yaml():
    mine = {"power-loss.yaml", "power-loss-flushed.yaml", "disk-loss.yaml", "slow-disk.yaml", "elr.yaml"}
    assert mine <= {p.name for p in FAULTS.glob("*.yaml")}
    for name in mine:
        assert Scenario.resolve(FAULTS / name).description


@pytest.mark.parametrize("override, message", [
    ("faults.0.latency=0ms", "faults.0.latency: must be greater than 0"),
    ("faults=[{kind: slow_disk, broker: 1, at: 1s, duration: 1s}]", "faults.0.latency: Field required"),
    ("faults=[{kind: power_loss, broker: 7, at: 1s}]", "faults.0.broker: no broker 7 (allowed: 0..2)"),
    ("faults=[{kind: disk_loss, broker: 1, at: 1s, restart_after: 0s}]", "faults.0.restart_after: must be greater than 0"),
    ("faults=[{kind: power_lost, broker: 1, at: 1s}]", "faults.0.kind: must be one of 'crash', 'power_loss'"),
    ("topics.0.flush.messages=0", "topics.0.flush.messages: Input should be greater than or equal to 1"),
    ("faults.0.speed=1", "--set faults.0.speed: unknown key 'speed' under faults.0 (allowed: at, broker, brokers, "
                         "duration, flush_latency, follower_of, kind, latency, leader_of, rack, zone)"),
])
def test_storage_fault_errors_are_one_line_naming_the_field(override, message):
    with pytest.raises(ScenarioError) as e:
        Scenario.resolve(FAULTS / "slow-disk.yaml", [override])
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_cli_rejects_a_bad_storage_fault_with_exit_2(capsys):
    from sim.cli import main
    rc = main(["validate", str(FAULTS / "elr.yaml"), "--set", "faults.2.restart_after=soon"])
    assert rc == 2 and "faults.2.restart_after: cannot parse duration 'soon'" in capsys.readouterr().err


def test_python_api_runs_a_power_loss_without_yaml():
    sc = Scenario.model_validate({
        "name": "api", "duration": "12s", "settle": "20s",
        "topics": [{"name": "t", "partitions": 1, "replication.factor": 1}],
        "producers": [{"topic": "t", "rate": "500/s", "acks": "all"}],
        "faults": [{"kind": "power_loss", "leader_of": "t-0", "at": "10s", "restart_after": "1s"}],
        "cluster": {"os.dirty_expire": "2s", "os.dirty_writeback_interval": "1s"}})
    r = sim.run(sc)
    # (settle 20 s: the restarted broker registers only once its old session has expired, ~18 s, and
    # at its next registration retry, up to 6.4 s later)
    # writeback at 10 s wrote what was older than 2 s: [8 s, 10 s) is lost, ~1000 records
    assert 700 <= r.summary["acked_lost"] <= 1300


def test_flush_ms_without_the_flush_scheduler_is_warned_about():
    from sim.scenario.schema import scenario_warnings
    sc = Scenario.resolve(FAULTS / "power-loss.yaml", ["topics.0.flush.ms=1000"])
    assert any(w.startswith("topics.0.flush.ms=1s has no effect") for w in scenario_warnings(sc))


def test_kafkasim_scenarios_lists_the_storage_scenarios(capsys, monkeypatch):
    from rich.console import Console

    import sim.cli.app
    from sim.cli import main
    monkeypatch.setattr(sim.cli.app, "out_console", Console(width=400))  # no path folded over two lines
    assert main(["scenarios"]) == 0
    out = capsys.readouterr().out
    for name in ("power-loss", "power-loss-flushed", "disk-loss", "slow-disk", "elr"):
        assert f"scenarios/faults/{name}.yaml" in out
    assert "Last replica standing (KIP-966)" in out
