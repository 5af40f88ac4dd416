"""Unit strings of scenario files: durations, sizes, rates, bandwidths, and formatting back."""

from __future__ import annotations

import random

import pytest

from sim.scenario.units import (
    format_bandwidth, format_ms, format_rate, parse_bandwidth, parse_duration_ms, parse_rate, parse_size,
)

NAN = float("nan")
INF = float("inf")
HUGE_INT = 10**400  # a YAML integer may have any number of digits; float() of it overflows


# --- durations ---------------------------------------------------------------------------------
@pytest.mark.parametrize("text, ms", [
    ("250ms", 250.0),
    ("30s", 30_000.0),
    ("2m", 120_000.0),
    ("2min", 120_000.0),
    ("1h", 3_600_000.0),
    ("5us", 0.005),
    ("1.5s", 1_500.0),
    (".5s", 500.0),
    ("0.25ms", 0.25),
    ("1e3ms", 1_000.0),
    ("2E-3s", 2.0),
    ("0s", 0.0),
    ("0ms", 0.0),
    (" 3 s ", 3_000.0),  # surrounding and inner blanks
    ("10 ms", 10.0),
    ("30S", 30_000.0),  # units are case-insensitive
    ("250MS", 250.0),
])
def test_parse_duration_valid(text, ms):
    got = parse_duration_ms(text)
    assert isinstance(got, float)
    assert got == pytest.approx(ms, rel=1e-12, abs=0)


@pytest.mark.parametrize("value", [10, 10.0, 0, "10", "0", "2.5"])
def test_parse_duration_bare_number_needs_a_unit(value):
    with pytest.raises(ValueError, match="unit"):
        parse_duration_ms(value)


@pytest.mark.parametrize("value, ms", [
    (10, 10.0), (0, 0.0), (2.5, 2.5), ("10", 10.0), ("2.5", 2.5), (" 7 ", 7.0),
    ("2s", 2_000.0), ("1m", 60_000.0),  # unit strings still work for Kafka's *.ms keys
])
def test_parse_duration_bare_number_is_ms_where_allowed(value, ms):
    assert parse_duration_ms(value, bare_is_ms=True) == ms


@pytest.mark.parametrize("kwargs", [{}, {"bare_is_ms": True}])
@pytest.mark.parametrize("value", ["-1s", "-5ms", "- 1s", "-0.5m"])
def test_parse_duration_negative_string_rejected(value, kwargs):
    with pytest.raises(ValueError, match="cannot parse duration"):
        parse_duration_ms(value, **kwargs)


@pytest.mark.parametrize("value", [-1, -0.5, "-5"])
def test_parse_duration_negative_bare_rejected(value):
    with pytest.raises(ValueError, match="negative|cannot parse"):
        parse_duration_ms(value, bare_is_ms=True)


@pytest.mark.parametrize("kwargs", [{}, {"bare_is_ms": True}])
@pytest.mark.parametrize("value", [NAN, INF, -INF, HUGE_INT])
def test_parse_duration_non_finite_number_rejected(value, kwargs):
    with pytest.raises(ValueError, match="finite"):
        parse_duration_ms(value, **kwargs)


@pytest.mark.parametrize("value", ["1e400s", "1" + "0" * 400 + "ms"])
def test_parse_duration_overflowing_string_rejected(value):
    with pytest.raises(ValueError, match="finite"):
        parse_duration_ms(value)


@pytest.mark.parametrize("value", ["nan", "inf", "NaN s", "infs", "-inf ms", ".nan"])
def test_parse_duration_nan_inf_strings_rejected(value):
    with pytest.raises(ValueError, match="cannot parse duration"):
        parse_duration_ms(value, bare_is_ms=True)


@pytest.mark.parametrize("value", ["", "   ", "s", "ms", "abc", "1ms2", "1 2s", "1..2s", "1.2.3s", "1s 2s",
                                   "10s!", "0x10ms", "1_000ms", "1,5s"])
def test_parse_duration_garbage_rejected(value):
    with pytest.raises(ValueError, match="cannot parse duration"):
        parse_duration_ms(value)


