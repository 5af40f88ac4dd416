"""The results contract: summary + parquet tables of one run, written atomically.

A run directory holds ``scenario.yaml`` (fully resolved), ``summary.json``, ``batches.parquet``,
``events.parquet`` and ``timeseries.parquet``. Files are written into a temporary sibling
directory that is renamed into place, so an interrupted write never leaves a directory that
looks complete.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from analysis.load import RUN_FILES  # the one list of a run directory's files, shared with analysis

from .scenario import Scenario

__all__ = ["Results", "RUN_FILES", "read_results"]


def _jsonable(o):
    if hasattr(o, "item"):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


@dataclass
class Results:
    """Everything one run produced."""

    scenario: Scenario
    seed: int
    summary: dict
    batches: pd.DataFrame
    events: pd.DataFrame
    timeseries: pd.DataFrame
    warnings: list[str] = field(default_factory=list)

    def write(self, out_dir: str | Path) -> Path:
        """Write the run directory atomically (temporary sibling, then rename)."""
        out = Path(out_dir)
        if out.exists() and not out.is_dir():
            raise NotADirectoryError(f"{out} exists and is not a directory")
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            (tmp / "scenario.yaml").write_text(self.scenario.to_yaml())
            self.batches.to_parquet(tmp / "batches.parquet", index=False)
            self.events.to_parquet(tmp / "events.parquet", index=False)
            self.timeseries.to_parquet(tmp / "timeseries.parquet", index=False)
            # summary.json last: its presence marks a complete run
            (tmp / "summary.json").write_text(json.dumps(self.summary, indent=2, default=_jsonable) + "\n")
            if out.exists():
                trash = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
                os.rename(out, trash)
                os.rename(tmp, out)
                shutil.rmtree(trash, ignore_errors=True)
            else:
                os.rename(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return out


def read_results(run_dir: str | Path) -> Results:
    """Load a run directory written by `Results.write`."""
    d = Path(run_dir)
    missing = [f for f in RUN_FILES if not (d / f).exists()]
    if missing:
        raise FileNotFoundError(f"{d}: not a complete run directory (missing {', '.join(missing)})")
    summary = json.loads((d / "summary.json").read_text())
    return Results(
        scenario=Scenario.resolve(d / "scenario.yaml"),
        seed=summary["seed"],
        summary=summary,
        batches=pd.read_parquet(d / "batches.parquet"),
        events=pd.read_parquet(d / "events.parquet"),
        timeseries=pd.read_parquet(d / "timeseries.parquet"),
    )
