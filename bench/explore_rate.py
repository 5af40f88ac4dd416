"""How many fault schedules per minute `kafkasim explore` runs, forked and from scratch.

The target (issue 15): at least 100 schedules per minute on 2 cores for a quickstart-sized
scenario (3 brokers, 6 partitions, 20k rec/s, 60 s). Prints one line per mode, and the time to
the first counterexample and to the shrunk one for the unsafe configurations::

    python bench/explore_rate.py [--budget 100] [--workers 2] [--no-scratch] [--no-unsafe]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sim  # noqa: E402

QUICKSTART = ROOT / "scenarios" / "quickstart.yaml"
UNSAFE = {
    "acks=1": {"producers.0.acks": 1, "producers.0.enable.idempotence": False},
    "RF 2, min.insync=1 + unclean election": {"topics.0.replication.factor": 2, "topics.0.min.insync.replicas": 1,
                                              "topics.0.unclean.leader.election.enable": True},
    "acks=all, default flush, power loss": {},
}
UNSAFE_FAULTS = {"acks=1": "crash,partition,pause", "RF 2, min.insync=1 + unclean election": "crash,partition",
                 "acks=all, default flush, power loss": "power"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=int, default=100)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--no-scratch", action="store_true", help="skip the from-scratch comparison")
    ap.add_argument("--no-unsafe", action="store_true", help="skip the unsafe configurations")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rows = []
    modes = [("forked", True)] + ([] if args.no_scratch else [("from scratch", False)])
    for label, fork in modes:
        t = time.perf_counter()
        rep = sim.explore(QUICKSTART, budget=args.budget, workers=args.workers, fork=fork, shrink_budget=0)
        rows.append({"what": f"quickstart search, {label}", "schedules": rep.tried, "violated": rep.violated,
                     "unsettled": rep.unsettled, "search_s": round(rep.search_s, 1),
                     "schedules_per_min": round(rep.rate_per_min, 1), "wall_s": round(time.perf_counter() - t, 1)})
        print(json.dumps(rows[-1]) if args.json else
              f"{rows[-1]['what']}: {rep.tried} schedules in {rep.search_s:.1f} s = {rep.rate_per_min:.1f}/min "
              f"on {args.workers} workers ({rep.violated} violated, {rep.unsettled} unsettled)", flush=True)
    if not args.no_unsafe:
        for label, overrides in UNSAFE.items():
            t = time.perf_counter()
            rep = sim.explore(QUICKSTART, overrides=overrides, budget=args.budget, workers=args.workers,
                              faults=UNSAFE_FAULTS[label])
            total = time.perf_counter() - t
            cx = rep.counterexample
            rows.append({"what": label, "schedules": rep.tried, "violated": rep.violated,
                         "first_counterexample_s": rep.first_violation_s, "search_s": round(rep.search_s, 1),
                         "shrunk_s": round(rep.search_s + rep.shrink_s, 1), "total_s": round(total, 1),
                         "faults_after_shrink": None if cx is None else len(cx.faults), "shrink_runs": rep.shrink_runs})
            print(json.dumps(rows[-1]) if args.json else
                  f"{label}: {rep.violated}/{rep.tried} violated; first counterexample after "
                  f"{rep.first_violation_s if rep.first_violation_s is None else round(rep.first_violation_s, 1)} s, "
                  f"shrunk one after {rows[-1]['shrunk_s']} s ({rows[-1]['faults_after_shrink']} faults, "
                  f"{rep.shrink_runs} shrink runs)", flush=True)


if __name__ == "__main__":
    main()
