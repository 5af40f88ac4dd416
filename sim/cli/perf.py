"""`kafkasim perf`: a run's throughput and latency as kafka-producer-perf-test and the OpenMessaging
Benchmark print them, with HdrHistogram-log and OMB-JSON exports to lay a run over a real benchmark.

A thin shell over :mod:`analysis.perf`. A missing or invalid run directory, or an export path that
cannot be written, ends in a one-line `error: ...` with exit code 2.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from sim.cli.errors import PlainTable, check_file_out, err_console, fail as _fail, out_console

__all__ = ["perf_cli"]


def _fmt_ms(x) -> str:
    return "-" if x is None else f"{x:,.3f}"


def perf_cli(run_dir: Annotated[Path, typer.Argument(help="A run directory (kafkasim run).", show_default=False)],
             hdr: Annotated[Optional[Path], typer.Option(
                 "--hdr", metavar="FILE", help="Also write the produce latencies as an HdrHistogram log (one "
                                               "interval per simulated second, microseconds).")] = None,
             omb: Annotated[Optional[Path], typer.Option(
                 "--omb", metavar="FILE", help="Also write an OpenMessaging Benchmark result JSON (publishRate, "
                                               "publishLatency50pct, ..., aggregatedPublishLatency9999pct).")] = None,
             json_: Annotated[bool, typer.Option(
                 "--json", help="Print the numbers as JSON on stdout instead of the table.")] = False,
             ) -> None:
    """Throughput and latency as kafka-producer-perf-test and OpenMessaging Benchmark print them."""
    from analysis import ResultsError, load_run
    from analysis.perf import hardware_note, omb_line, perf_numbers, perf_test_line, write_hdr_log, write_omb_json

    for option, target in (("--hdr", hdr), ("--omb", omb)):
        if target is not None:
            check_file_out(option, target)
    try:
        run = load_run(run_dir)
    except ResultsError as e:
        _fail(str(e))
    n = perf_numbers(run)
    note = hardware_note(run)
    if json_:
        typer.echo(json.dumps({**n, "note": note, "perf_test": perf_test_line(n), "omb": omb_line(n)}, indent=2))
    else:
        t = PlainTable(title=f"{run.label}: {n['duration_s']:g} s of producing", show_header=True,
                       header_style="bold")
        t.add_column("")
        t.add_column("value", justify="right")
        rows = [("records sent (acknowledged)", f"{n['records']:,}"),
                ("records/s", f"{n['records_per_sec']:,.1f}"), ("MB/s", f"{n['mb_per_sec']:,.2f}"),
                ("latency avg (ms)", _fmt_ms(n["avg_ms"])), ("latency p50 (ms)", _fmt_ms(n["p50_ms"])),
                ("latency p95 (ms)", _fmt_ms(n["p95_ms"])), ("latency p99 (ms)", _fmt_ms(n["p99_ms"])),
                ("latency p99.9 (ms)", _fmt_ms(n["p999_ms"])), ("latency p99.99 (ms)", _fmt_ms(n["p9999_ms"])),
                ("latency max (ms)", _fmt_ms(n["max_ms"]))]
        for k, v in rows:
            t.add_row(k, v)
        out_console.print(t)
        typer.echo(f"note: {note}")  # on the table, never wrapped
        typer.echo(f"perf-test: {perf_test_line(n)}")
        typer.echo(f"OMB:       {omb_line(n)}")
    for option, target, write in (("--hdr", hdr, write_hdr_log), ("--omb", omb, write_omb_json)):
        if target is None:
            continue
        try:
            write(run, target)
        except OSError as e:
            _fail(f"{option} {target}: cannot write ({e.strerror or e})")
        err_console.print(f"wrote {target}", markup=False, highlight=False, soft_wrap=True)
