"""Mechanism tests: exact event sequences on tiny hand-driven clusters (constant 1 ms links)."""

from __future__ import annotations

import pytest

from sim.model import messages as m
from tests.conftest import Tiny, tiny_scenario


def test_hw_advances_only_once_the_isr_has_the_batch(tiny):
    tiny.run(10)
    leader = tiny.leader()
    tiny.client.produce(tiny.cluster.network, tiny.brokers[leader], [tiny.client.batch(count=10)], acks=-1)
    tiny.run(50)
    followers = [b for b in (0, 1, 2) if b != leader]
    # leader appends on arrival (t=11); parked follower fetches are answered at once and the
    # followers append at t=12; their next fetch (t=13) tells the leader, which moves the HW.
    assert tiny.appended() == [(11.0, leader, 0, 10_000), (12.0, followers[0], 0, 10_000),
                               (12.0, followers[1], 0, 10_000)]
    assert tiny.hw_advances() == [(13.0, leader, 10)]
    assert tiny.client.results() == [(14.0, 10_000, m.NONE, 0)]


def test_acks_1_is_answered_at_leader_append_before_replication(tiny):
    tiny.run(10)
    tiny.client.produce(tiny.cluster.network, tiny.brokers[tiny.leader()], [tiny.client.batch()], acks=1)
    tiny.run(50)
    assert tiny.client.results() == [(12.0, 10_000, m.NONE, 0)]  # one round trip, before the HW moves (13)


def test_hw_waits_for_a_dead_isr_member_until_it_is_fenced(tiny):
    tiny.run(10)
    leader = tiny.leader()
    victim = [b for b in (0, 1, 2) if b != leader][0]
    tiny.brokers[victim].crash()
    tiny.client.produce(tiny.cluster.network, tiny.brokers[leader], [tiny.client.batch()], acks=-1)
    tiny.run(20_000)
    fenced = [e for e in tiny.events("broker_fenced") if e[2] == victim]
    assert len(fenced) == 1
    fence_ms = fenced[0][0]
    # the crashed follower stays in the ISR until its session (9 s) lapses, and so does the HW
    assert 9_000 - 2_000 <= fence_ms <= 9_000 + 200
    (hw_t, _, hw), = tiny.hw_advances()
    assert hw == 10 and hw_t > fence_ms
    (ack_t, _, err, _), = tiny.client.results()
    assert err == m.NONE and ack_t > fence_ms


def test_isr_shrinks_a_stuck_follower_after_replica_lag_time(tiny):
    tiny.run(100)
    leader = tiny.leader()
    stuck = [b for b in (0, 1, 2) if b != leader][0]
    tiny.stall_fetcher(stuck)
    tiny.client.produce(tiny.cluster.network, tiny.brokers[leader], [tiny.client.batch()], acks=-1)
    tiny.run(60_000)
    shrinks = [e for e in tiny.events("isr_change") if "alter_partition" in e[5]]
    assert len(shrinks) == 1
    t, kind, _, _, size, detail = shrinks[0]
    # caught up last at ~t=100; the expiry task runs every lag/2 = 15 s, so the shrink comes at the
    # first check more than 30 s later: t=45 s (Kafka: "up to replicaLagTimeMaxMs x 1.5").
    assert 45_000 <= t <= 45_010 and size == 2 and str(stuck) not in detail.split("->")[1]
    assert not tiny.events("broker_fenced")  # its session stayed alive: the leader, not the controller, acted
    # acks=all waited for the stuck ISR member longer than request.timeout.ms (30 s): the very
    # hazard ProducerConfig warns of when request.timeout.ms <= replica.lag.time.max.ms.
    (ack_t, _, err, _), = tiny.client.results()
    assert err == m.REQUEST_TIMED_OUT and ack_t == pytest.approx(100 + 1 + 30_000 + 1)


