"""Typed faults and events: the registry of event kinds, fault_start/fault_end for any fault kind,
and the metrics and timeline built from them (not from a kind name such as "crash")."""

from __future__ import annotations

import ast
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import simpy

from sim.measure.checker import batches_table
from sim.measure.metrics import events_table, failovers
from sim.model.events import EVENT_KINDS, FIELDS, EventKind, declare
from sim.model.faults import ACTIONS, FaultAction, FaultInjector
from sim.model.recorder import TABLES, Recorder
from sim.scenario.schema import ScenarioError, load_scenario
from sim.scenario.faults import CrashFault, RandomCrashFault

ROOT = Path(__file__).resolve().parents[1]

# a fault kind no scenario has: it stops its broker serving but keeps its process (as a pause would)
PAUSE = {"fault": "test_pause", "fault_index": 0, "fault_source": "faults", "target": "broker 0",
         "takes_down": True, "kills_process": False}


# --- the registry ------------------------------------------------------------------------------
def test_the_recorder_rejects_an_undeclared_kind_and_an_undeclared_field():
    r = Recorder(["p-0"])
    with pytest.raises(ValueError, match=r"undeclared event kind 'crash': declare it in sim/model/events.py"):
        r.event(1.0, "crash", 0)
    with pytest.raises(ValueError, match=r"event kind 'hw_resume' has no field\(s\) \['removed'\]"):
        r.event(1.0, "hw_resume", 0, 0, 5, removed=3)
    assert len(r.arrays("events")["kind"]) == 0  # nothing half-written


def test_declaring_a_kind_twice_or_with_an_unknown_field_is_an_error():
    with pytest.raises(ValueError, match="declared twice"):
        declare(EventKind("truncation", "again"))
    with pytest.raises(ValueError, match="unknown fields"):
        declare(EventKind("test_unknown_field", "x", fields=("no_such_column",)))
    assert "test_unknown_field" not in EVENT_KINDS


def _emitted_kinds() -> set[str]:
    """Every event kind written as a literal in a recorder.event(...) call of the model."""
    kinds = set()
    for path in (ROOT / "sim" / "model").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "event"
                    and len(node.args) >= 2):
                arg = node.args[1]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    kinds.add(arg.value)
                elif isinstance(arg, ast.IfExp):  # kind = "a" if ... else "b"
                    kinds |= {a.value for a in (arg.body, arg.orelse) if isinstance(a, ast.Constant)}
    return kinds


def test_every_kind_the_model_emits_is_declared_with_its_meaning():
    emitted = _emitted_kinds()
    assert {"leader_elected", "isr_change", "truncation", "hw_stall", "offset_commit"} <= emitted
    assert emitted <= set(EVENT_KINDS), sorted(emitted - set(EVENT_KINDS))
    for kind in EVENT_KINDS.values():
        assert kind.doc and set(kind.fields) <= set(FIELDS)
    # the events table is the fixed columns, then every structured field
    assert [c for c, _ in TABLES["events"]][6:] == list(FIELDS)


def test_structured_fields_land_in_typed_columns_and_others_hold_their_missing_value():
    r = Recorder(["p-0"])
    r.event(5.0, "isr_change", 0, 0, 2, "[0,1,2]->[0,1] fenced", isr=(0, 1), isr_before=(0, 1, 2), reason="fenced")
    r.event(6.0, "truncation", 1, 0, 40, "removed=10 ...", removed=10, leader_epoch=3, end_offset=40)
    ev = events_table(r)
    assert list(ev["isr"][0]) == [0, 1] and list(ev["isr_before"][0]) == [0, 1, 2] and ev["reason"][0] == "fenced"
    assert ev["removed"].tolist() == [-1, 10] and ev["leader_epoch"].tolist() == [-1, 3]
    assert ev["fault"].tolist() == ["", ""] and ev["fault_index"].tolist() == [-1, -1]
    assert ev["partition"].tolist() == ["p-0", "p-0"]


