"""CI smoke run of the benchmark's short variant: it must run and report sane numbers (no timing target)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_short_runs_and_reports_every_metric():
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "bench.py"), "--short", "--json"],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout)
    assert report["short"] is True
    runs = {r["scenario"]: r for r in report["runs"]}
    assert set(runs) == {"steady", "many-partitions", "soak"}
    for r in runs.values():
        assert r["records"] > 0 and r["sim_events"] > 0 and r["wall_s"] > 0
        assert abs(r["records_per_wall_s"] - r["records"] / r["wall_s"]) <= 0.01 * r["records_per_wall_s"]
        assert r["bare_simpy_events_per_s"] > 10_000
        assert r["records_per_bare_event"] > 0 and r["peak_mib"] > 0
        assert r["acked_lost"] == 0  # acks=all, min.insync 2, one broker down at a time
        assert r["produce_requests"] > 0 and r["fetch_requests"] > 0
    # the batch is the unit of work: a few SimPy events per batch at steady load, not per record
    assert runs["steady"]["events_per_batch"] < 10
    assert runs["steady"]["records"] / runs["steady"]["sim_events"] > 20


def test_bench_doubling_modes_report_their_ratios():
    """--batch-doubling halves batches at the same records; --record-doubling doubles records at the same batches."""
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "bench.py"), "--short", "--only", "steady",
                          "--batch-doubling", "--record-doubling", "--json"],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout)
    bd, rd = report["batch_doubling"], report["record_doubling"]
    assert 0.45 <= bd["batch_ratio_32_over_16"] <= 0.55
    assert bd["produce_request_ratio_32_over_16"] > 0 and bd["fetch_request_ratio_32_over_16"] > 0
    assert bd["wall_ratio_32_over_16"] > 0 and bd["event_ratio_32_over_16"] < 1
    assert 1.9 <= rd["record_ratio"] <= 2.1 and 0.9 <= rd["batch_ratio"] <= 1.1 and rd["wall_ratio"] > 0
    assert "est_us_per_batch" in bd and "est_us_per_round_trip" in bd


def test_cost_model_splits_wall_time_into_batches_and_round_trips():
    spec = importlib.util.spec_from_file_location("kafkasim_bench", ROOT / "bench" / "bench.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    cost_model = bench.cost_model

    # 20 us per batch and 10 us per round trip, recovered from two runs
    a = {"batches": 400_000, "produce_requests": 200_000, "fetch_requests": 190_000}
    b = {"batches": 200_000, "produce_requests": 150_000, "fetch_requests": 185_000}
    for r in (a, b):
        r["wall_s"] = 20e-6 * r["batches"] + 10e-6 * (r["produce_requests"] + r["fetch_requests"])
    assert cost_model(a, b) == {"est_us_per_batch": 20.0, "est_us_per_round_trip": 10.0}
    assert cost_model(a, a) == {}  # one run cannot be split
