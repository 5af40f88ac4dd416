"""Producer mechanisms checked against Kafka's client: idempotent epoch bumps (TransactionManager),
batches that stay open while the sender is blocked (RecordAccumulator), and the connection
handling of NetworkClient (request timeouts, connection setup timeouts, resets)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import sim
from sim.measure.checker import batches_table, check
from sim.model import messages as m
from sim.model.producer import EPOCH_STRIDE
from sim.runs.runner import simulate
from sim.scenario.schema import Scenario
from tests.conftest import Tiny, tiny_scenario

ROOT = Path(__file__).resolve().parents[1]

SCEN = Path(__file__).resolve().parents[1] / "scenarios"

# The property-test case of tests/test_properties.py (REQUESTS_OVERTOOK_ON_ONE_CONNECTION), seed 45764.
REQUESTS_OVERTOOK = {
    "name": "property", "duration": "3791ms", "settle": "6s",
    "cluster": {"brokers": 5, "broker.session.timeout.ms": 1500, "broker.heartbeat.interval.ms": 300,
                "replica.lag.time.max.ms": 300},
    "network": {"latency": {"dist": "lognormal", "median": "3.0ms", "sigma": 1.0}},
    "topics": [{"name": "t", "partitions": 4, "replication.factor": 3, "min.insync.replicas": 2}],
    "consumers": [{"group.id": "g", "topic": "t"}],
    "producers": [{"topic": "t", "rate": "4495/s", "arrival": "constant", "acks": "all", "enable.idempotence": True,
                   "instances": 1, "linger.ms": 1}],
    "faults": [{"kind": "crash", "broker": 0, "at": f"{t}ms"} for t in (407, 1637, 3038)],
}


# --- (1) OUT_OF_ORDER_SEQUENCE_NUMBER after an unclean election --------------------------------

def _unclean(seed: int, idempotent: bool):
    """RF 3 on 3 brokers, min.insync 1, unclean election on, one partition: brokers 1 and 2 crash
    at 5 s, the leader (broker 0 by then, the only ISR member) at 16 s; broker 1 restarts at 20 s
    and is elected uncleanly. Its log lacks what broker 0 acknowledged after 5 s, so the producer's
    next sequence is out of order there."""
    over = {"duration": "35s", "settle": "10s", "consumers": [],
            "topics.0.partitions": 1, "topics.0.min.insync.replicas": 1,
            "topics.0.unclean.leader.election.enable": True,
            "producers.0.enable.idempotence": idempotent,
            "faults": [{"kind": "crash", "broker": 1, "at": "5s", "restart_after": "15s"},
                       {"kind": "crash", "broker": 2, "at": "5s", "restart_after": "40s"},
                       {"kind": "crash", "leader_of": "events-0", "at": "16s", "restart_after": "30s"}]}
    r = sim.run(SCEN / "quickstart.yaml", seed=seed, overrides=over)
    assert r.summary["invariant_violations"] == 0, r.summary["invariant_examples"]
    return r


@pytest.mark.parametrize("seed", [0, 1])
def test_idempotent_producer_bumps_its_epoch_after_an_unclean_election(seed):
    """TransactionManager.canRetry: OUT_OF_ORDER_SEQUENCE_NUMBER on the batch right after the last
    acknowledged sequence means the log has a gap: bump the epoch, restart the partition's
    sequences at 0 and retry. Acknowledgements resume about as fast as without idempotence."""
    on, off = _unclean(seed, True), _unclean(seed, False)
    for r in (on, off):
        ev = r.events
        assert (ev.kind == "unclean_election").sum() == 1
    t_unclean = float(on.events.loc[on.events.kind == "unclean_election", "time_ms"].iloc[0])
    resume = {}
    for name, r in (("on", on), ("off", off)):
        acked = np.sort(r.batches.loc[r.batches.outcome == "acked", "acked_ms"].to_numpy())
        after = acked[acked > t_unclean]
        assert len(after), f"idempotence {name}: no acknowledgement after the unclean election"
        resume[name] = after[0] - t_unclean
    # the producer reaches the new leader at its next reconnect attempt (reconnect.backoff.max.ms
    # 1 s + 20 %), gets OUT_OF_ORDER_SEQUENCE_NUMBER, and retries with the new epoch after its
    # retry backoff (retry.backoff.max.ms 1 s + 20 %)
    assert resume["on"] < 2_000 and resume["on"] < resume["off"] + 1_300, resume
    s_on, s_off = on.summary, off.summary
    assert s_on["records_unknown"] <= s_off["records_unknown"] + 0.01 * s_on["records_sent"]
    assert s_on["records_acked"] >= 0.99 * s_off["records_acked"]
    assert s_on["duplicates"] == 0 and s_on["reordered"] == 0


def test_broker_asks_a_new_epoch_of_a_known_producer_to_start_at_sequence_0(tiny):
    """ProducerAppendInfo.checkSequence (3.x/4.0): a producer the partition has no state for may
    start at any sequence; a new epoch of a producer it knows must start at 0 (the model gives
    each epoch its own producer id: base id + epoch * EPOCH_STRIDE)."""

    t = tiny
    net = t.cluster.network
    t.run(10)
    leader = t.brokers[t.leader()]
    c = t.client
    c.produce(net, leader, [c.batch(pid=1000, seq=5, batch_id=1)], acks=1)  # unknown producer: any sequence
    t.run(20)
    c.produce(net, leader, [c.batch(pid=1000 + EPOCH_STRIDE, seq=3, batch_id=2)], acks=1)  # new epoch, not 0
    c.produce(net, leader, [c.batch(pid=1000 + EPOCH_STRIDE, seq=0, batch_id=3)], acks=1)  # new epoch from 0
    c.produce(net, leader, [c.batch(pid=1000 + EPOCH_STRIDE, seq=1, batch_id=4)], acks=1)
    c.produce(net, leader, [c.batch(pid=2000 + 2 * EPOCH_STRIDE, seq=7, batch_id=5)], acks=1)  # unknown producer
    t.run(50)
    assert [(r[1], r[2]) for r in c.results()] == [
        (1, m.NONE), (2, m.OUT_OF_ORDER_SEQUENCE_NUMBER), (3, m.NONE), (4, m.NONE), (5, m.NONE)]
    assert list(leader.logs[0].batch_id) == [1, 3, 4, 5]


def _tiny_producer(**producer):
    spec = {"topic": "t", "rate": "1000/s", "arrival": "constant", "acks": "all", "linger.ms": 5,
            "request.timeout.ms": 1000, "delivery.timeout.ms": 120_000, **producer}
    t = Tiny(tiny_scenario(producers=[spec]))
    return t, t.cluster.producers[0]


def test_out_of_order_next_batch_bumps_the_epoch_and_rewrites_the_sequences():
    """The leader's producer state falls behind what it acknowledged (as after an unclean
    election): the batch after the last acknowledged one is OUT_OF_ORDER_SEQUENCE_NUMBER, so the
    producer bumps its epoch (a new producer id), restarts the partition's sequences at 0 and
    retries; batches already sent later than it are renumbered in order, nothing is duplicated."""
    t, prod = _tiny_producer()
    t.run(200)
    leader = t.brokers[t.leader()]
    log = leader.logs[0]
    assert prod.epoch == 0 and set(log.pid) == {prod.base_pid}
    acked_before = len(log.batch_id)
    log.producer_state[prod.base_pid].last_seq -= 3  # the leader "forgets" the last three batches' sequences
    t.run(2_000)
    err = t.recorder.arrays("produce_error")
    oosn = err["time_ms"][err["error"] == m.OUT_OF_ORDER_SEQUENCE_NUMBER]
    assert len(oosn) >= 1
    assert prod.epoch == 1 and prod.pid == prod.base_pid + EPOCH_STRIDE
    pids, seqs, ids = list(log.pid), list(log.seq), list(log.batch_id)
    k = pids.index(prod.pid)
    assert k == acked_before  # the new epoch starts right after what the leader held
    assert seqs[k:] == list(range(len(seqs) - k)) and set(pids[k:]) == {prod.pid}
    assert len(set(ids)) == len(ids) and ids == sorted(ids)  # no duplicate, in order
    done = t.recorder.arrays("batch_done")
    created = t.recorder.arrays("batch_created")["batch_id"]
    pending = {b.batch_id for _, req in prod.in_flight.values() for b in req.batches}  # on the wire at the end
    assert len(done["batch_id"]) > 0 and set(created.tolist()) == set(done["batch_id"].tolist()) | pending
    assert (done["outcome"] == 0).all()  # ... and acknowledged
    # the retry came after one retry backoff (retry.backoff.ms 100 +-20 %)
    first_new = t.recorder.arrays("appended")
    t_new = min(tm for tm, b, broker in zip(first_new["time_ms"], first_new["batch_id"], first_new["broker"])
                if b == ids[k] and broker == leader.broker_id)
    assert 80 <= t_new - oosn[0] <= 125



def test_requests_on_one_connection_reach_the_leader_in_the_order_they_were_sent():
    """A property-test case (test_properties, REQUESTS_OVERTOOK_ON_ONE_CONNECTION) ended with 15
    records reordered, no fault needed: the producer's first three requests to one leader (sequences
    0, 1, 2, one batch each) all drew arrival instants at or before the first one's, were held to it
    (the link is FIFO, like TCP), and float rounding then fired the third one first. The leader took
    sequence 2 from a producer it did not know (ProducerAppendInfo.checkSequence accepts any sequence
    then), answered 0 and 1 OUT_OF_ORDER_SEQUENCE_NUMBER, and the producer bumped its epoch and wrote
    them after it. In Kafka the requests of one connection are read in order and handled one at a
    time (SocketServer's Processor mutes the channel until the response is sent), so sequence 0
    always comes first."""
    sc = Scenario.resolve(dict(REQUESTS_OVERTOOK, duration="100ms", settle="1s", faults=[]))
    rec = simulate(sc, 45764)[1]
    err = rec.arrays("produce_error")
    assert not (err["error"] == m.OUT_OF_ORDER_SEQUENCE_NUMBER).any()  # fault-free: never out of order
    b = batches_table(rec)
    acked = b[b["outcome"] == "acked"].sort_values(["partition_index", "offset"])
    assert len(acked) >= 20  # 100 ms of 4,495 records/s in linger.ms (1 ms) batches, over 4 partitions
    for p, g in acked.groupby("partition_index"):  # each partition's log holds the records in order
        assert g["first_record_id"].is_monotonic_increasing, (p, g[["batch_id", "offset", "first_record_id"]].head())
    assert check(rec, b)["reordered"] == 0


# --- (2) a batch stays open for appends until it is drained --------------------------------------

def _stalled_leader(seed: int):
    """acks=1, one partition at 2,000 records/s (10 records per linger.ms): its leader crashes at
    3 s, and the producer cannot reach a leader until the new one is elected and found (~9 s)."""
    over = {"duration": "15s", "settle": "5s", "faults.0.at": "3s", "faults.0.restart_after": "10s",
            "producers.0.instances": 1, "producers.0.rate": "2000/s", "topics.0.partitions": 1, "consumers": []}
    r = sim.run(SCEN / "leader-crash-acks1.yaml", seed=seed, overrides=over)
    assert r.summary["invariant_violations"] == 0, r.summary["invariant_examples"]
    return r


@pytest.mark.parametrize("seed", [0, 1])
def test_a_blocked_partition_builds_full_batches_and_drains_them_fast(seed):
    """RecordAccumulator.append adds records to the last batch of the partition's deque until it is
    full (batch.size) or drained: while the leader is unreachable a partition accumulates full
    batches, not one per linger.ms, and the backlog drains in a few round trips."""
    from sim.model.producer import BATCH_OVERHEAD_BYTES, RECORD_OVERHEAD_BYTES

    r = _stalled_leader(seed)
    b = r.batches
    rpb = (16384 - BATCH_OVERHEAD_BYTES) // (100 + RECORD_OVERHEAD_BYTES)  # records per 16 KiB batch
    crash = float(r.events.loc[r.events.kind == "fault_start", "time_ms"].iloc[0])
    acked = b[b.outcome == "acked"]
    recovered = acked.loc[acked.acked_ms > crash + 50, "acked_ms"].min()  # first acknowledgement after the crash
    assert recovered - crash > 5_000  # the partition was blocked for seconds
    during = b[(b.first_arrival_ms > crash + 50) & (b.last_arrival_ms < recovered)]
    records = int(during.record_count.sum())
    assert records > 8_000
    # full batches (the last may be partial), where one per linger.ms would be ~10 records each
    assert len(during) <= records // rpb + 2, (len(during), records)
    assert during.record_count.mean() > 0.9 * rpb
    assert b.record_count.max() <= rpb
    # batch ids stay dense and records contiguous per partition
    assert (b.batch_id.to_numpy() == np.arange(len(b))).all()
    order = b.sort_values("first_record_id")
    assert (order.first_record_id.to_numpy()[1:] == (order.first_record_id + order.record_count).to_numpy()[:-1]).all()
    # records that arrive 0.1-3 s after the recovery see ordinary latency: the backlog is gone
    after = acked[(acked.first_arrival_ms > recovered + 100) & (acked.first_arrival_ms < recovered + 3_000)]
    assert len(after) > 100
    assert (after.acked_ms - after.first_arrival_ms).max() < 30  # linger.ms 5 + a round trip or two


# --- (3), (4) connections: request timeouts, connection setup timeouts, resets -----------------

probes_sent: set = set()  # reconnect probes seen by _log_sends (MetadataRequests a producer holds in _probes)


def _is_probe(msg) -> bool:
    return any(msg is p for p in probes_sent)


def _log_sends(t, monkeypatch, drop=None):
    """Record every message on the wire as (time, src, dst, message); `drop(src, dst, msg)` loses some."""
    net = t.cluster.network
    orig = net.send
    sent = []

    def send(src, dst, msg, nbytes=0):
        sent.append((t.env.now, src, dst, msg))
        if isinstance(msg, m.MetadataRequest) and msg in getattr(src, "_probes", {}).values():
            probes_sent.add(msg)
        if drop is not None and drop(src, dst, msg):
            return
        orig(src, dst, msg, nbytes)

    monkeypatch.setattr(net, "send", send)
    return sent


def test_a_request_timeout_disconnects_the_node_and_fails_every_request_in_flight_to_it(monkeypatch):
    """NetworkClient.handleTimedOutRequests: the first request past request.timeout.ms closes the
    connection, so every request in flight to that broker fails at that moment (NETWORK_EXCEPTION,
    ambiguous), nothing more is sent to it until a reconnect after reconnect.backoff.ms, and a
    metadata update is requested."""
    t, prod = _tiny_producer(acks=1)  # no idempotence: retries are not serialised per partition
    t.run(100)
    leader = t.brokers[t.leader()]
    swallowed = []
    monkeypatch.setattr(leader, "handle_produce", swallowed.append)  # a broker that stops answering
    sent = _log_sends(t, monkeypatch)
    t.run(1_090)
    first = swallowed[0]
    # max.in.flight 5: five requests went out 5 ms apart (one per linger.ms), then the window was full
    reqs = [msg for _, src, dst, msg in sent if src is prod and isinstance(msg, m.ProduceRequest)]
    assert len(reqs) == 5 and prod.in_flight_per_broker[leader.broker_id] == 5
    t_sent = [tm for tm, src, dst, msg in sent if msg is first][0]
    monkeypatch.undo()  # the broker answers again (and sends are no longer logged)
    sent = _log_sends(t, monkeypatch)
    t.run(3_000)
    timeout_at = t_sent + 1_000
    err = t.recorder.arrays("produce_error")
    failed = [(tm, b) for tm, b, e in zip(err["time_ms"], err["batch_id"], err["error"]) if e == m.NETWORK_EXCEPTION]
    in_flight_ids = sorted(b.batch_id for r in reqs for b in r.batches)
    assert sorted(b for _, b in failed) == in_flight_ids  # each failed once...
    assert {tm for tm, _ in failed} == {timeout_at}  # ...all at the first request's timeout
    # the connection is closed: a reconnect probe goes reconnect.backoff.ms (50 ms +-20 %) later;
    # the next request follows once it is answered (a round trip, 2 ms) and the retried batch at
    # the head of the partition's queue is past its retry backoff (retry.backoff.ms 100 +-20 %)
    probes = [(tm, msg) for tm, src, dst, msg in sent if src is prod and dst is leader and _is_probe(msg)]
    produce = [tm for tm, src, dst, msg in sent if src is prod and dst is leader and isinstance(msg, m.ProduceRequest)]
    assert 40 <= probes[0][0] - timeout_at <= 60
    assert produce[0] >= probes[0][0] + 2 and 80 <= produce[0] - timeout_at <= 120
    # a metadata update was asked for at the disconnect
    assert any(tm == timeout_at and isinstance(msg, m.MetadataRequest) and not _is_probe(msg)
               for tm, src, dst, msg in sent if src is prod)
    done = t.recorder.arrays("batch_done")
    assert len(done["batch_id"]) > 0 and (done["outcome"] == 0).all()  # everything was acknowledged in the end


@pytest.mark.parametrize("lose", ["probe", "answer"])
def test_a_lost_reconnect_probe_times_out_and_is_retried(monkeypatch, lose):
    """The reconnect probe stands in for the TCP handshake: if it or its answer is lost, the attempt
    fails after socket.connection.setup.timeout.ms (10 s +-20 %, NetworkClient.handleTimedOutConnections)
    and the producer tries again after its reconnect backoff, instead of never reconnecting."""
    t, prod = _tiny_producer(acks=1)
    t.run(100)
    leader = t.brokers[t.leader()]
    probes = []

    def drop(src, dst, msg):
        if lose == "probe" and src is prod and dst is leader and isinstance(msg, m.MetadataRequest):
            if prod._probes.get(leader.broker_id) is msg and not probes:
                probes.append(msg)
                return True
        if lose == "answer" and src is leader and dst is prod and isinstance(msg, m.MetadataResponse):
            probe = prod._probes.get(leader.broker_id)
            if probe is not None and probe.request_id == msg.request_id and not probes:
                probes.append(probe)
                return True
        return False

    sent = _log_sends(t, monkeypatch, drop)
    prod.connection_lost(leader)  # a reset, as a broker closing the connection would cause
    t.run(100 + 15_000)
    assert len(probes) == 1
    to_leader = [(tm, msg) for tm, src, dst, msg in sent if src is prod and dst is leader]
    first_probe_at = [tm for tm, msg in to_leader if msg is probes[0]][0]
    later = [(tm, msg) for tm, msg in to_leader if tm > first_probe_at]
    second_probe_at = [tm for tm, msg in later if _is_probe(msg)][0]
    # setup timeout 10 s +-20 %, then the reconnect backoff doubled (100 ms +-20 %)
    assert 8_000 + 80 <= second_probe_at - first_probe_at <= 12_000 + 120
    assert prod.connected[leader.broker_id]
    first_produce = [tm for tm, msg in later if isinstance(msg, m.ProduceRequest)][0]
    assert first_produce == second_probe_at + 2  # sending resumes once the new probe is answered
    # nothing went to that broker while the lost attempt was pending
    assert not [tm for tm, msg in to_leader if first_probe_at < tm < second_probe_at and not (
        isinstance(msg, m.MetadataRequest) and not _is_probe(msg))]


def test_acks0_producer_reconnects_after_the_broker_closes_the_connection(monkeypatch):
    """A broker closes the connection on an acks=0 produce error (KafkaApis.handleProduceRequest):
    the producer sees a reset, asks for metadata, backs off, reconnects and goes on sending."""
    t, prod = _tiny_producer(acks=0)
    t.run(100)
    leader = t.brokers[t.leader()]
    sent = _log_sends(t, monkeypatch)
    prod.connection_lost(leader)  # what the broker's close looks like to the client
    assert not prod.connected[leader.broker_id]
    t.run(400)
    mine = [(tm, dst, msg) for tm, src, dst, msg in sent if src is prod]
    assert any(tm == 100 and isinstance(msg, m.MetadataRequest) and not _is_probe(msg)
               for tm, dst, msg in mine)  # metadata update
    probe_at = [tm for tm, dst, msg in mine if dst is leader and _is_probe(msg)][0]
    assert 100 + 40 <= probe_at <= 100 + 60  # reconnect.backoff.ms 50 +-20 %
    produce = [tm for tm, dst, msg in mine if dst is leader and isinstance(msg, m.ProduceRequest)]
    assert produce and min(produce) == probe_at + 2  # nothing until the reconnect, then at once
    assert prod.connected[leader.broker_id]
    # then one batch per linger.ms (6 records at 1,000/s) as before the reset
    assert max(np.diff(produce)) <= 6.0 + 1e-9 and max(produce) > 390


def test_exponential_backoff_never_overflows_and_matches_the_plain_formula():
    """Kafka's ExponentialBackoff caps the exponent: any number of failed attempts gives the maximum."""
    from sim.model.timeouts import exponential_backoff

    for attempts in range(0, 40):
        assert exponential_backoff(10_000.0, 30_000.0, attempts) == min(10_000.0 * 2 ** attempts, 30_000.0)
        assert exponential_backoff(100.0, 1000.0, attempts) == min(100.0 * 2 ** attempts, 1000.0)
    assert exponential_backoff(10_000.0, 30_000.0, 5_000) == 30_000.0  # 10000 * 2 ** 5000 overflows a float
    assert exponential_backoff(100.0, 9_000.0, 10 ** 9) == 9_000.0
    assert exponential_backoff(50.0, 10.0, 3) == 10.0  # maximum below initial: a constant backoff


def test_tiny_reconnect_backoff_against_a_long_outage_runs_to_the_end():
    """reconnect.backoff(.max).ms 10 ms and a leader down 12 s: ~1,200 refused reconnects, no OverflowError."""
    import sim

    sc = sim.load_scenario(ROOT / "scenarios" / "quickstart.yaml", overrides={
        "duration": "20s", "settle": "5s", "faults.0.at": "2s", "faults.0.restart_after": "12s",
        "producers.0.reconnect.backoff.ms": "10ms", "producers.0.reconnect.backoff.max.ms": "10ms",
        "topics.0.replication.factor": 1, "topics.0.min.insync.replicas": 1})
    res = sim.run(sc, seed=1)
    assert res.summary.records_acked > 0 and res.summary.acked_lost == 0


# --- the workload draws from its own random stream ---------------------------------------------

def test_same_seed_offers_the_same_records_whatever_acks_and_the_faults_do():
    """A paired comparison (acks=0 vs 1 vs all, same seed) must differ only where the configuration
    does: the arrival times and partition picks come from the producer's workload stream, apart
    from the client's jitter draws (backoffs, timeouts), which depend on acks and on the faults."""
    per_partition = {}
    for acks in ("0", "1", "all"):
        r = sim.run(SCEN / "leader-crash-acks1.yaml", seed=3,
                    overrides={"producers.0.acks": acks, "duration": "12s", "faults.0.at": "5s"})
        b = r.batches
        per_partition[acks] = (b.groupby(["producer", "partition"]).agg(
            records=("record_count", "sum"), first=("first_arrival_ms", "min"),
            last=("last_arrival_ms", "max")).sort_index())
        assert r.summary["records_produced"] == per_partition[acks]["records"].sum()
    pd.testing.assert_frame_equal(per_partition["0"], per_partition["1"])
    pd.testing.assert_frame_equal(per_partition["1"], per_partition["all"])
