"""Network: egress serialisation per sender (bandwidth), per-link loss, FIFO links, closed connections.

Exact timelines with constant latencies: a Network built by hand between FakeClient endpoints.
"""

from __future__ import annotations

import numpy as np
import pytest
import simpy

from sim.model import messages as m
from sim.model.distributions import Distribution
from sim.model.network import Network
from tests.conftest import attach_endpoints, Tiny, tiny_scenario

MB = 1_000_000


def make_net(bandwidth=None, latency_ms=1.0, loss_seed=7, latency=None):
    env = simpy.Environment()
    lat = latency or Distribution("constant", np.random.default_rng(0), value=latency_ms)
    net = Network(env, lat, bandwidth, loss_rng=np.random.default_rng(loss_seed))
    return env, net


def endpoints(env, net, n):
    return attach_endpoints(env, net, n)


def rng_state(rng):
    return rng.bit_generator.state


# --- bandwidth: egress serialisation per sender ----------------------------------------------------

def test_ten_messages_from_one_sender_leave_its_nic_one_after_another():
    """Defect 8: ten 1 MB messages at once over 1 MB/s took ~1,001 ms each, in parallel. The
    sender's NIC transmits them one after another: the k-th arrives at k seconds plus latency."""
    env, net = make_net(bandwidth=1 * MB)
    a, b = endpoints(env, net, 2)
    for i in range(10):
        net.send(a, b, i, MB)
    env.run()
    assert [msg for _, msg in b.responses] == list(range(10))
    assert [t for t, _ in b.responses] == pytest.approx([1000.0 * k + 1.0 for k in range(1, 11)])


def test_two_senders_transmit_in_parallel():
    """Each endpoint has its own NIC: two senders' messages to one receiver leave at the same
    time (the receiver's NIC is not modelled), each sender's own messages one after another."""
    env, net = make_net(bandwidth=1 * MB)
    a, b, dst = endpoints(env, net, 3)
    for i in range(3):
        net.send(a, dst, ("a", i), MB)
        net.send(b, dst, ("b", i), MB)
    env.run()
    got = {msg: t for t, msg in dst.responses}
    for i in range(3):
        assert got[("a", i)] == pytest.approx(1000.0 * (i + 1) + 1.0)
        assert got[("b", i)] == pytest.approx(1000.0 * (i + 1) + 1.0)


