"""Sweeps: expansion and validation, the sweep directory and table, failures, resume after an
interruption or a killed worker, and identical tables from serial, pool and Dask execution."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sim
from sim.cli import main
from sim.runs.results import RUN_FILES
from sim.runs.sweep import (
    AGGREGATE_METRICS, RUN_COLUMNS, WORKER_DIED, SweepError, SweepInterrupted, aggregate, execute_run, load_sweep,
    run_sweep,
)
from sim.runs.sweep.orchestrate import _complete_runs

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "scenarios" / "sweeps" / "smoke.yaml"
ACKS_RF = ROOT / "scenarios" / "sweeps" / "acks-rf.yaml"
ACKS1 = ROOT / "scenarios" / "leader-crash-acks1.yaml"
PARAMS = ["producers.0.acks", "topics.0.replication.factor", "topics.0.min.insync.replicas"]
RUN_ID = re.compile(r"^smoke-[0-9a-f]{8}-s\d{4}$")


def spec(**over) -> dict:
    """A sweep over the acks=1 scenario (expansion only: nothing here runs)."""
    data = {"name": "t", "scenario": str(ACKS1), "grid": {"producers.0.acks": [0, 1, "all"]}, "seeds": 2}
    data.update(over)
    return {k: v for k, v in data.items() if v is not None}


def without_wall_time(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns="wall_time_s")


# --- module-level executors (spawn workers import them by name) ---------------------------------
def is_the_culprit(run) -> bool:
    return run.seed == 1 and run.params["producers.0.acks"] == "all" and run.params[PARAMS[1]] == 3


def execute_or_die(run):
    """Kill the worker process (SIGKILL, like the OOM killer) on one run; simulate the others."""
    if is_the_culprit(run):
        os.kill(os.getpid(), signal.SIGKILL)
    return execute_run(run)


def execute_and_mark(run):
    """Simulate, then leave a mark in $KAFKASIM_TEST_MARKS: the coordinator can tell a run finished."""
    outcome = execute_run(run)
    (Path(os.environ["KAFKASIM_TEST_MARKS"]) / run.run_id).touch()
    return outcome


def execute_or_raise(run):
    """A model bug in one parameter combination: both of its seeds raise."""
    if run.params["producers.0.acks"] == 1 and run.params[PARAMS[1]] == 2:
        raise RuntimeError("injected model bug")
    return execute_run(run)


class CountingExecute:
    """Serial-only executor that records what it ran, optionally Ctrl-C after `interrupt_after` runs."""

    def __init__(self, interrupt_after: int | None = None):
        self.calls: list[str] = []
        self.interrupt_after = interrupt_after

    def __call__(self, run):
        if self.interrupt_after is not None and len(self.calls) == self.interrupt_after:
            raise KeyboardInterrupt  # Ctrl-C in the middle of a run
        self.calls.append(run.run_id)
        return execute_run(run)


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    """The smoke sweep run serially: the reference every other way of running it must match."""
    out = tmp_path_factory.mktemp("sweep") / "serial"
    report = run_sweep(SMOKE, workers=1, out=out)
    return report, out


# --- expansion -----------------------------------------------------------------------------------
def test_smoke_expands_to_the_grid_times_the_zip_times_the_seeds():
    sw = load_sweep(SMOKE)
    assert (sw.name, len(sw.runs), sw.combinations, sw.seeds) == ("smoke", 8, 4, (0, 1))
    assert sw.params == PARAMS
    combos = {tuple(r.params[k] for k in PARAMS) for r in sw.runs}
    assert combos == {(1, 2, 1), (1, 3, 2), ("all", 2, 1), ("all", 3, 2)}  # zip pairs, not a product
    for r in sw.runs:
        sc = r.scenario
        assert sc.seed == r.seed and sc.duration == 5000 and sc.settle == 10_000 and sc.faults[0].at == 2000
        assert sc.producers[0].acks == (-1 if r.params["producers.0.acks"] == "all" else 1)
        assert sc.topics[0].replication_factor == r.params[PARAMS[1]]
        assert sc.topics[0].min_insync_replicas == r.params[PARAMS[2]]
        # Kafka's default idempotence follows each run's acks (the base leaves it unset)
        assert sc.producers[0].enable_idempotence == (r.params["producers.0.acks"] == "all")


def test_grid_is_a_cartesian_product_first_key_slowest():
    sw = load_sweep(spec(grid={"producers.0.acks": [0, 1, "all"], "producers.0.linger.ms": [0, 5]}, seeds=3))
    assert len(sw.runs) == 18 and sw.combinations == 6
    order = [tuple(r.params.values()) for r in sorted(sw.runs, key=lambda r: (r.combination, r.seed))][::3]
    assert order == [(0, 0), (0, 5), (1, 0), (1, 5), ("all", 0), ("all", 5)]
    assert {r.scenario.producers[0].linger_ms for r in sw.runs} == {0.0, 5.0}


def test_zip_groups_vary_together_and_multiply_with_the_grid():
    sw = load_sweep(spec(grid={"producers.0.acks": [1, "all"]}, seeds=1, zip=[
        {"topics.0.replication.factor": [1, 2, 3], "topics.0.min.insync.replicas": [1, 1, 2]},
        {"producers.0.linger.ms": [0, 10]}]))
    assert len(sw.runs) == 2 * 3 * 2
    pairs = {(r.scenario.topics[0].replication_factor, r.scenario.topics[0].min_insync_replicas) for r in sw.runs}
    assert pairs == {(1, 1), (2, 1), (3, 2)}
    assert sw.params == ["producers.0.acks", "topics.0.replication.factor", "topics.0.min.insync.replicas",
                         "producers.0.linger.ms"]


def test_seeds_count_means_0_to_n_minus_1_and_a_list_is_used_as_given():
    assert load_sweep(spec(seeds=4)).seeds == (0, 1, 2, 3)
    sw = load_sweep(spec(seeds=[7, 42]))
    assert sw.seeds == (7, 42)
    assert sorted({(r.seed, r.scenario.seed) for r in sw.runs}) == [(7, 7), (42, 42)]
    assert load_sweep(spec(seeds=None)).seeds == (0,)  # default: one seed


def test_no_grid_means_one_combination_and_the_name_defaults_to_the_file(tmp_path):
    f = tmp_path / "only-seeds.yaml"
    f.write_text(yaml.safe_dump({"scenario": str(ACKS1), "seeds": 3}))
    sw = load_sweep(f)
    assert (sw.name, sw.combinations, len(sw.runs), sw.params) == ("only-seeds", 1, 3, [])


def test_run_ids_are_readable_unique_and_ignore_key_order():
    sw = load_sweep(SMOKE)
    ids = [r.run_id for r in sw.runs]
    assert all(RUN_ID.match(i) for i in ids) and len(set(ids)) == len(ids)
    # the same combination shares its hash across seeds; only the seed suffix differs
    assert {i.rsplit("-s", 1)[0] for i in ids} == {f"smoke-{i.split('-')[1]}" for i in ids}
    assert len({i.rsplit("-s", 1)[0] for i in ids}) == 4
    swapped = spec(grid={"producers.0.linger.ms": [0, 5], "producers.0.acks": [1, "all"]})
    straight = spec(grid={"producers.0.acks": [1, "all"], "producers.0.linger.ms": [0, 5]})
    assert sorted(r.run_id for r in load_sweep(swapped).runs) == sorted(r.run_id for r in load_sweep(straight).runs)


def test_run_ids_are_the_same_in_another_process_with_another_hash_seed():
    here = sorted(r.run_id for r in load_sweep(SMOKE).runs)
    code = f"from sim.runs.sweep import load_sweep; print(sorted(r.run_id for r in load_sweep({str(SMOKE)!r}).runs))"
    for hash_seed in ("1", "987654"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
        assert out.stdout.strip() == str(here)


def test_bundled_acks_rf_sweep_pairs_only_valid_insync_settings():
    sw = load_sweep(ACKS_RF)
    assert (len(sw.runs), sw.combinations, sw.seeds) == (150, 15, tuple(range(10)))
    settings_ = {(r.scenario.producers[0].acks, r.scenario.topics[0].replication_factor,
                  r.scenario.topics[0].min_insync_replicas) for r in sw.runs}
    assert len(settings_) == 15
    assert all(min_isr <= rf for _, rf, min_isr in settings_)
    assert {a for a, _, _ in settings_} == {0, 1, -1}
    assert {rf for _, rf, _ in settings_} == {1, 2, 3} and {m for _, _, m in settings_} == {1, 2}
    assert all([f.kind for f in r.scenario.faults] == ["crash"] for r in sw.runs)


INVALID = {
    "unknown top-level key": (spec(grd={}), "grd: unknown key (allowed: name, description, scenario, set, grid, zip, seeds)"),
    "unknown dotted key": (spec(grid={"producers.0.ack": [1]}), "grid.producers.0.ack: unknown key 'ack' under producers.0 (allowed: "),
    "index out of range": (spec(grid={"producers.3.acks": [1]}), "grid.producers.3.acks: producers has 1 entries; '3' is not an index (allowed: 0..0)"),
    "unknown key in a zip": (spec(zip=[{"topics.0.replication.factr": [1]}]), "zip.0.topics.0.replication.factr: unknown key 'replication' under topics.0 (allowed: flush.messages, flush.ms, min.insync.replicas, name, partitions, replication.factor, "),
    "unknown key in set": (spec(set={"durration": "5s"}), "set.durration: unknown key 'durration' under scenario"),
    "value the scenario rejects": (spec(grid={"producers.0.acks": [1, "al"]}), "grid.producers.0.acks: acks must be one of: all, -1, 0, 1 (or legacy N >= 2), got 'al'"),
    "value of the wrong type": (spec(grid={"producers.0.retries": [3, "many"]}), "grid.producers.0.retries: Input should be a valid integer"),
    "combination the scenario rejects": (spec(grid={"topics.0.replication.factor": [3, 4]}), "topic events: replication.factor 4 exceeds 3 brokers (INVALID_REPLICATION_FACTOR) (with topics.0.replication.factor=4)"),
    "not a list": (spec(grid={"producers.0.acks": "all"}), "grid.producers.0.acks: must be a list of values, e.g. [0, 1, all]"),
    "empty list": (spec(grid={"producers.0.acks": []}), "grid.producers.0.acks: must list at least one value"),
    "zip lengths differ": (spec(zip=[{"topics.0.replication.factor": [1, 2], "topics.0.min.insync.replicas": [1]}]), "zip.0: lists must have the same length (topics.0.replication.factor has 2, topics.0.min.insync.replicas has 1)"),
    "key in grid and zip": (spec(zip=[{"producers.0.acks": [1]}]), "zip.0.producers.0.acks: already set in grid (a key may appear once)"),
    "key in set and grid": (spec(set={"producers.0.acks": 1}), "set.producers.0.acks: also swept in grid (a key may appear once)"),
    "overlapping keys": (spec(grid={"producers.0.acks": [1], "producers.0": [{"topic": "events", "rate": "1/s"}]}), "grid.producers.0.acks: overlaps grid.producers.0"),
    "seed swept": (spec(grid={"seed": [1, 2]}), "grid.seed: use `seeds` to vary the seed"),
    "zero seeds": (spec(seeds=0), "seeds: must be a count 1..1000000 (seeds 0..N-1) or a list of seeds, got 0"),
    "repeated seed": (spec(seeds=[1, 1]), "seeds: the list repeats a seed"),
    "negative seed": (spec(seeds=[1, -2]), "seeds: a list of seeds must be non-empty integers in 0..2**63-1, got -2"),
    "no scenario": (spec(scenario=None), "scenario: required: a path to the base scenario or an inline scenario"),
    "missing base file": (spec(scenario="/nonexistent/base.yaml"), "scenario: /nonexistent/base.yaml: no such scenario file"),
    "bad name": (spec(name="my sweep"), "name: must be letters, digits, '.', '_' or '-'"),
    "not a mapping": ([1, 2], "sweep: expected a mapping at the top level, got list"),
}


@pytest.mark.parametrize("case", list(INVALID))
def test_invalid_sweeps_are_one_line_errors_naming_the_field(case):
    data, message = INVALID[case]
    with pytest.raises(SweepError) as e:
        load_sweep(data)
    assert str(e.value).startswith(message), str(e.value)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("args, message", [
    (["sweep", "{bad}"], "error: grid.producers.0.acks: acks must be one of"),
    (["sweep", "{missing}"], "error: {missing}: no such sweep file"),
    (["sweep", "{dir}"], "error: {dir}: is a directory, expected a sweep YAML file"),
    (["sweep", str(SMOKE), "--workers", "0"], "error: Invalid value for '--workers'"),
    (["sweep", str(SMOKE), "--dask", "bogus://host:1"], "error: dask: cannot connect to a Dask scheduler at 'bogus://host:1'"),
    (["sweep", str(SMOKE), "--dask", "tcp://127.0.0.1:1", "--workers", "2"], "error: workers: applies to the local pool"),
])
def test_cli_bad_input_is_one_line_exit_2_and_nothing_is_written(capsys, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(spec(grid={"producers.0.acks": ["al"]})))
    (tmp_path / "adir").mkdir()
    paths = {"bad": bad, "missing": tmp_path / "missing.yaml", "dir": tmp_path / "adir"}
    rc = main([a.format(**paths) for a in args])
    cap = capsys.readouterr()
    assert rc == 2, cap
    assert cap.err.startswith(message.format(**paths)) and cap.err.count("\n") == 1, cap.err
    assert cap.out == "" and "Traceback" not in cap.err
    assert not (tmp_path / "results").exists()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    acks=st.lists(st.sampled_from([0, 1, "all", -1]), min_size=1, max_size=3, unique=True),
    linger=st.lists(st.integers(0, 1000), min_size=1, max_size=3, unique=True),
    zipped=st.integers(0, 3),
    seeds=st.one_of(st.integers(1, 4), st.lists(st.integers(0, 10**6), min_size=1, max_size=4, unique=True)),
)
def test_expansion_property(acks, linger, zipped, seeds):
    zip_ = [{"producers.0.retries": list(range(zipped)), "producers.0.batch.size": [1000 * (i + 1) for i in range(zipped)]}]
    sw = load_sweep(spec(grid={"producers.0.acks": acks, "producers.0.linger.ms": linger},
                         zip=zip_ if zipped else None, seeds=seeds))
    n_seeds = seeds if isinstance(seeds, int) else len(seeds)
    combos = len(acks) * len(linger) * (zipped or 1)
    assert len(sw.runs) == combos * n_seeds and sw.combinations == combos
    assert len({r.run_id for r in sw.runs}) == len(sw.runs)
    for r in sw.runs:  # every run's scenario carries exactly its parameters and seed
        assert r.scenario.producers[0].linger_ms == r.params["producers.0.linger.ms"]
        assert r.scenario.producers[0].acks == (-1 if r.params["producers.0.acks"] == "all" else r.params["producers.0.acks"])
        assert r.scenario.seed == r.seed and r.run_id.endswith(f"-s{r.seed:04d}")


# --- the sweep directory and table --------------------------------------------------------------
def test_sweep_directory_layout(serial):
    report, out = serial
    assert sorted(p.name for p in out.iterdir()) == ["failures", "runs", "sweep.parquet", "sweep.yaml"]
    ids = sorted(r.run_id for r in report.sweep.runs)
    assert sorted(p.name for p in (out / "runs").iterdir()) == ids  # no temporaries left behind
    for run_id in ids:
        assert sorted(p.name for p in (out / "runs" / run_id).iterdir()) == sorted(RUN_FILES)
    assert list((out / "failures").iterdir()) == []
    assert (report.ran, report.skipped, report.failed) == (8, 0, 0)


def test_sweep_parquet_contract(serial):
    report, out = serial
    frame = pd.read_parquet(out / "sweep.parquet")
    pd.testing.assert_frame_equal(frame, report.frame)  # the API returns exactly the file
    assert list(frame.columns[:9]) == [*RUN_COLUMNS, *PARAMS]
    assert frame["run_id"].tolist() == sorted(frame["run_id"]) and len(frame) == 8
    assert set(frame["status"]) == {"ok"} and frame["error"].isna().all()
    assert set(frame["scenario"]) == {"leader-crash-acks1"} and set(frame["fault_kinds"]) == {"crash"}
    # acks mixes 1 and "all": stored as strings; RF and min.insync stay numeric
    assert sorted(set(frame["producers.0.acks"])) == ["1", "all"]
    assert str(frame["topics.0.replication.factor"].dtype) == "int64"
    assert "failovers" not in frame and "warnings" not in frame and "produce_latency_ms" not in frame
    for col in ("records_lost", "acked_lost", "throughput_rps", "produce_latency_ms.p99", "failover_ms.max",
                "unavailable_ms.p50", "wall_time_s"):
        assert col in frame
    for _, row in frame.iterrows():  # every flattened scalar is the run's own summary.json value
        summary = json.loads((out / "runs" / row["run_id"] / "summary.json").read_text())
        assert row["seed"] == summary["seed"]
        assert row["records_lost"] == summary["records_lost"] and row["acked_lost"] == summary["acked_lost"]
        assert row["produce_latency_ms.p99"] == summary["produce_latency_ms"]["p99"]
        assert row["failover_ms.max"] == summary["failover_ms"]["max"]
        assert row["unavailable_ms.p50"] == summary["unavailable_ms"]["p50"]


def test_run_directory_holds_the_runs_scenario_and_seed(serial):
    report, out = serial
    for run in report.sweep.runs:
        d = out / "runs" / run.run_id
        assert (d / "scenario.yaml").read_text() == run.scenario.to_yaml()
        assert json.loads((d / "summary.json").read_text())["seed"] == run.seed


def test_sweep_yaml_is_a_sweep_file_giving_the_same_runs(serial):
    report, out = serial
    again = load_sweep(out / "sweep.yaml")
    assert [(r.run_id, r.scenario.to_yaml()) for r in again.runs] == \
        [(r.run_id, r.scenario.to_yaml()) for r in report.sweep.runs]


def test_serial_pool_and_dask_local_give_identical_tables(serial, tmp_path):
    report, _ = serial
    pool = sim.sweep(SMOKE, workers=2, out=tmp_path / "pool")
    dask = sim.sweep(SMOKE, dask="local", workers=2, out=tmp_path / "dask")
    pd.testing.assert_frame_equal(without_wall_time(pool), without_wall_time(report.frame))
    pd.testing.assert_frame_equal(without_wall_time(dask), without_wall_time(report.frame))
    for run_id in report.frame["run_id"]:  # and identical run tables, not just summaries
        for table in ("batches.parquet", "events.parquet"):
            serial_t = pd.read_parquet(serial[1] / "runs" / run_id / table)
            pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "pool" / "runs" / run_id / table), serial_t)
            pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "dask" / "runs" / run_id / table), serial_t)


# --- failures and resume ------------------------------------------------------------------------
def test_a_run_that_raises_is_recorded_and_the_sweep_goes_on_then_resume_reruns_only_it(serial, tmp_path):
    out = tmp_path / "s"
    report = run_sweep(SMOKE, workers=1, out=out, execute=execute_or_raise)
    frame = report.frame
    bad = frame[(frame["producers.0.acks"] == "1") & (frame["topics.0.replication.factor"] == 2)]
    assert len(bad) == 2 and report.failed == 2 and set(bad["status"]) == {"failed"}
    assert set(frame.drop(bad.index)["status"]) == {"ok"}
    assert all(e.startswith("RuntimeError: injected model bug (at test_sweep.py:") for e in bad["error"])
    assert bad[["records_lost", "throughput_rps", "produce_latency_ms.p99"]].isna().all().all()
    for _, row in bad.iterrows():
        record = json.loads((out / "failures" / f"{row['run_id']}.json").read_text())
        assert record == {"run_id": row["run_id"], "seed": row["seed"], "error": row["error"],
                          "params": {"producers.0.acks": 1, "topics.0.replication.factor": 2,
                                     "topics.0.min.insync.replicas": 1}}
        assert not (out / "runs" / row["run_id"]).exists()

    counting = CountingExecute()
    resumed = run_sweep(SMOKE, workers=1, out=out, resume=True, execute=counting)
    assert sorted(counting.calls) == sorted(bad["run_id"])  # only the failed runs ran again
    assert (resumed.ran, resumed.skipped, resumed.failed) == (2, 6, 0)
    assert list((out / "failures").iterdir()) == []
    pd.testing.assert_frame_equal(without_wall_time(resumed.frame), without_wall_time(serial[0].frame))


def test_resume_after_an_interrupted_sweep_loses_nothing_and_reruns_nothing_complete(serial, tmp_path):
    out = tmp_path / "s"
    interrupted = CountingExecute(interrupt_after=3)
    with pytest.raises(SweepInterrupted) as e:  # Ctrl-C during the 4th run
        run_sweep(SMOKE, workers=1, out=out, execute=interrupted)
    assert isinstance(e.value, KeyboardInterrupt) and (e.value.complete, e.value.total) == (3, 8)
    # no complete table yet: a partial one lists the finished runs, the rest as missing
    partial = pd.read_parquet(out / "sweep.parquet")
    assert len(partial) == 8 and partial["status"].value_counts().to_dict() == {"missing": 5, "ok": 3}
    assert load_sweep(out / "sweep.yaml").name == "smoke"
    finished = sorted(interrupted.calls)
    assert sorted(p.name for p in (out / "runs").iterdir()) == finished
    stamps = {i: (out / "runs" / i / "summary.json").stat().st_mtime_ns for i in finished}
    # what a worker killed in the middle of Results.write leaves: a hidden temporary directory
    leftover = out / "runs" / f".{sorted(r.run_id for r in serial[0].sweep.runs)[-1]}.tmp-deadbeef"
    leftover.mkdir()
    (leftover / "scenario.yaml").write_text("partial")

    (out / "sweep.parquet").write_text("a damaged table")  # not a complete table: may be replaced

    counting = CountingExecute(interrupt_after=0)  # interrupted again before any run
    with pytest.raises(SweepInterrupted):
        run_sweep(SMOKE, workers=1, out=out, resume=True, execute=counting)
    assert pd.read_parquet(out / "sweep.parquet")["status"].eq("missing").sum() == 5 and counting.calls == []

    counting = CountingExecute()
    resumed = run_sweep(SMOKE, workers=1, out=out, resume=True, execute=counting)
    assert sorted(counting.calls) == sorted(set(serial[0].frame["run_id"]) - set(finished))
    assert {i: (out / "runs" / i / "summary.json").stat().st_mtime_ns for i in finished} == stamps
    assert not leftover.exists()
    assert (resumed.ran, resumed.skipped) == (5, 3)
    pd.testing.assert_frame_equal(without_wall_time(resumed.frame), without_wall_time(serial[0].frame))


def test_resume_reruns_a_run_whose_scenario_changed(serial):
    report, out = serial
    assert _complete_runs(list(report.sweep.runs), out) == {r.run_id for r in report.sweep.runs}
    edited = yaml.safe_load(SMOKE.read_text())
    edited["scenario"] = str(ACKS1)
    edited["set"]["duration"] = "6s"  # same name and grid, so the same run ids, but other runs
    changed = load_sweep(edited)
    assert {r.run_id for r in changed.runs} == {r.run_id for r in report.sweep.runs}
    assert _complete_runs(list(changed.runs), out) == set()


def test_a_killed_pool_worker_loses_no_finished_run_and_only_its_run_fails(serial, tmp_path):
    out = tmp_path / "s"
    report = run_sweep(SMOKE, workers=2, out=out, execute=execute_or_die)
    frame = report.frame.set_index("run_id")
    culprit = next(r.run_id for r in report.sweep.runs if is_the_culprit(r))
    assert frame.loc[culprit, "status"] == "failed" and frame.loc[culprit, "error"] == WORKER_DIED
    # the run that shared the broken pool was retried alone and completed, as did all the others
    assert (frame.drop(culprit)["status"] == "ok").all()
    ok = frame.drop(culprit).reset_index()
    expected = serial[0].frame.set_index("run_id").drop(culprit).reset_index()
    pd.testing.assert_frame_equal(without_wall_time(ok), without_wall_time(expected))
    assert sorted(p.name for p in (out / "failures").iterdir()) == [f"{culprit}.json"]

    resumed = run_sweep(SMOKE, workers=1, out=out, resume=True)
    assert (resumed.ran, resumed.failed) == (1, 0)
    pd.testing.assert_frame_equal(without_wall_time(resumed.frame), without_wall_time(serial[0].frame))


def test_ctrl_c_on_the_cli_keeps_finished_runs_and_resume_completes(tmp_path):
    """A real SIGINT to `kafkasim sweep` running a pool: exit 130, no traceback, nothing finished lost."""
    sweep_file = tmp_path / "slow.yaml"
    slow = yaml.safe_load(SMOKE.read_text())
    slow.update(name="slow", scenario=str(ACKS1), seeds=2)
    slow["set"]["duration"] = "20s"  # about half a second per run, 8 runs
    sweep_file.write_text(yaml.safe_dump(slow))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "sim.cli", "sweep", str(sweep_file), "--workers", "2", "--out", str(out)]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    # wait for the first finished run (the condition, not a time: a loaded machine may take minutes)
    deadline = time.monotonic() + 600
    while not [d for d in (out / "runs").glob("[!.]*")]:
        if p.poll() is not None or time.monotonic() > deadline:
            p.kill()
            stdout, stderr = p.communicate()
            pytest.fail(f"no run finished (exit {p.returncode}) before SIGINT could be sent:\n{stderr[-3000:]}")
        time.sleep(0.02)
    p.send_signal(signal.SIGINT)
    try:
        stdout, stderr = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:  # hung: show where every thread of the sweep is, then fail
        p.send_signal(signal.SIGUSR1)
        time.sleep(1)
        p.kill()
        stdout, stderr = p.communicate()
        pytest.fail(f"kafkasim sweep did not stop within 60 s of SIGINT; its threads:\n{stderr[-6000:]}")
    assert p.returncode == 130, stderr
    assert "interrupted: " in stderr and "Traceback" not in stderr and stdout == ""
    kept = sorted(d.name for d in (out / "runs").glob("[!.]*"))
    assert 1 <= len(kept) < 8 and all((out / "runs" / d / "summary.json").is_file() for d in kept)
    assert f"interrupted: {len(kept)} of 8 runs are complete" in stderr
    stamps = {d: (out / "runs" / d / "summary.json").stat().st_mtime_ns for d in kept}

    done = subprocess.run([*cmd, "--resume"], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"{8 - len(kept)} run now, {len(kept)} kept, 0 failed" in done.stderr
    assert {d: (out / "runs" / d / "summary.json").stat().st_mtime_ns for d in kept} == stamps
    assert len(pd.read_parquet(out / "sweep.parquet")) == 8


def _children(pid: int) -> set[int]:
    """Every live descendant of `pid` (from /proc: no extra dependency)."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_workers_die_with_a_killed_sweep(tmp_path):
    """SIGKILL of `kafkasim sweep` (no chance to stop its pool): its workers and loky's helpers end too."""
    sweep_file = tmp_path / "long.yaml"
    long = yaml.safe_load(SMOKE.read_text())
    long.update(name="long", scenario=str(ACKS1), seeds=2)
    long["set"]["duration"] = "600s"  # minutes per run: the workers are busy when the parent dies
    sweep_file.write_text(yaml.safe_dump(long))
    cmd = [sys.executable, "-m", "sim.cli", "sweep", str(sweep_file), "--workers", "2", "--out", str(tmp_path / "o")]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 300
        while len(_children(p.pid)) < 2:  # two workers (plus loky's resource tracker) have started
            assert p.poll() is None and time.monotonic() < deadline, "the sweep's workers never started"
            time.sleep(0.1)
        helpers = _children(p.pid)
    finally:
        p.kill()
        p.wait()
    deadline = time.monotonic() + 120
    while (alive := {pid for pid in helpers if _alive(pid)}) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in alive:  # never leave them behind, whatever the verdict
        os.kill(pid, signal.SIGKILL)
    assert not alive, f"{len(alive)} of {len(helpers)} pool processes outlived their killed parent"


