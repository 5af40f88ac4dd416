"""The failover timeline: one run over time, composed of one function per panel and lane.

`failover_timeline` lays out five panels on a shared time axis (seconds) and calls, in drawing
order, `_throughput_panel`, `_lost_panel`, `_latency_panel`, `_levels_panel`, `_partition_lanes`
and `_fault_lane`, then shades broker downtime on every panel (`_downtime`), labels it above the
top panel (`_downtime_labels`) and adds the lanes' legend (`_lanes_legend`) and the title.
`counterexample_timeline` is the same figure zoomed onto a `kafkasim explore` counterexample's
faults (the CLI passes it to `sim.explore` as its `figure`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, MaxNLocator

from analysis.load import Run, load_run
from analysis.metrics import (down_intervals, fault_intervals, isr_intervals, leadership_intervals, min_insync_by_partition,
                               sent_per_second)
from analysis.plots.style import (BROKER_COLORS, FAULT_COLOR, ISR_COLORS, LOST_COLORS, OFFLINE_COLOR, OKABE_ITO,
                                  finish_figure, fmt_rate, new_figure)
from analysis.tables import lost_per_second, lost_records, offered_per_second

__all__ = ["failover_timeline", "counterexample_timeline"]

# what a fault that stops a broker serving did to it, for the label above the timeline's shading
_DOWN_WORDS = {"crash": "down", "power_loss": "powered off", "pause": "paused", "partition": "cut off",
               "controlled_shutdown": "shut down", "disk_loss": "down, disk lost"}
_LABEL_BOX = {"boxstyle": "round,pad=0.1", "facecolor": "white", "edgecolor": "none", "alpha": 0.85}


@dataclass(frozen=True)
class _Frame:
    """What every panel shares: the per-second times, the part of the run shown, the legend placement."""

    t: np.ndarray  # start of each second of the time series (s)
    x_lo: float
    x_hi: float
    span: float
    outside: dict  # legend keywords: right of the panel, outside the data


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


def _throughput_panel(ax: Axes, run: Run, ts: pd.DataFrame, fr: _Frame) -> None:
    """Records per second: offered (a wide light band), sent (dashed), acknowledged (solid) and failed."""
    t = fr.t
    ax.set_gid("timeline:throughput")
    offered = offered_per_second(run).to_numpy(dtype=float)
    ax.plot(t, offered, drawstyle="steps-post", color=OKABE_ITO["sky"], linewidth=5, alpha=0.45,
            solid_capstyle="butt", label="offered: records produced / s (arrivals)", gid="records_offered", zorder=1)
    ax.plot(t, ts["records_acked"].to_numpy(dtype=float), drawstyle="steps-post", color=OKABE_ITO["blue"],
            linewidth=1.4, label="acknowledged / s", gid="records_acked", zorder=2)
    ax.plot(t, sent_per_second(run).to_numpy(dtype=float), drawstyle="steps-post", color="black",
            linewidth=1.0, linestyle=(0, (3, 3)), label="sent / s (first send on the wire)", gid="records_sent",
            zorder=3)
    ax.plot(t, ts["records_failed"].to_numpy(dtype=float), drawstyle="steps-post", color=OKABE_ITO["vermillion"],
            linewidth=1.2, label="failed / s (client told)", gid="records_failed", zorder=4)
    ax.set_ylabel("records / s", fontsize=8)
    ax.set_ylim(bottom=0)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _p: fmt_rate(v)))
    ax.legend(**fr.outside)


def _lost_panel(ax: Axes, run: Run, fr: _Frame) -> None:
    """Records lost by the second they arrived, acknowledged or not, with a rug of the lost batches."""
    t = fr.t
    ax.set_gid("timeline:lost")
    lost = lost_per_second(run)
    records = lost_records(run)
    acked_lost = lost["acked_lost"].to_numpy(dtype=float)
    unknown_lost = lost["unknown_lost"].to_numpy(dtype=float)
    ax.bar(t, acked_lost, width=1.0, align="edge", color=LOST_COLORS["acked"], edgecolor="white", linewidth=0.3,
           label="acknowledged, then lost", gid="lost:acked")
    ax.bar(t, unknown_lost, width=1.0, align="edge", bottom=acked_lost, color=LOST_COLORS["unknown"],
           edgecolor="white", linewidth=0.3, hatch="//", label="never acknowledged, lost (client not told)",
           gid="lost:unknown")
    if len(records):
        for kind, color in LOST_COLORS.items():
            r = records[records["kind"] == kind]
            if len(r):
                ax.plot(r["arrival_ms"] / 1000.0, np.full(len(r), 0.9), transform=ax.get_xaxis_transform(),
                        marker="|", markersize=9, linestyle="none", color=color, label="_rug",
                        gid=f"rug:{kind}")
        ax.set_ylim(0, max(1.0, np.nanmax(acked_lost + unknown_lost)) * 1.3)
        ax.legend(handles=[Patch(facecolor=LOST_COLORS["acked"], label="acknowledged, then lost"),
                           Patch(facecolor=LOST_COLORS["unknown"], hatch="//",
                                 label="never acknowledged, lost\n(client not told)"),
                           Line2D([], [], marker="|", color="#333333", linestyle="none", markersize=9,
                                  label="a lost batch (arrival time)")], **fr.outside)
    else:
        ax.set_ylim(0, 1)
        ax.text(0.5, 0.5, f"no record lost: 0 of {run.summary.get('records_sent', 0):,} sent",
                transform=ax.transAxes, ha="center", va="center", fontsize=8, color="#333333",
                gid="lost:none")
    ax.yaxis.set_major_locator(MaxNLocator(nbins=3, integer=True))
    ax.set_ylabel("records lost\nby arrival s", fontsize=8)


def _latency_panel(ax: Axes, run: Run, ts: pd.DataFrame, fr: _Frame) -> None:
    """p50 and p99 produce latency per second, log scale (gaps: seconds with no acknowledgement)."""
    t = fr.t
    ax.set_gid("timeline:latency")
    ax.plot(t, ts["latency_p99_ms"].to_numpy(dtype=float), drawstyle="steps-post", color=OKABE_ITO["vermillion"],
            label="p99", gid="latency_p99_ms")
    ax.plot(t, ts["latency_p50_ms"].to_numpy(dtype=float), drawstyle="steps-post", color=OKABE_ITO["blue"],
            label="p50", gid="latency_p50_ms")
    if np.isfinite(ts["latency_p99_ms"].to_numpy(dtype=float)).any():
        ax.set_yscale("log")
    else:
        ax.text(0.5, 0.5, "no acknowledgements" + (" (acks=0)" if run.facts["acks"] == "0" else ""),
                transform=ax.transAxes, ha="center", va="center", fontsize=8, color="#555555")
    ax.set_ylabel("produce latency\n(ms, log)", fontsize=8)
    ax.legend(title="of the records\nacknowledged\nin that second", title_fontsize=7, **fr.outside)


def _levels_panel(ax: Axes, ts: pd.DataFrame, n_parts: int, fr: _Frame) -> None:
    """Under-replicated and offline partitions, time-weighted mean per second."""
    t = fr.t
    ax.set_gid("timeline:levels")
    ax.plot(t, ts["under_replicated_partitions"].to_numpy(dtype=float), drawstyle="steps-post",
            color=OKABE_ITO["orange"], label="under-replicated", gid="under_replicated_partitions")
    ax.plot(t, ts["offline_partitions"].to_numpy(dtype=float), drawstyle="steps-post", linestyle="--",
            color=OFFLINE_COLOR, label="offline (no leader)", gid="offline_partitions")
    ax.set_ylabel("partitions\n(mean in the s)", fontsize=8)
    ax.set_ylim(-0.05 * max(1, n_parts), max(1, n_parts) * 1.1)
    ax.yaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))
    ax.legend(**fr.outside)


def _partition_lanes(ax: Axes, lanes: list[tuple[int, str]], lead: pd.DataFrame, isr: pd.DataFrame,
                     min_isr: dict, truncations: pd.DataFrame, fr: _Frame) -> set[int]:
    """One Gantt lane per partition: leader bar (hatched while the leader is down, black offline), ISR-size
    strip, elections (triangles) and truncations (crosses). Returns the brokers that led, for the legend."""
    ax.set_gid("timeline:lanes")
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
        ax.broken_barh(spans, (y - 0.05, 0.45), facecolors=colors, edgecolor="white", linewidth=0.5,
                       label=f"_leader:{name}", gid=f"leader:{name}")
        for (x0, w), h in zip(spans, hatches):
            if h:  # the stale leader keeps its colour; white hatching marks that it is down
                ax.broken_barh([(x0, w)], (y - 0.05, 0.45), facecolors="none", edgecolor="white", hatch=h,
                               linewidth=0.0, label=f"_down:{name}", gid=f"down:{name}")
        gi = isr[isr["partition_index"] == idx]
        m = min_isr.get(name, 1)
        icolors = [ISR_COLORS["below_min"] if s < m else ISR_COLORS["under"] if s < rf else ISR_COLORS["full"]
                   for s, rf in zip(gi["isr_size"], gi["replication_factor"])]
        ispans = list(zip(gi["start_ms"] / 1000.0, (gi["end_ms"] - gi["start_ms"]) / 1000.0))
        ax.broken_barh(ispans, (y - 0.4, 0.3), facecolors=icolors, edgecolor="white", linewidth=0.5,
                       label=f"_isr:{name}", gid=f"isr:{name}")
        stale = [sp for sp, n in zip(ispans, gi["members_down"]) if n > 0]
        if stale:  # a crashed broker still counted in the ISR: acks=all writes wait for it
            ax.broken_barh(stale, (y - 0.4, 0.3), facecolors="none", edgecolor="#555555", hatch="xxx",
                           linewidth=0.0, label=f"_isr_down:{name}", gid=f"isr_down:{name}")
        for (x0, w), s in zip(ispans, gi["isr_size"]):
            shown_w = min(x0 + w, fr.x_hi) - max(x0, fr.x_lo)
            if shown_w >= 0.05 * fr.span:  # in the middle of the part shown
                ax.text(max(x0, fr.x_lo) + shown_w / 2, y - 0.25, f"ISR {int(s)}", ha="center", va="center",
                        fontsize=6, clip_on=True, bbox=dict(_LABEL_BOX))
        trunc = truncations[truncations["partition_index"] == idx]
        if len(trunc):
            ax.plot(trunc["time_ms"] / 1000.0, np.full(len(trunc), y + 0.175), marker="X", color="black",
                    markeredgecolor="white", markersize=7, linestyle="none", label="_truncation",
                    gid=f"truncation:{name}")
        for x0 in gl.loc[gl["start_ms"] > 0, "start_ms"].drop_duplicates() / 1000.0:
            if not ((gl["start_ms"] / 1000.0 == x0) & (gl["state"] == "leader down")).any():
                ax.plot([x0], [y + 0.45], marker="v", color="black", markersize=4, linestyle="none",
                        label="_election", gid=f"election:{name}")
    return brokers_seen


def _fault_lane(ax: Axes, faults: pd.DataFrame, fault_rows: list[int], n_lanes: int,
                fr: _Frame) -> list[tuple[str, str]]:
    """The fault lane above the partitions: one bar per fault of any kind (fault_start to fault_end), solid
    if it took its target down, hatched for a degradation, labelled with its kind and target where the
    label fits and covers no other, else tagged with a number. Returns the (tag, label) pairs for the legend."""
    n_fault_rows = max(fault_rows, default=-1) + 1
    x_lo, x_hi, span = fr.x_lo, fr.x_hi, fr.span
    fault_keys: list[tuple[str, str]] = []  # (tag, label) of the faults whose bar is too narrow for the label
    y0, h = n_lanes - 0.4, 0.9 / n_fault_rows
    lane_labels: list[tuple[float, float, int]] = []  # (left, right, row) of the fault labels, in points
    for (_, f), row in zip(faults.iterrows(), fault_rows):
        x0, w = f["start_ms"] / 1000.0, (f["end_ms"] - f["start_ms"]) / 1000.0
        yb = y0 + row * h + 0.05 * h
        ax.broken_barh([(x0, w)], (yb, 0.9 * h), facecolors=FAULT_COLOR if f["takes_down"] else "none",
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
            ax.text(centre, yb + 0.45 * h, text, ha="center", va="center", fontsize=6,
                    clip_on=True, gid=f"label:fault:{f['fault_source']}.{f['fault_index']}", bbox=dict(_LABEL_BOX))
        elif shown_w > 0:
            # a label wider than its bar would run across the next bar (and crowd out that bar's own
            # label): a numbered tag on the bar instead, its text in the legend
            tag = str(len(fault_keys) + 1)
            fault_keys.append((tag, text))
            ax.text(max(x0, x_lo) + shown_w / 2, yb + 0.45 * h, tag, ha="center", va="center", fontsize=6,
                    clip_on=True, gid=f"tag:fault:{f['fault_source']}.{f['fault_index']}", bbox=dict(_LABEL_BOX))
    return fault_keys


def _downtime(axes: list[Axes], down: pd.DataFrame, run: Run, fr: _Frame) -> None:
    """On every panel: grey shading while a fault had a broker down, paused or cut off; a dashed line
    where producers stop and faults heal; the time axis limited to the part shown."""
    for ax in axes:
        for _, d in down.iterrows():
            ax.axvspan(d["start_ms"] / 1000.0, d["end_ms"] / 1000.0, color=FAULT_COLOR, alpha=0.18, linewidth=0,
                       zorder=0, gid=f"down:broker{int(d['broker'])}")
        ax.axvline(run.produce_end_ms / 1000.0, color="grey", linestyle="--", linewidth=0.8)
        ax.set_xlim(fr.x_lo, fr.x_hi)


def _downtime_labels(ax: Axes, down: pd.DataFrame, run: Run, fr: _Frame) -> None:
    """Labels above the top panel, outside the data: one per downtime window (brokers that went down
    together, a rack or a power cut, share it), moved up a row where it would cover another; above
    them, where producers stop."""
    x_lo, x_hi, span = fr.x_lo, fr.x_hi, fr.span
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
        ax.annotate(text, (centre, 1.0),
                    xycoords=("data", "axes fraction"), xytext=(0, 2 + 9 * row), textcoords="offset points",
                    ha="center", va="bottom", fontsize=7, color="#333333",
                    gid="label:down:" + ",".join(map(str, ids)))
    rows_used = 1 + max((r for _, _, r in placed), default=0)
    if x_lo <= run.produce_end_ms / 1000.0 <= x_hi:
        ax.annotate("producers stop, faults heal", (run.produce_end_ms / 1000.0, 1.0),
                    xycoords=("data", "axes fraction"), xytext=(0, 3 + 9 * rows_used), textcoords="offset points",
                    ha="center", va="bottom", fontsize=7, color="grey", gid="label:produce_end")


def _lanes_legend(ax: Axes, brokers_seen: set[int], fault_keys: list[tuple[str, str]], fr: _Frame) -> None:
    """The legend of the lanes: leader colours of the brokers that led, the ISR and fault encodings, the
    markers, and the text of every fault tagged with a number."""
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
    ax.legend(handles=handles, **fr.outside)


def _title(run: Run, note: str | None) -> str:
    """The run, its durability settings and what it lost; `note` on a second line."""
    facts = run.facts
    s = run.summary
    sent = s.get("records_sent", 0)
    if s.get("records_lost", 0) or s.get("acked_lost", 0):
        loss = f"lost {s.get('records_lost', 0):,} of {sent:,} records sent ({s.get('acked_lost', 0):,} acknowledged)"
    else:
        loss = f"lost 0 of {sent:,} records sent"
    return (f"Failover timeline: {run.label} (acks={facts['acks']}, RF {facts['replication_factor']}, "
            f"min.insync {facts['min_insync_replicas']}): {loss}" + (f"\n{note}" if note else ""))


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
    fig = new_figure(13.0, 8.0 + lane_h * n_rows)
    ax_tp, ax_lost, ax_lat, ax_lvl, ax_ln = fig.subplots(
        5, 1, sharex=True, height_ratios=[1.0, 0.55, 0.9, 0.55, max(1.2, lane_h * n_rows)])
    end_s = run.end_ms / 1000.0
    x_lo, x_hi = (0.0, end_s) if window is None else (max(0.0, float(window[0])), min(end_s, float(window[1])))
    fr = _Frame(t=ts["time_ms"].to_numpy(dtype=float) / 1000.0, x_lo=x_lo, x_hi=x_hi, span=max(x_hi - x_lo, 1e-9),
                outside={"loc": "upper left", "bbox_to_anchor": (1.005, 1.0), "borderaxespad": 0, "fontsize": 7})

    _throughput_panel(ax_tp, run, ts, fr)
    _lost_panel(ax_lost, run, fr)
    _latency_panel(ax_lat, run, ts, fr)
    _levels_panel(ax_lvl, ts, n_parts, fr)
    brokers_seen = _partition_lanes(ax_ln, lanes, lead, isr, min_isr, truncations, fr)
    ticks, labels = list(range(len(lanes))), [name for _, name in reversed(lanes)]
    fault_keys: list[tuple[str, str]] = []
    if n_fault_rows:  # the fault lane, above the partitions: every fault of any kind, start to end
        fault_keys = _fault_lane(ax_ln, faults, fault_rows, len(lanes), fr)
        ticks.append(len(lanes) + 0.05)
        labels.append("faults")
    ax_ln.set_yticks(ticks, labels, fontsize=7)
    ax_ln.set_ylim(-0.6, len(lanes) - 0.4 + (1.0 if n_fault_rows else 0.0))
    ax_ln.set_xlabel("simulated time (s)" if window is None else
                     f"simulated time (s), zoomed onto {x_lo:.1f}-{x_hi:.1f} s of the run's 0-{end_s:.0f} s")
    shown = f"{len(lanes)} of {n_parts} partitions (changed ones first)" if len(lanes) < n_parts else "partitions"
    ax_ln.set_ylabel(f"{shown}:\nleader (upper), ISR (lower)" + ("; faults on top" if n_fault_rows else ""),
                     fontsize=8)

    _downtime([ax_tp, ax_lost, ax_lat, ax_lvl, ax_ln], down, run, fr)
    ax_ln.xaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 2.5, 5, 10]))
    _downtime_labels(ax_tp, down, run, fr)
    _lanes_legend(ax_ln, brokers_seen, fault_keys, fr)
    fig.suptitle(_title(run, note), fontsize=10)
    return finish_figure(fig, path)


def counterexample_timeline(run_dir: str | Path, path: str | Path, note: str) -> None:
    """A `kafkasim explore` counterexample's failover timeline, written to `path`.

    Zoomed onto its faults and what followed them (elections, ISR changes, truncations) when they are
    short against the run. The `figure` of `sim.runs.explore.search.explore`: the CLI and notebooks pass
    it (the sim.runs layer, and the `sim` package, never import analysis).
    """
    run = load_run(run_dir)
    ev = run.events
    faults = ev[ev["kind"].isin(["fault_start", "fault_end"])]
    window = None
    if len(faults):
        first = float(faults["time_ms"].min())
        after = ev[(ev["time_ms"] >= first) & ev["kind"].isin(
            ["fault_end", "leader_elected", "unclean_election", "isr_change", "truncation", "log_lost_tail"])]
        last = float(after["time_ms"].max())
        lo, hi = max(0.0, first / 1000.0 - 2.0), min(run.end_ms, last + 3000.0) / 1000.0
        if hi - lo < 0.7 * run.end_ms / 1000.0:
            window = (lo, hi)
    failover_timeline(run, path, note=note, window=window)
