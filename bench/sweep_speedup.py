"""Benchmark: speed-up of the process pool over serial execution for a 40-run sweep.

Runs the same sweep (leader-crash-acks1 with one 20k rec/s producer, acks 1/all x 20 seeds, 60 s
of producing plus 10 s to settle) once with ``workers=1`` (in this process) and once on the pool (one worker per core by
default), each into a fresh temporary directory, checks that both give the same sweep table,
and prints wall and CPU times and the speed-up. Not a test: timings depend on the machine, and
other busy processes (see the load averages printed) take cores from the pool.

    .venv/bin/python bench/sweep_speedup.py [--workers N] [--duration 60s] [--seeds 20] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import pandas as pd

from sim.runs.sweep import available_cores, load_sweep, run_sweep

ROOT = Path(__file__).resolve().parents[1]


def bench_sweep(duration: str, seeds: int) -> dict:
    """The benchmark sweep: 2 acks settings x `seeds` seeds (40 runs by default)."""
    return {
        "name": "bench-speedup",
        "scenario": str(ROOT / "scenarios" / "leader-crash-acks1.yaml"),
        # pinned load (one 20k rec/s producer) so that edits to the bundled scenario do not move the figure
        "set": {"producers.0.instances": 1, "duration": duration, "settle": "10s", "faults.0.at": "10s",
                "faults.0.restart_after": "5s"},
        "grid": {"producers.0.acks": [1, "all"]},
        "seeds": seeds,
    }


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (the pool's workers) so far."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def timed(sweep, workers: int) -> tuple[float, float, pd.DataFrame]:
    """Wall and CPU seconds of one complete sweep (runs and writing) into a fresh directory, and its table."""
    with tempfile.TemporaryDirectory(prefix="kafkasim-bench-") as out:
        c0, t0 = cpu_seconds(), time.perf_counter()
        report = run_sweep(sweep, workers=workers, out=out)
        return time.perf_counter() - t0, cpu_seconds() - c0, report.frame


def load() -> str:
    """The 1-minute load average: other processes competing for the cores skew the speed-up."""
    return f"{os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else "n/a"


def main() -> None:
    """Time serial, then the pool; print both and the speed-up."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=available_cores(), help="pool size (default: cores)")
    ap.add_argument("--duration", default="60s", help="producing time per run (default 60s)")
    ap.add_argument("--seeds", type=int, default=20, help="seeds per acks setting (default 20: 40 runs)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="alternate serial and pool this many times and keep the best of each (like timeit)")
    args = ap.parse_args()
    sweep = load_sweep(bench_sweep(args.duration, args.seeds))
    print(f"{len(sweep.runs)} runs, duration {args.duration} + settle 10s each; {available_cores()} cores")
    best: dict[str, float] = {}
    for _ in range(args.repeat):
        for label, workers in (("serial (workers=1)", 1), (f"pool (workers={args.workers})", args.workers)):
            before = load()
            wall, cpu, frame = timed(sweep, workers=workers)
            print(f"{label:20s} {wall:7.2f} s wall, {cpu:7.2f} s CPU   (load average {before} before, {load()} after)")
            best[label] = min(best.get(label, wall), wall)
            if workers == 1:
                serial = frame
            else:
                pd.testing.assert_frame_equal(serial.drop(columns="wall_time_s"), frame.drop(columns="wall_time_s"))
    serial_s, pool_s = best.values()
    print(f"best: serial {serial_s:.2f} s, pool {pool_s:.2f} s; speed-up {serial_s / pool_s:.2f}x")
    print("tables identical (wall_time_s aside)")


if __name__ == "__main__":  # the pool spawns workers that import this file: keep the guard
    main()
