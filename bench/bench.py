"""kafkasim benchmark: how fast the model simulates Kafka-scale load, measured honestly.

For each benchmark scenario (scenarios/bench/*.yaml) it runs the simulation in a fresh process
and prints: simulated records, SimPy events, wall seconds, simulated records and events per wall
second, the real-time factor (simulated seconds per wall second), peak memory, and, measured in
the same process, the event rate of a bare SimPy loop, so the model's efficiency is also given as
a ratio the machine's load cancels out of (`records_per_bare_event`).

    python bench/bench.py                 # all scenarios, full length
    python bench/bench.py --short         # CI smoke run: durations cut to a few seconds
    python bench/bench.py --only steady --batch-doubling --record-doubling --json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = {
    "steady": ROOT / "scenarios" / "bench" / "steady.yaml",
    "many-partitions": ROOT / "scenarios" / "bench" / "many-partitions.yaml",
    "soak": ROOT / "scenarios" / "bench" / "soak.yaml",
}
# --short: the same shapes over a few simulated seconds (a smoke run, not a measurement)
SHORT = {
    "steady": {"duration": "3s", "settle": "2s", "faults.0.at": "1s", "faults.0.restart_after": "1s"},
    "many-partitions": {"duration": "4s", "settle": "2s", "topics.0.partitions": 1000, "faults.0.at": "1s",
                        "faults.0.restart_after": "2s", "cluster.broker.session.timeout.ms": 2000,
                        "cluster.broker.heartbeat.interval.ms": 500},
    "soak": {"duration": "20s", "settle": "5s", "random_faults.0.mean_interval": "5s",
             "random_faults.0.downtime": "3s"},
}


def bare_simpy_rate(n: int = 400_000) -> float:
    """Events per wall second of a bare SimPy process doing `yield env.timeout(1)`."""
    import simpy

    env = simpy.Environment()

    def tick(env):
        for _ in range(n):
            yield env.timeout(1)

    env.process(tick(env))
    t0 = time.perf_counter()
    env.run()
    return n / (time.perf_counter() - t0)


def _measure(name: str, overrides: dict, queue) -> None:
    """Child process: bare loop, then the scenario; reports numbers through `queue`."""
    import sim

    # sim loads its layers on first use: one tiny run first, so the timed run pays no import
    sim.run(sim.load_scenario(ROOT / "scenarios" / "quickstart.yaml",
                              {"duration": "100ms", "settle": "100ms", "faults": []}))
    bare_before = [bare_simpy_rate(200_000) for _ in range(3)]
    scenario = sim.load_scenario(SCENARIOS[name], overrides)
    t0 = time.perf_counter()
    res = sim.run(scenario)
    wall = time.perf_counter() - t0
    bare_after = [bare_simpy_rate(200_000) for _ in range(3)]
    s = res.summary
    bare = statistics.median(bare_before + bare_after)  # three short loops before and three after the run
    records = s["records_sent"]
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    queue.put({
        "scenario": name,
        "simulated_s": s["sim_duration_ms"] / 1000,
        "records": records,
        "batches": s["batches"],
        "sim_events": s["sim_events"],
        "wall_s": round(wall, 3),
        "model_wall_s": s["wall_time_s"],
        "records_per_wall_s": round(records / wall),
        "events_per_wall_s": round(s["sim_events"] / wall),
        "real_time_factor": round(s["sim_duration_ms"] / 1000 / wall, 2),
        "events_per_batch": round(s["sim_events"] / max(s["batches"], 1), 2),
        "produce_requests": s["messages_sent"].get("ProduceRequest", 0),
        "fetch_requests": s["messages_sent"].get("FetchRequest", 0),
        "bare_simpy_events_per_s": round(bare),
        "records_per_bare_event": round(records / wall / bare, 3),
        "peak_mib": round(peak_mib, 1),
        "acked_lost": s["acked_lost"],
        "failover_ms_max": s["failover_ms"]["max"],
    })


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def _memory_profile(name: str, overrides: dict, queue) -> None:
    """Child process: RSS sampled as simulated time passes (does memory track only the facts?)."""
    import sim

    samples = []

    def progress(now: float, end: float) -> None:
        if not samples or now - samples[-1][0] >= end / 12 or now >= end:
            samples.append((now, _rss_mib()))

    res = sim.run(sim.load_scenario(SCENARIOS[name], overrides), progress=progress)
    b = res.batches
    rows = []
    for t, rss in samples:
        n = int((b["first_arrival_ms"] <= t).sum())
        rows.append({"sim_min": round(t / 60000, 1), "batches_so_far": n, "rss_mib": round(rss, 1)})
    base = rows[0]["rss_mib"]
    for r in rows:
        r["kib_per_1000_batches_above_start"] = round((r["rss_mib"] - base) * 1024 / max(r["batches_so_far"], 1) * 1000, 1)
    queue.put({"scenario": name, "samples": rows,
               "peak_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)})


def _in_fresh_process(target, name: str, overrides: dict) -> dict:
    """Run `target` in a new interpreter, so each measurement has its own peak memory."""
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=target, args=(name, overrides, q))
    p.start()
    out = q.get()
    p.join()
    return out


def memory_profile(name: str, overrides: dict) -> dict:
    return _in_fresh_process(_memory_profile, name, overrides)


def measure(name: str, overrides: dict) -> dict:
    return _in_fresh_process(_measure, name, overrides)


def cost_model(a: dict, b: dict) -> dict:
    """Split wall time into a cost per batch and a cost per round trip (produce or fetch request
    with its response), solving wall = per_batch * batches + per_round_trip * round trips over two
    runs. A rough estimate (fixed costs are folded in), but it shows where the time goes."""
    b1, r1 = a["batches"], a["produce_requests"] + a["fetch_requests"]
    b2, r2 = b["batches"], b["produce_requests"] + b["fetch_requests"]
    det = b1 * r2 - b2 * r1
    if det == 0:
        return {}
    per_batch = (a["wall_s"] * r2 - b["wall_s"] * r1) / det
    per_round_trip = (b1 * b["wall_s"] - b2 * a["wall_s"]) / det
    return {"est_us_per_batch": round(per_batch * 1e6, 2), "est_us_per_round_trip": round(per_round_trip * 1e6, 2)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--short", action="store_true", help="smoke run with durations cut to seconds")
    ap.add_argument("--only", choices=sorted(SCENARIOS), action="append", help="run only these scenarios")
    ap.add_argument("--batch-doubling", action="store_true",
                    help="also run `steady` with batch.size doubled and report the wall-time ratio")
    ap.add_argument("--record-doubling", action="store_true",
                    help="also run `steady` with rate and batch.size doubled (same batches, twice the "
                         "records) and report the wall-time ratio: records themselves should cost ~nothing")
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ap.add_argument("--memory", action="store_true",
                    help="sample resident memory against simulated time (for soak: does it track the facts only?)")
    args = ap.parse_args(argv)
    if args.memory:
        for name in args.only or ["soak"]:
            print(json.dumps(memory_profile(name, dict(SHORT[name]) if args.short else {}), indent=2))
        return 0
    names = args.only or list(SCENARIOS)
    rows = []
    for name in names:
        over = dict(SHORT[name]) if args.short else {}
        print(f"running {name} ...", file=sys.stderr, flush=True)
        rows.append(measure(name, over))
    extra = {}
    if args.batch_doubling:
        over = dict(SHORT["steady"]) if args.short else {}
        base = next((r for r in rows if r["scenario"] == "steady"), None) or measure("steady", over)
        print("running steady with batch.size doubled ...", file=sys.stderr, flush=True)
        doubled = measure("steady", {**over, "producers.0.batch.size": "32KiB"})
        extra["batch_doubling"] = {
            "wall_s_16KiB": base["wall_s"], "wall_s_32KiB": doubled["wall_s"],
            "batches_16KiB": base["batches"], "batches_32KiB": doubled["batches"],
            "wall_ratio_32_over_16": round(doubled["wall_s"] / base["wall_s"], 3),
            # what the wall ratio should be compared with: batches halve, but round trips (a
            # follower fetch per produce request per follower, produce requests bounded by
            # max.in.flight) do not, and the SimPy events count both
            "batch_ratio_32_over_16": round(doubled["batches"] / base["batches"], 3),
            "produce_request_ratio_32_over_16": round(doubled["produce_requests"] / max(base["produce_requests"], 1), 3),
            "fetch_request_ratio_32_over_16": round(doubled["fetch_requests"] / max(base["fetch_requests"], 1), 3),
            "event_ratio_32_over_16": round(doubled["sim_events"] / base["sim_events"], 3),
            **cost_model(base, doubled),
        }
    if args.record_doubling:
        over = dict(SHORT["steady"]) if args.short else {}
        base = next((r for r in rows if r["scenario"] == "steady"), None) or measure("steady", over)
        print("running steady with rate and batch.size doubled ...", file=sys.stderr, flush=True)
        doubled = measure("steady", {**over, "producers.0.rate": "2000000/s", "producers.0.batch.size": "32KiB"})
        extra["record_doubling"] = {
            "wall_s_1M_16KiB": base["wall_s"], "wall_s_2M_32KiB": doubled["wall_s"],
            "record_ratio": round(doubled["records"] / base["records"], 3),
            "batch_ratio": round(doubled["batches"] / base["batches"], 3),
            "wall_ratio": round(doubled["wall_s"] / base["wall_s"], 3),
        }
    if args.json:
        print(json.dumps({"short": args.short, "runs": rows, **extra}, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    # one column per scenario, one row per metric: readable in an 80-column terminal
    t = Table(title="kafkasim benchmark" + (" (--short smoke run)" if args.short else ""))
    t.add_column("metric")
    for r in rows:
        t.add_column(r["scenario"], justify="right")
    for c in [k for k in rows[0] if k != "scenario"]:
        t.add_row(c, *(f"{r[c]:,}" if isinstance(r[c], int) else str(r[c]) for r in rows))
    Console().print(t)
    if extra:
        print(json.dumps(extra, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
