"""One run's results in memory (:class:`Results`), and where results may be written.

What a run directory holds, how it is written and read is the results contract
(`sim.runs.contract`): ``Results.write`` writes ``scenario.yaml`` (fully resolved),
``summary.json``, ``batches.parquet``, ``events.parquet`` and ``timeseries.parquet`` into a
temporary sibling directory renamed into place (`write_atomic`), so an interrupted write never
leaves a directory that looks complete; :func:`read_results` reads one back through `read_run`.

Nothing kafkasim did not write is ever deleted or overwritten: an output path that already
exists is replaced only when it is itself kafkasim output of the same kind (a run directory, a
sweep directory, a directory of figures, a report page), recognised by its files, or is empty.
Anything else is refused with :class:`OutputError` before any work starts (:func:`check_output`).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from sim.runs.contract import (RUN_EXTRAS, RUN_FILES, SWEEP_ENTRIES, ResultsError, RunSummary, is_figure_dir,
                               is_report, is_run_dir, is_sweep_dir, read_run, writable_problem, write_atomic)
from sim.scenario.schema import Scenario

__all__ = ["Results", "RUN_FILES", "RUN_EXTRAS", "SWEEP_ENTRIES", "read_results", "OutputError", "check_output",
           "output_kind", "output_lock"]


class OutputError(FileExistsError):
    """An output path holds something kafkasim did not write: refused, never deleted (one line)."""


def _entries(d: Path) -> list[Path]:
    try:
        return sorted(d.iterdir())
    except OSError:
        return []


def output_kind(path: str | Path) -> str | None:
    """What kafkasim output `path` is: "run", "sweep", "plots", "report", or None (not ours, or absent)."""
    p = Path(path)
    if p.is_file():
        return "report" if is_report(p) else None
    if not p.is_dir():
        return None
    if is_run_dir(p, only_ours=True):
        return "run"
    if is_sweep_dir(p, only_ours=True):
        return "sweep"
    if _entries(p) and is_figure_dir(p):
        return "plots"
    return None


@contextlib.contextmanager
def output_lock(path: str | Path, option: str = "--out"):
    """Hold `path` for this process while it writes there: a second kafkasim writing the same path at
    the same time is refused at once with :class:`OutputError`, instead of the two silently replacing
    each other's results.

    The lock is an advisory ``flock`` on a file named by a hash of the absolute path in the temporary
    directory (``kafkasim-locks/``, holding the pid), released by the kernel when the process ends
    however it ends; the file is removed on the way out. After locking, the file must still be the one at the path (a holder that just finished
    removes it): otherwise lock the new one.
    """
    p = Path(path).absolute()
    # in the temporary directory, keyed by the absolute path: nothing is created beside the output
    # (a refused or killed command leaves no trace where results go)
    locks = Path(tempfile.gettempdir()) / "kafkasim-locks"
    locks.mkdir(exist_ok=True)
    lock = locks / (hashlib.sha256(str(p).encode()).hexdigest()[:32] + ".lock")
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            finally:
                os.close(fd)
            raise OutputError(f"{option} {path}: another kafkasim (pid {holder}) is writing there now; wait "
                              f"for it to finish or choose another {option}") from None
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(lock))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock)
        os.close(fd)


_WHAT = {"run": "a kafkasim run directory", "sweep": "a kafkasim sweep directory",
         "plots": "a directory of kafkasim figures", "report": "a kafkasim report"}


def check_output(path: str | Path, kind: str, option: str = "") -> None:
    """Raise :class:`OutputError` unless `path` may be written as `kind` output ("run", "sweep", "plots", "report").

    Allowed: a path that does not exist, an empty directory, or earlier kafkasim output of the same
    kind. Never allowed: anything else (a working directory, `results/` itself, a user's files).
    """
    p = Path(path)
    name = f"{option} {p}" if option else str(p)
    problem = writable_problem(p)
    if problem is not None:
        raise OutputError(f"{name}: cannot write there: {problem}")
    if kind == "report":
        if p.is_dir():
            raise OutputError(f"{name}: cannot write the report (it is a directory; name the HTML file, "
                              f"e.g. {p / 'report.html'})")
        if p.exists() and not is_report(p):
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
    ok = {"run": lambda d: is_run_dir(d, only_ours=True), "sweep": lambda d: is_sweep_dir(d, only_ours=True),
          "plots": is_figure_dir}[kind](p)
    if ok:
        return
    shown = ", ".join(e.name for e in entries[:3]) + (", ..." if len(entries) > 3 else "")
    child = p / ("figures" if kind == "plots" else "my-" + kind)
    raise OutputError(f"{name}: not empty and not {_WHAT[kind]} (it holds {shown}); kafkasim never deletes "
                      f"what it did not write: choose another path or a new child such as {child}")


@dataclass
class Results:
    """Everything one run produced."""

    scenario: Scenario
    seed: int
    summary: RunSummary
    batches: pd.DataFrame
    events: pd.DataFrame
    timeseries: pd.DataFrame
    warnings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not isinstance(self.summary, RunSummary):  # a summary given as summary.json's dict
            self.summary = RunSummary.from_dict(self.summary)

    def write(self, out_dir: str | Path) -> Path:
        """Write the run directory atomically (`sim.runs.contract.write_atomic`); summary.json is written last."""
        out = Path(out_dir)
        if out.exists() and not out.is_dir():
            raise NotADirectoryError(f"{out} exists and is not a directory")
        check_output(out, "run", option="")  # replace only an earlier run (or an empty directory)
        out.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(out, self._write_files)
        return out

    def _write_files(self, d: Path) -> None:
        d.mkdir()
        (d / "scenario.yaml").write_text(self._scenario_header() + self.scenario.to_yaml())
        self.batches.to_parquet(d / "batches.parquet", index=False)
        self.events.to_parquet(d / "events.parquet", index=False)
        self.timeseries.to_parquet(d / "timeseries.parquet", index=False)
        (d / "summary.json").write_text(self.summary.to_json())  # last: its presence marks a complete run

    def _scenario_header(self) -> str:
        """YAML comments naming the overrides the run was made with (they keep the file a valid scenario)."""
        overrides = self.summary.overrides
        if not overrides:
            return ""
        text = " ".join(f"--set {k}={_override_text(v)}" for k, v in overrides.items())
        return f"# made with overrides (already applied below): {text}\n"


def _override_text(v) -> str:
    if isinstance(v, str):
        return v
    return json.dumps(v, default=str)


def read_results(run_dir: str | Path) -> Results:
    """Load a run directory written by `Results.write` (through `sim.runs.contract.read_run`, as analysis does).

    Raises FileNotFoundError for a missing or incomplete directory.
    """
    try:
        run = read_run(run_dir)
    except ResultsError as e:
        raise FileNotFoundError(str(e)) from None
    return Results(
        scenario=Scenario.resolve(run.path / "scenario.yaml"),
        seed=run.summary.seed,
        summary=run.summary,
        batches=run.batches,
        events=run.events,
        timeseries=run.timeseries,
    )
