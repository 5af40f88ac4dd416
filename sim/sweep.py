"""Sweeps: one scenario run over a grid of Kafka settings and many seeds, on every core.

A sweep file names a base scenario, a ``grid`` of dotted scenario keys to lists of values, optional
``zip`` groups (keys that vary together: the i-th run of a group takes the i-th value of every
list) and ``seeds`` (a count N meaning seeds 0..N-1, or a list). Before anything runs it expands
into one :class:`SweepRun` per (parameter combination, seed), and every combination is validated
as a scenario, so an unknown key or a rejected value is a one-line :class:`SweepError`.

Runs execute in this process (``workers=1``), in a spawn-based ``ProcessPoolExecutor`` (default,
one worker per core) or on a Dask distributed cluster (``dask="tcp://host:port"``, or ``"local"``
for a ``LocalCluster``). Workers only simulate and send the :class:`~sim.results.Results` back;
this process writes each run as it arrives, atomically. An interrupted or crashed sweep therefore
keeps every finished run, and running the sweep again runs only what is missing: a finished run
(complete, for the same resolved scenario) is never run again unless ``force=True``.
``sweep.parquet`` is rebuilt from the run directories in run-id order, so it does not depend on
what executed the runs or in which order they finished.

Output directory (default ``results/sweeps/<name>/``)::

    sweep.yaml              the resolved sweep (base scenario inlined, seeds listed) of sweep.parquet
    runs/<run_id>/          a run directory (Results.write); complete iff summary.json exists
    failures/<run_id>.json  {run_id, seed, params, error} of a run that raised or whose worker died
    sweep.parquet           one row per run, sorted by run_id

``sweep.parquet`` and ``sweep.yaml`` are written together, atomically, once every run has an
outcome. A complete table is never deleted or replaced by a partial one: a sweep that is
interrupted (or still running, every minute) writes a partial table, whose unfinished runs have
status ``missing``, only where there is no complete table yet, so `kafkasim plot` and `report`
work on the runs that finished. A directory that holds anything but a sweep is never written.

``sim.sweep`` is the function re-exported by ``sim/__init__``, which shadows this module as an
attribute of ``sim``: import from it with ``from sim.sweep import ...``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import multiprocessing
import os
import shutil
import signal
import threading
import time
import traceback
import uuid
import warnings
from collections import deque
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import product
from pathlib import Path
from typing import Any, Callable, Iterator, Union

import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from analysis.stats import mean_ci
from analysis.load import write_atomic
from analysis.tables import flatten_summary

from .results import OutputError, Results, check_output
from .runner import WorkTooLarge, check_work
from .runner import run as simulate_run
from .scenario import Scenario, ScenarioError, _load_raw, apply_overrides, is_scenario_data, scenario_warnings

__all__ = [
    "sweep", "run_sweep", "load_sweep", "aggregate", "collect", "execute_run", "Sweep", "SweepSpec", "SweepRun",
    "SweepReport", "RunOutcome", "SweepError", "SweepInterrupted", "AGGREGATE_METRICS", "RUN_COLUMNS", "WORKER_DIED",
    "params_digest", "available_cores", "MAX_RUNS", "sweep_dir_note",
]

MAX_RUNS = 100_000
"""The most runs one sweep may expand to (combinations x seeds): each is validated and held before any runs."""
PARTIAL_TABLE_INTERVAL_S = 60.0
"""While a sweep without a complete table runs, its partial table is written when the first run
finishes, then at most this often: even a sweep killed with SIGKILL can be plotted."""

SWEEP_NAME = r"^[A-Za-z0-9._-]+$"
RUN_COLUMNS = ("run_id", "seed", "status", "error", "scenario", "fault_kinds")
"""The leading columns of sweep.parquet; the swept parameters and the summary scalars follow."""

AGGREGATE_METRICS = {
    "records_lost": "records_lost",
    "acked_lost": "acked_lost",
    "throughput_rps": "throughput (rec/s)",
    "produce_latency_ms.p99": "p99 latency (ms)",
    "failover_ms.max": "failover (ms)",
}
"""sweep.parquet columns averaged per parameter combination, with their table headings.
Failover is the per-run maximum over partitions of fault -> new leader elected."""

WORKER_DIED = ("BrokenProcessPool: the worker process running this run died (killed or crashed), twice, "
               "the second time running it alone; resuming the sweep reruns it")


class SweepError(ScenarioError):
    """A bad sweep file, key or value, phrased as one line per problem; nothing has run."""


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C during a sweep: every run finished so far is on disk and running the sweep again keeps it."""

    def __init__(self, complete: int, total: int, out_dir: Path, kept_table: bool = False):
        table = ("sweep.parquet still holds the last complete sweep" if kept_table
                 else "sweep.parquet lists the finished ones")
        super().__init__(f"{complete} of {total} runs are complete in {out_dir} ({table}); run the sweep again "
                         f"to run the rest")
        self.complete, self.total, self.out_dir, self.kept_table = complete, total, out_dir, kept_table


