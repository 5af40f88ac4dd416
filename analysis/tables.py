"""Tables across runs: one row per run, seed-level means with confidence intervals, samples.

Every function takes a *source*: a `Sweep`, one `Run`, or a list of runs. Replications are the
seeds: a group's mean and its Student t confidence interval are over the runs (seeds) in the
group, never over records, because records within a run are not independent (a crash loses a
whole tail at once).

Rates are per run and then averaged over seeds: ``loss_rate`` = records_lost / records_sent
(everything sent that is gone and the client was never told, acks=0 included) and
``acked_loss_rate`` = acked_lost / records_sent (acknowledged and gone, over the same
denominator so the two are comparable).
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence, Union

import numpy as np
import pandas as pd

from .load import Run, Sweep, acks_order, scenario_facts
from .metrics import failover_table, produce_latencies
from .stats import ecdf_points, mean_ci, weighted_ecdf

__all__ = [
    "Source", "GROUP_COLUMNS", "runs_table", "flatten_summary", "aggregate", "loss_table", "throughput_table",
    "latency_table", "latency_ecdfs", "failover_samples", "default_failover_group", "sort_groups",
]

Source = Union[Sweep, Run, Sequence[Run]]

GROUP_COLUMNS = ["min_insync_replicas", "fault_kind", "acks", "replication_factor"]
"""How sweep results are grouped for the loss map and the durability-cost plots."""


def flatten_summary(summary: dict, prefix: str = "") -> dict:
    """summary.json scalars with nested keys joined by dots (lists such as failovers are left out)."""
    out = {}
    for k, v in summary.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten_summary(v, key + "."))
        elif not isinstance(v, (list, tuple)):
            out[key] = v
    return out


def _runs(source: Source) -> list[tuple[str, Run]]:
    if isinstance(source, Sweep):
        return [(rid, source.run(rid)) for rid in source.ok["run_id"]]
    if isinstance(source, Run):
        return [(source.path.name, source)]
    return [(r.path.name, r) for r in source]


def runs_table(source: Source) -> pd.DataFrame:
    """One row per finished run with the grouping columns, loss rates and summary scalars.

    For a sweep this is its table (``sweep.parquet`` plus derived columns) restricted to runs
    with status "ok"; for runs it is built from their summaries in the same shape.
    """
    if isinstance(source, Sweep):
        return source.ok.reset_index(drop=True)
    rows = []
    for rid, run in _runs(source):
        row = {"run_id": rid, "status": "ok", **flatten_summary(run.summary), **scenario_facts(run.scenario)}
        sent = row.get("records_sent") or 0
        row["loss_rate"] = row.get("records_lost", math.nan) / sent if sent else math.nan
        row["acked_loss_rate"] = row.get("acked_lost", math.nan) / sent if sent else math.nan
        rows.append(row)
    return pd.DataFrame(rows)


def _sort_key(col: str):
    if col == "acks":
        return lambda s: s.map(lambda v: acks_order(str(v)))
    return None


def sort_groups(df: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """Sort rows by grouping columns, acks in durability order (0, 1, all)."""
    out = df
    for col in reversed(list(by)):
        out = out.sort_values(col, key=_sort_key(col), kind="stable")
    return out.reset_index(drop=True)


def aggregate(table: pd.DataFrame, by: Sequence[str], metrics: Iterable[str],
              confidence: float = 0.95, nonnegative: bool = True) -> pd.DataFrame:
    """Per group: ``n`` runs, ``seeds`` (distinct), and ``<metric>_mean/_low/_high/_n`` for each metric.

    ``_low``/``_high`` are the Student t confidence interval of the mean over the group's runs
    (NaN with a single run), with the lower bound clipped at 0 when `nonnegative` (counts,
    rates, latencies and throughput cannot be negative). Metrics missing from the table are
    skipped.
    """
    by = list(by)
    metrics = [m for m in metrics if m in table.columns]
    rows = []
    if table.empty:
        return pd.DataFrame(columns=by + ["n", "seeds"])
    for key, g in table.groupby(by, sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        row = dict(zip(by, key))
        row["n"] = int(len(g))
        row["seeds"] = int(g["seed"].nunique()) if "seed" in g else int(len(g))
        for m in metrics:
            mean, lo, hi, n = mean_ci(pd.to_numeric(g[m], errors="coerce").to_numpy(dtype=float), confidence)
            if nonnegative and lo < 0:
                lo = 0.0
            row.update({f"{m}_mean": mean, f"{m}_low": lo, f"{m}_high": hi, f"{m}_n": n})
        rows.append(row)
    return sort_groups(pd.DataFrame(rows), by)


def loss_table(source: Source, confidence: float = 0.95) -> pd.DataFrame:
    """Loss by min.insync x fault kind x acks x replication factor, mean over seeds with CI.

    Metrics: loss_rate (records_lost / records_sent), acked_loss_rate (acked_lost /
    records_sent), records_lost, acked_lost, records_sent.
    """
    t = runs_table(source)
    return aggregate(t, GROUP_COLUMNS, ["loss_rate", "acked_loss_rate", "records_lost", "acked_lost",
                                        "records_sent"], confidence)


def throughput_table(source: Source, confidence: float = 0.95) -> pd.DataFrame:
    """Acknowledged throughput (``throughput_rps``: records acked per second of producing) and
    the sent rate (``sent_rps``: records sent per second of producing), by the same groups."""
    t = runs_table(source).copy()
    if "produce_duration_ms" in t and "records_sent" in t:
        t["sent_rps"] = pd.to_numeric(t["records_sent"]) / (pd.to_numeric(t["produce_duration_ms"]) / 1000.0)
    return aggregate(t, GROUP_COLUMNS, ["throughput_rps", "sent_rps"], confidence)


LATENCY_KEYS = ("p50", "p99", "p999")


def latency_table(source: Source, by: Sequence[str] = ("acks", "replication_factor"),
                  confidence: float = 0.95) -> pd.DataFrame:
    """Produce latency percentiles per run (from the summaries), averaged over seeds with CI.

    Metrics: ``produce_latency_ms.p50``, ``.p99``, ``.p999``. Runs with no acknowledged record
    (acks=0) have no latency and count as NaN.
    """
    t = runs_table(source)
    return aggregate(t, list(by), [f"produce_latency_ms.{k}" for k in LATENCY_KEYS], confidence)


def latency_ecdfs(source: Source, by: Sequence[str] = ("acks", "replication_factor"),
                  max_points: int = 1500) -> pd.DataFrame:
    """Record-weighted ECDF of produce latency, pooling the acknowledged records of each group's runs.

    One row per group: the group columns, ``runs``, ``records`` (acknowledged), and ``x``
    (latency ms) / ``y`` (fraction of the group's acknowledged records at or below x), thinned to
    at most `max_points` exact ECDF points.
    """
    by = list(by)
    table = runs_table(source)
    runs = dict(_runs(source))
    rows = []
    if table.empty:
        return pd.DataFrame(columns=by + ["runs", "records", "x", "y"])
    for key, g in table.groupby(by, sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        parts = []
        for rid in g["run_id"]:
            b = runs[str(rid)].read_batches(["outcome", "record_count", "first_arrival_ms", "last_arrival_ms",
                                             "acked_ms"])
            parts.append(produce_latencies(b))
        lat = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame({"latency_ms": [], "records": []})
        x, y = weighted_ecdf(lat["latency_ms"].to_numpy(), lat["records"].to_numpy())
        x, y = ecdf_points(x, y, max_points)
        rows.append({**dict(zip(by, key)), "runs": int(len(g)), "records": int(lat["records"].sum()), "x": x, "y": y})
    return sort_groups(pd.DataFrame(rows), by)


def default_failover_group(source: Source) -> str:
    """What to compare failover times by: partition count or scenario if they vary, else a swept
    parameter that varies, else "scenario"."""
    t = runs_table(source)
    for col in ("partitions", "scenario"):
        if col in t and t[col].nunique() > 1:
            return col
    params = source.params if isinstance(source, Sweep) else []
    for p in params:
        if p in t and t[p].nunique() > 1 and not p.endswith(".acks"):
            return p
    return "scenario"


def failover_samples(source: Source, by: str | None = None) -> pd.DataFrame:
    """Every failover of every run, with the run's group value in column ``group``.

    Columns: run_id, seed, group, and those of `failover_table` (election_ms, unavailable_ms, ...).
    """
    by = by or default_failover_group(source)
    table = runs_table(source)
    runs = dict(_runs(source))
    parts = []
    for _, row in table.iterrows():
        fo = failover_table(runs[str(row["run_id"])])
        if fo.empty:
            continue
        fo.insert(0, "group", row[by] if by in row else "all")
        fo.insert(0, "seed", row.get("seed", np.nan))
        fo.insert(0, "run_id", row["run_id"])
        parts.append(fo)
    if not parts:
        return pd.DataFrame(columns=["run_id", "seed", "group", *failover_table_columns()])
    out = pd.concat(parts, ignore_index=True)
    out.attrs["by"] = by
    return out


def failover_table_columns() -> list[str]:
    return ["fault_ms", "broker", "partition", "new_leader", "elected_ms", "first_ack_ms", "election_ms",
            "unavailable_ms"]
