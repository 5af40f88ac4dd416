"""The results contract: what a run directory and a sweep directory hold, and how they are written.

Both sides import this leaf module: the simulator writes by it, `analysis` reads by it. It imports
nothing else of kafkasim.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any, Callable

__all__ = ["RUN_FILES", "SWEEP_FILES", "write_atomic", "flatten_summary"]

RUN_FILES = ("scenario.yaml", "summary.json", "batches.parquet", "events.parquet", "timeseries.parquet")
"""The files of a complete run directory (``Results.write`` writes exactly these)."""

SWEEP_FILES = ("sweep.yaml", "sweep.parquet")
"""The files of a complete sweep directory."""


def write_atomic(path: Path, write: Callable[[Path], Any]) -> None:
    """Write `path` through a hidden temporary sibling renamed into place: readers never see half a file."""
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def flatten_summary(summary: dict, prefix: str = "") -> dict:
    """summary.json scalars with nested keys joined by dots (lists such as failovers are left out)."""
    out = {}
    for k, v in summary.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten_summary(v, key + "."))
        elif not isinstance(v, (list, tuple)):
            out[key] = v
    return out
