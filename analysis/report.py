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

from .load import Run, Sweep, load, write_atomic
from .metrics import failover_table, level_metrics, level_summary
from .plots import (
    DPI, NothingToPlot, failover_distribution, failover_timeline, latency_plot, loss_map, save_figure, throughput_cost,
)
from .tables import GROUP_COLUMNS, aggregate, failover_samples, runs_table

__all__ = ["FigureSpec", "figure_specs", "write_plots", "write_report", "run_summary_rows", "representative_run",
           "group_table"]


@dataclass
class FigureSpec:
    """One applicable figure: file stem, title, a caption saying what it shows, and how to draw it."""

    slug: str
    title: str
    caption: str
    draw: Callable[[], Figure]


def representative_run(sweep: Sweep) -> str | None:
    """The run a sweep report shows a timeline of.

    Among finished runs, prefer one with a failover, then one that gets acknowledgements
    (acks != 0), then the most acknowledged records lost, then the lowest run_id.
    """
    ok = sweep.ok
    if ok.empty:
        return None

    def num(col: str) -> pd.Series:
        return pd.to_numeric(ok[col], errors="coerce").fillna(0) if col in ok else pd.Series(0, index=ok.index)

    rank = pd.DataFrame({
        "failover": (num("failover_ms.max") > 0) | (num("leader_elections") > 0),
        "acked": ok["acks"].astype(str) != "0" if "acks" in ok else True,
        "acked_lost": num("acked_lost"),
        "run_id": ok["run_id"].astype(str),
    })
    rank = rank.sort_values(["failover", "acked", "acked_lost", "run_id"], ascending=[False, False, False, True],
                            kind="stable")
    return str(rank["run_id"].iloc[0])


_CAPTIONS = {
    "loss-map": "Share of records lost per run, averaged over seeds, by acks and replication factor; one pair of "
                "panels per fault kind, one row per min.insync.replicas. Left of each pair: message loss "
                "(records_lost / records_sent: sent, gone from the final log, and the producer was never told, "
                "which is how acks=0 loses data). Right: acknowledged loss (acked_lost / records_sent: the producer "
                "was told the write succeeded, a durability violation). Whiskers are confidence intervals over seeds.",
    "throughput-cost": "Acknowledged records per second of producing, averaged over seeds, by acks and replication "
                       "factor; diamonds mark the rate the producers sent at. Producers are open loop, so a durability "
                       "setting costs throughput only where records fail or are never acknowledged; its cost in "
                       "waiting shows in the latency figure.",
    "latency": "Left: the fraction of acknowledged records whose produce latency (arrival at the producer to "
               "acknowledgement) is at most x, records of all seeds pooled; the long tail is records that waited "
               "out a failover. Right: p99 per run averaged over seeds with its confidence interval, and the mean "
               "p50 and p99.9. acks=0 never acknowledges, so it has no produce latency.",
    "failover-distribution": "For every fault and every partition the crashed broker led: the time from the crash "
                             "until the controller elected a new leader (left) and until the new leader acknowledged "
                             "its first write (right, what producers experience). Each step is one failover.",
    "timeline": "The run over time: records sent, acknowledged and failed per second, p50/p99 produce latency "
                "per second, "
                "and under-replicated/offline partitions; shaded while a broker was down. Below, one lane per "
                "partition: the upper bar is coloured by the leader broker (hatched while that leader is down but "
                "not yet fenced, so writes stall; red while offline) and the lower strip is the ISR size "
                "(cross-hatched while a crashed broker is still in the ISR, which stalls acks=all writes). "
                "Triangles mark leadership changes (elections, or a partition going offline); crosses mark log "
                "truncations, where a replica dropped records it had (how acks=1 loses acknowledged writes).",
}


def figure_specs(source: Run | Sweep) -> list[FigureSpec]:
    """The figures that apply to a run or a sweep, in report order (not yet drawn)."""
    specs: list[FigureSpec] = []
    if isinstance(source, Sweep):
        specs.append(FigureSpec("loss-map", "Message loss by acks and replication factor", _CAPTIONS["loss-map"],
                                lambda: loss_map(source)))
        specs.append(FigureSpec("latency", "Produce latency by acks mode", _CAPTIONS["latency"],
                                lambda: latency_plot(source)))
        specs.append(FigureSpec("throughput-cost", "Throughput cost of durability", _CAPTIONS["throughput-cost"],
                                lambda: throughput_cost(source)))
        specs.append(FigureSpec("failover-distribution", "Failover time distribution",
                                _CAPTIONS["failover-distribution"], lambda: failover_distribution(source)))
        rid = representative_run(source)
        if rid is not None:
            run = source.run(rid)
            specs.append(FigureSpec(f"timeline-{rid}", f"Failover timeline of run {rid} ({run.label})",
                                    _CAPTIONS["timeline"], lambda: failover_timeline(run)))
    else:
        specs.append(FigureSpec("timeline", "Failover timeline", _CAPTIONS["timeline"],
                                lambda: failover_timeline(source)))
        specs.append(FigureSpec("latency", "Produce latency", _CAPTIONS["latency"], lambda: latency_plot(source)))
        specs.append(FigureSpec("failover-distribution", "Failover time distribution",
                                _CAPTIONS["failover-distribution"], lambda: failover_distribution(source)))
    return specs


