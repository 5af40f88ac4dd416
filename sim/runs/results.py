"""The results contract: summary + parquet tables of one run, written atomically.

A run directory holds ``scenario.yaml`` (fully resolved), ``summary.json``, ``batches.parquet``,
``events.parquet`` and ``timeseries.parquet``. Files are written into a temporary sibling
directory that is renamed into place, so an interrupted write never leaves a directory that
looks complete.

Nothing kafkasim did not write is ever deleted or overwritten: an output path that already
exists is replaced only when it is itself kafkasim output of the same kind (a run directory, a
sweep directory, a directory of figures, a report page), recognised by its files, or is empty.
Anything else is refused with :class:`OutputError` before any work starts (:func:`check_output`).
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from sim.runs.contract import RUN_FILES  # the one list of a run directory's files, shared with analysis

from sim.scenario.schema import Scenario

__all__ = ["Results", "RUN_FILES", "read_results", "OutputError", "check_output", "output_kind"]

RUN_EXTRAS = ("plots", "report.html")
"""What `kafkasim plot` and `kafkasim report` add to a run directory by default."""
SWEEP_FILES = ("sweep.yaml", "sweep.parquet", "runs", "failures", "plots", "report.html")
"""Everything a sweep directory may hold (plus hidden temporaries of an interrupted write)."""
FIGURE_SUFFIXES = (".png", ".svg", ".pdf")
REPORT_MARK = "<title>kafkasim "
"""Every page `kafkasim report` writes has a title starting with this."""


class OutputError(FileExistsError):
    """An output path holds something kafkasim did not write: refused, never deleted (one line)."""


def _entries(d: Path) -> list[Path]:
    try:
        return sorted(d.iterdir())
    except OSError:
        return []


def _hidden_temporary(p: Path) -> bool:
    """A hidden temporary or trash entry of an atomic write that was interrupted (ours)."""
    return p.name.startswith(".") and (".tmp-" in p.name or ".old-" in p.name)


def _is_figure_dir(d: Path) -> bool:
    return d.is_dir() and all((e.is_file() and e.suffix in FIGURE_SUFFIXES) or _hidden_temporary(e)
                              for e in _entries(d))


def _is_report(f: Path) -> bool:
    try:
        with open(f, "rb") as fh:
            head = fh.read(4096).decode("utf-8", "replace")
    except OSError:
        return False
    return head.startswith("<!DOCTYPE html>") and REPORT_MARK in head


def _is_run_dir(d: Path) -> bool:
    entries = _entries(d)
    names = {e.name for e in entries}
    if not {"summary.json", "scenario.yaml"} <= names:
        return False
    for e in entries:
        if e.name in RUN_FILES and e.is_file():
            continue
        if e.name == "plots" and _is_figure_dir(e):
            continue
        if e.name == "report.html" and e.is_file() and _is_report(e):
            continue
        return False
    return True


def _is_sweep_dir(d: Path) -> bool:
    entries = _entries(d)
    names = {e.name for e in entries}
    if not names & {"sweep.yaml", "sweep.parquet", "runs"}:
        return False
    for e in entries:
        if _hidden_temporary(e):
            continue
        if e.name in ("sweep.yaml", "sweep.parquet") and e.is_file():
            continue
        if e.name == "runs" and e.is_dir() and all(r.is_dir() for r in _entries(e)):
            continue
        if e.name == "failures" and e.is_dir() and all(f.suffix == ".json" or _hidden_temporary(f)
                                                        for f in _entries(e)):
            continue
        if e.name == "plots" and _is_figure_dir(e):
            continue
        if e.name == "report.html" and e.is_file() and _is_report(e):
            continue
        return False
    return True


def output_kind(path: str | Path) -> str | None:
    """What kafkasim output `path` is: "run", "sweep", "plots", "report", or None (not ours, or absent)."""
    p = Path(path)
    if p.is_file():
        return "report" if _is_report(p) else None
    if not p.is_dir():
        return None
    if _is_run_dir(p):
        return "run"
    if _is_sweep_dir(p):
        return "sweep"
    if _entries(p) and _is_figure_dir(p):
        return "plots"
    return None


_WHAT = {"run": "a kafkasim run directory", "sweep": "a kafkasim sweep directory",
         "plots": "a directory of kafkasim figures", "report": "a kafkasim report"}


def check_output(path: str | Path, kind: str, option: str = "") -> None:
    """Raise :class:`OutputError` unless `path` may be written as `kind` output ("run", "sweep", "plots", "report").

    Allowed: a path that does not exist, an empty directory, or earlier kafkasim output of the same
    kind. Never allowed: anything else (a working directory, `results/` itself, a user's files).
    """
    p = Path(path)
    name = f"{option} {p}" if option else str(p)
    if kind == "report":
        if p.is_dir():
            raise OutputError(f"{name}: cannot write the report (it is a directory; name the HTML file, "
                              f"e.g. {p / 'report.html'})")
        if p.exists() and not _is_report(p):
            raise OutputError(f"{name}: exists and is not a kafkasim report; kafkasim never overwrites "
                              f"other files: choose another path")
        return
    if not p.exists():
        return
    if not p.is_dir():
        verb = "figures" if kind == "plots" else "results"
        raise OutputError(f"{name}: cannot write {verb} (it exists and is not a directory; choose another path)")
    entries = _entries(p)
    if not entries:
        return
    ok = {"run": _is_run_dir, "sweep": _is_sweep_dir, "plots": _is_figure_dir}[kind](p)
    if ok:
        return
    shown = ", ".join(e.name for e in entries[:3]) + (", ..." if len(entries) > 3 else "")
    child = p / ("figures" if kind == "plots" else "my-" + kind)
    raise OutputError(f"{name}: not empty and not {_WHAT[kind]} (it holds {shown}); kafkasim never deletes "
                      f"what it did not write: choose another path or a new child such as {child}")


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
        check_output(out, "run", option="")  # replace only an earlier run (or an empty directory)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            (tmp / "scenario.yaml").write_text(self._scenario_header() + self.scenario.to_yaml())
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


    def _scenario_header(self) -> str:
        """YAML comments naming the overrides the run was made with (they keep the file a valid scenario)."""
        overrides = self.summary.get("overrides") if isinstance(self.summary, dict) else None
        if not overrides:
            return ""
        text = " ".join(f"--set {k}={_override_text(v)}" for k, v in overrides.items())
        return f"# made with overrides (already applied below): {text}\n"


def _override_text(v) -> str:
    if isinstance(v, str):
        return v
    return json.dumps(v, default=str)


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