# --- aggregation and the CLI table ---------------------------------------------------------------
def test_aggregate_per_combination_in_sweep_order(serial):
    report, _ = serial
    agg = aggregate(report.frame, report.sweep)
    assert agg[PARAMS].values.tolist() == [["1", 2, 1], ["1", 3, 2], ["all", 2, 1], ["all", 3, 2]]
    assert agg["n"].tolist() == [2] * 4 and agg["ok"].tolist() == [2] * 4
    for _, row in agg.iterrows():
        runs = report.frame[(report.frame[PARAMS[0]] == row[PARAMS[0]]) & (report.frame[PARAMS[1]] == row[PARAMS[1]])]
        for metric in AGGREGATE_METRICS:
            values = runs[metric].astype(float).tolist()
            assert row[f"{metric}_mean"] == pytest.approx(sum(values) / 2)
            # two seeds: sd = |a - b| / sqrt(2), half-width = t(0.975, 1) * sd / sqrt(2), t = 12.7062
            half = 12.7062 * abs(values[0] - values[1]) / 2
            assert row[f"{metric}_high"] - row[f"{metric}_mean"] == pytest.approx(half, rel=1e-4, abs=1e-9)
            assert row[f"{metric}_mean"] - row[f"{metric}_low"] == pytest.approx(half, rel=1e-4, abs=1e-9)
    # one naming across the sweep table and analysis: no dotted .mean/.ci95 columns
    assert not [c for c in agg.columns if c.endswith((".mean", ".ci95"))]


