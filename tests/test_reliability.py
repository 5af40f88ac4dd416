"""Determinism across processes, and no half-written results when a run is killed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sim.runs.results import RUN_FILES, read_results

ROOT = Path(__file__).resolve().parents[1]
QUICK = ["--set", "duration=8s", "--set", "settle=5s", "--set", "faults.0.at=3s", "--set", "faults.0.restart_after=2s"]


def _cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "sim.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def _summary(d: Path) -> dict:
    s = json.loads((d / "summary.json").read_text())
    s.pop("wall_time_s")
    return s


def test_same_seed_gives_byte_identical_batches_across_processes(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for out, seed in ((a, "4"), (b, "4"), (c, "5")):
        r = _cli("run", "scenarios/quickstart.yaml", "--seed", seed, *QUICK, "--out", str(out))
        assert r.returncode == 0, r.stderr
    # PYTHONHASHSEED differs between the processes; nothing may depend on it
    assert (a / "batches.parquet").read_bytes() == (b / "batches.parquet").read_bytes()
    assert (a / "events.parquet").read_bytes() == (b / "events.parquet").read_bytes()
    assert _summary(a) == _summary(b)
    assert (a / "batches.parquet").read_bytes() != (c / "batches.parquet").read_bytes()
    assert _summary(a) != _summary(c)


@pytest.mark.parametrize("kill_after_s", [0.3, 1.0, 2.0])
def test_a_killed_run_leaves_no_directory_that_looks_complete(tmp_path, kill_after_s):
    out = tmp_path / "run"
    args = [sys.executable, "-m", "sim.cli", "run", "scenarios/quickstart.yaml", "--seed", "2",
            "--set", "duration=40s", "--out", str(out)]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(kill_after_s)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    if out.exists():  # only ever renamed into place complete
        assert all((out / f).exists() for f in RUN_FILES)
        read_results(out)
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "run"]
    assert all(name.startswith(".run.tmp-") for name in leftovers)  # hidden, never mistaken for a run
    # rerunning overwrites cleanly and gives the same results as an uninterrupted run
    r = _cli("run", "scenarios/quickstart.yaml", "--seed", "2", "--set", "duration=40s", "--out", str(out))
    assert r.returncode == 0, r.stderr
    r2 = _cli("run", "scenarios/quickstart.yaml", "--seed", "2", "--set", "duration=40s", "--out", str(tmp_path / "x"))
    assert r2.returncode == 0
    assert _summary(out) == _summary(tmp_path / "x")


WRITER = r"""
import sys, time
import pandas as pd
import sim
res = sim.run("scenarios/quickstart.yaml", seed=1, overrides={"duration": "3s", "settle": "1s", "faults": []})
orig = pd.DataFrame.to_parquet
def slow(self, *a, **k):
    orig(self, *a, **k)
    print("wrote a table", flush=True)
    time.sleep(30)  # the parent kills us here, mid-write
pd.DataFrame.to_parquet = slow
res.write(sys.argv[1])
"""


def test_killed_mid_write_leaves_nothing_that_looks_complete_and_rerun_overwrites(tmp_path):
    out = tmp_path / "run"
    # an earlier, complete result in the same place must survive the interrupted rewrite
    r = _cli("run", "scenarios/quickstart.yaml", "--seed", "9", *QUICK, "--out", str(out))
    assert r.returncode == 0, r.stderr
    before = _summary(out)
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(out)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "wrote a table"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert _summary(out) == before and all((out / f).exists() for f in RUN_FILES)
    partial = [p for p in tmp_path.iterdir() if p.name.startswith(".run.tmp-")]
    assert partial and not (partial[0] / "summary.json").exists()  # the torn write is hidden and incomplete
    r = _cli("run", "scenarios/quickstart.yaml", "--seed", "1", "--set", "duration=3s", "--set", "settle=1s",
             "--set", "faults=[]", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert _summary(out)["seed"] == 1