@pytest.mark.parametrize("value", ["1x", "5sec", "3w", "1ns", "1hr"])
def test_parse_duration_unknown_unit_lists_allowed_units(value):
    with pytest.raises(ValueError, match=r"unknown duration unit .*allowed: us, ms, s, m, h"):
        parse_duration_ms(value)


@pytest.mark.parametrize("kwargs", [{}, {"bare_is_ms": True}])
@pytest.mark.parametrize("value", [None, True, False, [], ["1s"], {}, {"s": 1}, b"1s", object(), 1j])
def test_parse_duration_wrong_type_rejected(value, kwargs):
    with pytest.raises(ValueError, match="expected a duration"):
        parse_duration_ms(value, **kwargs)


# --- sizes -------------------------------------------------------------------------------------
@pytest.mark.parametrize("value, n", [
    ("100B", 100),
    ("100b", 100),
    ("16KiB", 16_384),
    ("16 KiB", 16_384),
    ("1KB", 1_000),
    ("1kb", 1_000),
    ("1MB", 1_000_000),
    ("1MiB", 1_048_576),
    ("1GB", 1_000_000_000),
    ("1GiB", 1_073_741_824),
    ("1.5KiB", 1_536),
    ("0.5MiB", 524_288),
    ("1e3B", 1_000),
    ("0B", 0),
    ("100", 100),  # a bare number is bytes
    (100, 100),
    (0, 0),
    (100.0, 100),
    (HUGE_INT, HUGE_INT),  # an int stays an int
])
def test_parse_size_valid(value, n):
    got = parse_size(value)
    assert type(got) is int
    assert got == n


@pytest.mark.parametrize("value", [-1, -1.0])
def test_parse_size_negative_number_rejected(value):
    with pytest.raises(ValueError, match="negative|expected a size"):
        parse_size(value)


@pytest.mark.parametrize("value", ["-1B", "-16KiB"])
def test_parse_size_negative_string_rejected(value):
    with pytest.raises(ValueError, match="cannot parse size"):
        parse_size(value)


@pytest.mark.parametrize("value", [100.5, NAN, INF, -INF])
def test_parse_size_fractional_or_non_finite_float_rejected(value):
    with pytest.raises(ValueError, match="expected a size"):
        parse_size(value)


@pytest.mark.parametrize("value", ["1e400B", "1" + "0" * 400 + "KiB"])
def test_parse_size_overflowing_string_rejected(value):
    with pytest.raises(ValueError, match="finite"):
        parse_size(value)


@pytest.mark.parametrize("value", ["", "B", "KiB", "nan", "inf", "abc", "1 2B", "16KiB!", "1,5KB"])
def test_parse_size_garbage_rejected(value):
    with pytest.raises(ValueError, match="cannot parse size"):
        parse_size(value)


@pytest.mark.parametrize("value", ["1PB", "1PiB", "1bytes", "1kbit"])
def test_parse_size_unknown_unit_lists_allowed_units(value):
    with pytest.raises(ValueError, match=r"unknown size unit .*allowed: B, KB, KiB, MB, MiB, GB, GiB"):
        parse_size(value)


@pytest.mark.parametrize("value", [None, True, False, [], {}, b"100B", object()])
def test_parse_size_wrong_type_rejected(value):
    with pytest.raises(ValueError, match="expected a size"):
        parse_size(value)


# --- rates -------------------------------------------------------------------------------------
@pytest.mark.parametrize("value, per_s", [
    ("50000/s", 50_000.0),
    ("20000/S", 20_000.0),
    ("3000/ms", 3_000_000.0),
    ("1.2e6/s", 1_200_000.0),
    ("60/m", 1.0),
    ("60/min", 1.0),
    ("3600/h", 1.0),
    ("1/us", 1_000_000.0),
    ("5 / s", 5.0),
    (" 7/s ", 7.0),
    ("0.5/s", 0.5),
])
def test_parse_rate_valid(value, per_s):
    got = parse_rate(value)
    assert isinstance(got, float)
    assert got == pytest.approx(per_s, rel=1e-12)


@pytest.mark.parametrize("value", [50_000, 50_000.0, 0])
def test_parse_rate_bare_number_needs_a_unit(value):
    with pytest.raises(ValueError, match=r"needs a unit, e.g. '.*/s'"):
        parse_rate(value)