def test_nic_is_shared_by_all_connections_of_a_sender_and_idles_between_bursts():
    """One NIC for every destination (a leader's fetch responses to all followers queue together);
    a message sent after the NIC went idle starts at once, not at the old backlog's end."""
    env, net = make_net(bandwidth=1 * MB)
    a, b, c = endpoints(env, net, 3)
    net.send(a, b, "to-b", MB)
    net.send(a, c, "to-c", MB // 2)  # waits for the 1 MB to b, then 500 ms
    env.run(until=5000.0)
    net.send(a, b, "later", 0)  # NIC idle since 1500 ms
    env.run()
    assert b.responses == [(pytest.approx(1001.0), "to-b"), (pytest.approx(5001.0), "later")]
    assert c.responses == [(pytest.approx(1501.0), "to-c")]


def test_small_message_waits_behind_a_large_one_and_order_holds_with_random_latency():
    """FIFO per link (TCP) with bandwidth and a widely spread latency: every message arrives in
    send order and never before its own bytes left the sender's NIC."""
    lat = Distribution("lognormal", np.random.default_rng(3), median=5.0, sigma=1.5)
    env, net = make_net(bandwidth=10 * MB, latency=lat)
    a, b = endpoints(env, net, 2)
    sizes = np.random.default_rng(4).integers(0, 200_000, 400).tolist()
    tx_end, t = [], 0.0
    for i, n in enumerate(sizes):
        net.send(a, b, i, n)
        t += n / 10_000.0  # ms at 10 MB/s
        tx_end.append(t)
    env.run()
    assert [msg for _, msg in b.responses] == list(range(len(sizes)))
    arrivals = [t for t, _ in b.responses]
    assert arrivals == sorted(arrivals)
    assert all(at >= end - 1e-9 for at, end in zip(arrivals, tx_end))
    assert arrivals[-1] >= tx_end[-1] > 3000.0  # 400 x ~100 kB at 10 MB/s: about 4 s of serialisation


@pytest.mark.parametrize("config", ["plain", "bandwidth", "lossy", "impaired"])
def test_fifo_holds_when_float_rounding_would_fire_a_clamped_message_first(config):
    """A message that drew a shorter latency than the one before it on its link is held back to that
    one's arrival (TCP: no overtaking). SimPy fires a timer at `now + delay`, so scheduling both with
    `delay = arrival - now` from different send times could round the later one an ulp *earlier*,
    and it was delivered first: three produce requests of one idempotent producer reached the
    leader in the order 3, 1, 2 (the broker took sequence 2 from an unknown producer, then answered
    0 and 1 OUT_OF_ORDER_SEQUENCE_NUMBER, and the log ended reordered). Send times and latencies
    where the rounding goes wrong (found by a seeded search): the first message, sent at t0 with
    latency 9.3467..., is due at 13.942758876234619, and a timer for that instant set at t1 fires at
    ...617."""
    t0, latency, t1 = 4.596034657377336, 9.346724218857283, 4.796893006042311
    due = t0 + latency
    assert t0 + (due - t0) > t1 + (due - t1)  # the rounding this test is about
    draws = iter([latency, 0.001, 0.001])

    class Fixed:  # the latency draws, in order
        def sample(self):
            return next(draws)

    env, net = make_net(bandwidth=MB if config == "bandwidth" else None, latency=Fixed())
    if config == "lossy":
        net.set_loss_all(1e-12)  # binds the general send; loses nothing
    a, b, c = endpoints(env, net, 3)
    if config == "impaired":
        net.cut(a, c)  # binds the impaired send; the a -> b link is not impaired
    env.run(until=t0)
    net.send(a, b, "first")
    env.run(until=t1)
    net.send(a, b, "second")  # lands on the first one's arrival: must still come after it
    net.send(a, b, "third")
    env.run()
    assert [msg for _, msg in b.responses] == ["first", "second", "third"]


def test_without_bandwidth_size_costs_nothing_and_no_nic_state_is_kept():
    """Bandwidth unset: arrival is send time plus latency whatever the size, with the cheap send."""
    env, net = make_net(bandwidth=None)
    a, b = endpoints(env, net, 2)
    for i in range(5):
        net.send(a, b, i, 10 * MB)
    env.run()
    assert b.responses == [(1.0, i) for i in range(5)]
    assert net._nic_free == {}
    assert net.send == net._send_plain


# --- loss ------------------------------------------------------------------------------------------

def test_loss_one_drops_everything_silently_and_counts_it_by_type():
    """A lost message never arrives, and nobody is told: no reset, the sender learns by timeout."""
    env, net = make_net()
    a, b = endpoints(env, net, 2)
    net.set_loss(a, b, 1.0)
    for i in range(20):
        net.send(a, b, m.BrokerHeartbeat(0, 1, 0))
    net.send(a, b, "text")
    net.send(b, a, "reply")  # the other direction is not lossy
    env.run()
    assert b.responses == [] and b.resets == [] and a.resets == []
    assert a.responses == [(1.0, "reply")]
    assert net.dropped == {m.BrokerHeartbeat: 20, str: 1}
    assert net.sent == {m.BrokerHeartbeat: 20, str: 2}


def test_loss_probability_drops_about_that_share_deterministically():
    def run(seed):
        env, net = make_net(loss_seed=seed)
        a, b = endpoints(env, net, 2)
        net.set_loss_all(0.3)
        for i in range(10_000):
            net.send(a, b, i)
        env.run()
        return [msg for _, msg in b.responses], net.dropped[int]

    got, dropped = run(11)
    assert dropped + len(got) == 10_000
    assert 0.28 < dropped / 10_000 < 0.32
    assert got == sorted(got)  # survivors keep their order
    assert run(11) == (got, dropped)  # same seed, same losses
    assert run(12)[0] != got


def test_no_loss_configured_draws_nothing_from_the_loss_stream():
    """Runs without loss must stay bit-identical to runs of the model before loss existed."""
    env, net = make_net(bandwidth=1 * MB)
    a, b = endpoints(env, net, 2)
    before = rng_state(net.loss_rng)
    for i in range(100):
        net.send(a, b, i, 1000)
        net.send(b, a, i, 1000)
    net.set_loss(a, b, 0.5)  # one lossy link draws only for its own messages
    net.set_loss(a, b, 0.0)  # and once lossless again, for none
    for i in range(100):
        net.send(a, b, i, 1000)
    env.run()
    assert rng_state(net.loss_rng) == before
    assert net.dropped == {} and len(b.responses) == 200


def test_loss_draws_only_for_messages_on_lossy_links():
    env, net = make_net()
    a, b, c = endpoints(env, net, 3)
    net.set_loss(a, b, 0.5)
    before = rng_state(net.loss_rng)
    for i in range(5000):
        net.send(a, c, i)  # not lossy
        net.send(c, a, i)
    env.run()
    assert rng_state(net.loss_rng) == before and len(c.responses) == len(a.responses) == 5000
    net.send(a, b, "x")
    assert rng_state(net.loss_rng) != before


def test_link_setting_overrides_all_links_and_none_restores_it():
    env, net = make_net()
    a, b, c = endpoints(env, net, 3)
    net.set_loss_all(1.0)
    net.set_loss(a, b, 0.0)  # this direction kept lossless
    net.send(a, b, "kept")
    net.send(a, c, "lost")
    env.run()
    net.set_loss(a, b, None)  # follows set_loss_all again
    net.send(a, b, "lost too")
    env.run()
    net.set_loss_all(0.0)
    net.send(a, c, "after")
    env.run()
    assert [msg for _, msg in b.responses] == ["kept"]
    assert [msg for _, msg in c.responses] == ["after"]
    assert net.dropped == {str: 2}
    assert net.send == net._send_plain  # no loss left: back to the cheap path


def test_lost_message_still_uses_the_senders_nic():
    env, net = make_net(bandwidth=1 * MB)
    a, b, c = endpoints(env, net, 3)
    net.set_loss(a, b, 1.0)
    net.send(a, b, "lost", MB)
    net.send(a, c, "next", MB)
    env.run()
    assert c.responses == [(pytest.approx(2001.0), "next")]


@pytest.mark.parametrize("p", [-0.1, 1.5, float("nan")])
def test_loss_probability_must_be_a_probability(p):
    env, net = make_net()
    a, b = endpoints(env, net, 2)
    with pytest.raises(ValueError, match="loss probability"):
        net.set_loss(a, b, p)
    with pytest.raises(ValueError, match="loss probability"):
        net.set_loss_all(p)


def test_loss_needs_a_random_stream():
    env = simpy.Environment()
    net = Network(env, Distribution("constant", np.random.default_rng(0), value=1.0))
    a, b = endpoints(env, net, 2)
    with pytest.raises(ValueError, match="loss_rng"):
        net.set_loss_all(0.1)
    net.set_loss(a, b, 0.0)  # lossless needs no randomness


def test_lost_produce_response_leaves_the_write_on_the_leader_and_the_client_unanswered():
    """The ambiguous case: the leader appends (and its followers replicate) and acknowledges, the
    answer is lost on the way back, the client is neither answered nor reset (it would time out)."""
    t = Tiny(tiny_scenario())
    leader = t.brokers[t.leader()]
    t.cluster.network.set_loss(leader, t.client, 1.0)
    t.client.produce(t.cluster.network, leader, [t.client.batch(batch_id=1)], acks=1)
    t.run(1000.0)
    assert sorted(b for _, b, off, bid in t.appended() if bid == 1 and off == 0) == [0, 1, 2]  # replicated
    assert t.client.results() == [] and t.client.resets == []
    assert t.cluster.network.dropped == {m.ProduceResponse: 1}


def test_cluster_without_loss_never_touches_its_loss_stream():
    t = Tiny(tiny_scenario())
    fresh = Tiny(tiny_scenario())  # same seed: the stream's initial state
    leader = t.brokers[t.leader()]
    t.client.produce(t.cluster.network, leader, [t.client.batch()], acks=-1)
    t.run(5000.0)
    assert t.client.results() and t.cluster.network.sent[m.FetchRequest] > 10  # followers long-poll all along
    assert rng_state(t.cluster.network.loss_rng) == rng_state(fresh.cluster.network.loss_rng)


# --- close_connection ------------------------------------------------------------------------------

def test_close_connection_tells_the_peer_once_one_latency_later():
    env, net = make_net(latency_ms=2.0)
    broker, client = endpoints(env, net, 2)
    env.run(until=10.0)
    net.close_connection(broker, client)
    env.run()
    assert client.resets == [(12.0, broker)]
    assert broker.resets == []


def test_close_connection_follows_what_the_closer_already_sent():
    """The FIN is in the stream: the peer gets every byte sent before it, then the close."""
    env, net = make_net(bandwidth=1 * MB)
    broker, client = endpoints(env, net, 2)
    net.send(broker, client, "response", MB)
    net.close_connection(broker, client)
    env.run()
    assert client.responses == [(pytest.approx(1001.0), "response")]
    assert client.resets == [(pytest.approx(1001.0), broker)]


@pytest.mark.parametrize("fate", ["died", "restarted"])
def test_close_connection_is_not_delivered_to_a_dead_or_restarted_peer(fate):
    env, net = make_net(latency_ms=2.0)
    broker, client = endpoints(env, net, 2)
    net.close_connection(broker, client)
    env.run(until=1.0)
    if fate == "died":
        client.alive = False
    else:
        client.incarnation += 1
    env.run()
    assert client.resets == []
    # the same close to a live peer of the current incarnation arrives
    client.alive = True
    assert env.now == 2.0  # the first close's (undelivered) notification
    net.close_connection(broker, client)
    env.run()
    assert client.resets == [(4.0, broker)]


def test_dead_process_closes_nothing():
    env, net = make_net()
    broker, client = endpoints(env, net, 2)
    broker.alive = False
    net.close_connection(broker, client)
    env.run()
    assert client.resets == []


# --- a cut link: TCP retransmits (issue 21, "Messages on a cut link") -------------------------------

def _at(env, t, fn, *args):
    env.timeout(t - env.now).callbacks.append(lambda _ev: fn(*args))


def test_a_cut_link_holds_its_messages_until_the_first_retransmission_after_the_heal():
    """Lost transmissions are retransmitted after the RTO (200 ms, doubling): with the cut from 0 to
    1,000 ms the head's retransmissions at 200 and 600 ms are lost and the one at 1,400 ms gets
    through; the message sent later waits behind it (FIFO), and the other direction is not cut."""
    env, net = make_net()
    a, b = endpoints(env, net, 2)
    net.cut(a, b)
    net.send(a, b, "first")
    _at(env, 100.0, net.send, a, b, "second")
    _at(env, 100.0, net.send, b, a, "back")
    _at(env, 1_000.0, net.uncut, a, b)
    env.run()
    assert b.responses == [(1_401.0, "first"), (1_401.0, "second")]
    assert a.responses == [(101.0, "back")]
    assert net.held == {str: 2} and net.dropped == {} and a.resets == []
    assert net.send == net._send_plain  # healed and drained: back on the plain path


def test_a_cut_longer_than_tcp_retries2_breaks_the_connection_and_loses_what_waited():
    """Linux: 15 retransmissions, RTO 200 ms doubling to 120 s: the sender's connection times out
    924.6 s after the first loss (the tcp_retries2 documentation's figure); nothing is delivered."""
    env, net = make_net()
    a, b = endpoints(env, net, 2)
    net.cut(a, b)
    net.send(a, b, "lost")
    env.run(until=2_000_000.0)
    assert b.responses == [] and a.resets == [(pytest.approx(924_600.0), b)]
    assert net.aborted == 1 and net.discarded == 1
    net.uncut(a, b)
    net.send(a, b, "new connection")
    env.run(until=2_000_010.0)
    assert b.responses == [(2_000_001.0, "new connection")]


def test_closing_a_connection_discards_what_waits_on_it_both_ways():
    """An application-level close (a request timed out) drops what is queued on the connection, in
    both directions, and tells the peer when the FIN gets through (it waits for the heal too)."""
    env, net = make_net()
    a, b = endpoints(env, net, 2)
    net.cut(a, b)
    net.cut(b, a)
    net.send(a, b, "request")
    net.send(b, a, "response")
    _at(env, 500.0, net.close_connection, a, b)
    _at(env, 1_000.0, net.uncut, a, b)
    _at(env, 1_000.0, net.uncut, b, a)
    env.run()
    assert a.responses == [] and b.responses == [] and net.discarded == 2
    assert b.resets == [(pytest.approx(1_101.0), a)]  # the FIN's retransmissions at 700 (lost) and 1,100 ms


def test_a_host_back_from_a_power_loss_resets_the_connection_at_the_next_retransmission():
    """Nothing answers for a powered-off host, so the sender retransmits; its next incarnation answers
    with a reset, which the sender sees one latency after its next retransmission (not after its
    request timeout)."""
    env, net = make_net()
    a, b = endpoints(env, net, 2)
    b.alive = b.host_up = False
    net.send(a, b, "request")  # reaches nobody at 1 ms: retransmitted from 201 ms, doubling

    def back():
        b.alive = b.host_up = True
        b.incarnation += 1
    _at(env, 5_000.0, back)
    env.run()
    # retransmissions at 201, 601, 1,401, 3,001, 6,201 ms: the last one is answered with a reset
    assert b.responses == [] and a.resets == [(pytest.approx(6_203.0), b)]


def test_a_one_way_cut_blocks_a_handshake_until_it_heals():
    """A new connection needs the SYN out and the SYN-ACK back: a cut of the way back holds the
    SYN-ACK (retransmitted from 1 s, doubling), so the connection opens only after the heal."""
    env, net = make_net()
    a, b = endpoints(env, net, 2)
    net.cut(b, a)
    opened, refused = [], []
    net.handshake(a, b, lambda: opened.append(env.now), lambda: refused.append(env.now))
    _at(env, 2_500.0, net.uncut, b, a)
    env.run()
    assert opened == [pytest.approx(3_002.0)] and refused == []  # SYN-ACK retransmitted at 1,001 (lost), 3,001
    b.alive = False  # a process down on a host that is up refuses the connection
    net.handshake(a, b, lambda: opened.append(env.now), lambda: refused.append(env.now))
    env.run()
    assert refused == [pytest.approx(3_004.0)] and len(opened) == 1


def test_a_broker_heartbeat_is_a_request_and_a_timed_out_one_closes_the_connection():
    """BrokerLifecycleManager: one heartbeat in flight, the next broker.heartbeat.interval.ms after the
    answer (2,000 ms + a 2 ms round trip apart). With the answers cut off, the one in flight times out
    after broker.session.timeout.ms / 2, its connection closes, and the next needs a handshake the cut
    blocks: no other heartbeat reaches the controller, which fences the broker 9 s after the last."""
    t = Tiny(tiny_scenario())
    net, ctl, b = t.cluster.network, t.cluster.controller, t.brokers[2]
    arrived = []
    below = ctl.handle

    def handle(msg):
        if isinstance(msg, m.BrokerHeartbeat) and msg.broker == 2:
            arrived.append(t.env.now)
        below(msg)
    ctl.handle = handle
    t.run(10_000)
    gaps = [y - x for x, y in zip(arrived, arrived[1:])]
    assert len(gaps) >= 3 and all(g == pytest.approx(2_002.0) for g in gaps)
    net.cut(ctl, b)  # the controller's answers (and SYN-ACKs) are lost from now on
    t.run(30_000)
    after = [x for x in arrived if x > 10_000]
    assert len(after) == 1
    fenced = t.events("broker_fenced")
    assert [f[2] for f in fenced] == [2] and fenced[0][0] == pytest.approx(after[0] + 9_000, abs=150)
    assert b.alive and sum(net.held.values()) > 0


def test_a_restarted_hosts_new_connection_does_not_wait_behind_the_old_ones_retransmissions():
    """What waits for a powered-off host belongs to the old connection: a message to the host's next
    incarnation goes out at once (a new connection), and the old one is reset at its next retransmission."""
    env, net = make_net()
    a, b = endpoints(env, net, 2)
    b.alive = b.host_up = False
    net.send(a, b, "old")

    def back():
        b.alive = b.host_up = True
        b.incarnation += 1
        net.send(a, b, "new")
    _at(env, 2_000.0, back)
    env.run()
    assert b.responses == [(2_001.0, "new")] and a.resets == [(pytest.approx(3_003.0), b)]