def test_cli_sweep_resume_prints_the_aggregate_table(capsys, serial):
    report, out = serial
    rc = main(["sweep", str(SMOKE), "--out", str(out), "--resume"])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    assert "smoke: mean ± 95% CI over seeds" in cap.out
    for heading in ("acks", "replication.factor", "min.insync.replicas", "runs ok", "records_lost", "acked_lost",
                    "committed (rec/s)", "p99 latency (ms)", "failover (ms)"):
        assert heading in cap.out
    rows = [line for line in cap.out.splitlines() if line.startswith("│")]
    assert len(rows) == 4 and all("2/2" in r and " ± " in r for r in rows)
    assert "8 runs (4 combinations x 2 seeds); 8 complete, nothing to run" in cap.err
    assert "0 run now, 8 kept, 0 failed" in cap.err


def test_cli_exits_1_when_runs_failed(capsys, tmp_path, monkeypatch):
    sweep_module = sys.modules["sim.runs.sweep.executors"]  # where execute_run looks simulate_run up

    def broken(scenario, seed, **_):
        raise ValueError(f"no luck with seed {seed}")

    monkeypatch.setattr(sweep_module, "simulate_run", broken)  # --workers 1 runs in this process
    rc = main(["sweep", str(SMOKE), "--workers", "1", "--out", str(tmp_path / "s")])
    cap = capsys.readouterr()
    assert rc == 1
    assert "failed: smoke-" in cap.err and "ValueError: no luck with seed" in cap.err
    assert "8 failed" in cap.err and len(list((tmp_path / "s" / "failures").iterdir())) == 8
    assert pd.read_parquet(tmp_path / "s" / "sweep.parquet")["status"].eq("failed").all()


