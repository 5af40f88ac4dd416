"""Two runs side by side: a summary table with differences and an overlaid produce-latency ECDF.

`kafkasim compare RUN_A RUN_B` is a thin shell over these::

    import analysis
    analysis.compare("results/quickstart/seed-1", "results/quickstart/seed-1-producers.0.acks=1")
    analysis.compare_latency(run_a, run_b, "figures/latency")   # -> latency.png and latency.svg

Only run directories compare (a sweep's runs are under ``<sweep>/runs/<run_id>/``). The
difference is always B minus A, in the unit of the row; a metric a run has no value for (no
failover happened, `acks=0` has no acknowledgements and so no latency) is NaN there and in the
difference.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from analysis.load import ResultsError, Run, is_sweep_dir, load_run
from sim.measure.stats import ecdf_points, weighted_ecdf
from sim.measure.batches import COMMITTED_RPS_LABEL, committed_rps, produce_latencies
from sim.runs.contract import RunSummary

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["COMPARE_METRICS", "compare", "compare_json", "compare_latency", "compare_name", "run_labels",
           "setting_differences", "shared_overrides", "shown_value"]

COMPARE_METRICS: list[tuple[str, str]] = [
    ("records produced (offered)", "records_produced"),
    ("records sent", "records_sent"),
    ("records acked", "records_acked"),
    ("records failed (client told)", "records_failed"),
    ("records unknown (no answer)", "records_unknown"),
    ("acked_lost (acknowledged, gone: durability violation)", "acked_lost"),
    ("unacknowledged lost (sent, no answer, gone)", "unacked_lost"),
    ("records_lost (all sent and gone, never told of a failure: the two above)", "records_lost"),
    ("duplicates", "duplicates"),
    (f"{COMMITTED_RPS_LABEL}: in the final log per second of producing", "committed_rps"),
    ("acknowledged (rec/s)", "throughput_rps"),
    ("produce latency p50 (ms)", "produce_latency_ms.p50"),
    ("produce latency p99 (ms)", "produce_latency_ms.p99"),
    ("produce latency p99.9 (ms)", "produce_latency_ms.p999"),
    ("end-to-end latency p50 (ms)", "e2e_latency_ms.p50"),
    ("end-to-end latency p99 (ms)", "e2e_latency_ms.p99"),
    ("failover: fault -> leader elected p50 (ms)", "failover_ms.p50"),
    ("failover: fault -> leader elected max (ms)", "failover_ms.max"),
    ("unavailable: fault -> first ack on new leader p50 (ms)", "unavailable_ms.p50"),
    ("unavailable: fault -> first ack on new leader max (ms)", "unavailable_ms.max"),
    ("invariant violations", "invariant_violations"),
]
"""(row label, dotted summary.json key) of every row `compare` returns, in order."""


def _as_run(run: str | Path | Run, which: str) -> Run:
    if isinstance(run, Run):
        return run
    p = Path(run)
    if p.is_dir() and is_sweep_dir(p):
        raise ResultsError(f"{which} {p}: a sweep directory, not a run; compare two of its runs, "
                           f"e.g. {p / 'runs' / '<run_id>'}")
    if p.is_dir() and not (p / "summary.json").is_file():
        raise ResultsError(f"{which} {p}: not a kafkasim run directory (no summary.json); "
                           "pass a directory `kafkasim run` wrote, e.g. results/quickstart/seed-1")
    try:
        return load_run(p, tables=False)
    except ResultsError as e:
        raise ResultsError(f"{which} {e}") from None


def _value(summary: RunSummary, key: str, run: Run | None = None) -> float:
    if key == "committed_rps" and run is not None:  # from the batches: acks=0 is never acknowledged
        try:
            return committed_rps(run.read_batches(["record_count", "copies_in_log"]), summary.produce_duration_ms)
        except (ResultsError, OSError, KeyError):
            return float("nan")
    if key == "unacked_lost":  # derived: records_lost counts the acknowledged losses too
        return _value(summary, "records_lost") - _value(summary, "acked_lost")
    v: object = summary.to_dict()
    for part in key.split("."):
        if not isinstance(v, dict) or part not in v:
            return float("nan")
        v = v[part]
    try:
        return float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return float("nan")


def compare(run_a: str | Path | Run, run_b: str | Path | Run) -> pd.DataFrame:
    """One row per metric (COMPARE_METRICS), indexed by its label: key, a, b, difference (b - a), relative.

    `relative` is the difference as a fraction of A (NaN where A is 0 or missing). Values come
    from each run's summary.json, so they are the numbers `kafkasim run` printed.
    """
    a, b = _as_run(run_a, "RUN_A"), _as_run(run_b, "RUN_B")
    rows = []
    for label, key in COMPARE_METRICS:
        va, vb = _value(a.summary, key, a), _value(b.summary, key, b)
        diff = vb - va
        rel = diff / va if np.isfinite(va) and va != 0 else float("nan")
        rows.append({"metric": label, "key": key, "a": va, "b": vb, "difference": diff, "relative": rel})
    frame = pd.DataFrame(rows).set_index("metric")
    frame.attrs.update(a=str(a.path), b=str(b.path), labels=run_labels(a, b),
                       differ=setting_differences(a, b), same=shared_overrides(a, b))
    return frame


def _json_value(v):
    if v is _MISSING:
        return None
    if isinstance(v, float) and not np.isfinite(v):
        return None
    if isinstance(v, (np.integer, np.floating, np.bool_)):
        return _json_value(v.item())
    if isinstance(v, dict):
        return {str(k): _json_value(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_value(x) for x in v]
    return v if v is None or isinstance(v, (bool, int, float, str)) else str(v)


def compare_json(table: pd.DataFrame) -> dict:
    """`compare`'s table as plain data for ``kafkasim compare --json``: the two runs, what was set
    differently, and one entry per metric (NaN, a value a run does not have, is null)."""
    return {
        "a": {"path": table.attrs["a"], "label": table.attrs["labels"][0]},
        "b": {"path": table.attrs["b"], "label": table.attrs["labels"][1]},
        "settings_that_differ": [{"key": k, "a": _json_value(va), "b": _json_value(vb)}
                                 for k, va, vb in table.attrs.get("differ", [])],
        "overrides_same_in_both": {k: _json_value(v) for k, v in table.attrs.get("same", [])},
        "metrics": [{"metric": str(m), "key": r["key"], **{c: _json_value(float(r[c]))
                                                          for c in ("a", "b", "difference", "relative")}}
                    for m, r in table.iterrows()],
    }


def _overrides(run: Run) -> dict:
    o = run.summary.overrides or {}
    return {str(k): v for k, v in o.items()} if isinstance(o, dict) else {}


def _resolved(scenario, key: str):
    """The value of a dotted override key in a resolved scenario (Kafka keys hold dots themselves)."""
    node, parts = scenario, key.split(".")
    while parts:
        if isinstance(node, list):
            if not parts[0].isdigit() or int(parts[0]) >= len(node):
                return None
            node, parts = node[int(parts[0])], parts[1:]
            continue
        if not isinstance(node, dict):
            return None
        for n in range(len(parts), 0, -1):  # the longest key that exists: "enable.idempotence" before "enable"
            if ".".join(parts[:n]) in node:
                node, parts = node[".".join(parts[:n])], parts[n:]
                break
        else:
            return None
    return node


def _text(v) -> str:
    return str(v).lower() if isinstance(v, bool) else str(v)


_MISSING = object()
_NOT_SETTINGS = ("name", "description", "seed")  # the label names the scenario and seed; a description is prose


def _diff(a, b, key: str, out: list) -> None:
    """Append (dotted key, a, b) for every leaf of two resolved scenarios that differs (a list entry or
    a mapping key present on one side only counts once, at its own key)."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in dict.fromkeys([*a, *b]):
            _diff(a.get(k, _MISSING), b.get(k, _MISSING), f"{key}.{k}" if key else str(k), out)
    elif isinstance(a, list) and isinstance(b, list):
        for i in range(max(len(a), len(b))):
            _diff(a[i] if i < len(a) else _MISSING, b[i] if i < len(b) else _MISSING, f"{key}.{i}", out)
    elif _text(a) != _text(b):
        out.append((key, a, b))


