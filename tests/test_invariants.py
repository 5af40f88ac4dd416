"""The invariants added for issue 10, on hand-written facts and on real runs.

- One leader per (partition, epoch) and incarnation: each epoch is begun once, and every append
  as leader in it is by the broker that began it, after that and before that broker next crashed.
- Consumers see only committed records: what a consumer received is in the final committed log.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import sim
from sim.measure.invariants import INVARIANTS, check_invariants, check_invariants_by_rule
from sim.model.recorder import Recorder
from tests.violations import all_violations

SCEN = Path(__file__).resolve().parents[1] / "scenarios"

# the structured fields of a crash fault event (sim/model/events.py)
CRASH = {"fault": "crash", "fault_index": 0, "fault_source": "faults", "target": "broker 0", "takes_down": True,
         "kills_process": True}


def _leadership_facts() -> Recorder:
    """p-0: broker 0 leads epoch 0 and crashes at 100 ms; broker 1 leads epoch 1 from 200 ms."""
    r = Recorder(["p-0"], ["a"])
    r.event(0.0, "leader_elected", 0, 0, 0, "initial")
    r.event(0.0, "became_leader", 0, 0, 0)
    r.appended(10.0, 0, 0, 0, 0, 0)
    r.appended(20.0, 0, 0, 10, 1, 0)
    r.appended_many(21.0, 1, 0, [0, 10], [0, 1], [0, 0])  # broker 1 follows
    r.event(100.0, "fault_start", 0, -1, 0, "crash", **CRASH)
    r.event(190.0, "leader_elected", 1, 0, 1, "clean")
    r.event(200.0, "became_leader", 1, 0, 1)
    r.appended(210.0, 1, 0, 20, 2, 1)
    return r


def _leadership(r: Recorder) -> list[str]:
    return [v for v in check_invariants(r) if "epoch" in v]


def test_one_leader_per_epoch_and_incarnation_holds_on_clean_facts():
    assert check_invariants(_leadership_facts()) == []
    # at its crash instant the old incarnation may still append (same time, earlier event)
    r = _leadership_facts()
    r.appended(100.0, 0, 0, 20, 2, 0)
    assert _leadership(r) == []


def test_an_epoch_begun_twice_is_reported_even_by_the_same_broker():
    """Broker 0 restarts within its session timeout and leads its old epoch 0 again (defect 2)."""
    r = _leadership_facts()
    r.event(150.0, "fault_end", 0, -1, 0, "scheduled", **CRASH)
    r.event(151.0, "became_leader", 0, 0, 0)
    assert _leadership(r) == ["p-0: leader epoch 0 begun 2 times (broker 0 at 0.000 ms, broker 0 at 151.000 ms)"]
    r.event(300.0, "became_leader", 2, 0, 1)  # and another broker in epoch 1
    assert "p-0: leader epoch 1 begun 2 times (broker 1 at 200.000 ms, broker 2 at 300.000 ms)" in _leadership(r)


def test_every_append_as_leader_is_by_the_incarnation_that_began_its_epoch():
    # the restarted broker appends in its old epoch, after the crash of the incarnation that began it
    r = _leadership_facts()
    r.event(150.0, "fault_end", 0, -1, 0, "scheduled", **CRASH)
    r.appended(160.0, 0, 0, 20, 2, 0)
    assert _leadership(r) == ["p-0: broker 0 appended as leader in epoch 0 at 160.000 ms, after it crashed at "
                              "100.000 ms (it became leader of that epoch at 0.000 ms, in an earlier incarnation)"]
    # the leader of epoch 1 before it became leader
    r = _leadership_facts()
    r.appended(195.0, 1, 0, 20, 2, 1)
    assert _leadership(r) == ["p-0: broker 1 appended as leader in epoch 1 at 195.000 ms, before it became "
                              "leader of that epoch at 200.000 ms"]
    # another broker in epoch 1
    r = _leadership_facts()
    r.appended(220.0, 2, 0, 30, 2, 1)
    assert _leadership(r) == ["p-0: broker 2 appended as leader in epoch 1 at 220.000 ms, but broker 1 became "
                              "leader of epoch 1"]
    # an epoch nobody began
    r = _leadership_facts()
    r.appended(230.0, 1, 0, 30, 2, 2)
    assert _leadership(r) == ["p-0: broker 1 appended as leader in epoch 2 at 230.000 ms, but no broker became "
                              "leader of epoch 2"]
    # in a partition whose leadership the facts do not record (hand-written), only the weaker rule:
    # one broker appending as leader per epoch
    r = Recorder(["p-0", "p-1"], ["a"])
    r.event(0.0, "became_leader", 0, 0, 0)
    r.appended(10.0, 1, 1, 0, 0, 0)
    assert _leadership(r) == []
    r.appended(11.0, 2, 1, 10, 1, 0)
    assert _leadership(r) == ["p-1: 2 brokers appended as leader in epoch 0"]


def test_each_violation_is_counted_under_the_rule_it_breaks():
    """summary.json names the rule that broke (invariant_violations_by_rule): the rules are named
    functions in one list, and each violation is listed under its own rule only."""
    assert [inv.name for inv in INVARIANTS] == [
        "one_outcome_per_batch", "hw_monotone_in_epoch", "hw_within_log", "one_leader_per_epoch",
        "committed_log_contiguous", "acks_truthful", "log_matching", "consumers_read_committed"]
    assert all(inv.rule.endswith(".") and inv.rule[0].isupper() for inv in INVARIANTS)
    clean = check_invariants_by_rule(_leadership_facts())
    assert list(clean) == [inv.name for inv in INVARIANTS] and not any(clean.values())
    r = _leadership_facts()
    r.appended(220.0, 2, 0, 30, 2, 1)  # another broker appends as leader in epoch 1
    r.consumed_many(7.0, 0, 0, [40], [9])  # a consumer reads what was never in the log
    by_rule = {k: len(v) for k, v in check_invariants_by_rule(r).items() if v}
    assert by_rule == {"one_leader_per_epoch": 1, "consumers_read_committed": 1}
    assert check_invariants(r) == [v for vs in check_invariants_by_rule(r).values() for v in vs]


def _consumed_facts() -> Recorder:
    """p-0's final log: batches 0 and 1 committed, batch 2 beyond the HW; a consumer read 0 and 1."""
    r = Recorder(["p-0"], ["a"], ["g-0"])
    for bid in range(3):
        r.record("final_log", 0, 10 * bid, bid, 10, 0, bid < 2)
    r.consumed_many(5.0, 0, 0, [0, 10], [0, 1])
    r.consumed_many(6.0, 0, 0, [0], [0])  # read again (a restarted consumer): still committed
    return r