def test_not_enough_replicas_rejects_before_append(tiny):
    tiny.run(10)
    leader = tiny.leader()
    for b in (0, 1, 2):
        if b != leader:
            tiny.brokers[b].crash()
    tiny.run(12_000)  # both followers fenced: ISR = [leader] < min.insync.replicas = 2
    assert tiny.cluster.controller.state[0].isr == (leader,)
    n_appended = len(tiny.appended())
    tiny.client.produce(tiny.cluster.network, tiny.brokers[leader], [tiny.client.batch()], acks=-1)
    tiny.client.produce(tiny.cluster.network, tiny.brokers[leader], [tiny.client.batch(seq=1)], acks=1)
    tiny.run(12_100)
    res = tiny.client.results()
    assert [r[2] for r in res] == [m.NOT_ENOUGH_REPLICAS, m.NONE]  # acks=1 still succeeds
    assert len(tiny.appended()) == n_appended + 1  # only the acks=1 batch was written


@pytest.mark.parametrize("version, expected", [("3.6", m.NOT_ENOUGH_REPLICAS_AFTER_APPEND),
                                               ("3.9", m.REQUEST_TIMED_OUT)])
def test_isr_shrinking_below_min_while_waiting(version, expected):
    """Before 3.7 the HW advances on the shrunken ISR and the request fails after append;
    from 3.7 (KIP-966 part 1) the HW freezes under min ISR and the request times out."""
    t = Tiny(tiny_scenario(**{"cluster/kafka.version": version}))
    t.run(10)
    leader = t.leader()
    for b in (0, 1, 2):
        if b != leader:
            t.brokers[b].crash()
    t.client.produce(t.cluster.network, t.brokers[leader], [t.client.batch()], acks=-1, timeout_ms=20_000)
    t.run(40_000)
    (ack_t, _, err, _), = t.client.results()
    assert err == expected
    assert len(t.appended()) == 1  # the batch is in the leader's log either way
    if version == "3.9":
        assert t.hw_advances() == [] and t.events("hw_stall")


def test_election_picks_a_live_isr_member_and_bumps_the_epoch():
    t = Tiny(tiny_scenario())
    t.run(10)
    replicas = t.cluster.partitions[0].replicas
    leader, second, third = replicas
    # `second` falls out of the ISR (stuck fetcher) while staying alive and unfenced
    t.stall_fetcher(second)
    t.client.produce(t.cluster.network, t.brokers[leader], [t.client.batch()], acks=1)
    t.run(50_000)
    assert second not in t.cluster.controller.state[0].isr
    t.brokers[leader].crash()
    t.run(65_000)
    elected = [e for e in t.events("leader_elected") if e[0] > 0]
    assert len(elected) == 1
    time_ms, _, new_leader, _, epoch, detail = elected[0]
    # assignment order would give `second`, but it is not in the ISR: the ISR member wins
    assert new_leader == third and epoch == 1 and detail == "clean"
    assert t.brokers[third].replicas[0].is_leader and t.brokers[third].replicas[0].leader_epoch == 1
    assert t.brokers[third].logs[0].epoch_cache[-1] == (1, 10)


def test_no_live_isr_member_leaves_the_partition_offline_unless_unclean():
    for unclean in (False, True):
        t = Tiny(tiny_scenario(**{"topics/0/unclean.leader.election.enable": unclean}))
        t.run(10)
        leader, second, third = t.cluster.partitions[0].replicas
        t.stall_fetcher(second)
        t.stall_fetcher(third)
        t.client.produce(t.cluster.network, t.brokers[leader], [t.client.batch()], acks=1)
        t.run(50_000)  # both followers fell behind and were shrunk out of the ISR
        assert t.cluster.controller.state[0].isr == (leader,)
        t.brokers[leader].crash()
        t.run(70_000)
        state = t.cluster.controller.state[0]
        if unclean:
            assert state.leader == second and t.events("unclean_election")
        else:
            assert state.leader == -1 and t.events("partition_offline") and not t.events("unclean_election")


