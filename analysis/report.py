"""Files for people: the applicable figures as PNG/SVG, and one self-contained HTML report.

`write_plots` and `write_report` are what ``kafkasim plot`` and ``kafkasim report`` call. Both
take a run or a sweep directory. The report embeds its figures as base64 PNG data URIs and
uses no script, stylesheet or font from elsewhere, so it opens from disk in any browser.

This module computes what the page shows (tables as `Table` rows of `Cell` text and exact values,
figures, checks, descriptions); the page's markup and prose are jinja2 templates in
``analysis/templates`` (``run.html.j2`` and ``sweep.html.j2`` on ``base.html.j2``), rendered with
autoescape on, so every string from the results (scenario names and descriptions, parameter
values, warnings, errors) is escaped by the template engine.
"""

from __future__ import annotations

import base64
import functools
import io
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

import jinja2
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from analysis.load import Run, SweepResults, load, write_atomic
from sim.measure.batches import COMMITTED_RPS_LABEL
from analysis.metrics import failover_table, level_metrics, level_summary
from analysis.plots import (
    DPI, NothingToPlot, failover_distribution, failover_timeline, latency_plot, loss_map, save_figure, throughput_cost,
)
from analysis.plots.forest import display_order
from analysis.tables import (
    group_columns, sort_value, value_text, aggregate, config_columns, delivery_counts, failover_samples, param_label, param_name,
    runs_table, varying_columns, with_delivery,
)

__all__ = ["FigureSpec", "figure_specs", "write_plots", "write_report", "run_summary_rows", "representative_run",
           "representative_reason", "group_table", "run_checks", "sweep_checks"]


@dataclass
class FigureSpec:
    """One applicable figure: file stem, title, a caption saying what it shows, and how to draw it."""

    slug: str
    title: str
    caption: str
    draw: Callable[[], Figure]


def representative_run(sweep: SweepResults) -> str | None:
    """The run a sweep report shows a timeline of.

    Among finished runs: the most acknowledged records lost; if none lost any, one that gets
    acknowledgements (acks != 0) and had a failover, with the most records lost in all; then the
    lowest run_id. `representative_reason` says which of these decided.
    """
    rank = _rank(sweep)
    return None if rank is None else str(rank["run_id"].iloc[0])


def _rank(sweep: SweepResults) -> pd.DataFrame | None:
    ok = sweep.ok
    if ok.empty:
        return None

    def num(col: str) -> pd.Series:
        return pd.to_numeric(ok[col], errors="coerce").fillna(0) if col in ok else pd.Series(0, index=ok.index)

    rank = pd.DataFrame({
        "acked_lost": num("acked_lost"),
        "records_lost": num("records_lost"),
        "failover": (num("failover_ms.max") > 0) | (num("leader_elections") > 0),
        "acked": ok["acks"].astype(str) != "0" if "acks" in ok else True,
        "run_id": ok["run_id"].astype(str),
    })
    return rank.sort_values(["acked_lost", "acked", "failover", "records_lost", "run_id"],
                            ascending=[False, False, False, False, True], kind="stable")


def representative_reason(sweep: SweepResults) -> str:
    """Why `representative_run` chose its run, in words for a figure title."""
    rank = _rank(sweep)
    if rank is None:
        return ""
    top = rank.iloc[0]
    if top["acked_lost"] > 0:
        return f"chosen as the run with the most acknowledged records lost ({int(top['acked_lost']):,})"
    what = " and ".join(w for w, ok in (("acknowledgements", top["acked"]), ("a failover", top["failover"])) if ok)
    if top["records_lost"] > 0:
        return (f"no run lost an acknowledged record; chosen as the run{' with ' + what if what else ''} "
                f"that lost the most records ({int(top['records_lost']):,})")
    return f"no run lost a record; chosen as the first run{' with ' + what if what else ''}"