def setting_differences(run_a: Run, run_b: Run) -> list[tuple[str, object, object]]:
    """What was set differently in the two runs, as (dotted key, value in A, value in B).

    The keys either run overrode come first (as written on the command line), then every other
    setting of the two resolved scenarios (scenario.yaml) that differs (two scenario files, or a
    default that changed); a key overridden in one run only shows the value the other resolved to.
    Settings both runs share, overridden or not, are left out (`shared_overrides` lists the former).
    """
    oa, ob = _overrides(run_a), _overrides(run_b)
    out: list[tuple[str, object, object]] = []
    covered: list[str] = []
    for k in dict.fromkeys([*oa, *ob]):
        ra, rb = _resolved(run_a.scenario, k), _resolved(run_b.scenario, k)
        va = ra if ra is not None else oa.get(k)
        vb = rb if rb is not None else ob.get(k)
        covered.append(k)
        if _text(va) != _text(vb):
            out.append((k, va, vb))
    rest: list = []
    _diff({k: v for k, v in run_a.scenario.items() if k not in _NOT_SETTINGS},
          {k: v for k, v in run_b.scenario.items() if k not in _NOT_SETTINGS}, "", rest)
    out += [(k, va, vb) for k, va, vb in rest
            if not any(k == c or k.startswith(c + ".") or c.startswith(k + ".") for c in covered)]
    return out


