"""Load run and sweep directories (the results contract, `sim.runs.contract`) into pandas objects.

Analysis reads files only, through `sim.runs.contract` (the same reader the simulator uses): it
never imports the model, the runner or the sweep, so plots can never change what a run
measured. The contract it reads:

- a **run directory** holds ``scenario.yaml`` (fully resolved), ``summary.json`` (a
  `RunSummary`), ``batches.parquet``, ``events.parquet`` and ``timeseries.parquet``;
- a **sweep directory** holds ``sweep.yaml``, ``sweep.parquet`` (one row per run, sorted by
  ``run_id``: ``run_id``, ``seed``, ``status``, ``error``, ``scenario``, ``fault_kinds``, one column
  per swept dotted key, then the summary scalars flattened with dots), ``runs/<run_id>/`` (run
  directories) and ``failures/<run_id>.json``.

`load_sweep_results` adds the columns every sweep plot groups by, read from each run's resolved
scenario so they are there whether or not the parameter was swept: ``acks`` ("0", "1", "all"),
``replication_factor``, ``min_insync_replicas``, ``partitions``, ``fault_kind``, and the loss
rates ``loss_rate`` (records_lost / records_sent) and ``acked_loss_rate``
(acked_lost / records_sent).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from sim.runs.contract import (RUN_FILES, SWEEP_FILES, ResultsError, Run, SweepResults, acks_label, acks_order,
                               is_run_dir, is_sweep_dir, read_run, read_sweep, read_yaml, replication_by_partition,
                               scenario_facts, write_atomic)

__all__ = [
    "write_atomic",
    "ResultsError", "Run", "SweepResults", "load", "load_run", "load_sweep_results", "is_run_dir", "is_sweep_dir",
    "RUN_FILES", "SWEEP_FILES", "acks_label", "acks_order", "scenario_facts", "replication_by_partition",
]


def _check_dir(path: Path, what: str) -> None:
    if not path.exists():
        raise ResultsError(f"{path}: no such {what} directory")
    if not path.is_dir():
        raise ResultsError(f"{path}: is not a directory")


# --- runs and sweeps ------------------------------------------------------------------------------
load_run = read_run
"""Load a run directory (`sim.runs.contract.read_run`); with ``tables=False`` the tables are read on first use."""


def load_sweep_results(path: str | Path) -> SweepResults:
    """Load a sweep directory (`sim.runs.contract.read_sweep`) plus derived grouping and loss-rate columns."""
    sweep = read_sweep(path)
    _derive_columns(sweep)
    return sweep


def _derive_columns(sweep: SweepResults) -> None:
    t = sweep.table
    rows = []
    for run_id, status in zip(t["run_id"], t["status"]):
        facts: dict = {}
        sc_path = sweep.run_dir(run_id) / "scenario.yaml"
        if status == "ok":
            if not sc_path.is_file():
                raise ResultsError(f"{sweep.path}: run {run_id} is 'ok' but {sc_path} is missing")
            facts = scenario_facts(read_yaml(sc_path))
        rows.append(facts)
    facts = pd.DataFrame(rows, index=t.index)
    # runs that failed have no run directory: fall back to the swept columns where there are any
    fallback = {"acks": ".acks", "replication_factor": ".replication.factor",
                "min_insync_replicas": ".min.insync.replicas", "partitions": ".partitions"}
    for col, suffix in fallback.items():
        if col not in facts:
            facts[col] = np.nan
        swept = [p for p in sweep.params if p.endswith(suffix) and p.startswith(("producers.", "topics."))]
        if swept:
            vals = t[swept[0]].map(acks_label) if col == "acks" else t[swept[0]]
            facts[col] = facts[col].where(facts[col].notna(), vals)
    if "fault_kinds" in t:
        facts["fault_kind"] = t["fault_kinds"].fillna("none").astype(str)
    elif "fault_kind" not in facts:
        facts["fault_kind"] = "none"
    for col in facts:
        t[col] = facts[col].to_numpy()
    t["acks"] = t["acks"].astype(object).where(t["acks"].notna(), "none").astype(str)
    sent = pd.to_numeric(t.get("records_sent"), errors="coerce") if "records_sent" in t else np.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        for col, num in (("loss_rate", "records_lost"), ("acked_loss_rate", "acked_lost")):
            if num in t and "records_sent" in t:
                # plain float64 (NaN, not pd.NA, for runs without a result: failed or missing ones)
                t[col] = (pd.to_numeric(t[num], errors="coerce") / sent).where(sent > 0).astype("float64")
            else:
                t[col] = np.nan


def load(path: str | Path) -> Run | SweepResults:
    """Load a run or a sweep directory, whichever `path` is."""
    d = Path(path)
    _check_dir(d, "results")
    if is_sweep_dir(d):
        return load_sweep_results(d)
    if is_run_dir(d) or any((d / f).exists() for f in RUN_FILES):
        return load_run(d)
    raise ResultsError(f"{d}: not a run or sweep directory (expected summary.json or sweep.parquet)")