_CAPTIONS = {
    "loss-map": "Share of records lost, one row per configuration (every parameter that varies), on a log scale so "
                "that 0.0004% shows; where nothing was lost the row says \"0 of N\" (N = records sent over all "
                "seeds), which a log axis could not draw. Left: message loss (records_lost / records_sent: sent, gone "
                "from the final log, and the producer was never told, which is how acks=0 loses data). Right: "
                "acknowledged loss (acked_lost / records_sent: the producer was told the write succeeded, a "
                "durability violation). Points are the mean over seeds of each run's share; whiskers the 95% "
                "Student t interval over seeds, cut at 0 (marked <) where it would go below.",
    "throughput-cost": "Left: records per second of producing, per configuration: the bar is what was committed (in "
                       "the final log, whatever the client was told, so acks=0 counts what it wrote), the diamond the "
                       "offered load (records produced), the dot what was acknowledged. Producers are open loop, so "
                       "durability costs latency, and lost or failed records, rather than offered load. Right: the "
                       "latency cost, p50 (hollow) and p99 (filled) produce latency, mean over seeds.",
    "latency": "Top: one panel per acks mode, one line per configuration of the other parameters that vary (nothing "
               "swept is pooled; only the seeds of a configuration are): the fraction of acknowledged records whose "
               "produce latency (arrival at the producer to acknowledgement) is at most x. The long tail is records "
               "that waited out a failover. Bottom: per configuration, each run's p50 (hollow circle), p99 (filled "
               "circle, with the 95% t interval of its mean over seeds) and p99.9 (triangle), averaged over seeds; "
               "the marks are separate percentiles, not an interval. acks=0 never acknowledges, so it has no produce "
               "latency.",
    "failover-distribution": "For every fault and every partition the crashed broker led: the time from the crash "
                             "until the controller elected a new leader (left) and until the new leader acknowledged "
                             "its first write (right, what producers experience; a fault that ended without an "
                             "election, such as a short pause, ends at the same leader's first acknowledgement and "
                             "is on the right only). One line per configuration, with "
                             "n (failovers, runs, seeds) in the legend; the title says what is pooled. Each step is "
                             "one failover.",
    "timeline": "The run over time: records offered (produced), sent, acknowledged and failed per second; the "
                "records lost, by the second they arrived (acknowledged then lost, and never acknowledged and lost), "
                "with a tick per lost batch; p50/p99 produce latency per second; under-replicated and offline "
                "partitions; shaded grey while a broker was down. Below, a fault lane (one bar per fault, labelled "
                "with its kind and target: solid if it takes its target down, hatched otherwise), then one lane per "
                "partition: the upper bar is "
                "coloured by the leader broker (hatched while that leader is down but not yet fenced, so writes "
                "stall; black while offline) and the lower strip is the ISR size (yellow: under-replicated, "
                "vermillion: below min.insync.replicas; cross-hatched while a crashed broker is still in the ISR, "
                "which stalls acks=all writes). Triangles mark leadership changes; crosses mark log truncations, "
                "where a replica dropped records it had (how acks=1 loses acknowledged writes).",
}


def figure_specs(source: Run | SweepResults) -> list[FigureSpec]:
    """The figures that apply to a run or a sweep, in report order (not yet drawn)."""
    specs: list[FigureSpec] = []
    if isinstance(source, SweepResults):
        specs.append(FigureSpec("loss-map", "Records lost per configuration", _CAPTIONS["loss-map"],
                                lambda: loss_map(source)))
        specs.append(FigureSpec("latency", "Produce latency by acks mode", _CAPTIONS["latency"],
                                lambda: latency_plot(source)))
        specs.append(FigureSpec("throughput-cost", "Cost of durability: delivered load and latency",
                                _CAPTIONS["throughput-cost"],
                                lambda: throughput_cost(source)))
        specs.append(FigureSpec("failover-distribution", "Failover time distribution",
                                _CAPTIONS["failover-distribution"], lambda: failover_distribution(source)))
        rid = representative_run(source)
        if rid is not None:
            run = source.run(rid)
            why = representative_reason(source)
            specs.append(FigureSpec(f"timeline-{rid}", f"Failover timeline of run {rid} ({run.label}; {why})",
                                    _CAPTIONS["timeline"], lambda: failover_timeline(run, note=f"run {rid}: {why}")))
    else:
        specs.append(FigureSpec("timeline", "Failover timeline", _CAPTIONS["timeline"],
                                lambda: failover_timeline(source)))
        specs.append(FigureSpec("latency", "Produce latency", _CAPTIONS["latency"], lambda: latency_plot(source)))
        specs.append(FigureSpec("failover-distribution", "Failover time distribution",
                                _CAPTIONS["failover-distribution"], lambda: failover_distribution(source)))
    return specs