def shared_overrides(run_a: Run, run_b: Run) -> list[tuple[str, object]]:
    """Overrides both runs were given with the same value: the same in both, so no label names them."""
    oa, ob = _overrides(run_a), _overrides(run_b)
    return [(k, oa[k]) for k in oa if k in ob and _text(oa[k]) == _text(ob[k])]


def shown_value(v, limit: int = 40) -> str:
    if v is _MISSING or v is None:
        return "(none)" if v is _MISSING else "null"
    if isinstance(v, dict):
        text = "{" + ", ".join(f"{k}: {shown_value(x, limit)}" for k, x in v.items() if x is not None) + "}"
    elif isinstance(v, list):
        text = "[" + ", ".join(shown_value(x, limit) for x in v) + "]"
    else:
        text = _text(v)
    return text if len(text) <= limit else text[:limit - 1] + "…"


LABEL_SETTINGS = 4
"""Differing settings named in a run's label; the rest are counted ("+3 more")."""


def run_labels(run_a: Run, run_b: Run) -> tuple[str, str]:
    """What tells the two runs apart, for legends: scenario and seed, then each setting that differs
    (`setting_differences`, at most LABEL_SETTINGS of them, then a count); settings both share are not named."""
    differ = setting_differences(run_a, run_b)
    more = len(differ) - LABEL_SETTINGS
    labels = []
    for side, run in ((1, run_a), (2, run_b)):
        named = [f"{k}={shown_value(d[side])}" for d in differ[:LABEL_SETTINGS] for k in [d[0]]]
        if more > 0:
            named.append(f"+{more} more setting{'s' * (more != 1)}")
        labels.append(run.label + (f" ({', '.join(named)})" if named else ""))
    if labels[0] == labels[1]:
        labels = [f"{labels[0]} [{run_a.path}]", f"{labels[1]} [{run_b.path}]"]
    return labels[0], labels[1]


def _slug(run: Run) -> str:
    name = re.sub(r"[^A-Za-z0-9._=-]+", "_", f"{run.name}-{run.path.name}" if not run.path.name.startswith(run.name)
                  else run.path.name).strip("._")
    if len(name) > 60:
        name = f"{name[:40]}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"
    return name or "run"


