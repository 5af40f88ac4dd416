"""The figures: each function returns a matplotlib Figure and saves it when given a path.

Figures are built with the object-oriented API on an Agg canvas (no pyplot, no global figure
state, no display needed), so they render the same in tests, the CLI and notebooks.

Sweep figures list configurations as rows (a forest plot): one row per combination of every
parameter that varies (acks, replication factor, min.insync.replicas, fault kind, and any other
swept key), labelled in words ("acks=all, RF 3, min.insync 2"); only seeds, the replications,
are ever pooled. Points are means over seeds; whiskers the Student t 95% interval over seeds
cut at what the quantity can be (never below 0), marked with a "<" where it was cut; every
figure says n. Colours are the Okabe-Ito palette, safe for colour-blind readers.

- `loss_map`: message-loss and acknowledged-loss rate per configuration on a log scale, with
  "0 of N" written where nothing was lost;
- `throughput_cost`: offered, committed and acknowledged records per second, and the latency
  each configuration pays;
- `latency_plot`: record-weighted produce latency ECDF, one panel per acks mode and one line
  per configuration, and p50 / p99 / p99.9 per configuration;
- `failover_distribution`: ECDF of failover times (fault to election, fault to first
  acknowledged write) across runs and partitions, one line per configuration;
- `failover_timeline`: one run over time: offered, sent, acknowledged and failed records per
  second, lost records by arrival second, p50/p99 produce latency, under-replicated/offline
  partitions, broker downtime shaded, and one Gantt lane per partition showing its leader,
  ISR size, leader-down and offline periods.

Every plotted number comes from a table function in `analysis.tables` / `analysis.metrics`,
so a figure can be checked against its table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from analysis.load import Run, SweepResults, acks_order
from analysis.metrics import (down_intervals, fault_intervals, isr_intervals, leadership_intervals, min_insync_by_partition,
                               sent_per_second)
from analysis.tables import (
    CONFIG_ORDER, Source, _sort_value, _value_text, config_label, failover_samples, latency_ecdfs, latency_table,
    lost_per_second, lost_records, loss_table, offered_per_second, param_label, param_name, runs_table,
    throughput_table, varying_columns,
)

__all__ = [
    "NothingToPlot", "save_figure", "loss_map", "failover_timeline", "failover_distribution", "latency_plot",
    "throughput_cost", "ACKS_COLORS", "BROKER_COLORS", "PALETTE",
]

# Okabe & Ito (2008), "Color Universal Design": distinguishable with every common colour vision deficiency.
OKABE_ITO = {"black": "#000000", "orange": "#E69F00", "sky": "#56B4E9", "green": "#009E73", "yellow": "#F0E442",
             "blue": "#0072B2", "vermillion": "#D55E00", "purple": "#CC79A7", "grey": "#999999"}
PALETTE = [OKABE_ITO[c] for c in ("blue", "orange", "green", "purple", "sky", "vermillion", "black", "yellow")]
"""Line colours for configurations, in order (cycled with line styles past eight)."""
ACKS_COLORS = {"0": OKABE_ITO["purple"], "1": OKABE_ITO["orange"], "all": OKABE_ITO["blue"]}
"""One colour per acks mode, the same in every figure."""
BROKER_COLORS = [OKABE_ITO[c] for c in ("blue", "green", "purple", "sky", "yellow", "grey")] + ["#8c564b", "#bcbd22"]
"""Leader colours in the timeline lanes, by broker id (cycled)."""
OFFLINE_COLOR = OKABE_ITO["black"]
FAULT_COLOR = "#7f7f7f"
# what a fault that stops a broker serving did to it, for the label above the timeline's shading
_DOWN_WORDS = {"crash": "down", "power_loss": "powered off", "pause": "paused", "partition": "cut off",
               "controlled_shutdown": "shut down", "disk_loss": "down, disk lost"}
LOST_COLORS = {"acked": OKABE_ITO["vermillion"], "unknown": OKABE_ITO["purple"]}
ISR_COLORS = {"full": "#bfe3d6", "under": OKABE_ITO["yellow"], "below_min": OKABE_ITO["vermillion"]}
LINESTYLES = ["-", "--", ":", "-."]
DPI = 150
ROW_IN = 0.3  # inches per configuration row


class NothingToPlot(ValueError):
    """The source has no data for this figure (e.g. no failovers, no finished runs)."""


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: str | Path, formats: Sequence[str] = ("png", "svg")) -> list[Path]:
    """Save `fig`; a path with a suffix is saved as that format, one without as each of `formats`."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    targets = [p] if p.suffix else [p.with_suffix(f".{f}") for f in formats]
    for t in targets:
        fig.savefig(t, dpi=DPI, metadata={"Date": None} if t.suffix == ".svg" else None)
    return targets


def _done(fig: Figure, path: str | Path | None) -> Figure:
    if path is not None:
        save_figure(fig, path)
    return fig


def _acks_color(a: str) -> str:
    return ACKS_COLORS.get(str(a), "#7f7f7f")


def _title_name(source: Source) -> str:
    if isinstance(source, SweepResults):
        return f"sweep {source.name}"
    if isinstance(source, Run):
        return source.label
    return f"{len(source)} runs"


def _fmt_pct(v: float) -> str:
    """A percentage with enough digits to tell 0.0004% from 0: two significant digits."""
    if not np.isfinite(v):
        return "-"
    if v == 0:
        return "0%"
    if abs(v) >= 10:
        return f"{v:.0f}%"
    return f"{v:.2g}%" if abs(v) >= 1e-4 else f"{v:.1e}%"


def _fmt_share(x: float) -> str:
    """A share as a percentage that never rounds to 100% or 0% unless it is exactly that."""
    if not np.isfinite(x):
        return "-"
    if x in (0.0, 1.0):
        return f"{100 * x:.0f}%"
    for d in range(1, 7):
        text = f"{100 * x:.{d}f}"
        if 0 < float(text) < 100:
            return text + "%"
    return f"{100 * x:.7f}%"


def _fmt_axis_pct(v: float, _pos=None) -> str:
    if v <= 0:
        return "0%"
    if v >= 1:
        return f"{v:g}%"
    return f"{v:.10f}".rstrip("0") + "%"


def _fmt_count(v: float) -> str:
    """Exact below 100,000, else three significant digits with k/M/G."""
    if not np.isfinite(v):
        return "-"
    v = float(v)
    for div, unit in ((1e9, "G"), (1e6, "M"), (1e5, "k")):
        if abs(v) >= div:
            return f"{v / (div if unit != 'k' else 1e3):.3g}{unit if unit != 'k' else 'k'}"
    return f"{v:,.0f}"


def _fmt_rate(v: float) -> str:
    if not np.isfinite(v):
        return "-"
    if v >= 1e6:
        return f"{v / 1e6:.2f}M"
    if v >= 1e3:
        return f"{v / 1e3:.1f}k"
    return f"{v:.0f}"


def _fmt_ms(v: float) -> str:
    if not np.isfinite(v):
        return "-"
    if v >= 10_000:
        return f"{v / 1000:.1f} s"
    if v >= 10:
        return f"{v:,.0f} ms"
    return f"{v:.1f} ms"


def _ecdf_distance(x1, y1, x2, y2) -> float:
    """The largest vertical gap between two step ECDFs (the Kolmogorov-Smirnov distance)."""
    x1, y1, x2, y2 = (np.asarray(v, dtype=float) for v in (x1, y1, x2, y2))
    xs = np.union1d(x1, x2)

    def at(x, y):
        i = np.searchsorted(x, xs, side="right") - 1
        return np.where(i >= 0, y[np.clip(i, 0, len(y) - 1)], 0.0)
    return float(np.max(np.abs(at(x1, y1) - at(x2, y2)))) if len(xs) else 0.0