@pytest.mark.parametrize("value", ["50000", "50000s", "/s", "5/", "abc", "", "1/2/s", "5 per s"])
def test_parse_rate_garbage_rejected(value):
    with pytest.raises(ValueError, match="cannot parse rate"):
        parse_rate(value)


@pytest.mark.parametrize("value", ["-5/s", "-0.1/ms"])
def test_parse_rate_negative_rejected(value):
    with pytest.raises(ValueError, match="cannot parse rate"):
        parse_rate(value)


@pytest.mark.parametrize("value", [NAN, INF, HUGE_INT, "1e400/s", "1" + "0" * 400 + "/s"])
def test_parse_rate_non_finite_rejected(value):
    with pytest.raises(ValueError, match="finite"):
        parse_rate(value)


@pytest.mark.parametrize("value", ["nan/s", "inf/s"])
def test_parse_rate_nan_inf_strings_rejected(value):
    with pytest.raises(ValueError, match="cannot parse rate"):
        parse_rate(value)


@pytest.mark.parametrize("value", ["5/x", "5/sec", "5/w"])
def test_parse_rate_unknown_unit_lists_allowed_units(value):
    with pytest.raises(ValueError, match=r"unknown rate unit .*allowed: /ms, /s, /m, /h, /d"):
        parse_rate(value)


@pytest.mark.parametrize("value", [None, True, False, [], {}, b"5/s", object()])
def test_parse_rate_wrong_type_rejected(value):
    with pytest.raises(ValueError, match="expected a rate"):
        parse_rate(value)


# --- bandwidths --------------------------------------------------------------------------------
@pytest.mark.parametrize("value, bytes_per_s", [
    ("125MB/s", 125_000_000.0),
    ("1GiB/s", 1_073_741_824.0),
    ("10KiB/s", 10_240.0),
    ("1B/s", 1.0),
    ("1 KiB / s", 1_024.0),
    ("1Gbps", 125_000_000.0),
    ("1gbps", 125_000_000.0),
    ("100Mbps", 12_500_000.0),
    ("10Gbit/s", 1_250_000_000.0),
    ("8kbit/s", 1_000.0),
    ("1 Gbps", 125_000_000.0),
])
def test_parse_bandwidth_valid(value, bytes_per_s):
    got = parse_bandwidth(value)
    assert isinstance(got, float)
    assert got == pytest.approx(bytes_per_s, rel=1e-12)


@pytest.mark.parametrize("value", ["125MB", "1GiB", "100"])
def test_parse_bandwidth_size_without_per_second_rejected(value):
    with pytest.raises(ValueError, match="bandwidth"):
        parse_bandwidth(value)


@pytest.mark.parametrize("value", ["0Mbps", "0B/s", "0.0GiB/s"])
def test_parse_bandwidth_must_be_positive(value):
    with pytest.raises(ValueError, match="must be positive"):
        parse_bandwidth(value)


@pytest.mark.parametrize("value", ["-1Gbps", "-125MB/s"])
def test_parse_bandwidth_negative_rejected(value):
    with pytest.raises(ValueError, match="cannot parse bandwidth"):
        parse_bandwidth(value)


@pytest.mark.parametrize("value", ["1e400Gbps", "1e400MB/s"])
def test_parse_bandwidth_overflow_rejected(value):
    with pytest.raises(ValueError, match="finite"):
        parse_bandwidth(value)


@pytest.mark.parametrize("value", ["", "fast", "/s", "nanGbps", "Gbps", "1Gbps/ms"])
def test_parse_bandwidth_garbage_rejected(value):
    with pytest.raises(ValueError, match="cannot parse bandwidth"):
        parse_bandwidth(value)


@pytest.mark.parametrize("value", ["1PB/s", "1Tbps", "1x/s"])
def test_parse_bandwidth_unknown_unit_rejected(value):
    with pytest.raises(ValueError, match="unknown bandwidth unit"):
        parse_bandwidth(value)


@pytest.mark.parametrize("value", [None, True, 1000, 1e9, NAN, [], b"1Gbps"])
def test_parse_bandwidth_wrong_type_rejected(value):
    with pytest.raises(ValueError, match="expected a bandwidth"):
        parse_bandwidth(value)