def _consumption(r: Recorder) -> list[str]:
    return [v for v in check_invariants(r) if "consumed" in v]


def test_consumers_see_only_committed_records():
    assert _consumption(_consumed_facts()) == []
    r = _consumed_facts()
    r.consumed_many(7.0, 0, 0, [20, 30], [2, 3])  # beyond the HW (read up to the log end), and not in the log
    r.consumed_many(8.0, 0, 0, [10], [5])  # another batch than the log holds there
    assert _consumption(r) == [
        "p-0: g-0 consumed batch 2 at offset 20 at 7.000 ms, but the final committed log has nothing there",
        "p-0: g-0 consumed batch 3 at offset 30 at 7.000 ms, but the final committed log has nothing there",
        "p-0: g-0 consumed batch 5 at offset 10 at 8.000 ms, but the final committed log has batch 1 there"]
    r.event(9.0, "unclean_election", 1, 0, 1)  # an unclean election gives the guarantee up
    assert _consumption(r) == []


def test_a_consumer_reading_past_the_hw_is_reported(monkeypatch):
    """The mutation `upto = log.leo` for consumers in FetchManager._read_for_fetch: consumers would see
    acks=1 records above the HW, never committed. The invariant reports it in the summary."""
    from sim.model.fetch_session import FetchManager

    read = FetchManager._read_for_fetch

    def past_hw(self, req):
        if req.replica_id >= 0:
            return read(self, req)
        saved = {}
        for pf in req.partitions:  # serve consumers as if the HW were the log end
            r = self.broker.replicas.get(pf.partition)
            if r is not None and r.is_leader:
                saved[pf.partition] = r.log.hw
                r.log.hw = r.log.leo
        try:
            return read(self, req)
        finally:
            for p, hw in saved.items():
                self.broker.replicas[p].log.hw = hw

    # both followers of the only partition crash and stay down: the ISR shrinks to the leader, under
    # min.insync.replicas=2 the HW stops (KIP-966 part 1), and acks=1 writes pile up above it
    base = {"duration": "15s", "settle": "0s", "faults": [], "topics.0.partitions": 1, "producers.0.instances": 2}
    leader = int(sim.run(SCEN / "leader-crash-acks1.yaml", seed=0, overrides=dict(base, duration="1s"))
                 .events.query("kind == 'became_leader'").broker.iloc[0])
    over = dict(base, faults=[{"kind": "crash", "broker": b, "at": "3s", "restart_after": "100s"}
                              for b in range(3) if b != leader])
    seeds = range(1)
    for seed in seeds:
        assert sim.run(SCEN / "leader-crash-acks1.yaml", seed=seed, overrides=over).summary["invariant_violations"] == 0
    monkeypatch.setattr(FetchManager, "_read_for_fetch", past_hw)
    found = []
    for seed in seeds:
        s = sim.run(SCEN / "leader-crash-acks1.yaml", seed=seed, overrides=over).summary
        found += [e for e in s["invariant_examples"] if "consumed batch" in e]
        # summary.json names the broken rule, and only that one
        assert {k: v for k, v in s["invariant_violations_by_rule"].items() if v} == {
            "consumers_read_committed": s["invariant_violations"]}
    assert found and all("but the final committed log has" in e for e in found)


