"""Preferred-leader rebalancing (issue 21): auto.leader.rebalance.enable, leader.imbalance.check.interval.seconds
and leader.imbalance.per.broker.percentage, as the KRaft controller (QuorumController.
maybeScheduleNextBalancePartitionLeaders, ReplicationControlManager.maybeBalancePartitionLeaders) and the
ZooKeeper-mode one (KafkaController.checkAndTriggerAutoLeaderRebalance) run them."""

from __future__ import annotations

from pathlib import Path

import pytest

import sim
from sim.scenario.schema import Scenario, ScenarioError

SCENARIO = Path(__file__).resolve().parents[1] / "scenarios/faults/preferred-leader.yaml"


def _events(r, kind):
    return r.events[r.events.kind == kind]


@pytest.fixture(scope="module")
def runs():
    return {on: sim.run(SCENARIO, overrides={"cluster.auto.leader.rebalance.enable": on}) for on in (True, False)}


def test_leadership_returns_to_the_preferred_replica_one_check_interval_after_the_failover(runs):
    on = runs[True]
    elected = _events(on, "leader_elected")
    failover = elected[elected.reason == "clean"]
    preferred = elected[elected.reason == "preferred"]
    victim = int(_events(on, "fault_start").broker.iloc[0])
    assert len(failover) == 2 and (failover.broker != victim).all()
    # scheduled by the failover's write: leader.imbalance.check.interval.seconds (20 s) after it
    assert set(preferred.partition) == set(failover.partition) and (preferred.broker == victim).all()
    assert preferred.time_ms.min() == pytest.approx(failover.time_ms.max() + 20_000, abs=1)
    assert on.summary["leader_elections"] == 4 and on.summary["invariant_violations"] == 0


def test_with_rebalancing_disabled_leadership_stays_on_the_survivors(runs):
    off = runs[False]
    elected = _events(off, "leader_elected")
    assert not (elected.reason == "preferred").any() and off.summary["leader_elections"] == 2


def test_a_preferred_election_is_an_acks_1_loss_window(runs):
    """The old leader keeps acknowledging acks=1 writes until it learns it lost leadership; what the
    preferred replica had not fetched by its own switch is truncated away (seed 6: 3 records)."""
    on, off = runs[True], runs[False]
    moved_ms = _events(on, "leader_elected").query("reason == 'preferred'").time_ms.min()
    cut = _events(on, "truncation")
    cut = cut[cut.time_ms > moved_ms]
    assert cut.removed.sum() > 0
    assert on.summary["acked_lost"] - off.summary["acked_lost"] == cut.removed.sum()
    assert off.summary["acked_lost"] == 0


def test_zookeeper_mode_rebalances_only_past_the_per_broker_percentage():
    """KafkaController.checkAndTriggerAutoLeaderRebalance: every check interval (the first 5 s after the
    controller starts), per preferred broker, only when more than leader.imbalance.per.broker.percentage of
    its partitions are led elsewhere. Here broker 2 is preferred for 1 partition of 3 led elsewhere
    (100 %): 10 % moves it back at the 35 s check, 100 % never does."""
    base = {"name": "zk", "duration": "50s", "settle": "5s",
            "cluster": {"brokers": 3, "kafka.version": "3.9", "controller.mode": "zookeeper",
                        "leader.imbalance.check.interval.seconds": 30},
            "topics": [{"name": "t", "partitions": 3, "replication.factor": 3, "min.insync.replicas": 2}],
            "producers": [{"topic": "t", "rate": "300/s", "acks": "all"}],
            "faults": [{"kind": "crash", "broker": 2, "at": "2s", "restart_after": "5s"}]}
    r = sim.run(base, seed=1)
    preferred = _events(r, "leader_elected").query("reason == 'preferred'")
    assert len(preferred) == 1 and preferred.broker.iloc[0] == 2
    assert preferred.time_ms.iloc[0] == pytest.approx(35_000, abs=1)
    base["cluster"]["leader.imbalance.per.broker.percentage"] = 100
    never = sim.run(base, seed=1)
    assert not (_events(never, "leader_elected").reason == "preferred").any()


def test_the_configs_have_kafkas_names_and_defaults():
    c = Scenario.resolve({"name": "x", "duration": "1s", "topics": [{"name": "t"}]}).cluster
    assert (c.auto_leader_rebalance_enable, c.leader_imbalance_check_interval_seconds,
            c.leader_imbalance_per_broker_percentage) == (True, 300, 10)
    with pytest.raises(ScenarioError, match="leader.imbalance.check.interval.seconds"):
        Scenario.resolve({"name": "x", "duration": "1s", "topics": [{"name": "t"}],
                          "cluster": {"leader.imbalance.check.interval.seconds": 0}})
