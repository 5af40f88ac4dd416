"""Sweeps under abuse: SIGKILL then resume runs every run exactly once; a run in a sweep equals
the same run alone, byte for byte; fuzzed sweep files are one-line errors, never crashes."""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sim
from sim.cli import main
from sim.runs.sweep import SweepError, load_sweep

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "scenarios" / "sweeps" / "smoke.yaml"
ACKS1 = ROOT / "scenarios" / "leader-crash-acks1.yaml"


def _slow_sweep(tmp_path: Path) -> Path:
    spec = yaml.safe_load(SMOKE.read_text())
    spec.update(name="killme", scenario=str(ACKS1), seeds=2)
    spec["set"]["duration"] = "20s"
    f = tmp_path / "killme.yaml"
    f.write_text(yaml.safe_dump(spec))
    return f


def test_sigkill_then_resume_completes_every_run_exactly_once(tmp_path):
    sweep_file = _slow_sweep(tmp_path)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "sim.cli", "sweep", str(sweep_file), "--workers", "2", "--out", str(out)]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path,
                         start_new_session=True)
    deadline = time.monotonic() + 90
    while not list((out / "runs").glob("[!.]*")) and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(p.pid, signal.SIGKILL)  # the coordinator and its pool workers, no chance to clean up
    p.wait()
    kept = {d.name: (d / "summary.json").stat().st_mtime_ns for d in (out / "runs").glob("[!.]*")}
    assert kept and all((out / "runs" / d / "summary.json").is_file() for d in kept)
    assert not (out / "sweep.parquet").exists()  # only written once every run has an outcome

    done = subprocess.run([*cmd, "--resume"], capture_output=True, text=True, cwd=tmp_path, timeout=180)
    assert done.returncode == 0, done.stderr
    table = pd.read_parquet(out / "sweep.parquet")
    assert len(table) == 8 and table["run_id"].is_unique and (table["status"] == "ok").all()
    runs = sorted(d.name for d in (out / "runs").glob("[!.]*"))
    assert runs == sorted(table["run_id"])  # each run exactly once, no torn leftovers among them
    # the runs finished before the kill were not run again
    assert {d: (out / "runs" / d / "summary.json").stat().st_mtime_ns for d in kept} == kept


def test_a_run_in_a_sweep_equals_the_same_run_alone(tmp_path):
    out = tmp_path / "sweep"
    table = sim.sweep(SMOKE, workers=2, out=out)
    row = table.iloc[3]
    run_dir = out / "runs" / row["run_id"]
    scenario = sim.load_scenario(run_dir / "scenario.yaml")
    alone = sim.run(scenario, seed=int(row["seed"])).write(tmp_path / "alone")
    assert (alone / "batches.parquet").read_bytes() == (run_dir / "batches.parquet").read_bytes()
    assert (alone / "events.parquet").read_bytes() == (run_dir / "events.parquet").read_bytes()


SPEC = yaml.safe_load(SMOKE.read_text())
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20), st.floats(), st.text(max_size=8),
                    st.sampled_from(["-1s", "abc", "all", "0/s", "1e400", "nope.yaml"]))
values = st.recursive(scalars, lambda i: st.one_of(st.lists(i, max_size=3), st.dictionaries(st.text(max_size=6), i,
                                                                                             max_size=2)),
                      max_leaves=5)
KEYS = ["name", "scenario", "set", "grid", "zip", "seeds", "description", "bogus",
        ("grid", "producers.0.acks"), ("grid", "cluster.nope"), ("set", "duration"), ("zip", 0)]


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(KEYS), values)
def test_fuzzed_sweep_files_are_rejected_in_one_line_or_accepted(key, value):
    spec = copy.deepcopy(SPEC)
    spec["scenario"] = str(ROOT / "scenarios" / "leader-crash-acks1.yaml")
    node = spec
    if isinstance(key, tuple):
        node = spec.setdefault(key[0], {}) if not isinstance(spec.get(key[0]), list) else spec[key[0]]
        key = key[1]
        if isinstance(node, list):
            if not node:
                return
            key = 0
    node[key] = value
    try:
        sw = load_sweep(spec)
    except SweepError as e:
        msg = str(e)
        assert msg and "Traceback" not in msg
        assert all(line.strip() for line in msg.split("\n"))
        return
    assert len(sw.runs) >= 1


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=200))
def test_garbage_sweep_files_exit_2_and_write_nothing(tmp_path_factory, capsys, data):
    d = tmp_path_factory.mktemp("sweepfuzz")
    f = d / "sweep.yaml"
    f.write_bytes(data)
    rc = main(["sweep", str(f), "--workers", "1", "--out", str(d / "out")])
    err = capsys.readouterr().err
    assert rc == 2, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines and all(ln.startswith("error: ") for ln in lines) and "Traceback" not in err
    assert not (d / "out").exists()


def _pool_fault(mode: str, tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "tests" / "pool_faults.py"), mode, str(tmp_path)],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)


def test_a_worker_killed_halfway_through_sending_its_result_does_not_hang_the_sweep(tmp_path):
    """Killed halfway through a pipe message, the pool's manager would wait for the rest for ever;
    the outcome is half written to a file instead, the pool breaks and the run is retried alone."""
    t0 = time.monotonic()
    out = _pool_fault("died", tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.splitlines() == ["outcome r1 error=None", "exited"]
    assert time.monotonic() - t0 < 30


def test_ctrl_c_while_a_worker_is_halfway_through_sending_exits(tmp_path):
    """The pool is stopped, its stalled worker killed (no orphan), and the interpreter exits."""
    out = _pool_fault("interrupted", tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.splitlines() == ["interrupted", "exited"]
    worker = int((tmp_path / "worker.pid").read_text())
    try:
        os.kill(worker, 0)
    except ProcessLookupError:
        pass
    else:
        raise AssertionError(f"the stalled worker {worker} outlived the sweep")
