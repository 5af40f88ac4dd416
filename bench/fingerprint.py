"""Fingerprint the model's output, to prove a refactoring changed no behaviour.

Runs every bundled scenario (and fault-heavy variants of them) plus the smoke sweep, and prints one
hash per table: batches, events, timeseries, summary (wall-clock and version fields left out). Save
the output before a change and diff it after::

    python bench/fingerprint.py > /tmp/fp-before.txt
    ... change ...
    python bench/fingerprint.py > /tmp/fp-after.txt && diff /tmp/fp-before.txt /tmp/fp-after.txt

`--rename old=new` maps event kinds renamed on purpose, so the events hash stays comparable;
`--events-columns legacy` (or a comma list) hashes only those columns of the events table, so a
change that only adds columns can be compared with a fingerprint taken before it::

    python bench/fingerprint.py --rename fault_start=crash --rename fault_end=restart --events-columns legacy
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
VOLATILE = {"wall_seconds", "wall_s", "kafkasim_version", "version", "events_per_wall_second",
            "records_per_wall_second", "simulated_records_per_wall_second", "peak_memory_mib"}

# (label, scenario file, seed, overrides): each bundled scenario, and variants that drive the fault paths
CASES = [
    ("quickstart", "scenarios/quickstart.yaml", 1, {"duration": "30s"}),
    ("leader-crash-acks1", "scenarios/leader-crash-acks1.yaml", 3, {}),
    ("leader-crash-acks1-s0", "scenarios/leader-crash-acks1.yaml", 0, {}),
    ("leader-crash-acksall", "scenarios/leader-crash-acks1.yaml", 1, {"producers.0.acks": "all"}),
    ("leader-crash-unclean", "scenarios/leader-crash-acks1.yaml", 1,
     {"topics.0.unclean.leader.election.enable": True, "topics.0.min.insync.replicas": 1,
      "faults.0.restart_after": "1500ms", "producers.0.acks": 1}),
    ("leader-crash-noidem", "scenarios/leader-crash-acks1.yaml", 2,
     {"producers.0.enable.idempotence": False, "producers.0.acks": "all", "faults.0.restart_after": "300ms"}),
    ("steady", "scenarios/bench/steady.yaml", 1, {"duration": "25s"}),
    ("many-partitions", "scenarios/bench/many-partitions.yaml", 1, {"topics.0.partitions": 2000}),
    ("soak", "scenarios/bench/soak.yaml", 1, {"duration": "8m", "producers.0.rate": "5000/s"}),
    ("lossy-network", "scenarios/leader-crash-acks1.yaml", 1,
     {"producers.0.acks": "all", "producers.0.instances": 2, "duration": "40s", "consumers": [{"group.id": "g", "topic": "events"}]}),
]
# cases run with a lossy network (Network.set_loss_all), which drives every timeout-and-retry path
LOSSY = {"lossy-network": 0.02}


# the events columns before the structured fields of sim/model/events.py were added
LEGACY_EVENT_COLUMNS = ["time_ms", "kind", "broker", "partition", "value", "detail", "partition_index"]


def frame_hash(df: pd.DataFrame, rename: dict[str, str] | None = None, columns: list[str] | None = None) -> str:
    df = df[columns].copy() if columns else df.copy()
    if rename and "kind" in df.columns:
        df["kind"] = df["kind"].astype(str).replace(rename)
    for c in df.columns:
        if isinstance(df[c].dtype, pd.CategoricalDtype):
            df[c] = df[c].astype(str)
        elif df[c].dtype == object and any(isinstance(v, (tuple, list)) for v in df[c]):
            df[c] = df[c].map(lambda v: ",".join(map(str, v)))  # an ISR tuple
    h = hashlib.sha256(",".join(map(str, df.columns)).encode())
    h.update(pd.util.hash_pandas_object(df, index=False).values.tobytes())
    return h.hexdigest()[:16]


def summary_hash(summary: dict) -> str:
    clean = {k: v for k, v in summary.items() if k not in VOLATILE and "wall" not in k}
    return hashlib.sha256(json.dumps(clean, sort_keys=True, default=str).encode()).hexdigest()[:16]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rename", action="append", default=[], help="old=new event kind renamed on purpose")
    ap.add_argument("--events-columns", help="hash only these events columns: 'legacy' or a comma list")
    ap.add_argument("--only", help="run only cases whose label contains this")
    ap.add_argument("--no-sweep", action="store_true")
    args = ap.parse_args()
    rename = dict(r.split("=", 1) for r in args.rename)
    ev_cols = (LEGACY_EVENT_COLUMNS if args.events_columns == "legacy"
               else args.events_columns.split(",") if args.events_columns else None)
    import sim
    for label, path, seed, overrides in CASES:
        if args.only and args.only not in label:
            continue
        prepare = (lambda c, p=LOSSY[label]: c.network.set_loss_all(p)) if label in LOSSY else None
        res = sim.run(sim.load_scenario(ROOT / path, overrides=overrides), seed=seed, prepare=prepare)
        print(f"{label:24s} batches={frame_hash(res.batches)} events={frame_hash(res.events, rename, ev_cols)} "
              f"timeseries={frame_hash(res.timeseries)} summary={summary_hash(res.summary)} "
              f"acked_lost={res.summary.get('acked_lost')}", flush=True)
    if not args.no_sweep and not args.only:
        with tempfile.TemporaryDirectory() as tmp:
            frame = sim.sweep(ROOT / "scenarios/sweeps/smoke.yaml", out=Path(tmp) / "sweep", workers=2)
            keep = [c for c in frame.columns if "wall" not in c and "version" not in c and "events_per" not in c
                    and "per_wall" not in c and "memory" not in c and c not in ("run_dir", "path")]
            print(f"{'sweep smoke':24s} table={frame_hash(frame[keep].sort_index(axis=1))} rows={len(frame)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
