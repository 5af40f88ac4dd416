"""The figures: each function returns a matplotlib Figure and saves it when given a path.

Figures are built with the object-oriented API on an Agg canvas (no pyplot, no global figure
state, no display needed), so they render the same in tests, the CLI and notebooks.

- `loss_map`: message-loss and acknowledged-loss rate by acks x replication factor, faceted
  by min.insync.replicas and fault kind, mean over seeds with confidence intervals;
- `failover_timeline`: one run over time: throughput, p50/p99 produce latency,
  under-replicated/offline partitions, broker downtime shaded, and one Gantt lane per
  partition showing its leader, ISR size, leader-down and offline periods;
- `failover_distribution`: ECDF of failover times (fault to election, fault to first
  acknowledged write) across runs and partitions, by scenario, partition count or a swept value;
- `latency_plot`: record-weighted produce latency ECDF by acks (and RF), and p99 by
  acks x RF with confidence intervals;
- `throughput_cost`: acknowledged throughput by acks x RF with confidence intervals.

Every plotted number comes from a table function in `analysis.tables` / `analysis.metrics`,
so a figure can be checked against its table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from .load import Run, Sweep, acks_order
from .metrics import down_intervals, isr_intervals, leadership_intervals, min_insync_by_partition, sent_per_second
from .tables import (
    Source, failover_samples, latency_ecdfs, latency_table, loss_table, runs_table, throughput_table,
)

__all__ = [
    "NothingToPlot", "save_figure", "loss_map", "failover_timeline", "failover_distribution", "latency_plot",
    "throughput_cost", "ACKS_COLORS", "BROKER_COLORS",
]

ACKS_COLORS = {"0": "#d62728", "1": "#ff7f0e", "all": "#1f77b4"}
"""One colour per acks mode, the same in every figure."""
BROKER_COLORS = ["#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"]
"""Leader colours in the timeline lanes, by broker id (cycled)."""
RF_COLORS = ["#9ecae1", "#6baed6", "#3182bd", "#08519c", "#08306b"]
OFFLINE_COLOR = "#d62728"
FAULT_COLOR = "#d62728"
ISR_COLORS = {"full": "#d9d9d9", "under": "#fdae61", "below_min": "#d7191c"}
DPI = 150


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
    if isinstance(source, Sweep):
        return f"sweep {source.name}"
    if isinstance(source, Run):
        return source.label
    return f"{len(source)} runs"


def _fmt_pct(v: float) -> str:
    if not np.isfinite(v):
        return "-"
    if v == 0:
        return "0"
    if abs(v) >= 10:
        return f"{v:.0f}%"
    if abs(v) >= 0.1:
        return f"{v:.2g}%" if abs(v) < 1 else f"{v:.1f}%"
    return f"{v:.1g}%"


def _fmt_rate(v: float) -> str:
    if not np.isfinite(v):
        return "-"
    if v >= 1e6:
        return f"{v / 1e6:.2f}M"
    if v >= 1e3:
        return f"{v / 1e3:.1f}k"
    return f"{v:.0f}"


def _ci_note(table: pd.DataFrame, confidence: float) -> str:
    ns = sorted(set(table["n"].astype(int)))
    n = f"n = {ns[0]} seed{'s' if ns[0] != 1 else ''} per bar" if len(ns) == 1 else \
        f"n = {ns[0]}-{ns[-1]} seeds per bar (marked where fewer than {ns[-1]})"
    ci = f"whiskers: {confidence:.0%} CI of the mean (Student t over seeds)" if ns[-1] > 1 else \
        "one seed: no confidence interval"
    return f"bars: mean over seeds; {n}\n{ci}"


def _present_rfs(sub: pd.DataFrame, rfs: list) -> list:
    """The replication factors that have data in this facet (bars are dodged among these only)."""
    have = set(sub["replication_factor"].tolist())
    return [rf for rf in rfs if rf in have]


def _dodge(rf, present: list, width: float) -> float:
    return (present.index(rf) - (len(present) - 1) / 2) * width


def _rf_color(rf, rfs: list) -> str:
    """The same colour for a replication factor in every facet: darker for more replicas."""
    j = rfs.index(rf)
    return RF_COLORS[min(j + max(0, len(RF_COLORS) - len(rfs) - 1), len(RF_COLORS) - 1)]


def _figure_legend(fig: Figure, axes, **kw) -> None:
    """One legend for all facets: every distinct visible label, in first-seen order."""
    seen: dict[str, object] = {}
    for ax in np.ravel(axes):
        for h, label in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(label, h)
    if seen:
        fig.legend(list(seen.values()), list(seen), loc="outside lower center", ncols=len(seen), fontsize=8, **kw)


def _grouped_bars(ax, sub: pd.DataFrame, metric: str, acks: list[str], rfs: list, *, scale: float = 1.0,
                  fmt=_fmt_pct, n_full: int | None = None, zero_note: dict[str, str] | None = None) -> None:
    """Bars of `<metric>_mean` at x = acks, one bar per replication factor, with CI whiskers."""
    present = _present_rfs(sub, rfs)
    width = 0.8 / max(len(present), 2)
    x_of = {a: i for i, a in enumerate(acks)}
    for rf in present:
        s = sub[sub["replication_factor"] == rf]
        s = s.set_index("acks").reindex([a for a in acks if a in set(s["acks"])])
        x = np.array([x_of[a] for a in s.index], dtype=float) + _dodge(rf, present, width)
        mean = s[f"{metric}_mean"].to_numpy(dtype=float) * scale
        low = s[f"{metric}_low"].to_numpy(dtype=float) * scale
        high = s[f"{metric}_high"].to_numpy(dtype=float) * scale
        color = _rf_color(rf, rfs)
        ax.bar(x, np.nan_to_num(mean), width * 0.92, color=color, edgecolor="#333333", linewidth=0.5,
               label=f"RF={rf}", gid=f"bars:{metric}:RF={rf}")
        has_ci = ~np.isnan(low)
        if has_ci.any():
            ax.errorbar(x[has_ci], mean[has_ci], yerr=[mean[has_ci] - low[has_ci], high[has_ci] - mean[has_ci]],
                        fmt="none", ecolor="black", elinewidth=1, capsize=3, label=f"_ci:{metric}:RF={rf}",
                        gid=f"ci:{metric}:RF={rf}")
        top = np.where(np.isnan(high), mean, np.fmax(high, mean))
        for xi, yi, ti, a, n in zip(x, mean, top, s.index, s["n"]):
            if zero_note and a in zero_note and yi == 0:
                continue  # one note for the whole acks group, below
            text = fmt(yi)
            if n_full is not None and int(n) != n_full:
                text += f"\nn={int(n)}"
            ax.annotate(text, (xi, np.nan_to_num(ti)), xytext=(0, 2), textcoords="offset points",
                        ha="center", va="bottom", fontsize=7)
    for a, note in (zero_note or {}).items():
        g = sub[sub["acks"] == a]
        if a in x_of and len(g) and (g[f"{metric}_mean"].fillna(0) == 0).all():
            ax.annotate(note, (x_of[a], 0), xytext=(0, 3), textcoords="offset points", ha="center", va="bottom",
                        fontsize=7, color="#555555")
    ax.set_xticks(range(len(acks)), [f"acks={a}" for a in acks])
    ax.set_xlim(-0.6, len(acks) - 0.4)
    ax.margins(y=0.18)
    ax.set_ylim(bottom=0)
    ax.grid(axis="y", alpha=0.3)


def _facets(table: pd.DataFrame) -> tuple[list, list, list[str], list]:
    mins = sorted(table["min_insync_replicas"].dropna().unique().tolist())
    kinds = sorted(table["fault_kind"].astype(str).unique().tolist(), key=lambda k: (k == "none", k))
    acks = sorted(table["acks"].astype(str).unique().tolist(), key=acks_order)
    rfs = sorted(table["replication_factor"].dropna().unique().tolist())
    return mins, kinds, acks, rfs


def _same_ylim(axes, table: pd.DataFrame, metric: str, scale: float) -> None:
    vals = np.r_[table[f"{metric}_mean"].to_numpy(dtype=float), table[f"{metric}_high"].to_numpy(dtype=float)]
    top = np.nanmax(vals) * scale if np.isfinite(vals).any() else 0.0
    top = top if top > 0 else 1.0
    for ax in axes:
        ax.set_ylim(0, top * 1.25)


# --- 1. loss map -----------------------------------------------------------------------------------
def loss_map(source: Source, path: str | Path | None = None, *, confidence: float = 0.95) -> Figure:
    """Message loss and acknowledged loss by acks x replication factor.

    Columns come in pairs per fault kind: message loss (records_lost / records_sent: every
    record sent that is gone and whose producer was never told, so acks=0 shows its loss) and
    acknowledged loss (acked_lost / records_sent). Rows are min.insync.replicas values. Bars are
    means over seeds with Student t confidence intervals; the data is `loss_table(source)`.
    """
    table = loss_table(source, confidence)
    if table.empty:
        raise NothingToPlot("no finished runs: nothing to plot")
    mins, kinds, acks, rfs = _facets(table)
    n_full = int(table["n"].max())
    metrics = [("loss_rate", "message loss", "records_lost / records_sent (%)"),
               ("acked_loss_rate", "acknowledged loss", "acked_lost / records_sent (%)")]
    fig = _figure(max(7.0, 3.7 * 2 * len(kinds)), 1.4 + 3.1 * len(mins))
    axes = fig.subplots(len(mins), 2 * len(kinds), squeeze=False)
    per_metric: dict[str, list] = {"loss_rate": [], "acked_loss_rate": []}
    for r, m in enumerate(mins):
        for c, kind in enumerate(kinds):
            sub = table[(table["min_insync_replicas"] == m) & (table["fault_kind"].astype(str) == kind)]
            for k, (metric, title, ylabel) in enumerate(metrics):
                ax = axes[r][2 * c + k]
                ax.set_gid(f"loss:{metric}:min.insync={m}:fault={kind}")
                zero = {"0": "0: nothing\nacknowledged"} if metric == "acked_loss_rate" else None
                _grouped_bars(ax, sub, metric, acks, rfs, scale=100.0, n_full=n_full, zero_note=zero)
                ax.set_title(f"{title}\nmin.insync.replicas={m:g}, fault: {kind}", fontsize=9)
                ax.set_ylabel(ylabel, fontsize=8)
                per_metric[metric].append(ax)
    for metric, axs in per_metric.items():
        _same_ylim(axs, table, metric, 100.0)
    _figure_legend(fig, axes, title="replication factor", title_fontsize=8)
    fig.suptitle(f"Message loss by acks and replication factor ({_title_name(source)})\n"
                 f"{_ci_note(table, confidence)}", fontsize=9)
    return _done(fig, path)


# --- 5. throughput cost -----------------------------------------------------------------------------
def throughput_cost(source: Source, path: str | Path | None = None, *, confidence: float = 0.95) -> Figure:
    """Acknowledged throughput (records acked per second of producing) by acks x replication factor.

    Bars are means over seeds with Student t confidence intervals, hollow diamonds the rate the
    producers sent at (the offered load); facets as in `loss_map`. With open-loop producers an
    acks mode costs throughput only where records fail or go unacknowledged (acks=0 acknowledges
    nothing). The data is `throughput_table(source)`.
    """
    table = throughput_table(source, confidence)
    if table.empty:
        raise NothingToPlot("no finished runs: nothing to plot")
    mins, kinds, acks, rfs = _facets(table)
    n_full = int(table["n"].max())
    fig = _figure(max(6.5, 4.6 * len(kinds)), 1.4 + 3.1 * len(mins))
    axes = fig.subplots(len(mins), len(kinds), squeeze=False)
    for r, m in enumerate(mins):
        for c, kind in enumerate(kinds):
            ax = axes[r][c]
            ax.set_gid(f"throughput:min.insync={m}:fault={kind}")
            sub = table[(table["min_insync_replicas"] == m) & (table["fault_kind"].astype(str) == kind)]
            _grouped_bars(ax, sub, "throughput_rps", acks, rfs, fmt=_fmt_rate, n_full=n_full,
                          zero_note={"0": "0: nothing\nacknowledged"})
            if "sent_rps_mean" in sub:
                present = _present_rfs(sub, rfs)
                width = 0.8 / max(len(present), 2)
                for j, rf in enumerate(present):
                    s = sub[sub["replication_factor"] == rf]
                    x = np.array([acks.index(a) for a in s["acks"]], dtype=float) + _dodge(rf, present, width)
                    ax.plot(x, s["sent_rps_mean"].to_numpy(dtype=float), linestyle="none", marker="D",
                            markerfacecolor="none", markeredgecolor="black", markersize=5,
                            label="records sent/s (offered)" if j == 0 else f"_sent:RF={rf}",
                            gid=f"sent:RF={rf}")
            ax.set_title(f"min.insync.replicas={m:g}, fault: {kind}", fontsize=9)
            ax.set_ylabel("acknowledged records / s", fontsize=8)
    _same_ylim(axes.ravel(), table, "throughput_rps", 1.0)
    if "sent_rps_mean" in table:
        top = max(np.nanmax(table["sent_rps_mean"].to_numpy(dtype=float)), axes[0][0].get_ylim()[1] / 1.25)
        for ax in axes.ravel():
            ax.set_ylim(0, top * 1.25)
    _figure_legend(fig, axes)
    fig.suptitle(f"Throughput cost of durability ({_title_name(source)})\n{_ci_note(table, confidence)}",
                 fontsize=9)
    return _done(fig, path)


# --- 4. latency -----------------------------------------------------------------------------------
_RF_STYLES = ["-", "--", ":", "-."]


def latency_plot(source: Source, path: str | Path | None = None, *, confidence: float = 0.95,
                 max_points: int = 1500) -> Figure:
    """Produce latency by acks mode: record-weighted ECDF (left) and percentiles (right).

    Left: for each acks x RF group, the fraction of acknowledged records whose produce latency
    (arrival at the producer to acknowledgement) is at or below x, pooling the group's runs
    (`latency_ecdfs`). Right: p99 per run averaged over seeds (dots, with CI whiskers), with the
    mean p50 (bar markers) and p99.9 (triangles) (`latency_table`). acks=0 has no
    acknowledgements and so no latency.
    """
    ecdfs = latency_ecdfs(source, max_points=max_points)
    table = latency_table(source, confidence=confidence)
    if table.empty:
        raise NothingToPlot("no finished runs: nothing to plot")
    acks = sorted(table["acks"].astype(str).unique().tolist(), key=acks_order)
    rfs = sorted(table["replication_factor"].unique().tolist())
    fig = _figure(12.0, 4.6)
    ax_e, ax_p = fig.subplots(1, 2, width_ratios=[1.35, 1.0])
    ax_e.set_gid("latency:ecdf")
    ax_p.set_gid("latency:percentiles")
    no_latency = []
    for _, row in ecdfs.iterrows():
        a, rf = str(row["acks"]), row["replication_factor"]
        style = _RF_STYLES[rfs.index(rf) % len(_RF_STYLES)] if rf in rfs else "-"
        if len(row["x"]) == 0:
            no_latency.append(f"acks={a}, RF={rf}")
            continue
        ax_e.plot(row["x"], row["y"], drawstyle="steps-post", color=_acks_color(a), linestyle=style,
                  label=f"acks={a}, RF={rf} ({row['records']:,} records, {row['runs']} run{'s' * (row['runs'] != 1)})",
                  gid=f"ecdf:acks={a}:RF={rf}")
    for level in (0.5, 0.99):
        ax_e.axhline(level, color="grey", linewidth=0.6, linestyle=":")
        ax_e.annotate(f"p{level * 100:g}", (1.0, level), xycoords=("axes fraction", "data"), xytext=(2, 0),
                      textcoords="offset points", va="center", fontsize=7, color="grey")
    if ax_e.lines:
        ax_e.set_xscale("log")
    ax_e.set_ylim(0, 1.02)
    ax_e.set_xlabel("produce latency: record arrival to acknowledgement (ms, log scale)")
    ax_e.set_ylabel("fraction of acknowledged records")
    ax_e.set_title("ECDF of produce latency, records of all seeds pooled", fontsize=9)
    ax_e.grid(alpha=0.3, which="both")
    if no_latency:
        ax_e.text(0.02, 0.97, "no acknowledgements, so no latency:\n" + "\n".join(no_latency),
                  transform=ax_e.transAxes, fontsize=7, va="top", color="#555555")
    if ax_e.get_legend_handles_labels()[0]:
        ax_e.legend(fontsize=7, loc="lower right")

    width = 0.8 / max(len(rfs), 1)
    for j, rf in enumerate(rfs):
        s = table[table["replication_factor"] == rf].set_index("acks")
        s = s.reindex([a for a in acks if a in s.index])
        x = np.array([acks.index(a) for a in s.index], dtype=float) + _dodge(rf, rfs, width)
        p99 = s["produce_latency_ms.p99_mean"].to_numpy(dtype=float)
        ok = ~np.isnan(p99)
        color = _rf_color(rf, rfs)
        low = s["produce_latency_ms.p99_low"].to_numpy(dtype=float)
        high = s["produce_latency_ms.p99_high"].to_numpy(dtype=float)
        ci = ok & ~np.isnan(low)
        if ci.any():
            ax_p.errorbar(x[ci], p99[ci], yerr=[p99[ci] - low[ci], high[ci] - p99[ci]], fmt="none", ecolor="black",
                          capsize=3, label=f"_ci:p99:RF={rf}", gid=f"ci:p99:RF={rf}", zorder=3)
        ax_p.plot(x[ok], p99[ok], linestyle="none", marker="o", markersize=8, color=color, markeredgecolor="black",
                  label=f"p99, RF={rf}", gid=f"p99:RF={rf}", zorder=4)
        for key, marker in (("p50", "_"), ("p999", "^")):
            v = s[f"produce_latency_ms.{key}_mean"].to_numpy(dtype=float)
            ax_p.plot(x[ok], v[ok], linestyle="none", marker=marker, color="black", markersize=9 if key == "p50" else 5,
                      label=(f"{'p50' if key == 'p50' else 'p99.9'}, mean over seeds" if j == 0 else f"_{key}:RF={rf}"),
                      gid=f"{key}:RF={rf}", zorder=4)
            for xi, lo_, hi_ in zip(x[ok], v[ok], p99[ok]):
                ax_p.plot([xi, xi], sorted([lo_, hi_]), color="#999999", linewidth=0.8, zorder=2, label="_range")
        for xi, yi in zip(x[ok], p99[ok]):
            ax_p.annotate(f"{yi:,.0f} ms" if yi >= 10 else f"{yi:.1f} ms", (xi, yi), xytext=(0, -9),
                          textcoords="offset points", ha="center", va="top", fontsize=6.5,
                          bbox={"boxstyle": "round,pad=0.1", "facecolor": "white", "edgecolor": "none", "alpha": 0.8})
    for a in acks:
        if table.loc[table["acks"] == a, "produce_latency_ms.p99_mean"].isna().all():
            ax_p.annotate("no acks, no latency", (acks.index(a), 0), xycoords=("data", "axes fraction"),
                          xytext=(0, 3), textcoords="offset points", ha="center", fontsize=7, color="#555555")
    if np.isfinite(table["produce_latency_ms.p99_mean"].to_numpy(dtype=float)).any():
        ax_p.set_yscale("log")
    ax_p.set_xticks(range(len(acks)), [f"acks={a}" for a in acks])
    ax_p.set_xlim(-0.6, len(acks) - 0.4)
    ax_p.set_ylabel("produce latency (ms, log scale)")
    ns = sorted(set(table["n"].astype(int)))
    ax_p.set_title(f"p99 per run, mean over seeds (n={'-'.join(map(str, sorted({ns[0], ns[-1]})))}); "
                   f"whiskers: {confidence:.0%} CI", fontsize=9)
    ax_p.grid(axis="y", alpha=0.3, which="both")
    handles, labels = ax_p.get_legend_handles_labels()
    order = sorted(range(len(labels)), key=lambda i: (not labels[i].startswith("p99,"), i))
    if handles:
        ax_p.legend([handles[i] for i in order], [labels[i] for i in order], fontsize=7, loc="upper left")
    runs = runs_table(source)
    pooled = [label for c, label in (("min_insync_replicas", "min.insync.replicas"), ("fault_kind", "fault kinds"))
              if c in runs and (runs.groupby(["acks", "replication_factor"])[c].nunique() > 1).any()]
    note = f" (pooled over {', '.join(pooled)})" if pooled else ""
    fig.suptitle(f"Produce latency by acks mode{note} ({_title_name(source)})", fontsize=10)
    return _done(fig, path)


# --- 3. failover time distribution --------------------------------------------------------------------
def failover_distribution(source: Source, path: str | Path | None = None, *, by: str | None = None) -> Figure:
    """ECDF of failover times over every (fault, partition) of every run, one line per group.

    Left: fault to new leader elected; right: fault to the first write acknowledged by the new
    leader (what producers experience). Groups are `by` (default: partition count or scenario
    if they vary, else a swept parameter that varies). Failovers that never completed before the
    run ended are counted in the legend. The data is `failover_samples(source, by)`.
    """
    samples = failover_samples(source, by)
    if samples.empty:
        raise NothingToPlot("no failovers: no fault hit a partition leader")
    by = samples.attrs.get("by", by or "scenario")
    groups = list(dict.fromkeys(sorted(samples["group"].tolist(), key=lambda g: (str(type(g)), g))))
    fig = _figure(11.0, 4.2)
    axes = fig.subplots(1, 2, sharey=True)
    cmap = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf", "#7f7f7f"]
    cols = [("election_ms", "fault to new leader elected"),
            ("unavailable_ms", "fault to first write acknowledged by the new leader")]
    for ax, (col, title) in zip(axes, cols):
        ax.set_gid(f"failover:{col}")
        for i, g in enumerate(groups):
            v = samples.loc[samples["group"] == g, col].to_numpy(dtype=float)
            done = np.sort(v[~np.isnan(v)]) / 1000.0
            never = int(np.isnan(v).sum())
            runs = samples.loc[samples["group"] == g, "run_id"].nunique()
            label = f"{by}={g}: {len(v)} failovers, {runs} run{'s' * (runs != 1)}"
            if never:
                label += f", {never} never"
            if len(done) == 0:
                ax.plot([], [], label=label + " (none completed)", color=cmap[i % len(cmap)])
                continue
            # fraction of all failovers of the group (the ones that never completed keep it below 1)
            y = np.arange(1, len(done) + 1) / len(v)
            x = np.r_[done[0], done]
            y = np.r_[0.0, y]
            ax.plot(x, y, drawstyle="steps-post", color=cmap[i % len(cmap)], marker="o" if len(done) <= 40 else None,
                    markersize=3, label=label, gid=f"ecdf:{col}:{g}")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("seconds after the fault")
        ax.set_ylim(0, 1.02)
        ax.set_xlim(0, max(1e-3, np.nanmax(samples[[c for c, _ in cols]].to_numpy(dtype=float), initial=0.0)
                           / 1000.0 * 1.1))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
    axes[0].set_ylabel("fraction of failovers (partition x fault)")
    fig.suptitle(f"Failover time distribution by {by} ({_title_name(source)})", fontsize=10)
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


def failover_timeline(run: Run, path: str | Path | None = None, *, max_partitions: int = 24) -> Figure:
    """One run over time, so a reader sees when leadership moved and writes stalled.

    Panels share the time axis (seconds): records sent, acknowledged and failed per second; p50 and
    p99 produce latency per second (log scale; gaps are seconds with no acknowledgement); the
    number of under-replicated and offline partitions (time-weighted per second); and one lane
    per partition (Gantt): the upper bar is coloured by the leader broker, hatched where that
    leader is down but not yet fenced (writes stall), red where the partition is offline; the
    lower strip is the ISR size (grey: full, orange: under-replicated, red: below
    min.insync.replicas), cross-hatched while a crashed broker is still in the ISR (acks=all
    writes wait for it until the controller fences it). Triangles mark leadership changes,
    crosses log truncations (a replica dropping records it had; for acks=1 this is how
    acknowledged records are lost).
    Shaded: when each crashed broker was down. Dashed: producers stop and faults heal. With more
    than `max_partitions` partitions, those whose leader or ISR changed come first.
    """
    ts = run.timeseries
    lead = leadership_intervals(run)
    isr = isr_intervals(run)
    down = down_intervals(run)
    min_isr = min_insync_by_partition(run)
    lanes = _lane_partitions(run, lead, isr, max_partitions)
    ev = run.events
    truncations = ev[(ev["kind"] == "truncation")
                     & (ev["detail"].astype(str).str.extract(r"removed=(\d+)", expand=False).fillna("1") != "0")]
    n_parts = len(set(lead["partition_index"]) | set(isr["partition_index"]))
    lane_h = 0.32
    fig = _figure(12.0, 6.2 + lane_h * len(lanes))
    ax_tp, ax_lat, ax_lvl, ax_ln = fig.subplots(
        4, 1, sharex=True, height_ratios=[1.0, 1.0, 0.6, max(1.2, lane_h * len(lanes))])
    t = ts["time_ms"].to_numpy(dtype=float) / 1000.0
    end_s = run.end_ms / 1000.0

    ax_tp.set_gid("timeline:throughput")
    ax_tp.plot(t, sent_per_second(run).to_numpy(dtype=float), drawstyle="steps-post", color="#7f7f7f",
               linewidth=0.9, linestyle="--", label="records sent / s", gid="records_sent")
    ax_tp.plot(t, ts["records_acked"].to_numpy(dtype=float), drawstyle="steps-post", color="#1f77b4",
               label="records acknowledged / s", gid="records_acked")
    ax_tp.plot(t, ts["records_failed"].to_numpy(dtype=float), drawstyle="steps-post", color="#d62728",
               label="records failed / s (client told)", gid="records_failed")
    ax_tp.set_ylabel("records / s")
    ax_tp.set_ylim(bottom=0)
    ax_tp.legend(fontsize=7, loc="best")

    ax_lat.set_gid("timeline:latency")
    ax_lat.plot(t, ts["latency_p99_ms"].to_numpy(dtype=float), drawstyle="steps-post", color="#d62728",
                label="p99", gid="latency_p99_ms")
    ax_lat.plot(t, ts["latency_p50_ms"].to_numpy(dtype=float), drawstyle="steps-post", color="#1f77b4",
                label="p50", gid="latency_p50_ms")
    if np.isfinite(ts["latency_p99_ms"].to_numpy(dtype=float)).any():
        ax_lat.set_yscale("log")
    else:
        ax_lat.text(0.5, 0.5, "no acknowledgements" + (" (acks=0)" if run.facts["acks"] == "0" else ""),
                    transform=ax_lat.transAxes, ha="center", va="center", fontsize=8, color="#555555")
    ax_lat.set_ylabel("produce latency\n(ms, log)")
    ax_lat.legend(fontsize=7, loc="best", title="acks in that second", title_fontsize=7)

    ax_lvl.set_gid("timeline:levels")
    ax_lvl.plot(t, ts["under_replicated_partitions"].to_numpy(dtype=float), drawstyle="steps-post",
                color="#ff7f0e", label="under-replicated", gid="under_replicated_partitions")
    ax_lvl.plot(t, ts["offline_partitions"].to_numpy(dtype=float), drawstyle="steps-post",
                color=OFFLINE_COLOR, label="offline", gid="offline_partitions")
    ax_lvl.set_ylabel("partitions")
    ax_lvl.set_ylim(-0.05 * max(1, n_parts), max(1, n_parts) * 1.1)
    ax_lvl.legend(fontsize=7, loc="best", ncols=2)

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
        if stale:  # a crashed broker still counted in the ISR: acks=all waits for it
            ax_ln.broken_barh(stale, (y - 0.4, 0.3), facecolors="none", edgecolor="#555555", hatch="xxx",
                              linewidth=0.0, label=f"_isr_down:{name}", gid=f"isr_down:{name}")
        for (x0, w), s in zip(ispans, gi["isr_size"]):
            if w >= 0.04 * end_s:
                ax_ln.text(x0 + w / 2, y - 0.25, f"ISR {int(s)}", ha="center", va="center", fontsize=6)
        trunc = truncations[truncations["partition_index"] == idx]
        if len(trunc):
            ax_ln.plot(trunc["time_ms"] / 1000.0, np.full(len(trunc), y + 0.175), marker="X", color="black",
                       markeredgecolor="white", markersize=7, linestyle="none", label="_truncation",
                       gid=f"truncation:{name}")
        for x0 in gl.loc[gl["start_ms"] > 0, "start_ms"].drop_duplicates() / 1000.0:
            if not ((gl["start_ms"] / 1000.0 == x0) & (gl["state"] == "leader down")).any():
                ax_ln.plot([x0], [y + 0.45], marker="v", color="black", markersize=4, linestyle="none",
                           label="_election", gid=f"election:{name}")
    ax_ln.set_yticks(range(len(lanes)), [name for _, name in reversed(lanes)], fontsize=7)
    ax_ln.set_ylim(-0.6, len(lanes) - 0.4)
    ax_ln.set_xlabel("simulated time (s)")
    shown = f"{len(lanes)} of {n_parts} partitions (changed ones first)" if len(lanes) < n_parts else "partitions"
    ax_ln.set_ylabel(f"{shown}:\nleader (upper), ISR (lower)", fontsize=8)

    for ax in (ax_tp, ax_lat, ax_lvl, ax_ln):
        for _, d in down.iterrows():
            ax.axvspan(d["start_ms"] / 1000.0, d["end_ms"] / 1000.0, color=FAULT_COLOR, alpha=0.08, linewidth=0,
                       gid=f"down:broker{int(d['broker'])}")
        ax.axvline(run.produce_end_ms / 1000.0, color="grey", linestyle="--", linewidth=0.8)
        ax.set_xlim(0, end_s)
    for _, d in down.iterrows():
        ax_tp.annotate(f"broker {int(d['broker'])} down", ((d["start_ms"] + d["end_ms"]) / 2000.0, 1.0),
                       xycoords=("data", "axes fraction"), xytext=(0, -2), textcoords="offset points",
                       ha="center", va="top", fontsize=7, color=FAULT_COLOR)
    ax_tp.annotate("producers stop, faults heal", (run.produce_end_ms / 1000.0, 1.0),
                   xycoords=("data", "axes fraction"), xytext=(3, -2), textcoords="offset points",
                   ha="left", va="top", fontsize=7, color="grey")

    handles = [Patch(facecolor=BROKER_COLORS[b % len(BROKER_COLORS)], label=f"leader: broker {b}")
               for b in sorted(brokers_seen)]
    handles += [Patch(facecolor="#7f7f7f", edgecolor="white", hatch="////",
                      label="leader down, not yet fenced (writes stall)"),
                Patch(facecolor=OFFLINE_COLOR, label="offline (no leader)"),
                Patch(facecolor=ISR_COLORS["full"], label="ISR full"),
                Patch(facecolor=ISR_COLORS["under"], label="ISR < replication factor"),
                Patch(facecolor=ISR_COLORS["below_min"], label="ISR < min.insync.replicas"),
                Patch(facecolor=ISR_COLORS["full"], edgecolor="#555555", hatch="xxx",
                      label="ISR member down, not yet removed\n(acks=all writes wait)"),
                Patch(facecolor=FAULT_COLOR, alpha=0.15, label="broker down (crash to restart)")]
    handles += [Line2D([], [], marker="v", color="black", linestyle="none", markersize=5, label="leadership change"),
                Line2D([], [], marker="X", color="black", markeredgecolor="white", linestyle="none", markersize=7,
                       label="a replica truncated its log\n(records it had are removed)")]
    ax_ln.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.005, 1.0), borderaxespad=0)
    facts = run.facts
    fig.suptitle(f"Failover timeline: {run.label} (acks={facts['acks']}, RF={facts['replication_factor']}, "
                 f"min.insync.replicas={facts['min_insync_replicas']})", fontsize=10)
    return _done(fig, path)
