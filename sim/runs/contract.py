"""The results contract: what a run directory and a sweep directory hold, how they are written and read.

Both sides use this module: the simulator (`sim.runs.runner`, `sim.runs.results`, the sweep and the
CLI) writes and reads results by it, and `analysis` reads them by it. It is a leaf: of kafkasim it
imports only `sim.measure.stats` (plain numeric estimators, no model).

- **Files.** A run directory holds :data:`RUN_FILES`; a sweep directory :data:`SWEEP_FILES` plus
  ``runs/<run_id>/`` (run directories) and ``failures/<run_id>.json``.
- **The summary** of a run is a :class:`RunSummary`, stored as ``summary.json`` with the same keys
  in the same order as its fields.
- **Writing** is :func:`write_atomic` (a file or a whole directory, through a hidden temporary
  sibling renamed into place), the one writer of results.
- **Reading** a run directory is :func:`read_run` (a :class:`Run`); a sweep directory
  :func:`read_sweep` (a :class:`SweepResults`).
- Measures defined on the batches table, which the summary and analysis share, are in
  `sim.measure.batches`.
- **Across runs**, :func:`flatten_summary` (summary scalars with dotted names, the columns of
  ``sweep.parquet``) and :func:`aggregate` (mean and 95% CI per group, columns
  ``<metric>_mean``, ``_low``, ``_high``, ``_n``, ``_clipped``).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Optional, TypedDict

import pandas as pd
import yaml

from sim.measure.stats import bounded_mean_ci

__all__ = [
    "RUN_FILES", "SWEEP_FILES", "RUN_TABLES", "RUN_EXTRAS", "SWEEP_ENTRIES", "FIGURE_SUFFIXES", "REPORT_MARK",
    "ResultsError", "write_atomic", "writable_problem", "discard", "is_temporary",
    "RunSummary", "CONDITIONAL_KEYS", "Percentiles", "Failover", "read_summary", "flatten_summary",
    "is_run_dir", "is_sweep_dir", "is_figure_dir", "is_report",
    "Run", "read_run", "SweepResults", "read_sweep", "read_sweep_table", "read_yaml",
    "acks_label", "acks_order", "scenario_facts", "replication_by_partition",
    "aggregate", "sort_groups",
]

RUN_FILES = ("scenario.yaml", "summary.json", "batches.parquet", "events.parquet", "timeseries.parquet")
"""The files of a complete run directory (``Results.write`` writes exactly these)."""
RUN_TABLES = ("batches", "events", "timeseries")
"""The parquet tables of a run directory, by name (``<name>.parquet``)."""
SWEEP_FILES = ("sweep.yaml", "sweep.parquet")
"""The files of a complete sweep directory."""
RUN_EXTRAS = ("plots", "report.html")
"""What `kafkasim plot` and `kafkasim report` add to a run directory by default."""
SWEEP_ENTRIES = (*SWEEP_FILES, "runs", "failures", *RUN_EXTRAS)
"""Everything a sweep directory may hold (plus hidden temporaries of an interrupted write)."""
FIGURE_SUFFIXES = (".png", ".svg", ".pdf")
REPORT_MARK = "<title>kafkasim "
"""Every page `kafkasim report` writes has a title starting with this."""


class ResultsError(ValueError):
    """A results directory is missing, incomplete or unreadable; the message is one line."""


# --- writing -------------------------------------------------------------------------------------
def is_temporary(p: Path) -> bool:
    """A hidden temporary or trash entry of an atomic write (:func:`write_atomic`, :func:`discard`)."""
    return p.name.startswith(".") and (".tmp-" in p.name or ".old-" in p.name)


def discard(path: Path) -> None:
    """Remove a file or directory so that readers see it whole or not at all (renamed away, then deleted)."""
    if not path.exists():
        return
    trash = path.parent / f".{path.name}.old-{uuid.uuid4().hex[:8]}"
    os.rename(path, trash)
    if trash.is_dir():
        shutil.rmtree(trash, ignore_errors=True)
    else:
        trash.unlink(missing_ok=True)


def writable_problem(path: str | Path) -> str | None:
    """Why :func:`write_atomic` could not write `path`, or None: checked before any work is done.

    The writer creates a hidden sibling of `path` and renames it into place, so the directory that
    will hold `path` must be creatable and writable. The nearest existing ancestor of that directory
    is tried with a real temporary file (permission bits alone say nothing for root, nor for a
    read-only file system).
    """
    parent = Path(path).absolute().parent
    anchor = parent
    while not anchor.exists():
        if anchor.parent == anchor:
            return f"{anchor} does not exist"
        anchor = anchor.parent
    if not anchor.is_dir():
        return f"{anchor} is a file, not a directory"
    try:
        with tempfile.TemporaryFile(dir=anchor, prefix=".kafkasim-probe-"):
            pass
    except OSError as e:
        return f"cannot write in {anchor} ({e.strerror or e})"
    return None


def write_atomic(path: Path, write: Callable[[Path], Any]) -> None:
    """Write `path` through a hidden temporary sibling renamed into place: readers never see half of it.

    `write(tmp)` writes a file at `tmp`, or creates a directory there and fills it. A directory
    replaces an earlier one at `path` (renamed away, then deleted); a file replaces a file.
    On any error, including Ctrl-C, the temporary is removed and `path` is left as it was.
    """
    path = Path(path)
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        write(tmp)
        if tmp.is_dir():
            discard(path)
            os.rename(tmp, path)
        else:
            os.replace(tmp, path)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise


# --- the summary ---------------------------------------------------------------------------------
class Percentiles(TypedDict, total=False):
    """Record-weighted percentiles in ms (None where no record qualified)."""

    p50: Optional[float]
    p99: Optional[float]
    p999: Optional[float]
    max: Optional[float]


class Failover(TypedDict):
    """One (fault, partition the faulted broker led): see `sim.measure.metrics.failovers`.

    A fault that ended without an election has new_leader -1 and elected_ms/election_ms None; its
    first_ack_ms/unavailable_ms are the same leader's first acknowledgement after it.
    """

    fault_ms: float
    broker: int
    partition: str
    new_leader: Optional[int]
    elected_ms: Optional[float]
    first_ack_ms: Optional[float]
    election_ms: Optional[float]
    unavailable_ms: Optional[float]


@dataclass(frozen=True, eq=False)
class RunSummary(Mapping):
    """The headline numbers of one run: ``summary.json``, key for key and in this order.

    Built by `sim.runs.runner`; read by the CLI, the sweep table and `analysis`. Attributes are
    the typed way in (``summary.acked_lost``); it is also a read-only mapping of the JSON keys
    (``summary["acked_lost"]``, ``summary.get(...)``), so code written against summary.json reads
    it unchanged. A key an older summary.json lacks reads as None and is not in the mapping; keys
    this version does not know are kept in `extra` and written back as they were. Change a
    summary with :func:`dataclasses.replace`.
    """

    scenario: str
    seed: int
    overrides: Optional[dict] = None
    """Dotted key -> value the scenario was run with (``kafkasim run --set``, ``overrides=``)."""
    version: Optional[str] = None
    """The kafkasim version that ran it."""
    sim_duration_ms: Optional[float] = None
    """Simulated time: duration + settle."""
    produce_duration_ms: Optional[float] = None
    """When producers stopped and faults healed."""
    wall_time_s: Optional[float] = None
    sim_events: Optional[int] = None
    """SimPy events processed."""
    messages_sent: Optional[dict] = None
    """Requests and responses on the wire by type: the round trips a configuration costs."""
    messages_dropped: Optional[dict] = None
    """Lost on lossy links (``network.set_loss``), by type."""
    records_produced: Optional[int] = None
    """Every record the producers created (the offered load)."""
    records_sent: Optional[int] = None
    """Records put on the wire at least once (one that expired in the accumulator never was)."""
    records_acked: Optional[int] = None
    records_failed: Optional[int] = None
    """The client got a definite error."""
    records_unknown: Optional[int] = None
    """No definite answer (acks=0, timeouts, ambiguous errors)."""
    acked_lost: Optional[int] = None
    """Acknowledged, absent from the final committed log: a durability violation."""
    records_lost: Optional[int] = None
    """Sent, absent from the final committed log, the client never told."""
    failed_but_present: Optional[int] = None
    duplicates: Optional[int] = None
    reordered: Optional[int] = None
    records_consumed: Optional[int] = None
    records_redelivered: Optional[int] = None
    """Records a consumer group received more than once (at-least-once after a rebalance or restart);
    only when a scenario uses consumer groups (group.protocol classic, or a consumer fault)."""
    consumer_lag_max: Optional[int] = None
    """The highest total consumer lag (HW minus the groups' positions, records) of the per-second
    timeseries column consumer_lag; present with records_redelivered."""
    batches: Optional[int] = None
    throughput_rps: Optional[float] = None
    """Acknowledged records per second of producing."""
    produce_latency_ms: Optional[Percentiles] = None
    """p50, p99, p999, max: record arrival (mid batch) to acknowledgement."""
    e2e_latency_ms: Optional[Percentiles] = None
    """p50, p99: record arrival to first consumption."""
    failovers: Optional[list[Failover]] = None
    failover_ms: Optional[Percentiles] = None
    """p50, max of fault -> new leader elected."""
    unavailable_ms: Optional[Percentiles] = None
    """p50, max of fault -> first acknowledgement on the new leader (on the same one if none was elected)."""
    unclean_elections: Optional[int] = None
    leader_elections: Optional[int] = None
    isr_shrinks: Optional[int] = None
    isr_expands: Optional[int] = None
    truncations: Optional[int] = None
    offline_partitions_at_end: Optional[int] = None
    under_replicated_partitions_at_end: Optional[int] = None
    warnings: Optional[list[str]] = None
    invariant_violations: Optional[int] = None
    invariant_examples: Optional[list[str]] = None
    invariant_violations_by_rule: Optional[dict[str, int]] = None
    """Violations per named rule of sim.measure.invariants.INVARIANTS (0 for a rule that held)."""
    extra: dict = field(default_factory=dict)
    """Keys of summary.json this version does not know (written back as they were)."""

    @classmethod
    def keys_in_order(cls) -> tuple[str, ...]:
        """summary.json's keys, in order."""
        return _KEYS

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RunSummary":
        """From summary.json's content (missing keys read as None; unknown ones go to `extra`)."""
        if isinstance(data, RunSummary):
            return data
        known = {k: v for k, v in data.items() if k in _KEY_SET}
        extra = {k: v for k, v in data.items() if k not in _KEY_SET}
        return cls(**{"scenario": None, "seed": None, **known}, extra=extra)

    def to_dict(self) -> dict[str, Any]:
        """summary.json's content: every key present, in order, then the unknown ones as read."""
        out = {k: getattr(self, k) for k in _KEYS if getattr(self, k) is not None}
        out.update(self.extra)
        return out

    def to_json(self) -> str:
        """summary.json's text."""
        return json.dumps(self.to_dict(), indent=2, default=_jsonable) + "\n"

    def __getitem__(self, key: str) -> Any:
        if key in _KEY_SET:
            value = getattr(self, key)
            if value is not None:
                return value
        elif key in self.extra:
            return self.extra[key]
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_dict())

    def __len__(self) -> int:
        return len(self.to_dict())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return self.to_dict() == dict(other.items())
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # holds dicts and lists