def test_follower_truncates_its_unreplicated_tail_by_leader_epoch(tiny):
    t = tiny
    net = t.cluster.network
    t.run(10)
    old, f1, f2 = t.cluster.partitions[0].replicas
    t.client.produce(net, t.brokers[old], [t.client.batch(count=10, batch_id=1)], acks=1)  # A: replicated
    t.run(100)
    t.stall_fetcher(f1)
    t.stall_fetcher(f2)
    t.client.produce(net, t.brokers[old], [t.client.batch(count=5, batch_id=2)], acks=1)  # B: leader only
    t.run(200)
    assert list(t.brokers[old].logs[0].batch_id) == [1, 2] and list(t.brokers[f1].logs[0].batch_id) == [1]
    t.brokers[old].crash()
    t.resume_fetcher(f1)
    t.resume_fetcher(f2)
    t.run(15_000)
    new = t.leader()
    assert new in (f1, f2)
    t.client.produce(net, t.brokers[new], [t.client.batch(count=3, batch_id=3)], acks=1)  # C in epoch 1
    t.run(15_100)
    t.brokers[old].restart()
    t.run(20_000)
    trunc = [e for e in t.events("truncation") if e[2] == old]
    assert len(trunc) == 1 and trunc[0][4] == 10  # cut back to the end of epoch 0 on the new leader
    for b in (old, f1, f2):
        assert list(t.brokers[b].logs[0].batch_id) == [1, 3]
        assert [e[0] for e in t.brokers[b].logs[0].epoch_cache] == [0, 1]


def test_follower_truncates_to_its_own_end_of_an_epoch_the_leader_lacks(tiny, monkeypatch):
    """KIP-279: a follower whose last epoch the leader never saw truncates to the end of the largest
    epoch both have, by its own end of that epoch (not the leader's, which is later)."""
    from sim.model.fetcher import ReplicaFetcher

    t = tiny
    net = t.cluster.network
    stalled: set[int] = set()  # brokers that fetch from no leader, whichever it is
    fetch = ReplicaFetcher.maybe_fetch
    monkeypatch.setattr(ReplicaFetcher, "maybe_fetch",
                        lambda self: None if self.broker.broker_id in stalled else fetch(self))

    def stall(x):
        stalled.add(x)
        t.stall_fetcher(x)

    t.run(10)
    a, b, c = t.cluster.partitions[0].replicas
    t.client.produce(net, t.brokers[a], [t.client.batch(count=10, batch_id=1)], acks=1)  # on all three
    t.run(100)
    stall(b)
    t.client.produce(net, t.brokers[a], [t.client.batch(count=5, batch_id=2)], acks=1)  # a and c: 10..15
    t.run(200)
    stall(c)
    t.brokers[a].crash()
    stalled.discard(b)
    t.resume_fetcher(b)
    t.run(15_000)
    assert t.leader() == b  # epoch 1, whose log ends at 10
    t.client.produce(net, t.brokers[b], [t.client.batch(count=3, batch_id=3)], acks=1)  # b only: 10..13
    t.run(15_100)
    t.brokers[b].crash()
    t.run(28_000)
    assert t.leader() == c  # epoch 2, with epoch 0 up to 15 and no epoch 1
    stalled.discard(c)
    t.client.produce(net, t.brokers[c], [t.client.batch(count=4, batch_id=4)], acks=1)  # 15..19
    t.run(28_100)
    t.brokers[b].restart()
    t.run(40_000)
    # b's last epoch (1) is unknown to c, whose largest epoch <= 1 is 0, ending at 15 on c but at
    # 10 on b: b truncates to 10, then fetches 2 and 4
    assert [e[4] for e in t.events("truncation") if e[2] == b] == [10]
    assert list(t.brokers[b].logs[0].batch_id) == [1, 2, 4]


def test_idempotent_producer_retry_is_deduplicated(tiny):
    t = tiny
    net = t.cluster.network
    t.run(10)
    leader = t.brokers[t.leader()]
    b = t.client.batch(count=10, pid=1000, seq=0, batch_id=7)
    t.client.produce(net, leader, [b], acks=1)
    t.client.produce(net, leader, [b], acks=1)  # the retry of an ambiguous send
    t.client.produce(net, leader, [t.client.batch(count=10, pid=1000, seq=2, batch_id=8)], acks=1)  # a gap
    t.run(50)
    res = t.client.results()
    assert [(r[1], r[2], r[3]) for r in res] == [(7, m.NONE, 0), (7, m.NONE, 0),
                                                (8, m.OUT_OF_ORDER_SEQUENCE_NUMBER, -1)]
    assert list(leader.logs[0].batch_id) == [7]


