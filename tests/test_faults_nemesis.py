"""Nemeses Jepsen users expect (issue 22): a skewed wall clock and a disk that loses fsyncs.

Clock skew: Kafka's leader compares the wall clock (time.milliseconds(), System.currentTimeMillis)
with each follower's lastCaughtUpTimeMs (Partition.getOutOfSyncReplicas, Replica.isCaughtUp,
ReplicaManager.readFromLog's fetchTimeMs), so a leader clock stepped back keeps a stuck follower in
the ISR for as long as the step; the controller's broker sessions (BrokerHeartbeatManager) and the
broker's heartbeat schedule (BrokerLifecycleManager) run on System.nanoTime and are immune.

Lost fsync: a disk that acknowledges flushes it does not do turns flush.messages=1 (which keeps
every acknowledged record through a power loss of every replica) back into the default's loss.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import sim
from sim.model.disk import Disk, FlushPolicy
from sim.model.log import Log
from sim.scenario.schema import Scenario, ScenarioError

FAULTS = Path(__file__).resolve().parent.parent / "scenarios" / "faults"
PARTITION = {"kind": "partition", "follower_of": "events-0", "between": ["peers"], "at": "20s", "heal": "110s"}


def _run(name: str, **overrides):
    r = sim.run(FAULTS / name, overrides=overrides or None)
    assert r.summary["invariant_violations"] == 0, r.summary["invariant_examples"]
    return r


def _first_shrink_of_events_0(r) -> float:
    """When the ISR of events-0 first lost a member (ms)."""
    ev = r.events
    shrinks = ev[(ev.kind == "isr_change") & (ev.partition == "events-0") & (ev.time_ms > 0)
                 & (ev.isr.map(len) < ev.isr_before.map(len))]
    return float(shrinks.time_ms.iloc[0])


def _first_ack_after_the_cut(r) -> float:
    """When the first batch of events-0 that arrived after the follower was cut off (20 s) was acknowledged."""
    b = r.batches
    after = b[(b.partition == "events-0") & (b.first_arrival_ms > 20_500) & (b.outcome == "acked")]
    return float(after.acked_ms.min())


def _fenced_after_start(r) -> int:
    ev = r.events
    return int(((ev.kind == "broker_fenced") & (ev.time_ms > 1000)).sum())


# --- clock skew ---------------------------------------------------------------------------------
def test_a_leader_clock_stepped_back_delays_the_isr_shrink_of_a_stuck_follower_by_the_step():
    skewed = _run("clock-skew.yaml")
    plain = _run("clock-skew.yaml", faults=[PARTITION])
    # the follower is cut off at 20 s; the check runs every replica.lag.time.max.ms / 2 = 15 s on the
    # monotonic clock, so it leaves the ISR 30-45 s later; with the leader's clock 60 s back, 60 s more
    assert 50_000 <= _first_shrink_of_events_0(plain) <= 65_000
    assert 110_000 <= _first_shrink_of_events_0(skewed) <= 125_000
    assert 45_000 <= _first_shrink_of_events_0(skewed) - _first_shrink_of_events_0(plain) <= 75_000
    # acks=all on events-0 waits for the stuck follower until the shrink: the first record sent to it
    # after the cut is acknowledged only then, about the step later (nothing is lost either way)
    for r in (skewed, plain):
        assert 0 <= _first_ack_after_the_cut(r) - _first_shrink_of_events_0(r) <= 1_000
    assert skewed.summary["acked_lost"] == plain.summary["acked_lost"] == 0
    # the follower still heartbeats: the controller fences nobody
    assert _fenced_after_start(skewed) == _fenced_after_start(plain) == 0


def test_broker_sessions_run_on_the_monotonic_clock_a_skew_fences_nobody():
    # BrokerHeartbeatManager.touch / hasValidSession: lastContactNs vs time.nanoseconds(); the broker's
    # heartbeats are scheduled on the event queue's nanoTime deadlines (BrokerLifecycleManager)
    skews = [{"kind": "clock_skew", "controller": True, "at": "10s", "offset": "10m"},
             {"kind": "clock_skew", "broker": 1, "at": "10s", "offset": "-10m", "drift_ppm": 50_000},
             {"kind": "clock_skew", "broker": 2, "at": "12s", "offset": "10m", "duration": "20s"}]
    r = _run("clock-skew.yaml", faults=skews, duration="60s")
    assert _fenced_after_start(r) == 0
    ev = r.events
    assert set(ev[ev.kind == "fault_start"].fault) == {"clock_skew"} and (ev.kind == "fault_end").sum() == 3
    assert not ev[ev.kind == "fault_start"].takes_down.any()
    assert r.summary["acked_lost"] == 0 and r.summary["records_acked"] > 100_000


def test_node_wall_clock_steps_drifts_and_is_set_right():
    import simpy

    from sim.model.node import Node

    env = simpy.Environment()
    n = Node()
    n.init_node(env, "n")
    env.run(until=1000.0)
    n.skew_clock("a", -60_000.0)
    assert n.wall_ms() == 1000.0 - 60_000.0
    n.skew_clock("b", 0.0, drift_ppm=1000.0)  # 1 ms fast per second from 1 s on
    env.run(until=3000.0)
    assert n.wall_ms() == pytest.approx(3000.0 - 60_000.0 + 2.0)
    assert n.unskew_clock("a") and not n.unskew_clock("a")
    assert n.wall_ms() == pytest.approx(3002.0)
    assert n.unskew_clock("b") and n.wall_ms() == 3000.0


@pytest.mark.parametrize("fault, message", [
    ({"kind": "clock_skew", "broker": 0, "at": "1s"}, "faults.0: a clock_skew fault needs an 'offset'"),
    ({"kind": "clock_skew", "broker": 0, "at": "1s", "offset": "-1x"}, "faults.0.offset: unknown "
                                                                       "duration unit"),
    ({"kind": "clock_skew", "broker": 0, "at": "1s", "offset": "1s", "drift_ppm": 1e6},
     "faults.0.drift_ppm: Input should be less than or equal to 100000"),
    ({"kind": "lost_fsync", "broker": 0, "at": "1s", "duration": "0s"}, "faults.0.duration: must be greater than 0"),
])
def test_nemesis_fault_errors_are_one_line_naming_the_field(fault, message):
    with pytest.raises(ScenarioError) as e:
        Scenario.resolve(FAULTS / "clock-skew.yaml", {"faults": [fault]})
    assert str(e.value).startswith(message) and "\n" not in str(e.value), str(e.value)


def test_a_signed_offset_round_trips_through_the_resolved_scenario():
    sc = Scenario.resolve(FAULTS / "clock-skew.yaml")
    assert sc.faults[0].offset == -60_000.0
    again = Scenario.resolve(sc.model_dump(mode="json", by_alias=True))
    assert again.faults[0].offset == -60_000.0


# --- lost fsync ---------------------------------------------------------------------------------
def test_a_disk_that_loses_fsyncs_loses_acknowledged_records_flush_messages_1_would_keep():
    r = _run("lost-fsync.yaml")
    # flush.messages=1 fsynced nothing since 1 s: only the kernel's writeback (30-35 s old pages) reached
    # the platter, so the power loss at 60 s takes the acknowledged records of [~30 s, 60 s): ~30 s x 2000/s
    assert 50_000 <= r.summary["acked_lost"] <= 70_000
    lost = r.events[r.events.kind == "log_lost_tail"]
    assert set(lost.broker) == {0, 1, 2}
    # the same disks honest (power-loss-flushed.yaml's set-up): nothing acknowledged is lost
    honest = _run("lost-fsync.yaml", **{"faults.0.duration": "1ms"})
    assert honest.summary["acked_lost"] == 0 and honest.summary["records_acked"] > 100_000


def test_the_first_honest_fsync_after_the_fault_makes_everything_durable():
    # the disk lies from 1 s to 40 s; the next append's fsync (flush.messages=1) flushes the whole log
    r = _run("lost-fsync.yaml", **{"faults.0.duration": "39s"})
    assert r.summary["acked_lost"] == 0


def test_lose_fsyncs_at_the_disk():
    logs = {0: Log()}
    d = Disk(logs)
    env = type("Env", (), {"now": 0.0})()
    d.track_writes(env, {0: FlushPolicy(1, 1000.0, 1000.0)}, dirty_expire_ms=30_000.0, writeback_ms=5_000.0)

    batch = iter(range(1, 100))

    def append(t: float, n: int) -> None:
        env.now = t
        d.append(logs[0], n, 0, next(batch), -1, -1, 100 * n)  # count, epoch, batch id, pid, seq, bytes

    append(100.0, 10)
    assert d.flushed_offset(0) == 10  # flush.messages=1: fsynced
    d.lose_fsyncs(True, 150.0)
    append(200.0, 5)
    d.flush(0)
    assert d.flushed_offset(0) == 10  # acknowledged, not done
    # flush.ms every 1 s: the flush at 1000 ms fell while the disk lied, so only the one at 0 counts
    assert d.durable_offset(0, 1500.0) == 10
    d.lose_fsyncs(False, 1600.0)
    assert d.durable_offset(0, 1700.0) == 10  # the flush at 1000 ms was still not done
    assert d.durable_offset(0, 2500.0) == 15  # the flusher at 2000 ms was honest
    append(2600.0, 1)
    assert d.flushed_offset(0) == 16
