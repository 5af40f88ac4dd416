"""`kafkasim real` (a scenario on a real Apache Kafka cluster) and `kafkasim versus` (simulator beside it).

``kafkasim real setup`` fetches Kafka's jars with Maven once (`sim.real.kafka`); ``kafkasim real
SCENARIO --seeds N`` runs the scenario N times on a real cluster of JVMs on this machine and writes
each repetition as a run directory of the results contract (``summary.json`` says ``"source":
"real"``). ``kafkasim versus SCENARIO --seeds N`` runs both sides and prints, per metric, the
simulator's distribution over seeds beside the real one over repetitions and a verdict;
``--all`` does every scenario of ``scenarios/real/`` and writes ``docs/real-vs-sim.md``. Real
runs are cached by scenario content under ``docs/real-runs/`` (``--rerun-real`` forces them).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from sim.cli.errors import err_console, fail as _fail, out_console, warn as _warn
from sim.runs.contract import ResultsError, read_summary
from sim.scenario.schema import Scenario, ScenarioError

__all__ = ["real_cli", "versus_cli", "REAL_RESULTS", "run_real_cached"]

REAL_RESULTS = Path("docs") / "real-runs"  # the measured ground truth: summaries committed, like the docs built on it
REAL_SCENARIOS = Path("scenarios") / "real"
DOC = Path("docs") / "real-vs-sim.md"
DOC_HEADER = "# The simulator against a real Kafka cluster"


def _progress(message: str) -> None:
    err_console.print(f"[dim]{time.strftime('%H:%M:%S')}[/dim] {message}", highlight=False, soft_wrap=True)


def _setup() -> None:
    from sim.real.kafka import RealSetupError, ensure_kafka

    try:
        ensure_kafka(_progress)
    except RealSetupError as e:
        _fail(str(e))


def _load_real(path: Path) -> tuple[Scenario, list[str]]:
    from sim.real.run import RealUnsupported, real_scenario

    try:
        sc = Scenario.resolve(path)
    except (ScenarioError, ValueError, OSError) as e:
        _fail(f"{path}: {e}".split("\n")[0])
    try:
        return real_scenario(sc)
    except RealUnsupported as e:
        _fail(f"{path}: {e}")


class RealRunFailed(RuntimeError):
    """A real repetition failed (one line)."""


def run_real_cached(sc: Scenario, reps: int, out: Path | None = None, rerun: bool = False,
                    cached_only: bool = False) -> list:
    """`reps` real run summaries of `sc`: cached ones reused (unless `rerun`), missing ones run
    (none with `cached_only`). Raises RealRunFailed."""
    from sim.real.run import run_real
    from sim.real.versus import cache_dir_for

    root = out if out is not None else cache_dir_for(REAL_RESULTS, sc)
    summaries = []
    for rep in range(reps):
        d = root / f"rep-{rep}"
        if d.is_dir() and not rerun:
            try:
                summaries.append(read_summary(d / "summary.json"))
                _progress(f"{sc.name}: real repetition {rep + 1}/{reps} from the cache ({d})")
                continue
            except ResultsError:
                pass
        if cached_only:
            continue
        _progress(f"{sc.name}: real repetition {rep + 1}/{reps}")
        try:
            result = run_real(sc, rep, _progress)
        except KeyboardInterrupt:
            raise
        except Exception as e:  # a cluster that did not start, a client that died: one line
            raise RealRunFailed(f"{sc.name}: real repetition {rep}: {e}".split("\n")[0]) from None
        result.write(d)
        summaries.append(result.summary)
    return summaries


def _summary_table(title: str, summaries: list) -> Table:
    t = Table(title=title)
    for col in ("rep", "acked", "acked_lost", "records_lost", "dup", "failover ms", "unavailable ms", "p50 ms", "p99 ms"):
        t.add_column(col, justify="right")
    for s in summaries:
        fo, un, lat = s.get("failover_ms") or {}, s.get("unavailable_ms") or {}, s.get("produce_latency_ms") or {}

        def f(v):
            return "-" if v is None else f"{v:,.0f}"
        t.add_row(str(s.get("seed")), f(s.get("records_acked")), f(s.get("acked_lost")), f(s.get("records_lost")),
                  f(s.get("duplicates")), f(fo.get("p50")), f(un.get("p50")), f(lat.get("p50")), f(lat.get("p99")))
    return t


def real_cli(
    scenario: Annotated[str, typer.Argument(help="A scenario YAML file, or `setup` to fetch Kafka's jars only.",
                                            show_default=False)],
    seeds: Annotated[int, typer.Option("--seeds", min=1, help="Repetitions on the real cluster.")] = 1,
    out: Annotated[Optional[Path], typer.Option(
        "--out", help="Directory for the run directories rep-0, rep-1, ... (default: the cache, "
                      "docs/real-runs/<name>-<hash>).")] = None,
    rerun: Annotated[bool, typer.Option("--rerun", help="Run again even where a cached run exists.")] = False,
) -> None:
    """Run a scenario on a real Apache Kafka 4.0 cluster on this machine (Java 17 and Maven needed).

    One KRaft controller and the scenario's brokers as JVMs, Kafka's VerifiableProducer and
    VerifiableConsumer as the clients, faults as signals to the processes; results in the same
    run-directory format as `kafkasim run`. `kafkasim real setup` only fetches the jars.
    """
    _setup()
    if scenario == "setup":
        return
    path = Path(scenario)
    sc, notes = _load_real(path)
    for n in notes:
        _warn(n)
    try:
        summaries = run_real_cached(sc, seeds, out, rerun)
    except RealRunFailed as e:
        _fail(str(e))
    out_console.print(_summary_table(f"{sc.name} on a real cluster", summaries))


def _sim_summaries(sc: Scenario, seeds: int) -> list:
    from sim.runs.runner import run

    out = []
    for seed in range(seeds):
        _progress(f"{sc.name}: simulator seed {seed + 1}/{seeds}")
        out.append(run(sc, seed).summary)
    return out


def _versus_one(sc: Scenario, notes: list[str], seeds: int, rerun: bool, cached_only: bool = False):
    from sim.real.versus import compare

    real = run_real_cached(sc, seeds, None, rerun, cached_only)
    if not real:
        raise RealRunFailed(f"{sc.name}: no cached real runs (run it without --cached first)")
    sim = _sim_summaries(sc, seeds)
    return compare(sim, real), sim, real


def _print_table(name: str, table) -> None:
    t = Table(title=escape(f"{name}: simulator (seeds) vs real cluster (repetitions): median [min, max] (n)"))
    for col in ("metric", "simulator", "real", "tolerance", "verdict"):
        t.add_column(col, overflow="fold")
    for _, r in table.iterrows():
        v = r["verdict"]
        t.add_row(r["metric"], r["simulator"], r["real"], r["tolerance"],
                  f"[red]{v}[/red]" if v == "DISAGREE" else v)
    out_console.print(t)


def versus_cli(
    scenario: Annotated[Optional[Path], typer.Argument(help="A scenario YAML file (omit with --all).",
                                                       show_default=False)] = None,
    seeds: Annotated[int, typer.Option("--seeds", min=1, help="Simulator seeds, and real repetitions.")] = 5,
    all_: Annotated[bool, typer.Option("--all", help="Every scenario of scenarios/real/; writes docs/real-vs-sim.md "
                                                     "and its figure.")] = False,
    rerun_real: Annotated[bool, typer.Option("--rerun-real", help="Rerun the real side even when cached.")] = False,
    out: Annotated[Path, typer.Option("--out", help="With --all: the markdown document to write.")] = DOC,
    cached: Annotated[bool, typer.Option("--cached", help="Use only the cached real runs (docs/real-runs/): never "
                                                          "start a cluster; rerun only the simulator side.")] = False,
) -> None:
    """Run a scenario on the simulator and on a real Kafka cluster, and compare them metric by metric.

    Each metric's verdict: the two ranges overlap, or the medians differ by no more than its
    stated tolerance. Real runs are cached under docs/real-runs/ by scenario content.
    """
    if all_ == (scenario is not None):
        _fail("give a SCENARIO or --all (not both)")
    _setup()
    if not all_:
        sc, notes = _load_real(scenario)
        for n in notes:
            _warn(n)
        try:
            table, _, _ = _versus_one(sc, notes, seeds, rerun_real, cached)
        except RealRunFailed as e:
            _fail(str(e))
        _print_table(sc.name, table)
        return
    paths = sorted(REAL_SCENARIOS.glob("*.yaml"))
    if not paths:
        _fail(f"--all: no scenarios in {REAL_SCENARIOS}")
    if out.exists() and not out.read_text(errors="replace").startswith(DOC_HEADER):
        _fail(f"--out {out}: exists and is not a real-vs-sim document; kafkasim replaces only its own")
    from sim.real.run import RealUnsupported, real_scenario

    cases = []
    for p in paths:
        try:
            sc = Scenario.resolve(p)
        except (ScenarioError, ValueError, OSError) as e:
            _fail(f"{p}: {e}".split("\n")[0])
        try:
            sc, notes = real_scenario(sc)
        except RealUnsupported as e:  # listed in the document as not run, with the reason
            _warn(f"{p}: not run on the real cluster: {e}")
            cases.append((p, sc, [], None, [], str(e)))
            continue
        try:
            table, sim, real = _versus_one(sc, notes, seeds, rerun_real, cached)
        except RealRunFailed as e:  # listed in the document as failed; the other cases still run
            _warn(str(e))
            cases.append((p, sc, notes, None, [], f"the real run failed: {e}"))
            continue
        _print_table(sc.name, table)
        cases.append((p, sc, notes, table, sim, real))
    from sim.real.report import write_document

    write_document(out, cases, seeds)
    err_console.print(f"wrote {out}", markup=False, highlight=False)