# --- the sweep file ------------------------------------------------------------------------------
class SweepSpec(BaseModel):
    """A sweep file as written; :func:`load_sweep` resolves it into a :class:`Sweep`."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str | None = Field(None, pattern=SWEEP_NAME, description=(
        "sweep name (default: the file name); names results/sweeps/<name>/ and prefixes run ids"))
    description: str = Field("", description="what the sweep asks")
    scenario: str | dict[str, Any] = Field(..., description=(
        "base scenario: a path (relative to the sweep file) or an inline scenario mapping"))
    overrides: dict[str, Any] = Field(default_factory=dict, alias="set", description=(
        "dotted overrides applied to the base before the grid, like `kafkasim run --set`"))
    grid: dict[str, list[Any]] = Field(default_factory=dict, description=(
        "dotted scenario key -> list of values; every combination of the lists runs"))
    zip_groups: list[dict[str, list[Any]]] = Field(default_factory=list, alias="zip", description=(
        "groups of keys that vary together: equal-length lists, one run per position"))
    seeds: int | list[int] = Field(1, description="a count N (seeds 0..N-1) or a list of seeds")

    @model_validator(mode="before")
    @classmethod
    def _check_shape(cls, data: Any) -> Any:
        # Hand-written messages that name the dotted key; pydantic's union errors would not.
        if not isinstance(data, dict):
            raise ValueError(f"sweep: expected a mapping at the top level, got {type(data).__name__}")
        # an empty YAML section (`grid:` and nothing under it) means none
        data = {k: v for k, v in data.items() if not (k in ("set", "grid", "zip") and v is None)}
        if "scenario" in data and not isinstance(data["scenario"], (str, dict)):
            raise ValueError("scenario: must be a path to a scenario file or an inline scenario mapping")
        if not isinstance(data.get("set", {}), dict):
            raise ValueError("set: must be a mapping of dotted scenario keys to values")
        grid = data.get("grid", {})
        if not isinstance(grid, dict):
            raise ValueError("grid: must be a mapping of dotted scenario keys to lists of values")
        _check_axis("grid", grid)
        groups = data.get("zip", [])
        if not isinstance(groups, list):
            raise ValueError("zip: must be a list of groups, each a mapping of dotted keys to equal-length lists")
        for i, group in enumerate(groups):
            if not isinstance(group, dict) or not group:
                raise ValueError(f"zip.{i}: must be a non-empty mapping of dotted keys to equal-length lists")
            _check_axis(f"zip.{i}", group)
            lengths = {k: len(v) for k, v in group.items()}
            if len(set(lengths.values())) > 1:
                raise ValueError(f"zip.{i}: lists must have the same length ("
                                 + ", ".join(f"{k} has {n}" for k, n in lengths.items()) + ")")
        seeds = data.get("seeds", 1)
        if isinstance(seeds, list):
            bad = [s for s in seeds if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s <= 2**63 - 1]
            if not seeds or bad:
                raise ValueError("seeds: a list of seeds must be non-empty integers in 0..2**63-1"
                                 + (f", got {bad[0]!r}" if bad else ""))
            if len(set(seeds)) != len(seeds):
                raise ValueError("seeds: the list repeats a seed")
        elif isinstance(seeds, bool) or not isinstance(seeds, int) or not 1 <= seeds <= 1_000_000:
            raise ValueError(f"seeds: must be a count 1..1000000 (seeds 0..N-1) or a list of seeds, got {seeds!r}")
        return data


def _check_axis(section: str, axis: dict) -> None:
    for key, values in axis.items():
        if not isinstance(key, str) or not key:
            raise ValueError(f"{section}: keys must be dotted scenario keys such as producers.0.acks, got {key!r}")
        if not isinstance(values, list):
            raise ValueError(f"{section}.{key}: must be a list of values, e.g. [0, 1, all]")
        if not values:
            raise ValueError(f"{section}.{key}: must list at least one value")


@dataclass(frozen=True)
class SweepRun:
    """One run of a sweep: a parameter combination, a seed, and the scenario they resolve to."""

    run_id: str
    seed: int
    params: dict[str, Any]
    """Swept dotted key -> value as written in the sweep file."""
    scenario: Scenario
    """The fully resolved scenario, with ``seed`` set to this run's seed."""
    combination: int
    """Index of the parameter combination in expansion order (grid keys, then zip groups)."""


@dataclass(frozen=True)
class Sweep:
    """A validated, expanded sweep: every run is known (and valid) before any runs."""

    name: str
    description: str
    base: dict
    """The raw base scenario with the sweep's ``set`` applied; combinations are applied to it."""
    grid: dict[str, list]
    zip_groups: list[dict[str, list]]
    seeds: tuple[int, ...]
    runs: tuple[SweepRun, ...]

    @property
    def params(self) -> list[str]:
        """The swept dotted keys, in sweep.parquet column order (grid, then zip groups)."""
        return [*self.grid, *(k for g in self.zip_groups for k in g)]

    @property
    def combinations(self) -> int:
        """Number of parameter combinations (runs = combinations x seeds)."""
        return len(self.runs) // len(self.seeds)

    def to_yaml(self) -> str:
        """The resolved sweep file: running it again gives the same runs and run ids."""
        spec = {"name": self.name, "description": self.description, "scenario": self.base,
                "grid": self.grid, "zip": self.zip_groups, "seeds": list(self.seeds)}
        return yaml.safe_dump(spec, sort_keys=False, allow_unicode=True)


