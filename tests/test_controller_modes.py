"""cluster.controller.mode: KRaft's batched elections against the ZooKeeper era's serial ones and its
controller failover (Rao 2015: ~5 ms per election, ~2 ms per partition to load a new controller)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import sim
from sim.scenario.schema import ScenarioError, load_scenario
from tests.conftest import Tiny, tiny_scenario

ZK = {"cluster/controller.mode": "zookeeper", "cluster/kafka.version": "3.9"}


def _crash_and_elect(sc, victim: int, until_ms: float):
    t = Tiny(sc)
    t.run(10)
    led = [p for p, rec in t.cluster.controller.state.items() if rec.leader == victim]
    t.brokers[victim].crash()
    crash_ms = t.env.now
    t.run(until_ms)
    elected = sorted(e[0] for e in t.events("leader_elected") if e[0] > crash_ms)
    fenced = [e[0] for e in t.events("broker_fenced") if e[2] == victim]
    return t, led, elected, fenced, crash_ms


def test_kraft_elects_a_fenced_brokers_partitions_in_one_batch():
    sc = tiny_scenario(**{"topics/0/partitions": 60})
    assert sc.cluster.controller_mode == "kraft"  # the default
    t, led, elected, fenced, _ = _crash_and_elect(sc, 1, 15_000)
    assert len(led) == len(elected) == 20
    # one controller event: every election 5 ms (one controller.election.cost.ms) after the fencing
    assert elected == pytest.approx([fenced[0] + 5] * 20)


def test_zookeeper_elects_one_partition_at_a_time_after_the_zookeeper_session_timeout():
    sc = tiny_scenario(**{"topics/0/partitions": 60, **ZK})
    t, led, elected, fenced, crash_ms = _crash_and_elect(sc, 1, 30_000)
    assert len(led) == len(elected) == 20
    # detection: zookeeper.session.timeout.ms (18 s) after the last heartbeat (every 2 s)
    assert 18_000 - 2_000 <= fenced[0] - crash_ms <= 18_000 + 150
    assert elected[0] == pytest.approx(fenced[0] + 5)
    assert elected[-1] == pytest.approx(fenced[0] + 5 * 20)


def test_zookeeper_controller_failover_loads_every_partition_before_electing():
    """The controller runs on broker 0: when it dies, the others notice at its session expiry, the
    new controller loads 2 ms x all partitions, then fences broker 0 and elects 5 ms each."""
    sc = tiny_scenario(**{"topics/0/partitions": 600, **ZK})
    t, led, elected, fenced, crash_ms = _crash_and_elect(sc, 0, 40_000)
    assert len(led) == len(elected) == 200
    load = 2 * 600
    # fenced at the first liveness check after the new controller is up
    assert crash_ms + 18_000 + load <= fenced[0] <= crash_ms + 18_000 + load + 100
    assert elected[-1] - elected[0] == pytest.approx(5 * 199)
    assert t.cluster.controller.host_id == 1  # the lowest live broker id took over
    # a broker that was not the controller's fails over without the load
    sc2 = tiny_scenario(**{"topics/0/partitions": 600, **ZK})
    _, _, _, fenced2, crash2 = _crash_and_elect(sc2, 2, 40_000)
    assert fenced2[0] - crash2 <= 18_000 + 150


def test_zookeeper_controller_outage_ends_with_the_metadata_load():
    sc = tiny_scenario(**{"topics/0/partitions": 600, **ZK})
    t = Tiny(sc)
    t.run(10)
    ctl = t.cluster.controller
    ctl.lose_quorum()
    t.run(1_000)
    ctl.regain_quorum()
    assert not ctl.alive
    t.run(1_000 + 2 * 600 - 1)
    assert not ctl.alive
    t.run(1_000 + 2 * 600 + 1)
    assert ctl.alive


@pytest.mark.parametrize("cluster, message", [
    ({"controller.mode": "zookeeper"}, "controller.mode: zookeeper needs kafka.version 3.9 or earlier"),
    ({"controller.mode": "zk"}, "controller.mode"),
    ({"controller.mode": "zookeeper", "kafka.version": "3.9", "zookeeper.session.timeout.ms": 1000},
     "zookeeper.session.timeout.ms"),
])
def test_bad_controller_mode_is_one_line_naming_the_field(cluster, message):
    data = {"name": "x", "duration": "1s", "cluster": cluster, "topics": [{"name": "t"}],
            "producers": [{"topic": "t", "rate": "1/s"}]}
    with pytest.raises(ScenarioError, match=message) as e:
        load_scenario(data)
    assert "\n" not in str(e.value)


VALIDATION = Path(__file__).resolve().parent.parent / "scenarios" / "validation"


@pytest.mark.validation  # 10,000 partitions: ~30 s a run; the mechanism's own tests above run in the suite
@pytest.mark.parametrize("name, controller_part_ms", [
    ("v7-zk-failover-many-partitions.yaml", 0.0),
    ("v7-zk-controller-failover.yaml", 20_000.0),
])
def test_v7_zookeeper_failover_of_a_broker_leading_1000_partitions(name, controller_part_ms):
    """V7 (Rao 2015): last partition back ~= detection + ~5 s (1,000 elections at 5 ms), plus ~20 s
    (10,000 partitions at 2 ms) when the broker was the controller's; tolerance a factor of 2."""
    r = sim.run(VALIDATION / name)
    fo = pd.DataFrame(r.summary["failovers"])
    assert len(fo) == 1_000  # the crashed broker led 1,000 of the 10,000 RF-2 partitions
    ev = r.events
    crash_ms = float(ev[ev.kind == "fault_start"].time_ms.iloc[0])
    fenced_ms = float(ev[ev.kind == "broker_fenced"].time_ms.iloc[0])
    # detection: the crashed broker's ZooKeeper session expiring (zookeeper.session.timeout.ms after
    # its last heartbeat; for the controller's broker the others notice the /controller znode then)
    detection = r.scenario.cluster.zookeeper_session_timeout_ms if controller_part_ms else fenced_ms - crash_ms
    last_back = float(fo.election_ms.max())
    elections = last_back - (fenced_ms - crash_ms)
    published = 5_000.0 + controller_part_ms
    simulated = last_back - detection
    assert published / 2 <= simulated <= published * 2, \
        f"V7 {name}: published detection + {published / 1000:g} s, simulated detection + {simulated / 1000:.1f} s"
    assert elections == pytest.approx(5 * 999 + 5, abs=10)  # one at a time, 5 ms each
    # the KRaft contrast: one batch of elections, nothing to load
    k = sim.run(VALIDATION / name, overrides={"cluster.controller.mode": "kraft"})
    kf = pd.DataFrame(k.summary["failovers"])
    assert kf.election_ms.max() - kf.election_ms.min() == pytest.approx(0.0)
    assert kf.election_ms.max() < 9_000 + 100
