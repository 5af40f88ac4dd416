"""The style kit every kafkasim figure shares: palette, figure creation and saving, number formatters.

Public so that every figure module (`analysis.plots.*`, `analysis.compare`) draws with the same
colours, sizes and number formats without importing another module's private names. Colours are the
Okabe-Ito palette, safe for colour-blind readers; figures are built on an Agg canvas (no pyplot, no
global figure state, no display needed), so they render the same in tests, the CLI and notebooks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from analysis.load import Run, SweepResults
from analysis.tables import Source

__all__ = [
    "OKABE_ITO", "PALETTE", "ACKS_COLORS", "BROKER_COLORS", "OFFLINE_COLOR", "FAULT_COLOR", "LOST_COLORS",
    "ISR_COLORS", "LINESTYLES", "MARKERS", "DPI", "ROW_IN", "NothingToPlot", "new_figure", "save_figure",
    "finish_figure", "acks_color", "title_name", "line_styles", "fmt_pct", "fmt_share", "fmt_axis_pct", "fmt_count",
    "fmt_rate", "fmt_ms", "ms_formatter",
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
LOST_COLORS = {"acked": OKABE_ITO["vermillion"], "unknown": OKABE_ITO["purple"]}
ISR_COLORS = {"full": "#bfe3d6", "under": OKABE_ITO["yellow"], "below_min": OKABE_ITO["vermillion"]}
LINESTYLES = ["-", "--", ":", "-."]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]
DPI = 150
ROW_IN = 0.3  # inches per configuration row


class NothingToPlot(ValueError):
    """The source has no data for this figure (e.g. no failovers, no finished runs)."""


def new_figure(width: float, height: float) -> Figure:
    """A constrained-layout figure on its own Agg canvas (no pyplot state)."""
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


def finish_figure(fig: Figure, path: str | Path | None) -> Figure:
    """`fig`, saved first when a path is given (every figure function ends so)."""
    if path is not None:
        save_figure(fig, path)
    return fig


def acks_color(a: str) -> str:
    """The colour of an acks mode (grey for an unknown one)."""
    return ACKS_COLORS.get(str(a), "#7f7f7f")


def title_name(source: Source) -> str:
    """What a figure title calls its source: the sweep's name, the run's label, or a count of runs."""
    if isinstance(source, SweepResults):
        return f"sweep {source.name}"
    if isinstance(source, Run):
        return source.label
    return f"{len(source)} runs"


def fmt_pct(v: float) -> str:
    """A percentage with enough digits to tell 0.0004% from 0: two significant digits."""
    if not np.isfinite(v):
        return "-"
    if v == 0:
        return "0%"
    if abs(v) >= 10:
        return f"{v:.0f}%"
    return f"{v:.2g}%" if abs(v) >= 1e-4 else f"{v:.1e}%"


def fmt_share(x: float) -> str:
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


def fmt_axis_pct(v: float, _pos=None) -> str:
    """A log-axis tick as a percentage, as many decimals as it needs."""
    if v <= 0:
        return "0%"
    if v >= 1:
        return f"{v:g}%"
    return f"{v:.10f}".rstrip("0") + "%"


def fmt_count(v: float) -> str:
    """Exact below 100,000, else three significant digits with k/M/G."""
    if not np.isfinite(v):
        return "-"
    v = float(v)
    for div, unit in ((1e9, "G"), (1e6, "M"), (1e5, "k")):
        if abs(v) >= div:
            return f"{v / (div if unit != 'k' else 1e3):.3g}{unit if unit != 'k' else 'k'}"
    return f"{v:,.0f}"


def fmt_rate(v: float) -> str:
    """Records per second, k/M above a thousand."""
    if not np.isfinite(v):
        return "-"
    if v >= 1e6:
        return f"{v / 1e6:.2f}M"
    if v >= 1e3:
        return f"{v / 1e3:.1f}k"
    return f"{v:.0f}"


def fmt_ms(v: float) -> str:
    """A latency in ms, in seconds from 10 s."""
    if not np.isfinite(v):
        return "-"
    if v >= 10_000:
        return f"{v / 1000:.1f} s"
    if v >= 10:
        return f"{v:,.0f} ms"
    return f"{v:.1f} ms"


def ms_formatter(values) -> Callable[[float], str]:
    """`fmt_ms` with one unit for a whole column of values: seconds if any is 10 s or more, else ms
    (a column mixing "9,931 ms" and "10.1 s" reads as if the second were smaller)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if len(v) and v.max() >= 10_000:
        return lambda x: "-" if not np.isfinite(x) else f"{x / 1000:,.1f} s" if x >= 100 else f"{x / 1000:.3f} s"
    return fmt_ms


def line_styles(keys: list[str]) -> dict[str, tuple[str, str, str]]:
    """(colour, line style, marker) per configuration key, the same in every panel of a figure.

    Colour, dash and marker all change from one line to the next, so lines that coincide (two
    configurations that behave alike) still show both."""
    return {k: (PALETTE[i % len(PALETTE)], LINESTYLES[i % len(LINESTYLES)], MARKERS[i % len(MARKERS)])
            for i, k in enumerate(keys)}
