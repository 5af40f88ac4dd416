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


# --- 2. KIP-903: ISR expansion checks the follower's broker epoch ------------------------------------
def _spy_isr_joins(t: Tiny, follower: int) -> list:
    """(time, follower's LEO, leader's HW) at each committed ISR change that adds `follower`."""
    joins = []
    ctrl = t.cluster.controller
    change = ctrl._change

    def spy(rec, **kw):
        new = change(rec, **kw)
        if follower in new.isr and follower not in rec.isr:
            leader = t.brokers[new.leader]
            joins.append((t.env.now, t.brokers[follower].logs[0].leo, leader.logs[0].hw))
        return new
    ctrl._change = spy
    return joins


def test_a_restarted_follower_that_lost_its_tail_does_not_rejoin_the_isr_on_its_old_standing(tiny):
    """KIP-903 (3.5+, Partition.isReplicaIsrEligible, ReplicationControlManager.ineligibleReplicasForIsr):
    the leader keeps the broker epoch each follower fetched with; a follower whose stored epoch is not
    the one in the metadata (a new incarnation that has not fetched yet) may not join the ISR, and the
    AlterPartition carries each member's epoch, which the controller checks. Here the restarted
    follower's first fetches are lost, so its first fetch reaches the leader after the leader has seen
    it unfenced. Before, that (full) fetch re-added it to the ISR on its old incarnation's log end
    offset, with an empty log (power loss), before the fetch itself was applied."""
    t = tiny
    t.run(10)
    leader = t.leader()
    lb = t.brokers[leader]
    f = [b for b in (0, 1, 2) if b != leader][0]
    for i in range(20):
        t.client.produce(t.cluster.network, lb, [t.client.batch(count=10)], acks=-1)
        t.run(20 + 10 * i)
    t.run(1_000)
    assert lb.logs[0].hw == 200 and t.brokers[f].logs[0].leo == 200
    t.brokers[f].power_off()  # the page cache is gone: the follower restarts with an empty log
    assert t.brokers[f].logs[0].leo == 0
    t.run(12_000)
    assert f not in t.cluster.controller.state[0].isr  # fenced when its session expired
    joins = _spy_isr_joins(t, f)
    net = t.cluster.network
    send = net.send

    def lossy(src, dst, msg, nbytes=0):
        # the new incarnation's fetches are lost until the leader knows it unfenced
        if type(msg) is m.FetchRequest and src is t.brokers[f] and not unfenced_at_leader():
            return
        send(src, dst, msg, nbytes)

    def unfenced_at_leader():
        return lb.registered and f not in lb.fenced and t.brokers[f].registered and not t.brokers[f].starting

    net.send = lossy
    t.brokers[f].restart()
    t.run(60_000)
    assert joins, "the follower never rejoined the ISR"
    for when, leo, leader_hw in joins:
        assert leo >= leader_hw, f"rejoined at {when} ms with LEO {leo} < HW {leader_hw}"


def test_the_controller_refuses_an_isr_member_with_a_stale_broker_epoch(tiny):
    """ReplicationControlManager.ineligibleReplicasForIsr: a member whose broker epoch in the request is
    not its registered epoch (-1: not checked) makes the AlterPartition fail with INELIGIBLE_REPLICA."""
    t = tiny
    t.run(10)
    ctrl = t.cluster.controller
    leader = t.leader()
    lb = t.brokers[leader]
    f = [b for b in (0, 1, 2) if b != leader][0]
    t.stall_fetcher(f)
    t.run(1_000)  # its last fetch parked at the leader has expired: it is not fetching
    rec = ctrl.state[0]
    shrink = m.AlterPartition(lb.next_request_id(), leader, lb.incarnation, 0, rec.leader_epoch, rec.partition_epoch,
                              tuple(b for b in rec.isr if b != f))
    t.cluster.network.send(lb, ctrl, shrink)
    t.run(1_100)
    rec = ctrl.state[0]
    assert f not in rec.isr
    stale = ctrl.registrations[f].broker_epoch - 1
    t.brokers[leader].replicas[0].pending_isr = None
    expand = m.AlterPartition(lb.next_request_id(), leader, lb.incarnation, 0, rec.leader_epoch, rec.partition_epoch,
                              rec.isr + (f,), {f: stale})
    errors = []
    orig = lb.on_alter_partition_response
    lb.on_alter_partition_response = lambda resp: (errors.append(resp.error), orig(resp))
    t.cluster.network.send(lb, ctrl, expand)
    t.run(1_200)
    assert errors == ["INELIGIBLE_REPLICA"] and f not in ctrl.state[0].isr
    # the same proposal with its registered epoch goes through
    current = m.AlterPartition(lb.next_request_id(), leader, lb.incarnation, 0, rec.leader_epoch, rec.partition_epoch,
                               rec.isr + (f,), {f: ctrl.registrations[f].broker_epoch})
    t.cluster.network.send(lb, ctrl, current)
    t.run(1_300)
    assert errors[-1] == m.NONE and f in ctrl.state[0].isr


