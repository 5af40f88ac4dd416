"""The field types of a scenario: durations, sizes, rates and acks, parsed once at the boundary.

A duration is a string with a unit ("250ms", "30s") and becomes float milliseconds here; Kafka's
``*.ms`` keys also take bare numbers of milliseconds. Every scenario model derives from
`FrozenModel` (frozen, unknown keys rejected, fields settable by alias or name).
"""

from __future__ import annotations

import warnings
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, PlainSerializer

from sim.scenario.units import format_bandwidth, format_ms, format_rate, parse_bandwidth, parse_duration_ms, parse_rate, parse_size

__all__ = ["INT32_MAX", "Duration", "KafkaMs", "Size", "Rate", "Bandwidth", "PositiveMs", "PositiveDuration",
           "SignedDuration", "Acks", "FrozenModel"]

INT32_MAX = 2_147_483_647


Duration = Annotated[
    float,
    BeforeValidator(lambda v: parse_duration_ms(v)),
    PlainSerializer(format_ms, return_type=str),
]
"""A duration written with a unit ("250ms", "30s"); float milliseconds inside."""

KafkaMs = Annotated[
    float,
    BeforeValidator(lambda v: parse_duration_ms(v, bare_is_ms=True)),
    PlainSerializer(lambda ms: int(ms) if float(ms).is_integer() else ms),
]
"""A Kafka ``*.ms`` config: a bare number of milliseconds or a duration string."""

Size = Annotated[int, BeforeValidator(parse_size)]
Rate = Annotated[float, BeforeValidator(parse_rate), PlainSerializer(format_rate, return_type=str)]
Bandwidth = Annotated[float, BeforeValidator(parse_bandwidth), PlainSerializer(format_bandwidth, return_type=str)]


def _positive(v: float) -> float:
    if v <= 0:
        raise ValueError("must be greater than 0")
    return v


PositiveMs = Annotated[KafkaMs, AfterValidator(_positive)]
PositiveDuration = Annotated[Duration, AfterValidator(_positive)]


def _parse_acks(v: Any) -> int:
    # Kafka accepts "all", "-1", "0", "1"; the 0.8 broker also took N >= 2 ("N replicas incl. leader").
    if isinstance(v, bool):
        raise ValueError("acks must be one of: all, -1, 0, 1 (or legacy N >= 2)")
    if isinstance(v, str):
        s = v.strip().lower()
        if s == "all":
            return -1
        try:
            v = int(s)
        except ValueError:
            raise ValueError(f"acks must be one of: all, -1, 0, 1 (or legacy N >= 2), got {v!r}") from None
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if not isinstance(v, int) or v < -1 or v > 1000:
        raise ValueError(f"acks must be one of: all, -1, 0, 1 (or legacy N >= 2), got {v!r}")
    if v >= 2:
        # KAFKA-1697: removed in 0.9.0.0; modern brokers answer INVALID_REQUIRED_ACKS.
        warnings.warn(
            f"acks={v} is the Kafka 0.8 legacy form (wait for {v} ISR replicas incl. the leader); "
            "modern Kafka rejects it with INVALID_REQUIRED_ACKS",
            stacklevel=2,
        )
    return v


Acks = Annotated[
    int,
    BeforeValidator(_parse_acks),
    PlainSerializer(lambda a: "all" if a == -1 else a),
]




def _signed_duration_ms(v: Any) -> float:
    """A duration that may be negative ("-60s": a clock stepped back)."""
    if isinstance(v, str) and v.strip().startswith("-"):
        return -parse_duration_ms(v.strip()[1:])
    return parse_duration_ms(v)


SignedDuration = Annotated[
    float,
    BeforeValidator(_signed_duration_ms),
    PlainSerializer(lambda ms: ("-" if ms < 0 else "") + format_ms(abs(ms)), return_type=str),
]
"""A duration with a unit that may be negative ("-60s"); float milliseconds inside."""


class FrozenModel(BaseModel):
    """The base of every scenario model: frozen, unknown keys rejected, fields settable by alias or name."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