# --- formatting back ---------------------------------------------------------------------------
@pytest.mark.parametrize("ms, text", [
    (0.0, "0ms"),
    (0.5, "0.5ms"),
    (1.0, "1ms"),
    (250.0, "250ms"),
    (999.0, "999ms"),
    (1_000.0, "1s"),
    (1_500.0, "1500ms"),
    (30_000.0, "30s"),
    (60_000.0, "1m"),
    (90_000.0, "90s"),
    (120_000.0, "2m"),
    (3_600_000.0, "1h"),
    (5_400_000.0, "90m"),
    (7_200_000.0, "2h"),
    (0.005, "0.005ms"),
])
def test_format_ms_shortest_unit(ms, text):
    assert format_ms(ms) == text


@pytest.mark.parametrize("ms", [
    0.0, 0.005, 0.1, 0.25, 1.0, 250.0, 1_500.0, 30_000.0, 90_000.0, 3_600_000.0, 86_400_000.0,
    1_234.567, 1_234_567.0, 12_345_678.0, 100_000.5, 1e-7, 1 / 3, 2**52 + 1.0, 1e16,
])
def test_format_ms_round_trips_exactly(ms):
    # "%g" would keep 6 significant digits: 12345678 ms would come back as 12345700 ms
    assert parse_duration_ms(format_ms(ms)) == ms


def test_format_ms_round_trips_random_values():
    rnd = random.Random(20240501)
    values = [rnd.uniform(0, 1e7) for _ in range(2000)]
    values += [float(rnd.randint(0, 10**9)) for _ in range(2000)]
    values += [10 ** rnd.uniform(-6, 14) for _ in range(2000)]
    bad = [ms for ms in values if parse_duration_ms(format_ms(ms)) != ms]
    assert bad == []


@pytest.mark.parametrize("text", ["250ms", "30s", "2m", "1h", "0.5ms", "90s", "5us", "1.25s", "36h"])
def test_format_ms_of_parsed_duration_is_stable(text):
    ms = parse_duration_ms(text)
    once = format_ms(ms)
    assert parse_duration_ms(once) == ms
    assert format_ms(parse_duration_ms(once)) == once


@pytest.mark.parametrize("text", ["20000/s", "1/h", "7/min", "3000/ms", "1234567/s", "0.1/s", "1.2e6/s"])
def test_format_rate_round_trips_exactly(text):
    per_s = parse_rate(text)
    out = format_rate(per_s)
    assert out.endswith("/s")
    assert parse_rate(out) == per_s


def test_format_rate_is_readable():
    assert format_rate(20_000.0) == "20000/s"
    assert format_rate(0.5) == "0.5/s"


@pytest.mark.parametrize("text", ["125MB/s", "1GiB/s", "1Gbps", "10Gbit/s", "3KiB/s", "1B/s"])
def test_format_bandwidth_round_trips_exactly(text):
    bps = parse_bandwidth(text)
    out = format_bandwidth(bps)
    assert parse_bandwidth(out) == bps
    # 1 GiB/s is 1073741824 B/s: "%g" would have written 1.07374e+09
    if text == "1GiB/s":
        assert out == "1073741824B/s"


def test_format_round_trips_random_rates_and_bandwidths():
    rnd = random.Random(7)
    values = [10 ** rnd.uniform(-6, 12) for _ in range(3000)]
    assert [v for v in values if parse_rate(format_rate(v)) != v] == []
    assert [v for v in values if parse_bandwidth(format_bandwidth(v)) != v] == []


def test_days_and_tebibytes():
    """Soak studies run for days; disks are sized in TB (issue 22)."""
    assert parse_duration_ms("7d") == 7 * 24 * 3_600_000.0
    assert parse_duration_ms("0.5d") == 12 * 3_600_000.0
    assert parse_size("2TiB") == 2 * 1024**4 and parse_size("1TB") == 1000**4
    with pytest.raises(ValueError, match=r"allowed: us, ms, s, m, h, d\)"):
        parse_duration_ms("3w")
    with pytest.raises(ValueError, match=r"allowed: B, KB, KiB, MB, MiB, GB, GiB, TB, TiB\)"):
        parse_size("1PB")
