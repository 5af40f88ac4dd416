"""The `kafkasim` command line: a thin typer layer over the Python API.

Bad input (scenario files, flags, overrides) ends with a one-line `error: ...` naming the field
and what is allowed, exit code 2, and no traceback. Warnings print once, before a run starts.
Progress goes to stderr (a bar on a terminal, a plain line every few seconds elsewhere), results
to files. Output is never written over anything kafkasim did not write (sim.runs.results.check_output).
"""

from __future__ import annotations

import dataclasses
import faulthandler
import json
import re
import signal
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Annotated, Optional

import typer
import yaml
from typer.exceptions import TyperException
from rich.progress import BarColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from sim import __version__
from sim.cli.analysis import compare_cli, describe_cli, history_cli, plot_cli, report_cli
from sim.cli.errors import PlainTable, err_console, fail as _fail, interruption, out_console, warn as _warn
from sim.cli.explore import explore_cli
from sim.cli.perf import perf_cli
from sim.cli.real import real_cli, versus_cli
from sim.cli.sweep import sweep_cli
from sim.cli.validation import validate_model_cli
from sim.measure.batches import COMMITTED_RPS_LABEL, committed_rps
from sim.runs.contract import RunSummary
from sim.runs.results import OutputError, check_output, output_lock
from sim.runs.sweep.progress import PROGRESS_INTERVAL_S, ProgressDisplay, format_eta
from sim.scenario.schema import Scenario, ScenarioError, scenario_warnings
from sim.scenario.errors import printable
from sim.scenario.loading import is_scenario_data, is_sweep_data, load_yaml, parse_override
from sim.scenario.versions import describe

__all__ = ["app", "main"]