def test_ctrl_c_while_recording_a_run_keeps_the_runs_that_finished_meanwhile(tmp_path, monkeypatch):
    """A Ctrl-C held back while one run is written still lets the pool hand over every finished run."""
    sweep_module = sys.modules["sim.runs.sweep.orchestrate"]
    record, calls = sweep_module._record, []

    marks = tmp_path / "marks"
    marks.mkdir()
    monkeypatch.setenv("KAFKASIM_TEST_MARKS", str(marks))  # spawned pool workers inherit it

    def slow_record(out_dir, run, outcome):
        calls.append(run.run_id)
        if len(calls) == 1:
            deadline = time.monotonic() + 60
            while len(list(marks.iterdir())) < 2 and time.monotonic() < deadline:
                time.sleep(0.02)  # until the other worker has finished a run too
            os.kill(os.getpid(), signal.SIGINT)
        record(out_dir, run, outcome)

    monkeypatch.setattr(sweep_module, "_record", slow_record)
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(SweepInterrupted) as e:
        run_sweep(SMOKE, workers=2, out=tmp_path / "out", execute=execute_and_mark)
    kept = {d.name for d in (tmp_path / "out" / "runs").glob("[!.]*")}
    finished = {m.name for m in marks.iterdir()}
    assert len(finished) >= 2 and finished <= kept and len(kept) == e.value.complete
    assert signal.getsignal(signal.SIGINT) is before


