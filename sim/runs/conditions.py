"""`--fail-on` conditions over a run's summary: `acked_lost>0`, `produce_latency_ms.p99>=500, duplicates>0`.

A condition is ``key OP number``: `key` a dotted summary.json key (`flatten_summary`'s names, such as
``acked_lost``, ``produce_latency_ms.p99``, ``failover_ms.max``), OP one of ``> >= < <= == !=``.
Several conditions are separated by commas or ``or``; the run fails when any of them holds. A key
whose value is missing in a run (no failover happened, so ``failover_ms.max`` is null) never holds.
Parsing happens before the run, against the summary's documented keys, so a typo costs no run.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Callable

from sim.runs.contract import CONDITIONAL_KEYS, Percentiles, RunSummary, flatten_summary

__all__ = ["Condition", "ConditionError", "parse_conditions", "failing", "summary_keys"]

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, "<=": operator.le, "==": operator.eq, "!=": operator.ne, ">": operator.gt, "<": operator.lt,
}
_CONDITION = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*(>=|<=|==|!=|>|<)\s*(-?[0-9][0-9_]*(?:\.[0-9]+)?(?:[eE]-?[0-9]+)?)\s*$")


class ConditionError(ValueError):
    """A `--fail-on` expression that cannot be parsed, or names no summary key."""


@dataclass(frozen=True)
class Condition:
    key: str
    op: str
    value: float

    def holds(self, summary: Mapping) -> bool:
        actual = flatten_summary(summary).get(self.key)
        if actual is None or isinstance(actual, (str, bool)):
            return False
        return OPERATORS[self.op](float(actual), self.value)

    def __str__(self) -> str:
        return f"{self.key}{self.op}{self.value:g}"


def summary_keys() -> list[str]:
    """The numeric keys a condition may name: every documented summary key, nested ones dotted."""
    numeric = ("int", "float", "Optional[int]", "Optional[float]")
    keys = [f.name for f in fields(RunSummary) if str(f.type) in numeric]
    percentiles = list(Percentiles.__annotations__)  # p50, p99, p999, max
    keys += [f"{f.name}.{k}" for f in fields(RunSummary) if "Percentiles" in str(f.type) for k in percentiles]
    return sorted(set(keys) | set(CONDITIONAL_KEYS) - {"overrides"})


def parse_conditions(text: str) -> list[Condition]:
    """`acked_lost>0, produce_latency_ms.p99 >= 500` -> conditions; ConditionError names what is wrong."""
    parts = [p for p in re.split(r",|\bor\b", text) if p.strip()]
    if not parts:
        raise ConditionError("--fail-on: empty (expected e.g. 'acked_lost>0' or 'duplicates>0, acked_lost>0')")
    allowed = summary_keys()
    out = []
    for part in parts:
        m = _CONDITION.match(part)
        if m is None:
            raise ConditionError(f"--fail-on: cannot read {part.strip()!r} (expected KEY OP NUMBER with OP one of "
                                 f"{' '.join(OPERATORS)}, e.g. acked_lost>0)")
        key, op, number = m.groups()
        if key not in allowed:
            close = [k for k in allowed if k.split(".")[0] == key.split(".")[0]] or allowed
            raise ConditionError(f"--fail-on: unknown summary key {key!r} (allowed: {', '.join(close)})")
        out.append(Condition(key, op, float(number.replace("_", ""))))
    return out


def failing(conditions: list[Condition], summary: Mapping) -> list[str]:
    """The conditions that hold for `summary`, each with the value that made it hold."""
    flat = flatten_summary(summary)
    return [f"{c} ({c.key}={flat.get(c.key)})" for c in conditions if c.holds(summary)]