SweepLike = Union[Sweep, SweepSpec, str, Path, dict]


def load_sweep(source: SweepLike) -> Sweep:
    """Read, validate and expand a sweep (a path, a mapping or a SweepSpec) into its runs.

    A relative base-scenario path is relative to the sweep file, or to the working directory
    when the sweep is a mapping.
    """
    if isinstance(source, Sweep):
        return source
    default_name, base_dir = None, Path.cwd()
    if isinstance(source, SweepSpec):
        spec = source
    else:
        if isinstance(source, (str, Path)):
            path = Path(source)
            try:
                data = _load_raw(path)
            except ScenarioError as e:  # same loader as scenario files; say what kind of file it is
                raise SweepError(str(e).replace("scenario YAML file", "sweep YAML file")
                                 .replace("scenario file", "sweep file")) from None
            default_name, base_dir = path.stem, path.parent
            if is_scenario_data(data):
                raise SweepError(f"{path}: is a scenario file, not a sweep; run it with `kafkasim run {path}`, "
                                 f"or name it in a sweep file (scenario: {path.name})")
        else:
            data = source
        try:
            spec = SweepSpec.model_validate(data)
        except ValidationError as e:
            raise SweepError(_format_spec_errors(e)) from None
    return _expand(spec, default_name, base_dir)


def _format_spec_errors(err: ValidationError) -> str:
    """pydantic errors of a sweep file as `field: problem (allowed: ...)`, one line each."""
    allowed = ", ".join(f.alias or n for n, f in SweepSpec.model_fields.items())
    lines = []
    for e in err.errors(include_url=False):
        loc = ".".join(str(x) for x in e["loc"])
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = f"unknown key (allowed: {allowed})"
        elif e["type"] == "missing" and loc == "scenario":
            msg = "required: a path to the base scenario or an inline scenario"
        elif e["type"] == "string_pattern_mismatch":
            msg = "must be letters, digits, '.', '_' or '-' (it names a directory and prefixes run ids)"
        lines.append(msg if not loc else f"{loc}: {msg}")
    return "\n".join(dict.fromkeys(lines))


def _expand(spec: SweepSpec, default_name: str | None, base_dir: Path) -> Sweep:
    """Resolve the base, check every key, validate every combination, then list the runs."""
    if isinstance(spec.scenario, dict):
        base = spec.scenario
    else:
        base_path = Path(spec.scenario)
        base_path = base_path if base_path.is_absolute() else base_dir / base_path
        try:
            base = _load_raw(base_path)
        except ScenarioError as e:
            raise SweepError(f"scenario: {e}") from None
    sections = {**{k: "set" for k in spec.overrides}, **{k: "grid" for k in spec.grid}}
    for i, group in enumerate(spec.zip_groups):
        for key in group:
            if key in sections:
                raise SweepError(f"zip.{i}.{key}: already set in {sections[key]} (a key may appear once)")
            sections[key] = f"zip.{i}"
    for key in spec.grid:
        if key in spec.overrides:
            raise SweepError(f"set.{key}: also swept in grid (a key may appear once)")
    for key, where in sections.items():
        if key == "seed":
            raise SweepError(f"{where}.seed: use `seeds` to vary the seed")
        for other in sections:
            if other.startswith(key + "."):
                raise SweepError(f"{sections[other]}.{other}: overlaps {where}.{key} (sweep one or the other)")
    try:
        base = apply_overrides(base, spec.overrides)
    except ScenarioError as e:
        raise SweepError(f"set.{str(e).removeprefix('--set ')}") from None
    swept = {**spec.grid, **{k: v for g in spec.zip_groups for k, v in g.items()}}
    for key, values in swept.items():  # a bad key is reported once, not once per combination
        try:
            apply_overrides(base, {key: values[0]})
        except ScenarioError as e:
            raise SweepError(f"{sections[key]}.{str(e).removeprefix('--set ')}") from None

    n_seeds = spec.seeds if isinstance(spec.seeds, int) else len(spec.seeds)
    n_combos = math.prod(len(v) for v in spec.grid.values()) * math.prod(
        len(next(iter(g.values()))) for g in spec.zip_groups)
    if n_combos * n_seeds > MAX_RUNS:
        raise SweepError(f"seeds: {n_seeds:,} seeds x {n_combos:,} combinations = {n_combos * n_seeds:,} runs, more "
                         f"than the {MAX_RUNS:,} one sweep may have (use fewer seeds or values, or split the sweep)")
    axes = [[{key: v} for v in values] for key, values in spec.grid.items()]
    axes += [[{k: vs[i] for k, vs in g.items()} for i in range(len(next(iter(g.values()))))]
             for g in spec.zip_groups]
    combos = [{k: v for part in parts for k, v in part.items()} for parts in product(*axes)]
    scenarios = [_resolve_combination(base, combo, sections) for combo in combos]

    name = spec.name or default_name or scenarios[0].name
    seeds = tuple(range(spec.seeds)) if isinstance(spec.seeds, int) else tuple(spec.seeds)
    digests: dict[str, dict] = {}
    runs = []
    for index, (combo, sc) in enumerate(zip(combos, scenarios)):
        digest = params_digest(combo)
        if digests.setdefault(digest, combo) != combo:  # 32 bits: ~1e-4 odds at 1000 combinations
            raise SweepError(f"grid: combinations {digests[digest]} and {combo} share run-id hash {digest} "
                             "(a one-in-four-billion coincidence); write one of their values differently, "
                             "e.g. 1.0 for 1")
        for seed in seeds:
            runs.append(SweepRun(f"{name}-{digest}-s{seed:04d}", seed, combo,
                                 sc.model_copy(update={"seed": seed}), index))
    return Sweep(name, spec.description, base, dict(spec.grid), [dict(g) for g in spec.zip_groups], seeds,
                 tuple(runs))


