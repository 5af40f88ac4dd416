"""The simulator beside the real cluster: each metric's distribution on both sides and a verdict.

Real timings on a shared 2-core machine are noisy, so nothing is judged on one run: each side is
summarised by its range and median over runs (simulator seeds, real repetitions), and a metric
agrees when the two ranges overlap or the medians differ by no more than the metric's stated
tolerance, ``max(absolute, relative x the larger median)`` (:data:`METRICS`).

Real runs are cached by scenario content (:func:`scenario_key`) under ``docs/real-runs/``, so
re-running `kafkasim versus` after a model change reruns only the simulator side.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import yaml

from sim.real.kafka import KAFKA_VERSION
from sim.scenario.schema import Scenario

__all__ = ["Metric", "METRICS", "HARNESS_VERSION", "scenario_key", "cache_dir_for", "metric_values", "compare",
           "verdict", "tolerance_text"]

HARNESS_VERSION = "1"
"""Bump when the harness measures differently: cached real runs of an older harness are not reused."""


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    unit: str
    abs_tol: float
    rel_tol: float


METRICS: tuple[Metric, ...] = (
    Metric("acked_lost", "acked_lost", "records", 10, 0.5),
    Metric("records_lost", "records_lost", "records", 10, 0.5),
    Metric("duplicates", "duplicates", "records", 10, 0.5),
    Metric("failover_ms.p50", "failover_ms", "ms", 500, 0.2),
    Metric("unavailable_ms.p50", "unavailable_ms", "ms", 500, 0.2),
    Metric("produce_latency_ms.p50", "produce latency p50", "ms", 5, 0.5),
    Metric("produce_latency_ms.p99", "produce latency p99", "ms", 50, 0.5),
    Metric("throughput_rps", "throughput", "records/s", 0, 0.05),
)
"""The compared metrics (summary keys, dotted into nested ones) and their tolerances."""


def tolerance_text(m: Metric) -> str:
    parts = []
    if m.abs_tol:
        parts.append(f"{m.abs_tol:g} {m.unit}")
    if m.rel_tol:
        parts.append(f"{m.rel_tol:.0%}")
    return " or ".join(parts)


def scenario_key(sc: Scenario) -> str:
    """A hash of the scenario's content, the Kafka version and the harness version (the real cache key).

    The content is what the scenario sets, without kafkasim's defaults: a new simulator setting (a
    config the model learns, with its default) must not make every measured real run a cache miss.
    """
    declared = sc.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    text = "\n".join([yaml.safe_dump(declared, sort_keys=True), KAFKA_VERSION, HARNESS_VERSION])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def cache_dir_for(root: Path, sc: Scenario) -> Path:
    return Path(root) / f"{sc.name}-{scenario_key(sc)}"


def _get(summary: Mapping, key: str):
    v = summary
    for part in key.split("."):
        if not isinstance(v, Mapping) or part not in v:
            return None
        v = v[part]
    return v


def metric_values(summaries: Sequence[Mapping], key: str) -> list[float]:
    """The metric over runs (runs where it is undefined, e.g. no failover, left out)."""
    out = []
    for s in summaries:
        v = _get(s, key)
        if v is not None:
            out.append(float(v))
    return out


def verdict(m: Metric, sim: list[float], real: list[float]) -> str:
    """'agree', 'DISAGREE', or 'n/a' (a side has no value: e.g. no failover measured)."""
    if not sim and not real:
        return "n/a"
    if not sim or not real:
        return "DISAGREE"
    if min(sim) <= max(real) and min(real) <= max(sim):
        return "agree"
    ms, mr = float(np.median(sim)), float(np.median(real))
    tol = max(m.abs_tol, m.rel_tol * max(abs(ms), abs(mr)))
    return "agree" if abs(ms - mr) <= tol else "DISAGREE"


def _fmt(values: list[float]) -> str:
    if not values:
        return "-"
    lo, med, hi = min(values), float(np.median(values)), max(values)

    def f(x: float) -> str:
        return f"{x:,.0f}" if abs(x) >= 100 or float(x).is_integer() else f"{x:,.1f}"
    if lo == hi:
        return f"{f(med)} (n={len(values)})"
    return f"{f(med)} [{f(lo)}, {f(hi)}] (n={len(values)})"


def compare(sim: Sequence[Mapping], real: Sequence[Mapping]) -> pd.DataFrame:
    """One row per metric: both sides' median [range] (n), the tolerance and the verdict."""
    rows = []
    for m in METRICS:
        s, r = metric_values(sim, m.key), metric_values(real, m.key)
        rows.append({"metric": m.label, "unit": m.unit, "simulator": _fmt(s), "real": _fmt(r),
                     "tolerance": tolerance_text(m), "verdict": verdict(m, s, r),
                     "sim_median": float(np.median(s)) if s else None,
                     "real_median": float(np.median(r)) if r else None,
                     "sim_values": s, "real_values": r})
    return pd.DataFrame(rows)