# --- fault specs -------------------------------------------------------------------------------
def test_fault_specs_are_a_union_on_kind_and_a_kindless_fault_is_a_crash():
    sc = load_scenario(ROOT / "scenarios/quickstart.yaml",
                       ["faults=[{at: 1s, broker: 1}]",
                        "random_faults=[{mean_interval: 5s, downtime: 1s}]"])
    (f,), (rf,) = sc.faults, sc.random_faults
    assert isinstance(f, CrashFault) and f.kind == "crash" and f.heal_after is None and f.target == "broker 1"
    assert isinstance(rf, RandomCrashFault) and rf.kind == "crash"
    # every kind's spec shares the base fields: at and a target; crash adds restart_after
    assert list(CrashFault.model_fields) == ["kind", "at", "broker", "leader_of", "follower_of", "brokers", "rack",
                                             "zone", "restart_after"]
    assert CrashFault(at="1s", leader_of="events-0", restart_after="2s").heal_after == 2000.0


@pytest.mark.parametrize("override, message", [
    ("faults.0.kind=nope", "faults.0.kind: must be one of 'crash'"),
    ("faults.0.kind=null", "faults.0.kind: must be one of 'crash'"),
    ("faults.0.at=abc", "faults.0.at: cannot parse duration 'abc'"),
    ("faults.0=3", "faults.0: must be a mapping with a kind (allowed kinds: 'crash', "),
    ("random_faults=[{kind: x, mean_interval: 1s, downtime: 1s}]", "random_faults.0.kind: must be one of 'crash'"),
    ("random_faults=[{mean_interval: 1s}]", "random_faults.0.downtime: Field required"),
])
def test_fault_spec_errors_are_one_line_naming_the_field(override, message):
    with pytest.raises(ScenarioError) as e:
        load_scenario(ROOT / "scenarios/quickstart.yaml", [override])
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


# --- a fault kind the metrics have never heard of ----------------------------------------------
def _one_partition_with(fault: dict) -> Recorder:
    """Broker 0 leads p-0 from 0; a fault takes it at 1 s; broker 1 is elected at 9 s and acks at 9.5 s."""
    r = Recorder(["p-0"], ["a"])
    r.event(0.0, "leader_elected", 0, 0, 0, "initial", reason="initial")
    r.event(0.0, "became_leader", 0, 0, 0)
    r.event(1000.0, "fault_start", 0, -1, 0, fault["fault"], **fault)
    r.event(9000.0, "leader_elected", 1, 0, 1, "clean", reason="clean")
    r.event(9001.0, "became_leader", 1, 0, 1)
    r.batch_created(0, 0, 0, 10, 0, 9400.0, 9400.0)
    r.batch_sent(9400.0, 0, 1, 1)
    r.appended(9450.0, 1, 0, 0, 0, 1)
    r.batch_done(9500.0, 0, 0, 0, 1)
    r.event(20_000.0, "fault_end", 0, -1, 0, "scheduled", reason="scheduled", **fault)
    return r


def test_failovers_are_measured_from_a_fault_of_any_kind_that_takes_a_leader_down():
    r = _one_partition_with(PAUSE)
    (fo,) = failovers(r, events_table(r), batches_table(r), False)
    assert fo["fault_ms"] == 1000.0 and fo["broker"] == 0 and fo["new_leader"] == 1
    assert fo["election_ms"] == 8000.0 and fo["unavailable_ms"] == 8500.0
    # a fault that does not take its target down (a degradation) starts no failover
    r = _one_partition_with({**PAUSE, "takes_down": False})
    assert failovers(r, events_table(r), batches_table(r), False) == []


def _run_of(events: pd.DataFrame, end_ms: float = 30_000.0):
    """A Run-like object with just what the interval metrics read."""
    return SimpleNamespace(events=events, end_ms=end_ms, scenario={"topics": [{"name": "p", "partitions": 1}]})


def test_down_intervals_and_the_fault_lane_come_from_fault_events_of_any_kind():
    from analysis.metrics import down_intervals, fault_intervals, leadership_intervals
    r = _one_partition_with(PAUSE)
    r.event(2000.0, "fault_start", -1, -1, 1, "slow", **{**PAUSE, "fault": "test_slow", "fault_index": 1,
                                                        "target": "the disks", "takes_down": False})
    run = _run_of(events_table(r))
    faults = fault_intervals(run)
    assert faults[["fault", "start_ms", "end_ms", "takes_down"]].values.tolist() == [
        ["test_pause", 1000.0, 20_000.0, True], ["test_slow", 2000.0, 30_000.0, False]]
    down = down_intervals(run)
    assert down[["broker", "start_ms", "end_ms", "fault"]].values.tolist() == [[0, 1000.0, 20_000.0, "test_pause"]]
    lead = leadership_intervals(run)
    assert lead[lead["state"] == "leader down"][["start_ms", "end_ms"]].values.tolist() == [[1000.0, 9000.0]]