# --- issue 11, item 3: a sweep never loses a complete table nor reruns a finished run ----------
def _snapshot(out: Path) -> dict[str, bytes]:
    return {name: (out / name).read_bytes() for name in ("sweep.parquet", "sweep.yaml")}


def test_an_interrupted_larger_sweep_keeps_the_complete_table_and_sweep_yaml(serial, tmp_path):
    import shutil

    out = tmp_path / "s"
    shutil.copytree(serial[1], out)
    before = _snapshot(out)
    more = yaml.safe_load(SMOKE.read_text())
    more["scenario"] = str(ACKS1)
    more["seeds"] = 3  # one more seed: 4 new runs
    counting = CountingExecute(interrupt_after=2)
    with pytest.raises(SweepInterrupted) as e:
        run_sweep(more, workers=1, out=out, execute=counting)
    assert e.value.kept_table and "sweep.parquet still holds the last complete sweep" in str(e.value)
    assert _snapshot(out) == before  # neither deleted nor rewritten
    assert len(counting.calls) == 2
    assert all(c.endswith("-s0002") for c in counting.calls)  # only new runs ran
    from sim.runs.sweep import sweep_dir_note
    note = sweep_dir_note(out)
    assert note == ("note: s: 2 finished runs are not in sweep.parquet yet (a newer sweep was interrupted); the "
                    "figures show the last complete sweep (run it again to include them)")
    done = run_sweep(more, workers=1, out=out, execute=CountingExecute())
    assert (done.ran, done.skipped, done.failed) == (2, 10, 0) and len(pd.read_parquet(out / "sweep.parquet")) == 12
    assert load_sweep(out / "sweep.yaml").seeds == (0, 1, 2) and sweep_dir_note(out) is None