def _resolve_combination(base: dict, combo: dict, sections: dict[str, str]) -> Scenario:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. legacy acks=2: each run reports it in its summary
        try:
            return Scenario.resolve(base, combo)
        except ScenarioError as e:
            first = str(e).splitlines()[0].removeprefix("--set ")
    field = first.partition(": ")[0]
    if field in combo and field in sections:
        raise SweepError(f"{sections[field]}.{first}")
    if not combo:
        raise SweepError(first if first.startswith("scenario: ") else f"scenario: {first}")
    # a cross-field problem: name the combination that caused it
    raise SweepError(f"{first.removeprefix('scenario: ')} "
                     f"(with {', '.join(f'{k}={_as_text(v)}' for k, v in combo.items())})")


def params_digest(params: dict[str, Any]) -> str:
    """8 hex digits of SHA-256 over the sorted parameter items: stable across processes and runs."""
    text = json.dumps(sorted(params.items()), separators=(",", ":"), sort_keys=True, default=str,
                      ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def _as_text(v: Any) -> str:
    """A parameter value as text: strings as they are, everything else as JSON (0, true, 1.5)."""
    return v if isinstance(v, str) else json.dumps(v, sort_keys=True, default=str)


# --- executing runs ------------------------------------------------------------------------------
@dataclass
class RunOutcome:
    """What came back for one run: its results, or the error that stopped it."""

    run_id: str
    results: Results | None = None
    error: str | None = None
    wall_s: float | None = None
    """Seconds the run took where it ran (simulation and measurement): the sweep's ETA uses them."""


ExecuteFn = Callable[[SweepRun], RunOutcome]


def execute_run(run: SweepRun) -> RunOutcome:
    """Simulate one run wherever the executor placed it; an exception becomes a failed outcome."""
    t0 = time.perf_counter()
    try:
        return RunOutcome(run.run_id, results=simulate_run(run.scenario, seed=run.seed),
                          wall_s=time.perf_counter() - t0)
    except Exception as e:  # noqa: BLE001 - any model error fails this run, never the sweep
        return RunOutcome(run.run_id, error=describe_error(e), wall_s=time.perf_counter() - t0)


def describe_error(e: BaseException) -> str:
    """`Type: message (at file.py:line in function)`, naming the innermost frame."""
    text = f"{type(e).__name__}: {e}"
    frames = traceback.extract_tb(e.__traceback__)
    if frames:
        f = frames[-1]
        text += f" (at {Path(f.filename).name}:{f.lineno} in {f.name})"
    return text


def _outcome_of(future, run: SweepRun) -> RunOutcome:
    """The outcome held by a finished future; an exception outside the run fails the run."""
    try:
        return future.result()
    except Exception as e:  # noqa: BLE001 - e.g. an unpicklable result, a Dask KilledWorker
        return RunOutcome(run.run_id, error=describe_error(e))


class SerialExecutor:
    """Runs one after another in this process (``workers=1``): no start-up cost, easy to debug."""

    def __init__(self, execute: ExecuteFn):
        self.execute = execute

    def __enter__(self) -> "SerialExecutor":
        return self

    def __exit__(self, *exc) -> None:
        return None

    def as_completed(self, runs: list[SweepRun]) -> Iterator[RunOutcome]:
        """Execute each run in turn."""
        for run in runs:
            try:
                outcome = self.execute(run)
            except Exception as e:  # noqa: BLE001 - only reachable with a custom `execute`
                outcome = RunOutcome(run.run_id, error=describe_error(e))
            yield outcome


def _ignore_sigint() -> None:
    """Pool worker initializer: Ctrl-C is the parent's to handle (it stops the workers)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class PoolExecutor:
    """A spawn-based ``ProcessPoolExecutor`` with at most `workers` runs in flight.

    When a worker process dies (SIGKILL, out of memory, a crash in native code) the broken pool
    takes every run in flight with it. Those runs are retried in a fresh pool one at a time, each
    alone, so a second death names its run exactly: that run is recorded as failed
    (:data:`WORKER_DIED`) and the others complete. Then the sweep goes on at full width.
    """

    def __init__(self, workers: int, execute: ExecuteFn):
        self.workers, self.execute = workers, execute
        self._generation = 0
        self._dead_since: float | None = None  # when a worker of the current pool was first seen dead

    def __enter__(self) -> "PoolExecutor":
        self._pool = self._start_pool()
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self._pool.shutdown(wait=True)
        else:  # interrupted: do not wait for runs nobody will record (a second Ctrl-C cannot cut this short)
            with _sigint_flagged():
                _terminate(self._pool)

    def _start_pool(self) -> ProcessPoolExecutor:
        # spawn: safe with the threads rich and the executor itself run, and the same on every OS
        self._generation += 1
        return ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_ignore_sigint)

    def _restart_pool(self) -> None:
        self._pool.shutdown(wait=False)
        self._pool = self._start_pool()
        self._dead_since = None

    def _unstick_if_a_worker_died(self) -> None:
        """Break the pool by hand when a worker died halfway through sending its result.

        CPython's pool manager thread notices a dead worker only between messages: once the first
        bytes of a result arrive it waits for the rest, for ever if the sender was killed (SIGKILL,
        the OOM killer). A worker dead for 2 s with the pool still not broken is that case: see
        :func:`_break_stuck_pool`. The runs in flight then fail as BrokenProcessPool and are retried
        one at a time, as for any other dead worker.
        """
        processes = list((getattr(self._pool, "_processes", None) or {}).values())
        if not any(p.exitcode is not None for p in processes):
            self._dead_since = None
        elif self._dead_since is None:
            self._dead_since = time.monotonic()
        elif time.monotonic() - self._dead_since > 2.0:
            _break_stuck_pool(self._pool, processes)
            self._dead_since = None

    def as_completed(self, runs: list[SweepRun]) -> Iterator[RunOutcome]:
        """Submit runs as workers free up; yield each outcome as it completes."""
        pending = deque(runs)
        suspects: deque[SweepRun] = deque()  # in flight when a worker died: rerun alone
        inflight: dict[Any, tuple[SweepRun, int, bool]] = {}  # future -> (run, pool generation, alone)
        with _sigint_flagged() as interrupted:
            yield from self._drive(pending, suspects, inflight, interrupted)

    def _drive(self, pending: deque, suspects: deque, inflight: dict, interrupted: threading.Event
               ) -> Iterator[RunOutcome]:
        while pending or suspects or inflight:
            if interrupted.is_set():
                # hand over the runs that finished before the interrupt, then raise it here, in our code
                for fut in [f for f in inflight if f.done() and not f.cancelled() and f.exception() is None]:
                    yield fut.result()
                raise KeyboardInterrupt
            if suspects or any(alone for _, _, alone in inflight.values()):
                if suspects and not inflight:
                    self._submit(suspects, inflight, alone=True)
            else:
                while pending and len(inflight) < self.workers:
                    self._submit(pending, inflight, alone=False)
            if not inflight:
                continue
            done = set()
            while not done and not interrupted.is_set():  # short waits: Ctrl-C is noticed within 0.1 s
                done, _ = wait(inflight, timeout=0.1, return_when=FIRST_COMPLETED)
                if not done:
                    self._unstick_if_a_worker_died()
            lost = []
            for fut in done:
                entry = inflight.pop(fut)
                if isinstance(fut.exception(), BrokenProcessPool):
                    lost.append(entry)
                else:
                    yield _outcome_of(fut, entry[0])
            if any(generation == self._generation for _, generation, _ in lost):
                # the current pool is broken and fails every run it holds, all at once
                for fut in wait([f for f, e in inflight.items() if e[1] == self._generation]).done:
                    entry = inflight.pop(fut)
                    if isinstance(fut.exception(), BrokenProcessPool):
                        lost.append(entry)
                    else:
                        yield _outcome_of(fut, entry[0])
                self._restart_pool()
            for run, _, alone in sorted(lost, key=lambda e: e[0].run_id):
                if alone:  # it ran alone and its worker died again: this run is the cause
                    yield RunOutcome(run.run_id, error=WORKER_DIED)
                else:
                    suspects.append(run)

    def _submit(self, queue: deque, inflight: dict, alone: bool) -> None:
        run = queue.popleft()
        try:
            inflight[self._pool.submit(self.execute, run)] = (run, self._generation, alone)
        except BrokenProcessPool:  # a worker died while idle: retry on a fresh pool
            queue.appendleft(run)
            self._restart_pool()


def _terminate(pool: ProcessPoolExecutor) -> None:
    """Stop a pool now: cancel queued runs, terminate the worker processes, wait a bounded time."""
    processes = list((getattr(pool, "_processes", None) or {}).values())  # private, the same since 3.2
    terminate = getattr(pool, "terminate_workers", None)  # Python 3.14+
    if terminate is not None:
        terminate()
    else:
        for process in processes:
            process.terminate()
    _break_stuck_pool(pool, processes, cancel=True)


def _break_stuck_pool(pool: ProcessPoolExecutor, processes: list, cancel: bool = False) -> None:
    """Kill the pool's workers and make its manager thread see the end of the result pipe.

    A worker killed while writing a result (a multi-megabyte pickle) leaves the manager thread
    waiting for the rest of that message; `shutdown()` and the interpreter's exit would then
    wait for that thread for ever. Once every worker is gone, this process holds the last
    write end of the result pipe: closing it turns the wait into EOF and the pool breaks as
    usual. (The private attributes are those of CPython 3.9-3.13.)
    """
    manager = getattr(pool, "_executor_manager_thread", None)  # read before shutdown() drops it
    results = getattr(pool, "_result_queue", None)
    for process in processes:
        if process.exitcode is None:
            process.kill()
    pool.shutdown(wait=False, cancel_futures=cancel)
    for process in processes:
        process.join(timeout=5)
    writer = getattr(results, "_writer", None)
    if writer is not None and not writer.closed:
        writer.close()
    if manager is not None:
        manager.join(timeout=5)


class DaskExecutor:
    """Runs as tasks on a Dask distributed cluster: a scheduler address, or ``"local"``.

    ``"local"`` starts a ``LocalCluster`` of `workers` single-threaded worker processes and closes
    it afterwards. With a remote scheduler the workers need kafkasim installed; results travel back
    to this process, so no shared filesystem is needed. Dask itself reschedules a task whose
    worker died (``distributed.scheduler.allowed-failures``); one that keeps killing workers ends
    as ``KilledWorker`` and is recorded as failed.
    """

    def __init__(self, address: str, workers: int, execute: ExecuteFn):
        self.address, self.workers, self.execute = address, workers, execute
        self._cluster = self._client = None

    def __enter__(self) -> "DaskExecutor":
        from dask.distributed import Client, LocalCluster

        if self.address == "local":
            # the scheduler always serves HTTP: a free port (":0") instead of fighting over 8787, no dashboard
            self._cluster = LocalCluster(n_workers=self.workers, threads_per_worker=1, processes=True,
                                         dashboard_address=":0", scheduler_kwargs={"dashboard": False},
                                         silence_logs=logging.ERROR)
            self._client = Client(self._cluster)
        else:
            try:
                self._client = Client(self.address, timeout="10s")
            except (OSError, TimeoutError, ValueError, TypeError) as e:
                raise SweepError(f"dask: cannot connect to a Dask scheduler at {self.address!r} "
                                 f"({type(e).__name__}: {e}); expected tcp://host:port or 'local'") from None
        return self

    def __exit__(self, *exc) -> None:
        if self._client is not None:
            self._client.close()
        if self._cluster is not None:
            self._cluster.close()

    def as_completed(self, runs: list[SweepRun]) -> Iterator[RunOutcome]:
        """Submit every run as a task; yield each outcome as its task finishes."""
        from dask.distributed import as_completed

        token = uuid.uuid4().hex[:8]  # keys unique to this sweep even on a shared scheduler
        futures = {self._client.submit(self.execute, run, key=f"kafkasim-{run.run_id}-{token}", pure=False): run
                   for run in runs}
        try:
            for fut in as_completed(list(futures)):
                run = futures.pop(fut)
                outcome = _outcome_of(fut, run)
                fut.release()
                yield outcome
        except KeyboardInterrupt:
            for fut, run in list(futures.items()):
                if fut.status == "finished":
                    yield _outcome_of(fut, run)
            raise


def available_cores() -> int:
    """Cores this process may use (CPU affinity and container limits included where the OS says)."""
    if hasattr(os, "process_cpu_count"):  # Python 3.13+
        return os.process_cpu_count() or 1
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def _check_executor_args(workers: Any, dask: Any) -> None:
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise SweepError(f"workers: must be a whole number >= 1, got {workers!r}")
    if dask is not None:
        if not isinstance(dask, str) or not dask.strip():
            raise SweepError("dask: expected a scheduler address such as tcp://host:port, or 'local'")
        if dask != "local" and workers is not None:
            raise SweepError("workers: applies to the local pool and to --dask local; a remote Dask "
                             "cluster runs on the workers it has")


def _executor(workers: int | None, dask: str | None, todo: int, execute: ExecuteFn):
    """The executor for `todo` runs: never more workers than runs, in-process for one."""
    n = max(1, min(workers or available_cores(), todo))
    if dask is not None:
        return DaskExecutor(dask, n, execute)
    return SerialExecutor(execute) if n == 1 else PoolExecutor(n, execute)


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
    estimates, messages = sweep_warnings(sw, todo, parallel)
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


def sweep_warnings(sw: Sweep, todo: list[SweepRun], parallel: int) -> tuple[dict[int, float], list[str]]:
    """The sweep's warnings, each once, before anything runs; and estimated seconds per run by combination.

    Scenario warnings of every combination (naming it when they differ between combinations), and
    the work estimate: a combination that cannot fit in memory is a :class:`SweepError`.
    """
    first = {}
    for run in sw.runs:
        first.setdefault(run.combination, run)
    lines: dict[str, None] = {}
    estimates: dict[int, float] = {}
    per_combination = {}
    for index, run in first.items():
        per_combination[index] = scenario_warnings(run.scenario)
    shared = set.intersection(*(set(w) for w in per_combination.values())) if per_combination else set()
    for index, run in first.items():
        where = ", ".join(f"{k}={_as_text(v)}" for k, v in run.params.items())
        for w in per_combination[index]:
            lines[w if w in shared or not where else f"{w} (with {where})"] = None
        try:
            est, work = check_work(run.scenario, parallel=parallel)
        except WorkTooLarge as e:
            raise SweepError(f"{e}" + (f" (with {where})" if where else "")) from None
        estimates[index] = est.wall_s
        for w in work:
            lines[w if not where else f"{w} (with {where})"] = None
    total = sum(estimates.get(r.combination, 0.0) for r in todo) / max(parallel, 1)
    if total > 4 * 3600:
        lines[f"a long sweep: {len(todo):,} runs, roughly {total / 3600:,.1f} h on {parallel} "
              f"worker{'s' if parallel > 1 else ''} (rough estimate from the scenarios)"] = None
    return estimates, list(lines)


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
    # the hidden temporaries and trash of Results.write and _record, if a sweep was killed mid-write
    for leftover in [*(out_dir / "runs").glob(".*.tmp-*"), *(out_dir / "runs").glob(".*.old-*")]:
        shutil.rmtree(leftover, ignore_errors=True)
    for leftover in out_dir.glob(".sweep.*.tmp-*"):
        leftover.unlink(missing_ok=True)
    for run_id in complete:  # a failure record left next to a run that completed later
        (out_dir / "failures" / f"{run_id}.json").unlink(missing_ok=True)


def _table_is_complete(path: Path) -> bool:
    """Whether `path` is a readable sweep table in which every run has an outcome (no status "missing")."""
    try:
        status = pd.read_parquet(path, columns=["status"])["status"]
    except Exception:  # noqa: BLE001 - absent, damaged or not a sweep table: not complete
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
        frame = pd.read_parquet(table, columns=["run_id", "status"])
    except Exception:  # noqa: BLE001 - analysis reports an unreadable table itself
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
        if run_dir.exists():  # an older result of this run id must not outlive its rerun
            trash = run_dir.parent / f".{run_dir.name}.old-{uuid.uuid4().hex[:8]}"
            os.rename(run_dir, trash)
            shutil.rmtree(trash, ignore_errors=True)
        record = {"run_id": run.run_id, "seed": run.seed, "params": run.params, "error": outcome.error}
        text = json.dumps(record, indent=2, default=str) + "\n"
        write_atomic(failure, lambda p: p.write_text(text))


@contextmanager
def _sigint_flagged() -> Iterator[threading.Event]:
    """While the block runs, Ctrl-C only sets the event it yields (main thread only; elsewhere never set).

    The pool waits in short slices and checks the event, so the interrupt surfaces in our code and
    never inside concurrent.futures' locking: a KeyboardInterrupt raised while `wait()` holds the
    futures' locks can leave one held, and the executor's shutdown then hangs forever.
    """
    flag = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    previous = signal.signal(signal.SIGINT, lambda signum, frame: flag.set())
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.default_int_handler)


@contextmanager
def _sigint_deferred():
    """Hold Ctrl-C until the block ends, then hand it to the handler it was meant for.

    Under the pool that handler only sets the pool's flag, so the pool still yields every run
    that finished before it stops; elsewhere it raises KeyboardInterrupt as usual.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.default_int_handler)
    if caught:
        if callable(previous):
            previous(signal.SIGINT, None)  # the pool's flag, or default_int_handler (raises)
        elif previous != signal.SIG_IGN:
            raise KeyboardInterrupt


