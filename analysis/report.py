"""Files for people: the applicable figures as PNG/SVG, and one self-contained HTML report.

`write_plots` and `write_report` are what ``kafkasim plot`` and ``kafkasim report`` call. Both
take a run or a sweep directory. The report embeds its figures as base64 PNG data URIs and
uses no script, stylesheet or font from elsewhere, so it opens from disk in any browser.
"""

from __future__ import annotations

import base64
import html
import io
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from analysis.load import Run, SweepResults, load, write_atomic
from analysis.metrics import failover_table, level_metrics, level_summary
from analysis.plots import (
    DPI, NothingToPlot, failover_distribution, failover_timeline, latency_plot, loss_map, save_figure, throughput_cost,
)
from analysis.plots import _display_order
from analysis.tables import (
    _group_columns, _sort_value, aggregate, config_columns, delivery_counts, failover_samples, param_label, param_name,
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
                             "its first write (right, what producers experience). One line per configuration, with "
                             "n (failovers, runs, seeds) in the legend; the title says what is pooled. Each step is "
                             "one failover.",
    "timeline": "The run over time: records offered (produced), sent, acknowledged and failed per second; the "
                "records lost, by the second they arrived (acknowledged then lost, and never acknowledged and lost), "
                "with a tick per lost batch; p50/p99 produce latency per second; under-replicated and offline "
                "partitions; shaded grey while a broker was down. Below, one lane per partition: the upper bar is "
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


# --- HTML ----------------------------------------------------------------------------------------------
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


def _e(s) -> str:
    return html.escape(str(s), quote=True)


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
        ("records lost (sent, gone, client never told)", "records_lost"),
        ("acknowledged and lost (durability violation)", "acked_lost"),
        ("duplicates", "duplicates"), ("reordered", "reordered"), ("records consumed", "records_consumed"),
        ("throughput (acknowledged records/s)", "throughput_rps"),
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


def _kv_table(rows: list[tuple[str, str, object]], table_id: str) -> str:
    body = "".join(f'<tr data-key="{_e(k)}"><th>{_e(label)}</th><td data-value="{_e(_raw(v))}">'
                   f"{_e(_display(k, v))}</td></tr>" for label, k, v in rows)
    return f'<table id="{table_id}" class="kv"><tbody>{body}</tbody></table>'


def _df_table(df: pd.DataFrame, table_id: str, row_key: str | None = None, labels: dict | None = None) -> str:
    labels = labels or {}
    head = "".join(f'<th data-key="{_e(c)}">{_e(labels.get(c, c))}</th>' for c in df.columns)
    rows = []
    for _, r in df.iterrows():
        attr = f' data-row="{_e(r[row_key])}"' if row_key else ""
        cells = "".join(f'<td data-key="{_e(c)}" data-value="{_e(_raw(r[c]))}">{_e(_display(c, r[c]))}</td>'
                        for c in df.columns)
        rows.append(f"<tr{attr}>{cells}</tr>")
    return (f'<table id="{table_id}" class="grid"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


def _ci_table(df: pd.DataFrame, table_id: str, keys: list[tuple[str, str]], metrics: list[tuple[str, str]]) -> str:
    """Groups with "mean (low to high)" cells; data-value/-low/-high hold the exact numbers, and
    data-clipped="true" (and a double dagger) marks an interval cut at a bound."""
    head = "".join(f'<th data-key="{_e(k)}">{_e(label)}</th>' for k, label in keys + metrics)
    rows = []
    for _, r in df.iterrows():
        cells = [f'<td data-key="{_e(k)}" data-value="{_e(_raw(r[k]))}">{_e(_fmt(r[k]))}</td>' for k, _ in keys]
        for m, _ in metrics:
            mean, lo, hi = (r.get(f"{m}_{x}") for x in ("mean", "low", "high"))
            show = _display(m, mean)
            clipped = bool(r.get(f"{m}_clipped", False) is True or r.get(f"{m}_clipped", False) == True)  # noqa: E712
            if lo is not None and not (isinstance(lo, float) and math.isnan(lo)) and not lo == mean == hi:
                show += f" ({_display(m, lo)} to {_display(m, hi)}{' ‡' if clipped else ''})"
            cells.append(f'<td data-key="{_e(m)}" data-value="{_e(_raw(mean))}" data-low="{_e(_raw(lo))}" '
                         f'data-high="{_e(_raw(hi))}" data-clipped="{str(clipped).lower()}">{_e(show)}</td>')
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return (f'<table id="{table_id}" class="grid"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


def _png_data_uri(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;max-width:1200px;
padding:0 1rem;color:#222;line-height:1.45}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.25rem;margin-top:2.2rem;border-bottom:1px solid #ddd}
.meta{color:#666;font-size:.9rem}table{border-collapse:collapse;font-size:.85rem;margin:.6rem 0}
th,td{padding:.25rem .6rem;border-bottom:1px solid #eee;text-align:right}th{text-align:left;font-weight:600}
table.grid thead th{background:#f4f4f4;text-align:right}table.kv th{font-weight:normal;color:#333}
figure{margin:1.2rem 0}figure img{max-width:100%;border:1px solid #eee}figcaption{font-size:.9rem;color:#444}
pre{background:#f7f7f7;padding:.8rem;overflow:auto;font-size:.8rem;border:1px solid #eee}
.note{color:#666;font-size:.85rem}.scroll{overflow-x:auto}
.description{font-size:1.05rem;margin:.4rem 0 .6rem}.description p{margin:.2rem 0}
.check{padding:.4rem .7rem;margin:.4rem 0;border-left:4px solid #999;background:#f7f7f7}
.check.ok{border-color:#009E73}.check.warn{border-color:#E69F00;background:#fff8e6}
.check.bad{border-color:#D55E00;background:#fdeee6}.check ul{margin:.3rem 0}
"""


def _figures_html(source: Run | SweepResults) -> str:
    parts = []
    for spec, fig, why in _draw_all(source):
        if fig is None:
            parts.append(f'<p class="note" data-skipped="{_e(spec.slug)}">{_e(spec.title)}: not shown ({_e(why)}).</p>')
            continue
        parts.append(f'<figure id="fig-{_e(spec.slug)}"><img alt="{_e(spec.title)}" src="{_png_data_uri(fig)}">'
                     f"<figcaption><b>{_e(spec.title)}.</b> {_e(spec.caption)}</figcaption></figure>")
    return "\n".join(parts)


def _run_sections(run: Run) -> list[str]:
    lvl = level_summary(run)
    lvl_rows = [
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
    out = [f"<h2>Summary</h2>{_kv_table(run_summary_rows(run), 'summary')}",
           "<h2>Level metrics</h2><p class='note'>Time-weighted over the whole run from the recorded state changes "
           "(leader elections, ISR changes, crashes and restarts).</p>"
           + _kv_table([(label, k, lvl.get(k)) for label, k in lvl_rows], "levels")
           + '<div class="scroll">' + _df_table(level_metrics(run).drop(columns=["run_ms"]), "partitions",
                                                row_key="partition") + "</div>"]
    fo = failover_table(run)
    if not fo.empty:
        out.append("<h2>Failovers</h2><p class='note'>One row per crash and partition the crashed broker led "
                   "(times in ms).</p>" + _df_table(fo, "failovers"))
    return out


_SWEEP_METRIC_COLUMNS = ["records_sent", "records_lost", "acked_lost", "loss_rate", "acked_loss_rate", "throughput_rps",
                         "produce_latency_ms.p99", "failover_ms.max", "unavailable_ms.max", "invariant_violations"]
_COLUMN_LABELS = {"run_id": "run", "seed": "seed", "status": "status", "records_sent": "records sent",
                  "records_lost": "records lost", "acked_lost": "acked lost", "loss_rate": "message loss rate",
                  "acked_loss_rate": "acknowledged loss rate", "throughput_rps": "throughput (acked rec/s)",
                  "produce_latency_ms.p99": "p99 latency (ms)", "failover_ms.max": "failover max (ms)",
                  "unavailable_ms.max": "unavailable max (ms)", "invariant_violations": "invariant violations",
                  "n": "seeds (runs)"}


_GROUP_METRICS = [("loss_rate", "message loss rate"), ("acked_loss_rate", "acknowledged loss rate"),
                  ("committed_rps", "committed (rec/s)"), ("throughput_rps", "acknowledged (rec/s)"),
                  ("produce_latency_ms.p99", "p99 latency (ms)"),
                  ("failover_ms.max", "failover, max per run (ms)")]


def group_table(sweep: SweepResults, confidence: float = 0.95) -> pd.DataFrame:
    """Per configuration (min.insync x fault kind x acks x RF x any other swept parameter): runs and
    mean/low/high over seeds of the headline metrics, intervals bounded (``<metric>_clipped``)."""
    t = with_delivery(sweep, runs_table(sweep))
    by = _group_columns(sweep, t)
    out = aggregate(t, by, [m for m, _ in _GROUP_METRICS], confidence)
    out.attrs["by"] = by
    return out


def _shown_config(sweep: SweepResults, table: pd.DataFrame) -> tuple[list[str], list[str]]:
    """The configuration columns a sweep's tables show (those that vary, each once) and the constant ones."""
    cols = config_columns(sweep, table)
    varying = varying_columns(table, cols)
    return varying, [c for c in cols if c not in varying and c in table]


def _same_everywhere(table: pd.DataFrame, constant: list[str]) -> str:
    if not constant or table.empty:
        return ""
    return "Same in every run: " + ", ".join(param_label(c, table[c].iloc[0]) for c in constant) + "."


def _sweep_sections(sweep: SweepResults) -> list[str]:
    agg = group_table(sweep)
    metrics = [(m, label) for m, label in _GROUP_METRICS if f"{m}_mean" in agg]
    varying, constant = _shown_config(sweep, sweep.ok if len(sweep.ok) else sweep.table)
    keys = [(c, param_name(c)) for c in _display_order(varying) if c in agg] + [("n", "seeds (runs)")]
    order = [c for c, _ in keys if c != "n"]
    if order and len(agg):
        agg = agg.assign(_k=[tuple(_sort_value(c, r[c]) for c in order) for _, r in agg.iterrows()])
        agg = agg.sort_values("_k", kind="stable").drop(columns="_k").reset_index(drop=True)
    same = _same_everywhere(sweep.ok, constant)
    clipped = any(agg.get(f"{m}_clipped", pd.Series(dtype=bool)).fillna(False).astype(bool).any() for m, _ in metrics)
    ns = sorted(set(agg["n"].astype(int))) if len(agg) else [0]
    n_text = (f"n = {ns[0]} seed{'s' * (ns[0] != 1)} per configuration" if len(ns) == 1
              else f"n = {ns[0]}-{ns[-1]} seeds per configuration")
    note = ("Mean over seeds, and in brackets the 95% confidence interval of the mean (Student t over seeds, "
            f"{n_text}), cut to what the quantity can be: never below 0, a share never above 100%"
            + ("; &Dagger; marks an interval that was cut" if clipped else "")
            + ". Loss rates are shares of records sent: message loss = records_lost / records_sent, acknowledged "
              "loss = acked_lost / records_sent. " + _e(same))
    run_cols = [c for c in ["run_id", "seed", "status", *_display_order(varying), *_SWEEP_METRIC_COLUMNS]
                if c in sweep.table]
    run_cols = list(dict.fromkeys(run_cols))
    labels = {**_COLUMN_LABELS, **{c: param_name(c) for c in varying}}
    out = [f"<h2>Summary by configuration</h2><p class='note'>{note}</p>"
           + '<div class="scroll">' + _ci_table(agg, "groups", keys, metrics) + "</div>",
           "<h2>Runs</h2>" + (f"<p class='note'>{_e(same)}</p>" if same else "")
           + '<div class="scroll">' + _df_table(sweep.table[run_cols], "runs", row_key="run_id", labels=labels)
           + "</div>"]
    fo = failover_samples(sweep)
    if not fo.empty:
        out.append(f"<p class='note'>{len(fo)} failovers over {fo['run_id'].nunique()} runs.</p>")
    failed = sweep.table[sweep.table["status"] != "ok"]
    if len(failed):
        items = "".join(f"<li><b>{_e(r['run_id'])}</b>: {_e(r.get('error') or '')}</li>" for _, r in failed.iterrows())
        out.append(f"<h2>Failed runs</h2><ul>{items}</ul>")
    return out


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


def _checks_html(source: Run | SweepResults) -> str:
    parts = []
    if isinstance(source, Run):
        c = run_checks(source)
        v = c["invariant_violations"]
        if v is None:
            parts.append("<p id='invariant-violations' class='check unknown' data-value=''>Model invariants: not "
                         "recorded in this run's summary.json (results from an older kafkasim).</p>")
        elif v == 0:
            parts.append("<p id='invariant-violations' class='check ok' data-value='0'>Model invariants: "
                         "0 violations (every invariant held).</p>")
        else:
            items = "".join(f"<li>{_e(x)}</li>" for x in c["invariant_examples"])
            parts.append(f"<div id='invariant-violations' class='check bad' data-value='{v}'>"
                         f"<b>Model invariants: {v:,} "
                         f"violation{'s' * (v != 1)}.</b> The results of this run are not trustworthy; "
                         f"first examples:<ul>{items}</ul></div>")
        warnings = [(w, []) for w in c["warnings"]]
    else:
        c = sweep_checks(source)
        bad = c["violations"]
        if bad:
            rows = "".join(f"<li><b>{_e(rid)}</b>: {n:,} violation{'s' * (n != 1)}"
                           + ("<ul>" + "".join(f"<li>{_e(x)}</li>" for x in ex) + "</ul>" if ex else "") + "</li>"
                           for rid, n, ex in bad)
            total = sum(n for _, n, _ in bad)
            parts.append(f"<div id='invariant-violations' class='check bad' data-value='{total}'><b>Model invariants: "
                         f"{total:,} violation{'s' * (total != 1)} in {len(bad)} of {c['runs']} runs.</b> "
                         f"Those runs are not "
                         f"trustworthy:<ul>{rows}</ul></div>")
        else:
            checked = c["runs"] - len(c["unrecorded"])
            parts.append(f"<p id='invariant-violations' class='check ok' data-value='0'>Model invariants: 0 violations "
                         f"in {checked} of {c['runs']} finished runs"
                         + (f" ({len(c['unrecorded'])} do not record the check)" if c["unrecorded"] else "")
                         + ".</p>")
        warnings = sorted(c["warnings"].items(), key=lambda kv: (-len(kv[1]), kv[0]))
    if warnings:
        items = []
        for w, rids in warnings:
            where = f" <span class='note'>({len(rids)} run{'s' * (len(rids) != 1)}: {_e(', '.join(rids[:5]))}" \
                    f"{', ...' if len(rids) > 5 else ''})</span>" if rids else ""
            items.append(f"<li>{_e(w)}{where}</li>")
        parts.append(f"<div id='warnings' class='check warn' data-count='{len(warnings)}'><b>Warnings "
                     f"({len(warnings)}):</b><ul>{''.join(items)}</ul></div>")
    else:
        parts.append("<p id='warnings' class='check ok' data-count='0'>Warnings: none.</p>")
    return "<section id='checks'>" + "".join(parts) + "</section>"


def _description(source: Run | SweepResults) -> str:
    """The scenario's (or the sweep's and its base scenario's) description, as written."""
    if isinstance(source, Run):
        texts = [source.scenario.get("description")]
    else:
        base = source.spec.get("scenario")
        texts = [source.spec.get("description"), base.get("description") if isinstance(base, dict) else None]
        if isinstance(base, dict) and base.get("description"):
            texts[1] = f"Base scenario {base.get('name', '')}: {base['description']}".replace("  ", " ")
    texts = [str(t).strip() for t in texts if t and str(t).strip()]
    if not texts:
        return "<p id='description' class='description empty'>No description: add a <code>description:</code> to the " \
               "scenario or sweep file.</p>"
    return "<div id='description' class='description'>" + "".join(f"<p>{_e(t)}</p>" for t in texts) + "</div>"


def _scenario_html(source: Run | SweepResults) -> str:
    if isinstance(source, Run):
        text = (source.path / "scenario.yaml").read_text()
        return f"<h2>Scenario (resolved)</h2><pre id='scenario'>{_e(text)}</pre>"
    out = f"<h2>Sweep</h2><pre id='sweep-spec'>{_e((source.path / 'sweep.yaml').read_text())}</pre>"
    ok = source.ok
    if len(ok):
        rid = str(ok["run_id"].iloc[0])
        text = (source.run_dir(rid) / "scenario.yaml").read_text()
        swept = ", ".join(f"{k} ({param_name(k)})" if param_name(k) != k else k for k in source.params) or "none"
        out += (f"<h2>Scenario (resolved, run {_e(rid)})</h2><p class='note'>The other runs differ only in the swept "
                f"keys ({_e(swept)}) and the seed.</p><pre id='scenario'>{_e(text)}</pre>")
    return out


def write_report(results_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write one self-contained HTML page for a run or sweep directory; returns its path.

    Default `out`: ``<results_dir>/report.html``. Written to a temporary file and renamed.
    """
    source = load(results_dir)
    path = Path(out) if out is not None else Path(results_dir) / "report.html"
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory")
    if isinstance(source, SweepResults):
        title = f"kafkasim sweep report: {source.name}"
        meta = f"{len(source.table)} runs ({len(source.ok)} ok) from {source.path}"
        sections = _sweep_sections(source)
    else:
        title = f"kafkasim run report: {source.label}"
        meta = f"{source.path}; kafkasim {source.summary.get('version', '?')}"
        sections = _run_sections(source)
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    doc = (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>{_e(title)}</title>"
           f"<meta name='viewport' content='width=device-width, initial-scale=1'><style>{_CSS}</style></head><body>"
           f"<h1>{_e(title)}</h1>" + _description(source) + f"<p class='meta'>{_e(meta)}; generated {generated}</p>"
           + _checks_html(source) + sections[0] + "<h2>Figures</h2>" + _figures_html(source) + "".join(sections[1:])
           + _scenario_html(source) + "</body></html>\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda p: p.write_text(doc, encoding="utf-8"))
    return path
