"""Metrics computed from the recorded facts: throughput, latency, failover, per-second series.

Latencies are per record but computed per batch: a batch's records arrived between its first
and last arrival, so a batch contributes its record count at the latency of its mid arrival.
Level metrics (under-replicated and offline partitions) are time-weighted from state changes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .recorder import OUTCOMES, Recorder

__all__ = ["weighted_percentiles", "produce_latency", "e2e_latency", "failovers", "timeseries", "events_table"]


def weighted_percentiles(values: np.ndarray, weights: np.ndarray, qs: list[float]) -> list[float | None]:
    """Percentiles (0..100) of `values` where each value counts `weights` times."""
    if len(values) == 0 or weights.sum() <= 0:
        return [None for _ in qs]
    order = np.argsort(values, kind="stable")
    v, w = values[order], np.cumsum(weights[order])
    total = w[-1]
    out = []
    for q in qs:
        # the smallest value whose cumulative weight reaches q% of all records
        i = int(np.searchsorted(w, q / 100.0 * total, side="left"))
        out.append(float(v[min(i, len(v) - 1)]))
    return out


def _mid_arrival(b: pd.DataFrame) -> np.ndarray:
    return (b["first_arrival_ms"].to_numpy() + b["last_arrival_ms"].to_numpy()) / 2.0


def produce_latency(batches: pd.DataFrame) -> dict:
    """Send (record arrival) to acknowledgement, per record: p50, p99, p99.9, max (ms)."""
    acked = batches[batches["outcome"] == "acked"]
    lat = acked["acked_ms"].to_numpy() - _mid_arrival(acked)
    w = acked["record_count"].to_numpy()
    p50, p99, p999 = weighted_percentiles(lat, w, [50, 99, 99.9])
    mx = float((acked["acked_ms"].to_numpy() - acked["first_arrival_ms"].to_numpy()).max()) if len(acked) else None
    return {"p50": p50, "p99": p99, "p999": p999, "max": mx}


def e2e_latency(batches: pd.DataFrame) -> dict:
    """Record arrival at the producer to first consumption, per record: p50, p99 (ms)."""
    got = batches[batches["times_consumed"] > 0]
    lat = got["consumed_ms"].to_numpy() - _mid_arrival(got)
    p50, p99 = weighted_percentiles(lat, got["record_count"].to_numpy(), [50, 99])
    return {"p50": p50, "p99": p99}


def events_table(recorder: Recorder) -> pd.DataFrame:
    """Model events with partition names (results contract)."""
    ev = recorder.arrays("events")
    names = np.asarray(recorder.partition_names + [""], dtype=object)
    part = ev["partition"].copy()
    part[part < 0] = len(names) - 1
    return pd.DataFrame({
        "time_ms": ev["time_ms"], "kind": ev["kind"].astype(object), "broker": ev["broker"],
        "partition": names[part] if len(part) else np.empty(0, dtype=object),
        "value": ev["value"], "detail": ev["detail"].astype(object),
        "partition_index": ev["partition"],
    })


def _leadership(events: pd.DataFrame) -> pd.DataFrame:
    lead = events[events["kind"].isin(["leader_elected", "partition_offline"])]
    return lead.sort_values("time_ms", kind="stable")


def failovers(recorder: Recorder, events: pd.DataFrame, batches: pd.DataFrame, acks_zero: bool) -> list[dict]:
    """For every crash and every partition its victim led: time to a new leader and to a write.

    `first_ack_ms` is the first acknowledgement from the new leader after the fault (for acks=0,
    which has no acknowledgements, the first append on the new leader).
    """
    crashes = events[events["kind"] == "crash"]
    if crashes.empty:
        return []
    lead = _leadership(events)
    if acks_zero:
        ap = recorder.arrays("appended")
        writes = pd.DataFrame({"time_ms": ap["time_ms"], "partition_index": ap["partition"], "broker": ap["broker"]})
        writes = writes.sort_values("time_ms", kind="stable")
    else:
        done = recorder.arrays("batch_done")
        ok = done["outcome"] == OUTCOMES.index("acked")
        part = batches["partition_index"].to_numpy()[done["batch_id"][ok]]
        writes = pd.DataFrame({"time_ms": done["time_ms"][ok], "partition_index": part, "broker": done["broker"][ok]})
        writes = writes.sort_values("time_ms", kind="stable")
    writes_by_part = {p: g for p, g in writes.groupby("partition_index", sort=False)}
    lead_by_part = {p: g for p, g in lead.groupby("partition_index", sort=False)}
    out = []
    names = recorder.partition_names
    for _, crash in crashes.iterrows():
        tf, victim = float(crash["time_ms"]), int(crash["broker"])
        for p, g in lead_by_part.items():
            before = g[g["time_ms"] <= tf]
            if before.empty or int(before["broker"].iloc[-1]) != victim:
                continue
            after = g[(g["time_ms"] > tf) & (g["kind"] == "leader_elected")]
            elected = float(after["time_ms"].iloc[0]) if len(after) else None
            new_leader = int(after["broker"].iloc[0]) if len(after) else -1
            w = writes_by_part.get(p)
            first = None
            if w is not None and elected is not None:
                ww = w[(w["time_ms"] > tf) & (w["broker"] == new_leader)]
                if len(ww):
                    first = float(ww["time_ms"].iloc[0])
            out.append({
                "fault_ms": tf, "broker": victim, "partition": names[p] if names else int(p),
                "new_leader": new_leader, "elected_ms": elected, "first_ack_ms": first,
                "election_ms": None if elected is None else elected - tf,
                "unavailable_ms": None if first is None else first - tf,
            })
    out.sort(key=lambda d: (d["fault_ms"], d["partition"]))
    return out


def _level_per_second(times: np.ndarray, values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Time-weighted mean of a step function (value v_k from t_k on) over each [edge_i, edge_i+1)."""
    if len(times) == 0:
        return np.zeros(len(edges) - 1)
    t = np.concatenate(([min(times[0], edges[0])], times, [max(edges[-1], times[-1])]))
    v = np.concatenate(([0.0], values.astype(float), [values[-1]]))
    # integral at each breakpoint
    integ = np.concatenate(([0.0], np.cumsum(v[:-1] * np.diff(t))))
    at_edges = np.interp(edges, t, integ)
    return np.diff(at_edges) / np.diff(edges)