def _draw_all(source: Run | Sweep) -> Iterator[tuple[FigureSpec, Figure | None, str | None]]:
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
        node = s
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
    out.insert(6, ("message loss rate (records_lost / records_sent)", "loss_rate",
                   (s.get("records_lost", 0) / sent) if sent else None))
    out.insert(7, ("acknowledged loss rate (acked_lost / records_sent)", "acked_loss_rate",
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
    """Groups with "mean (low-high)" cells; data-value/-low/-high hold the exact numbers."""
    head = "".join(f'<th data-key="{_e(k)}">{_e(label)}</th>' for k, label in keys + metrics)
    rows = []
    for _, r in df.iterrows():
        cells = [f'<td data-key="{_e(k)}" data-value="{_e(_raw(r[k]))}">{_e(_fmt(r[k]))}</td>' for k, _ in keys]
        for m, _ in metrics:
            mean, lo, hi = (r.get(f"{m}_{x}") for x in ("mean", "low", "high"))
            show = _display(m, mean)
            if lo is not None and not (isinstance(lo, float) and math.isnan(lo)) and not lo == mean == hi:
                show += f" ({_display(m, lo)} to {_display(m, hi)})"
            cells.append(f'<td data-key="{_e(m)}" data-value="{_e(_raw(mean))}" data-low="{_e(_raw(lo))}" '
                         f'data-high="{_e(_raw(hi))}">{_e(show)}</td>')
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
"""


def _figures_html(source: Run | Sweep) -> str:
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
    warnings = run.summary.get("warnings") or []
    if warnings:
        out.append("<h2>Warnings</h2><ul>" + "".join(f"<li>{_e(w)}</li>" for w in warnings) + "</ul>")
    return out


_SWEEP_RUN_COLUMNS = ["run_id", "seed", "status", "acks", "replication_factor", "min_insync_replicas", "fault_kind",
                      "records_sent", "records_lost", "acked_lost", "loss_rate", "acked_loss_rate", "throughput_rps",
                      "produce_latency_ms.p99", "failover_ms.max", "unavailable_ms.max"]


_GROUP_KEYS = [("min_insync_replicas", "min.insync.replicas"), ("fault_kind", "fault"), ("acks", "acks"),
               ("replication_factor", "RF"), ("n", "seeds (runs)")]
_GROUP_METRICS = [("loss_rate", "message loss rate"), ("acked_loss_rate", "acknowledged loss rate"),
                  ("throughput_rps", "throughput (acked rec/s)"), ("produce_latency_ms.p99", "p99 latency (ms)"),
                  ("failover_ms.max", "failover, max per run (ms)")]


def group_table(sweep: Sweep, confidence: float = 0.95) -> pd.DataFrame:
    """Per min.insync x fault kind x acks x RF: runs and mean/low/high over seeds of the headline metrics."""
    return aggregate(runs_table(sweep), GROUP_COLUMNS, [m for m, _ in _GROUP_METRICS], confidence)


def _sweep_sections(sweep: Sweep) -> list[str]:
    agg = group_table(sweep)
    metrics = [(m, label) for m, label in _GROUP_METRICS if f"{m}_mean" in agg]
    cols = [c for c in ["run_id", "seed", "status", *sweep.params] + _SWEEP_RUN_COLUMNS[3:] if c in sweep.table]
    cols = list(dict.fromkeys(cols))
    out = ["<h2>Summary by configuration</h2><p class='note'>Mean over seeds, and in brackets the 95% confidence "
           "interval of the mean (Student t over seeds). Loss rates are shares of records sent: message loss = "
           "records_lost / records_sent, acknowledged loss = acked_lost / records_sent.</p>"
           + '<div class="scroll">' + _ci_table(agg, "groups", _GROUP_KEYS, metrics) + "</div>",
           "<h2>Runs</h2>" + '<div class="scroll">' + _df_table(sweep.table[cols], "runs", row_key="run_id") + "</div>"]
    fo = failover_samples(sweep)
    if not fo.empty:
        out.append(f"<p class='note'>{len(fo)} failovers over {fo['run_id'].nunique()} runs.</p>")
    failed = sweep.table[sweep.table["status"] != "ok"]
    if len(failed):
        items = "".join(f"<li><b>{_e(r['run_id'])}</b>: {_e(r.get('error') or '')}</li>" for _, r in failed.iterrows())
        out.append(f"<h2>Failed runs</h2><ul>{items}</ul>")
    return out


def _scenario_html(source: Run | Sweep) -> str:
    if isinstance(source, Run):
        text = (source.path / "scenario.yaml").read_text()
        return f"<h2>Scenario (resolved)</h2><pre id='scenario'>{_e(text)}</pre>"
    out = f"<h2>Sweep</h2><pre id='sweep-spec'>{_e((source.path / 'sweep.yaml').read_text())}</pre>"
    ok = source.ok
    if len(ok):
        rid = str(ok["run_id"].iloc[0])
        text = (source.run_dir(rid) / "scenario.yaml").read_text()
        out += (f"<h2>Scenario (resolved, run {_e(rid)})</h2><p class='note'>The other runs differ only in the swept "
                f"keys ({_e(', '.join(source.params) or 'none')}) and the seed.</p><pre id='scenario'>{_e(text)}</pre>")
    return out


def write_report(results_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write one self-contained HTML page for a run or sweep directory; returns its path.

    Default `out`: ``<results_dir>/report.html``. Written to a temporary file and renamed.
    """
    source = load(results_dir)
    path = Path(out) if out is not None else Path(results_dir) / "report.html"
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory")
    if isinstance(source, Sweep):
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
           f"<h1>{_e(title)}</h1><p class='meta'>{_e(meta)}; generated {generated}</p>"
           + sections[0] + "<h2>Figures</h2>" + _figures_html(source) + "".join(sections[1:])
           + _scenario_html(source) + "</body></html>\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda p: p.write_text(doc, encoding="utf-8"))
    return path
