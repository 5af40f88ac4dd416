"""sweep.parquet: one row per run, collected from the run directories; and its mean and 95% CI per combination."""

from __future__ import annotations


import json
import math
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from sim.runs.contract import aggregate as aggregate_groups
from sim.runs.contract import flatten_summary, read_summary
from sim.runs.sweep.spec import Sweep, SweepLike, _as_text, load_sweep


RUN_COLUMNS = ("run_id", "seed", "status", "error", "scenario", "fault_kinds")
"""The leading columns of sweep.parquet; the swept parameters and the summary scalars follow."""

AGGREGATE_METRICS = {
    "records_lost": "records_lost",
    "acked_lost": "acked_lost",
    "throughput_rps": "acknowledged (rec/s)",
    "produce_latency_ms.p99": "p99 latency (ms)",
    "failover_ms.max": "failover (ms)",
}
"""sweep.parquet columns averaged per parameter combination (the `kafkasim sweep` table), with their headings.
Failover is the per-run maximum over partitions of fault -> new leader elected."""


# --- the sweep table -----------------------------------------------------------------------------
def collect(sw: Sweep, out_dir: str | Path) -> pd.DataFrame:
    """The sweep table, read back from runs/ and failures/: one row per run, sorted by run id."""
    out_dir = Path(out_dir)
    runs = sorted(sw.runs, key=lambda r: r.run_id)
    status, errors, flat = [], [], []
    for run in runs:
        summary_path = out_dir / "runs" / run.run_id / "summary.json"
        failure_path = out_dir / "failures" / f"{run.run_id}.json"
        if summary_path.is_file():
            status.append("ok")
            errors.append(None)
            flat.append(flatten_summary(read_summary(summary_path)))
        elif failure_path.is_file():
            status.append("failed")
            errors.append(json.loads(failure_path.read_text())["error"])
            flat.append({})
        else:  # only in a partial table (an interrupted or running sweep)
            status.append("missing")
            errors.append("no result yet: the sweep was interrupted or is still running")
            flat.append({})
    columns: dict[str, pd.Series] = {
        "run_id": pd.Series([r.run_id for r in runs], dtype="str"),
        "seed": pd.Series([r.seed for r in runs], dtype="int64"),
        "status": pd.Series(status, dtype="str"),
        "error": pd.Series(errors, dtype="str"),
        "scenario": pd.Series([r.scenario.name for r in runs], dtype="str"),
        "fault_kinds": pd.Series([",".join(sorted({f.kind for f in r.scenario.faults})) or "none" for r in runs],
                                 dtype="str"),
    }
    for key in sw.params:
        columns[key] = _column([r.params[key] for r in runs], nullable_ints=False)
    keys = list(dict.fromkeys(k for row in flat for k in row if k not in ("scenario", "seed")))
    for key in keys:
        columns[key] = _column([row.get(key) for row in flat], nullable_ints=True)
    return pd.DataFrame(columns)


def _column(values: list, nullable_ints: bool) -> pd.Series:
    """One column: bool, int or float when every value is, else text (mixed acks 0/1/all -> strings)."""
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return pd.Series(values, dtype="boolean")
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return pd.Series(values, dtype="Int64" if nullable_ints or len(present) < len(values) else "int64")
    if present and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        return pd.Series([math.nan if v is None else float(v) for v in values], dtype="float64")
    return pd.Series([None if v is None else _as_text(v) for v in values], dtype="str")


def aggregate(frame: pd.DataFrame, sweep_or_path: SweepLike, *, nonnegative: bool = False,
              metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """Per parameter combination, in sweep order: `sim.runs.contract.aggregate` of :data:`AGGREGATE_METRICS`.

    Columns: the swept keys, ``n`` (runs), ``seeds``, ``ok`` (runs that succeeded), and
    ``<metric>_mean``, ``_low``, ``_high``, ``_n`` (runs that succeeded and reported it),
    ``_clipped``: the Student t interval over seeds,
    as in the plots; with fewer than two such seeds it is NaN. The `kafkasim sweep` table shows
    mean ± (high - mean): unbounded by default (`nonnegative=False`) so it is symmetric.
    `metrics` (default: AGGREGATE_METRICS) are columns of `frame`; the CLI adds ``committed_rps``.
    """
    metrics = list(AGGREGATE_METRICS) if metrics is None else list(metrics)
    sw = load_sweep(sweep_or_path)
    combination = frame["run_id"].map({r.run_id: r.combination for r in sw.runs})
    ordered = frame.iloc[combination.to_numpy().argsort(kind="stable")]
    out = aggregate_groups(ordered, list(sw.params), metrics, nonnegative=nonnegative,
                           sort=False)
    ok = frame["status"].eq("ok").groupby(combination, sort=True).sum()  # rows are in combination order
    out.insert(out.columns.get_loc("seeds") + 1, "ok", ok.to_numpy().astype(int))
    for m in metrics:  # every metric has its columns, NaN where no run reported it (all failed)
        if f"{m}_mean" not in out.columns:
            out = out.assign(**{f"{m}_mean": np.nan, f"{m}_low": np.nan, f"{m}_high": np.nan, f"{m}_n": 0,
                                f"{m}_clipped": False})
    return out