def test_the_failover_timeline_draws_a_fault_lane_for_any_kind(tmp_path):
    pytest.importorskip("matplotlib")
    import sim
    from analysis import load_run
    from analysis.plots import failover_timeline
    res = sim.run(ROOT / "scenarios/quickstart.yaml", seed=1, overrides={"duration": "6s", "settle": "2s",
                                                                           "faults.0.at": "2s",
                                                                           "faults.0.restart_after": "1s"})
    ev = res.events
    # relabel the crash as a kind the plot has never seen: it must still get its bar and its label
    ev.loc[ev["kind"].isin(["fault_start", "fault_end"]), "fault"] = "test_pause"
    res.write(tmp_path / "run")
    fig = failover_timeline(load_run(tmp_path / "run"))
    lanes = next(ax for ax in fig.axes if ax.get_gid() == "timeline:lanes")
    assert "faults" in [t.get_text() for t in lanes.get_yticklabels()]
    assert any(c.get_gid() == "fault:faults.0" for c in lanes.collections)
    # the fault's label on its bar, or (a bar too narrow for it) a numbered tag with the text in the legend
    legend = lanes.get_legend() or lanes.figure.legends[0] if (lanes.get_legend() or lanes.figure.legends) else None
    labels = [t.get_text() for t in lanes.texts] + ([t.get_text() for t in legend.get_texts()] if legend else [])
    assert any("test_pause: leader_of events-0" in t for t in labels), labels


# --- the injector: a new kind is one action ----------------------------------------------------
class _TestPause(FaultAction):
    kind = "test_pause"
    takes_down = True
    kills_process = False

    def start(self, broker) -> None:
        broker.paused = True

    def end(self, broker) -> bool:
        was, broker.paused = broker.paused, False
        return was


def test_the_injector_runs_a_registered_kind_and_emits_its_start_and_end():
    env = simpy.Environment()
    r = Recorder(["p-0"])
    brokers = [SimpleNamespace(broker_id=i, alive=True, paused=False) for i in range(2)]
    spec = SimpleNamespace(kind="test_pause", at=100.0, broker=1, leader_of=None, heal_after=50.0,
                           target="broker 1")
    inj = FaultInjector(env, [spec], brokers, None, {}, r, actions={**ACTIONS, "test_pause": _TestPause()})
    inj.start()
    env.run(until=120.0)
    assert brokers[1].paused
    env.run(until=200.0)
    assert not brokers[1].paused
    ev = events_table(r)
    assert ev[["time_ms", "kind", "broker", "fault", "fault_index", "fault_source", "target", "takes_down",
               "kills_process"]].values.tolist() == [
        [100.0, "fault_start", 1, "test_pause", 0, "faults", "broker 1", True, False],
        [150.0, "fault_end", 1, "test_pause", 0, "faults", "broker 1", True, False]]
    assert ev["reason"].tolist() == ["", "scheduled"]


def test_a_fault_kind_without_an_action_is_an_error():
    spec = SimpleNamespace(kind="test_nothing", at=1.0, broker=0, leader_of=None, heal_after=None, target="broker 0")
    with pytest.raises(ValueError, match=r"fault kind\(s\) \['test_nothing'\] have no action"):
        FaultInjector(simpy.Environment(), [spec], [], None, {}, Recorder())


def test_a_crash_is_a_fault_start_and_end_with_its_structured_fields():
    import sim
    res = sim.run(ROOT / "scenarios/quickstart.yaml", seed=1, overrides={"duration": "6s", "settle": "2s",
                                                                           "faults.0.at": "2s",
                                                                           "faults.0.restart_after": "1s"})
    f = res.events[res.events["kind"].isin(["fault_start", "fault_end"])]
    assert f["kind"].tolist() == ["fault_start", "fault_end"] and f["time_ms"].tolist() == [2000.0, 3000.0]
    assert (f["fault"] == "crash").all() and (f["fault_index"] == 0).all() and (f["fault_source"] == "faults").all()
    assert (f["target"] == "leader_of events-0").all() and f["takes_down"].all() and f["kills_process"].all()
    assert f["broker"].nunique() == 1 and f["reason"].tolist() == ["", "scheduled"]
    assert not res.events["kind"].isin(["crash", "restart"]).any()