app = typer.Typer(
    name="kafkasim",
    help="Discrete-event simulator of Apache Kafka clusters for fault and durability studies.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

ScenarioArg = Annotated[Path, typer.Argument(help="Scenario YAML file (see `kafkasim scenarios`).",
                                             show_default=False)]
SetOption = Annotated[Optional[list[str]], typer.Option(
    "--set", metavar="KEY=VALUE",
    help="Override a scenario value by dotted path, e.g. --set producers.0.acks=1 "
         "--set topics.0.min.insync.replicas=2 (repeatable).")]
ProducerConfigOption = Annotated[Optional[Path], typer.Option(
    "--producer-config", metavar="FILE",
    help="A Kafka producer config file (Java .properties, e.g. producer.properties): its keys apply to every "
         "producer of the scenario; real Kafka keys the model does not use are listed as not modelled.")]
BrokerConfigOption = Annotated[Optional[Path], typer.Option(
    "--broker-config", metavar="FILE",
    help="A Kafka broker config file (server.properties): its keys apply to `cluster`.")]
TopicConfigOption = Annotated[Optional[Path], typer.Option(
    "--topic-config", metavar="FILE",
    help="A Kafka topic config file (as `kafka-configs --describe` lists them): its keys apply to every topic.")]
SeedOption = Annotated[Optional[int], typer.Option(
    "--seed", min=0, help="Random seed (default: the scenario's `seed`). Same seed, same results.")]


def _load(path: Path, overrides: list[str] | None) -> Scenario:
    """The resolved scenario, or a one-line error. Its warnings are the caller's to print (once)."""
    try:
        # recorded and dropped: Python's file:line + source form of e.g. legacy acks=2, which
        # scenario_warnings() words per field and the caller prints once
        with warnings.catch_warnings(record=True):
            warnings.simplefilter("always")
            return Scenario.resolve(path, overrides or [])
    except ScenarioError as e:
        _fail(str(e))


def _load_with_configs(path: Path, overrides: list[str] | None, producer: Path | None, broker: Path | None,
                       topic: Path | None) -> tuple[Scenario, dict, list[str]]:
    """The resolved scenario with Kafka .properties files applied (as dotted overrides, before --set),
    every override applied (dotted key -> value), and the files' warnings (not-modelled keys)."""
    from sim.scenario.kafka_config import map_config_files

    sc = _load(path, overrides)
    set_pairs = dict(parse_override(o) for o in overrides or [])
    if producer is None and broker is None and topic is None:
        return sc, set_pairs, []
    try:
        mapping = map_config_files({"producers": sc.producers, "topics": sc.topics},
                                   producer=producer, broker=broker, topic=topic)
    except ScenarioError as e:
        _fail(str(e))
    combined = {**mapping.overrides, **set_pairs}  # --set wins over a config file
    try:
        with warnings.catch_warnings(record=True):
            warnings.simplefilter("always")
            sc = Scenario.resolve(path, combined)
    except ScenarioError as e:
        lines = []
        for line in str(e).split("\n"):
            origin = next((o for k, o in mapping.origin.items()
                           if (line.startswith(k + ":") or line.startswith(k + ".")) and k not in set_pairs), None)
            lines.append(f"{line} (from {origin})" if origin else line)
        _fail("\n".join(lines))
    return sc, combined, mapping.warnings


def _check_work(sc: Scenario) -> list[str]:
    """The scenario's warnings and the work estimate's (refusing a run that cannot fit in memory)."""
    from sim.runs.runner import WorkTooLarge, check_work

    try:
        est, work = check_work(sc)
    except WorkTooLarge as e:
        _fail(str(e))
    return [*scenario_warnings(sc), *work]


def _version_callback(value: bool) -> None:
    if value:
        out_console.print(f"kafkasim {__version__}", markup=False, highlight=False)
        raise typer.Exit()


@app.callback()
def _main_options(
    version: Annotated[bool, typer.Option("--version", callback=_version_callback, is_eager=True,
                                          help="Print the kafkasim version and exit.")] = False,
) -> None:
    """Discrete-event simulator of Apache Kafka clusters for fault and durability studies."""


SUFFIX_CHARS = re.compile(r"^[A-Za-z0-9._=,+-]+$")
MAX_SUFFIX = 60


def run_dir_suffix(overrides: dict) -> str:
    """The run directory suffix of a run with overrides: readable (`producers.0.acks=all`) when short
    and plain, else 8 hex digits of SHA-256 over the sorted overrides (as sweep run ids)."""
    from sim.runs.sweep.spec import _as_text, params_digest

    if not overrides:
        return ""
    text = ",".join(f"{k}={_as_text(v)}" for k, v in sorted(overrides.items()))
    if len(text) <= MAX_SUFFIX and SUFFIX_CHARS.match(text):
        return text
    return params_digest(overrides)


def default_run_dir(name: str, seed: int, overrides: dict) -> Path:
    """results/<scenario>/seed-<N>/, or seed-<N>-<suffix>/ for a run with overrides."""
    suffix = run_dir_suffix(overrides)
    return Path("results") / name / (f"seed-{seed}-{suffix}" if suffix else f"seed-{seed}")


class RunProgress:
    """A single run's progress on stderr (a ProgressDisplay): a bar with ETA and simulated rate on a
    terminal, else a plain line every PROGRESS_INTERVAL_S seconds (for `| tee`, nohup, CI logs)."""

    PROGRESS_INTERVAL_S = PROGRESS_INTERVAL_S

    def __init__(self, label: str, end_ms: float):
        self.label, self.end_ms = label, end_ms
        self._display = ProgressDisplay(err_console, TextColumn("[bold]{task.description}"), BarColumn(),
                                        TextColumn("{task.fields[sim]} simulated, {task.fields[rate]}"),
                                        TextColumn("ETA"), TimeRemainingColumn(), TimeElapsedColumn())
        self.tty, self._bar = self._display.tty, self._display.bar
        self._t0 = time.monotonic()

    def __enter__(self) -> "RunProgress":
        self._display.__enter__()
        self._task = self._display.add_task(self.label, total=self.end_ms, sim="0s", rate="")
        self._t0 = time.monotonic()
        return self

    def __exit__(self, *exc) -> None:
        self._display.__exit__(*exc)

    def __call__(self, now: float, end: float) -> None:
        wall = max(time.monotonic() - self._t0, 1e-9)
        rate = now / 1000.0 / wall  # simulated seconds per wall second
        rate_text = f"{rate:,.1f} sim s/s" if rate < 100 else f"{rate:,.0f} sim s/s"
        sim = f"{now / 1000:,.0f}s/{end / 1000:,.0f}s"

        def line() -> str:
            eta = format_eta((end - now) / 1000.0 / rate) if rate > 0 else "?"
            return (f"progress: {self.label}: {sim} simulated ({100 * now / end:.0f}%), {rate_text}, "
                    f"elapsed {format_eta(wall)}, ETA {eta}")

        self._display.update(self._task, line, self.PROGRESS_INTERVAL_S, now >= end, completed=now, sim=sim,
                             rate=rate_text)


def bundled_scenario_dirs() -> list[Path]:
    """Where bundled scenarios live: ./scenarios, then the source tree's scenarios/."""
    here = Path(__file__).resolve().parents[2] / "scenarios"
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
    producer_config: ProducerConfigOption = None,
    broker_config: BrokerConfigOption = None,
    topic_config: TopicConfigOption = None,
    out: Annotated[Optional[Path], typer.Option(
        "--out", help="Run directory (default: results/<scenario name>/seed-<N>/, or seed-<N>-<overrides>/ "
                      "with --set). Replaces only an earlier run directory, never other files.")] = None,
    fail_on: Annotated[Optional[str], typer.Option(
        "--fail-on", metavar="CONDITIONS",
        help="Exit with code 1 if any condition holds for the run's summary, e.g. 'acked_lost>0' or "
             "'duplicates>0, produce_latency_ms.p99>=500' (KEY OP NUMBER, OP one of > >= < <= == !=; keys are "
             "summary.json's, nested ones dotted). For CI.")] = None,
    json_: Annotated[bool, typer.Option(
        "--json", help="Print the summary as JSON on stdout (summary.json's content) instead of the table.")] = False,
) -> None:
    """Run a scenario, print a summary, and write the run directory."""
    from sim.runs.conditions import ConditionError, parse_conditions

    try:  # before running: a typo in a condition must not cost a run
        conditions = parse_conditions(fail_on) if fail_on is not None else []
    except ConditionError as e:
        _fail(str(e))
    sc, overrides, config_warnings = _load_with_configs(scenario, set_, producer_config, broker_config, topic_config)
    seed = sc.seed if seed is None else seed
    out_dir = out or default_run_dir(sc.name, seed, overrides)
    try:  # before running: a run that could not be written must not run for an hour first
        check_output(out_dir, "run", option="--out")
    except OutputError as e:
        _fail(str(e))
    try:  # and no other kafkasim writes there while this one runs
        with output_lock(out_dir):
            _run_and_write(sc, seed, overrides, config_warnings, out_dir, conditions, json_)
    except OutputError as e:  # the lock's (the run's own write errors end in _fail inside)
        _fail(str(e))