# --- 3. controlled shutdown of a partition whose only ISR member is the broker shutting down ----------
def _alone_in_the_isr(**over) -> tuple[Tiny, int]:
    """A tiny cluster (min.insync.replicas 1) whose partition's ISR is just its leader: both followers
    crashed and were fenced."""
    t = Tiny(tiny_scenario(**{"topics/0/min.insync.replicas": 1, **over}))
    t.run(10)
    leader = t.leader()
    for b in (0, 1, 2):
        if b != leader:
            t.brokers[b].crash()
    t.run(12_000)
    assert t.cluster.controller.state[0].isr == (leader,)
    return t, leader


def test_controlled_shutdown_of_the_last_isr_member_leaves_the_partition_leaderless_at_once():
    """ReplicationControlManager.handleBrokerInControlledShutdown -> generateLeaderAndIsrUpdates: the
    broker is no acceptable leader from the moment it asks to shut down, so a partition with no other
    live ISR member gets leader -1 in that same batch (the ISR keeps its last member, KRaft without
    ELR). Before, the broker kept leading until the controller let it go and fenced it."""
    t, leader = _alone_in_the_isr()
    t.brokers[leader].begin_controlled_shutdown()
    asked_ms = t.env.now
    t.run(14_000)
    offline = t.events("partition_offline")
    assert len(offline) == 1 and offline[0][5] == "controlled_shutdown"
    assert offline[0][0] <= asked_ms + 1  # in the controller's first answer to wantShutDown
    (stopped_ms, *_), = t.events("broker_shutdown")
    assert offline[0][0] < stopped_ms
    rec = t.cluster.controller.state[0]
    assert rec.leader == -1 and rec.isr == (leader,)


def test_controlled_shutdown_of_the_last_isr_member_elects_uncleanly_when_allowed():
    """The same, with unclean.leader.election.enable (honoured by a KRaft controller from 3.9): a live
    replica outside the ISR becomes leader at once (PartitionChangeBuilder.electAnyLeader,
    Election.UNCLEAN). Here a follower is back but its fetches are lost, so it stays outside the ISR."""
    t, leader = _alone_in_the_isr(**{"topics/0/unclean.leader.election.enable": True})
    other = [b for b in (0, 1, 2) if b != leader][0]
    net = t.cluster.network
    send = net.send
    net.send = lambda src, dst, msg, nbytes=0: (None if type(msg) is m.FetchRequest and src is t.brokers[other]
                                                else send(src, dst, msg, nbytes))
    t.brokers[other].restart()
    t.run(25_000)
    assert not t.cluster.controller.registrations[other].fenced and other not in t.cluster.controller.state[0].isr
    t.brokers[leader].begin_controlled_shutdown()
    asked_ms = t.env.now
    t.run(27_000)
    rec = t.cluster.controller.state[0]
    assert rec.leader == other and not t.events("partition_offline")
    (elected_ms, *_), = t.events("unclean_election")
    (stopped_ms, *_), = t.events("broker_shutdown")
    assert elected_ms <= asked_ms + 1 < stopped_ms


# --- 5. controlled shutdown under acks=all: the remaining follower's long-poll -----------------------
FOUR = {"cluster.brokers": 4, "topics.0.partitions": 8, "producers.0.acks": "all",
        "producers.0.enable.idempotence": True,
        "duration": "11s", "settle": "1s", "faults.0.restart_after": "4s"}


