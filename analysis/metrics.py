"""Metrics of one run, recomputed from its recorded facts.

Two kinds, kept apart (salabim's level/tally distinction):

- **level** metrics are states that hold over time, built from state-change events and
  weighted by how long each state lasted: leadership (`leadership_intervals`), ISR size
  (`isr_intervals`), faults of any kind (`fault_intervals`) and the broker downtime they cause
  (`down_intervals`), and their per-partition and
  run-wide time-weighted summaries (`level_metrics`, `level_summary`);
- **tally** metrics are distributions over individual occurrences: produce latency per
  acknowledged record (`produce_latencies`, `latency_percentiles`), the Jepsen-style record
  outcomes (`loss_tally`) and failover times per fault and partition (`failover_table`).

All times are simulated milliseconds from the start of the run.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pandas as pd

from analysis.load import Run, replication_by_partition
from sim.measure.batches import produce_latencies, tally_outcomes
from sim.measure.stats import weighted_percentiles

__all__ = [
    "fault_intervals", "down_intervals", "leadership_intervals", "isr_intervals", "level_metrics", "level_summary",
    "produce_latencies", "latency_percentiles", "sent_per_second", "loss_tally", "failover_table",
    "min_insync_by_partition",
]

_LEADERSHIP_KINDS = ("leader_elected", "partition_offline")
_FAULT_START, _FAULT_END = "fault_start", "fault_end"  # sim/model/events.py (analysis never imports the model)


def _once_per_run(fn):
    """Derive a table once per Run: several metrics, plots and the report read the same intervals.

    Callers get their own copy, so changing it cannot corrupt what the next caller sees.
    """
    key = f"_derived_{fn.__name__}"

    @functools.wraps(fn)
    def derived(run: Run) -> pd.DataFrame:
        cache = run.__dict__  # where functools.cached_property keeps Run's tables too
        if key not in cache:
            cache[key] = fn(run)
        return cache[key].copy()
    return derived


_FAULT_COLUMNS = ["fault", "fault_source", "fault_index", "target", "broker", "start_ms", "end_ms", "takes_down",
                  "cause"]


@_once_per_run
def fault_intervals(run: Run) -> pd.DataFrame:
    """Every fault of any kind, from its fault_start to its fault_end (or to the end of the run).

    Columns: fault (the kind), fault_source (faults or random_faults), fault_index, target (as the
    fault names it), broker (-1: the fault is not on a broker), start_ms, end_ms, takes_down (it
    stopped the target serving), cause (the fault_start's detail, e.g. "crash", "random crash").
    A fault_end closes the open fault of the same source, index and broker, so overlapping faults
    on one broker (a partition during a slow disk) or off the brokers (two consumer faults) pair up.
    """
    ev = run.events
    ev = ev[ev["kind"].isin([_FAULT_START, _FAULT_END])].sort_values("time_ms", kind="stable")
    rows, open_ = [], {}
    for t, kind, broker, fault, src, idx, target, down, detail in zip(
            ev["time_ms"], ev["kind"], ev["broker"], ev["fault"], ev["fault_source"], ev["fault_index"],
            ev["target"], ev["takes_down"], ev["detail"]):
        b = int(broker)
        key = (str(src), int(idx), b)
        if kind == _FAULT_START and key not in open_:
            open_[key] = [str(fault), str(src), int(idx), str(target), b, float(t), None, bool(down), str(detail)]
        elif kind == _FAULT_END and key in open_:
            row = open_.pop(key)
            row[6] = float(t)
            rows.append(row)
    for row in open_.values():
        row[6] = max(run.end_ms, row[5])
        rows.append(row)
    out = pd.DataFrame(rows, columns=_FAULT_COLUMNS).astype({"fault_index": "int64", "broker": "int64"})
    return out.sort_values(["start_ms", "broker"], kind="stable", ignore_index=True)


@_once_per_run
def down_intervals(run: Run) -> pd.DataFrame:
    """When each broker was down: from a fault of any kind that stopped it serving to that fault's end.

    Columns: broker, start_ms, end_ms, cause (the fault_start's detail, e.g. "crash"), fault (its kind).
    """
    f = fault_intervals(run)
    f = f[f["takes_down"].astype(bool) & (f["broker"] >= 0)]
    return f[["broker", "start_ms", "end_ms", "cause", "fault"]].reset_index(drop=True)


def _partitions(run: Run) -> list[tuple[int, str]]:
    """(partition_index, name) of every partition, from the events (index order)."""
    ev = run.events
    ev = ev[ev["partition_index"] >= 0]
    pairs = ev[["partition_index", "partition"]].drop_duplicates("partition_index")
    return sorted((int(i), str(n)) for i, n in zip(pairs["partition_index"], pairs["partition"]))


def _intervals(times: np.ndarray, end_ms: float) -> tuple[np.ndarray, np.ndarray]:
    """Start and end of each state that begins at `times` and lasts until the next one."""
    starts = np.asarray(times, dtype=float)
    ends = np.r_[starts[1:], max(end_ms, starts[-1] if len(starts) else end_ms)]
    return starts, ends


@_once_per_run
def leadership_intervals(run: Run) -> pd.DataFrame:
    """Who led each partition, when, and whether it could take writes.

    One row per interval: partition, partition_index, start_ms, end_ms, leader (-1: offline),
    leader_epoch, and state:

    - ``led``: a live broker leads the partition;
    - ``leader down``: the leader's process has crashed but the controller has not yet fenced
      it, so the partition still names it as leader and writes stall;
    - ``offline``: no leader at all (no live ISR member, unclean election disabled).

    Zero-length intervals (a change and its replacement at the same instant) are dropped.
    """
    ev = run.events
    lead = ev[ev["kind"].isin(_LEADERSHIP_KINDS)].sort_values("time_ms", kind="stable")
    down = down_intervals(run)
    down_by_broker = {int(b): g[["start_ms", "end_ms"]].to_numpy() for b, g in down.groupby("broker")}
    cols = ["partition", "partition_index", "start_ms", "end_ms", "leader", "leader_epoch", "state"]
    rows = []
    for p, g in lead.groupby("partition_index", sort=True):
        name = str(g["partition"].iloc[0])
        starts, ends = _intervals(g["time_ms"].to_numpy(), run.end_ms)
        for s, e, leader, epoch in zip(starts, ends, g["broker"].to_numpy(), g["value"].to_numpy()):
            leader = int(leader)
            if leader < 0:
                pieces = [(s, e, "offline")]
            else:
                pieces = _split_by_down(s, e, down_by_broker.get(leader))
            for ps, pe, state in pieces:
                if pe > ps:
                    rows.append((name, int(p), float(ps), float(pe), leader, int(epoch), state))
    return pd.DataFrame(rows, columns=cols)


def _split_by_down(start: float, end: float, windows: np.ndarray | None) -> list[tuple[float, float, str]]:
    """Cut [start, end) into "led" and "leader down" pieces by the leader's down windows."""
    if windows is None or len(windows) == 0:
        return [(start, end, "led")]
    out, t = [], start
    for ws, we in windows:
        ws, we = max(ws, start), min(we, end)
        if we <= ws:
            continue
        if ws > t:
            out.append((t, ws, "led"))
        out.append((ws, we, "leader down"))
        t = we
    if t < end:
        out.append((t, end, "led"))
    return out


@_once_per_run
def isr_intervals(run: Run) -> pd.DataFrame:
    """The in-sync replica set of each partition over time.

    One row per interval: partition, partition_index, start_ms, end_ms, isr_size, isr (e.g.
    "[0,1]"), replication_factor, and members_down: how many ISR members were crashed during
    the interval (intervals are cut where that changes). A crashed broker stays in the ISR until
    the controller fences it, and until then acks=all writes wait for it.
    """
    ev = run.events
    isr = ev[ev["kind"] == "isr_change"].sort_values("time_ms", kind="stable")
    rf = replication_by_partition(run.scenario)
    down = down_intervals(run)
    down_by_broker = {int(b): g[["start_ms", "end_ms"]].to_numpy() for b, g in down.groupby("broker")}
    cols = ["partition", "partition_index", "start_ms", "end_ms", "isr_size", "isr", "replication_factor",
            "members_down"]
    rows = []
    for p, g in isr.groupby("partition_index", sort=True):
        name = str(g["partition"].iloc[0])
        starts, ends = _intervals(g["time_ms"].to_numpy(), run.end_ms)
        for s, e, size, isr_ids in zip(starts, ends, g["value"].to_numpy(), g["isr"]):
            ids = [int(x) for x in isr_ids]
            members = "[" + ",".join(map(str, ids)) + "]"
            windows = [w for b in ids for w in down_by_broker.get(b, ())]
            cuts = sorted({s, e, *(float(t) for w in windows for t in w if s < t < e)})
            for cs, ce in zip(cuts[:-1], cuts[1:]):
                if ce <= cs:
                    continue
                n_down = sum(1 for ws, we in windows if ws <= cs and we >= ce)
                rows.append((name, int(p), float(cs), float(ce), int(size), members,
                             int(rf.get(name, max(int(size), 1))), n_down))
    return pd.DataFrame(rows, columns=cols)


def min_insync_by_partition(run: Run) -> dict[str, int]:
    """Partition name -> effective min.insync.replicas (topic value, else the cluster's)."""
    cluster = run.scenario.get("cluster") or {}
    out = {}
    for t in run.scenario.get("topics") or []:
        m = t.get("min.insync.replicas")
        m = int(cluster.get("min.insync.replicas", 1) if m is None else m)
        for i in range(int(t.get("partitions", 1))):
            out[f"{t['name']}-{i}"] = m
    return out


@_once_per_run
def level_metrics(run: Run) -> pd.DataFrame:
    """Per partition, time-weighted over the whole run.

    Columns: partition, replication_factor, min_insync_replicas, mean_isr_size (time-weighted),
    min_isr_size, under_replicated_ms (ISR smaller than the replication factor),
    below_min_isr_ms (ISR smaller than min.insync.replicas: acks=all writes are refused),
    isr_member_down_ms (an ISR member was crashed but not yet removed: acks=all writes wait),
    leader_down_ms (the leader was crashed but not yet fenced: all writes wait), offline_ms,
    unavailable_ms (leader down + offline), leader_changes (elections after t=0).
    """
    isr = isr_intervals(run)
    lead = leadership_intervals(run)
    min_isr = min_insync_by_partition(run)
    ev = run.events
    elections = ev[(ev["kind"].isin(_LEADERSHIP_KINDS)) & (ev["time_ms"] > 0)]
    changes = elections.groupby("partition")["time_ms"].count()
    total = run.end_ms
    # split the tables by partition in one pass, not one scan of every row per partition
    isr_of = dict(tuple(isr.groupby("partition_index", sort=False)))
    lead_of = dict(tuple(lead.groupby("partition_index", sort=False)))
    rows = []
    for idx, name in _partitions(run):
        gi = isr_of.get(idx, isr.iloc[:0])
        gl = lead_of.get(idx, lead.iloc[:0])
        dur = (gi["end_ms"] - gi["start_ms"]).to_numpy()
        sizes = gi["isr_size"].to_numpy()
        rf = int(gi["replication_factor"].iloc[0]) if len(gi) else replication_by_partition(run.scenario).get(name, 1)
        m = min_isr.get(name, 1)
        ldur = gl["end_ms"] - gl["start_ms"]
        member_down = float(dur[gi["members_down"].to_numpy() > 0].sum())
        leader_down = float(ldur[gl["state"] == "leader down"].sum())
        offline = float(ldur[gl["state"] == "offline"].sum())
        rows.append({
            "partition": name,
            "replication_factor": rf,
            "min_insync_replicas": m,
            "mean_isr_size": float((dur * sizes).sum() / dur.sum()) if dur.sum() > 0 else math.nan,
            "min_isr_size": int(sizes.min()) if len(sizes) else -1,
            "under_replicated_ms": float(dur[sizes < rf].sum()),
            "below_min_isr_ms": float(dur[sizes < m].sum()),
            "isr_member_down_ms": member_down,
            "leader_down_ms": leader_down,
            "offline_ms": offline,
            "unavailable_ms": leader_down + offline,
            "leader_changes": int(changes.get(name, 0)),
            "run_ms": total,
        })
    return pd.DataFrame(rows)


def level_summary(run: Run) -> dict:
    """Run-wide level metrics, time-weighted over the whole run (duration + settle).

    ``mean_under_replicated_partitions`` is the time-average of the number of under-replicated
    partitions (the same quantity as the mean of the per-second ``under_replicated_partitions``
    series, weighted by bin length); likewise ``mean_offline_partitions``.
    """
    lm = level_metrics(run)
    total = run.end_ms
    if lm.empty or total <= 0:
        return {"partitions": 0}
    isr = isr_intervals(run)
    # the largest number of partitions under-replicated at the same time
    under = isr[isr["isr_size"] < isr["replication_factor"]]
    edges = pd.concat([
        pd.DataFrame({"t": under["start_ms"], "d": 1}), pd.DataFrame({"t": under["end_ms"], "d": -1}),
    ]).sort_values(["t", "d"], kind="stable")
    max_under = int(edges["d"].cumsum().max()) if len(edges) else 0
    return {
        "partitions": int(len(lm)),
        "mean_isr_size": float(lm["mean_isr_size"].mean()),
        "mean_under_replicated_partitions": float(lm["under_replicated_ms"].sum() / total),
        "max_under_replicated_partitions": max_under,
        "mean_offline_partitions": float(lm["offline_ms"].sum() / total),
        "partition_seconds_under_replicated": float(lm["under_replicated_ms"].sum() / 1000.0),
        "partition_seconds_below_min_isr": float(lm["below_min_isr_ms"].sum() / 1000.0),
        "partition_seconds_isr_member_down": float(lm["isr_member_down_ms"].sum() / 1000.0),
        "partition_seconds_leader_down": float(lm["leader_down_ms"].sum() / 1000.0),
        "partition_seconds_offline": float(lm["offline_ms"].sum() / 1000.0),
        "leader_changes": int(lm["leader_changes"].sum()),
    }


# --- tally metrics -------------------------------------------------------------------------------
# produce_latencies (mid arrival to ack, per acknowledged batch) is sim.measure.batches', the
# definition the run summary's produce_latency_ms uses.


def sent_per_second(run: Run) -> pd.Series:
    """Records sent per simulated second (by each batch's first send), on the timeseries' seconds."""
    ts = run.timeseries
    n = len(ts)
    b = run.read_batches(["sent_ms", "record_count"])
    b = b[b["sent_ms"].notna()]
    sec = np.minimum((b["sent_ms"].to_numpy(dtype=float) // 1000).astype(int), max(n - 1, 0))
    counts = np.bincount(sec, weights=b["record_count"].to_numpy(dtype=float), minlength=n)[:n] if n else np.zeros(0)
    return pd.Series(counts.astype(np.int64), index=ts["second"].to_numpy(), name="records_sent")


def latency_percentiles(batches: pd.DataFrame, qs=(50, 99, 99.9)) -> dict[str, float]:
    """Record-weighted produce latency percentiles, keyed "p50", "p99", "p999"."""
    lat = produce_latencies(batches)
    vals = weighted_percentiles(lat["latency_ms"].to_numpy(), lat["records"].to_numpy(), list(qs))
    return {_pkey(q): v for q, v in zip(qs, vals)}


def _pkey(q: float) -> str:
    return "p" + (f"{q:g}".replace(".", ""))


def loss_tally(batches: pd.DataFrame) -> dict:
    """Record outcomes counted from the batches table, as the checker classifies them, with loss rates.

    The counts of `sim.measure.batches.tally_outcomes` (records_sent, records_acked, records_failed,
    records_unknown, acked_lost, records_lost, ...: the run summary's), and the rates
    loss_rate = records_lost / records_sent and acked_loss_rate = acked_lost / records_sent.
    """
    out: dict = tally_outcomes(batches)
    s = out["records_sent"]
    out["loss_rate"] = out["records_lost"] / s if s else math.nan
    out["acked_loss_rate"] = out["acked_lost"] / s if s else math.nan
    return out


def failover_table(run: Run) -> pd.DataFrame:
    """One row per (fault, partition the crashed broker led), from the run summary.

    Columns: fault_ms, broker, partition, new_leader, elected_ms, first_ack_ms, election_ms
    (fault to new leader elected), unavailable_ms (fault to first write acknowledged by the new
    leader, or by the same one when the fault ended without an election: then new_leader is -1 and
    the election columns are NaN); NaN where it never happened before the run ended.
    """
    cols = ["fault_ms", "broker", "partition", "new_leader", "elected_ms", "first_ack_ms",
            "election_ms", "unavailable_ms"]
    df = pd.DataFrame(run.summary.failovers or [], columns=cols)
    for c in ("fault_ms", "elected_ms", "first_ack_ms", "election_ms", "unavailable_ms"):
        df[c] = pd.to_numeric(df[c], errors="coerce").astype(float)
    return df
