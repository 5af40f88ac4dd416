"""Network faults (issue 13 kinds 2, 3, 7): partitions, one-way partitions, link degradation,
racks and zones. Each test asserts the fault's measured effect on a bundled scenario, plus the
mechanism on a hand-built Network where an exact timeline says more.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import simpy

import sim
from sim.model import messages as m
from sim.model.cluster import assign_replicas
from sim.model.distributions import Distribution
from sim.model.network import Degradation, Network
from sim.scenario.schema import Scenario, ScenarioError
from tests.conftest import attach_endpoints

ROOT = Path(__file__).resolve().parent.parent
FAULTS = ROOT / "scenarios/faults"


def run(name: str, seed: int = 1, prepare=None, **overrides):
    res = sim.run(FAULTS / f"{name}.yaml", seed=seed, overrides=overrides or None, prepare=prepare)
    assert res.summary["invariant_violations"] == 0, res.summary["invariant_examples"]
    return res


def kinds(res, kind: str):
    ev = res.events
    return ev[ev["kind"] == kind]


# --- network partition --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def isolated_acks1():
    """The leader of events-0 cut off from peers and controller for 10 s and for 30 s (acks=1)."""
    return {heal: run("partition", **{"faults.0.heal": heal}) for heal in ("10s", "30s")}


def test_isolating_the_leader_under_acks1_loses_acked_records_and_more_the_longer_it_lasts(isolated_acks1):
    short, long_ = isolated_acks1["10s"], isolated_acks1["30s"]
    for res in (short, long_):
        # fenced after broker.session.timeout.ms without heartbeats, a new leader elected ...
        fenced = kinds(res, "broker_fenced")
        assert len(fenced) == 1 and 15_000 + 8_000 <= fenced["time_ms"].iloc[0] <= 15_000 + 9_500
        elected = kinds(res, "leader_elected")
        assert (elected["time_ms"] > 15_000).any()
        # ... while the producers kept writing to the old leader: its tail is truncated after the heal
        trunc = kinds(res, "truncation")
        assert (trunc["broker"] == fenced["broker"].iloc[0]).any()
        assert res.summary["acked_lost"] > 0
    # the old leader acknowledges for as long as it is isolated (clients still reach it)
    assert long_.summary["acked_lost"] > 2 * short.summary["acked_lost"]


def test_isolating_the_leader_under_acks_all_and_min_isr_2_loses_nothing_acknowledged():
    res = run("partition", **{"producers.0.acks": "all"})
    assert res.summary["acked_lost"] == 0
    elected = kinds(res, "leader_elected")
    new = elected[(elected["time_ms"] > 15_000) & (elected["partition"] == "events-0")]
    assert len(new) == 1
    # nothing the isolated leader took after the cut was acknowledged before the new leader existed:
    # its writes waited for followers that could not fetch, until they timed out and were retried
    b = res.batches
    b = b[(b["partition"] == "events-0") & (b["outcome"] == "acked")]
    during = b[(b["sent_ms"] > 15_005) & (b["sent_ms"] < new["time_ms"].iloc[0])]
    assert len(during) > 0 and (during["acked_ms"] > new["time_ms"].iloc[0]).all()


def _log_received(cluster, log: list) -> None:
    """Record (time, broker id, message) of everything each broker handles (a wrapper on its handle)."""
    for b in cluster.brokers:
        def handle(msg, b=b, below=b.handle):
            log.append((b.env.now, b.broker_id, msg))
            below(msg)
        b.handle = handle


def test_a_one_way_inbound_cut_fences_the_leader_and_acks1_loses_like_a_two_way_one():
    """Inbound only (peers and the controller cannot reach the leader, it still reaches them): its
    heartbeat requests arrive, their answers do not. BrokerLifecycleManager keeps one heartbeat in
    flight; it times out after broker.session.timeout.ms / 2 (KAFKA-14392), which closes the
    connection, and a new connection cannot complete its handshake. So the controller fences the
    leader about 9 s after the cut and elects another, while producers (not cut) keep writing to the
    old one, whose acknowledged acks=1 writes are truncated at the heal. Meanwhile nothing from its
    peers or the controller reaches it, and the ISR shrinks."""
    nets, received = [], []

    def prepare(cluster):
        nets.append(cluster.network)
        _log_received(cluster, received)

    inbound = run("one-way-partition", prepare=prepare)
    fenced = kinds(inbound, "broker_fenced")
    assert len(fenced) == 1 and 15_000 + 8_000 <= fenced["time_ms"].iloc[0] <= 15_000 + 11_500
    target = int(fenced["broker"].iloc[0])
    elected = kinds(inbound, "leader_elected")
    assert ((elected["time_ms"] > 15_000) & (elected["partition"] == "events-0")).sum() == 1
    assert (kinds(inbound, "truncation")["broker"] == target).any()
    assert inbound.summary["acked_lost"] > 0
    # messages to the target waited on the cut links: none from a peer or the controller got through
    assert sum(nets[0].held.values()) > 0
    from_cluster = (m.FetchResponse, m.MetadataFetchResponse, m.BrokerHeartbeatResponse, m.AlterPartitionResponse)
    during = [(t, type(msg).__name__) for t, b, msg in received if b == target and 15_100 < t < 45_000
              and (isinstance(msg, from_cluster) or isinstance(msg, m.FetchRequest) and msg.replica_id >= 0)]
    assert during == []
    isr = kinds(inbound, "isr_change")
    shrunk = isr[(isr["partition"] == "events-0") & (isr["time_ms"] > 15_000) & (isr["time_ms"] < 45_000)]
    assert (shrunk["value"] < 3).any()
    # the reverse cut (its messages cannot get out) fences and loses too
    outbound = run("one-way-partition", **{"faults.0.direction": "outbound"})
    assert len(kinds(outbound, "broker_fenced")) == 1
    assert (kinds(outbound, "leader_elected")["time_ms"] > 15_000).any()
    assert outbound.summary["acked_lost"] > 0


def test_a_short_cut_of_a_follower_stalls_acks_all_writes_for_the_cut_and_one_retransmission():
    """A follower cut from its peers for 2 s: its fetch waits on the cut link and TCP retransmits it
    (RTO 200 ms, doubling: at 0.2, 0.6, 1.4 and 3.0 s), so it arrives at the first retransmission
    after the heal, not after replica.socket.timeout.ms (30 s) as when a cut dropped it; acks=all
    writes stall about 3 s, the follower never leaves the ISR, nothing is lost."""
    res = run("partition", **{
        "topics.0.partitions": 1, "producers.0.instances": 1, "producers.0.rate": "1000/s",
        "producers.0.acks": "all", "consumers": [],
        "faults": [{"kind": "partition", "follower_of": "events-0", "between": ["peers"], "at": "15s", "heal": "2s"}]})
    b = res.batches
    b = b[(b["outcome"] == "acked") & (b["sent_ms"] >= 15_000) & (b["sent_ms"] < 27_000)]
    latency = b["acked_ms"] - b["sent_ms"]
    assert 2_000 < latency.max() < 3_500
    assert latency.median() < 50
    isr = kinds(res, "isr_change")
    assert not (isr["time_ms"] > 0).any()
    assert res.summary["acked_lost"] == 0


def test_a_partition_is_a_fault_start_and_end_with_its_target():
    res = run("partition", **{"faults.0.heal": "5s", "producers.0.rate": "200/s"})
    f = res.events[res.events["kind"].isin(["fault_start", "fault_end"])]
    assert f["kind"].tolist() == ["fault_start", "fault_end"] and f["time_ms"].tolist() == [15_000.0, 20_000.0]
    assert (f["fault"] == "partition").all() and (f["target"] == "leader_of events-0").all()
    assert f["takes_down"].all() and not f["kills_process"].any()


def test_overlapping_cuts_heal_independently():
    env, net, (a, b) = _net(2)
    net.cut(a, b)
    net.cut(a, b)
    net.uncut(a, b)
    net.send(a, b, "held")  # still cut once: it waits for a retransmission
    net.send(b, a, "back")  # one direction only
    net.uncut(a, b)
    net.send(a, b, "through")  # healed, but FIFO: behind the held one
    env.run()
    assert b.responses == [(201.0, "held"), (201.0, "through")] and a.responses == [(1.0, "back")]
    assert net.send == net._send_plain  # healed and drained: back on the plain path


# --- link degradation --------------------------------------------------------------------------
def _latency(res, partition: str, lo: float, hi: float):
    b = res.batches
    b = b[(b["partition"] == partition) & (b["outcome"] == "acked") & (b["sent_ms"] > lo) & (b["sent_ms"] < hi)]
    return b["acked_ms"] - b["sent_ms"]


def test_degradation_raises_produce_latency_by_about_the_injected_amount():
    res = run("link-degradation", **{"faults.0.loss": 0.0})
    before, during = _latency(res, "events-0", 2_000, 10_000), _latency(res, "events-0", 10_100, 29_900)
    after = _latency(res, "events-0", 31_000, 40_000)
    # +20 ms one way on the request and on the response
    assert during.median() - before.median() == pytest.approx(40.0, abs=2.0)
    assert after.median() == pytest.approx(before.median(), abs=1.0)
    other = _latency(res, "events-1", 10_100, 29_900)  # a partition led elsewhere is untouched
    assert other.median() == pytest.approx(before.median(), abs=1.0)


def test_lost_transmissions_cost_tcp_retransmissions_not_records():
    res = run("link-degradation")  # 1% loss: each loss costs an RTO (200 ms, doubling), nothing is dropped
    during = _latency(res, "events-0", 10_100, 29_900)
    assert during.median() == pytest.approx(42.0, abs=2.0)
    assert during.max() >= 200.0 + 40.0  # a retransmission, and the FIFO link holds later ones back
    assert during.mean() > during.median() + 5.0
    # the tail is a few RTOs (200, 400, 800 ms ...), far below request.timeout.ms: a lost transmission
    # is retransmitted, never dropped (dropping it costs the request timeout, and the retry duplicates
    # or reorders records)
    assert during.max() < 2_000.0
    assert res.summary["acked_lost"] == 0 and res.summary["records_unknown"] == 0
    assert res.summary["duplicates"] == 0 and res.summary["reordered"] == 0


def test_a_long_enough_loss_breaks_the_connection_after_tcp_retries():
    nets = []
    res = run("link-degradation", prepare=lambda c: nets.append(c.network),
              **{"faults.0.loss": 1.0, "faults.0.retries": 3})
    assert sum(nets[0].broken.values()) > 0
    b = res.batches
    acked = b[(b["partition"] == "events-0") & (b["outcome"] == "acked")]
    assert not ((acked["acked_ms"] > 10_500) & (acked["acked_ms"] < 30_000)).any()  # nothing got through
    assert ((acked["first_arrival_ms"] > 10_500) & (acked["first_arrival_ms"] < 30_000)).any()  # after the heal


def test_retransmission_timeline_on_one_link():
    """Two losses then success: the message arrives after 200 + 400 ms of RTO plus its latency; the
    message sent after it on the same link waits behind it (FIFO)."""
    env, net, (a, b) = _net(2)
    d = Degradation(loss=0.5)
    net.degrade(a, b, d)
    net._uniform = iter([0.1, 0.2, 0.9, 0.9]).__next__  # lost, lost, delivered; then delivered
    net.send(a, b, "first")
    net.send(a, b, "second")
    env.run()
    assert b.responses == [(601.0, "first"), (601.0, "second")]
    net.restore(a, b, d)
    assert net.send == net._send_plain


# --- racks and zones ---------------------------------------------------------------------------
def test_rack_aware_placement_puts_replicas_on_distinct_racks_even_when_racks_are_unbalanced():
    racks = ["a", "a", "a", "b", "b", "c"]
    for start in range(6):
        for replicas in assign_replicas(6, 12, 3, start, racks):
            assert len({racks[b] for b in replicas}) == 3 and len(set(replicas)) == 3
    # more replicas than racks: every rack first, then distinct brokers
    for replicas in assign_replicas(4, 8, 3, 0, ["a", "a", "b", "b"]):
        assert len({["a", "a", "b", "b"][b] for b in replicas}) == 2 and len(set(replicas)) == 3


def test_a_zone_outage_with_rack_aware_placement_loses_nothing_acknowledged():
    clusters = []
    res = run("zone-outage", prepare=clusters.append)
    zones = ["a", "a", "b", "b", "c", "c"]
    for spec in clusters[0].partitions:  # broker.rack defaults to the zone: one replica per zone
        assert sorted(zones[b] for b in spec.replicas) == ["a", "b", "c"]
    starts = kinds(res, "fault_start")
    assert sorted(starts["broker"]) == [2, 3] and (starts["target"] == "zone b").all()
    assert sorted(kinds(res, "fault_end")["broker"]) == [2, 3]
    assert res.summary["acked_lost"] == 0
    b = res.batches
    assert ((b["outcome"] == "acked") & (b["sent_ms"] > 24_000) & (b["sent_ms"] < 35_000)).sum() > 0


def test_a_partition_between_zones_cuts_only_links_that_cross_it():
    clusters = []
    res = run("zone-partition", prepare=clusters.append)
    net, c = clusters[0].network, clusters[0]
    assert kinds(res, "broker_fenced")["broker"].tolist() == [4, 5]  # zone c lost the controller (zone a)
    assert res.summary["acked_lost"] == 0
    # after the heal nothing is cut and zone latency remains
    assert not net._cuts and net._zone_latency
    assert all(ep.zone in ("a", "b", "c") for ep in (c.controller, *c.producers))


def test_zone_latency_applies_only_between_zones():
    env, net, (a1, a2, b1) = _net(3)
    a1.zone = a2.zone = "a"
    b1.zone = "b"
    net.set_zone_latency(a1, b1, Distribution("constant", np.random.default_rng(0), value=2.0))
    net.send(a1, a2, "same zone")
    net.send(a1, b1, "other zone")
    env.run()
    assert a2.responses == [(1.0, "same zone")] and b1.responses == [(3.0, "other zone")]


# --- declared like the other faults ------------------------------------------------------------
def test_a_fault_free_run_pays_nothing_for_the_network_faults():
    clusters = []
    sim.run(ROOT / "scenarios/quickstart.yaml", seed=1, overrides={"duration": "2s", "settle": "1s", "faults": []},
            prepare=clusters.append)
    net = clusters[0].network
    assert net.send == net._send_plain and not net._cuts and not net._degraded and not net._zone_latency
    assert clusters[0].faults.net_rng is None


@pytest.mark.parametrize("override, message", [
    ({"faults.0.rack": "x", "faults.0.leader_of": None}, "faults.0.rack: no rack 'x' (allowed: none: set cluster.racks)"),
    ({"faults.0.between": ["nobody"]}, "faults.0.between.0: must be one of 'peers', 'controller', 'clients' or 'all'"),
    ({"faults.0.direction": "sideways"}, "faults.0.direction: must be one of 'both', 'outbound' or 'inbound'"),
    ({"faults.0.broker": 1}, "a fault needs exactly one of 'broker', 'leader_of', 'follower_of', 'brokers', 'rack' or 'zone'"),
    ({"faults.0.brokers": [0, 7], "faults.0.leader_of": None}, "faults.0.brokers: no broker 7 (allowed: 0..2)"),
    ({"network.controller_zone": "z"}, "network.controller_zone: no zone 'z' (allowed: none: set cluster.zones)"),
])
def test_network_fault_errors_are_one_line_naming_the_field(override, message):
    with pytest.raises(ScenarioError) as e:
        Scenario.resolve(FAULTS / "partition.yaml", override)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_a_degrade_fault_needs_latency_or_loss():
    with pytest.raises(ScenarioError, match="a degrade fault needs a 'latency' or a 'loss'"):
        Scenario.resolve(FAULTS / "link-degradation.yaml", {"faults.0.latency": None, "faults.0.loss": 0.0})


def test_the_cli_rejects_a_bad_network_fault_with_exit_code_2():
    from typer.testing import CliRunner

    from sim.cli.app import app
    out = CliRunner().invoke(app, ["validate", str(FAULTS / "partition.yaml"), "--set", "faults.0.direction=up"])
    assert out.exit_code == 2 and "faults.0.direction" in out.output


# --- helpers -------------------------------------------------------------------------------------
def _net(n: int):
    env = simpy.Environment()
    net = Network(env, Distribution("constant", np.random.default_rng(0), value=1.0),
                  loss_rng=np.random.default_rng(7))
    return env, net, attach_endpoints(env, net, n)


def test_isolating_a_leader_from_its_clients_only_stalls_them_without_a_failover():
    """The controller and the followers still reach it: no fencing, no election, nothing lost; its
    producers get no answer until their requests time out (request.timeout.ms) after the heal."""
    res = run("partition", **{"faults.0.between": ["clients"], "faults.0.heal": "10s", "producers.0.rate": "500/s"})
    assert kinds(res, "broker_fenced").empty and not (kinds(res, "leader_elected")["time_ms"] > 0).any()
    assert res.summary["acked_lost"] == 0
    b = res.batches
    acked = b[(b["partition"] == "events-0") & (b["outcome"] == "acked")]
    assert not ((acked["acked_ms"] > 15_010) & (acked["acked_ms"] < 25_000)).any()
    assert ((acked["first_arrival_ms"] > 15_010) & (acked["first_arrival_ms"] < 25_000)).any()


def test_a_set_of_brokers_is_split_from_the_rest():
    """`brokers: [0, 1]` with `between: [peers]`: links between {0, 1} and {2} are cut both ways,
    links inside {0, 1} and to the controller and clients are not."""
    from types import SimpleNamespace

    from sim.model.netfaults import fault_links
    env, net, eps = _net(5)
    brokers = [SimpleNamespace(broker_id=i) for i in range(3)]
    controller, client = eps[3], eps[4]
    spec = SimpleNamespace(between=["peers"], direction="both", zone=None)
    links = fault_links(spec, [0, 1], brokers, controller, net)
    assert links == {0: [(brokers[0], brokers[2]), (brokers[2], brokers[0])],
                     1: [(brokers[1], brokers[2]), (brokers[2], brokers[1])]}
    spec = SimpleNamespace(between=["all"], direction="inbound", zone=None)
    links = fault_links(spec, [2], brokers, controller, net)
    others = [src for src, dst in links[2] if dst is brokers[2]]
    assert len(others) == len(links[2])  # inbound only
    assert others[:3] == [brokers[0], brokers[1], controller] and others[3:] == [eps[0], eps[1], eps[2], client]


def test_a_degrade_without_heal_time_ends_at_the_heal_even_after_a_later_fault_on_its_broker():
    # the injector keeps one record per broker: a crash of the degraded broker replaced it, so the heal
    # ended the crash only and the degradation had no fault_end (and stayed on through the settle)
    res = run("link-degradation", **{"faults": [
        {"kind": "degrade", "broker": 1, "between": ["clients"], "latency": {"dist": "constant", "value": "5ms"},
         "at": "10s"},
        {"kind": "crash", "broker": 1, "at": "15s", "restart_after": "5s"}]})
    f = kinds(res, "fault_start"), kinds(res, "fault_end")
    assert f[0]["fault"].tolist() == ["degrade", "crash"]
    assert sorted(f[1]["fault"].tolist()) == ["crash", "degrade"]
    assert f[1][f[1]["fault"] == "degrade"]["time_ms"].tolist() == [40_000.0]


def test_a_random_degrade_source_draws_its_latency_from_the_link_fault_stream():
    # the stream was created for scheduled degrade faults only: a random one with latency failed to start
    res = run("link-degradation", **{"faults": [], "random_faults": [
        {"kind": "degrade", "fault": {"between": ["clients"], "latency": {"dist": "constant", "value": "5ms"}},
         "per": "cluster", "mean_interval": "5s", "downtime": "2s", "max_down": 1}]})
    started, ended = kinds(res, "fault_start"), kinds(res, "fault_end")
    assert len(started) > 0 and set(started["fault"]) == {"degrade"} and len(ended) == len(started)
