"""Running a sweep: which runs are still to do, executing them, writing each run as it arrives, and the table."""

from __future__ import annotations


import dataclasses
import json
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd

from sim.runs.contract import ResultsError, discard, is_temporary, read_sweep_table, write_atomic
from sim.runs.results import OutputError, check_output
from sim.runs.runner import WorkTooLarge, estimate_work, work_warnings
from sim.scenario.schema import scenario_warnings
from sim.runs.sweep.spec import (SweepError, SweepRun, Sweep, SweepLike, load_sweep, _as_text)
from sim.runs.sweep.executors import (RunOutcome, ExecuteFn, execute_run, SerialExecutor, PoolExecutor, DaskExecutor, available_cores, _check_executor_args, _executor, _sigint_deferred)
from sim.runs.sweep.progress import (_Progress)
from sim.runs.sweep.table import (collect)


PARTIAL_TABLE_INTERVAL_S = 60.0
"""While a sweep without a complete table runs, its partial table is written when the first run
finishes, then at most this often: even a sweep killed with SIGKILL can be plotted."""


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C during a sweep: every run finished so far is on disk and running the sweep again keeps it."""

    def __init__(self, complete: int, total: int, out_dir: Path, kept_table: bool = False):
        table = ("sweep.parquet still holds the last complete sweep" if kept_table
                 else "sweep.parquet lists the finished ones")
        super().__init__(f"{complete} of {total} runs are complete in {out_dir} ({table}); run the sweep again "
                         f"to run the rest")
        self.complete, self.total, self.out_dir, self.kept_table = complete, total, out_dir, kept_table


# --- the sweep -----------------------------------------------------------------------------------
@dataclass
class SweepReport:
    """A finished sweep: where it is, its table, and what this invocation did."""

    sweep: Sweep
    out_dir: Path
    frame: pd.DataFrame
    ran: int
    skipped: int

    @property
    def failed(self) -> int:
        """Runs recorded as failed (this time or, when resumed, earlier)."""
        return int((self.frame["status"] != "ok").sum())


def sweep(sweep_or_path: SweepLike, *, workers: int | None = None, dask: str | None = None,
          out: str | Path | None = None, force: bool = False, progress: bool = False,
          resume: bool | None = None) -> pd.DataFrame:
    """Run a sweep and return its table (exactly sweep.parquet: one row per run, by run id).

    `workers`: parallel runs in a process pool (default: one per core; 1 runs in this process).
    `dask`: a Dask scheduler address (``tcp://host:port``) or ``"local"`` for a LocalCluster.
    `out`: the sweep directory (default ``results/sweeps/<name>/``). Runs already complete there
    (for the same resolved scenario) are kept and only the rest run; `force`: run every run again.
    `progress`: a progress bar (or, off a terminal, a progress line every few seconds) on stderr.
    `resume` is accepted for old scripts and changes nothing: keeping finished runs is the default.
    """
    return run_sweep(sweep_or_path, workers=workers, dask=dask, out=out, force=force, progress=progress).frame


def run_sweep(sweep_or_path: SweepLike, *, workers: int | None = None, dask: str | None = None,
              out: str | Path | None = None, force: bool = False, progress: bool = False,
              execute: ExecuteFn = execute_run, resume: bool | None = None,
              notes: Callable[[str], None] | None = None) -> SweepReport:
    """:func:`sweep`, returning a :class:`SweepReport`; `execute` must be a module-level function.

    `notes` receives the sweep's warnings (one line each) before anything runs.
    """
    sw = load_sweep(sweep_or_path)
    _check_executor_args(workers, dask)
    out_dir = Path(out) if out is not None else Path("results") / "sweeps" / sw.name
    try:
        check_output(out_dir, "sweep")
    except OutputError as e:
        raise SweepError(str(e)) from None
    ordered = sorted(sw.runs, key=lambda r: r.run_id)
    complete = set() if force else _complete_runs(ordered, out_dir)
    todo = [r for r in ordered if r.run_id not in complete]
    parallel = 1 if not todo else max(1, min(workers or available_cores(), len(todo)))
    estimates, messages, checked = sweep_warnings(sw, todo, parallel)
    todo = [dataclasses.replace(r, checked=checked[r.combination]) for r in todo]  # not computed again per run
    for line in messages:
        if notes is not None:
            notes(line)
    executor = _executor(workers, dask, len(todo), execute) if todo else SerialExecutor(execute)
    by_id = {r.run_id: r for r in ordered}
    with _Progress(progress, sw.name) as bar, executor:  # a bad Dask address fails here, before any write
        _prepare(out_dir, complete)
        bar.note(f"sweep {sw.name}: {len(ordered)} runs ({sw.combinations} combinations x {len(sw.seeds)} seeds); "
                 + (f"{len(complete)} complete, " if complete or not force else "rerunning all (--force), ")
                 + (f"running {len(todo)} {_describe(executor)}" if todo else "nothing to run"))
        bar.start(len(todo), parallel, sum(estimates.get(r.combination, 0.0) for r in todo))
        finished = 0
        partial_written = -math.inf  # the first finished run writes a partial table at once (if none is complete)
        try:
            for outcome in executor.as_completed(todo):
                with _sigint_deferred():  # a run that finished is written whole, even on Ctrl-C
                    _record(out_dir, by_id[outcome.run_id], outcome)
                finished += 1
                if outcome.error is not None:
                    bar.note(f"failed: {outcome.run_id}: {outcome.error.splitlines()[0]}")
                bar.advance(failed=outcome.error is not None, wall_s=outcome.wall_s)
                if time.monotonic() - partial_written > PARTIAL_TABLE_INTERVAL_S and finished < len(todo):
                    with _sigint_deferred():
                        _write_partial_table(sw, out_dir)
                    partial_written = time.monotonic()  # the next one PARTIAL_TABLE_INTERVAL_S later
        except KeyboardInterrupt:
            with _sigint_deferred():
                kept_table = _write_partial_table(sw, out_dir)
            raise SweepInterrupted(len(_complete_runs(ordered, out_dir)), len(ordered), out_dir,
                                   kept_table) from None
    frame = collect(sw, out_dir)
    _write_table(sw, out_dir, frame)
    return SweepReport(sw, out_dir, pd.read_parquet(out_dir / "sweep.parquet"), finished, len(complete))


def sweep_warnings(sw: Sweep, todo: list[SweepRun],
                   parallel: int) -> tuple[dict[int, float], list[str], dict[int, tuple[str, ...]]]:
    """The sweep's warnings, each once, before anything runs; estimated seconds per run by combination;
    and by combination, the warnings each of its runs records (as `sim.run` alone would compute them).

    Scenario warnings of every combination (naming it when they differ between combinations), and
    the work estimate: a combination that cannot fit in memory is a :class:`SweepError`.
    """
    first = {}
    for run in sw.runs:
        first.setdefault(run.combination, run)
    lines: dict[str, None] = {}
    estimates: dict[int, float] = {}
    checked: dict[int, tuple[str, ...]] = {}
    per_combination = {}
    for index, run in first.items():
        per_combination[index] = scenario_warnings(run.scenario)
    shared = set.intersection(*(set(w) for w in per_combination.values())) if per_combination else set()
    for index, run in first.items():
        where = ", ".join(f"{k}={_as_text(v)}" for k, v in run.params.items())
        for w in per_combination[index]:
            lines[w if w in shared or not where else f"{w} (with {where})"] = None
        est = estimate_work(run.scenario)
        try:
            work = work_warnings(est, parallel=parallel)
        except WorkTooLarge as e:
            raise SweepError(f"{e}" + (f" (with {where})" if where else "")) from None
        estimates[index] = est.wall_s
        for w in work:
            lines[w if not where else f"{w} (with {where})"] = None
        alone = work if parallel == 1 else work_warnings(est, parallel=1)
        checked[index] = (*per_combination[index], *alone)
    total = sum(estimates.get(r.combination, 0.0) for r in todo) / max(parallel, 1)
    if total > 4 * 3600:
        lines[f"a long sweep: {len(todo):,} runs, roughly {total / 3600:,.1f} h on {parallel} "
              f"worker{'s' if parallel > 1 else ''} (rough estimate from the scenarios)"] = None
    return estimates, list(lines), checked


def _describe(executor) -> str:
    if isinstance(executor, PoolExecutor):
        return f"on a pool of {executor.workers} worker processes"
    if isinstance(executor, DaskExecutor):
        return (f"on a Dask LocalCluster of {executor.workers} workers" if executor.address == "local"
                else f"on the Dask scheduler at {executor.address}")
    return "in this process"


def _complete_runs(runs: list[SweepRun], out_dir: Path) -> set[str]:
    """Runs whose directory is complete and was produced by the same resolved scenario and seed.

    A run directory left by an edited sweep (same run id, different base scenario) is not
    complete: it is rerun.
    """
    done = set()
    for run in runs:
        d = out_dir / "runs" / run.run_id
        try:
            if (d / "summary.json").is_file() and (d / "scenario.yaml").read_text() == run.scenario.to_yaml():
                done.add(run.run_id)
        except OSError:
            continue
    return done


def _prepare(out_dir: Path, complete: set[str]) -> None:
    """Create the sweep directory and clear what a killed sweep left behind (its hidden temporaries).

    sweep.parquet and sweep.yaml are left as they are: they change only when a new table is ready.
    """
    (out_dir / "runs").mkdir(parents=True, exist_ok=True)
    (out_dir / "failures").mkdir(exist_ok=True)
    # the hidden temporaries and trash of write_atomic and discard, if a sweep was killed mid-write
    for leftover in [e for e in (out_dir / "runs").iterdir() if is_temporary(e)]:
        shutil.rmtree(leftover, ignore_errors=True)
    for leftover in out_dir.glob(".sweep.*.tmp-*"):
        leftover.unlink(missing_ok=True)
    for run_id in complete:  # a failure record left next to a run that completed later
        (out_dir / "failures" / f"{run_id}.json").unlink(missing_ok=True)


def _table_is_complete(path: Path) -> bool:
    """Whether `path` is a readable sweep table in which every run has an outcome (no status "missing")."""
    try:
        status = read_sweep_table(path, columns=["status"])["status"]
    except ResultsError:  # absent, damaged or not a sweep table: not complete
        return False
    return not status.eq("missing").any()


def _write_table(sw: Sweep, out_dir: Path, frame: pd.DataFrame) -> None:
    """sweep.parquet, then the sweep.yaml that describes it, each atomically."""
    write_atomic(out_dir / "sweep.parquet", lambda p: frame.to_parquet(p, index=False))
    write_atomic(out_dir / "sweep.yaml", lambda p: p.write_text(sw.to_yaml()))


def _write_partial_table(sw: Sweep, out_dir: Path) -> bool:
    """Write the table of the runs finished so far, unless a complete table is there; True if one is kept."""
    if _table_is_complete(out_dir / "sweep.parquet"):
        return True
    try:
        _write_table(sw, out_dir, collect(sw, out_dir))
    except OSError:
        pass  # the runs are on disk; the next sweep writes the table
    return False


def sweep_dir_note(path: str | Path) -> str | None:
    """A line for `kafkasim plot`/`report` about a sweep directory that is not complete, else None.

    A partial table (an interrupted or running sweep): how many runs are missing. A complete table
    with finished runs in runs/ that it does not list (a newer, larger sweep not finished yet): says
    the figures show the last complete sweep.
    """
    d = Path(path)
    table = d / "sweep.parquet"
    if not table.is_file():
        return None
    try:
        frame = read_sweep_table(table, columns=["run_id", "status"])
    except ResultsError:  # analysis reports an unreadable table itself
        return None
    missing = int(frame["status"].eq("missing").sum())
    if missing:
        return (f"note: {d.name} is a partial sweep: {missing} of {len(frame)} runs are missing; the figures "
                f"and tables use the {int(frame['status'].eq('ok').sum())} runs that finished (run the sweep "
                f"again to complete it)")
    listed = set(frame["run_id"].astype(str))
    extra = [r for r in (d / "runs").glob("[!.]*") if r.name not in listed and (r / "summary.json").is_file()] \
        if (d / "runs").is_dir() else []
    if extra:
        return (f"note: {d.name}: {len(extra)} finished runs are not in sweep.parquet yet (a newer sweep was "
                f"interrupted); the figures show the last complete sweep (run it again to include them)")
    return None


def _record(out_dir: Path, run: SweepRun, outcome: RunOutcome) -> None:
    """Write one outcome so that runs/ and failures/ always agree with what sweep.parquet will say."""
    run_dir = out_dir / "runs" / run.run_id
    failure = out_dir / "failures" / f"{run.run_id}.json"
    if outcome.results is not None:
        outcome.results.write(run_dir)
        failure.unlink(missing_ok=True)
    else:
        discard(run_dir)  # an older result of this run id must not outlive its rerun
        record = {"run_id": run.run_id, "seed": run.seed, "params": run.params, "error": outcome.error}
        text = json.dumps(record, indent=2, default=str) + "\n"
        write_atomic(failure, lambda p: p.write_text(text))