_KEYS = tuple(f.name for f in fields(RunSummary) if f.name != "extra")
_KEY_SET = frozenset(_KEYS)
CONDITIONAL_KEYS = frozenset({"records_redelivered", "consumer_lag_max"})
"""Keys present only when the run uses their feature (consumer groups), absent otherwise."""


def _jsonable(o):
    if hasattr(o, "item"):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def read_summary(path: str | Path) -> RunSummary:
    """A run's summary.json (:class:`ResultsError` if it cannot be read or is not a run summary)."""
    data = _read_json(Path(path))
    if not isinstance(data, dict) or "sim_duration_ms" not in data:
        raise ResultsError(f"{path}: not a run summary (no sim_duration_ms)")
    return RunSummary.from_dict(data)


def flatten_summary(summary: Mapping, prefix: str = "") -> dict:
    """summary.json scalars with nested keys joined by dots (lists such as failovers are left out)."""
    out = {}
    for k, v in summary.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten_summary(v, key + "."))
        elif not isinstance(v, (list, tuple)):
            out[key] = v
    return out


# --- recognising results -------------------------------------------------------------------------
def _entries(d: Path) -> list[Path]:
    try:
        return sorted(d.iterdir())
    except OSError:
        return []


def is_figure_dir(path: str | Path) -> bool:
    """A directory holding only figures (and hidden temporaries)."""
    d = Path(path)
    return d.is_dir() and all((e.is_file() and e.suffix in FIGURE_SUFFIXES) or is_temporary(e) for e in _entries(d))


