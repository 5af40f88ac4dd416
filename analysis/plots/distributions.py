"""Distributions, for one run or a sweep: produce latency and failover times.

- `latency_plot`: record-weighted produce latency ECDF, one panel per acks mode and one line
  per configuration, and p50 / p99 / p99.9 per configuration;
- `failover_distribution`: ECDF of failover times (fault to election, fault to first
  acknowledged write) across runs and partitions, one line per configuration (a strip plot, one
  point per failover, when there are few).

Every plotted number comes from a table function in `analysis.tables`, so a figure can be checked
against its table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from analysis.load import Run, acks_order
from analysis.plots.forest import config_rows, constant_text, log_limits, n_text, row_axes, text_axis, whiskers
from analysis.plots.style import (PALETTE, ROW_IN, NothingToPlot, finish_figure, fmt_count, line_styles, ms_formatter,
                                  new_figure, title_name)
from analysis.tables import (Source, sort_value, value_text, config_label, failover_samples, latency_ecdfs,
                             latency_table, param_name, runs_table)

__all__ = ["latency_plot", "failover_distribution", "STRIP_MAX"]


def _ecdf_distance(x1, y1, x2, y2) -> float:
    """The largest vertical gap between two step ECDFs (the Kolmogorov-Smirnov distance)."""
    x1, y1, x2, y2 = (np.asarray(v, dtype=float) for v in (x1, y1, x2, y2))
    xs = np.union1d(x1, x2)

    def at(x, y):
        i = np.searchsorted(x, xs, side="right") - 1
        return np.where(i >= 0, y[np.clip(i, 0, len(y) - 1)], 0.0)
    return float(np.max(np.abs(at(x1, y1) - at(x2, y2)))) if len(xs) else 0.0



# --- 4. latency -----------------------------------------------------------------------------------
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
    rows, label_cols, constant = config_rows(table)
    rest_cols = [c for c in label_cols if c != "acks"]
    acks = sorted(rows["acks"].astype(str).unique().tolist(), key=acks_order)
    ecdfs = ecdfs.copy()
    whole = "this run" if isinstance(source, Run) else f"acks={acks[0]}" if len(acks) == 1 else "every run of the mode"
    ecdfs["rest"] = [config_label(r, rest_cols) if rest_cols else whole for _, r in ecdfs.iterrows()]
    ecdfs["key"] = [tuple(sort_value(c, r[c]) for c in rest_cols) for _, r in ecdfs.iterrows()]
    rests = list(dict.fromkeys(ecdfs.sort_values("key", kind="stable")["rest"]))
    styles = line_styles(rests)
    with_latency = [a for a in acks if (ecdfs.loc[ecdfs["acks"].astype(str) == a, "records"] > 0).any()]
    without = [a for a in acks if a not in with_latency]
    n_panels = max(1, len(with_latency))
    fig = new_figure(max(9.0, 4.6 * n_panels + 1.0), 4.6 + 1.4 + ROW_IN * len(rows))
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
            count = (f"{fmt_count(g['records'])} acknowledged records" if one else
                     f"n = {runs} seed{'s' * (runs != 1)}, {fmt_count(g['records'])} records")
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
    row_axes(pax, rows["label"].tolist(), rows[label_cols[0]].tolist() if label_cols else [0] * len(rows))
    text_axis(ptax)
    vals = rows[[f"produce_latency_ms.{k}_mean" for k in ("p50", "p99", "p999")]].to_numpy(dtype=float)
    lo, hi = log_limits(np.r_[vals.ravel(), rows["produce_latency_ms.p99_high"].to_numpy(dtype=float)],
                         default=(1, 1000))
    pax.set_xscale("log")
    pax.set_xlim(lo, hi)
    fmt = ms_formatter(vals.ravel())  # one unit for the whole text column
    for i, (_, r) in enumerate(rows.iterrows()):
        rest = config_label(r, rest_cols) if rest_cols else whole
        color = styles.get(rest, (PALETTE[0], "-", "o"))[0]
        p50, p99, p999 = vals[i]
        if not np.isfinite(p99):
            pax.text(lo * 1.15, i, "no acknowledgements, no latency", va="center", fontsize=7, color="#555555")
            continue
        whiskers(pax, [i], [p99], [r["produce_latency_ms.p99_low"]], [r["produce_latency_ms.p99_high"]], color, lo,
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
    bottom.suptitle("Percentiles of the run" if one else f"Percentiles per configuration; {n_text(table)}",
                    fontsize=9)
    const = constant_text(rows, constant)
    fig.suptitle(f"Produce latency ({title_name(source)}{'; ' + const if const else ''})", fontsize=10)
    return finish_figure(fig, path)


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
    styles = line_styles(order)
    # the crashed broker elected again (RF 1: no other replica): the same leader back, not a new one
    returned = (samples["new_leader"].to_numpy() == samples["broker"].to_numpy()) & samples["election_ms"].notna().to_numpy()
    table = runs_table(source)
    values = {c: sorted(table[c].unique().tolist(), key=lambda v: sort_value(c, v)) for c in pooled if c in table}
    pooled_text = ("pooled over " + ", ".join(f"{param_name(c)} ({', '.join(map(value_text, v))})"
                                              for c, v in values.items())) if values else ""
    what = ", ".join(param_name(c) for c in by_cols) if by_cols else "configuration"
    title = (f"Failover time distribution by {what} ({title_name(source)})"
             + (f"\n{pooled_text}" if pooled_text else ""))
    election_title = ("fault to leader elected (a new one, or the same broker back)" if returned.any()
                      else "fault to new leader elected")
    if int(samples.groupby("group").size().max()) <= STRIP_MAX:
        return _failover_strip(samples, order, styles, returned, election_title, title, path)
    fig = new_figure(11.0, 4.0 + 0.18 * len(order))
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
    return finish_figure(fig, path)


STRIP_MAX = 5
"""Up to this many failovers per configuration, the failover distribution is a strip plot (one point each)."""


def _failover_strip(samples: pd.DataFrame, order: list[str], styles: dict, returned: np.ndarray,
                    election_title: str, title: str, path: str | Path | None) -> Figure:
    """The failover distribution as a strip plot: a row per configuration, a point per failover.

    Filled: a new leader; hollow: the same broker back as leader; equal times are stacked so each
    failover shows; a failover that never completed is a '>' at the right edge."""
    fig = new_figure(11.0, 2.4 + 0.55 * len(order))
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
    return finish_figure(fig, path)
