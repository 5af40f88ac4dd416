"""Sweeps: one scenario run over a grid of Kafka settings and many seeds, on every core.

A sweep file names a base scenario, a ``grid`` of dotted scenario keys to lists of values, optional
``zip`` groups (keys that vary together: the i-th run of a group takes the i-th value of every
list) and ``seeds`` (a count N meaning seeds 0..N-1, or a list). Before anything runs it expands
into one :class:`SweepRun` per (parameter combination, seed), and every combination is validated
as a scenario, so an unknown key or a rejected value is a one-line :class:`SweepError`.

Runs execute in this process (``workers=1``), in a loky process pool (default,
one worker per core) or on a Dask distributed cluster (``dask="tcp://host:port"``, or ``"local"``
for a ``LocalCluster``). Workers only simulate and send the :class:`~sim.runs.results.Results` back;
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

"""

from __future__ import annotations

from sim.runs.sweep.spec import load_sweep, Sweep, SweepSpec, SweepRun, SweepError, params_digest, MAX_RUNS
from sim.runs.sweep.executors import execute_run, RunOutcome, WORKER_DIED, available_cores, PoolExecutor, SerialExecutor, DaskExecutor
from sim.runs.sweep.progress import format_eta
from sim.runs.sweep.table import aggregate, collect, AGGREGATE_METRICS, RUN_COLUMNS
from sim.runs.sweep.orchestrate import sweep, run_sweep, SweepReport, SweepInterrupted, sweep_dir_note

__all__ = [
    "sweep",
    "run_sweep",
    "load_sweep",
    "aggregate",
    "collect",
    "execute_run",
    "Sweep",
    "SweepSpec",
    "SweepRun",
    "SweepReport",
    "RunOutcome",
    "SweepError",
    "SweepInterrupted",
    "AGGREGATE_METRICS",
    "RUN_COLUMNS",
    "WORKER_DIED",
    "params_digest",
    "available_cores",
    "MAX_RUNS",
    "sweep_dir_note",
    "format_eta",
    "PoolExecutor",
    "SerialExecutor",
    "DaskExecutor",
]
