"""The results contract (sim.runs.contract): one typed summary, one reader, one writer, one aggregate."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import analysis
import sim
from sim.runs import contract
from sim.runs.contract import CONDITIONAL_KEYS, RunSummary, aggregate, read_run, write_atomic
from sim.runs.results import read_results

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    res = sim.run(ROOT / "scenarios" / "leader-crash-acks1.yaml", seed=3, overrides={"duration": "25s"})
    return res.write(tmp_path_factory.mktemp("contract") / "run")


def test_typed_summary_round_trips_summary_json(run_dir):
    text = (run_dir / "summary.json").read_text()
    data = json.loads(text)
    summary = RunSummary.from_dict(data)
    assert summary.to_json() == text  # same keys, same order, same values
    assert list(data) == [k for k in RunSummary.keys_in_order() if k not in CONDITIONAL_KEYS or k in data]
    assert summary.acked_lost == summary["acked_lost"] == data["acked_lost"]
    assert summary.overrides == {"duration": "25s"}  # recorded by the runner, no placeholder
    assert dict(summary) == data and summary == data


def test_older_and_newer_summaries_read_as_written():
    old = {"scenario": "s", "seed": 1, "sim_duration_ms": 10.0, "from_the_future": [1]}
    s = RunSummary.from_dict(old)
    assert s.invariant_violations is None and "invariant_violations" not in s and s.get("invariant_violations") is None
    assert s.extra == {"from_the_future": [1]} and s.to_dict() == old


def test_sim_and_analysis_read_a_run_directory_through_one_function(run_dir, monkeypatch):
    calls = []
    real = contract.read_run

    def spy(path, **kw):
        calls.append(Path(path))
        return real(path, **kw)

    monkeypatch.setattr(contract, "read_run", spy)
    import sim.runs.results
    assert analysis.load_run is real and sys.modules["analysis.load"].load_run is real  # the contract's reader
    monkeypatch.setattr(sim.runs.results, "read_run", spy)
    res = read_results(run_dir)
    assert calls == [run_dir]
    run = real(run_dir)
    assert res.summary == run.summary and res.batches.equals(run.batches) and res.events.equals(run.events)


def test_one_atomic_writer_for_files_and_directories(tmp_path):
    f = tmp_path / "table.txt"
    write_atomic(f, lambda p: p.write_text("one"))
    write_atomic(f, lambda p: p.write_text("two"))
    assert f.read_text() == "two"

    def dir_writer(text):
        def write(p: Path):
            p.mkdir()
            (p / "x").write_text(text)
        return write

    d = tmp_path / "run"
    write_atomic(d, dir_writer("a"))
    write_atomic(d, dir_writer("b"))
    assert (d / "x").read_text() == "b"

    def broken(p: Path):
        p.mkdir()
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomic(d, broken)
    assert (d / "x").read_text() == "b"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "table.txt"]  # no temporaries left


def test_aggregate_has_one_naming(run_dir):
    table = pd.DataFrame({"g": ["a", "a", "b"], "seed": [0, 1, 0], "x": [1.0, 3.0, 5.0]})
    agg = aggregate(table, ["g"], ["x"])
    assert [c for c in agg.columns if c.startswith("x_")] == ["x_mean", "x_low", "x_high", "x_n", "x_clipped"]
    assert agg["x_mean"].tolist() == [2.0, 5.0]
    assert analysis.aggregate is aggregate
    assert aggregate(table, [], ["x"])["x_mean"].tolist() == [3.0]  # no grouping column: one group


def test_the_measures_of_the_batches_table_are_shared(run_dir):
    run = read_run(run_dir)
    tally = analysis.loss_tally(run.batches)
    for key in ("records_produced", "records_sent", "records_acked", "records_failed", "records_unknown", "acked_lost",
                "records_lost", "failed_but_present", "duplicates", "records_consumed"):
        assert tally[key] == run.summary[key], key
    lat = analysis.produce_latencies(run.batches)
    assert analysis.produce_latencies is sim.measure.batches.produce_latencies
    assert float(np.max(lat["latency_ms"])) <= run.summary.produce_latency_ms["max"]


@pytest.mark.parametrize("module", ["sim.runs.runner", "sim.runs.sweep", "sim.runs.results", "sim.runs.contract",
                                    "sim.cli.app"])
def test_sim_never_imports_analysis(module):
    code = (f"import sys, {module}; bad = sorted(m for m in sys.modules if m == 'analysis' or m.startswith('analysis.'));"
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "", f"{module} imports {out.stdout.strip()}"


def test_the_contract_is_a_leaf():
    code = ("import sys, sim.runs.contract; print(','.join(sorted(m for m in sys.modules if m.startswith('sim.')"
            " and m not in ('sim.runs', 'sim.runs.contract', 'sim.measure', 'sim.measure.stats'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == ""


def test_analysis_sweep_names_differ_from_sims():
    assert analysis.SweepResults is contract.SweepResults and analysis.load_sweep_results
    with pytest.warns(DeprecationWarning, match="renamed analysis.SweepResults"):
        assert analysis.Sweep is analysis.SweepResults
    assert sim.load_sweep.__module__ == "sim.runs.sweep.spec"


def test_summary_is_changed_by_replace_only(run_dir):
    s = read_run(run_dir, tables=False).summary
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.acked_lost = 0  # type: ignore[misc]
    assert dataclasses.replace(s, overrides={"a": 1}).overrides == {"a": 1}