def is_report(path: str | Path) -> bool:
    """A page `kafkasim report` wrote."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096).decode("utf-8", "replace")
    except OSError:
        return False
    return head.startswith("<!DOCTYPE html>") and REPORT_MARK in head


def _ours_in_run_dir(e: Path) -> bool:
    return ((e.name in RUN_FILES and e.is_file()) or (e.name == "plots" and is_figure_dir(e))
            or (e.name == "report.html" and e.is_file() and is_report(e)))


def _ours_in_sweep_dir(e: Path) -> bool:
    if is_temporary(e) or (e.name in SWEEP_FILES and e.is_file()):
        return True
    if e.name == "runs":
        return e.is_dir() and all(r.is_dir() for r in _entries(e))
    if e.name == "failures":
        return e.is_dir() and all(f.suffix == ".json" or is_temporary(f) for f in _entries(e))
    return (e.name == "plots" and is_figure_dir(e)) or (e.name == "report.html" and e.is_file() and is_report(e))


def is_run_dir(path: str | Path, *, only_ours: bool = False) -> bool:
    """Whether `path` is a run directory: it has a ``summary.json``.

    With `only_ours`, also that it holds nothing kafkasim did not write (its files, figures in
    ``plots/``, a report), so it may be replaced.
    """
    d = Path(path)
    if not only_ours:
        return (d / "summary.json").is_file()
    entries = _entries(d)
    return {"summary.json", "scenario.yaml"} <= {e.name for e in entries} and all(map(_ours_in_run_dir, entries))


def is_sweep_dir(path: str | Path, *, only_ours: bool = False) -> bool:
    """Whether `path` is a sweep directory: it has ``sweep.parquet`` or ``sweep.yaml``.

    With `only_ours`, instead whether it is (or was begun as) one and holds nothing kafkasim did
    not write, so it may be written: an interrupted sweep may have ``runs/`` only.
    """
    d = Path(path)
    if not only_ours:
        return any((d / f).is_file() for f in SWEEP_FILES)
    entries = _entries(d)
    return bool({e.name for e in entries} & {*SWEEP_FILES, "runs"}) and all(map(_ours_in_sweep_dir, entries))


# --- reading -------------------------------------------------------------------------------------
def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def read_yaml(path: Path) -> dict:
    """A YAML mapping (a scenario.yaml or sweep.yaml); :class:`ResultsError` if unreadable."""
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise ResultsError(f"{path}: cannot read ({_one_line(e)})") from None
    if not isinstance(data, dict):
        raise ResultsError(f"{path}: expected a YAML mapping")
    return data


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ResultsError(f"{path}: cannot read ({_one_line(e)})") from None


def _read_parquet(path: Path, columns: list[str] | None = None) -> pd.DataFrame:
    try:
        return pd.read_parquet(path, columns=columns)
    except Exception as e:  # pyarrow raises several unrelated types for a damaged file
        raise ResultsError(f"{path}: cannot read ({_one_line(e)})") from None


def _complete_dir(path: str | Path, kind: str, files) -> Path:
    """The directory, if it exists and holds every file of a complete `kind` directory."""
    d = Path(path)
    if not d.exists():
        raise ResultsError(f"{d}: no such {kind} directory")
    if not d.is_dir():
        raise ResultsError(f"{d}: is not a directory")
    missing = [f for f in files if not (d / f).is_file()]
    if missing:
        raise ResultsError(f"{d}: not a complete {kind} directory (missing {', '.join(missing)})")
    return d


# --- what a run was made with ------------------------------------------------------------------------------
def acks_label(acks: Any) -> str:
    """Kafka's spelling of an acks setting: "0", "1" or "all" (legacy N >= 2 as "N")."""
    if acks is None:
        return "none"
    s = str(acks).strip().lower()
    if s in ("all", "-1", "-1.0"):
        return "all"
    try:
        f = float(s)
    except ValueError:
        return s
    return str(int(f)) if f.is_integer() else s