def _draw_all(source: Run | SweepResults) -> Iterator[tuple[FigureSpec, Figure | None, str | None]]:
    for spec in figure_specs(source):
        try:
            yield spec, spec.draw(), None
        except NothingToPlot as e:
            yield spec, None, str(e)


def write_plots(results_dir: str | Path, out_dir: str | Path | None = None, *,
                formats: tuple[str, ...] = ("png", "svg")) -> list[Path]:
    """Write every applicable figure of a run or sweep directory; returns the files written.

    Default `out_dir`: ``<results_dir>/plots``. Figures that do not apply (e.g. a failover
    distribution without failovers) are skipped.
    """
    source = load(results_dir)
    out = Path(out_dir) if out_dir is not None else Path(results_dir) / "plots"
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out} exists and is not a directory")
    written: list[Path] = []
    for spec, fig, _ in _draw_all(source):
        if fig is not None:
            written += save_figure(fig, out / spec.slug, formats)
    return written


# --- HTML: what the page shows is computed here; its markup is templates/*.html.j2 -------------------------------
# The templates are rendered with autoescape on: every string passed to them is escaped by jinja2 on output.
@dataclass(frozen=True)
class Cell:
    """One table cell: the text shown, and the exact numbers in its ``data-*`` attributes.

    `low`/`high`/`clipped` are set on the cells of a confidence-interval table only (an empty
    `low` is an attribute without a value, None no attribute).
    """

    key: str
    text: str
    value: str
    low: str | None = None
    high: str | None = None
    clipped: bool = False


@dataclass(frozen=True)
class Row:
    """A table row: `key` and `label` on a key-value row, `row` (``data-row``) on a grid row."""

    cells: list[Cell]
    key: str | None = None
    label: str | None = None
    row: str | None = None


@dataclass(frozen=True)
class Table:
    """A table of the page: ``kv`` (one labelled value per row) or ``grid`` (a header of (key, label))."""

    id: str
    kind: str
    rows: list[Row]
    head: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Shown:
    """One figure as the page shows it: a PNG data URI, or the reason it does not apply."""

    slug: str
    title: str
    caption: str
    src: str | None
    skipped: str | None = None


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v)).lower()
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}"
    if isinstance(v, (float, np.floating)):
        v = float(v)
        if v.is_integer() or abs(v) >= 100:
            return f"{v:,.0f}"
        if abs(v) < 0.01:
            return f"{v:.3g}"
        return f"{v:,.2f}"
    return str(v)