def test_finished_runs_are_kept_by_default_on_every_executor_and_rerun_only_with_force(serial, tmp_path):
    import shutil

    out = tmp_path / "s"
    shutil.copytree(serial[1], out)
    stamps = {p.name: (p / "summary.json").stat().st_mtime_ns for p in (out / "runs").iterdir()}
    for kwargs in ({"workers": 1}, {"workers": 2}, {"dask": "local", "workers": 2}):
        report = run_sweep(SMOKE, out=out, **kwargs)  # nothing to run: no pool or cluster is even started
        assert (report.ran, report.skipped) == (0, 8), kwargs
    assert {p.name: (p / "summary.json").stat().st_mtime_ns for p in (out / "runs").iterdir()} == stamps
    counting = CountingExecute()
    forced = run_sweep(SMOKE, workers=1, out=out, force=True, execute=counting)
    assert (forced.ran, forced.skipped) == (8, 0) and len(counting.calls) == 8
    pd.testing.assert_frame_equal(without_wall_time(forced.frame), without_wall_time(serial[0].frame))


def test_cli_force_reruns_and_resume_is_accepted(capsys, serial, tmp_path, monkeypatch):
    import dataclasses
    import shutil

    from sim.runs.results import read_results

    out = tmp_path / "s"
    shutil.copytree(serial[1], out)
    assert main(["sweep", str(SMOKE), "--out", str(out)]) == 0
    assert "0 run now, 8 kept, 0 failed" in capsys.readouterr().err
    canned = read_results(next((serial[1] / "runs").iterdir()))
    ran = []

    def fake(scenario, seed, **_):  # --workers 1 runs in this process
        ran.append(seed)
        return dataclasses.replace(canned, scenario=scenario, seed=seed, summary={**canned.summary, "seed": seed})

    monkeypatch.setattr(sys.modules["sim.runs.sweep.executors"], "simulate_run", fake)
    assert main(["sweep", str(SMOKE), "--out", str(out), "--force", "--workers", "1"]) == 0
    assert "8 run now, 0 kept" in capsys.readouterr().err and len(ran) == 8
    rc = main(["sweep", str(SMOKE), "--out", str(out), "--force", "--resume"])
    assert rc == 2 and "--resume and --force: choose one" in capsys.readouterr().err


