"""The checker and metrics on hand-written facts: every classification rule, exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sim.measure.checker import batches_table, check
from sim.measure.metrics import _level_per_second, weighted_percentiles
from sim.model.recorder import OUTCOMES, Recorder

ACKED, FAILED, UNKNOWN = (OUTCOMES.index(x) for x in ("acked", "failed", "unknown"))


def _recorder():
    """Two producers on partitions p-0/p-1; a final committed log with a loss, a duplicate,
    a reordering, an unknown that made it and an unknown that did not."""
    r = Recorder(["p-0", "p-1"], ["a", "b"])
    # batch_id, producer, partition, count, first_record_id, first_ms, last_ms
    batches = [
        (0, 0, 0, 10, 0, 0.0, 1.0),    # acked, committed
        (1, 0, 0, 20, 10, 1.0, 2.0),   # acked, LOST (not in the final log)
        (2, 0, 0, 30, 30, 2.0, 3.0),   # acked, committed twice (duplicate)
        (3, 1, 1, 5, 0, 0.0, 1.0),     # failed, absent
        (4, 1, 1, 7, 5, 1.0, 2.0),     # unknown, absent -> lost
        (5, 1, 1, 11, 12, 2.0, 3.0),   # unknown, committed (it made it)
        (6, 1, 1, 13, 23, 3.0, 4.0),   # acked, committed BEFORE batch 5 -> batch 5 is reordered
        (7, 0, 0, 3, 60, 4.0, 5.0),    # never sent: unknown, absent, not counted as lost
    ]
    for b in batches:
        r.batch_created(*b)
    for bid in range(7):
        r.batch_sent(float(bid), bid, 0, 1)
    for bid, outcome, off in [(0, ACKED, 0), (1, ACKED, 10), (2, ACKED, 30), (3, FAILED, -1), (4, UNKNOWN, -1),
                              (5, UNKNOWN, -1), (6, ACKED, 0), (7, UNKNOWN, -1)]:
        r.batch_done(10.0 + bid, bid, outcome, off, 0)
    # partition, offset, batch_id, count, epoch, committed
    for row in [(0, 0, 0, 10, 0, True), (0, 10, 2, 30, 0, True), (0, 40, 2, 30, 1, True),
                (1, 0, 6, 13, 0, True), (1, 13, 5, 11, 0, True),
                (1, 24, 4, 7, 0, False)]:  # uncommitted tail: does not count as present
        r.record("final_log", *row)
    r.consumed_many(20.0, 0, 0, [0], [0])
    r.consumed_many(21.0, 0, 0, [10], [2])
    r.consumed_many(22.0, 0, 0, [10], [2])
    return r


def test_classification_of_every_rule():
    rec = _recorder()
    b = batches_table(rec)
    assert list(b.copies_in_log) == [1, 0, 2, 0, 0, 1, 1, 0]
    assert list(b.times_consumed) == [1, 0, 2, 0, 0, 0, 0, 0]
    c = check(rec, b)
    assert c["records_acked"] == 10 + 20 + 30 + 13
    assert c["records_failed"] == 5
    assert c["records_unknown"] == 7 + 11 + 3
    assert c["acked_lost"] == 20
    assert c["records_lost"] == 20 + 7  # the never-sent batch 7 is not "lost"
    assert c["duplicates"] == 30
    assert c["reordered"] == 11
    assert c["records_consumed"] == 10 + 30
    assert c["records_sent"] == sum([10, 20, 30, 5, 7, 11, 13])


def test_weighted_percentiles_count_records_not_batches():
    # one batch of 99 records at 1 ms and one of 1 record at 100 ms
    v, w = np.array([100.0, 1.0]), np.array([1, 99])
    assert weighted_percentiles(v, w, [50, 99, 100]) == [1.0, 1.0, 100.0]
    assert weighted_percentiles(np.array([]), np.array([]), [50]) == [None]


def test_level_metric_is_time_weighted():
    # under-replicated from 500 ms to 1500 ms, then healthy
    got = _level_per_second(np.array([0.0, 500.0, 1500.0]), np.array([0.0, 1.0, 0.0]),
                            np.array([0.0, 1000.0, 2000.0, 3000.0]))
    assert got == pytest.approx([0.5, 0.5, 0.0])


def test_invariants_hold_on_clean_facts_and_catch_each_violation():
    from sim.measure.invariants import check_invariants

    def base():
        r = Recorder(["p-0"], ["a"])
        for bid in range(3):
            r.batch_created(bid, 0, 0, 10, 10 * bid, 0.0, 1.0)
            r.batch_done(5.0, bid, ACKED, 10 * bid, 0)
            r.appended(1.0 + bid, 0, 0, 10 * bid, bid, 0)
            r.record("final_log", 0, 10 * bid, bid, 10, 0, True)
            r.record("replica_log", 1, 0, 10 * bid, bid)  # a follower's committed prefix, as the leader's
        r.hw_advanced(2.0, 0, 0, 0, 10)
        r.hw_advanced(4.0, 0, 0, 0, 30)
        return r

    assert check_invariants(base()) == []
    r = base()
    r.batch_done(6.0, 1, FAILED, -1, 0)  # a second outcome
    assert any("2 final outcomes" in v for v in check_invariants(r))
    r = base()
    r.hw_advanced(5.0, 0, 0, 0, 20)  # HW falls within epoch 0
    assert any("HW fell from 30 to 20" in v for v in check_invariants(r))
    r = base()
    r.hw_advanced(5.0, 0, 0, 0, 45)  # past what the leader holds (30)
    assert any("HW 45 beyond the 30 records" in v for v in check_invariants(r))
    r = base()
    r.appended(7.0, 1, 0, 30, 2, 0)  # another broker leads epoch 0 too
    assert any("2 brokers appended as leader in epoch 0" in v for v in check_invariants(r))
    r = base()
    r.record("final_log", 0, 45, 2, 10, 0, True)  # a gap at the end of the committed log
    assert any("jumps to offset 45, expected 30" in v for v in check_invariants(r))
    r = base()
    r.batch_done(5.0, 2, ACKED, 0, 0)  # a second answer for batch 2, naming offset 0: it was appended at 20
    assert any("batch 2: acknowledged at offset 0 but appended by leaders at [20]" in v for v in check_invariants(r))
    # log matching: below its HW a follower holds what the leader holds, unless an election was unclean
    r = base()
    r.record("replica_log", 2, 0, 10, 7)  # another batch at offset 10
    r.record("replica_log", 2, 0, 35, 8)  # an offset the leader has no batch at
    found = [v for v in check_invariants(r) if "below its HW" in v]
    assert found == ["p-0: broker 2 holds batch 7 at offset 10 below its HW, but the leader has batch 1 there",
                     "p-0: broker 2 holds batch 8 at offset 35 below its HW, but the leader has nothing there"]
    r.event(6.0, "unclean_election", 2, 0, 2)
    assert not [v for v in check_invariants(r) if "below its HW" in v]
    # a retried batch appended twice (no idempotence): its acknowledgement may name either append,
    # and need not name the copy that survives (under acks=1 the acknowledged one may be lost)
    for acked_at, truthful in ((0, True), (10, True), (20, False)):
        r = Recorder(["p-0"], ["a"])
        r.batch_created(0, 0, 0, 10, 0, 0.0, 1.0)
        r.batch_done(5.0, 0, ACKED, acked_at, 0)
        r.appended(1.0, 0, 0, 0, 0, 0)
        r.appended(2.0, 1, 0, 10, 0, 1)  # the retry, on the next leader
        r.record("final_log", 0, 0, 0, 10, 0, True)  # only the first copy survives
        found = [v for v in check_invariants(r) if "acknowledged at" in v]
        assert found == ([] if truthful else ["batch 0: acknowledged at offset 20 but appended by leaders at [0, 10]"])
    # ids a run never makes (negative, sparse and huge) are still checked, without a table that large
    for bid in (-5, 10**12):
        r = Recorder(["p-0"], ["a"])
        r.batch_done(5.0, bid, ACKED, 0, 0)
        r.appended(1.0, 0, 0, 10, bid, 0)
        assert f"batch {bid}: acknowledged at offset 0 but appended by leaders at [10]" in check_invariants(r)

def test_a_run_reports_the_invariant_violations_of_a_model_bug(monkeypatch):
    """The invariants run on every run: a leader that announces a HW beyond its log shows up in the summary."""
    import sim
    from sim.model.partition import Partition

    advance = Partition.maybe_increment_hw

    def buggy(self):
        advance(self)
        if self.is_leader and self.log.leo > 0:  # the bug: a HW past the data this leader holds
            b = self.broker
            b.recorder.hw_advanced(b.env.now, b.broker_id, self.spec.index, self.leader_epoch, self.log.leo + 1)

    monkeypatch.setattr(Partition, "maybe_increment_hw", buggy)
    quickstart = Path(__file__).resolve().parents[1] / "scenarios" / "quickstart.yaml"
    s = sim.run(quickstart, seed=0,
                overrides={"duration": "3s", "settle": "1s", "faults": []}).summary
    assert s["invariant_violations"] > 0
    assert all("HW fell" in e or "beyond the" in e for e in s["invariant_examples"])


def test_a_follower_whose_log_differs_from_the_leaders_is_reported(monkeypatch):
    """Every replica's committed prefix is recorded at the end and compared with the leader's log."""
    import sim
    from sim.model.log import Log

    append_fetched = Log.append_fetched

    def corrupt(self, data):  # the bug: a follower stores other batches than the ones it fetched
        append_fetched(self, data)
        n = len(data.batch_id)
        self.batch_id[-n:] = type(self.batch_id)("q", [b + 1_000_000 for b in data.batch_id])

    quickstart = Path(__file__).resolve().parents[1] / "scenarios" / "quickstart.yaml"
    over = {"duration": "3s", "settle": "1s", "faults": []}
    assert sim.run(quickstart, seed=0, overrides=over).summary["invariant_violations"] == 0
    monkeypatch.setattr(Log, "append_fetched", corrupt)
    s = sim.run(quickstart, seed=0, overrides=over).summary
    assert s["invariant_violations"] > 0
    assert all("below its HW, but the leader has batch" in e for e in s["invariant_examples"])


def test_a_leader_that_names_the_wrong_offset_is_reported(monkeypatch):
    """Acknowledgements are checked against the leaders' appends in every run."""
    import sim
    from sim.model import messages as m
    from sim.model.replica_manager import ReplicaManager

    respond = ReplicaManager._respond_produce

    def off_by_one(self, req, results):  # the bug: the answer names the offset after the batch's
        respond(self, req, [(b, e, o + 1 if e == m.NONE and o >= 0 else o) for b, e, o in results])

    monkeypatch.setattr(ReplicaManager, "_respond_produce", off_by_one)
    quickstart = Path(__file__).resolve().parents[1] / "scenarios" / "quickstart.yaml"
    s = sim.run(quickstart, seed=0, overrides={"duration": "2s", "settle": "1s", "faults": []}).summary
    assert s["invariant_violations"] > 0
    assert all("acknowledged at offset" in e and "but appended by leaders at" in e for e in s["invariant_examples"])