def acks_order(label: str) -> tuple:
    """Sort key putting acks modes in order of durability: 0, 1, (legacy 2..), all."""
    if label == "all":
        return (1, float("inf"), label)
    try:
        return (1, float(label), label)
    except ValueError:
        return (2, 0.0, label)


def scenario_facts(scenario: dict) -> dict:
    """The durability settings of a resolved scenario that plots group by.

    The topic is the first producer's (else the first topic); ``acks`` joins the distinct acks
    of all producers with "+" when they differ.
    """
    topics = scenario.get("topics") or [{}]
    producers = scenario.get("producers") or []
    cluster = scenario.get("cluster") or {}
    topic = topics[0]
    if producers:
        by_name = {t.get("name"): t for t in topics}
        topic = by_name.get(producers[0].get("topic"), topic)
    acks = sorted({acks_label(p.get("acks", "all")) for p in producers}, key=acks_order)
    kinds = sorted({f.get("kind", "crash") for f in (scenario.get("faults") or [])}
                   | {f.get("kind", "crash") for f in (scenario.get("random_faults") or [])})
    min_isr = topic.get("min.insync.replicas")
    if min_isr is None:
        min_isr = cluster.get("min.insync.replicas", 1)
    return {
        "acks": "+".join(acks) if acks else "none",
        "replication_factor": int(topic.get("replication.factor", 1)),
        "min_insync_replicas": int(min_isr),
        "partitions": int(topic.get("partitions", 1)),
        "fault_kind": ",".join(kinds) if kinds else "none",
    }