def _run_and_write(sc, seed, overrides, config_warnings, out_dir, conditions, json_) -> None:
    """The body of `run` once its output path is checked and held."""
    from sim.runs import runner
    from sim.runs.conditions import failing

    shown = [*config_warnings, *_check_work(sc.model_copy(update={"seed": seed}))]
    for w in shown:  # once, at the top
        _warn(w)
    with RunProgress(f"{sc.name} seed {seed}", sc.duration + sc.settle) as progress:
        results = runner.run(sc, seed=seed, progress=progress)
    # summary.json: the overrides the CLI applied (config files and --set), and the config files'
    # warnings first (sim.run sees neither: it gets the resolved scenario)
    results.summary = dataclasses.replace(results.summary, overrides=overrides,
                                          warnings=[*config_warnings, *(results.summary.warnings or [])])
    for w in results.warnings:
        if w not in shown:  # raised while running: not printed yet
            _warn(w)
    try:
        path = results.write(out_dir)
    except OutputError as e:
        _fail(f"--out {e}")
    except OSError as e:
        _fail(f"--out {out_dir}: cannot write results ({e.strerror or e})")
    if json_:
        typer.echo(json.dumps(results.summary.to_dict(), indent=2, default=str))
    else:
        print_summary(results.summary, committed_rps(results.batches, results.summary.produce_duration_ms))
    err_console.print(f"wrote {path}", markup=False, highlight=False)
    held = failing(conditions, results.summary.to_dict())
    if held:
        err_console.print(f"fail-on: {'; '.join(held)}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(code=1)


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.1f}" if abs(v) < 1e6 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def print_summary(s: RunSummary, committed: float | None = None) -> None:
    """A rich table of the run's headline numbers; `committed` is the run's committed rate (rec/s), which
    comes from its batches (`sim.measure.batches.committed_rps`), not the summary."""
    t = PlainTable(title=f"{s.scenario}  seed {s.seed}", show_header=True, header_style="bold")
    t.add_column("metric")
    t.add_column("value", justify="right")
    rows = [
        ("records produced (offered)", s.records_produced),
        ("records sent (on the wire at least once)", s.records_sent), ("records acked", s.records_acked),
        ("records failed (client told)", s.records_failed), ("records unknown (no answer)", s.records_unknown),
        ("acked_lost (acknowledged, gone: durability violation)", s.acked_lost),
        ("unacknowledged lost (sent, no answer, gone)",
         None if s.records_lost is None or s.acked_lost is None else s.records_lost - s.acked_lost),
        ("records_lost (all sent and gone, never told of a failure: the two above)", s.records_lost),
        ("duplicates", s.duplicates), ("reordered", s.reordered), ("records consumed", s.records_consumed),
        (f"{COMMITTED_RPS_LABEL}: in the final log per second of producing", committed),
        ("acknowledged (rec/s)", s.throughput_rps),
        ("produce latency p50 / p99 / p99.9 / max (ms)",
         " / ".join(_fmt(s.produce_latency_ms[k]) for k in ("p50", "p99", "p999", "max"))),
        ("end-to-end latency p50 / p99 (ms)", " / ".join(_fmt(s.e2e_latency_ms[k]) for k in ("p50", "p99"))),
        ("failover: fault -> leader elected p50 / max (ms)",
         " / ".join(_fmt(s.failover_ms[k]) for k in ("p50", "max"))),
        ("unavailable: fault -> first ack on new leader p50 / max (ms)",
         " / ".join(_fmt(s.unavailable_ms[k]) for k in ("p50", "max"))),
        ("leader elections / unclean", f"{s.leader_elections} / {s.unclean_elections}"),
        ("ISR shrinks / expands", f"{s.isr_shrinks} / {s.isr_expands}"),
        ("offline / under-replicated partitions at end",
         f"{s.offline_partitions_at_end} / {s.under_replicated_partitions_at_end}"),
        ("SimPy events / wall time (s)", f"{_fmt(s.sim_events)} / {s.wall_time_s:.2f}"),
    ]
    for k, v in rows:
        t.add_row(k, _fmt(v))
    out_console.print(t)


