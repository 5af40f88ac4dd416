"""`kafkasim describe` / `analysis.describe`: what `kafka-topics --describe` would have shown during a run."""

from __future__ import annotations

from pathlib import Path

import pytest

import sim
from analysis import load_run
from analysis.describe import describe, describe_lines
from sim.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def crashed(tmp_path_factory) -> tuple[Path, int]:
    """Quickstart: the leader of events-0 crashes at 2 s, comes back at 22 s; 40 s in all."""
    sc = sim.load_scenario(ROOT / "scenarios" / "quickstart.yaml", overrides={
        "duration": "30s", "settle": "10s", "faults.0.at": "2s", "faults.0.restart_after": "20s",
        "producers.0.rate": "2000/s", "consumers": []})
    res = sim.run(sc, seed=1)
    out = res.write(tmp_path_factory.mktemp("describe") / "run")
    ev = res.events
    victim = int(ev[ev["kind"] == "fault_start"]["broker"].iloc[0])
    return out, victim


def test_before_during_and_after_a_crash(crashed):
    out, victim = crashed
    run = load_run(out)
    before = describe(run, 1_000)
    assert len(before) == 6 and (before["Isr"].map(len) == 3).all() and (before["Leader"] >= 0).all()
    assert (before["Replicas"].map(sorted) == [[0, 1, 2]] * 6).all()
    assert before.loc[0, "Leader"] == victim and before.loc[0, "Replicas"][0] == victim  # preferred leader leads
    during = describe(run, 18_000)  # fenced (session timeout) and replaced, not yet back
    assert not (during["Leader"] == victim).any()
    assert all(victim not in isr and len(isr) == 2 for isr in during["Isr"])
    assert len(describe(run, 18_000, "under_replicated")) == 6
    assert len(describe(run, 18_000, "under_min_isr")) == 0  # ISR 2 = min.insync.replicas 2
    assert len(describe(run, 18_000, "unavailable")) == 0
    end = describe(run)  # restarted at 22 s, caught up long before 40 s
    assert (end["Isr"].map(len) == 3).all()
    assert len(describe(run, None, "under_replicated")) == 0


def test_cli_prints_kafka_topics_lines(crashed, capsys):
    out, victim = crashed
    assert main(["describe", str(out), "--at", "18s", "--under-replicated-partitions"]) == 0
    cap = capsys.readouterr()
    lines = cap.out.splitlines()
    assert len(lines) == 6 and all(line.startswith("Topic: events\tPartition: ") for line in lines)
    assert all("\tLeader: " in line and "\tReplicas: " in line and "\tIsr: " in line for line in lines)
    assert "at 18s" in cap.err


@pytest.mark.parametrize("args, fragment", [
    (["--at", "soon"], "--at soon: cannot parse duration"),
    (["--at", "99s"], "--at 99s: outside the run (allowed: 0 to 40s)"),
    (["--unavailable-partitions", "--under-min-isr-partitions"], "give at most one"),
])
def test_cli_errors_are_one_line(crashed, capsys, args, fragment):
    out, _ = crashed
    assert main(["describe", str(out), *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and fragment in err, err


def test_lines_say_none_for_an_offline_leader():
    import pandas as pd

    frame = pd.DataFrame([{"Topic": "t", "Partition": 0, "Leader": -1, "Replicas": (1, 2), "Isr": (2,), "Elr": (1,),
                           "MinIsr": 2}])
    frame.attrs["elr"] = True
    assert describe_lines(frame) == ["Topic: t\tPartition: 0\tLeader: none\tReplicas: 1,2\tIsr: 2\tElr: 1"]