def replication_by_partition(scenario: dict) -> dict[str, int]:
    """Partition name ("topic-i") -> replication factor, from a resolved scenario."""
    out = {}
    for t in scenario.get("topics") or []:
        for i in range(int(t.get("partitions", 1))):
            out[f"{t['name']}-{i}"] = int(t.get("replication.factor", 1))
    return out


@dataclass(eq=False)
class Run:
    """One run directory: the resolved scenario (as written) and summary, and its tables (read on first use)."""

    path: Path
    scenario: dict
    summary: RunSummary

    @property
    def name(self) -> str:
        """The scenario name."""
        return str(self.summary.scenario or self.scenario.get("name", self.path.name))

    @property
    def seed(self) -> int:
        return int(self.summary.seed if self.summary.seed is not None else self.scenario.get("seed", 0))

    @property
    def label(self) -> str:
        """For titles: '<scenario> seed <N>'."""
        return f"{self.name} seed {self.seed}"

    @property
    def end_ms(self) -> float:
        """Simulated time at the end of the run (duration + settle)."""
        return float(self.summary.sim_duration_ms)

    @property
    def produce_end_ms(self) -> float:
        """When producers stopped and faults healed."""
        end = self.summary.produce_duration_ms
        return float(end) if end is not None else self.end_ms

    @property
    def facts(self) -> dict:
        """Durability settings (see `scenario_facts`)."""
        return scenario_facts(self.scenario)

    @cached_property
    def batches(self) -> pd.DataFrame:
        """One row per producer batch (see ``sim/measure/checker.py``)."""
        return _read_parquet(self.path / "batches.parquet")

    @cached_property
    def events(self) -> pd.DataFrame:
        """Model events in time order: crashes, elections, ISR changes, ..."""
        return _read_parquet(self.path / "events.parquet")

    @cached_property
    def timeseries(self) -> pd.DataFrame:
        """Per simulated second: acked/failed records, latency p50/p99, URP and offline partitions."""
        return _read_parquet(self.path / "timeseries.parquet")

    def read_batches(self, columns: list[str]) -> pd.DataFrame:
        """Only some columns of ``batches.parquet`` (cheap for large sweeps)."""
        if "batches" in self.__dict__:
            return self.batches[columns]
        return _read_parquet(self.path / "batches.parquet", columns)

    def load_tables(self) -> "Run":
        """Read every table now (surfaces unreadable files at load time); returns self."""
        for t in RUN_TABLES:
            getattr(self, t)
        return self


