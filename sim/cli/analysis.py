"""`kafkasim plot`, `kafkasim report` and `kafkasim compare`: figures, an HTML page, two runs side by side.

Thin shells over :func:`analysis.write_plots`, :func:`analysis.write_report` and :func:`analysis.compare`. A missing or
invalid results directory ends in a one-line `error: ...` with exit code 2; the files written
are listed on stderr. `--out` never overwrites what kafkasim did not write: a figure directory
may hold only figures, a report path only an earlier report (sim.runs.results.check_output).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Callable, Optional

import typer

from sim.cli.errors import PlainTable, check_file_out, err_console, fail as _fail, out_console

__all__ = ["compare_cli", "plot_cli", "report_cli", "history_cli"]

ResultsArg = Annotated[Path, typer.Argument(
    help="A run directory (kafkasim run) or a sweep directory (kafkasim sweep).", show_default=False)]


def _write_from_results(results_dir: Path, out: Path | None, default_name: str, kind: str, what: str,
                        write: Callable[[Path, Path | None], object]):
    """Check --out (never over what kafkasim did not write), `write`, and note a partial sweep."""
    from analysis import ResultsError

    from sim.runs.results import OutputError, check_output
    from sim.runs.sweep import sweep_dir_note

    target = out or Path(results_dir) / default_name
    try:
        check_output(target, kind, option="--out")
        written = write(results_dir, out)
    except (ResultsError, OutputError) as e:
        _fail(str(e))
    except OSError as e:
        _fail(f"--out {target}: cannot write {what} ({e.strerror or e})")
    note = sweep_dir_note(results_dir)
    if note:
        err_console.print(note, markup=False, highlight=False, soft_wrap=True)
    return written


def plot_cli(results_dir: ResultsArg,
             out: Annotated[Optional[Path], typer.Option(
                 "--out", help="Directory for the figures (default: RESULTS_DIR/plots/).")] = None) -> None:
    """Write the figures that apply to a run or a sweep, as PNG and SVG."""
    from analysis import write_plots

    written = _write_from_results(results_dir, out, "plots", "plots", "figures", write_plots)
    for path in written:
        err_console.print(f"wrote {path}", markup=False, highlight=False, soft_wrap=True)
    if not written:
        err_console.print("no figure applies to these results", markup=False, highlight=False)


def report_cli(results_dir: ResultsArg,
               out: Annotated[Optional[Path], typer.Option(
                   "--out", help="The HTML file (default: RESULTS_DIR/report.html).")] = None) -> None:
    """Write one self-contained HTML page: summary tables, figures and the resolved scenario."""
    from analysis import write_report

    path = _write_from_results(results_dir, out, "report.html", "report", "the report", write_report)
    err_console.print(f"wrote {path}", markup=False, highlight=False, soft_wrap=True)


def _fmt_cell(key: str, v: float, signed: bool = False) -> str:
    import math
    if not math.isfinite(v):
        return "-"
    sign = "+" if signed and v > 0 else ""
    if key.endswith("_ms") or "_ms." in key:
        return "0.0" if round(v, 1) == 0 else f"{sign}{v:,.1f}"
    if float(v).is_integer():
        return f"{sign}{int(v):,}"
    return f"{sign}{v:,.1f}"


def compare_cli(run_a: Annotated[Path, typer.Argument(help="A run directory (kafkasim run).", show_default=False)],
                run_b: Annotated[Path, typer.Argument(help="Another run directory.", show_default=False)],
                out: Annotated[Optional[Path], typer.Option(
                    "--out", help="Directory for the latency figure (default: results/compare/<a>-vs-<b>/).")] = None,
                json_: Annotated[bool, typer.Option(
                    "--json", help="Print the table as JSON on stdout (the runs, the settings that differ, and "
                                   "per metric A, B, B - A and the relative change) instead of the table.")] = False,
                ) -> None:
    """Two runs side by side: a summary table with the difference B - A, and their produce latency ECDFs overlaid."""
    import json
    import math

    from analysis import ResultsError, compare, compare_json, compare_latency, compare_name
    from analysis.compare import shown_value

    from sim.runs.results import OutputError, check_output

    try:
        table = compare(run_a, run_b)
        out_dir = out or Path("results") / "compare" / compare_name(run_a, run_b)
        check_output(out_dir, "plots", option="--out")
    except (ResultsError, OutputError) as e:
        _fail(str(e))
    label_a, label_b = table.attrs["labels"]
    if json_:  # the table as JSON on stdout, nothing else there (the files written are listed on stderr)
        typer.echo(json.dumps(compare_json(table), indent=2))
    else:
        _print_compare_table(table)
    err_console.print(f"A: {table.attrs['a']}\nB: {table.attrs['b']}", markup=False, highlight=False, soft_wrap=True)
    differ, same = table.attrs["differ"], table.attrs["same"]
    if len(differ) > 4:  # the labels name four: the rest here
        err_console.print("settings that differ (A -> B): " + "; ".join(f"{k}: {shown_value(a)} -> {shown_value(b)}"
                                                                       for k, a, b in differ),
                          markup=False, highlight=False, soft_wrap=True)
    if same:
        err_console.print("same in both: " + ", ".join(f"{k}={shown_value(v)}" for k, v in same),
                          markup=False, highlight=False, soft_wrap=True)
    try:
        written = _write_compare_figure(run_a, run_b, out_dir, compare_latency)
    except OSError as e:
        _fail(f"--out {out_dir}: cannot write figures ({e.strerror or e})")
    for path in written:
        err_console.print(f"wrote {path}", markup=False, highlight=False, soft_wrap=True)


def _print_compare_table(table) -> None:
    import math

    label_a, label_b = table.attrs["labels"]
    # the labels (paths, overrides) print as lines of their own above the table: a table title
    # wraps at the table's width, which would cut a path mid-name
    out_console.print(f"A: {label_a}\nB: {label_b}", markup=False, highlight=False, soft_wrap=True)
    t = PlainTable()
    t.add_column("metric")
    t.add_column("A", justify="right")
    t.add_column("B", justify="right")
    t.add_column("B - A", justify="right")
    t.add_column("change", justify="right")
    for metric, r in table.iterrows():
        rel = r["relative"]
        change = f"{rel:+.1%}" if math.isfinite(rel) and r["difference"] != 0 else ""
        t.add_row(str(metric), _fmt_cell(r["key"], r["a"]), _fmt_cell(r["key"], r["b"]),
                  _fmt_cell(r["key"], r["difference"], signed=True), change)
    out_console.print(t)


def _write_compare_figure(run_a, run_b, out_dir: Path, draw) -> list[Path]:
    """Draw into a hidden temporary sibling directory, then move the files in: never half a figure."""
    import os
    import shutil
    import uuid

    from analysis.plots import save_figure

    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / f".latency.tmp-{uuid.uuid4().hex[:8]}"
    try:
        tmp.mkdir()
        files = save_figure(draw(run_a, run_b), tmp / "latency")
        written = []
        for f in files:
            os.replace(f, out_dir / f.name)
            written.append(out_dir / f.name)
        return written
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def describe_cli(run_dir: Annotated[Path, typer.Argument(help="A run directory (kafkasim run).", show_default=False)],
                 at: Annotated[Optional[str], typer.Option(
                     "--at", help="The moment to describe, a duration from the start (e.g. 30s, 1500ms); "
                                  "default: the end of the run.")] = None,
                 under_replicated: Annotated[bool, typer.Option(
                     "--under-replicated-partitions", help="Only partitions whose ISR is smaller than their "
                                                           "replicas.")] = False,
                 under_min_isr: Annotated[bool, typer.Option(
                     "--under-min-isr-partitions", help="Only partitions whose ISR is below min.insync.replicas.")
                 ] = False,
                 unavailable: Annotated[bool, typer.Option(
                     "--unavailable-partitions", help="Only partitions without a leader.")] = False,
                 ) -> None:
    """What `kafka-topics --describe` would have printed at a moment of a run: leader, replicas, ISR (and ELR)."""
    from analysis import ResultsError, load_run
    from analysis.describe import describe, describe_lines

    from sim.scenario.units import format_ms, parse_duration_ms

    chosen = [name for name, on in (("under_replicated", under_replicated), ("under_min_isr", under_min_isr),
                                    ("unavailable", unavailable)) if on]
    if len(chosen) > 1:
        _fail("--under-replicated-partitions, --under-min-isr-partitions, --unavailable-partitions: give at most one")
    try:
        at_ms = None if at is None else parse_duration_ms(at)
    except ValueError as e:
        _fail(f"--at {at}: {e} (allowed: a duration such as 30s or 1500ms)")
    try:
        run = load_run(run_dir)
    except ResultsError as e:
        _fail(str(e))
    end = float(run.summary.sim_duration_ms or 0.0)
    if at_ms is not None and (at_ms < 0 or (end and at_ms > end)):
        _fail(f"--at {at}: outside the run (allowed: 0 to {format_ms(end)})")
    frame = describe(run, at_ms, chosen[0] if chosen else None)
    err_console.print(f"# {run.path} at {format_ms(frame.attrs['at_ms'])}", markup=False, highlight=False,
                      soft_wrap=True)
    for line in describe_lines(frame):
        typer.echo(line)  # tab-separated, as kafka-topics prints it (a rich console would expand the tabs)


def history_cli(run_dir: Annotated[Path, typer.Argument(help="A run directory (kafkasim run).", show_default=False)],
                fmt: Annotated[str, typer.Option(
                    "--format", help="edn: Jepsen's history.edn, one map per line (Elle reads it); jsonl: the same "
                                     "operations as JSON lines.")] = "edn",
                out: Annotated[Optional[Path], typer.Option(
                    "--out", help="Write the history to this file (default: standard output).")] = None,
                limit: Annotated[int, typer.Option(
                    "--limit", help="Refuse a run with more records than this (each record is a line's "
                                    "micro-operation: histories grow fast).")] = 1_000_000,
                ) -> None:
    """The run as a Jepsen history: one row per client operation (invoke, ok/fail/info) in Jepsen's Kafka workload shape."""
    from analysis import ResultsError, load_run
    from analysis.history import FORMATS, HistoryError, history_lines, history_ops

    from sim.runs.contract import write_atomic

    if fmt not in FORMATS:
        _fail(f"--format: {fmt!r} is not a format (allowed: {', '.join(FORMATS)})")
    if limit < 1:
        _fail(f"--limit: {limit} must be at least 1 (allowed: a record count such as 1000000)")
    if out is not None:
        check_file_out("--out", out)
    try:
        run = load_run(run_dir)
        ops = history_ops(run, limit)
    except (ResultsError, HistoryError) as e:
        _fail(str(e))
    if out is None:
        for line in history_lines(ops, fmt):
            typer.echo(line)
        return

    def write(tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8") as fh:
            for line in history_lines(ops, fmt):
                fh.write(line + "\n")

    try:
        write_atomic(out, write)
    except OSError as e:
        _fail(f"--out {out}: cannot write the history ({e.strerror or e})")
    err_console.print(f"wrote {out} ({len(ops):,} operations)", markup=False, highlight=False, soft_wrap=True)