def compare_name(run_a: str | Path | Run, run_b: str | Path | Run) -> str:
    """The default output directory's name, ``<a>-vs-<b>`` (under results/compare/)."""
    a, b = _as_run(run_a, "RUN_A"), _as_run(run_b, "RUN_B")
    return f"{_slug(a)}-vs-{_slug(b)}"


def compare_latency(run_a: str | Path | Run, run_b: str | Path | Run, path: str | Path | None = None,
                    *, max_points: int = 1500) -> "Figure":
    """The record-weighted produce-latency ECDFs of two runs on one axis (A solid blue, B dashed orange).

    Each line: the fraction of acknowledged records whose latency (arrival at the producer to
    acknowledgement) is at or below x; p50 and p99 of each run are marked and written in the
    legend. A run without acknowledgements (acks=0) has no line and the legend says so.
    """
    # matplotlib on use only
    from analysis.plots.style import OKABE_ITO, fmt_count, ms_formatter, new_figure, save_figure

    a, b = _as_run(run_a, "RUN_A"), _as_run(run_b, "RUN_B")
    labels = run_labels(a, b)
    fig = new_figure(9.0, 5.2)
    ax = fig.subplots()
    ax.set_gid("compare:latency")
    styles = [(OKABE_ITO["blue"], "-", "o"), (OKABE_ITO["orange"], "--", "s")]
    drawn = 0
    curves = []
    for run in (a, b):
        lat = produce_latencies(run.read_batches(["outcome", "first_arrival_ms", "last_arrival_ms", "acked_ms",
                                                  "record_count"]))
        curves.append((lat, *weighted_ecdf(lat["latency_ms"].to_numpy(), lat["records"].to_numpy())))
    # one unit for the four percentiles of the legend: never "9,931 ms" beside "10.1 s"
    fmt_ms = ms_formatter([float(x[min(np.searchsorted(y, 0.99), len(x) - 1)]) if len(x) else np.nan
                           for _, x, y in curves])
    for tag, (lat, x, y), label, (color, ls, marker) in zip("AB", curves, labels, styles):
        if len(x) == 0:
            ax.plot([], [], color=color, linestyle=ls, label=f"{tag}: {label}: no acknowledgements, so no latency")
            continue
        x = np.maximum(x, 1e-3)  # a log axis cannot draw 0
        p50 = float(x[np.searchsorted(y, 0.5)])
        p99 = float(x[min(np.searchsorted(y, 0.99), len(x) - 1)])
        px, py = ecdf_points(x, y, max_points)
        ax.plot(px, py, drawstyle="steps-post", color=color, linestyle=ls, linewidth=1.6, gid=f"ecdf:{tag}",
                label=f"{tag}: {label}\n    p50 {fmt_ms(p50)}, p99 {fmt_ms(p99)}; "
                      f"{fmt_count(int(lat['records'].sum()))} acknowledged records")
        ax.plot([p50, p99], [0.5, 0.99], marker=marker, color=color, markeredgecolor="black", markeredgewidth=0.5,
                linestyle="none", zorder=3, gid=f"percentiles:{tag}", label="_marks")
        drawn += 1
    for level, side in ((0.5, 1.0), (0.99, 0.0)):  # p50 label at the right, p99 at the left: clear of the marks
        ax.axhline(level, color="grey", linewidth=0.6, linestyle=":", label="_guide")
        ax.annotate(f"y = {level:g} (p{level * 100:g})", (side, level), xycoords=("axes fraction", "data"),
                    xytext=(-3 if side else 3, -2), textcoords="offset points", va="top",
                    ha="right" if side else "left", fontsize=7, color="grey")
    if drawn:
        ax.set_xscale("log")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("produce latency: record arrival to acknowledgement (ms, log scale)", fontsize=8)
    ax.set_ylabel("fraction of acknowledged records", fontsize=8)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncols=1, frameon=False,
              title="markers: each run's p50 and p99", title_fontsize=7)
    fig.suptitle("Produce latency ECDF, two runs overlaid", fontsize=10)
    if path is not None:
        save_figure(fig, path)
    return fig