def read_run(path: str | Path, *, tables: bool = True) -> Run:
    """Read a run directory (the one reader, for sim and analysis); ``tables=False`` reads tables on first use.

    Raises :class:`ResultsError` (one line) when it is absent, incomplete or unreadable.
    """
    d = _complete_dir(path, "run", RUN_FILES)
    run = Run(d, read_yaml(d / "scenario.yaml"), read_summary(d / "summary.json"))
    return run.load_tables() if tables else run


def read_sweep_table(path: str | Path, columns: list[str] | None = None) -> pd.DataFrame:
    """A sweep directory's ``sweep.parquet`` (or a file path to one), optionally only some columns."""
    p = Path(path)
    return _read_parquet(p / "sweep.parquet" if p.is_dir() else p, columns)


def _swept_keys(spec: dict) -> list[str]:
    keys: list[str] = []

    def add(node: Any) -> None:
        if isinstance(node, dict):
            keys.extend(k for k in node if k not in keys)
        elif isinstance(node, list):
            for item in node:
                add(item)

    add(spec.get("grid"))
    add(spec.get("zip"))
    return keys


@dataclass(eq=False)
class SweepResults:
    """A sweep directory as written: its resolved spec, one table row per run, and the runs on demand.

    Not to be confused with `sim.runs.sweep.Sweep`, the expanded sweep *file* that is run.
    """

    path: Path
    spec: dict
    table: pd.DataFrame
    params: list[str] = field(default_factory=list)
    """The swept dotted keys that are columns of the table."""
    failures: dict[str, dict] = field(default_factory=dict)
    """run_id -> the failure record of a run that failed."""

    @property
    def name(self) -> str:
        return str(self.spec.get("name") or self.path.name)

    @property
    def ok(self) -> pd.DataFrame:
        """Rows of the runs that finished."""
        return self.table[self.table["status"] == "ok"]

    def run_dir(self, run_id: str) -> Path:
        return self.path / "runs" / str(run_id)

    def run(self, run_id: str, *, tables: bool = False) -> Run:
        """Read one run of the sweep (tables read on first use unless ``tables=True``)."""
        key = str(run_id)
        cache = self.__dict__.setdefault("_runs", {})
        if key not in cache:
            cache[key] = read_run(self.run_dir(key), tables=False)
        return cache[key].load_tables() if tables else cache[key]

    def runs(self) -> list[Run]:
        """Every finished run, in ``run_id`` order."""
        return [self.run(r) for r in self.ok["run_id"]]


