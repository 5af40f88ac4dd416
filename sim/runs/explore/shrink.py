"""Shrink a violating fault schedule to a minimal one that still violates the property.

Greedy and deterministic, in the spirit of QuickCheck/Hypothesis shrinking: each pass proposes
simpler variants in a fixed order, runs them (in parallel), and keeps the first in that order
that still violates, so the result does not depend on how many workers ran the candidates. The
passes, from the most to the least telling:

1. fewer faults: drop one;
2. a smaller scenario: a shorter run and settle, a lower rate, fewer partitions, brokers,
   producers and consumers (each as a dotted override of the scenario, as `--set` takes);
3. shorter faults: halve one fault's length (restart_after, heal, duration);
4. earlier faults: move one fault to the start of the run (1 s), or halfway there.

It stops when a whole pass keeps nothing, or after `budget` candidate runs.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Callable

from sim.runs.explore.schedules import describe_fault, fault_window, heal_key
from sim.scenario.schema import apply_overrides
from sim.scenario.units import format_ms, format_rate, parse_duration_ms, parse_rate

__all__ = ["Candidate", "shrink", "ShrinkResult"]

EARLIEST_MS = 1000.0
"""Faults are never moved before this: the cluster has settled its first metadata by then."""


@dataclass(frozen=True)
class Candidate:
    """A scenario (as data, faults included) and what it changed from the one it came from."""

    data: dict
    change: str

    @property
    def faults(self) -> list[dict]:
        return self.data.get("faults", [])


RunFn = Callable[[list[Candidate]], list[bool | None]]
"""Runs candidates; for each: violated (True), held (False), or failed (None)."""


@dataclass
class ShrinkResult:
    data: dict
    steps: list[str] = field(default_factory=list)
    runs: int = 0
    exhausted: bool = False
    """True when the budget ran out before a pass kept nothing."""


def _with_faults(data: dict, faults: list[dict], change: str) -> Candidate:
    new = copy.deepcopy(data)
    new["faults"] = faults
    return Candidate(new, change)


def drop_one(data: dict) -> list[Candidate]:
    faults = data.get("faults", [])
    if len(faults) <= 1:
        return []
    return [_with_faults(data, faults[:i] + faults[i + 1:], f"dropped the {describe_fault(f)}") for i, f in enumerate(faults)]


def shorten_one(data: dict) -> list[Candidate]:
    out = []
    for i, f in enumerate(data.get("faults", [])):
        key = heal_key(f)
        if key is None:
            continue
        length = parse_duration_ms(f[key])
        if length < 200:
            continue
        g = dict(f, **{key: format_ms(float(round(length / 2)))})
        out.append(_with_faults(data, data["faults"][:i] + [g] + data["faults"][i + 1:],
                                f"halved {describe_fault(f)}: {key} {f[key]} -> {g[key]}"))
    return out


def earlier_one(data: dict) -> list[Candidate]:
    out = []
    for i, f in enumerate(data.get("faults", [])):
        at = parse_duration_ms(f["at"])
        # as early as it can go, else halfway there
        for new in dict.fromkeys((EARLIEST_MS, float(round(EARLIEST_MS + (at - EARLIEST_MS) / 2)))):
            if at - new < 100:
                continue
            g = dict(f, at=format_ms(float(new)))
            faults = sorted(data["faults"][:i] + [g] + data["faults"][i + 1:], key=lambda x: fault_window(x)[0])
            out.append(_with_faults(data, faults, f"moved {describe_fault(f)} to {g['at']}"))
    return out


def _override(data: dict, changes: dict, change: str) -> Candidate | None:
    try:
        return Candidate(apply_overrides(copy.deepcopy(data), changes), change)
    except Exception:  # noqa: BLE001 - a change this scenario cannot take: not a candidate
        return None


def _referenced(data: dict, key: str) -> set:
    return {f[key] for f in data.get("faults", []) if key in f}


def smaller_scenario(data: dict) -> list[Candidate]:
    """Shorter run and settle, lower rate, fewer partitions, brokers, producers, consumers."""
    out: list[Candidate | None] = []
    duration = parse_duration_ms(data.get("duration", "60s"))
    ends = [fault_window(f)[1] for f in data.get("faults", [])]
    last = max([e for e in ends if math.isfinite(e)] + [parse_duration_ms(f["at"]) for f in data.get("faults", [])],
               default=0.0)
    shorter = math.ceil((last + 5000.0) / 1000.0) * 1000.0
    if shorter < duration:
        out.append(_override(data, {"duration": format_ms(shorter)}, f"shortened the run to {format_ms(shorter)}"))
    settle = parse_duration_ms(data.get("settle", "0s")) if data.get("settle") is not None else None
    if settle is not None and settle >= 10_000:
        half = format_ms(float(round(settle / 2 / 1000) * 1000))
        out.append(_override(data, {"settle": half}, f"halved the settle period to {half}"))
    for i, p in enumerate(data.get("producers", [])):
        rate = p.get("rate")
        if rate is not None and parse_rate(rate) >= 200:
            half = format_rate(round(parse_rate(rate) / 2))
            out.append(_override(data, {f"producers.{i}.rate": half}, f"halved producers.{i}.rate to {half}"))
    for i, t in enumerate(data.get("topics", [])):
        n = int(t.get("partitions", 1))
        used = [int(str(v).rsplit("-", 1)[1]) for key in ("leader_of", "follower_of") for v in _referenced(data, key)
                if str(v).rsplit("-", 1)[0] == t.get("name")]
        fewer = max(max(used, default=-1) + 1, n // 2, 1)
        if fewer < n:
            out.append(_override(data, {f"topics.{i}.partitions": fewer},
                                 f"cut topic {t.get('name')} to {fewer} partition(s)"))
    out += _fewer_brokers(data)
    producers = data.get("producers", [])
    named = _referenced(data, "producer")
    if len(producers) > 1 and not named:
        out.append(_override(data, {"producers": producers[:1]}, "kept only the first producer"))
    consumers = data.get("consumers", [])
    if consumers and not _referenced(data, "consumer"):
        out.append(_override(data, {"consumers": []}, "removed the consumers"))
    return [c for c in out if c is not None]


def _fewer_brokers(data: dict) -> list[Candidate | None]:
    cluster = data.get("cluster", {}) or {}
    n = int(cluster.get("brokers", 3))
    rf = max((int(t.get("replication.factor", 1)) for t in data.get("topics", [])), default=1)
    if n <= max(rf, 1) or cluster.get("racks") or cluster.get("zones"):
        return []
    ids = {b for f in data.get("faults", []) for b in ([f["broker"]] if "broker" in f else f.get("brokers", []))}
    if n - 1 in ids and ids != set(range(n)):
        return []
    new = copy.deepcopy(data)
    new.setdefault("cluster", {})["brokers"] = n - 1
    for f in new.get("faults", []):
        if f.get("brokers") == list(range(n)):
            f["brokers"] = list(range(n - 1))
    return [Candidate(new, f"cut the cluster to {n - 1} brokers")]


PASSES = (("fewer faults", drop_one), ("a smaller scenario", smaller_scenario), ("shorter faults", shorten_one),
          ("earlier faults", earlier_one))
"""In this order: a smaller scenario early makes every later candidate cheaper to run; the passes repeat
until a whole round keeps nothing."""


def _valid(c: Candidate) -> bool:
    from sim.scenario.schema import ScenarioError, validate_scenario

    try:
        validate_scenario(c.data)
        return True
    except ScenarioError:
        return False


def shrink(data: dict, run: RunFn, budget: int = 150, on_step: Callable[[str], None] | None = None) -> ShrinkResult:
    """The simplest variant of `data` (a violating scenario) that `run` still finds violating.

    Candidates the scenario schema rejects (e.g. fewer brokers than a replication factor) are
    dropped before they run, so they cost no run of the budget."""
    result = ShrinkResult(copy.deepcopy(data))
    progress = True
    while progress:
        progress = False
        for _name, propose in PASSES:
            while True:
                candidates = [c for c in propose(result.data) if _valid(c)]
                if not candidates:
                    break
                if result.runs >= budget:
                    result.exhausted = True
                    return result
                candidates = candidates[:max(1, budget - result.runs)]
                outcomes = run(candidates)
                result.runs += len(candidates)
                kept = next((c for c, v in zip(candidates, outcomes) if v), None)
                if kept is None:
                    break
                result.data = kept.data
                result.steps.append(kept.change)
                if on_step is not None:
                    on_step(kept.change)
                progress = True
    return result
