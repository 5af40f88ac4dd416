"""Controller and registration fidelity (issue 21): each test pins a behaviour to the Kafka class it
follows (trunk of 2024-10-25) and failed on the model before the fix it comes with."""

from __future__ import annotations

import pytest

import sim
from sim.model import messages as m
from tests.conftest import Tiny, tiny_scenario

SESSION_MS = 9000.0  # broker.session.timeout.ms
HEARTBEAT_MS = 2000.0  # broker.heartbeat.interval.ms


def _kinds(t: Tiny, broker: int) -> list[tuple[float, str]]:
    return [(e[0], e[1]) for e in t.events() if e[2] == broker and e[1].startswith("broker_")]


# --- 1. a restart inside the session timeout (ClusterControlManager.registerBroker) ------------------
def test_a_registration_inside_the_old_session_is_refused_until_the_session_expires(tiny):
    """ClusterControlManager.registerBroker: while the old incarnation's session is valid (unfenced, a
    heartbeat within broker.session.timeout.ms) a new incarnation gets DUPLICATE_BROKER_REGISTRATION;
    BrokerLifecycleManager retries after 100 ms doubling; maybeFenceOneStaleBroker fences the old one
    when its session expires, and only then does the registration go through. Before, the
    registration fenced the old incarnation at once (failover = the restart time)."""
    t = tiny
    t.run(10)
    leader = t.leader()
    ctrl = t.cluster.controller
    t.brokers[leader].crash()
    last_hb = ctrl.registrations[leader].last_heartbeat_ms
    t.run(3_000)
    t.brokers[leader].restart()
    t.run(30_000)
    kinds = _kinds(t, leader)
    names = [k for _, k in kinds]
    assert names[:2] == ["broker_registration_rejected", "broker_registration_rejected"]
    first_ok = names.index("broker_registered")
    assert set(names[:first_ok]) == {"broker_registration_rejected", "broker_fenced"}
    fenced_ms = next(ts for ts, k in kinds if k == "broker_fenced")
    registered_ms = kinds[first_ok][0]
    # fenced when the session lapses (the controller checks every 100 ms), not at the restart
    assert last_hb + SESSION_MS <= fenced_ms <= last_hb + SESSION_MS + 101
    # the broker's next retry after the fence registers it (backoff 100 ms x 2^n, <= 6.4 s at that stage)
    assert fenced_ms < registered_ms <= fenced_ms + 6_400 + 10
    rejected = [ts for ts, k in kinds if k == "broker_registration_rejected"]
    gaps = [round(b - a) - 2 for a, b in zip(rejected, rejected[1:])]  # less the 1 ms links both ways
    assert gaps[:4] == [100, 200, 400, 800]  # resendExponentialBackoff(100, 2, session timeout)
    # the partition it led moves at the fence, in a new epoch, to another broker
    moved = [e for e in t.events("leader_elected") if e[0] > 0]
    assert moved and moved[0][0] >= fenced_ms and moved[0][2] != leader
    # and it ends back in the ISR as a new incarnation, never leading its old epoch
    assert leader in ctrl.state[0].isr and ctrl.registrations[leader].broker_epoch == t.brokers[leader].incarnation


def test_a_registration_after_the_old_session_expired_is_accepted_at_once(tiny):
    t = tiny
    t.run(10)
    leader = t.leader()
    t.brokers[leader].crash()
    t.run(12_000)
    t.brokers[leader].restart()
    t.run(20_000)
    names = [k for _, k in _kinds(t, leader)]
    assert names == ["broker_fenced", "broker_registered", "broker_registered_ack", "broker_unfenced"]


RESTART = {
    "name": "quick-restart", "duration": "25s", "settle": "10s",
    "cluster": {"brokers": 3},
    "network": {"latency": {"dist": "lognormal", "median": "1ms", "sigma": 0.5}},
    "topics": [{"name": "t", "partitions": 2, "replication.factor": 3, "min.insync.replicas": 2}],
    "producers": [{"topic": "t", "rate": "2000/s", "acks": "all"}],
    "faults": [{"kind": "crash", "leader_of": "t-0", "at": "5s", "restart_after": "1s"}],
}


@pytest.mark.parametrize("restart_after", ["1s", "3s", "6s"])
def test_failover_after_a_quick_restart_takes_the_session_timeout_whatever_the_restart_time(restart_after):
    """The quickstart repro of issue 21 (restart_after=3s: election_ms 3,005 before): failover is the old
    session's expiry, 7-9 s after the crash (the last heartbeat was 0-2 s before it)."""
    r = sim.run(RESTART, seed=1, overrides={"faults.0.restart_after": restart_after})
    rows = [f for f in r.summary["failovers"] if f["partition"] == "t-0"]
    assert len(rows) == 1
    assert SESSION_MS - HEARTBEAT_MS <= rows[0]["election_ms"] <= SESSION_MS + 150
    assert rows[0]["unavailable_ms"] >= rows[0]["election_ms"]
    ev = r.events
    crash = ev[ev.kind == "fault_start"].iloc[0]
    b = int(crash.broker)
    fenced = ev[(ev.kind == "broker_fenced") & (ev.broker == b)].time_ms
    registered = ev[(ev.kind == "broker_registered") & (ev.broker == b)].time_ms
    assert len(fenced) >= 1 and len(registered) == 1 and registered.iloc[0] > fenced.iloc[0]
    assert r.summary["acked_lost"] == 0
    assert r.summary["invariant_violations"] == 0, r.summary["invariant_examples"]


def test_zookeeper_mode_refuses_the_new_registration_until_the_zookeeper_session_expires():
    """ZooKeeper mode: the restarted broker cannot create /brokers/ids/N while the old session's
    ephemeral znode exists (KafkaZkClient.checkedEphemeralCreate: NODEEXISTS), so failover waits for
    zookeeper.session.timeout.ms (18 s) too."""
    sc = dict(RESTART, duration="35s", cluster={"brokers": 3, "kafka.version": "3.9", "controller.mode": "zookeeper"})
    r = sim.run(sc, seed=1)
    rows = [f for f in r.summary["failovers"] if f["partition"] == "t-0"]
    assert len(rows) == 1 and 18_000 - HEARTBEAT_MS <= rows[0]["election_ms"] <= 18_000 + 200