def test_controlled_shutdown_under_acks_all_waits_for_the_followers_long_poll_at_most():
    """Seed 7 of a 4-broker, 8-partition RF 3 cluster (seed 5 before the producers drew their workload
    from a stream of their own): the follower that stays in the moved partitions'
    ISR already has a fetch long-polled at the new leader for the partitions it follows there; the
    moved ones join its next fetch only when that one returns (AbstractFetcherThread.addPartitions does
    not interrupt a fetch in flight; DelayedFetch completes only on data for its own partitions), and
    the sticky partitioner feeds none of them while every in-flight produce slot to the new leader
    waits for that follower. So acks wait up to replica.fetch.wait.max.ms (500 ms) after the move, as
    in Kafka; a shorter long-poll shortens the wait with it."""
    path = "scenarios/faults/controlled-shutdown.yaml"
    slow = sim.run(path, seed=7, overrides=FOUR).summary
    fast = sim.run(path, seed=7, overrides={**FOUR, "cluster.replica.fetch.wait.max.ms": "100ms"}).summary
    for s in (slow, fast):
        assert s["failovers"] and all(fo["election_ms"] < 5 for fo in s["failovers"])
        assert s["acked_lost"] == 0
    worst = max(fo["unavailable_ms"] for fo in slow["failovers"])
    assert 400 < worst < 500 + 60
    assert max(fo["unavailable_ms"] for fo in fast["failovers"]) < 100 + 60


# --- 6. a slow disk stalls the fetcher thread in the append -------------------------------------------
def test_a_fetched_write_stalled_on_a_slow_disk_is_applied_not_thrown_away_by_the_fetch_timeout(tiny):
    """ReplicaFetcherThread: replica.socket.timeout.ms bounds the fetch round trip; once the response is
    in, the thread appends it to the log however long the disk takes (processFetchRequest ->
    processPartitionData), sending nothing meanwhile. Before, a 40 s disk write outlived the 30 s fetch
    timeout: the fetcher gave up on the request, sent another, and threw the completed write away."""
    from sim.model.disk import SlowDisk
    t = tiny
    t.run(10)
    leader = t.leader()
    f = [b for b in (0, 1, 2) if b != leader][0]
    fb = t.brokers[f]
    SlowDisk(fb, latency=40_000.0).install()
    sent = []
    net = t.cluster.network
    send = net.send

    def spy(src, dst, msg, nbytes=0):
        if type(msg) is m.FetchRequest and src is fb:
            sent.append(t.env.now)
        send(src, dst, msg, nbytes)
    net.send = spy
    t.client.produce(net, t.brokers[leader], [t.client.batch(count=10)], acks=1)
    t.run(600)
    start = len(sent)
    t.run(40_100)
    assert fb.logs[0].leo == 10  # the write finished at ~40 s and was applied
    assert len(sent) - start <= 1  # no fetch while the thread was stalled in the append (one after it)


def test_a_run_ending_before_the_old_incarnation_is_fenced_loses_nothing_under_acks_all():
    """acks=all, min.insync 2: the leader crashes at 1 s and restarts at 2 s; the run ends at 5 s, before
    its old session expires (about 10 s). The controller still names the gone leader: the final log is
    the ISR member the pending election will choose, not the restarted process's stale checkpointed HW
    (which counted 337,485 acknowledged records as lost)."""
    import sim

    root = __import__("pathlib").Path(__file__).resolve().parents[1]
    sc = sim.load_scenario(root / "scenarios" / "bench" / "steady.yaml", overrides={
        "duration": "3s", "settle": "2s", "faults.0.at": "1s", "faults.0.restart_after": "1s",
        "producers.0.rate": "100000/s"})
    res = sim.run(sc, seed=1)
    ev = res.events
    assert (ev["kind"] == "broker_registration_rejected").any()  # still waiting for the old session to end
    assert not (ev["kind"] == "broker_fenced").any()
    assert res.summary.records_acked > 0 and res.summary.acked_lost == 0 and res.summary.invariant_violations == 0
