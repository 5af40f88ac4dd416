"""The sweep figures: one row per configuration (a forest plot, `analysis.plots.forest`).

- `loss_map`: message-loss and acknowledged-loss rate per configuration on a log scale, with
  "0 of N" written where nothing was lost;
- `throughput_cost`: offered, committed and acknowledged records per second, and the latency
  each configuration pays.

Every plotted number comes from a table function in `analysis.tables`, so a figure can be checked
against its table.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from analysis.load import acks_order
from analysis.plots.forest import ci_text, config_rows, constant_text, log_limits, n_text, row_axes, text_axis, whiskers
from analysis.plots.style import (ROW_IN, NothingToPlot, acks_color, finish_figure, fmt_axis_pct, fmt_count, fmt_pct,
                                  fmt_rate, fmt_share, ms_formatter, new_figure, title_name)
from analysis.tables import Source, loss_table, throughput_table

__all__ = ["loss_map", "throughput_cost"]


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
    rows, label_cols, constant = config_rows(table, exclude=["fault_kind"])
    labels = list(dict.fromkeys(rows["label"]))
    first = label_cols[0] if label_cols else None
    groups = [rows.loc[rows["label"] == lab, first].iloc[0] if first else 0 for lab in labels]
    y_of = {lab: i for i, lab in enumerate(labels)}
    lo, hi = log_limits(np.r_[table["loss_rate_mean"], table["loss_rate_high"], table["acked_loss_rate_mean"],
                               table["acked_loss_rate_high"]] * 100.0, top=100.0)
    n_full = int(table["n"].max())
    ncol = 2 * len(kinds)
    fig = new_figure(2.4 + 4.6 * ncol, 1.9 + ROW_IN * len(labels))
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
            row_axes(ax, labels, groups)
            text_axis(tax)
            for _, r in sub.iterrows():
                y = y_of[r["label"]]
                mean = 100.0 * float(r[f"{metric}_mean"])
                sent = r.get("records_sent_total", np.nan)
                lost = r.get(f"{count}_total", np.nan)
                color = acks_color(r["acks"])
                n = int(r["n"])
                n_note = f", n={n}" if n != n_full else ""
                if metric == "acked_loss_rate" and str(r["acks"]) == "0":
                    ax.text(lo * 1.15, y, "nothing acknowledged (acks=0)", va="center", ha="left", fontsize=7,
                            color="#555555", gid=f"noack:{metric}:{r['label']}")
                    continue
                if not np.isfinite(mean):
                    continue
                if mean == 0:
                    ax.text(lo * 1.15, y, f"0 of {fmt_count(sent)} lost{n_note}", va="center", ha="left", fontsize=7,
                            color="#333333", gid=f"zero:{metric}:{r['label']}")
                    continue
                whiskers(ax, [y], [mean], [100.0 * r[f"{metric}_low"]], [100.0 * r[f"{metric}_high"]], color, lo,
                          gid=f"{metric}:{r['label']}")
                ax.plot([mean], [y], marker="o", markersize=6, color=color, markeredgecolor="black",
                        markeredgewidth=0.5, linestyle="none", zorder=3, label="_point",
                        gid=f"point:{metric}:{r['label']}")
                tax.text(0.02, y, f"{fmt_pct(mean)}  ({fmt_count(lost)} of {fmt_count(sent)}{n_note})",
                         va="center", ha="left", fontsize=7, gid=f"value:{metric}:{r['label']}")
            ax.xaxis.set_major_locator(LogLocator(base=10, numticks=12))
            ax.xaxis.set_major_formatter(FuncFormatter(fmt_axis_pct))
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.tick_params(axis="x", labelsize=7)
            ax.grid(axis="x", alpha=0.3, which="major")
            where = f", fault: {kind}" if len(kinds) > 1 else ""
            ax.set_title(f"{title}{where}", fontsize=9)
            ax.set_xlabel(f"{formula} (log scale)", fontsize=8)
            tax.set_title("mean (lost of sent, all seeds)", fontsize=7, loc="left")
    handles = [Line2D([], [], marker="o", color=acks_color(a), markeredgecolor="black", linestyle="none",
                      label=f"acks={a}") for a in sorted(table["acks"].astype(str).unique(), key=acks_order)]
    if int(table["n"].max()) > 1:
        handles += [Line2D([], [], color="#555555", linewidth=1.4, label=f"{confidence:.0%} t interval over seeds"),
                    Line2D([], [], marker="<", color="#555555", linestyle="none",
                           label="interval cut at 0 (runs on to 0)")]
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=8)
    shown = [c for c in constant if c != "fault_kind"] + (["fault_kind"] if len(kinds) == 1 else [])
    const = constant_text(rows, shown)
    fig.suptitle(f"Records lost ({title_name(source)}{'; ' + const if const else ''})\n"
                 f"points: mean over seeds of each run's share lost; {n_text(table)}; {ci_text(table, confidence)}",
                 fontsize=9)
    return finish_figure(fig, path)


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
    rows, label_cols, constant = config_rows(table)
    labels = rows["label"].tolist()
    first = label_cols[0] if label_cols else None
    groups = rows[first].tolist() if first else [0] * len(rows)
    n_full = int(table["n"].max())
    fig = new_figure(15.0, 2.0 + ROW_IN * len(rows))
    ax, tax, lax, ltax = fig.subplots(1, 4, sharey=True, width_ratios=[3.0, 1.9, 2.4, 1.4])
    ax.set_gid("throughput:rps")
    lax.set_gid("throughput:latency")
    for a in (ax, lax):
        row_axes(a, labels, groups)
    text_axis(tax)
    text_axis(ltax)
    y = np.arange(len(rows), dtype=float)
    committed = rows["committed_rps_mean"].to_numpy(dtype=float)
    offered = rows["offered_rps_mean"].to_numpy(dtype=float)
    acked = rows["throughput_rps_mean"].to_numpy(dtype=float)
    colors = [acks_color(a) for a in rows["acks"]]
    ax.barh(y, np.nan_to_num(committed), height=0.6, color=colors, edgecolor="#333333", linewidth=0.5,
            gid="bars:committed_rps", label="committed (in the final log)")
    for i, (_, r) in enumerate(rows.iterrows()):
        whiskers(ax, [y[i]], [committed[i]], [r["committed_rps_low"]], [r["committed_rps_high"]], "black", 0.0,
                  gid=f"committed_rps:{r['label']}")
    ax.plot(offered, y, linestyle="none", marker="D", markerfacecolor="white", markeredgecolor="black", markersize=6,
            zorder=4, label="offered (records produced)", gid="offered_rps")
    has_ack = rows["acks"].astype(str) != "0"
    ax.plot(acked[has_ack], y[has_ack], linestyle="none", marker="o", color="black", markersize=3.5, zorder=5,
            label="acknowledged", gid="acked_rps")
    ax.set_xlim(0, max(1.0, np.nanmax(np.r_[offered, committed, acked]) * 1.08))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _p: fmt_rate(v)))
    ax.set_xlabel("records / s of producing (mean over seeds)", fontsize=8)
    ax.set_title("delivered load", fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    tax.set_title("committed, acknowledged\n(share of offered)", fontsize=7, loc="left")
    for i, (_, r) in enumerate(rows.iterrows()):
        share = committed[i] / offered[i] if offered[i] > 0 else np.nan
        ack = "no acks (acks=0)" if str(r["acks"]) == "0" else f"acked {fmt_share(acked[i] / offered[i])}"
        n_note = f", n={int(r['n'])}" if int(r["n"]) != n_full else ""
        tax.text(0.02, y[i], f"{fmt_rate(committed[i])}/s ({fmt_share(share)}); {ack}{n_note}", va="center",
                 ha="left", fontsize=7, gid=f"value:throughput:{r['label']}")
    # latency cost
    p50 = rows["produce_latency_ms.p50_mean"].to_numpy(dtype=float)
    p99 = rows["produce_latency_ms.p99_mean"].to_numpy(dtype=float)
    lo, hi = log_limits(np.r_[p50, p99, rows["produce_latency_ms.p99_high"].to_numpy(dtype=float)], default=(1, 1000))
    lax.set_xscale("log")
    lax.set_xlim(lo, hi)
    fmt = ms_formatter(np.r_[p50, p99])  # one unit for the whole text column
    for i, (_, r) in enumerate(rows.iterrows()):
        if not np.isfinite(p99[i]):
            lax.text(lo * 1.15, y[i], "no acks, no latency", va="center", fontsize=7, color="#555555")
            ltax.text(0.02, y[i], "-", va="center", fontsize=7)
            continue
        c = acks_color(r["acks"])
        whiskers(lax, [y[i]], [p99[i]], [r["produce_latency_ms.p99_low"]], [r["produce_latency_ms.p99_high"]], c,
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
    handles = [Patch(facecolor=acks_color(a), edgecolor="#333333", label=f"committed (in the final log), acks={a}")
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
    const = constant_text(rows, constant)
    fig.suptitle(f"Cost of durability: delivered load and latency ({title_name(source)}"
                 f"{'; ' + const if const else ''})\n{n_text(table)}; producers are open loop, so durability costs "
                 f"latency and lost or failed records rather than offered load", fontsize=9)
    return finish_figure(fig, path)
