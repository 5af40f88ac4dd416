"""`kafka-topics --describe` for a run: every partition's leader, replicas, ISR (and ELR) at a moment.

Built from the run's events only (the results contract), replayed up to the moment asked for:

- **Replicas** are the partition's assignment, the ISR the controller committed at time 0 (every
  replica starts in sync), in Kafka's order (the preferred leader first).
- **Leader** is the last `leader_elected` / `unclean_election` broker, or none (-1, printed
  ``none`` as Kafka does) after `partition_offline`.
- **Isr** is the last committed ISR (`isr_change`), **Elr** the last Eligible Leader Replicas
  (`elr_change`, KIP-966; the column appears only where a run has ELR events).

The filters are `kafka-topics`' own: ``--under-replicated-partitions`` (ISR smaller than the
replicas), ``--under-min-isr-partitions`` (ISR smaller than ``min.insync.replicas``) and
``--unavailable-partitions`` (no leader).
"""

from __future__ import annotations

import math

import pandas as pd

from analysis.load import Run

__all__ = ["describe", "describe_lines", "FILTERS"]

FILTERS = ("under_replicated", "under_min_isr", "unavailable")
"""The `kafka-topics --describe` filters `describe` knows (``--under-replicated-partitions`` ...)."""

_LEADER_KINDS = ("leader_elected", "unclean_election", "partition_offline")


def _ids(value) -> tuple[int, ...]:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ()
    return tuple(int(x) for x in value)


def _min_isr(scenario: dict) -> dict[str, int]:
    cluster = scenario.get("cluster") or {}
    default = int(cluster.get("min.insync.replicas", 1))
    return {t["name"]: int(t.get("min.insync.replicas", default)) for t in scenario.get("topics") or []}


def describe(run: Run, at_ms: float | None = None, only: str | None = None) -> pd.DataFrame:
    """One row per partition as `kafka-topics --describe` shows it, at `at_ms` (default: the end of the run).

    Columns: Topic, Partition, Leader (-1: none), Replicas, Isr, Elr (tuples of broker ids),
    MinIsr, and the time the state was read. `only` is one of :data:`FILTERS`.
    """
    if only is not None and only not in FILTERS:
        raise ValueError(f"only: {only!r} is not a filter (allowed: {', '.join(FILTERS)})")
    events = run.events
    if at_ms is None:
        at_ms = float(run.summary.sim_duration_ms or (events["time_ms"].max() if len(events) else 0.0))
    ev = events[(events["time_ms"] <= at_ms) & (events["partition"] != "")]
    ev = ev.sort_values("time_ms", kind="stable")
    replicas: dict[str, tuple] = {}
    leader: dict[str, int] = {}
    isr: dict[str, tuple] = {}
    elr: dict[str, tuple] = {}
    for row in ev.itertuples(index=False):
        p = row.partition
        if row.kind == "isr_change":
            isr[p] = _ids(row.isr)
            replicas.setdefault(p, isr[p])  # the first committed ISR: every replica, preferred first
        elif row.kind in _LEADER_KINDS:
            leader[p] = -1 if row.kind == "partition_offline" else int(row.broker)
        elif row.kind == "elr_change":
            elr[p] = _ids(row.isr)
        elif row.kind == "replicas_change":  # a reassignment (its isr field holds the replica list)
            replicas[p] = _ids(row.isr)
    min_isr = _min_isr(run.scenario)
    rows = []
    for t in run.scenario.get("topics") or []:
        for i in range(int(t.get("partitions", 1))):
            p = f"{t['name']}-{i}"
            rows.append({"Topic": t["name"], "Partition": i, "Leader": leader.get(p, -1),
                         "Replicas": replicas.get(p, ()), "Isr": isr.get(p, ()), "Elr": elr.get(p, ()),
                         "MinIsr": min_isr.get(t["name"], 1)})
    frame = pd.DataFrame(rows, columns=["Topic", "Partition", "Leader", "Replicas", "Isr", "Elr", "MinIsr"])
    if only == "under_replicated":
        frame = frame[frame["Isr"].map(len) < frame["Replicas"].map(len)]
    elif only == "under_min_isr":
        frame = frame[frame["Isr"].map(len) < frame["MinIsr"]]
    elif only == "unavailable":
        frame = frame[frame["Leader"] < 0]
    frame = frame.reset_index(drop=True)
    frame.attrs["at_ms"] = float(at_ms)
    frame.attrs["elr"] = bool(elr)
    return frame


def describe_lines(frame: pd.DataFrame) -> list[str]:
    """The rows as `kafka-topics --describe` prints them (tab-separated `Key: value` pairs)."""
    def ids(t: tuple) -> str:
        return ",".join(str(b) for b in t)

    out = []
    for r in frame.itertuples(index=False):
        cells = [f"Topic: {r.Topic}", f"Partition: {r.Partition}", f"Leader: {r.Leader if r.Leader >= 0 else 'none'}",
                 f"Replicas: {ids(r.Replicas)}", f"Isr: {ids(r.Isr)}"]
        if frame.attrs.get("elr"):
            cells.append(f"Elr: {ids(r.Elr)}")
        out.append("\t".join(cells))
    return out
