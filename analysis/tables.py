"""Tables across runs: one row per run, seed-level means with confidence intervals, samples.

Every function takes a *source*: a `SweepResults`, one `Run`, or a list of runs. Replications are the
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
import re
from typing import Sequence, Union

import numpy as np
import pandas as pd

from analysis.load import Run, SweepResults, acks_order, scenario_facts
from analysis.metrics import failover_table
from sim.measure.stats import ecdf_points, weighted_ecdf
from sim.measure.batches import committed_records, mid_arrival, produce_latencies
from sim.runs.contract import aggregate, flatten_summary, sort_groups

__all__ = [
    "Source", "GROUP_COLUMNS", "group_columns", "sort_value", "value_text", "runs_table", "flatten_summary",
    "aggregate", "loss_table", "throughput_table",
    "latency_table", "latency_ecdfs", "failover_samples", "default_failover_group", "sort_groups",
    "config_columns", "varying_columns", "param_name", "param_label", "config_label", "delivery_counts",
    "latency_by", "offered_per_second", "lost_records", "lost_per_second", "with_delivery", "perf_table",
]

Source = Union[SweepResults, Run, Sequence[Run]]

GROUP_COLUMNS = ["min_insync_replicas", "fault_kind", "acks", "replication_factor"]
"""The durability settings every sweep table is grouped by (more columns join them when other
parameters were swept, see `config_columns`)."""

CONFIG_ORDER = ["acks", "replication_factor", "min_insync_replicas", "fault_kind"]
"""The order configurations are listed and labelled in: acks first, then RF, min.insync, fault."""


# --- readable names ----------------------------------------------------------------------------------
_SHORT = {"acks": "acks", "replication_factor": "RF", "min_insync_replicas": "min.insync", "fault_kind": "fault",
          "partitions": "partitions", "scenario": "scenario", "seed": "seed"}
_SHORT_KAFKA = {"acks": "acks", "replication.factor": "RF", "min.insync.replicas": "min.insync"}
_SECTIONS = {"producers": "producer", "topics": "topic", "consumers": "consumer", "faults": "fault",
             "random_faults": "random fault"}


def param_name(col: str) -> str:
    """A readable name for a grouping column or a swept dotted key.

    ``replication_factor`` and ``topics.0.replication.factor`` are "RF", ``min_insync_replicas``
    and ``topics.0.min.insync.replicas`` "min.insync", ``producers.0.acks`` "acks",
    ``producers.0.linger.ms`` "linger.ms", ``cluster.broker.session.timeout.ms``
    "broker.session.timeout.ms"; a list entry other than the first keeps its index
    ("producer 1 acks").
    """
    col = str(col)
    if col in _SHORT:
        return _SHORT[col]
    m = re.match(r"^(producers|topics|consumers|faults|random_faults)\.(\d+)\.(.+)$", col)
    if m:
        section, idx, rest = m.groups()
        name = _SHORT_KAFKA.get(rest, rest)
        return name if idx == "0" else f"{_SECTIONS[section]} {idx} {name}"
    if col.startswith(("cluster.", "network.")):
        return col.split(".", 1)[1]
    return col


def value_text(v) -> str:
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v)).lower()
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    if isinstance(v, (np.integer,)):
        return str(int(v))
    return str(v)


def param_label(col: str, value) -> str:
    """"acks=all", "RF 3", "min.insync 2", "fault: crash", "6 partitions", "linger.ms=5"."""
    name = param_name(col)
    v = value_text(value)
    if name in ("RF", "min.insync") or name.endswith((" RF", " min.insync")):
        return f"{name} {v}"
    if col == "fault_kind":
        return f"fault: {v}"
    if col == "partitions":
        return f"{v} partitions"
    if col == "scenario":
        return v
    return f"{name}={v}"


def sort_value(col: str, v) -> tuple:
    """A sort key for a configuration value: acks in durability order, numbers as numbers."""
    if param_name(col) == "acks" or col == "acks":
        return acks_order(str(v))
    try:
        return (0, float(v), "")
    except (TypeError, ValueError):
        return (1, 0.0, str(v))


def config_label(row, columns: Sequence[str], sep: str = ", ") -> str:
    """The readable label of one configuration: `param_label` of each column, joined."""
    return sep.join(param_label(c, row[c]) for c in columns)


def _runs(source: Source) -> list[tuple[str, Run]]:
    if isinstance(source, SweepResults):
        return [(rid, source.run(rid)) for rid in source.ok["run_id"]]
    if isinstance(source, Run):
        return [(source.path.name, source)]
    return [(r.path.name, r) for r in source]


def runs_table(source: Source) -> pd.DataFrame:
    """One row per finished run with the grouping columns, loss rates and summary scalars.

    For a sweep this is its table (``sweep.parquet`` plus derived columns) restricted to runs
    with status "ok"; for runs it is built from their summaries in the same shape.
    """
    if isinstance(source, SweepResults):
        return source.ok.reset_index(drop=True)
    rows = []
    for rid, run in _runs(source):
        row = {"run_id": rid, "status": "ok", **flatten_summary(run.summary), **scenario_facts(run.scenario)}
        sent = row.get("records_sent") or 0
        row["loss_rate"] = row.get("records_lost", math.nan) / sent if sent else math.nan
        row["acked_loss_rate"] = row.get("acked_lost", math.nan) / sent if sent else math.nan
        rows.append(row)
    return pd.DataFrame(rows)


# aggregate (mean and bounded CI per group, <metric>_mean/_low/_high/_n/_clipped) and sort_groups are
# the results contract's: the `kafkasim sweep` table uses the same aggregate.


def varying_columns(table: pd.DataFrame, columns: Sequence[str]) -> list[str]:
    """The columns of `columns` that take more than one value in `table` (NaN counts as a value)."""
    return [c for c in columns if c in table and table[c].astype(str).nunique(dropna=False) > 1]


def _determined_by(table: pd.DataFrame, col: str, others: Sequence[str]) -> bool:
    """Whether `col` is a one-to-one relabelling of one of `others` in `table`."""
    a = table[col].astype(str)
    for o in others:
        if o not in table:
            continue
        b = table[o].astype(str)
        pairs = pd.DataFrame({"a": a, "b": b}).drop_duplicates()
        if pairs["a"].is_unique and pairs["b"].is_unique:
            return True
    return False


def config_columns(source: Source, table: pd.DataFrame | None = None) -> list[str]:
    """Every column that tells one configuration of a sweep from another, in label order.

    The durability settings (acks, replication factor, min.insync.replicas, fault kind), then
    every other swept parameter (a swept key that only relabels one of them, such as
    ``producers.0.acks`` for ``acks``, counts once), then ``partitions`` and ``scenario`` when
    they vary. Constant columns are included: use `varying_columns` to keep those that vary.
    Seeds are replications, never a configuration.
    """
    t = runs_table(source) if table is None else table
    cols = [c for c in CONFIG_ORDER if c in t]
    params = source.params if isinstance(source, SweepResults) else []
    for p in params:
        if p in t and p not in cols and p != "seed" and not _determined_by(t, p, cols):
            cols.append(p)
    for c in ("partitions", "scenario"):
        if c in t and c not in cols and t[c].astype(str).nunique() > 1 and not _determined_by(t, c, cols):
            cols.append(c)
    return cols


def group_columns(source: Source, table: pd.DataFrame) -> list[str]:
    """GROUP_COLUMNS plus every other configuration column that varies (so nothing is pooled)."""
    extra = [c for c in varying_columns(table, config_columns(source, table)) if c not in GROUP_COLUMNS]
    return [c for c in GROUP_COLUMNS if c in table] + extra


def loss_table(source: Source, confidence: float = 0.95) -> pd.DataFrame:
    """Loss by configuration (min.insync x fault kind x acks x RF x any other swept parameter),
    mean over seeds with bounded confidence intervals.

    Metrics: loss_rate (records_lost / records_sent), acked_loss_rate (acked_lost /
    records_sent), records_lost, acked_lost, records_sent; and the sums over the group's runs
    ``records_sent_total``, ``records_lost_total``, ``acked_lost_total`` (for "0 of N").
    """
    t = runs_table(source)
    by = group_columns(source, t)
    out = aggregate(t, by, ["loss_rate", "acked_loss_rate", "records_lost", "acked_lost", "records_sent"],
                    confidence)
    if out.empty:
        return out
    totals = t.groupby(by, sort=False, dropna=False)[["records_sent", "records_lost", "acked_lost"]].sum(min_count=1)
    totals.columns = [f"{c}_total" for c in totals.columns]
    out = out.merge(totals.reset_index(), on=by, how="left")
    out.attrs["by"] = by
    return out


def delivery_counts(run: Run) -> dict:
    """Records a run's producers produced (offered: every record that arrived at a producer) and
    records committed (present in the final log, each counted once), from its batches.

    acks=0 is told nothing, yet what it wrote is committed: this counts it.
    """
    cache = run.__dict__.setdefault("_delivery_counts", {})
    if not cache:
        b = run.read_batches(["record_count", "copies_in_log"])
        count = b["record_count"].to_numpy(dtype=np.int64)
        produced = run.summary.records_produced
        cache["records_produced"] = int(produced) if produced is not None else int(count.sum())
        cache["records_committed"] = committed_records(b)
    return dict(cache)


def with_delivery(source: Source, table: pd.DataFrame) -> pd.DataFrame:
    """`table` (a `runs_table`) with per-run ``records_produced``, ``records_committed`` and the
    rates ``offered_rps``, ``committed_rps``, ``sent_rps`` per second of producing."""
    t = table.copy()
    if t.empty:
        return t
    runs = dict(_runs(source))
    secs = pd.to_numeric(t["produce_duration_ms"], errors="coerce") / 1000.0
    counts = pd.DataFrame([delivery_counts(runs[str(r)]) for r in t["run_id"]], index=t.index)
    t["records_produced"] = counts["records_produced"]
    t["records_committed"] = counts["records_committed"]
    t["offered_rps"] = counts["records_produced"] / secs
    t["committed_rps"] = counts["records_committed"] / secs
    if "records_sent" in t:
        t["sent_rps"] = pd.to_numeric(t["records_sent"]) / secs
    return t


def throughput_table(source: Source, confidence: float = 0.95) -> pd.DataFrame:
    """Throughput per second of producing, by configuration, mean over seeds with bounded CIs.

    Per run: ``offered_rps`` (records produced: arrivals at the producers), ``sent_rps``
    (records put on the wire), ``throughput_rps`` (records acknowledged: 0 under acks=0) and
    ``committed_rps`` (records in the final committed log, whatever the client was told), plus
    ``produce_latency_ms.p50`` / ``.p99`` (the latency cost).
    """
    t = with_delivery(source, runs_table(source))
    if t.empty:
        return aggregate(t, GROUP_COLUMNS, [], confidence)
    by = group_columns(source, t)
    out = aggregate(t, by, ["offered_rps", "sent_rps", "throughput_rps", "committed_rps",
                            "produce_latency_ms.p50", "produce_latency_ms.p99"], confidence)
    out.attrs["by"] = by
    return out


LATENCY_KEYS = ("p50", "p99", "p999")


def latency_by(source: Source, table: pd.DataFrame | None = None) -> list[str]:
    """What latency is grouped by: acks, RF, min.insync, fault kind, and every other configuration
    column that varies (any swept parameter), so nothing swept is pooled."""
    t = runs_table(source) if table is None else table
    return group_columns(source, t)


def latency_table(source: Source, by: Sequence[str] | None = None, confidence: float = 0.95) -> pd.DataFrame:
    """Produce latency percentiles per run (from the summaries), averaged over seeds with CI.

    Grouped by `by` (default `latency_by`: acks, RF and every other configuration column that
    varies). Metrics: ``produce_latency_ms.p50``, ``.p99``, ``.p999``. Runs with no acknowledged
    record (acks=0) have no latency and count as NaN.
    """
    t = runs_table(source)
    by = latency_by(source, t) if by is None else list(by)
    out = aggregate(t, by, [f"produce_latency_ms.{k}" for k in LATENCY_KEYS], confidence)
    out.attrs["by"] = by
    return out


def latency_ecdfs(source: Source, by: Sequence[str] | None = None, max_points: int = 1500) -> pd.DataFrame:
    """Record-weighted ECDF of produce latency, pooling the acknowledged records of each group's seeds.

    Grouped by `by` (default `latency_by`: every configuration column that varies, so only
    seeds, the replications, are pooled). One row per group: the group columns, ``runs``,
    ``records`` (acknowledged), and ``x`` (latency ms) / ``y`` (fraction of the group's
    acknowledged records at or below x), thinned to at most `max_points` exact ECDF points.
    """
    table = runs_table(source)
    by = latency_by(source, table) if by is None else list(by)
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
    out = sort_groups(pd.DataFrame(rows), by)
    out.attrs["by"] = by
    return out


def default_failover_group(source: Source) -> list[str]:
    """What to compare failover times by: every configuration column that varies, except acks
    (the acks mode changes what producers see, not how fast the controller elects), else
    "scenario"."""
    t = runs_table(source)
    by = [c for c in varying_columns(t, config_columns(source, t)) if c != "acks"]
    return by or ["scenario"]


def failover_samples(source: Source, by: str | Sequence[str] | None = None) -> pd.DataFrame:
    """Every failover of every run, with the run's readable group label in column ``group``.

    `by` is a column or a list of them (default `default_failover_group`); ``group`` is e.g.
    "RF 3, min.insync 2" (`config_label`). Columns: run_id, seed, group, and those of
    `failover_table` (election_ms, unavailable_ms, ...). ``attrs``: ``by`` (the columns) and
    ``pooled`` (configuration columns that vary but are not in `by`).
    """
    table = runs_table(source)
    by = default_failover_group(source) if by is None else [by] if isinstance(by, str) else list(by)
    runs = dict(_runs(source))
    parts = []
    for _, row in table.iterrows():
        fo = failover_table(runs[str(row["run_id"])])
        if fo.empty:
            continue
        have = [c for c in by if c in row]
        fo.insert(0, "group_key", [tuple(sort_value(c, row[c]) for c in have)] * len(fo))
        fo.insert(0, "group", config_label(row, have) if have else "all runs")
        fo.insert(0, "seed", row.get("seed", np.nan))
        fo.insert(0, "run_id", row["run_id"])
        parts.append(fo)
    if not parts:
        return pd.DataFrame(columns=["run_id", "seed", "group", *failover_table_columns()])
    out = pd.concat(parts, ignore_index=True)
    keys = sorted(set(out["group_key"]))
    out["group_rank"] = out["group_key"].map({k: i for i, k in enumerate(keys)}).astype(int)
    out = out.drop(columns="group_key")
    out.attrs["by"] = by
    out.attrs["pooled"] = [c for c in varying_columns(table, config_columns(source, table)) if c not in by]
    return out


def failover_table_columns() -> list[str]:
    return ["fault_ms", "broker", "partition", "new_leader", "elected_ms", "first_ack_ms", "election_ms",
            "unavailable_ms"]


# --- one run, per second -------------------------------------------------------------------------------
def _per_arrival_second(first: np.ndarray, last: np.ndarray, counts: np.ndarray, n: int) -> np.ndarray:
    """Records per second of arrival: a batch's records arrived evenly between its first and last
    arrival, and are split over the seconds that span covers."""
    out = np.zeros(n)
    if n == 0 or len(counts) == 0:
        return out
    first = np.asarray(first, dtype=float) / 1000.0
    last = np.maximum(np.asarray(last, dtype=float) / 1000.0, first)
    counts = np.asarray(counts, dtype=float)
    s0 = np.clip(np.floor(first).astype(int), 0, n - 1)
    s1 = np.clip(np.floor(last).astype(int), 0, n - 1)
    same = s0 == s1
    np.add.at(out, s0[same], counts[same])
    for f, l, c, a, b in zip(first[~same], last[~same], counts[~same], s0[~same], s1[~same]):
        span = l - f
        for sec in range(a, b + 1):
            lo, hi = max(f, sec), min(l, sec + 1) if sec < n - 1 else l
            out[sec] += c * max(hi - lo, 0.0) / span
    return out


def offered_per_second(run: Run) -> pd.Series:
    """Records produced per simulated second (the offered load: arrivals at the producers, from
    each batch's first and last arrival), on the timeseries' seconds."""
    ts = run.timeseries
    b = run.read_batches(["first_arrival_ms", "last_arrival_ms", "record_count"])
    v = _per_arrival_second(b["first_arrival_ms"].to_numpy(), b["last_arrival_ms"].to_numpy(),
                            b["record_count"].to_numpy(), len(ts))
    return pd.Series(v, index=ts["second"].to_numpy(), name="records_produced")


def lost_records(run: Run) -> pd.DataFrame:
    """The batches whose records were lost: sent, missing from the final log, and either
    acknowledged (``kind`` "acked") or never answered definitely (``kind`` "unknown", acks=0 and
    timeouts), as `loss_tally` counts them. Columns: arrival_ms (mid arrival), records, kind."""
    b = run.read_batches(["first_arrival_ms", "last_arrival_ms", "record_count", "outcome", "copies_in_log",
                          "sent_ms"])
    outcome = b["outcome"].astype(str)
    lost = (b["copies_in_log"] == 0) & b["sent_ms"].notna() & outcome.isin(["acked", "unknown"])
    b = b[lost]
    return pd.DataFrame({"arrival_ms": mid_arrival(b),
                         "first_arrival_ms": b["first_arrival_ms"].to_numpy(),
                         "last_arrival_ms": b["last_arrival_ms"].to_numpy(),
                         "records": b["record_count"].to_numpy().astype(np.int64),
                         "kind": outcome[lost].to_numpy()})


def lost_per_second(run: Run) -> pd.DataFrame:
    """Lost records per second of their arrival, on the timeseries' seconds: columns
    ``acked_lost`` (acknowledged, then lost) and ``unknown_lost`` (never acknowledged, lost, the
    client not told); their sums are the summary's acked_lost and records_lost."""
    ts = run.timeseries
    lost = lost_records(run)
    out = {}
    for col, kind in (("acked_lost", "acked"), ("unknown_lost", "unknown")):
        g = lost[lost["kind"] == kind]
        out[col] = _per_arrival_second(g["first_arrival_ms"].to_numpy(), g["last_arrival_ms"].to_numpy(),
                                       g["records"].to_numpy(), len(ts))
    return pd.DataFrame(out, index=ts["second"].to_numpy())


def perf_table(source: Source) -> pd.DataFrame:
    """One row per run with the numbers kafka-producer-perf-test and OpenMessaging Benchmark print:
    records (acknowledged), records/s, MB/s, avg, p50, p95, p99, p99.9, p99.99 and max latency (ms),
    and whether the hardware model was on (without it latency is protocol-only: `analysis.perf`)."""
    from analysis.perf import perf_frame

    return perf_frame(_runs(source))

