"""Parse the unit-bearing strings of scenario files: durations, sizes, rates, bandwidths.

Durations become float milliseconds, sizes integer bytes, rates records per second and
bandwidths bytes per second. Parsing happens once, at the scenario boundary.
"""

from __future__ import annotations

import math
import re

__all__ = ["parse_duration_ms", "parse_size", "parse_rate", "parse_bandwidth", "format_ms", "format_rate",
           "format_bandwidth"]

_NUM = r"([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)"
_DURATION_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "min": 60_000.0, "h": 3_600_000.0,
                   "d": 86_400_000.0}
_SIZE_UNITS = {
    "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3,
    "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tb": 1000**4, "tib": 1024**4,
}
_BIT_UNITS = {"bit": 1, "kbit": 1e3, "mbit": 1e6, "gbit": 1e9, "bps": 1, "kbps": 1e3, "mbps": 1e6, "gbps": 1e9}


def _finite(x: float, what: str) -> float:
    try:
        x = float(x)  # a huge int (YAML allows any number of digits) overflows here
    except OverflowError:
        raise ValueError(f"{what} must be finite") from None
    if not math.isfinite(x):
        raise ValueError(f"{what} must be finite")
    return x


def parse_duration_ms(value: object, *, bare_is_ms: bool = False) -> float:
    """Parse "250ms", "30s", "2m", "1h", "7d" into milliseconds; bare numbers only where `bare_is_ms`."""
    if isinstance(value, bool):
        raise ValueError("expected a duration like '250ms', '30s', '2m'")
    if isinstance(value, (int, float)):
        ms = _finite(value, "duration")  # before the hint below, which would suggest 'nans'
        if not bare_is_ms:
            raise ValueError(f"duration {value!r} needs a unit, e.g. '{value}s' or '{value}ms'")
    elif isinstance(value, str):
        m = re.fullmatch(_NUM + r"\s*([a-zA-Z]*)", value.strip())
        if not m:
            raise ValueError(f"cannot parse duration {value!r} (use e.g. '250ms', '30s', '2m', '1h')")
        unit = m.group(2).lower()
        if unit == "" and bare_is_ms:
            unit = "ms"
        if unit not in _DURATION_UNITS:
            raise ValueError(f"unknown duration unit {m.group(2)!r} in {value!r} (allowed: us, ms, s, m, h, d)")
        ms = float(m.group(1)) * _DURATION_UNITS[unit]
    else:
        raise ValueError("expected a duration like '250ms', '30s', '2m'")
    _finite(ms, "duration")
    if ms < 0:
        raise ValueError(f"duration must not be negative, got {value!r}")
    return ms


def parse_size(value: object) -> int:
    """Parse "100B", "16KiB", "1MB", "2TiB" (or a bare integer of bytes) into bytes."""
    if isinstance(value, bool):
        raise ValueError("expected a size like '100B' or '16KiB'")
    if isinstance(value, int):
        n = value
    elif isinstance(value, float) and value.is_integer():
        n = int(value)
    elif isinstance(value, str):
        m = re.fullmatch(_NUM + r"\s*([a-zA-Z]*)", value.strip())
        if not m:
            raise ValueError(f"cannot parse size {value!r} (use e.g. '100B', '16KiB', '1MiB')")
        unit = (m.group(2) or "b").lower()
        if unit not in _SIZE_UNITS:
            raise ValueError(f"unknown size unit {m.group(2)!r} in {value!r} (allowed: B, KB, KiB, MB, MiB, GB, GiB, TB, TiB)")
        n = float(m.group(1)) * _SIZE_UNITS[unit]
        _finite(n, "size")
        n = int(round(n))
    else:
        raise ValueError("expected a size like '100B' or '16KiB'")
    if n < 0:
        raise ValueError(f"size must not be negative, got {value!r}")
    return n


def parse_rate(value: object) -> float:
    """Parse "50000/s", "3000/ms", "1.2e6/s" into events per second."""
    if isinstance(value, bool):
        raise ValueError("expected a rate like '50000/s'")
    if isinstance(value, (int, float)):
        _finite(value, "rate")
        raise ValueError(f"rate {value!r} needs a unit, e.g. '{value}/s'")
    if not isinstance(value, str):
        raise ValueError("expected a rate like '50000/s'")
    m = re.fullmatch(_NUM + r"\s*/\s*([a-zA-Z]+)", value.strip())
    if not m:
        raise ValueError(f"cannot parse rate {value!r} (use e.g. '50000/s', '20/ms')")
    unit = m.group(2).lower()
    if unit not in _DURATION_UNITS:
        raise ValueError(f"unknown rate unit '/{m.group(2)}' in {value!r} (allowed: /ms, /s, /m, /h, /d)")
    ms_per_unit = _DURATION_UNITS[unit]
    # one exact-factor operation, so that "<x>/s" parses to exactly x (format_rate round-trips)
    per_s = float(m.group(1)) * (1000.0 / ms_per_unit) if ms_per_unit <= 1000.0 else \
        float(m.group(1)) / (ms_per_unit / 1000.0)
    _finite(per_s, "rate")
    return per_s


def parse_bandwidth(value: object) -> float:
    """Parse "125MB/s", "1GiB/s" or "1Gbps", "10Gbit/s" into bytes per second."""
    if not isinstance(value, str):
        raise ValueError("expected a bandwidth like '125MB/s' or '1Gbps'")
    s = value.strip()
    m = re.fullmatch(_NUM + r"\s*([a-zA-Z]+)(?:\s*/\s*s)?", s)
    if not m:
        raise ValueError(f"cannot parse bandwidth {value!r} (use e.g. '125MB/s', '1Gbps')")
    unit = m.group(2).lower()
    if unit in _BIT_UNITS:
        bps = float(m.group(1)) * _BIT_UNITS[unit] / 8.0
    elif unit in _SIZE_UNITS and "/" in s:
        bps = float(m.group(1)) * _SIZE_UNITS[unit]
    else:
        raise ValueError(f"unknown bandwidth unit in {value!r} (allowed: B/s, KB/s, MB/s, GB/s, KiB/s.., bps, Mbps, Gbps)")
    _finite(bps, "bandwidth")
    if bps <= 0:
        raise ValueError(f"bandwidth must be positive, got {value!r}")
    return bps


def _exact(x: float) -> str:
    """The shortest decimal that parses back to exactly `x` ("%g" keeps only 6 digits)."""
    s = repr(float(x))
    return s[:-2] if s.endswith(".0") else s


def format_ms(ms: float) -> str:
    """Render milliseconds back as the shortest exact unit string ("30s", "250ms")."""
    for unit, factor in (("h", 3_600_000.0), ("m", 60_000.0), ("s", 1000.0)):
        if ms >= factor and (ms / factor).is_integer():
            return f"{int(ms / factor)}{unit}"
    return f"{_exact(ms)}ms"


def format_rate(per_s: float) -> str:
    """Render records per second as a rate string that parses back exactly ("20000/s")."""
    return f"{_exact(per_s)}/s"


def format_bandwidth(bytes_per_s: float) -> str:
    """Render bytes per second as a bandwidth string that parses back exactly ("125000000B/s")."""
    return f"{_exact(bytes_per_s)}B/s"