def _ms_formatter(values) -> Callable[[float], str]:
    """`_fmt_ms` with one unit for a whole column of values: seconds if any is 10 s or more, else ms
    (a column mixing "9,931 ms" and "10.1 s" reads as if the second were smaller)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if len(v) and v.max() >= 10_000:
        return lambda x: "-" if not np.isfinite(x) else f"{x / 1000:,.1f} s" if x >= 100 else f"{x / 1000:.3f} s"
    return _fmt_ms


def _n_text(table: pd.DataFrame, what: str = "row") -> str:
    ns = sorted(set(table["n"].astype(int)))
    if len(ns) == 1:
        return f"n = {ns[0]} seed{'s' if ns[0] != 1 else ''} per {what}"
    return f"n = {ns[0]}-{ns[-1]} seeds per {what} (n written where fewer than {ns[-1]})"


def _ci_text(table: pd.DataFrame, confidence: float) -> str:
    if int(table["n"].max()) <= 1:
        return "one seed per row: no interval"
    return (f"whiskers: {confidence:.0%} Student t interval over seeds, cut at 0 where it would go below "
            f"(marked <)")


# --- configuration rows (forest plots) ------------------------------------------------------------
def _display_order(by: Sequence[str]) -> list[str]:
    return [c for c in CONFIG_ORDER if c in by] + [c for c in by if c not in CONFIG_ORDER]


def _config_rows(table: pd.DataFrame, exclude: Sequence[str] = ()) -> tuple[pd.DataFrame, list[str], list[str]]:
    """`table` sorted for display (acks, RF, min.insync, fault, other swept keys) with a ``label``
    column, the columns the labels name (those that vary) and the constant ones (for the title)."""
    by = table.attrs.get("by") or [c for c in CONFIG_ORDER if c in table]
    order = [c for c in _display_order(by) if c not in exclude]
    label_cols = varying_columns(table, order)
    constant = [c for c in order if c not in label_cols and c in table]
    t = table.copy()
    keys = t.apply(lambda r: tuple(_sort_value(c, r[c]) for c in order), axis=1) if len(t) else []
    t["_key"] = list(keys)
    t = t.sort_values("_key", kind="stable").drop(columns="_key").reset_index(drop=True)
    cols = label_cols or order[:1]
    t["label"] = [config_label(r, cols) for _, r in t.iterrows()]
    return t, label_cols, constant


def _constant_text(table: pd.DataFrame, constant: Sequence[str]) -> str:
    return ", ".join(param_label(c, table[c].iloc[0]) for c in constant) if len(table) else ""


def _row_axes(ax, labels: list[str], groups: list) -> None:
    """Rows top to bottom, light separators where the first label column (acks) changes."""
    n = len(labels)
    ax.set_yticks(range(n), labels, fontsize=8)
    ax.set_ylim(n - 0.5, -0.5)
    for i in range(1, n):
        if groups[i] != groups[i - 1]:
            ax.axhline(i - 0.5, color="#bbbbbb", linewidth=0.6, zorder=0, gid="separator")


def _whiskers(ax, y, mean, low, high, color, left: float, *, gid: str) -> None:
    """Interval whiskers at rows y; a lower bound at 0 (cut) runs to the left edge with a '<'."""
    for yi, m, lo, hi in zip(y, mean, low, high):
        if not (np.isfinite(lo) and np.isfinite(hi)) or hi <= 0:
            continue
        start = lo if lo > 0 else left
        ax.plot([start, hi], [yi, yi], color=color, linewidth=1.4, solid_capstyle="butt", zorder=2,
                label=f"_ci:{gid}", gid=f"ci:{gid}")
        ax.plot([hi], [yi], marker="|", color=color, markersize=7, zorder=2, label="_cap")
        if lo <= 0:
            ax.plot([left], [yi], marker="<", color=color, markersize=5, zorder=2, clip_on=False,
                    label="_cut", gid=f"cut:{gid}")
        elif m > 0:
            ax.plot([lo], [yi], marker="|", color=color, markersize=7, zorder=2, label="_cap")


def _log_limits(values: np.ndarray, default=(1e-4, 1.0), top: float | None = None) -> tuple[float, float]:
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    if len(v) == 0:
        return default
    lo = 10 ** np.floor(np.log10(v.min()) - 0.3)
    hi = 10 ** np.ceil(np.log10(v.max()) + 0.05)
    if top is not None:
        hi = min(hi, top)
        lo = min(lo, hi / 100)
    if hi / lo < 100:
        lo = hi / 100
    return lo, hi


def _text_axis(ax) -> None:
    ax.set_axis_off()
    ax.set_xlim(0, 1)


# --- 1. loss map -----------------------------------------------------------------------------------
_LOSS_METRICS = [("loss_rate", "records_lost", "message loss", "records_lost / records_sent"),
                 ("acked_loss_rate", "acked_lost", "acknowledged loss", "acked_lost / records_sent")]


def loss_map(source: Source, path: str | Path | None = None, *, confidence: float = 0.95) -> Figure:
    """Message loss and acknowledged loss per configuration, on a log scale.

    One row per configuration (acks, replication factor, min.insync.replicas and any other
    swept parameter that varies); a pair of panels per fault kind: message loss
    (records_lost / records_sent: sent, gone, and the producer was never told, which is how
    acks=0 loses data) and acknowledged loss (acked_lost / records_sent). Points are means over
    seeds of each run's rate with bounded Student t intervals; the text beside each row gives
    the mean and the records lost of those sent over all seeds, and "0 of N" is written where
    nothing was lost (a log axis cannot show 0). The data is `loss_table(source)`.
    """
    table = loss_table(source, confidence)
    if table.empty:
        raise NothingToPlot("no finished runs: nothing to plot")
    kinds = sorted(table["fault_kind"].astype(str).unique().tolist(), key=lambda k: (k == "none", k))
    rows, label_cols, constant = _config_rows(table, exclude=["fault_kind"])
    labels = list(dict.fromkeys(rows["label"]))
    first = label_cols[0] if label_cols else None
    groups = [rows.loc[rows["label"] == lab, first].iloc[0] if first else 0 for lab in labels]
    y_of = {lab: i for i, lab in enumerate(labels)}
    lo, hi = _log_limits(np.r_[table["loss_rate_mean"], table["loss_rate_high"], table["acked_loss_rate_mean"],
                               table["acked_loss_rate_high"]] * 100.0, top=100.0)
    n_full = int(table["n"].max())
    ncol = 2 * len(kinds)
    fig = _figure(2.4 + 4.6 * ncol, 1.9 + ROW_IN * len(labels))
    axes = fig.subplots(1, 2 * ncol, sharey=True, width_ratios=[3.0, 1.6] * ncol, squeeze=False)[0]
    for c, kind in enumerate(kinds):
        sub = rows[rows["fault_kind"].astype(str) == kind]
        for k, (metric, count, title, formula) in enumerate(_LOSS_METRICS):
            ax, tax = axes[2 * (2 * c + k)], axes[2 * (2 * c + k) + 1]
            gid = f"loss:{metric}:fault={kind}"
            ax.set_gid(gid)
            tax.set_gid(f"text:{gid}")
            ax.set_xscale("log")
            ax.set_xlim(lo, hi)
            _row_axes(ax, labels, groups)
            _text_axis(tax)
            for _, r in sub.iterrows():
                y = y_of[r["label"]]
                mean = 100.0 * float(r[f"{metric}_mean"])
                sent = r.get("records_sent_total", np.nan)
                lost = r.get(f"{count}_total", np.nan)
                color = _acks_color(r["acks"])
                n = int(r["n"])
                n_note = f", n={n}" if n != n_full else ""
                if metric == "acked_loss_rate" and str(r["acks"]) == "0":
                    ax.text(lo * 1.15, y, "nothing acknowledged (acks=0)", va="center", ha="left", fontsize=7,
                            color="#555555", gid=f"noack:{metric}:{r['label']}")
                    continue
                if not np.isfinite(mean):
                    continue
                if mean == 0:
                    ax.text(lo * 1.15, y, f"0 of {_fmt_count(sent)} lost{n_note}", va="center", ha="left", fontsize=7,
                            color="#333333", gid=f"zero:{metric}:{r['label']}")
                    continue
                _whiskers(ax, [y], [mean], [100.0 * r[f"{metric}_low"]], [100.0 * r[f"{metric}_high"]], color, lo,
                          gid=f"{metric}:{r['label']}")
                ax.plot([mean], [y], marker="o", markersize=6, color=color, markeredgecolor="black",
                        markeredgewidth=0.5, linestyle="none", zorder=3, label="_point",
                        gid=f"point:{metric}:{r['label']}")
                tax.text(0.02, y, f"{_fmt_pct(mean)}  ({_fmt_count(lost)} of {_fmt_count(sent)}{n_note})",
                         va="center", ha="left", fontsize=7, gid=f"value:{metric}:{r['label']}")
            ax.xaxis.set_major_locator(LogLocator(base=10, numticks=12))
            ax.xaxis.set_major_formatter(FuncFormatter(_fmt_axis_pct))
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.tick_params(axis="x", labelsize=7)
            ax.grid(axis="x", alpha=0.3, which="major")
            where = f", fault: {kind}" if len(kinds) > 1 else ""
            ax.set_title(f"{title}{where}", fontsize=9)
            ax.set_xlabel(f"{formula} (log scale)", fontsize=8)
            tax.set_title("mean (lost of sent, all seeds)", fontsize=7, loc="left")
    handles = [Line2D([], [], marker="o", color=_acks_color(a), markeredgecolor="black", linestyle="none",
                      label=f"acks={a}") for a in sorted(table["acks"].astype(str).unique(), key=acks_order)]
    if int(table["n"].max()) > 1:
        handles += [Line2D([], [], color="#555555", linewidth=1.4, label=f"{confidence:.0%} t interval over seeds"),
                    Line2D([], [], marker="<", color="#555555", linestyle="none",
                           label="interval cut at 0 (runs on to 0)")]
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=8)
    shown = [c for c in constant if c != "fault_kind"] + (["fault_kind"] if len(kinds) == 1 else [])
    const = _constant_text(rows, shown)
    fig.suptitle(f"Records lost ({_title_name(source)}{'; ' + const if const else ''})\n"
                 f"points: mean over seeds of each run's share lost; {_n_text(table)}; {_ci_text(table, confidence)}",
                 fontsize=9)
    return _done(fig, path)


# --- 5. throughput cost -----------------------------------------------------------------------------
def throughput_cost(source: Source, path: str | Path | None = None, *, confidence: float = 0.95) -> Figure:
    """What durability costs: delivered load and produce latency per configuration.

    Left: records per second of producing, mean over seeds: the bar is what was committed (in
    the final log, whatever the client was told, so acks=0 counts what it wrote), the hollow
    diamond the offered load (records produced), the black dot what was acknowledged (none under
    acks=0); the text gives committed and acknowledged as shares of offered. Right: the latency
    each configuration pays, p50 and p99 produce latency (mean over seeds, p99 with its bounded
    t interval). The data is `throughput_table(source)`.
    """
    table = throughput_table(source, confidence)
    if table.empty:
        raise NothingToPlot("no finished runs: nothing to plot")
    rows, label_cols, constant = _config_rows(table)
    labels = rows["label"].tolist()
    first = label_cols[0] if label_cols else None
    groups = rows[first].tolist() if first else [0] * len(rows)
    n_full = int(table["n"].max())
    fig = _figure(15.0, 2.0 + ROW_IN * len(rows))
    ax, tax, lax, ltax = fig.subplots(1, 4, sharey=True, width_ratios=[3.0, 1.9, 2.4, 1.4])
    ax.set_gid("throughput:rps")
    lax.set_gid("throughput:latency")
    for a in (ax, lax):
        _row_axes(a, labels, groups)
    _text_axis(tax)
    _text_axis(ltax)
    y = np.arange(len(rows), dtype=float)
    committed = rows["committed_rps_mean"].to_numpy(dtype=float)
    offered = rows["offered_rps_mean"].to_numpy(dtype=float)
    acked = rows["throughput_rps_mean"].to_numpy(dtype=float)
    colors = [_acks_color(a) for a in rows["acks"]]
    ax.barh(y, np.nan_to_num(committed), height=0.6, color=colors, edgecolor="#333333", linewidth=0.5,
            gid="bars:committed_rps", label="committed (in the final log)")
    for i, (_, r) in enumerate(rows.iterrows()):
        _whiskers(ax, [y[i]], [committed[i]], [r["committed_rps_low"]], [r["committed_rps_high"]], "black", 0.0,
                  gid=f"committed_rps:{r['label']}")
    ax.plot(offered, y, linestyle="none", marker="D", markerfacecolor="white", markeredgecolor="black", markersize=6,
            zorder=4, label="offered (records produced)", gid="offered_rps")
    has_ack = rows["acks"].astype(str) != "0"
    ax.plot(acked[has_ack], y[has_ack], linestyle="none", marker="o", color="black", markersize=3.5, zorder=5,
            label="acknowledged", gid="acked_rps")
    ax.set_xlim(0, max(1.0, np.nanmax(np.r_[offered, committed, acked]) * 1.08))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _p: _fmt_rate(v)))
    ax.set_xlabel("records / s of producing (mean over seeds)", fontsize=8)
    ax.set_title("delivered load", fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    tax.set_title("committed, acknowledged\n(share of offered)", fontsize=7, loc="left")
    for i, (_, r) in enumerate(rows.iterrows()):
        share = committed[i] / offered[i] if offered[i] > 0 else np.nan
        ack = "no acks (acks=0)" if str(r["acks"]) == "0" else f"acked {_fmt_share(acked[i] / offered[i])}"
        n_note = f", n={int(r['n'])}" if int(r["n"]) != n_full else ""
        tax.text(0.02, y[i], f"{_fmt_rate(committed[i])}/s ({_fmt_share(share)}); {ack}{n_note}", va="center",
                 ha="left", fontsize=7, gid=f"value:throughput:{r['label']}")
    # latency cost
    p50 = rows["produce_latency_ms.p50_mean"].to_numpy(dtype=float)
    p99 = rows["produce_latency_ms.p99_mean"].to_numpy(dtype=float)
    lo, hi = _log_limits(np.r_[p50, p99, rows["produce_latency_ms.p99_high"].to_numpy(dtype=float)], default=(1, 1000))
    lax.set_xscale("log")
    lax.set_xlim(lo, hi)
    fmt = _ms_formatter(np.r_[p50, p99])  # one unit for the whole text column
    for i, (_, r) in enumerate(rows.iterrows()):
        if not np.isfinite(p99[i]):
            lax.text(lo * 1.15, y[i], "no acks, no latency", va="center", fontsize=7, color="#555555")
            ltax.text(0.02, y[i], "-", va="center", fontsize=7)
            continue
        c = _acks_color(r["acks"])
        _whiskers(lax, [y[i]], [p99[i]], [r["produce_latency_ms.p99_low"]], [r["produce_latency_ms.p99_high"]], c,
                  lo, gid=f"p99:{r['label']}")
        lax.plot([p50[i]], [y[i]], marker="o", markerfacecolor="white", markeredgecolor=c, markersize=6,
                 linestyle="none", zorder=3, gid=f"p50:{r['label']}")
        lax.plot([p99[i]], [y[i]], marker="o", color=c, markeredgecolor="black", markeredgewidth=0.5, markersize=6,
                 linestyle="none", zorder=3, gid=f"p99:{r['label']}")
        ltax.text(0.02, y[i], f"p50 {fmt(p50[i])}, p99 {fmt(p99[i])}", va="center", fontsize=7,
                  gid=f"value:latency:{r['label']}")
    lax.set_xlabel("produce latency (ms, log scale)", fontsize=8)
    lax.set_title("latency cost", fontsize=9)
    lax.grid(axis="x", alpha=0.3, which="both")
    handles = [Patch(facecolor=_acks_color(a), edgecolor="#333333", label=f"committed (in the final log), acks={a}")
               for a in sorted(rows["acks"].astype(str).unique(), key=acks_order)]
    handles += [Line2D([], [], marker="D", markerfacecolor="white", markeredgecolor="black", linestyle="none",
                       label="offered (records produced)"),
                Line2D([], [], marker="o", color="black", markersize=3.5, linestyle="none", label="acknowledged")]
    handles += [Line2D([], [], marker="o", markerfacecolor="white", markeredgecolor="#333333", linestyle="none",
                       label="p50 (mean over seeds)"),
                Line2D([], [], marker="o", color="#333333", linestyle="none", label="p99 (mean over seeds)")]
    if n_full > 1:
        handles += [Line2D([], [], color="#333333", label=f"{confidence:.0%} t interval over seeds"),
                    Line2D([], [], marker="<", color="#333333", linestyle="none", label="interval cut at 0")]
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 5), fontsize=8)
    const = _constant_text(rows, constant)
    fig.suptitle(f"Cost of durability: delivered load and latency ({_title_name(source)}"
                 f"{'; ' + const if const else ''})\n{_n_text(table)}; producers are open loop, so durability costs "
                 f"latency and lost or failed records rather than offered load", fontsize=9)
    return _done(fig, path)


# --- 4. latency -----------------------------------------------------------------------------------
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]


def _line_styles(keys: list[str]) -> dict[str, tuple[str, str, str]]:
    """(colour, line style, marker) per configuration key, the same in every panel of a figure.

    Colour, dash and marker all change from one line to the next, so lines that coincide (two
    configurations that behave alike) still show both."""
    return {k: (PALETTE[i % len(PALETTE)], LINESTYLES[i % len(LINESTYLES)], MARKERS[i % len(MARKERS)])
            for i, k in enumerate(keys)}


def latency_plot(source: Source, path: str | Path | None = None, *, confidence: float = 0.95,
                 max_points: int = 1500) -> Figure:
    """Produce latency per configuration: record-weighted ECDFs (top) and percentiles (bottom).

    Top: one panel per acks mode with acknowledgements, one line per configuration of the other
    parameters that vary (replication factor, min.insync.replicas, any swept key): the fraction
    of acknowledged records whose produce latency (arrival at the producer to acknowledgement)
    is at or below x, the records of the configuration's seeds pooled (`latency_ecdfs`); nothing
    that was swept is pooled. Bottom: per configuration, the mean over seeds of each run's p50
    (hollow circle), p99 (filled circle, with its bounded t interval over seeds) and p99.9
    (triangle) (`latency_table`). acks=0 has no acknowledgements and so no latency. For one run
    the words are a run's: its records, its percentiles; nothing is pooled or averaged over seeds.
    """
    one = isinstance(source, Run)
    ecdfs = latency_ecdfs(source, max_points=max_points)
    table = latency_table(source, confidence=confidence)
    if table.empty:
        raise NothingToPlot("no finished runs: nothing to plot")
    rows, label_cols, constant = _config_rows(table)
    rest_cols = [c for c in label_cols if c != "acks"]
    acks = sorted(rows["acks"].astype(str).unique().tolist(), key=acks_order)
    ecdfs = ecdfs.copy()
    whole = "this run" if isinstance(source, Run) else f"acks={acks[0]}" if len(acks) == 1 else "every run of the mode"
    ecdfs["rest"] = [config_label(r, rest_cols) if rest_cols else whole for _, r in ecdfs.iterrows()]
    ecdfs["key"] = [tuple(_sort_value(c, r[c]) for c in rest_cols) for _, r in ecdfs.iterrows()]
    rests = list(dict.fromkeys(ecdfs.sort_values("key", kind="stable")["rest"]))
    styles = _line_styles(rests)
    with_latency = [a for a in acks if (ecdfs.loc[ecdfs["acks"].astype(str) == a, "records"] > 0).any()]
    without = [a for a in acks if a not in with_latency]
    n_panels = max(1, len(with_latency))
    fig = _figure(max(9.0, 4.6 * n_panels + 1.0), 4.6 + 1.4 + ROW_IN * len(rows))
    top, bottom = fig.subfigures(2, 1, height_ratios=[4.4, 1.2 + ROW_IN * len(rows)])
    eaxes = top.subplots(1, n_panels, sharex=True, sharey=True, squeeze=False)[0]
    for ax, a in zip(eaxes, with_latency or [None]):
        ax.set_gid(f"latency:ecdf:acks={a}")
        if a is None:
            ax.text(0.5, 0.5, "no acknowledgements, so no latency", transform=ax.transAxes, ha="center", fontsize=8)
            continue
        panel = [g for _, g in ecdfs[ecdfs["acks"].astype(str) == a].iterrows() if len(g["x"])]
        for k, g in enumerate(panel):
            color, ls, marker = styles[g["rest"]]
            # markers at staggered heights per line: lines that coincide still show each other's marks,
            # and the legend names the line it coincides with (KS distance below 1%)
            same = [h["rest"] for h in panel[:k] if _ecdf_distance(g["x"], g["y"], h["x"], h["y"]) < 0.01]
            runs = int(g["runs"])
            count = (f"{_fmt_count(g['records'])} acknowledged records" if one else
                     f"n = {runs} seed{'s' * (runs != 1)}, {_fmt_count(g['records'])} records")
            levels = (np.arange(5) + (k + 0.5) / len(panel)) / 5.0
            marks = np.unique(np.minimum(np.searchsorted(np.asarray(g["y"], dtype=float), levels), len(g["y"]) - 1))
            ax.plot(g["x"], g["y"], drawstyle="steps-post", color=color, linestyle=ls, linewidth=1.5,
                    marker=marker, markevery=marks.tolist(), markersize=5, markerfacecolor="white",
                    markeredgecolor=color, markeredgewidth=1.2,
                    label=f"{g['rest']} ({count})" + (f"\n    coincides with {same[0]}" if same else ""),
                    gid=f"ecdf:acks={a}:{g['rest']}")
        for level in (0.5, 0.99):
            ax.axhline(level, color="grey", linewidth=0.6, linestyle=":", label="_guide")
            ax.annotate(f"y = {level:g} (p{level * 100:g})", (0.0, level), xycoords=("axes fraction", "data"),
                        xytext=(3, -2), textcoords="offset points", va="top", fontsize=7, color="grey")
        ax.set_xscale("log")
        ax.set_ylim(0, 1.02)
        ax.set_title(f"acks={a}", fontsize=9)
        ax.set_xlabel("produce latency: record arrival to acknowledgement (ms, log scale)", fontsize=8)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7, loc="lower right", title_fontsize=7,
                  title=None if one else "one line per configuration\n(marks staggered: coinciding lines show both)")
    eaxes[0].set_ylabel("fraction of acknowledged records", fontsize=8)
    note = f"; acks={', '.join(without)}: no acknowledgements, so no latency" if without else ""
    top.suptitle(("ECDF of produce latency of the run's acknowledged records" if one else
                  "ECDF of produce latency, the records of each configuration's seeds pooled") + note, fontsize=9)

    pax, ptax = bottom.subplots(1, 2, sharey=True, width_ratios=[3.0, 1.3])
    pax.set_gid("latency:percentiles")
    _row_axes(pax, rows["label"].tolist(), rows[label_cols[0]].tolist() if label_cols else [0] * len(rows))
    _text_axis(ptax)
    vals = rows[[f"produce_latency_ms.{k}_mean" for k in ("p50", "p99", "p999")]].to_numpy(dtype=float)
    lo, hi = _log_limits(np.r_[vals.ravel(), rows["produce_latency_ms.p99_high"].to_numpy(dtype=float)],
                         default=(1, 1000))
    pax.set_xscale("log")
    pax.set_xlim(lo, hi)
    fmt = _ms_formatter(vals.ravel())  # one unit for the whole text column
    for i, (_, r) in enumerate(rows.iterrows()):
        rest = config_label(r, rest_cols) if rest_cols else whole
        color = styles.get(rest, (PALETTE[0], "-", "o"))[0]
        p50, p99, p999 = vals[i]
        if not np.isfinite(p99):
            pax.text(lo * 1.15, i, "no acknowledgements, no latency", va="center", fontsize=7, color="#555555")
            continue
        _whiskers(pax, [i], [p99], [r["produce_latency_ms.p99_low"]], [r["produce_latency_ms.p99_high"]], color, lo,
                  gid=f"p99:{r['label']}")
        pax.plot([p50], [i], marker="o", markerfacecolor="white", markeredgecolor=color, markeredgewidth=1.2,
                 markersize=6, linestyle="none", zorder=3, gid=f"p50:{r['label']}")
        pax.plot([p99], [i], marker="o", color=color, markeredgecolor="black", markeredgewidth=0.5, markersize=6,
                 linestyle="none", zorder=3, gid=f"p99:{r['label']}")
        pax.plot([p999], [i], marker="^", color=color, markeredgecolor="black", markeredgewidth=0.5, markersize=6,
                 linestyle="none", zorder=3, gid=f"p999:{r['label']}")
        n = int(r["n"])
        ptax.text(0.02, i, f"p50 {fmt(p50)}, p99 {fmt(p99)}, p99.9 {fmt(p999)}" + ("" if one else f" (n={n})"),
                  va="center", fontsize=7, gid=f"value:latency:{r['label']}")
    pax.set_xlabel("produce latency (ms, log scale)", fontsize=8)
    pax.grid(axis="x", alpha=0.3, which="both")
    each = "" if one else " of each run, mean over seeds"
    handles = [Line2D([], [], marker="o", markerfacecolor="white", markeredgecolor="#333333", linestyle="none",
                      label=f"p50{each}"),
               Line2D([], [], marker="o", color="#333333", linestyle="none", label=f"p99{each}"),
               Line2D([], [], marker="^", color="#333333", linestyle="none", label=f"p99.9{each}")]
    if one:
        pass
    elif int(table["n"].max()) > 1:
        handles += [Line2D([], [], color="#333333", label=f"{confidence:.0%} t interval of the p99 mean over seeds"),
                    Line2D([], [], marker="<", color="#333333", linestyle="none", label="interval cut at 0")]
    else:
        handles += [Line2D([], [], color="none", label="one seed per row: no interval")]
    bottom.legend(handles=handles, loc="outside lower center", ncols=3, fontsize=7)
    bottom.suptitle("Percentiles of the run" if one else f"Percentiles per configuration; {_n_text(table)}",
                    fontsize=9)
    const = _constant_text(rows, constant)
    fig.suptitle(f"Produce latency ({_title_name(source)}{'; ' + const if const else ''})", fontsize=10)
    return _done(fig, path)


# --- 3. failover time distribution --------------------------------------------------------------------
def failover_distribution(source: Source, path: str | Path | None = None,
                          *, by: str | Sequence[str] | None = None) -> Figure:
    """ECDF of failover times over every (fault, partition) of every run, one line per configuration.

    Left: fault to new leader elected; right: fault to the first write acknowledged by the new
    leader (what producers experience). Lines are the configurations of `by` (default: every
    configuration column that varies except acks, see `default_failover_group`), labelled in
    words ("RF 3, min.insync 2") with n: failovers, runs and seeds. What is pooled over is said
    in the title. Failovers that never completed before the run ended keep a line below 1 and are
    counted in the legend. An outage that ended without an election (a pause or a cut shorter than
    the session timeout: the same leader answered again) is on the right only, and the left panel's
    legend counts it as "no election needed", not as never completed. An election that made the
    crashed broker leader again (RF 1, or no other replica eligible) is counted as "the same broker
    back as leader", not as a new leader. With few failovers per configuration (at most
    STRIP_MAX) the panels are a strip plot, one point per failover, since an ECDF of two equal
    values is a vertical line. The data is `failover_samples(source, by)`.
    """
    samples = failover_samples(source, by)
    if samples.empty:
        raise NothingToPlot("no failovers: no fault hit a partition leader")
    by_cols = samples.attrs.get("by", [])
    pooled = samples.attrs.get("pooled", [])
    order = samples.drop_duplicates("group").sort_values("group_rank")["group"].tolist()
    styles = _line_styles(order)
    # the crashed broker elected again (RF 1: no other replica): the same leader back, not a new one
    returned = (samples["new_leader"].to_numpy() == samples["broker"].to_numpy()) & samples["election_ms"].notna().to_numpy()
    table = runs_table(source)
    values = {c: sorted(table[c].unique().tolist(), key=lambda v: _sort_value(c, v)) for c in pooled if c in table}
    pooled_text = ("pooled over " + ", ".join(f"{param_name(c)} ({', '.join(map(_value_text, v))})"
                                              for c, v in values.items())) if values else ""
    what = ", ".join(param_name(c) for c in by_cols) if by_cols else "configuration"
    title = (f"Failover time distribution by {what} ({_title_name(source)})"
             + (f"\n{pooled_text}" if pooled_text else ""))
    election_title = ("fault to leader elected (a new one, or the same broker back)" if returned.any()
                      else "fault to new leader elected")
    if int(samples.groupby("group").size().max()) <= STRIP_MAX:
        return _failover_strip(samples, order, styles, returned, election_title, title, path)
    fig = _figure(11.0, 4.0 + 0.18 * len(order))
    axes = fig.subplots(1, 2, sharey=True)
    cols = [("election_ms", election_title),
            ("unavailable_ms", "fault to first write acknowledged (new leader, or the same one if not replaced)")]
    # outages that ended without an election have no election time, and needed none
    no_election = samples["election_ms"].isna().to_numpy() & samples["unavailable_ms"].notna().to_numpy()
    xmax = np.nanmax(samples[[c for c, _ in cols]].to_numpy(dtype=float), initial=0.0) / 1000.0
    for ax, (col, panel_title) in zip(axes, cols):
        ax.set_gid(f"failover:{col}")
        for g in order:
            sel = (samples["group"] == g).to_numpy()
            skipped = int((sel & no_election).sum()) if col == "election_ms" else 0
            v = samples.loc[sel & ~no_election if col == "election_ms" else sel, col].to_numpy(dtype=float)
            done = np.sort(v[~np.isnan(v)]) / 1000.0
            never = int(np.isnan(v).sum())
            runs = samples.loc[sel, "run_id"].nunique()
            seeds = samples.loc[sel, "seed"].nunique()
            label = (f"{g}: n = {len(v) + skipped} failovers in {runs} run{'s' * (runs != 1)} "
                     f"({seeds} seed{'s' * (seeds != 1)})")
            if never:
                label += f", {never} never completed"
            if skipped:
                label += f", {skipped} with no election needed"
            back = int((sel & returned).sum()) if col == "election_ms" else 0
            if back:
                label += f", {back} with the same broker back as leader"
            color, ls, marker = styles[g]
            if len(done) == 0:
                ax.plot([], [], label=label, color=color, linestyle=ls, marker=marker)
                continue
            # fraction of all failovers of the group (the ones that never completed keep it below 1)
            y = np.r_[0.0, np.arange(1, len(done) + 1) / len(v)]
            x = np.r_[done[0], done]
            ax.plot(x, y, drawstyle="steps-post", color=color, linestyle=ls, linewidth=1.5,
                    marker=marker if len(done) <= 40 else None, markersize=4, markerfacecolor="none",
                    label=label, gid=f"ecdf:{col}:{g}")
        ax.set_title(panel_title, fontsize=9)
        ax.set_xlabel("seconds after the fault")
        ax.set_ylim(0, 1.02)
        ax.set_xlim(0, max(1e-3, xmax * 1.1))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("fraction of failovers (partition x fault)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=1 if len(order) > 3 else len(order), fontsize=8)
    fig.suptitle(title, fontsize=10)
    return _done(fig, path)


STRIP_MAX = 5
"""Up to this many failovers per configuration, the failover distribution is a strip plot (one point each)."""


def _failover_strip(samples: pd.DataFrame, order: list[str], styles: dict, returned: np.ndarray,
                    election_title: str, title: str, path: str | Path | None) -> Figure:
    """The failover distribution as a strip plot: a row per configuration, a point per failover.

    Filled: a new leader; hollow: the same broker back as leader; equal times are stacked so each
    failover shows; a failover that never completed is a '>' at the right edge."""
    fig = _figure(11.0, 2.4 + 0.55 * len(order))
    axes = fig.subplots(1, 2, sharey=True)
    cols = [("election_ms", election_title),
            ("unavailable_ms", "fault to first write acknowledged\n(by the new leader, or the same one if not replaced)")]
    no_election = samples["election_ms"].isna().to_numpy() & samples["unavailable_ms"].notna().to_numpy()
    xmax = max(1e-3, np.nanmax(samples[[c for c, _ in cols]].to_numpy(dtype=float), initial=0.0) / 1000.0)
    right = xmax * 1.12
    row_labels = []
    for i, g in enumerate(order):
        sel = (samples["group"] == g).to_numpy()
        runs, seeds, n = samples.loc[sel, "run_id"].nunique(), samples.loc[sel, "seed"].nunique(), int(sel.sum())
        skipped = int((sel & no_election).sum())
        row_labels.append(f"{g}\nn = {n} failover{'s' * (n != 1)}, {runs} run{'s' * (runs != 1)} "
                          f"({seeds} seed{'s' * (seeds != 1)})"
                          + (f"\n{skipped} with no election needed" if skipped else ""))
    for ax, (col, panel_title) in zip(axes, cols):
        ax.set_gid(f"failover:{col}")
        for i, g in enumerate(order):
            sel = (samples["group"] == g).to_numpy()
            keep = sel & ~no_election if col == "election_ms" else sel
            v = samples[col].to_numpy(dtype=float)[keep] / 1000.0
            back = returned[keep]  # the same failover on both panels: the same broker back as leader
            x = np.where(np.isnan(v), right, v)
            # times closer than a marker's width stacked around the row, so two failovers at (nearly) one
            # instant are two points
            y = np.full(len(x), float(i))
            srt = np.argsort(x, kind="stable")
            clusters: list[list[int]] = []
            for j in srt:
                if clusters and x[j] - x[clusters[-1][-1]] < 0.02 * right:
                    clusters[-1].append(int(j))
                else:
                    clusters.append([int(j)])
            for idx in clusters:
                y[idx] = i + (np.arange(len(idx)) - (len(idx) - 1) / 2) * min(0.12, 0.7 / len(idx))
            color = styles[g][0]
            done = ~np.isnan(v)
            for mask, face, gid in ((done & ~back, color, "new"), (done & back, "white", "returned")):
                if mask.any():
                    ax.plot(x[mask], y[mask], linestyle="none", marker="o", markersize=7, markerfacecolor=face,
                            markeredgecolor=color, markeredgewidth=1.4, zorder=3, gid=f"points:{col}:{gid}:{g}")
            if (~done).any():
                ax.plot(x[~done], y[~done], linestyle="none", marker=">", markersize=7, color=color, zorder=3,
                        clip_on=False, gid=f"points:{col}:never:{g}")
        ax.set_title(panel_title, fontsize=9)
        ax.set_xlabel("seconds after the fault")
        ax.set_xlim(0, right * 1.02)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(range(len(order)), row_labels, fontsize=8)
    axes[0].set_ylim(len(order) - 0.5, -0.5)
    handles = [Line2D([], [], linestyle="none", marker="o", markersize=7, color="#333333",
                      label="a failover: a new leader elected")] if (~returned).any() else []
    if returned.any():
        handles.append(Line2D([], [], linestyle="none", marker="o", markersize=7, markerfacecolor="white",
                              markeredgecolor="#333333", label="the same broker back as leader (no other replica led)"))
    if samples[[c for c, _ in cols]].isna().to_numpy()[~no_election].any():
        handles.append(Line2D([], [], linestyle="none", marker=">", markersize=7, color="#333333",
                              label="never completed before the run ended"))
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=8,
               title="one point per failover (partition x fault); (nearly) equal times are stacked", title_fontsize=8)
    fig.suptitle(title, fontsize=10)
    return _done(fig, path)


# --- 2. failover timeline -------------------------------------------------------------------------------
def _lane_partitions(run: Run, lead: pd.DataFrame, isr: pd.DataFrame, max_partitions: int) -> list[tuple[int, str]]:
    names = dict(zip(lead["partition_index"], lead["partition"]))
    names.update(dict(zip(isr["partition_index"], isr["partition"])))
    order = sorted(names)
    if len(order) <= max_partitions:
        return [(i, names[i]) for i in order]
    changes = lead[lead["start_ms"] > 0].groupby("partition_index").size().reindex(order, fill_value=0) \
        + isr[isr["start_ms"] > 0].groupby("partition_index").size().reindex(order, fill_value=0)
    busy = sorted(order, key=lambda i: (-int(changes[i] > 0), i))[:max_partitions]
    return [(i, names[i]) for i in sorted(busy)]


def _fault_rows(faults) -> list[int]:
    """A sub-row of the fault lane for each fault (start order), so overlapping faults do not cover each other."""
    ends: list[float] = []
    rows = []
    for s, e in zip(faults["start_ms"], faults["end_ms"]):
        row = next((i for i, end in enumerate(ends) if end <= s), len(ends))
        if row == len(ends):
            ends.append(e)
        else:
            ends[row] = e
        rows.append(row)
    return rows


def failover_timeline(run: Run, path: str | Path | None = None, *, max_partitions: int = 24,
                      note: str | None = None, window: tuple[float, float] | None = None) -> Figure:
    """One run over time, so a reader sees when leadership moved, writes stalled and records were lost.

    Panels share the time axis (seconds):

    1. records per second: offered (produced: arrivals at the producers, a wide light band),
       sent (first put on the wire, dashed), acknowledged (solid) and failed (the client was told);
    2. records lost, by the second they arrived at the producer: acknowledged then lost
       (vermillion) and never acknowledged and lost (purple, the client was not told), with a
       rug of the lost batches' arrival times; "0 of N" when nothing was lost;
    3. p50 and p99 produce latency per second (log scale; gaps are seconds with no acknowledgement);
    4. under-replicated and offline partitions (time-weighted mean per second);
    5. one lane per partition (Gantt): the upper bar is coloured by the leader broker, hatched
       where that leader is down, paused or cut off but not yet fenced (its writes stall, or under
       acks=1 are acknowledged by a leader about to be replaced), black where the partition is
       offline; the lower strip is the ISR size (pale green: full, yellow: under-replicated,
       vermillion: below min.insync.replicas), cross-hatched while a crashed broker is still in
       the ISR (acks=all writes wait for it until the controller fences it). Triangles mark
       leadership changes, crosses log truncations (a replica dropping records it had; for
       acks=1 this is how acknowledged records are lost).

    Above the partition lanes, a fault lane: one bar per fault of any kind (fault_start to
    fault_end), labelled with its kind and target; solid if it took its target down, hatched for a
    degradation. Shaded grey: when a fault had a broker down, paused or cut off, labelled above the
    top panel with what happened to it ("broker 2 cut off", "broker 0 powered off"). Dashed line: producers stop and faults heal.
    Every legend sits right of its panel, outside the data. With more than `max_partitions`
    partitions, those whose leader or ISR changed come first. `note` is added to the title (a
    sweep report says why it chose this run). `window` (seconds, start and end) zooms the time axis
    onto a stretch of the run (`kafkasim explore` shows its counterexample's faults so; the axis label
    says so); a fault label that would cover another is left out, a downtime label moved up a row.
    """
    ts = run.timeseries
    lead = leadership_intervals(run)
    isr = isr_intervals(run)
    down = down_intervals(run)
    faults = fault_intervals(run)
    fault_rows = _fault_rows(faults)
    n_fault_rows = max(fault_rows, default=-1) + 1
    min_isr = min_insync_by_partition(run)
    lanes = _lane_partitions(run, lead, isr, max_partitions)
    ev = run.events
    truncations = ev[(ev["kind"] == "truncation") & (ev["removed"] != 0)]  # -1: not recorded, shown
    n_parts = len(set(lead["partition_index"]) | set(isr["partition_index"]))
    lane_h = 0.32
    n_rows = len(lanes) + (1 if n_fault_rows else 0)
    fig = _figure(13.0, 8.0 + lane_h * n_rows)
    ax_tp, ax_lost, ax_lat, ax_lvl, ax_ln = fig.subplots(
        5, 1, sharex=True, height_ratios=[1.0, 0.55, 0.9, 0.55, max(1.2, lane_h * n_rows)])
    t = ts["time_ms"].to_numpy(dtype=float) / 1000.0
    end_s = run.end_ms / 1000.0
    x_lo, x_hi = (0.0, end_s) if window is None else (max(0.0, float(window[0])), min(end_s, float(window[1])))
    span = max(x_hi - x_lo, 1e-9)
    outside = {"loc": "upper left", "bbox_to_anchor": (1.005, 1.0), "borderaxespad": 0, "fontsize": 7}

    ax_tp.set_gid("timeline:throughput")
    offered = offered_per_second(run).to_numpy(dtype=float)
    ax_tp.plot(t, offered, drawstyle="steps-post", color=OKABE_ITO["sky"], linewidth=5, alpha=0.45,
               solid_capstyle="butt", label="offered: records produced / s (arrivals)", gid="records_offered", zorder=1)
    ax_tp.plot(t, ts["records_acked"].to_numpy(dtype=float), drawstyle="steps-post", color=OKABE_ITO["blue"],
               linewidth=1.4, label="acknowledged / s", gid="records_acked", zorder=2)
    ax_tp.plot(t, sent_per_second(run).to_numpy(dtype=float), drawstyle="steps-post", color="black",
               linewidth=1.0, linestyle=(0, (3, 3)), label="sent / s (first send on the wire)", gid="records_sent",
               zorder=3)
    ax_tp.plot(t, ts["records_failed"].to_numpy(dtype=float), drawstyle="steps-post", color=OKABE_ITO["vermillion"],
               linewidth=1.2, label="failed / s (client told)", gid="records_failed", zorder=4)
    ax_tp.set_ylabel("records / s", fontsize=8)
    ax_tp.set_ylim(bottom=0)
    ax_tp.yaxis.set_major_formatter(FuncFormatter(lambda v, _p: _fmt_rate(v)))
    ax_tp.legend(**outside)

    ax_lost.set_gid("timeline:lost")
    lost = lost_per_second(run)
    records = lost_records(run)
    acked_lost = lost["acked_lost"].to_numpy(dtype=float)
    unknown_lost = lost["unknown_lost"].to_numpy(dtype=float)
    ax_lost.bar(t, acked_lost, width=1.0, align="edge", color=LOST_COLORS["acked"], edgecolor="white", linewidth=0.3,
                label="acknowledged, then lost", gid="lost:acked")
    ax_lost.bar(t, unknown_lost, width=1.0, align="edge", bottom=acked_lost, color=LOST_COLORS["unknown"],
                edgecolor="white", linewidth=0.3, hatch="//", label="never acknowledged, lost (client not told)",
                gid="lost:unknown")
    if len(records):
        for kind, color in LOST_COLORS.items():
            r = records[records["kind"] == kind]
            if len(r):
                ax_lost.plot(r["arrival_ms"] / 1000.0, np.full(len(r), 0.9), transform=ax_lost.get_xaxis_transform(),
                             marker="|", markersize=9, linestyle="none", color=color, label="_rug",
                             gid=f"rug:{kind}")
        ax_lost.set_ylim(0, max(1.0, np.nanmax(acked_lost + unknown_lost)) * 1.3)
        ax_lost.legend(handles=[Patch(facecolor=LOST_COLORS["acked"], label="acknowledged, then lost"),
                                Patch(facecolor=LOST_COLORS["unknown"], hatch="//",
                                      label="never acknowledged, lost\n(client not told)"),
                                Line2D([], [], marker="|", color="#333333", linestyle="none", markersize=9,
                                       label="a lost batch (arrival time)")], **outside)
    else:
        ax_lost.set_ylim(0, 1)
        ax_lost.text(0.5, 0.5, f"no record lost: 0 of {run.summary.get('records_sent', 0):,} sent",
                     transform=ax_lost.transAxes, ha="center", va="center", fontsize=8, color="#333333",
                     gid="lost:none")
    ax_lost.yaxis.set_major_locator(MaxNLocator(nbins=3, integer=True))
    ax_lost.set_ylabel("records lost\nby arrival s", fontsize=8)

    ax_lat.set_gid("timeline:latency")
    ax_lat.plot(t, ts["latency_p99_ms"].to_numpy(dtype=float), drawstyle="steps-post", color=OKABE_ITO["vermillion"],
                label="p99", gid="latency_p99_ms")
    ax_lat.plot(t, ts["latency_p50_ms"].to_numpy(dtype=float), drawstyle="steps-post", color=OKABE_ITO["blue"],
                label="p50", gid="latency_p50_ms")
    if np.isfinite(ts["latency_p99_ms"].to_numpy(dtype=float)).any():
        ax_lat.set_yscale("log")
    else:
        ax_lat.text(0.5, 0.5, "no acknowledgements" + (" (acks=0)" if run.facts["acks"] == "0" else ""),
                    transform=ax_lat.transAxes, ha="center", va="center", fontsize=8, color="#555555")
    ax_lat.set_ylabel("produce latency\n(ms, log)", fontsize=8)
    ax_lat.legend(title="of the records\nacknowledged\nin that second", title_fontsize=7, **outside)

    ax_lvl.set_gid("timeline:levels")
    ax_lvl.plot(t, ts["under_replicated_partitions"].to_numpy(dtype=float), drawstyle="steps-post",
                color=OKABE_ITO["orange"], label="under-replicated", gid="under_replicated_partitions")
    ax_lvl.plot(t, ts["offline_partitions"].to_numpy(dtype=float), drawstyle="steps-post", linestyle="--",
                color=OFFLINE_COLOR, label="offline (no leader)", gid="offline_partitions")
    ax_lvl.set_ylabel("partitions\n(mean in the s)", fontsize=8)
    ax_lvl.set_ylim(-0.05 * max(1, n_parts), max(1, n_parts) * 1.1)
    ax_lvl.yaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))
    ax_lvl.legend(**outside)

    ax_ln.set_gid("timeline:lanes")
    brokers_seen = set()
    for lane, (idx, name) in enumerate(lanes):
        y = len(lanes) - 1 - lane
        gl = lead[lead["partition_index"] == idx]
        colors, hatches = [], []
        for leader, state in zip(gl["leader"], gl["state"]):
            if state == "offline":
                colors.append(OFFLINE_COLOR)
            else:
                colors.append(BROKER_COLORS[int(leader) % len(BROKER_COLORS)])
                brokers_seen.add(int(leader))
            hatches.append("////" if state == "leader down" else "")
        spans = list(zip(gl["start_ms"] / 1000.0, (gl["end_ms"] - gl["start_ms"]) / 1000.0))
        ax_ln.broken_barh(spans, (y - 0.05, 0.45), facecolors=colors, edgecolor="white", linewidth=0.5,
                          label=f"_leader:{name}", gid=f"leader:{name}")
        for (x0, w), h in zip(spans, hatches):
            if h:  # the stale leader keeps its colour; white hatching marks that it is down
                ax_ln.broken_barh([(x0, w)], (y - 0.05, 0.45), facecolors="none", edgecolor="white", hatch=h,
                                  linewidth=0.0, label=f"_down:{name}", gid=f"down:{name}")
        gi = isr[isr["partition_index"] == idx]
        m = min_isr.get(name, 1)
        icolors = [ISR_COLORS["below_min"] if s < m else ISR_COLORS["under"] if s < rf else ISR_COLORS["full"]
                   for s, rf in zip(gi["isr_size"], gi["replication_factor"])]
        ispans = list(zip(gi["start_ms"] / 1000.0, (gi["end_ms"] - gi["start_ms"]) / 1000.0))
        ax_ln.broken_barh(ispans, (y - 0.4, 0.3), facecolors=icolors, edgecolor="white", linewidth=0.5,
                          label=f"_isr:{name}", gid=f"isr:{name}")
        stale = [sp for sp, n in zip(ispans, gi["members_down"]) if n > 0]
        if stale:  # a crashed broker still counted in the ISR: acks=all writes wait for it
            ax_ln.broken_barh(stale, (y - 0.4, 0.3), facecolors="none", edgecolor="#555555", hatch="xxx",
                              linewidth=0.0, label=f"_isr_down:{name}", gid=f"isr_down:{name}")
        for (x0, w), s in zip(ispans, gi["isr_size"]):
            shown_w = min(x0 + w, x_hi) - max(x0, x_lo)
            if shown_w >= 0.05 * span:  # in the middle of the part shown
                ax_ln.text(max(x0, x_lo) + shown_w / 2, y - 0.25, f"ISR {int(s)}", ha="center", va="center",
                           fontsize=6, clip_on=True, bbox={"boxstyle": "round,pad=0.1", "facecolor": "white", "edgecolor": "none",
                                 "alpha": 0.85})
        trunc = truncations[truncations["partition_index"] == idx]
        if len(trunc):
            ax_ln.plot(trunc["time_ms"] / 1000.0, np.full(len(trunc), y + 0.175), marker="X", color="black",
                       markeredgecolor="white", markersize=7, linestyle="none", label="_truncation",
                       gid=f"truncation:{name}")
        for x0 in gl.loc[gl["start_ms"] > 0, "start_ms"].drop_duplicates() / 1000.0:
            if not ((gl["start_ms"] / 1000.0 == x0) & (gl["state"] == "leader down")).any():
                ax_ln.plot([x0], [y + 0.45], marker="v", color="black", markersize=4, linestyle="none",
                           label="_election", gid=f"election:{name}")
    ticks, labels = list(range(len(lanes))), [name for _, name in reversed(lanes)]
    fault_keys: list[tuple[str, str]] = []  # (tag, label) of the faults whose bar is too narrow for the label
    if n_fault_rows:  # the fault lane, above the partitions: every fault of any kind, start to end
        y0, h = len(lanes) - 0.4, 0.9 / n_fault_rows
        lane_labels: list[tuple[float, float, int]] = []  # (left, right, row) of the fault labels, in points
        for (_, f), row in zip(faults.iterrows(), fault_rows):
            x0, w = f["start_ms"] / 1000.0, (f["end_ms"] - f["start_ms"]) / 1000.0
            yb = y0 + row * h + 0.05 * h
            ax_ln.broken_barh([(x0, w)], (yb, 0.9 * h), facecolors=FAULT_COLOR if f["takes_down"] else "none",
                              edgecolor=FAULT_COLOR, hatch="" if f["takes_down"] else "////", alpha=0.8,
                              linewidth=0.8, label="_fault", gid=f"fault:{f['fault_source']}.{f['fault_index']}")
            where = f" (broker {int(f['broker'])})" if f["broker"] >= 0 and f"broker {int(f['broker'])}" != f["target"] else ""
            text = f"{f['fault']}: {f['target']}{where}"
            shown_w = min(x0 + w, x_hi) - max(x0, x_lo)
            centre = max(x0, x_lo) + shown_w / 2
            # about 3.3 pt a character at 6 pt, on an axis ~750 pt wide: kept inside the axis, and left out
            # where it would cover another label of its row (the labels above the top panel name every
            # fault that took a broker down)
            half = 1.65 * len(text) / 750.0 * span
            centre = min(max(centre, x_lo + half), x_hi - half)
            left = (centre - x_lo) / span * 750.0 - 1.65 * len(text)
            extent = (left, left + 3.3 * len(text))
            free = all(r != row or extent[1] < a or extent[0] > b for a, b, r in lane_labels)
            fits = shown_w / span * 750.0 >= 3.3 * len(text)
            if shown_w > 0 and fits and free:
                lane_labels.append((*extent, row))
                ax_ln.text(centre, yb + 0.45 * h, text, ha="center", va="center", fontsize=6,
                           clip_on=True, gid=f"label:fault:{f['fault_source']}.{f['fault_index']}",
                           bbox={"boxstyle": "round,pad=0.1", "facecolor": "white", "edgecolor": "none",
                                 "alpha": 0.85})
            elif shown_w > 0:
                # a label wider than its bar would run across the next bar (and crowd out that bar's own
                # label): a numbered tag on the bar instead, its text in the legend
                tag = str(len(fault_keys) + 1)
                fault_keys.append((tag, text))
                ax_ln.text(max(x0, x_lo) + shown_w / 2, yb + 0.45 * h, tag, ha="center", va="center", fontsize=6,
                           clip_on=True, gid=f"tag:fault:{f['fault_source']}.{f['fault_index']}",
                           bbox={"boxstyle": "round,pad=0.1", "facecolor": "white", "edgecolor": "none",
                                 "alpha": 0.85})
        ticks.append(len(lanes) + 0.05)
        labels.append("faults")
    ax_ln.set_yticks(ticks, labels, fontsize=7)
    ax_ln.set_ylim(-0.6, len(lanes) - 0.4 + (1.0 if n_fault_rows else 0.0))
    ax_ln.set_xlabel("simulated time (s)" if window is None else
                     f"simulated time (s), zoomed onto {x_lo:.1f}-{x_hi:.1f} s of the run's 0-{end_s:.0f} s")
    shown = f"{len(lanes)} of {n_parts} partitions (changed ones first)" if len(lanes) < n_parts else "partitions"
    ax_ln.set_ylabel(f"{shown}:\nleader (upper), ISR (lower)" + ("; faults on top" if n_fault_rows else ""),
                     fontsize=8)

    for ax in (ax_tp, ax_lost, ax_lat, ax_lvl, ax_ln):
        for _, d in down.iterrows():
            ax.axvspan(d["start_ms"] / 1000.0, d["end_ms"] / 1000.0, color=FAULT_COLOR, alpha=0.18, linewidth=0,
                       zorder=0, gid=f"down:broker{int(d['broker'])}")
        ax.axvline(run.produce_end_ms / 1000.0, color="grey", linestyle="--", linewidth=0.8)
        ax.set_xlim(x_lo, x_hi)
    ax_ln.xaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 2.5, 5, 10]))
    # labels above the top panel, outside the data: one row for downtime, one for the end of producing
    # one label per window: brokers that went down together (a rack, a power cut) share it
    placed: list[tuple[float, float, int]] = []  # (left, right, row) of the labels so far, in points
    for (start, end, fault), g in down.groupby(["start_ms", "end_ms", "fault"], sort=False):
        ids = sorted(int(b) for b in g["broker"])
        who = f"broker {ids[0]}" if len(ids) == 1 else "brokers " + ", ".join(map(str, ids))
        text = f"{who} {_DOWN_WORDS.get(fault, 'down')}"
        lo_s, hi_s = max(start / 1000.0, x_lo), min(end / 1000.0, x_hi)
        if hi_s < lo_s:
            continue  # outside the window shown
        centre = (lo_s + hi_s) / 2
        left = (centre - x_lo) / span * 750.0 - 1.9 * len(text)
        right = left + 3.8 * len(text)
        # the lowest row (2 pt, then 11 pt, ...) where it covers no label already placed
        row = next(r for r in range(len(placed) + 1)
                   if all(rr != r or right < pl or left > pr for pl, pr, rr in placed))
        placed.append((left, right, row))
        ax_tp.annotate(text, (centre, 1.0),
                       xycoords=("data", "axes fraction"), xytext=(0, 2 + 9 * row), textcoords="offset points",
                       ha="center", va="bottom", fontsize=7, color="#333333",
                       gid="label:down:" + ",".join(map(str, ids)))
    rows_used = 1 + max((r for _, _, r in placed), default=0)
    if x_lo <= run.produce_end_ms / 1000.0 <= x_hi:
        ax_tp.annotate("producers stop, faults heal", (run.produce_end_ms / 1000.0, 1.0),
                       xycoords=("data", "axes fraction"), xytext=(0, 3 + 9 * rows_used), textcoords="offset points",
                       ha="center", va="bottom", fontsize=7, color="grey", gid="label:produce_end")

    handles = [Patch(facecolor=BROKER_COLORS[b % len(BROKER_COLORS)], label=f"leader: broker {b}")
               for b in sorted(brokers_seen)]
    handles += [Patch(facecolor="#7f7f7f", edgecolor="white", hatch="////",
                      label="leader down or cut off,\nnot yet fenced"),
                Patch(facecolor=OFFLINE_COLOR, label="offline (no leader)"),
                Patch(facecolor=ISR_COLORS["full"], label="ISR full"),
                Patch(facecolor=ISR_COLORS["under"], label="ISR < replication factor"),
                Patch(facecolor=ISR_COLORS["below_min"], label="ISR < min.insync.replicas"),
                Patch(facecolor=ISR_COLORS["full"], edgecolor="#555555", hatch="xxx",
                      label="ISR member down or cut off,\nnot yet removed (acks=all waits)"),
                Patch(facecolor=FAULT_COLOR, alpha=0.3, label="broker down, paused or cut off\n(fault start to end)"),
                Patch(facecolor=FAULT_COLOR, alpha=0.8, label="fault lane: a fault that\ntakes its target down"),
                Patch(facecolor="none", edgecolor=FAULT_COLOR, hatch="////", label="fault lane: a degradation")]
    handles += [Line2D([], [], marker="v", color="black", linestyle="none", markersize=5, label="leadership change"),
                Line2D([], [], marker="X", color="black", markeredgecolor="white", linestyle="none", markersize=7,
                       label="a replica truncated its log\n(records it had are removed)")]
    handles += [Line2D([], [], linestyle="none", label=f"fault {tag}: {text}", gid=f"key:fault:{tag}")
                for tag, text in fault_keys]
    ax_ln.legend(handles=handles, **outside)
    facts = run.facts
    s = run.summary
    sent = s.get("records_sent", 0)
    if s.get("records_lost", 0) or s.get("acked_lost", 0):
        loss = f"lost {s.get('records_lost', 0):,} of {sent:,} records sent ({s.get('acked_lost', 0):,} acknowledged)"
    else:
        loss = f"lost 0 of {sent:,} records sent"
    fig.suptitle(f"Failover timeline: {run.label} (acks={facts['acks']}, RF {facts['replication_factor']}, "
                 f"min.insync {facts['min_insync_replicas']}): {loss}" + (f"\n{note}" if note else ""), fontsize=10)
    return _done(fig, path)