def test_the_final_committed_log_ends_at_the_holders_hw():
    """Committed means below the final leader's HW (Recorder.final_log): a batch that ends at the HW
    is committed, one that ends past it (or straddles it) is not, however acknowledged."""
    from array import array

    def final(hw):
        r = Recorder(["p-0"], ["a"])
        for bid, (off, count) in enumerate([(0, 10), (10, 10), (20, 5)]):
            r.batch_created(bid, 0, 0, count, off, 0.0, 1.0)
            r.batch_sent(1.0, bid, 0, 1)
            r.batch_done(2.0, bid, ACKED, off, 0)
        r.final_log(0, array("q", [0, 10, 20]), array("q", [0, 1, 2]), array("q", [10, 10, 5]),
                    array("i", [0, 0, 0]), hw)
        return r

    for hw, committed in ((25, [True, True, True]), (20, [True, True, False]), (19, [True, False, False]),
                          (0, [False, False, False])):
        r = final(hw)
        assert r.arrays("final_log")["committed"].tolist() == committed
        b = batches_table(r)
        assert b.copies_in_log.tolist() == [int(c) for c in committed]
        assert check(r, b)["acked_lost"] == sum(n for n, c in zip([10, 10, 5], committed) if not c)


def test_acknowledged_records_beyond_the_final_leaders_hw_are_not_committed():
    """acks=1, min.insync 3: a follower crashes at 5 s and is not fenced before the run ends at 10 s
    (no settle), so the leader's HW stays where it was while it acknowledges 5 s more writes. The
    checker cuts the final log at that HW, not at the leader's log end: those writes are not committed."""
    import sim
    from sim.runs.runner import simulate

    over = {"duration": "10s", "settle": "0s", "consumers": [], "topics.0.partitions": 1,
            "topics.0.min.insync.replicas": 3, "producers.0.acks": 1, "producers.0.enable.idempotence": False,
            "faults": [{"kind": "crash", "broker": 1, "at": "5s"}]}
    sc = sim.load_scenario(Path(__file__).resolve().parents[1] / "scenarios" / "quickstart.yaml", overrides=over)
    cluster, rec, _ = simulate(sc, seed=1)
    state = cluster.controller.state[0]
    assert state.leader != 1 and 1 in state.isr  # broker 1 is still an (unfenced) ISR member
    log = cluster.brokers[state.leader].logs[0]
    assert log.hw < log.leo - 1000
    fl = rec.arrays("final_log")
    ends = fl["offset"] + fl["record_count"]
    assert fl["committed"].tolist() == (ends <= log.hw).tolist()
    assert ends[fl["committed"]].max() == log.hw  # the HW sits at a batch boundary here
    b = batches_table(rec)
    c = check(rec, b)
    assert c["records_acked"] == c["records_sent"] == log.leo  # every record was acknowledged
    assert c["acked_lost"] == log.leo - log.hw  # and those past the HW are not in the committed log