@app.command("validate")
def validate_cli(scenario: ScenarioArg, set_: SetOption = None,
                 show: Annotated[bool, typer.Option("--show", help="Print the fully resolved scenario.")] = False,
                 producer_config: ProducerConfigOption = None, broker_config: BrokerConfigOption = None,
                 topic_config: TopicConfigOption = None,
                 ) -> None:
    """Check a scenario file (and overrides) without running it; print its warnings and the work a run takes."""
    from sim.runs.runner import estimate_work

    sc, _, config_warnings = _load_with_configs(scenario, set_, producer_config, broker_config, topic_config)
    for w in [*config_warnings, *_check_work(sc)]:
        _warn(w)
    if show:
        # a YAML comment, so the output stays a loadable scenario
        out_console.print(f"# {describe(sc.cluster.kafka_version)}", markup=False, highlight=False, soft_wrap=True)
        out_console.print(sc.to_yaml(), markup=False, highlight=False, soft_wrap=True)  # never re-wrap YAML
    n_parts = sum(t.partitions for t in sc.topics)
    out_console.print(f"ok: {sc.name}: {sc.cluster.brokers} brokers, {len(sc.topics)} topic(s), {n_parts} partitions, "
                      f"{sum(p.instances for p in sc.producers)} producer(s), {len(sc.faults)} fault(s)",
                      markup=False, highlight=False, soft_wrap=True)
    # the basis of the time: runner.py's SECONDS_PER_* constants, calibrated on the CI machine
    out_console.print(f"{'# ' if show else ''}a run takes {estimate_work(sc).describe()} (rough estimate, good to "
                      "a factor of 2-3: the time is one unloaded core of the 2-core CI machine; a busy machine "
                      "takes longer)", markup=False, highlight=False, soft_wrap=True)


SCENARIO_GROUPS = {
    "scenarios": "Scenarios (kafkasim run FILE)",
    "sweeps": "Sweeps (kafkasim sweep FILE)",
    "bench": "Benchmark scenarios (python bench/bench.py; kafkasim run FILE)",
}