def _raw(v) -> str:
    """The exact value for a data-value attribute (repr for floats, so tests can compare)."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, (np.integer,)):
        return str(int(v))
    if isinstance(v, (np.floating,)):
        return repr(float(v))
    if isinstance(v, float):
        return repr(v)
    return str(v)


def run_summary_rows(run: Run) -> list[tuple[str, str, object]]:
    """(label, summary key, value) of a run's headline numbers, as the report shows them."""
    s = run.summary

    def get(path: str):
        node = s.to_dict()
        for part in path.split("."):
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return node

    sent = s.get("records_sent") or 0
    rows = [
        ("records sent", "records_sent"), ("records acknowledged", "records_acked"),
        ("records failed (client told)", "records_failed"), ("records unknown (no definite answer)", "records_unknown"),
        ("acknowledged and lost (durability violation)", "acked_lost"),
        ("records lost (all sent and gone, client never told of a failure; includes the acknowledged ones)",
         "records_lost"),
        ("duplicates", "duplicates"), ("reordered", "reordered"), ("records consumed", "records_consumed"),
        ("acknowledged (rec/s)", "throughput_rps"),
        ("produce latency p50 (ms)", "produce_latency_ms.p50"), ("produce latency p99 (ms)", "produce_latency_ms.p99"),
        ("produce latency p99.9 (ms)", "produce_latency_ms.p999"),
        ("produce latency max (ms)", "produce_latency_ms.max"),
        ("end-to-end latency p50 (ms)", "e2e_latency_ms.p50"), ("end-to-end latency p99 (ms)", "e2e_latency_ms.p99"),
        ("failover: fault to leader elected, p50 (ms)", "failover_ms.p50"),
        ("failover: fault to leader elected, max (ms)", "failover_ms.max"),
        ("unavailable: fault to first ack on new leader, p50 (ms)", "unavailable_ms.p50"),
        ("unavailable: fault to first ack on new leader, max (ms)", "unavailable_ms.max"),
        ("leader elections", "leader_elections"), ("unclean elections", "unclean_elections"),
        ("ISR shrinks", "isr_shrinks"), ("ISR expands", "isr_expands"), ("truncations", "truncations"),
        ("offline partitions at end", "offline_partitions_at_end"),
        ("under-replicated partitions at end", "under_replicated_partitions_at_end"),
        ("simulated time (ms)", "sim_duration_ms"), ("wall time (s)", "wall_time_s"),
    ]
    out = [(label, key, get(key)) for label, key in rows if get(key) is not None or key in s]
    try:
        counts = delivery_counts(run)
    except Exception:  # a damaged batches table: the report still shows the summary
        counts = {}
    if counts:
        out.insert(0, ("records produced (offered: arrivals at the producers)", "records_produced",
                       counts["records_produced"]))
        out.insert(7, ("records committed (in the final log, whatever the client was told)", "records_committed",
                       counts["records_committed"]))
        produce_ms = s.get("produce_duration_ms")
        at_rate = next(i for i, r in enumerate(out) if r[1] == "throughput_rps") if "throughput_rps" in s else len(out)
        out.insert(at_rate, (f"{COMMITTED_RPS_LABEL}: records committed per second of producing", "committed_rps",
                             counts["records_committed"] / (produce_ms / 1000.0) if produce_ms else None))
    at = next(i for i, r in enumerate(out) if r[1] == "acked_lost") + 1
    out.insert(at, ("message loss rate (records_lost / records_sent)", "loss_rate",
                    (s.get("records_lost", 0) / sent) if sent else None))
    out.insert(at + 1, ("acknowledged loss rate (acked_lost / records_sent)", "acked_loss_rate",
                        (s.get("acked_lost", 0) / sent) if sent else None))
    return out


