"""Configuration rows: the forest-plot layout the sweep figures and the latency percentiles share.

One row per combination of every parameter that varies (acks, replication factor,
min.insync.replicas, fault kind, and any other swept key), labelled in words ("acks=all, RF 3,
min.insync 2"); only seeds, the replications, are ever pooled. Points are means over seeds; whiskers
the Student t interval over seeds cut at what the quantity can be (never below 0), marked with a "<"
where it was cut; every figure says n.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from analysis.tables import CONFIG_ORDER, sort_value, config_label, param_label, varying_columns

__all__ = ["n_text", "ci_text", "display_order", "config_rows", "constant_text", "row_axes", "whiskers", "log_limits",
           "text_axis"]


def n_text(table: pd.DataFrame, what: str = "row") -> str:
    """How many seeds each row pools, for a title."""
    ns = sorted(set(table["n"].astype(int)))
    if len(ns) == 1:
        return f"n = {ns[0]} seed{'s' if ns[0] != 1 else ''} per {what}"
    return f"n = {ns[0]}-{ns[-1]} seeds per {what} (n written where fewer than {ns[-1]})"


def ci_text(table: pd.DataFrame, confidence: float) -> str:
    """What the whiskers are, for a title."""
    if int(table["n"].max()) <= 1:
        return "one seed per row: no interval"
    return (f"whiskers: {confidence:.0%} Student t interval over seeds, cut at 0 where it would go below "
            f"(marked <)")


def display_order(by: Sequence[str]) -> list[str]:
    """Configuration columns in display order: acks, RF, min.insync, fault, then any other swept key."""
    return [c for c in CONFIG_ORDER if c in by] + [c for c in by if c not in CONFIG_ORDER]


def config_rows(table: pd.DataFrame, exclude: Sequence[str] = ()) -> tuple[pd.DataFrame, list[str], list[str]]:
    """`table` sorted for display (acks, RF, min.insync, fault, other swept keys) with a ``label``
    column, the columns the labels name (those that vary) and the constant ones (for the title)."""
    by = table.attrs.get("by") or [c for c in CONFIG_ORDER if c in table]
    order = [c for c in display_order(by) if c not in exclude]
    label_cols = varying_columns(table, order)
    constant = [c for c in order if c not in label_cols and c in table]
    t = table.copy()
    keys = t.apply(lambda r: tuple(sort_value(c, r[c]) for c in order), axis=1) if len(t) else []
    t["_key"] = list(keys)
    t = t.sort_values("_key", kind="stable").drop(columns="_key").reset_index(drop=True)
    cols = label_cols or order[:1]
    t["label"] = [config_label(r, cols) for _, r in t.iterrows()]
    return t, label_cols, constant


def constant_text(table: pd.DataFrame, constant: Sequence[str]) -> str:
    """The parameters every row shares, in words, for a title."""
    return ", ".join(param_label(c, table[c].iloc[0]) for c in constant) if len(table) else ""


def row_axes(ax, labels: list[str], groups: list) -> None:
    """Rows top to bottom, light separators where the first label column (acks) changes."""
    n = len(labels)
    ax.set_yticks(range(n), labels, fontsize=8)
    ax.set_ylim(n - 0.5, -0.5)
    for i in range(1, n):
        if groups[i] != groups[i - 1]:
            ax.axhline(i - 0.5, color="#bbbbbb", linewidth=0.6, zorder=0, gid="separator")


def whiskers(ax, y, mean, low, high, color, left: float, *, gid: str) -> None:
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


def log_limits(values: np.ndarray, default=(1e-4, 1.0), top: float | None = None) -> tuple[float, float]:
    """Log-axis limits around the positive finite `values`: whole decades, at least two of them."""
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


def text_axis(ax) -> None:
    """An axis without frame or ticks for the text column beside a panel."""
    ax.set_axis_off()
    ax.set_xlim(0, 1)
