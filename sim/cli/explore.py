"""`kafkasim explore`: search fault schedules for a property violation and shrink it to a replayable one.

A thin shell over :func:`sim.runs.explore.explore`: bad arguments end in one line naming the field,
exit code 2, before anything runs; the search's progress goes to stderr; the counterexample, its run
directory, timeline and account go to `--out`. Exit code 1 when a violation was found (a search is
a test of the configuration), 3 when none was but some schedules failed, 0 when none was.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from sim.cli.errors import err_console, fail as _fail, out_console, warn as _warn

__all__ = ["explore_cli"]


def default_out(name: str, seed: int, prop: str) -> Path:
    """results/explore/<scenario>-<property>-seed<seed>/."""
    safe = prop.replace(">=", "-ge-").replace("%", "pct")
    return Path("results") / "explore" / f"{name}-{safe}-seed{seed}"


def explore_cli(
    scenario: Annotated[Path, typer.Argument(help="Base scenario YAML file; its own faults are replaced by each "
                                                  "schedule's.", show_default=False)],
    budget: Annotated[Optional[int], typer.Option(
        "--budget", min=1, help="Schedules to try (default 100 when --time is not given).")] = None,
    time_: Annotated[Optional[str], typer.Option(
        "--time", metavar="DURATION", help="Search for this long instead (wall clock, e.g. 10m, 90s); runs whole "
                                           "rounds, so it may overrun by one round.")] = None,
    faults: Annotated[str, typer.Option(
        "--faults", metavar="KINDS", help="Fault kinds to draw, comma separated: crash, shutdown, partition, degrade, "
                                          "pause, power, disk, slow_disk, controller, producer_crash, consumer_crash, "
                                          "consumer_pause.")] = "crash,partition,pause,power",
    max_faults: Annotated[int, typer.Option("--max-faults", min=1, help="Faults per schedule: 1 to this many.")] = 3,
    max_concurrent: Annotated[Optional[int], typer.Option(
        "--max-concurrent", min=1, help="At most this many faults in effect at once (e.g. 1: one broker down at a "
                                        "time). Default: no limit.")] = None,
    window: Annotated[Optional[str], typer.Option(
        "--window", metavar="START..END", help="Faults start within this span of the run (e.g. 5s..50s); default: the "
                                               "middle 80% of `duration`.")] = None,
    prop: Annotated[str, typer.Option(
        "--property", metavar="PROPERTY", help="What every run must satisfy: no-acked-loss, no-duplicates, no-reorder, "
                                               "or availability>=X (e.g. availability>=0.999).")] = "no-acked-loss",
    seed: Annotated[Optional[int], typer.Option(
        "--seed", min=0, help="Seed of every run and of the schedules (default: the scenario's). Same seed and "
                              "budget, same counterexample, with any number of workers.")] = None,
    set_: Annotated[Optional[list[str]], typer.Option(
        "--set", metavar="KEY=VALUE", help="Override a scenario value by dotted path (repeatable), "
                                           "e.g. --set producers.0.acks=1.")] = None,
    workers: Annotated[Optional[int], typer.Option(
        "--workers", min=1, help="Schedules in parallel (default: one per core; 1 runs in this process).")] = None,
    dask: Annotated[Optional[str], typer.Option(
        "--dask", metavar="ADDRESS", help="Run on a Dask scheduler (tcp://host:port) or 'local'; each schedule "
                                          "then runs from scratch (no fork).")] = None,
    out: Annotated[Optional[Path], typer.Option(
        "--out", help="Output directory (default: results/explore/<scenario>-<property>-seed<seed>/); replaces only "
                      "an earlier explore directory.")] = None,
    shrink_budget: Annotated[int, typer.Option(
        "--shrink-budget", min=0, help="At most this many runs to shrink the counterexample (0: do not shrink).")] = 150,
    no_fork: Annotated[bool, typer.Option(
        "--no-fork", help="Run every schedule from scratch instead of forking the shared fault-free prefix "
                          "(same results, slower).")] = False,
    full_runs: Annotated[bool, typer.Option(
        "--full-runs", help="Run every schedule to the end of its settle period; by default a no-acked-loss run "
                            "stops once its faults are over and the cluster has settled (same verdicts, faster).")] = False,
) -> None:
    """Search random fault schedules for a violation of a property, shrink it, write it replayable.

    Each schedule is 1..--max-faults faults of the --faults kinds (targets, times and lengths drawn
    from the seed) over the base scenario. Schedules share the fault-free run up to their first fault
    (forked, not re-simulated). The first violating schedule (lowest index) is shrunk (fewer faults,
    shorter and earlier, then a smaller scenario) and written as counterexample.yaml, which
    `kafkasim run` replays to the same violation, with its run directory, a failover timeline and a
    plain-language account. Exit code 1 if a violation was found, 3 if none was but some schedules
    failed (the search is incomplete), 0 if none was among all of them.
    """
    from analysis.plots import counterexample_timeline
    from sim import explore
    from sim.runs.explore import ExploreError
    from sim.runs.explore.properties import PropertyError
    from sim.runs.explore.schedules import KindsError
    from sim.runs.explore.search import base_scenario
    from sim.scenario.schema import ScenarioError
    from sim.scenario.loading import parse_override

    if budget is not None and time_ is not None:
        _fail("--budget and --time: give one of them (a number of schedules, or a search time)")
    try:
        overrides = dict(parse_override(o) for o in set_ or [])
        base, replaced = base_scenario(scenario, overrides or None)
        if replaced:
            _warn(f"{scenario}: its {replaced} fault(s) are not used: "
                  "each schedule brings its own faults in their place")
        s = base.seed if seed is None else seed
        from sim.runs.explore.properties import parse_property

        target = out if out is not None else default_out(base.name, s, parse_property(prop).name)
        report = explore(scenario, seed=seed, budget=budget, time_limit=time_, faults=faults, max_faults=max_faults,
                         property=prop, window=window, max_concurrent=max_concurrent, workers=workers, dask=dask,
                         out=target, shrink_budget=shrink_budget, fork=not no_fork, early_stop=not full_runs,
                         overrides=overrides or None, figure=counterexample_timeline,
                         progress=True, log=lambda text: err_console.print(text, markup=False, highlight=False))
    except (ExploreError, PropertyError, KindsError, ScenarioError) as e:
        _fail(str(e))
    out_console.print(report.text(), markup=False, highlight=False)
    if report.out is not None:
        out_console.print(f"wrote {report.out}/ (explore.json, schedules.csv"
                          + (", counterexample.yaml, counterexample/, timeline.png, account.md" if report.counterexample
                             else "") + ")", markup=False, highlight=False)
    if report.counterexample is not None:
        out_console.print(f"replay: kafkasim run {report.out / 'counterexample.yaml'}", markup=False, highlight=False)
        raise typer.Exit(code=1)
    if report.errors:
        raise typer.Exit(code=3)  # no violation among the schedules that ran, but some did not run: incomplete