def _pct(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    v = 100.0 * float(v)
    return "0%" if v == 0 else f"{v:.3g}%"


_RATE_KEYS = {"loss_rate", "acked_loss_rate"}


def _display(key: str, v) -> str:
    return _pct(v) if key in _RATE_KEYS else _fmt(v)


def _kv_table(rows: list[tuple[str, str, object]], table_id: str) -> Table:
    return Table(table_id, "kv", [Row([Cell(k, _display(k, v), _raw(v))], key=k, label=label) for label, k, v in rows])


def _df_table(df: pd.DataFrame, table_id: str, row_key: str | None = None, labels: dict | None = None) -> Table:
    labels = labels or {}
    rows = [Row([Cell(c, _display(c, r[c]), _raw(r[c])) for c in df.columns],
                row=None if row_key is None else str(r[row_key]))
            for _, r in df.iterrows()]
    return Table(table_id, "grid", rows, [(c, labels.get(c, c)) for c in df.columns])


def _ci_table(df: pd.DataFrame, table_id: str, keys: list[tuple[str, str]], metrics: list[tuple[str, str]]) -> Table:
    """Groups with "mean (low to high)" cells; data-value/-low/-high hold the exact numbers, and
    data-clipped="true" (and a double dagger) marks an interval cut at a bound."""
    rows = []
    for _, r in df.iterrows():
        cells = [Cell(k, _fmt(r[k]), _raw(r[k])) for k, _ in keys]
        for m, _ in metrics:
            mean, lo, hi = (r.get(f"{m}_{x}") for x in ("mean", "low", "high"))
            show = _display(m, mean)
            clipped = bool(r.get(f"{m}_clipped", False) is True or r.get(f"{m}_clipped", False) == True)  # noqa: E712
            if lo is not None and not (isinstance(lo, float) and math.isnan(lo)) and not lo == mean == hi:
                show += f" ({_display(m, lo)} to {_display(m, hi)}{' ‡' if clipped else ''})"
            cells.append(Cell(m, show, _raw(mean), low=_raw(lo), high=_raw(hi), clipped=clipped))
        rows.append(Row(cells))
    return Table(table_id, "grid", rows, keys + metrics)


def _png_data_uri(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _figures(source: Run | SweepResults) -> list[Shown]:
    return [Shown(spec.slug, spec.title, spec.caption, None, why) if fig is None
            else Shown(spec.slug, spec.title, spec.caption, _png_data_uri(fig))
            for spec, fig, why in _draw_all(source)]


_LEVEL_ROWS = [
    ("mean ISR size (time-weighted, mean over partitions)", "mean_isr_size"),
    ("under-replicated partitions, time-weighted mean", "mean_under_replicated_partitions"),
    ("under-replicated partitions, max at once", "max_under_replicated_partitions"),
    ("offline partitions, time-weighted mean", "mean_offline_partitions"),
    ("partition-seconds under-replicated", "partition_seconds_under_replicated"),
    ("partition-seconds below min.insync.replicas", "partition_seconds_below_min_isr"),
    ("partition-seconds with a crashed broker still in the ISR", "partition_seconds_isr_member_down"),
    ("partition-seconds with the leader down (not yet fenced)", "partition_seconds_leader_down"),
    ("partition-seconds offline", "partition_seconds_offline"),
]


def _run_context(run: Run) -> dict:
    lvl = level_summary(run)
    fo = failover_table(run)
    return {
        "label": run.label, "path": str(run.path), "version": run.summary.get("version", "?"),
        "summary": _kv_table(run_summary_rows(run), "summary"),
        "levels": _kv_table([(label, k, lvl.get(k)) for label, k in _LEVEL_ROWS], "levels"),
        "partitions": _df_table(level_metrics(run).drop(columns=["run_ms"]), "partitions", row_key="partition"),
        "failovers": None if fo.empty else _df_table(fo, "failovers"),
        "scenario": (run.path / "scenario.yaml").read_text(),
    }


_SWEEP_METRIC_COLUMNS = ["records_sent", "records_lost", "acked_lost", "loss_rate", "acked_loss_rate", "committed_rps",
                         "produce_latency_ms.p99", "failover_ms.max", "unavailable_ms.max", "invariant_violations"]
_COLUMN_LABELS = {"run_id": "run", "seed": "seed", "status": "status", "records_sent": "records sent",
                  "records_lost": "records lost", "acked_lost": "acked lost", "loss_rate": "message loss rate",
                  "acked_loss_rate": "acknowledged loss rate", "committed_rps": COMMITTED_RPS_LABEL,
                  "throughput_rps": "acknowledged (rec/s)",
                  "produce_latency_ms.p99": "p99 latency (ms)", "failover_ms.max": "failover max (ms)",
                  "unavailable_ms.max": "unavailable max (ms)", "invariant_violations": "invariant violations",
                  "n": "seeds (runs)"}


_GROUP_METRICS = [("loss_rate", "message loss rate"), ("acked_loss_rate", "acknowledged loss rate"),
                  ("committed_rps", COMMITTED_RPS_LABEL), ("throughput_rps", "acknowledged (rec/s)"),
                  ("produce_latency_ms.p99", "p99 latency (ms)"),
                  ("failover_ms.max", "failover, max per run (ms)")]


def group_table(sweep: SweepResults, confidence: float = 0.95) -> pd.DataFrame:
    """Per configuration (min.insync x fault kind x acks x RF x any other swept parameter): runs and
    mean/low/high over seeds of the headline metrics, intervals bounded (``<metric>_clipped``)."""
    t = with_delivery(sweep, runs_table(sweep))
    by = group_columns(sweep, t)
    out = aggregate(t, by, [m for m, _ in _GROUP_METRICS], confidence)
    out.attrs["by"] = by
    return out


def _shown_config(sweep: SweepResults, table: pd.DataFrame) -> tuple[list[str], list[str]]:
    """The configuration columns a sweep's tables show (those that vary, each once) and the constant ones."""
    cols = config_columns(sweep, table)
    varying = varying_columns(table, cols)
    return varying, [c for c in cols if c not in varying and c in table]


def _same_everywhere(table: pd.DataFrame, constant: list[str]) -> list[str]:
    """The labels of the configuration values every run shares ("fault: crash", ...)."""
    if not constant or table.empty:
        return []
    return [param_label(c, table[c].iloc[0]) for c in constant]


def _sweep_context(sweep: SweepResults) -> dict:
    agg = group_table(sweep)
    metrics = [(m, label) for m, label in _GROUP_METRICS if f"{m}_mean" in agg]
    varying, constant = _shown_config(sweep, sweep.ok if len(sweep.ok) else sweep.table)
    keys = [(c, param_name(c)) for c in display_order(varying) if c in agg] + [("n", "seeds (runs)")]
    order = [c for c, _ in keys if c != "n"]
    if order and len(agg):
        agg = agg.assign(_k=[tuple(sort_value(c, r[c]) for c in order) for _, r in agg.iterrows()])
        agg = agg.sort_values("_k", kind="stable").drop(columns="_k").reset_index(drop=True)
    clipped = any(agg.get(f"{m}_clipped", pd.Series(dtype=bool)).fillna(False).astype(bool).any() for m, _ in metrics)
    ns = sorted(set(agg["n"].astype(int))) if len(agg) else [0]
    run_table = sweep.table.copy()  # with each finished run's committed rate (the one throughput measure)
    delivered = with_delivery(sweep, runs_table(sweep))
    run_table["committed_rps"] = run_table["run_id"].map(
        dict(zip(delivered.get("run_id", []), delivered.get("committed_rps", [])))).astype("float64")
    run_cols = [c for c in ["run_id", "seed", "status", *display_order(varying), *_SWEEP_METRIC_COLUMNS]
                if c in run_table]
    run_cols = list(dict.fromkeys(run_cols))
    labels = {**_COLUMN_LABELS, **{c: param_name(c) for c in varying}}
    fo = failover_samples(sweep)
    failed = sweep.table[sweep.table["status"] != "ok"]
    ctx = {
        "name": sweep.name, "path": str(sweep.path), "n_runs": len(sweep.table), "n_ok": len(sweep.ok),
        "groups": _ci_table(agg, "groups", keys, metrics), "seeds": (ns[0], ns[-1]), "clipped": clipped,
        "same": _same_everywhere(sweep.ok, constant),
        "runs": _df_table(run_table[run_cols], "runs", row_key="run_id", labels=labels),
        "failovers": None if fo.empty else (len(fo), fo["run_id"].nunique()),
        "failed": [(str(r["run_id"]), str(r.get("error") or "")) for _, r in failed.iterrows()],
        "sweep_spec": (sweep.path / "sweep.yaml").read_text(), "scenario": None,
    }
    if len(sweep.ok):
        rid = str(sweep.ok["run_id"].iloc[0])
        ctx["scenario"] = {
            "run_id": rid, "text": (sweep.run_dir(rid) / "scenario.yaml").read_text(),
            "swept": [f"{k} ({param_name(k)})" if param_name(k) != k else k for k in sweep.params],
        }
    return ctx


# --- checks: invariant violations and warnings ------------------------------------------------------------
def run_checks(run: Run) -> dict:
    """A run's model-invariant check and warnings, as its summary.json records them.

    ``invariant_violations`` is None when the summary does not record it (older results).
    """
    s = run.summary
    v = s.get("invariant_violations")
    return {"invariant_violations": None if v is None else int(v),
            "invariant_examples": [str(x) for x in (s.get("invariant_examples") or [])],
            "warnings": [str(w) for w in (s.get("warnings") or [])]}


def sweep_checks(sweep: SweepResults) -> dict:
    """Invariant violations and warnings over every finished run of a sweep.

    ``violations``: (run_id, count, examples) of each run with a violation; ``warnings``: each
    distinct warning text with the runs that gave it; ``unrecorded``: runs whose summary does not
    record the check.
    """
    violations, warnings, unrecorded = [], {}, []
    for rid in sweep.ok["run_id"]:
        c = run_checks(sweep.run(rid))
        if c["invariant_violations"] is None:
            unrecorded.append(str(rid))
        elif c["invariant_violations"]:
            violations.append((str(rid), c["invariant_violations"], c["invariant_examples"]))
        for w in c["warnings"]:
            warnings.setdefault(w, []).append(str(rid))
    return {"runs": int(len(sweep.ok)), "violations": violations, "warnings": warnings, "unrecorded": unrecorded}


def _checks(source: Run | SweepResults) -> dict:
    """The checks the page opens with; ``warnings`` as (text, run ids), most frequent first for a sweep."""
    if isinstance(source, Run):
        c = run_checks(source)
        return {**c, "warnings": [(w, []) for w in c["warnings"]]}
    c = sweep_checks(source)
    return {**c, "warnings": sorted(c["warnings"].items(), key=lambda kv: (-len(kv[1]), kv[0]))}


def _descriptions(source: Run | SweepResults) -> list[str]:
    """The scenario's (or the sweep's and its base scenario's) description, as written."""
    if isinstance(source, Run):
        texts = [source.scenario.get("description")]
    else:
        base = source.spec.get("scenario")
        texts = [source.spec.get("description"), base.get("description") if isinstance(base, dict) else None]
        if isinstance(base, dict) and base.get("description"):
            # the base's description speaks of the base alone: the sweep changed what it describes
            texts[1] = (f"The base scenario {base.get('name', '')}'s own description (of the base alone, before the "
                        f"sweep's settings): {str(base['description']).strip()}").replace("  ", " ")
            varied = _sweep_varies(source)
            if varied:
                texts.append(f"This sweep varies {varied}, and every run uses the settings of sweep.yaml (below) "
                             "wherever they differ from what the description says.")
    return [str(t).strip() for t in texts if t and str(t).strip()]


def _sweep_varies(sweep: SweepResults) -> str:
    """"acks (0, 1, all), RF (2, 3)": each swept key in words, with the values it takes."""
    parts = []
    for p in sweep.params:
        if p not in sweep.table:
            continue
        values = sorted(sweep.table[p].dropna().unique().tolist(), key=lambda v: sort_value(p, v))
        parts.append(f"{param_name(p)} ({', '.join(value_text(v) for v in values)})")
    return ", ".join(parts)


@functools.cache
def _templates() -> jinja2.Environment:
    """The report templates, shipped as package data in ``analysis/templates``; autoescape is on."""
    env = jinja2.Environment(loader=jinja2.PackageLoader("analysis", "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                             keep_trailing_newline=True)
    env.filters["thousands"] = lambda n: f"{n:,}"
    return env


def _render(source: Run | SweepResults, *, figures: bool = True) -> str:
    """The report page of a run or sweep; without `figures` none is drawn (the section is empty)."""
    kind = "sweep" if isinstance(source, SweepResults) else "run"
    page = _sweep_context(source) if kind == "sweep" else _run_context(source)
    return _templates().get_template(f"{kind}.html.j2").render(
        **page, descriptions=_descriptions(source), checks=_checks(source),
        figures=_figures(source) if figures else [],
        generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))


def write_report(results_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write one self-contained HTML page for a run or sweep directory; returns its path.

    Default `out`: ``<results_dir>/report.html``. Written to a temporary file and renamed.
    """
    source = load(results_dir)
    path = Path(out) if out is not None else Path(results_dir) / "report.html"
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory")
    doc = _render(source)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda p: p.write_text(doc, encoding="utf-8"))
    return path
