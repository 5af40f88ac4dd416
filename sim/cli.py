"""The `kafkasim` command line: a thin typer layer over the Python API.

Bad input (scenario files, flags, overrides) ends with a one-line `error: ...` naming the field
and what is allowed, exit code 2, and no traceback. Progress goes to stderr, results to files.
"""

from __future__ import annotations

import faulthandler
import signal
import sys
import threading
import warnings
from pathlib import Path
from typing import Annotated, Optional

import typer
import yaml
from rich.console import Console
from typer.exceptions import TyperException
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .scenario import Scenario, ScenarioError, printable
from .versions import describe

__all__ = ["app", "main"]

app = typer.Typer(
    name="kafkasim",
    help="Discrete-event simulator of Apache Kafka clusters for fault and durability studies.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
out_console = Console()
err_console = Console(stderr=True)

ScenarioArg = Annotated[Path, typer.Argument(help="Scenario YAML file (see `kafkasim scenarios`).",
                                             show_default=False)]
SetOption = Annotated[Optional[list[str]], typer.Option(
    "--set", metavar="KEY=VALUE",
    help="Override a scenario value by dotted path, e.g. --set producers.0.acks=1 "
         "--set topics.0.min.insync.replicas=2 (repeatable).")]
SeedOption = Annotated[Optional[int], typer.Option(
    "--seed", min=0, help="Random seed (default: the scenario's `seed`). Same seed, same results.")]


class InputError(Exception):
    """Bad user input: reported on one line with exit code 2."""


def _fail(message: str) -> None:
    for line in str(message).split("\n") or [""]:
        err_console.print(f"error: {printable(line)}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(code=2)


def _load(path: Path, overrides: list[str] | None, show_warnings: bool = True) -> Scenario:
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            sc = Scenario.resolve(path, overrides or [])
    except ScenarioError as e:
        _fail(str(e))
    # scenario warnings (e.g. legacy acks=2) as one line each, not Python's file:line + source dump
    for w in caught if show_warnings else ():
        err_console.print(f"warning: {w.message}", markup=False, highlight=False, soft_wrap=True)
    return sc


def bundled_scenario_dirs() -> list[Path]:
    """Where bundled scenarios live: ./scenarios, then the source tree's scenarios/."""
    here = Path(__file__).resolve().parents[1] / "scenarios"
    dirs = [Path.cwd() / "scenarios", here]
    seen, out = set(), []
    for d in dirs:
        if d.is_dir() and d.resolve() not in seen:
            seen.add(d.resolve())
            out.append(d)
    return out


@app.command("run")
def run_cli(
    scenario: ScenarioArg,
    seed: SeedOption = None,
    set_: SetOption = None,
    out: Annotated[Optional[Path], typer.Option(
        "--out", help="Run directory (default: results/<scenario name>/seed-<N>/).")] = None,
) -> None:
    """Run a scenario, print a summary, and write the run directory."""
    from .runner import run

    sc = _load(scenario, set_, show_warnings=False)  # the run reports them (results.warnings)
    seed = sc.seed if seed is None else seed
    out_dir = out or Path("results") / sc.name / f"seed-{seed}"
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                        TextColumn("{task.fields[sim]} simulated"), TimeElapsedColumn(),
                        console=err_console, transient=True, disable=not err_console.is_terminal)
    with progress:
        task = progress.add_task(f"{sc.name} seed {seed}", total=sc.duration + sc.settle, sim="0s")

        def on_progress(now: float, end: float) -> None:
            progress.update(task, completed=now, sim=f"{now / 1000:.0f}s/{end / 1000:.0f}s")

        results = run(sc, seed=seed, progress=on_progress)
    for w in results.warnings:
        err_console.print(f"warning: {w}", markup=False, highlight=False, soft_wrap=True)
    try:
        path = results.write(out_dir)
    except OSError as e:
        _fail(f"--out {out_dir}: cannot write results ({e.strerror or e})")
    print_summary(results.summary)
    err_console.print(f"wrote {path}", markup=False, highlight=False)


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.1f}" if abs(v) < 1e6 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def print_summary(s: dict) -> None:
    """A rich table of the run's headline numbers."""
    t = Table(title=f"{s['scenario']}  seed {s['seed']}", show_header=True, header_style="bold")
    t.add_column("metric")
    t.add_column("value", justify="right")
    rows = [
        ("records sent", s["records_sent"]), ("records acked", s["records_acked"]),
        ("records failed (client told)", s["records_failed"]), ("records unknown (no answer)", s["records_unknown"]),
        ("acked_lost (durability violation)", s["acked_lost"]), ("records_lost (sent, never told, gone)", s["records_lost"]),
        ("duplicates", s["duplicates"]), ("reordered", s["reordered"]), ("records consumed", s["records_consumed"]),
        ("throughput (acked rec/s)", s["throughput_rps"]),
        ("produce latency p50 / p99 / p99.9 / max (ms)",
         " / ".join(_fmt(s["produce_latency_ms"][k]) for k in ("p50", "p99", "p999", "max"))),
        ("end-to-end latency p50 / p99 (ms)", " / ".join(_fmt(s["e2e_latency_ms"][k]) for k in ("p50", "p99"))),
        ("failover: fault -> leader elected p50 / max (ms)",
         " / ".join(_fmt(s["failover_ms"][k]) for k in ("p50", "max"))),
        ("unavailable: fault -> first ack on new leader p50 / max (ms)",
         " / ".join(_fmt(s["unavailable_ms"][k]) for k in ("p50", "max"))),
        ("leader elections / unclean", f"{s['leader_elections']} / {s['unclean_elections']}"),
        ("ISR shrinks / expands", f"{s['isr_shrinks']} / {s['isr_expands']}"),
        ("offline / under-replicated partitions at end",
         f"{s['offline_partitions_at_end']} / {s['under_replicated_partitions_at_end']}"),
        ("SimPy events / wall time (s)", f"{_fmt(s['sim_events'])} / {s['wall_time_s']:.2f}"),
    ]
    for k, v in rows:
        t.add_row(k, _fmt(v))
    out_console.print(t)