def _classify(f: Path) -> tuple[str, str] | None:
    """(group, description) of a YAML file, or None if it is neither a scenario nor a sweep."""
    try:
        data = load_yaml(f.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    description = " ".join(str(data.get("description", "")).split()) if isinstance(data, dict) else ""
    if is_sweep_data(data):
        return "sweeps", description
    if is_scenario_data(data):
        return ("bench" if f.parent.name == "bench" else "scenarios"), description
    return None


@app.command("scenarios")
def scenarios_cli(names: Annotated[bool, typer.Option(
        "--names", help="Only the files, one path per line (for scripts).")] = False) -> None:
    """List the bundled scenarios, sweeps and benchmark scenarios with their descriptions."""
    groups: dict[str, list[tuple[str, str]]] = {g: [] for g in SCENARIO_GROUPS}
    for d in bundled_scenario_dirs():
        for f in [*sorted(d.glob("*.yaml")), *sorted(d.glob("*/*.yaml"))]:
            kind = _classify(f)
            if kind is not None:
                shown = str(f.relative_to(Path.cwd())) if f.is_relative_to(Path.cwd()) else str(f)
                groups[kind[0]].append((shown, kind[1]))
    if not any(groups.values()):
        _fail("no bundled scenarios found (looked in ./scenarios and the source tree)")
    if names:
        for rows in groups.values():
            for shown, _ in rows:
                out_console.print(shown, markup=False, highlight=False, soft_wrap=True)
        return
    for group, rows in groups.items():
        if not rows:
            continue
        t = PlainTable(title=SCENARIO_GROUPS[group], title_justify="left", show_header=True, header_style="bold")
        # a path the user passes back is never cut or wrapped, whatever the width (80 columns off a terminal)
        t.add_column("file", no_wrap=True, min_width=max(len(shown) for shown, _ in rows))
        t.add_column("description", overflow="fold")  # long config keys wrap, never end in "…"
        for row in rows:
            t.add_row(*row)
        out_console.print(t)


app.command("sweep")(sweep_cli)
app.command("compare")(compare_cli)
app.command("plot")(plot_cli)
app.command("report")(report_cli)
app.command("describe")(describe_cli)
app.command("history")(history_cli)
app.command("perf")(perf_cli)
app.command("validate-model")(validate_model_cli)
app.command("real")(real_cli)
app.command("versus")(versus_cli)
app.command("explore")(explore_cli)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C's KeyboardInterrupt (so a sweep keeps its finished runs)."""


def _terminate(signum, frame) -> None:
    interruption["signal"] = "SIGTERM"
    raise Terminated()


def _interrupt(signum, frame) -> None:
    interruption["signal"] = "SIGINT"
    raise KeyboardInterrupt()


def _interrupted(code: int) -> int:
    """Say (once) that a command stopped on Ctrl-C or SIGTERM, and what was kept; the signal's exit code."""
    term = interruption["signal"] == "SIGTERM"
    if not interruption["explained"]:
        # Straight to stderr: the signal may have landed inside a rich console's own print (the
        # progress display), leaving that console buffering for good.
        sys.stderr.write(f"{'terminated (SIGTERM)' if term else 'interrupted (Ctrl-C)'}: stopped; results are "
                         "written only when complete, so nothing half-written was left and earlier results are "
                         "unchanged\n")
        sys.stderr.flush()
    return 128 + signal.SIGTERM if term else code


def main(argv: list[str] | None = None) -> int:
    """Console entry point: click usage errors become one line with exit code 2."""
    if hasattr(signal, "SIGUSR1") and threading.current_thread() is threading.main_thread():
        # `kill -USR1 <pid>` prints every thread's stack: how to see where a long sweep or run is
        try:
            faulthandler.register(signal.SIGUSR1, file=sys.__stderr__, all_threads=True)
        except (AttributeError, ValueError, OSError):  # no usable stderr file descriptor (embedded, captured)
            pass
    if threading.current_thread() is threading.main_thread():
        # SIGTERM (a CI timeout, `kill`, a container stop) ends a command the way Ctrl-C does: said in
        # one line, with the exit code of the signal, and with what was kept (a sweep keeps its runs).
        interruption.update(signal=None, explained=False)
        try:
            signal.signal(signal.SIGTERM, _terminate)
            if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not where SIGINT is ignored
                signal.signal(signal.SIGINT, _interrupt)
        except (ValueError, OSError):
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
        interruption["signal"] = interruption["signal"] or "SIGINT"
        return _interrupted(130)
    except typer.Exit as e:
        rv = e.exit_code
    # typer returns Ctrl-C (and SIGTERM, raised as a KeyboardInterrupt) as exit code 130
    if interruption["signal"] is not None and rv == 130:
        return _interrupted(130)
    return rv if isinstance(rv, int) else 0


if __name__ == "__main__":
    sys.exit(main())