def read_sweep(path: str | Path) -> SweepResults:
    """Read a sweep directory: ``sweep.yaml``, ``sweep.parquet`` and ``failures/`` (:class:`ResultsError` if not one)."""
    d = _complete_dir(path, "sweep", SWEEP_FILES)
    spec = read_yaml(d / "sweep.yaml")
    table = read_sweep_table(d)
    need = [c for c in ("run_id", "status") if c not in table.columns]
    if need:
        raise ResultsError(f"{d / 'sweep.parquet'}: not a sweep table (no {', '.join(need)} column)")
    table = table.copy()
    table["run_id"] = table["run_id"].astype(str)
    sweep = SweepResults(d, spec, table, [k for k in _swept_keys(spec) if k in table.columns])
    for f in sorted((d / "failures").glob("*.json")) if (d / "failures").is_dir() else ():
        try:
            sweep.failures[f.stem] = json.loads(f.read_text())
        except (OSError, ValueError):
            sweep.failures[f.stem] = {"error": f"unreadable {f.name}"}
    return sweep


# --- across runs ---------------------------------------------------------------------------------
def _sort_key(col: str):
    if col == "acks":
        return lambda s: s.map(lambda v: acks_order(str(v)))
    return None


def sort_groups(df: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """Sort rows by grouping columns, acks in durability order (0, 1, all)."""
    out = df
    for col in reversed(list(by)):
        out = out.sort_values(col, key=_sort_key(col), kind="stable")
    return out.reset_index(drop=True)


def aggregate(table: pd.DataFrame, by: Sequence[str], metrics: Iterable[str],
              confidence: float = 0.95, nonnegative: bool = True, *, sort: bool = True) -> pd.DataFrame:
    """Per group of `by` (sorted by :func:`sort_groups`, or with `sort=False` in order of first
    appearance): ``n`` runs, ``seeds`` (distinct), and
    ``<metric>_mean``, ``_low``, ``_high``, ``_n`` (runs with a value) and ``_clipped``.

    ``_low``/``_high`` are the Student t confidence interval of the mean over the group's runs
    (the seeds are the replications; NaN with a single run; a failed run has no value and is
    left out) cut to what the metric can be (`sim.measure.stats.bounded_mean_ci`): with
    `nonnegative`, never below 0 (counts, rates, latencies and throughput), and a share (a metric
    named ``*_rate``) never above 1. ``_clipped`` is True where the t interval reached past a
    bound and was cut. Metrics missing from the table are skipped. With no `by`, one group.
    """
    by = list(by)
    metrics = [m for m in metrics if m in table.columns]
    if table.empty:
        return pd.DataFrame(columns=by + ["n", "seeds"])
    groups = table.groupby(by, sort=False, dropna=False) if by else [((), table)]
    rows = []
    for key, g in groups:
        key = key if isinstance(key, tuple) else (key,)
        row = dict(zip(by, key))
        row["n"] = int(len(g))
        row["seeds"] = int(g["seed"].nunique()) if "seed" in g else int(len(g))
        for m in metrics:
            upper = 1.0 if nonnegative and m.endswith("_rate") else None
            mean, lo, hi, n, clipped = bounded_mean_ci(pd.to_numeric(g[m], errors="coerce").to_numpy(dtype=float),
                                                       confidence, lower=0.0 if nonnegative else None, upper=upper)
            row.update({f"{m}_mean": mean, f"{m}_low": lo, f"{m}_high": hi, f"{m}_n": n, f"{m}_clipped": clipped})
        rows.append(row)
    return sort_groups(pd.DataFrame(rows), by) if sort else pd.DataFrame(rows)