# --- issue 11, item 1: --out never replaces what kafkasim did not write ---------------------------
@pytest.mark.parametrize("case", ["user-files", "results-dir"])
def test_sweep_out_refuses_a_directory_that_is_not_a_sweep(capsys, tmp_path, serial, case):
    import shutil

    target = tmp_path / "target"
    target.mkdir()
    if case == "user-files":
        (target / "thesis.tex").write_text("chapter 1")
    else:  # results/: a README and earlier runs
        (target / "README.md").write_text("results live here")
        shutil.copytree(serial[1] / "runs" / sorted(p.name for p in (serial[1] / "runs").iterdir())[0],
                        target / "quickstart" / "seed-1")
    before = {str(p): p.read_bytes() if p.is_file() else None for p in sorted(target.rglob("*"))}
    rc = main(["sweep", str(SMOKE), "--out", str(target), "--workers", "1"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and err.startswith(f"error: --out {target}: not empty and not a kafkasim "
                                                               f"sweep directory"), err
    assert "choose another path or a new child such as" in err
    assert {str(p): p.read_bytes() if p.is_file() else None for p in sorted(target.rglob("*"))} == before
    with pytest.raises(SweepError, match="not a kafkasim sweep directory"):
        run_sweep(SMOKE, workers=1, out=target)


def _plots(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir())


def test_plot_and_report_out_never_overwrite_user_files(capsys, tmp_path, serial):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    rc = main(["plot", str(serial[1]), "--out", str(mine)])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith(f"error: --out {mine}: not empty and not a directory of kafkasim figures")
    assert _plots(mine) == ["notes.txt"]
    page = tmp_path / "index.html"
    page.write_text("<html>my homepage</html>")
    rc = main(["report", str(serial[1]), "--out", str(page)])
    err = capsys.readouterr().err
    assert rc == 2 and err == f"error: --out {page}: exists and is not a kafkasim report; kafkasim never " \
                              f"overwrites other files: choose another path\n"
    assert page.read_text() == "<html>my homepage</html>"


def test_plot_and_report_work_on_a_partial_sweep_and_say_what_is_missing(capsys, tmp_path):
    out = tmp_path / "partial"
    with pytest.raises(SweepInterrupted):
        run_sweep(SMOKE, workers=1, out=out, execute=CountingExecute(interrupt_after=3))
    figures = tmp_path / "figures"
    assert main(["plot", str(out), "--out", str(figures)]) == 0
    err = capsys.readouterr().err
    assert ("note: partial is a partial sweep: 5 of 8 runs are missing; the figures and tables use the 3 runs that "
            "finished") in err
    assert any(p.suffix == ".png" for p in figures.iterdir())
    assert main(["plot", str(out), "--out", str(figures)]) == 0  # figures may replace figures
    capsys.readouterr()
    assert main(["report", str(out)]) == 0
    assert "5 of 8 runs are missing" in capsys.readouterr().err
    assert main(["report", str(out)]) == 0  # a report may replace a report
    capsys.readouterr()
    assert (out / "report.html").is_file()
    resumed = run_sweep(SMOKE, workers=1, out=out)  # plots/ and report.html do not make it foreign
    assert (resumed.ran, resumed.skipped) == (5, 3)


# --- issue 11, items 10, 11, 13: guard rails, warnings, progress ----------------------------------
def test_a_scenario_file_passed_to_sweep_says_so_in_one_line(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc = main(["sweep", str(ACKS1)])
    err = capsys.readouterr().err
    assert rc == 2 and err == (f"error: {ACKS1}: is a scenario file, not a sweep; run it with `kafkasim run {ACKS1}`, "
                               f"or name it in a sweep file (scenario: leader-crash-acks1.yaml)\n")
    assert not (tmp_path / "results").exists()


def test_a_million_seeds_is_refused_before_anything_is_expanded():
    t0 = time.monotonic()
    with pytest.raises(SweepError) as e:
        load_sweep(spec(seeds=1_000_000))
    assert time.monotonic() - t0 < 5
    assert str(e.value) == ("seeds: 1,000,000 seeds x 3 combinations = 3,000,000 runs, more than the 100,000 one "
                            "sweep may have (use fewer seeds or values, or split the sweep)")


def test_a_combination_that_cannot_fit_is_refused_before_anything_runs(tmp_path):
    with pytest.raises(SweepError) as e:
        run_sweep(spec(grid={"producers.0.rate": ["1000/s", "1e12/s"]}, seeds=1), workers=1, out=tmp_path / "s")
    assert "memory this machine has" in str(e.value) and str(e.value).endswith("(with producers.0.rate=1e12/s)")
    assert not (tmp_path / "s").exists()


def test_sweep_warnings_print_once_at_the_top(capsys, tmp_path):
    data = spec(grid={"topics.0.min.insync.replicas": [2, 3]}, seeds=1)
    data["set"] = {"topics.0.replication.factor": 2, "duration": "2s", "settle": "1s", "faults": [],
                   "producers.0.instances": 1}
    f = tmp_path / "w.yaml"
    f.write_text(yaml.safe_dump(data))
    rc = main(["sweep", str(f), "--workers", "1", "--out", str(tmp_path / "s")])
    err = capsys.readouterr().err
    assert rc == 0, err
    lines = err.splitlines()
    warning_lines = [i for i, line in enumerate(lines) if line.startswith("warning: ")]
    assert warning_lines == [0], err
    assert lines[0].startswith("warning: topics.0.min.insync.replicas=3 exceeds replication.factor 2") and \
        lines[0].endswith("(with topics.0.min.insync.replicas=3)")


def test_sweep_expansion_lets_no_raw_validation_warning_escape():
    """Legacy acks=2: the sweep prints its one-line warning once; no raw UserWarning (with a source line) per run."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sw = load_sweep(spec(grid={"producers.0.acks": [2]}))
    assert len(sw.runs) == 2
    assert [str(w.message) for w in caught if "legacy" in str(w.message)] == []


def test_sweep_eta_comes_from_completed_run_durations():
    from sim.runs.sweep.progress import _Progress, format_eta

    bar = _Progress(False, "t")
    bar.start(total=10, parallel=2, estimate_s=100.0)
    assert bar._eta_text().startswith("~")  # before any run completes: the work estimate, marked as such
    for _ in range(4):
        bar.advance(failed=False, wall_s=30.0)
    assert bar.eta() == pytest.approx(30.0 * 6 / 2)  # 6 runs left, 2 at a time, 30 s each
    assert format_eta(bar.eta()) == "1m30s" and format_eta(7300) == "2h01m" and format_eta(None) == "?"


def test_sweep_progress_lines_off_a_terminal(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules["sim.runs.sweep.progress"], "PROGRESS_INTERVAL_S", 0.0)
    data = spec(seeds=2)
    data["set"] = {"duration": "1s", "settle": "1s", "faults": [], "producers.0.instances": 1}
    run_sweep(data, workers=1, out=tmp_path / "s", progress=True)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("progress: ")]
    assert len(lines) == 6
    assert re.fullmatch(r"progress: t: 1/6 runs done \(0 failed\), [\d.,]+ runs/min, elapsed \S+, ETA \S+", lines[0])
    assert lines[-1].startswith("progress: t: 6/6 runs done") and lines[-1].endswith("ETA 0s")


@pytest.mark.parametrize("base", ["itself", "another sweep"])
def test_a_sweep_whose_base_is_a_sweep_file_is_a_one_line_error(tmp_path, capsys, base):
    """A sweep varies one scenario: naming itself (or another sweep) as its base read the sweep as a
    scenario of defaults and failed on the first grid key ("unknown key '0' under producers")."""
    f = tmp_path / "selfie.yaml"
    target = f if base == "itself" else ROOT / "scenarios" / "sweeps" / "smoke.yaml"
    f.write_text(yaml.safe_dump({"name": "selfie", "scenario": str(target),
                                 "grid": {"producers.0.acks": [1, "all"]}}))
    assert main(["sweep", str(f), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    assert err == (f"error: scenario: {target} is a sweep file, not a scenario"
                   f"{' (this sweep file itself)' if base == 'itself' else ''}; name the scenario file "
                   "the sweep varies")
    assert not (tmp_path / "o").exists()