def timeseries(batches: pd.DataFrame, events: pd.DataFrame, replication: dict[int, int],
               end_ms: float) -> pd.DataFrame:
    """Per simulated second: records acked/failed, produce latency p50/p99, under-replicated and
    offline partitions (time-weighted means over the second)."""
    n_bins = max(1, int(np.ceil(end_ms / 1000.0)))
    edges = np.arange(n_bins + 1) * 1000.0
    edges[-1] = max(edges[-1], end_ms)
    out = pd.DataFrame({"second": np.arange(n_bins), "time_ms": edges[:-1]})
    acked = batches[batches["outcome"] == "acked"]
    sec = np.minimum((acked["acked_ms"].to_numpy() // 1000).astype(int), n_bins - 1)
    out["records_acked"] = np.bincount(sec, weights=acked["record_count"].to_numpy(), minlength=n_bins).astype(np.int64)
    failed = batches[batches["outcome"] == "failed"]
    fsec = np.minimum((failed["last_arrival_ms"].to_numpy() // 1000).astype(int), n_bins - 1)
    out["records_failed"] = np.bincount(fsec, weights=failed["record_count"].to_numpy(), minlength=n_bins).astype(np.int64)
    lat = acked["acked_ms"].to_numpy() - _mid_arrival(acked)
    w = acked["record_count"].to_numpy()
    p50 = np.full(n_bins, np.nan)
    p99 = np.full(n_bins, np.nan)
    if len(sec):
        order = np.argsort(sec, kind="stable")
        bounds = np.searchsorted(sec[order], np.arange(n_bins + 1))
        for s in range(n_bins):
            idx = order[bounds[s]:bounds[s + 1]]
            if len(idx):
                p50[s], p99[s] = weighted_percentiles(lat[idx], w[idx], [50, 99])
    out["latency_p50_ms"] = p50
    out["latency_p99_ms"] = p99
    under = np.zeros(n_bins)
    offline = np.zeros(n_bins)
    isr = events[events["kind"] == "isr_change"]
    for p, g in isr.groupby("partition_index", sort=False):
        rf = replication[int(p)]
        under += _level_per_second(g["time_ms"].to_numpy(), (g["value"].to_numpy() < rf).astype(float), edges)
    lead = _leadership(events)
    for p, g in lead.groupby("partition_index", sort=False):
        offline += _level_per_second(g["time_ms"].to_numpy(), (g["broker"].to_numpy() < 0).astype(float), edges)
    out["under_replicated_partitions"] = under
    out["offline_partitions"] = offline
    return out