def test_without_idempotence_a_retry_is_a_duplicate(tiny):
    t = tiny
    t.run(10)
    leader = t.brokers[t.leader()]
    b = t.client.batch(count=10, pid=-1, batch_id=7)
    t.client.produce(t.cluster.network, leader, [b], acks=1)
    t.client.produce(t.cluster.network, leader, [b], acks=1)
    t.run(50)
    assert list(leader.logs[0].batch_id) == [7, 7]


def test_elections_are_serial_so_failover_grows_with_partitions():
    # ZooKeeper-era controller (cluster.controller.mode); broker 0 hosts it, so another broker fails
    sc = tiny_scenario(**{"topics/0/partitions": 30, "cluster/controller.election.cost.ms": "5ms",
                          "cluster/controller.mode": "zookeeper", "cluster/kafka.version": "3.9"})
    t = Tiny(sc)
    t.run(10)
    victim = 1
    led = [p for p, rec in t.cluster.controller.state.items() if rec.leader == victim]
    t.brokers[victim].crash()
    t.run(25_000)  # zookeeper.session.timeout.ms 18 s
    elected = sorted(e[0] for e in t.events("leader_elected") if e[0] > 0)
    assert len(elected) == len(led) == 10
    fence_ms = [e[0] for e in t.events("broker_fenced")][0]
    # one election every 5 ms after fencing
    assert elected[0] == pytest.approx(fence_ms + 5)
    assert elected[-1] == pytest.approx(fence_ms + 5 * len(led))


def test_restarted_broker_catches_up_and_rejoins_the_isr(tiny):
    t = tiny
    t.run(10)
    leader = t.leader()
    follower = [b for b in (0, 1, 2) if b != leader][0]
    t.brokers[follower].crash()
    for i in range(5):
        t.client.produce(t.cluster.network, t.brokers[leader], [t.client.batch(count=10, batch_id=100 + i)], acks=1)
    t.run(12_000)
    assert follower not in t.cluster.controller.state[0].isr
    t.brokers[follower].restart()
    t.run(20_000)
    assert follower in t.cluster.controller.state[0].isr
    assert t.brokers[follower].logs[0].batch_id == t.brokers[leader].logs[0].batch_id
    kinds = [e[1] for e in t.events() if e[2] == follower or "->" in e[5]]
    assert kinds.index("broker_registered") < kinds.index("broker_unfenced")


def test_legacy_acks_n_waits_for_any_n_isr_replicas(tiny):
    """Kafka 0.8 acks=2: any two ISR replicas (leader included) suffice, unlike acks=all."""
    t = tiny
    t.run(10)
    leader = t.leader()
    stuck = [b for b in (0, 1, 2) if b != leader][0]
    t.stall_fetcher(stuck)
    t.client.produce(t.cluster.network, t.brokers[leader], [t.client.batch(batch_id=1)], acks=2)
    t.client.produce(t.cluster.network, t.brokers[leader], [t.client.batch(batch_id=2)], acks=-1,
                     timeout_ms=5_000)
    t.run(6_000)
    res = {r[1]: r for r in t.client.results()}
    assert res[1][2] == m.NONE and res[1][0] == 14.0  # the healthy follower's next fetch confirmed it
    assert res[2][2] == m.REQUEST_TIMED_OUT  # acks=all still waits for the stuck ISR member
    assert stuck in t.cluster.controller.state[0].isr


def test_under_replicated_and_offline_levels_follow_the_facts():
    import sim
    from tests.test_outcomes import SCEN, SHORT

    r = sim.run(SCEN / "quickstart.yaml", seed=1, overrides=SHORT)
    ts = r.timeseries.set_index("second")
    fence = r.events[r.events.kind == "broker_fenced"].time_ms.iloc[0]
    after = int(fence // 1000) + 1
    # every partition has a replica on the crashed broker: all 6 under-replicated once it is fenced
    assert ts.loc[after, "under_replicated_partitions"] == pytest.approx(6.0)
    assert ts.loc[1, "under_replicated_partitions"] == 0.0
    assert ts["under_replicated_partitions"].iloc[-1] == 0.0  # rejoined after the restart
    assert (ts["offline_partitions"] == 0).all()
    assert r.summary["isr_shrinks"] == 6 and r.summary["isr_expands"] == 6