PROGRESS_INTERVAL_S = 5.0
"""Off a terminal (a pipe, a log file, CI), a plain progress line at most this often."""


def format_eta(seconds: float | None) -> str:
    """Seconds as a short ETA: '45s', '12m05s', '3h20m'; '?' when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class _Progress:
    """Progress on stderr: a rich bar on a terminal, else a plain line every few seconds; off by default.

    The ETA comes from the durations of the runs completed so far (mean seconds per run x runs
    left / runs in parallel); before the first completes, from the scenarios' work estimate.
    """

    def __init__(self, enabled: bool, title: str):
        self.enabled, self.title = enabled, title
        self._progress = self._task = None
        self._console = None
        self.total = self.done = self.failed = 0
        self.parallel = 1
        self.estimate_s = 0.0
        self.durations: list[float] = []
        self._t0 = self._last_line = time.monotonic()

    def __enter__(self) -> "_Progress":
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._console = Console(stderr=True)
            if self._console.is_terminal:
                self._progress = Progress(
                    TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[failed]} failed"), TextColumn("ETA {task.fields[eta]}"),
                    TimeElapsedColumn(), console=self._console, transient=True)
                self._progress.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()

    def eta(self) -> float | None:
        """Seconds left: from completed-run durations, else the work estimate."""
        left = self.total - self.done
        if left <= 0:
            return 0.0
        width = max(1, min(self.parallel, left))
        if self.durations:
            per_run = sum(self.durations) / len(self.durations)
            return per_run * left / width
        if self.estimate_s > 0:
            return self.estimate_s * left / max(self.total, 1) / width - (time.monotonic() - self._t0)
        return None

    def _eta_text(self) -> str:
        text = format_eta(self.eta())
        return text if self.durations or text == "?" else f"~{text}"

    def start(self, total: int, parallel: int = 1, estimate_s: float = 0.0) -> None:
        """Show progress for `total` runs to execute, `parallel` at a time, estimated at `estimate_s` in all."""
        self.total, self.parallel, self.estimate_s = total, parallel, estimate_s
        self._t0 = self._last_line = time.monotonic()
        if self._progress is not None:
            self._task = self._progress.add_task(self.title, total=total, failed=0, eta=self._eta_text())

    def advance(self, failed: bool, wall_s: float | None = None) -> None:
        """One more run recorded (`wall_s`: how long it took where it ran)."""
        self.done += 1
        self.failed += int(failed)
        if wall_s is None:  # a custom executor: its share of the time since the start
            wall_s = (time.monotonic() - self._t0) * min(self.parallel, self.total) / self.done
        self.durations.append(wall_s)
        if self._task is not None:
            self._progress.update(self._task, advance=1, failed=self.failed, eta=self._eta_text())
        elif self._console is not None and self.total:
            now = time.monotonic()
            if now - self._last_line >= PROGRESS_INTERVAL_S or self.done == self.total:
                self._last_line = now
                rate = self.done / max(now - self._t0, 1e-9) * 60
                self.note(f"progress: {self.title}: {self.done}/{self.total} runs done ({self.failed} failed), "
                          f"{rate:,.1f} runs/min, elapsed {format_eta(now - self._t0)}, ETA {self._eta_text()}")

    def note(self, text: str) -> None:
        """A line on stderr (above the bar on a terminal)."""
        if self._progress is not None:
            self._progress.console.print(text, markup=False, highlight=False, soft_wrap=True)
        elif self._console is not None:
            self._console.print(text, markup=False, highlight=False, soft_wrap=True)


# --- the sweep table -----------------------------------------------------------------------------
def collect(sw: Sweep, out_dir: str | Path) -> pd.DataFrame:
    """The sweep table, read back from runs/ and failures/: one row per run, sorted by run id."""
    out_dir = Path(out_dir)
    runs = sorted(sw.runs, key=lambda r: r.run_id)
    status, errors, flat = [], [], []
    for run in runs:
        summary_path = out_dir / "runs" / run.run_id / "summary.json"
        failure_path = out_dir / "failures" / f"{run.run_id}.json"
        if summary_path.is_file():
            status.append("ok")
            errors.append(None)
            flat.append(flatten_summary(json.loads(summary_path.read_text())))
        elif failure_path.is_file():
            status.append("failed")
            errors.append(json.loads(failure_path.read_text())["error"])
            flat.append({})
        else:  # only in a partial table (an interrupted or running sweep)
            status.append("missing")
            errors.append("no result yet: the sweep was interrupted or is still running")
            flat.append({})
    columns: dict[str, pd.Series] = {
        "run_id": pd.Series([r.run_id for r in runs], dtype="str"),
        "seed": pd.Series([r.seed for r in runs], dtype="int64"),
        "status": pd.Series(status, dtype="str"),
        "error": pd.Series(errors, dtype="str"),
        "scenario": pd.Series([r.scenario.name for r in runs], dtype="str"),
        "fault_kinds": pd.Series([",".join(sorted({f.kind for f in r.scenario.faults})) or "none" for r in runs],
                                 dtype="str"),
    }
    for key in sw.params:
        columns[key] = _column([r.params[key] for r in runs], nullable_ints=False)
    keys = list(dict.fromkeys(k for row in flat for k in row if k not in ("scenario", "seed")))
    for key in keys:
        columns[key] = _column([row.get(key) for row in flat], nullable_ints=True)
    return pd.DataFrame(columns)


def _column(values: list, nullable_ints: bool) -> pd.Series:
    """One column: bool, int or float when every value is, else text (mixed acks 0/1/all -> strings)."""
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return pd.Series(values, dtype="boolean")
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return pd.Series(values, dtype="Int64" if nullable_ints or len(present) < len(values) else "int64")
    if present and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        return pd.Series([math.nan if v is None else float(v) for v in values], dtype="float64")
    return pd.Series([None if v is None else _as_text(v) for v in values], dtype="str")


def aggregate(frame: pd.DataFrame, sweep_or_path: SweepLike) -> pd.DataFrame:
    """Per parameter combination (in sweep order): runs, failed, and mean and 95% CI half-width
    across seeds of each of :data:`AGGREGATE_METRICS` (columns ``<metric>.mean``, ``<metric>.ci95``).

    The interval is :func:`analysis.stats.mean_ci` (Student's t) over the seeds whose run succeeded
    and reported the metric, as in the plots; with fewer than two such seeds it is NaN.
    """
    sw = load_sweep(sweep_or_path)
    combination = frame["run_id"].map({r.run_id: r.combination for r in sw.runs})
    rows = []
    for _, group in frame.groupby(combination, sort=True):
        row: dict[str, Any] = {key: group[key].iloc[0] for key in sw.params}
        ok = group[group["status"] == "ok"]
        row["runs"] = len(group)
        row["failed"] = len(group) - len(ok)
        for metric in AGGREGATE_METRICS:
            mean, _, high, _ = mean_ci(ok[metric].astype(float) if metric in ok else [])
            row[f"{metric}.mean"], row[f"{metric}.ci95"] = mean, high - mean  # NaN when undefined
        rows.append(row)
    return pd.DataFrame(rows)