@pytest.mark.parametrize("downtime", ["12s", "1s"])
def test_random_faults_keep_every_invariant(downtime):
    """Random crashes of any broker (leaders and followers), each down longer than the session
    timeout (9 s) or shorter (1 s: restarted before it is fenced, which defect 2 affects)."""
    over = {"duration": "40s", "settle": "15s", "faults": [], "topics.0.partitions": 3,
            "random_faults": [{"kind": "crash", "mean_interval": "6s", "downtime": downtime, "start": "2s"}]}
    for seed in (0, 1):
        with all_violations() as found:
            r = sim.run(SCEN / "quickstart.yaml", seed=seed, overrides=over)
        assert (r.events.kind == "fault_start").sum() >= 2
        assert found == [], found[:5]


def test_a_broker_not_caught_up_at_the_end_keeps_every_invariant():
    """The setup of test_a_broker_still_down_at_the_end...: the crashed leader is back only when
    faults heal, at the very end (settle 0 s: a restarted broker rejoins within a second); consumers
    still read only what the final log commits."""
    over = {"duration": "30s", "settle": "0s", "faults.0.restart_after": "100s"}
    with all_violations() as found:
        r = sim.run(SCEN / "quickstart.yaml", seed=0, overrides=over)
    assert r.summary["under_replicated_partitions_at_end"] > 0
    assert r.summary["records_consumed"] > 0
    assert found == [], found[:5]


REPRO = {"duration": "15s", "settle": "10s", "topics.0.partitions": 1, "producers.0.instances": 1,
         "producers.0.rate": "5000/s", "producers.0.reconnect.backoff.ms": 10,
         "producers.0.reconnect.backoff.max.ms": 10, "faults.0.at": "5s", "faults.0.restart_after": "1s"}


def test_the_defect_2_repro_restarts_its_leader_before_the_fencing():
    """The repro's precondition, whichever branch: the leader is back before its session lapses."""
    r = sim.run(SCEN / "leader-crash-acks1.yaml", seed=1, overrides=REPRO)
    assert r.scenario.topics[0].replication_factor == 3 and r.scenario.producers[0].acks == 1
    ev = r.events
    crash = ev[ev.kind == "fault_start"].time_ms.iloc[0]
    restart = ev[ev.kind == "fault_end"].time_ms.iloc[0]
    fenced = ev[(ev.kind == "broker_fenced") & (ev.time_ms > crash)].time_ms.iloc[0]
    assert crash == 5_000 and restart == 6_000 and fenced >= restart


def test_a_leader_restarted_within_its_session_does_not_lead_its_old_epoch_again():
    """Defect 2: one partition, RF 3, acks=1, 5000/s, reconnect backoff 10 ms; the leader crashes at
    5 s and is back at 6 s, before the controller fenced it. Before the fix it led epoch 0 again and the
    producer's writes there were lost: the one-leader-per-epoch-and-incarnation invariant said so."""
    with all_violations() as found:
        sim.run(SCEN / "leader-crash-acks1.yaml", seed=1, overrides=REPRO)
    assert found == [], found[:5]