@app.command("validate")
def validate_cli(scenario: ScenarioArg, set_: SetOption = None,
                 show: Annotated[bool, typer.Option("--show", help="Print the fully resolved scenario.")] = False,
                 ) -> None:
    """Check a scenario file (and overrides) without running it."""
    sc = _load(scenario, set_)
    if show:
        # a YAML comment, so the output stays a loadable scenario
        out_console.print(f"# {describe(sc.cluster.kafka_version)}", markup=False, highlight=False, soft_wrap=True)
        out_console.print(sc.to_yaml(), markup=False, highlight=False, soft_wrap=True)  # never re-wrap YAML
    n_parts = sum(t.partitions for t in sc.topics)
    out_console.print(f"ok: {sc.name}: {sc.cluster.brokers} brokers, {len(sc.topics)} topic(s), {n_parts} partitions, "
                      f"{sum(p.instances for p in sc.producers)} producer(s), {len(sc.faults)} fault(s)",
                      markup=False, highlight=False, soft_wrap=True)


@app.command("scenarios")
def scenarios_cli() -> None:
    """List the bundled scenarios with their descriptions."""
    t = Table(show_header=True, header_style="bold")
    t.add_column("file", overflow="fold")  # never cut a path the user needs to pass back
    t.add_column("description")
    found = False
    for d in bundled_scenario_dirs():
        for f in sorted(d.glob("*.yaml")):
            try:
                data = yaml.safe_load(f.read_text()) or {}
            except yaml.YAMLError:
                continue
            if isinstance(data, dict) and "topics" in data:
                found = True
                t.add_row(str(f.relative_to(Path.cwd())) if f.is_relative_to(Path.cwd()) else str(f),
                          str(data.get("description", "")))
    if not found:
        _fail("no bundled scenarios found (looked in ./scenarios and the source tree)")
    out_console.print(t)


# --- command groups that live in their own modules are registered here, one line each ---
# (keep this block: `sweep` comes from sim/cli_sweep.py, `plot`/`report` from sim/cli_analysis.py)
from .cli_sweep import sweep_cli  # noqa: E402
app.command("sweep")(sweep_cli)
from .cli_analysis import plot_cli, report_cli  # noqa: E402
app.command("plot")(plot_cli)
app.command("report")(report_cli)
# --- end of command registrations ---


def main(argv: list[str] | None = None) -> int:
    """Console entry point: click usage errors become one line with exit code 2."""
    if hasattr(signal, "SIGUSR1") and threading.current_thread() is threading.main_thread():
        # `kill -USR1 <pid>` prints every thread's stack: how to see where a long sweep or run is
        try:
            faulthandler.register(signal.SIGUSR1, file=sys.__stderr__, all_threads=True)
        except (AttributeError, ValueError, OSError):  # no usable stderr file descriptor (embedded, captured)
            pass
    try:
        rv = app(args=argv, standalone_mode=False)
    except TyperException as e:  # usage errors: bad flags, bad values, missing arguments
        if type(e).__name__ == "NoArgsIsHelpError":
            err_console.print(e.format_message(), markup=False, highlight=False)
            return 2
        message = " ".join(printable(part) for part in e.format_message().split("\n") if part.strip())
        err_console.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
        return 2
    except (typer.Abort, KeyboardInterrupt):
        err_console.print("aborted", markup=False)
        return 130
    except typer.Exit as e:
        return e.exit_code
    return rv if isinstance(rv, int) else 0


if __name__ == "__main__":
    sys.exit(main())
