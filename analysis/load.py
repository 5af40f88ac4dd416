"""Load run and sweep directories (the results contract) into pandas objects.

Analysis reads files only: it never imports the simulator, so results can be studied on a
machine without it and plots can never change what a run measured. The contract it reads:

- a **run directory** holds ``scenario.yaml`` (fully resolved), ``summary.json``,
  ``batches.parquet``, ``events.parquet`` and ``timeseries.parquet`` (see ``sim/results.py``);
- a **sweep directory** holds ``sweep.yaml``, ``sweep.parquet`` (one row per run, sorted by
  ``run_id``: ``run_id``, ``seed``, ``status``, ``error``, ``scenario``, ``fault_kinds``, one column
  per swept dotted key, then the summary scalars flattened with dots), ``runs/<run_id>/`` (run
  directories) and ``failures/<run_id>.json``.

`load_sweep` adds the columns every sweep plot groups by, read from each run's resolved
scenario so they are there whether or not the parameter was swept: ``acks`` ("0", "1", "all"),
``replication_factor``, ``min_insync_replicas``, ``partitions``, ``fault_kind``, and the loss
rates ``loss_rate`` (records_lost / records_sent) and ``acked_loss_rate``
(acked_lost / records_sent).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from sim.runs.contract import RUN_FILES, SWEEP_FILES, write_atomic

__all__ = [
    "write_atomic",
    "ResultsError", "Run", "Sweep", "load", "load_run", "load_sweep", "is_run_dir", "is_sweep_dir",
    "RUN_FILES", "SWEEP_FILES", "acks_label", "acks_order", "scenario_facts",
]

_TABLES = ("batches", "events", "timeseries")


class ResultsError(ValueError):
    """A results directory is missing, incomplete or unreadable; the message is one line."""


def is_run_dir(path: str | Path) -> bool:
    """Whether `path` looks like a run directory (it has a ``summary.json``)."""
    return (Path(path) / "summary.json").is_file()


def is_sweep_dir(path: str | Path) -> bool:
    """Whether `path` looks like a sweep directory (it has ``sweep.parquet`` or ``sweep.yaml``)."""
    p = Path(path)
    return any((p / f).is_file() for f in SWEEP_FILES)


def _read_yaml(path: Path) -> dict:
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


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def _check_dir(path: Path, what: str) -> None:
    if not path.exists():
        raise ResultsError(f"{path}: no such {what} directory")
    if not path.is_dir():
        raise ResultsError(f"{path}: is not a directory")


# --- scenario facts ------------------------------------------------------------------------------
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


# --- runs ----------------------------------------------------------------------------------------
@dataclass(eq=False)
class Run:
    """One run directory: the resolved scenario and summary, and its tables (read on first use)."""

    path: Path
    scenario: dict
    summary: dict

    @property
    def name(self) -> str:
        """The scenario name."""
        return str(self.summary.get("scenario") or self.scenario.get("name", self.path.name))

    @property
    def seed(self) -> int:
        return int(self.summary.get("seed", self.scenario.get("seed", 0)))

    @property
    def label(self) -> str:
        """For titles: '<scenario> seed <N>'."""
        return f"{self.name} seed {self.seed}"

    @property
    def end_ms(self) -> float:
        """Simulated time at the end of the run (duration + settle)."""
        return float(self.summary["sim_duration_ms"])

    @property
    def produce_end_ms(self) -> float:
        """When producers stopped and faults healed."""
        return float(self.summary.get("produce_duration_ms", self.end_ms))

    @property
    def facts(self) -> dict:
        """Durability settings (see `scenario_facts`)."""
        return scenario_facts(self.scenario)

    @cached_property
    def batches(self) -> pd.DataFrame:
        """One row per producer batch (see ``sim/checker.py``)."""
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
        for t in _TABLES:
            getattr(self, t)
        return self


def _complete_dir(path: str | Path, kind: str, files) -> Path:
    """The directory, if it exists and holds every file of a complete `kind` directory."""
    d = Path(path)
    _check_dir(d, kind)
    missing = [f for f in files if not (d / f).is_file()]
    if missing:
        raise ResultsError(f"{d}: not a complete {kind} directory (missing {', '.join(missing)})")
    return d


def load_run(path: str | Path, *, tables: bool = True) -> Run:
    """Load a run directory; with ``tables=False`` the parquet tables are read on first use."""
    d = _complete_dir(path, "run", RUN_FILES)
    summary = _read_json(d / "summary.json")
    if not isinstance(summary, dict) or "sim_duration_ms" not in summary:
        raise ResultsError(f"{d / 'summary.json'}: not a run summary (no sim_duration_ms)")
    run = Run(d, _read_yaml(d / "scenario.yaml"), summary)
    return run.load_tables() if tables else run


# --- sweeps --------------------------------------------------------------------------------------
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
class Sweep:
    """A sweep directory: its spec, one table row per run, and the runs themselves on demand."""

    path: Path
    spec: dict
    table: pd.DataFrame
    params: list[str] = field(default_factory=list)
    failures: dict[str, dict] = field(default_factory=dict)

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
        """Load one run of the sweep (tables read on first use unless ``tables=True``)."""
        key = str(run_id)
        cache = self.__dict__.setdefault("_runs", {})
        if key not in cache:
            cache[key] = load_run(self.run_dir(key), tables=False)
        return cache[key].load_tables() if tables else cache[key]

    def runs(self) -> list[Run]:
        """Every finished run, in ``run_id`` order."""
        return [self.run(r) for r in self.ok["run_id"]]


def load_sweep(path: str | Path) -> Sweep:
    """Load a sweep directory: ``sweep.parquet`` plus derived grouping and loss-rate columns."""
    d = _complete_dir(path, "sweep", SWEEP_FILES)
    spec = _read_yaml(d / "sweep.yaml")
    table = _read_parquet(d / "sweep.parquet")
    need = [c for c in ("run_id", "status") if c not in table.columns]
    if need:
        raise ResultsError(f"{d / 'sweep.parquet'}: not a sweep table (no {', '.join(need)} column)")
    table = table.copy()
    table["run_id"] = table["run_id"].astype(str)
    sweep = Sweep(d, spec, table, [k for k in _swept_keys(spec) if k in table.columns])
    for f in sorted((d / "failures").glob("*.json")) if (d / "failures").is_dir() else ():
        try:
            sweep.failures[f.stem] = json.loads(f.read_text())
        except (OSError, ValueError):
            sweep.failures[f.stem] = {"error": f"unreadable {f.name}"}
    _derive_columns(sweep)
    return sweep


def _derive_columns(sweep: Sweep) -> None:
    t = sweep.table
    rows = []
    for run_id, status in zip(t["run_id"], t["status"]):
        facts: dict = {}
        sc_path = sweep.run_dir(run_id) / "scenario.yaml"
        if status == "ok":
            if not sc_path.is_file():
                raise ResultsError(f"{sweep.path}: run {run_id} is 'ok' but {sc_path} is missing")
            facts = scenario_facts(_read_yaml(sc_path))
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


def load(path: str | Path) -> Run | Sweep:
    """Load a run or a sweep directory, whichever `path` is."""
    d = Path(path)
    _check_dir(d, "results")
    if is_sweep_dir(d):
        return load_sweep(d)
    if is_run_dir(d) or any((d / f).exists() for f in RUN_FILES):
        return load_run(d)
    raise ResultsError(f"{d}: not a run or sweep directory (expected summary.json or sweep.parquet)")
