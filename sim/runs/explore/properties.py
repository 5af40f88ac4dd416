"""The properties a fault-schedule search checks on each run, and how each is judged.

A property is judged from the facts of one run (the checker's record counts, and for availability
the failover rows), never from the schedule: `no-acked-loss` fails when a record the producer saw
acknowledged is not in the final committed log, whatever caused it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Property", "parse_property", "PROPERTIES", "PropertyError"]

PROPERTIES = {
    "no-acked-loss": ("acked_lost", "acknowledged records missing from the final committed log"),
    "no-duplicates": ("duplicates", "extra copies of records in the final committed log"),
    "no-reorder": ("reordered", "records committed after a later record of the same producer"),
}
"""Counting properties: name -> (the summary count that must stay 0, what it counts)."""

_AVAILABILITY = re.compile(r"^availability\s*>=\s*([0-9.]+)\s*(%?)$")


class PropertyError(ValueError):
    """An unknown or malformed property: one line naming the allowed forms."""


@dataclass(frozen=True)
class Property:
    """What every run of a search must satisfy."""

    name: str
    count: str | None = None
    """The record count that must stay 0 (the counting properties)."""
    min_availability: float | None = None
    """availability>=X: the least share of partition-time, over the produce period, with a leader that takes writes."""

    @property
    def stops_early(self) -> bool:
        """Whether a run may stop once its faults are over and the cluster has settled: for acknowledged
        loss only (a duplicate or a reordering can still come from a retry, availability from a late ack)."""
        return self.count == "acked_lost"

    @property
    def needs_failovers(self) -> bool:
        return self.min_availability is not None

    def judge(self, counts: dict, availability: float | None = None) -> str | None:
        """What was violated, in one line (None: the property holds).

        Acknowledged records that are missing from the committed log only because the run ended
        before the leader's high watermark reached them (`acked_pending`: still in its log) are not
        a loss: the run had not settled (see `unsettled`).
        """
        if self.count is not None:
            n = int(counts.get(self.count, 0))
            if self.count == "acked_lost":
                n -= int(counts.get("acked_pending", 0))
            return f"{n:,} {PROPERTIES[self.name][1]}" if n > 0 else None
        if availability is not None and availability < self.min_availability:
            return f"availability {availability:.4%} < {self.min_availability:.4%}"
        return None

    def unsettled(self, counts: dict) -> str | None:
        """Why the run cannot be judged (it ended before the cluster settled), or None."""
        n = int(counts.get("acked_pending", 0))
        if self.count == "acked_lost" and n > 0:
            return (f"{n:,} acknowledged records were still above the high watermark when the run ended "
                    f"(not committed yet, not lost): lengthen `settle`")
        return None

    def measure(self, counts: dict, availability: float | None) -> float:
        """The property's figure for one run: the count, or the availability."""
        return float(counts.get(self.count, 0)) if self.count is not None else float(availability or 0.0)


def parse_property(text: str) -> Property:
    """`no-acked-loss`, `no-duplicates`, `no-reorder`, or `availability>=X` (X a share: 0.999 or 99.9%)."""
    t = str(text).strip().lower()
    if t in PROPERTIES:
        return Property(t, count=PROPERTIES[t][0])
    m = _AVAILABILITY.match(t)
    if m:
        x = float(m.group(1)) / (100.0 if m.group(2) else 1.0)
        if 0.0 < x <= 1.0:
            return Property(f"availability>={x:g}", min_availability=x)
    raise PropertyError(f"property: unknown {text!r}; allowed: {', '.join(PROPERTIES)}, availability>=X "
                        f"(X a share in (0, 1] such as 0.999, or a percentage such as 99.9%)")
