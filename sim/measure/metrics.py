"""Metrics computed from the recorded facts: throughput, latency, failover, per-second series.

Latencies are per record but computed per batch: a batch's records arrived between its first
and last arrival, so a batch contributes its record count at the latency of its mid arrival.
Level metrics (under-replicated and offline partitions) are time-weighted from state changes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sim.measure.stats import weighted_percentiles as _weighted_percentiles
from sim.model.events import FAULT_END, FAULT_START, FIELDS
from sim.model.recorder import OUTCOMES, Recorder
from sim.measure.batches import mid_arrival, produce_latencies

__all__ = ["records_redelivered", "consumer_lag", "records_lag_max", "client_timeseries", "KAFKA_METRICS",
           "weighted_percentiles", "produce_latency", "e2e_latency", "failovers", "fault_starts", "timeseries",
           "events_table", "under_replicated_at_end"]


def weighted_percentiles(values: np.ndarray, weights: np.ndarray, qs: list[float]) -> list[float | None]:
    """Percentiles (0..100) of `values` where each value counts `weights` times (None if empty)."""
    return [None if np.isnan(v) else v for v in _weighted_percentiles(values, weights, qs)]


def produce_latency(batches: pd.DataFrame) -> dict:
    """Send (record arrival) to acknowledgement, per record: p50, p99, p99.9, max (ms).

    Percentiles of `sim.measure.batches.produce_latencies` (mid arrival to ack), weighted by records;
    max is from the batch's first arrival.
    """
    lat = produce_latencies(batches)
    p50, p99, p999 = weighted_percentiles(lat["latency_ms"].to_numpy(), lat["records"].to_numpy(), [50, 99, 99.9])
    acked = batches[batches["outcome"] == "acked"]
    mx = float((acked["acked_ms"].to_numpy() - acked["first_arrival_ms"].to_numpy()).max()) if len(acked) else None
    return {"p50": p50, "p99": p99, "p999": p999, "max": mx}


def e2e_latency(batches: pd.DataFrame) -> dict:
    """Record arrival at the producer to first consumption, per record: p50, p99 (ms)."""
    got = batches[batches["times_consumed"] > 0]
    lat = got["consumed_ms"].to_numpy() - mid_arrival(got)
    p50, p99 = weighted_percentiles(lat, got["record_count"].to_numpy(), [50, 99])
    return {"p50": p50, "p99": p99}


def events_table(recorder: Recorder) -> pd.DataFrame:
    """Model events with partition names (results contract)."""
    ev = recorder.arrays("events")
    names = np.asarray(recorder.partition_names + [""], dtype=object)
    part = ev["partition"].copy()
    part[part < 0] = len(names) - 1
    cols = {
        "time_ms": ev["time_ms"], "kind": ev["kind"].astype(object), "broker": ev["broker"],
        "partition": names[part] if len(part) else np.empty(0, dtype=object),
        "value": ev["value"], "detail": ev["detail"].astype(object),
        "partition_index": ev["partition"],
    }
    # the structured fields of sim.model.events, after the fixed columns
    for f in FIELDS.values():
        cols[f.name] = ev[f.name].astype(object) if f.dtype.startswith("U") else ev[f.name]
    return pd.DataFrame(cols)


def _leadership(events: pd.DataFrame) -> pd.DataFrame:
    lead = events[events["kind"].isin(["leader_elected", "partition_offline"])]
    return lead.sort_values("time_ms", kind="stable")


def _first_per_partition(parts: np.ndarray, *cols: np.ndarray) -> dict[int, tuple]:
    """For time-ordered rows: partition -> the columns of its first row."""
    uniq, idx = np.unique(parts, return_index=True)
    return {int(p): tuple(c[i] for c in cols) for p, i in zip(uniq, idx)}


def _answered_appends(ap: dict, lead: np.ndarray, w_id, w_off, w_b, w_t) -> np.ndarray:
    """For each answer (batch, offset, broker, time): the row of `ap` (the appended facts) that it
    names, or -1: the latest append as leader (rows `lead`) of that batch at that offset by that
    broker, at or before the answer.

    A batch is almost always appended as leader once: those answers are matched through a table
    indexed by batch id; batches appended more than once (retries without idempotence), and ids
    too sparse for a table, go through one sort by (batch, offset, broker, time).
    """
    src = np.full(len(w_id), -1, dtype=np.int64)
    if not len(lead) or not len(w_id):
        return src
    a_id = ap["batch_id"][lead]
    lo, hi = int(min(a_id.min(), w_id.min())), int(max(a_id.max(), w_id.max()))
    if lo >= 0 and hi < 4 * (len(a_id) + len(w_id)) + 1024:
        count = np.bincount(a_id, minlength=hi + 1)
        where = np.full(hi + 1, -1, dtype=np.int64)
        where[a_id] = lead  # exact for the batches appended once
        n = count[w_id]
        once = np.nonzero(n == 1)[0]
        rows = where[w_id[once]]
        ok = ((ap["offset"][rows] == w_off[once]) & (ap["broker"][rows] == w_b[once])
              & (ap["time_ms"][rows] <= w_t[once]))
        src[once[ok]] = rows[ok]
        rest = np.nonzero(n > 1)[0]
        if not len(rest):
            return src
        a_sel = lead[np.isin(a_id, w_id[rest])]
    else:
        rest, a_sel = np.arange(len(w_id)), lead
    # appends and answers in one sort by (batch, offset, broker, time), appends first at equal
    # times; each answer takes the last append before it within its (batch, offset, broker)
    n_a = len(a_sel)
    batch = np.concatenate((ap["batch_id"][a_sel], w_id[rest]))
    offset = np.concatenate((ap["offset"][a_sel], w_off[rest]))
    broker = np.concatenate((ap["broker"][a_sel], w_b[rest]))
    is_ack = np.concatenate((np.zeros(n_a, dtype=bool), np.ones(len(rest), dtype=bool)))
    order = np.lexsort((is_ack, np.concatenate((ap["time_ms"][a_sel], w_t[rest])), broker, offset, batch))
    batch, offset, broker, is_ack = batch[order], offset[order], broker[order], is_ack[order]
    pos = np.arange(len(order))
    new_group = np.concatenate(([True], (batch[1:] != batch[:-1]) | (offset[1:] != offset[:-1])
                                | (broker[1:] != broker[:-1])))
    group_start = np.maximum.accumulate(np.where(new_group, pos, 0))
    last_append = np.maximum.accumulate(np.where(is_ack, -1, pos))
    at = np.nonzero(is_ack)[0]
    has = last_append[at] >= group_start[at]
    src[rest[order[at[has]] - n_a]] = a_sel[order[last_append[at[has]]]]
    return src


def _leader_writes(recorder: Recorder, batches: pd.DataFrame, acks_zero: bool, after_ms: float) -> tuple:
    """The writes after `after_ms` that show a partition available, in time order, each with the
    leader append it rests on: (time, partition, broker, leader epoch of the append, its time,
    whether the append is in the final committed log).

    With acknowledgements, a write is an acknowledged batch and its append is the one the answer
    names (`_answered_appends`); an answer naming no append as leader by the answering broker (a
    duplicate found in a log it replicated as a follower) rests on none: epoch -1. For acks=0,
    which has no acknowledgements, a write is an append as leader.
    """
    ap = recorder.arrays("appended")
    if acks_zero:
        lead = np.nonzero(ap["as_leader"].astype(bool) & (ap["time_ms"] > after_ms))[0]
        a_t = ap["time_ms"][lead]
        order = np.argsort(a_t, kind="stable")
        lead = lead[order]
        kept = _in_final_log(recorder, ap["batch_id"][lead], ap["offset"][lead])
        return a_t[order], ap["partition"][lead], ap["broker"][lead], ap["leader_epoch"][lead], a_t[order], kept
    done = recorder.arrays("batch_done")
    ok = (done["outcome"] == OUTCOMES.index("acked")) & (done["time_ms"] > after_ms)
    w_t, w_id, w_off, w_b = done["time_ms"][ok], done["batch_id"][ok], done["offset"][ok], done["broker"][ok]
    w_p = batches["partition_index"].to_numpy()[w_id] if len(w_id) else np.zeros(0, dtype=np.int64)
    src = _answered_appends(ap, np.nonzero(ap["as_leader"])[0], w_id, w_off, w_b, w_t)
    has = src >= 0
    rows = np.maximum(src, 0)
    w_e = np.where(has, ap["leader_epoch"][rows], -1) if len(ap["leader_epoch"]) else np.full(len(w_t), -1)
    w_at = np.where(has, ap["time_ms"][rows], np.nan) if len(ap["time_ms"]) else np.full(len(w_t), np.nan)
    kept = _in_final_log(recorder, w_id, w_off)
    order = np.argsort(w_t, kind="stable")
    return w_t[order], w_p[order], w_b[order], w_e[order], w_at[order], kept[order]


def _in_final_log(recorder: Recorder, batch_id: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """Whether each (batch, offset) is in the final committed log.

    A batch kept at two offsets (a retry without idempotence) counts at its last one only, so a
    write can be missed here but never counted when it was lost.
    """
    final = recorder.arrays("final_log")
    keep = final["committed"].astype(bool)
    if not len(batch_id) or not keep.any():
        return np.zeros(len(batch_id), dtype=bool)
    n = int(max(batch_id.max(), final["batch_id"][keep].max())) + 1
    at = np.full(n, -1, dtype=np.int64)
    at[final["batch_id"][keep]] = final["offset"][keep]
    return at[batch_id] == offset


def fault_starts(events: pd.DataFrame) -> pd.DataFrame:
    """The faults, of any kind, that stopped a broker serving (fault_start with takes_down)."""
    return events[(events["kind"] == FAULT_START) & events["takes_down"].astype(bool) & (events["broker"] >= 0)]


def _fault_ends(events: pd.DataFrame, crashes: pd.DataFrame) -> np.ndarray:
    """For each fault of `crashes`: when it ended (its fault_end: same target, list and index, the
    first at or after its start), inf if it never did."""
    ends = events[events["kind"] == FAULT_END]
    out = np.full(len(crashes), np.inf)
    for i, (t, b, src, idx) in enumerate(zip(crashes["time_ms"].to_numpy(), crashes["broker"].to_numpy(),
                                             crashes["fault_source"].to_numpy(), crashes["fault_index"].to_numpy())):
        e = ends["time_ms"].to_numpy()[(ends["broker"].to_numpy() == b) & (ends["fault_source"].to_numpy() == src)
                                        & (ends["fault_index"].to_numpy() == idx) & (ends["time_ms"].to_numpy() >= t)]
        if len(e):
            out[i] = float(e.min())
    return out


def failovers(recorder: Recorder, events: pd.DataFrame, batches: pd.DataFrame, acks_zero: bool) -> list[dict]:
    """For every fault that took a broker down (any kind) and every partition that broker led at
    the time: time to a new leader and to a write.

    The new leader is the first one elected after the fault (in leader epoch E). Unavailability
    ends with `first_ack_ms`, the first acknowledgement after the fault of a batch appended as
    leader in epoch E or later, at or after E's election, by the broker the controller elected in
    the epoch of that append (the first new leader, or a later one if it failed in turn): never an
    answer the crashed leader sent just before it died, nor a write it took after restarting in its
    old epoch, even when that broker is the one elected again. For acks=0, which has no
    acknowledgements, it is the first such append. So `first_ack_ms >= elected_ms` always.

    A fault that ends without an election (a pause or a cut shorter than the session timeout)
    has none of that: `new_leader` is -1 and `elected_ms`/`election_ms` are None, and its outage
    ends at the first acknowledgement the same broker gives, in the epoch it led at the fault, of a
    write appended after the fault (what clients wait for). That needs three things, so that no
    outage ends before it ends for clients: the fault did not end the process (a new incarnation
    never leads its old epoch), the partition had no election before the fault ended (a leader
    replaced meanwhile is measured to its successor, even if it still answered during the fault:
    a controlled shutdown's last writes, a partitioned leader's), and the write stays in the final
    committed log and was acknowledged before any later election (not an answer of a zombie whose
    write is truncated when it follows the new leader).
    Vectorised over partitions: a 10,000-partition failover is measured in milliseconds.
    """
    crashes = fault_starts(events)
    if crashes.empty:
        return []
    lead = _leadership(events)
    lt = lead["time_ms"].to_numpy()
    lp = lead["partition_index"].to_numpy()
    lb = lead["broker"].to_numpy()
    le = lead["value"].to_numpy()
    elected_kind = (lead["kind"] == "leader_elected").to_numpy()
    wt, wp, wb, we, wat, kept = _leader_writes(recorder, batches, acks_zero, float(crashes["time_ms"].min()))
    names = recorder.partition_names
    n_parts = len(names) if names else int(max(lp.max(initial=-1), wp.max(initial=-1))) + 1
    # the broker elected in each (partition, epoch): a write counts only if its appender led its epoch
    ep_key = lp[elected_kind] * (int(le.max(initial=0)) + 1) + le[elected_kind]
    ep_order = np.argsort(ep_key, kind="stable")
    ep_key, ep_broker = ep_key[ep_order], lb[elected_kind][ep_order]
    w_key = wp * (int(le.max(initial=0)) + 1) + np.maximum(we, 0)
    pos = np.minimum(np.searchsorted(ep_key, w_key), max(len(ep_key) - 1, 0))
    led_epoch = (len(ep_key) > 0) & (we >= 0) & (we <= le.max(initial=0))
    if len(ep_key):
        led_epoch &= (ep_key[pos] == w_key) & (ep_broker[pos] == wb)
    fault_end = _fault_ends(events, crashes)
    kills = crashes["kills_process"].astype(bool).to_numpy()
    out = []
    for i, (tf, victim) in enumerate(zip(crashes["time_ms"].to_numpy(), crashes["broker"].to_numpy())):
        tf, victim = float(tf), int(victim)
        before = lt <= tf
        # the leader of each partition at the fault, and its epoch: its last leadership event up to then
        rev = np.nonzero(before)[0][::-1]
        last = _first_per_partition(lp[rev], lb[rev], le[rev])
        led = sorted(p for p, (b, _) in last.items() if b == victim)
        if not led:
            continue
        after = (~before) & elected_kind
        first_elect = _first_per_partition(lp[after], lt[after], lb[after], le[after])
        new_epoch = np.full(n_parts, np.iinfo(np.int64).max, dtype=np.int64)
        elected_at = np.full(n_parts, np.inf)
        old_epoch = np.full(n_parts, -2, dtype=np.int64)
        for p in led:
            old_epoch[p] = last[p][1]
            if p in first_elect:
                elected_at[p], _, new_epoch[p] = first_elect[p]
        k = int(np.searchsorted(wt, tf, side="right"))  # writes after the fault
        p_k = wp[k:]
        hit = led_epoch[k:] & (we[k:] >= new_epoch[p_k]) & (wat[k:] >= elected_at[p_k])
        first_write = _first_per_partition(p_k[hit], wt[k:][hit])
        # no election: the same broker in the same epoch, for a fault its process outlived
        same = np.zeros(0, dtype=bool) if kills[i] else (
            (wb[k:] == victim) & (we[k:] == old_epoch[p_k]) & (wat[k:] > tf) & kept[k:]
            & (wt[k:] < elected_at[p_k]) & (elected_at[p_k] > fault_end[i]))
        first_same = _first_per_partition(p_k[same], wt[k:][same]) if len(same) else {}
        for p in led:
            if p in first_same:
                elected, leader, first = None, -1, float(first_same[p][0])
            else:
                elected, leader = first_elect.get(p, (None, -1))[:2]
                first = first_write.get(p, (None,))[0] if elected is not None else None
                elected = None if elected is None else float(elected)
                first = None if first is None else float(first)
            out.append({
                "fault_ms": tf, "broker": victim, "partition": names[p] if names else int(p),
                "new_leader": int(leader), "elected_ms": elected, "first_ack_ms": first,
                "election_ms": None if elected is None else elected - tf,
                "unavailable_ms": None if first is None else first - tf,
            })
    out.sort(key=lambda d: (d["fault_ms"], d["partition"]))
    return out


def _level_total(events: pd.DataFrame, indicator: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Time-weighted count of partitions whose indicator is on, per bin."""
    return _level_per_second(*_level_steps(events, indicator), edges)


def under_replicated_at_end(events: pd.DataFrame, replication: dict[int, int]) -> int:
    """Partitions whose last ISR is smaller than their replica set: the cluster has not fully recovered."""
    isr, under = _under_replicated(events, replication)
    _, total = _level_steps(isr, under)
    return int(round(total[-1])) if len(total) else 0


def _under_replicated(events: pd.DataFrame, replication: dict[int, int]) -> tuple[pd.DataFrame, np.ndarray]:
    """The ISR changes, and whether each leaves its partition under-replicated."""
    isr = events[events["kind"] == "isr_change"]
    rf = np.array([replication[int(p)] for p in isr["partition_index"].to_numpy()], dtype=np.int64)
    return isr, isr["value"].to_numpy() < rf


def _level_steps(events: pd.DataFrame, indicator: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Count of partitions whose indicator is on, as a step function (times, count from then on).

    Each event sets its partition's indicator; the total is a single step function built from
    the changes (new minus previous indicator of the same partition).
    """
    if len(events) == 0:
        return np.zeros(0), np.zeros(0)
    t = events["time_ms"].to_numpy()
    p = events["partition_index"].to_numpy()
    order = np.lexsort((t, p))  # by partition, then time
    ind = indicator.astype(float)[order]
    same = np.concatenate(([False], p[order][1:] == p[order][:-1]))
    prev = np.where(same, np.concatenate(([0.0], ind[:-1])), 0.0)
    delta = ind - prev
    by_time = np.argsort(t[order], kind="stable")
    return t[order][by_time], np.cumsum(delta[by_time])


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


def _edges(end_ms: float) -> np.ndarray:
    """The timeseries' bin edges: one per simulated second, the last bin reaching `end_ms`."""
    n_bins = max(1, int(np.ceil(end_ms / 1000.0)))
    edges = np.arange(n_bins + 1) * 1000.0
    edges[-1] = max(edges[-1], end_ms)
    return edges


def _per_second(times: np.ndarray, weights: np.ndarray | None, n_bins: int) -> np.ndarray:
    """Sum of `weights` (or a count) per second of `times` (the last bin takes what is later)."""
    sec = np.minimum((np.asarray(times, dtype=float) // 1000).astype(np.int64), n_bins - 1)
    return np.bincount(sec, weights=weights, minlength=n_bins)[:n_bins]


def timeseries(batches: pd.DataFrame, events: pd.DataFrame, replication: dict[int, int],
               end_ms: float, min_isr: dict[int, int] | None = None) -> pd.DataFrame:
    """Per simulated second: records acked/failed, produce latency p50/p99, under-replicated,
    under-min-ISR and offline partitions (time-weighted means over the second), leader elections
    and unclean ones (counts in the second, i.e. per second). See `KAFKA_METRICS` for the JMX
    names these stand for; `under_min_isr_partitions` needs `min_isr` (partition -> its
    min.insync.replicas)."""
    edges = _edges(end_ms)
    n_bins = len(edges) - 1
    out = pd.DataFrame({"second": np.arange(n_bins), "time_ms": edges[:-1]})
    acked = batches[batches["outcome"] == "acked"]
    latencies = produce_latencies(batches)  # the rows of `acked`, in order
    lat, w = latencies["latency_ms"].to_numpy(), latencies["records"].to_numpy()
    sec = np.minimum((acked["acked_ms"].to_numpy() // 1000).astype(int), n_bins - 1)
    out["records_acked"] = np.bincount(sec, weights=w, minlength=n_bins).astype(np.int64)
    failed = batches[batches["outcome"] == "failed"]
    fsec = np.minimum((failed["last_arrival_ms"].to_numpy() // 1000).astype(int), n_bins - 1)
    out["records_failed"] = np.bincount(fsec, weights=failed["record_count"].to_numpy(), minlength=n_bins).astype(np.int64)
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
    out["under_replicated_partitions"] = _level_total(*_under_replicated(events, replication), edges)
    lead = _leadership(events)
    out["offline_partitions"] = _level_total(lead, lead["broker"].to_numpy() < 0, edges)
    if min_isr is not None:
        out["under_min_isr_partitions"] = _level_total(*_under_min_isr(events, replication, min_isr), edges)
    # ControllerStats: elections after the initial ones (a leader moved), and those outside the ISR
    elected = events[(events["kind"] == "leader_elected") & (events["reason"] != "initial")]
    out["leader_elections_per_sec"] = _per_second(elected["time_ms"].to_numpy(), None, n_bins).astype(np.int64)
    unclean = events[events["kind"] == "unclean_election"]
    out["unclean_leader_elections_per_sec"] = _per_second(unclean["time_ms"].to_numpy(), None, n_bins).astype(np.int64)
    return out


def _under_min_isr(events: pd.DataFrame, replication: dict[int, int], min_isr: dict[int, int]
                   ) -> tuple[pd.DataFrame, np.ndarray]:
    """The leadership and ISR changes, and whether each leaves its partition under min ISR as a
    leader reports it: Partition.isUnderMinIsr, a leader exists and the ISR is smaller than the
    effective min ISR, min(min.insync.replicas, replication factor) (Partition.effectiveMinIsr).
    An offline partition has no leader to report it (it is in offline_partitions)."""
    rows = events[events["kind"].isin(["isr_change", "leader_elected", "partition_offline"])]
    rows = rows.sort_values(["partition_index", "time_ms"], kind="stable")  # emission order within an instant
    part = rows["partition_index"].to_numpy()
    # an isr_change's broker is the partition's leader too (-1: none), so every row says who leads
    has_leader = rows["broker"].to_numpy() >= 0
    size = pd.Series(np.where(rows["kind"].to_numpy() == "isr_change", rows["value"].to_numpy(), np.nan),
                     index=rows.index).groupby(part).ffill().to_numpy()
    eff = np.array([min(min_isr[int(p)], replication[int(p)]) for p in part], dtype=float)
    return rows, has_leader & (size < eff)


# --- consumer groups (issue 13: client faults) ---------------------------------------------------
def consumer_groups(consumer_groups_of: list[str]) -> tuple[list[str], np.ndarray]:
    """The distinct groups and, per consumer index, its group's position in that list."""
    names = list(dict.fromkeys(consumer_groups_of))
    return names, np.array([names.index(g) for g in consumer_groups_of], dtype=np.int64)


def records_redelivered(recorder: Recorder, batches: pd.DataFrame, consumer_groups_of: list[str]) -> int:
    """Records a group received more than once (after a rebalance or a restart from the last
    committed offset: at-least-once), counted once per extra delivery; another group's copy is no
    redelivery."""
    con = recorder.arrays("consumed")
    if not len(con["batch_id"]) or not consumer_groups_of:
        return 0
    _, gidx = consumer_groups(consumer_groups_of)
    key = gidx[con["consumer"]] * (int(con["batch_id"].max()) + 1) + con["batch_id"]
    uniq, counts = np.unique(key, return_counts=True)
    extra = counts - 1
    ids = uniq[extra > 0] % (int(con["batch_id"].max()) + 1)
    per_batch = batches.set_index("batch_id")["record_count"]
    return int((per_batch.reindex(ids).fillna(0).to_numpy() * extra[extra > 0]).sum())


def consumer_lag(recorder: Recorder, batches: pd.DataFrame, consumer_groups_of: list[str],
                 times: np.ndarray) -> np.ndarray:
    """Total lag of every group at each of `times` (records): per partition, the high watermark
    (its highest value so far) minus the end of what the group has received so far."""
    names, gidx = consumer_groups(consumer_groups_of)
    hw = recorder.arrays("hw_advanced")
    con = recorder.arrays("consumed")
    lag = np.zeros(len(times))
    n_parts = int(max(hw["partition"].max(initial=-1), con["partition"].max(initial=-1))) + 1
    if not n_parts:
        return lag.astype(np.int64)
    count = batches.set_index("batch_id")["record_count"]
    ends = con["offset"] + count.reindex(con["batch_id"]).fillna(0).to_numpy().astype(np.int64)
    for p in range(n_parts):
        sel = hw["partition"] == p
        if sel.any():
            t, v = hw["time_ms"][sel], np.maximum.accumulate(hw["hw"][sel])
            k = np.searchsorted(t, times, side="right")
            hw_at = np.where(k > 0, v[np.maximum(k - 1, 0)], 0)
        else:
            hw_at = np.zeros(len(times), dtype=np.int64)
        for g in range(len(names)):
            csel = (con["partition"] == p) & (gidx[con["consumer"]] == g)
            if csel.any():
                t, v = con["time_ms"][csel], np.maximum.accumulate(ends[csel])
                k = np.searchsorted(t, times, side="right")
                pos = np.where(k > 0, v[np.maximum(k - 1, 0)], 0)
            else:
                pos = np.zeros(len(times), dtype=np.int64)
            lag += np.maximum(hw_at - pos, 0)
    return lag.astype(np.int64)


def records_lag_max(recorder: Recorder, batches: pd.DataFrame, consumer_groups_of: list[str],
                    times: np.ndarray) -> np.ndarray:
    """The consumer's ``records-lag-max`` at each of `times`: the largest lag (records) of any
    partition for any group, a partition's lag being its high watermark (the highest so far)
    minus the end of what the group has received from it (0 before it received anything: the whole
    HW), as `consumer_lag` counts it per partition.

    Kafka's consumer records each fetched partition's lag (FetchCollector: HW minus position) and
    reports the window's maximum (FetchMetricsManager.recordPartitionLag); here it is read at the
    end of each second.
    """
    names, gidx = consumer_groups(consumer_groups_of)
    hw = recorder.arrays("hw_advanced")
    con = recorder.arrays("consumed")
    out = np.zeros(len(times), dtype=np.int64)
    if not len(hw["partition"]) or not names:
        return out
    # the HW of every partition at each time: one sort by (partition, time), a running max per partition
    order = np.lexsort((hw["time_ms"], hw["partition"]))
    hp, ht, hv = hw["partition"][order], hw["time_ms"][order], hw["hw"][order].astype(np.int64)
    parts, starts = np.unique(hp, return_index=True)
    bounds = np.append(starts, len(hp))
    hw_at = np.zeros((len(parts), len(times)), dtype=np.int64)
    for i in range(len(parts)):
        t, v = ht[bounds[i]:bounds[i + 1]], np.maximum.accumulate(hv[bounds[i]:bounds[i + 1]])
        k = np.searchsorted(t, times, side="right")
        hw_at[i] = np.where(k > 0, v[np.maximum(k - 1, 0)], 0)
    count = batches["record_count"].to_numpy().astype(np.int64)
    ends = con["offset"] + (count[con["batch_id"]] if len(count) else 0)
    row_of = {int(p): i for i, p in enumerate(parts)}
    for g in range(len(names)):
        pos = np.zeros_like(hw_at)
        sel = gidx[con["consumer"]] == g if len(con["consumer"]) else np.zeros(0, dtype=bool)
        cp, ct, ce = con["partition"][sel], con["time_ms"][sel], ends[sel]
        corder = np.lexsort((ct, cp))
        cp, ct, ce = cp[corder], ct[corder], ce[corder]
        cparts, cstarts = np.unique(cp, return_index=True)
        cbounds = np.append(cstarts, len(cp))
        for j, p in enumerate(cparts):
            i = row_of.get(int(p))
            if i is None:
                continue
            t, v = ct[cbounds[j]:cbounds[j + 1]], np.maximum.accumulate(ce[cbounds[j]:cbounds[j + 1]])
            k = np.searchsorted(t, times, side="right")
            pos[i] = np.where(k > 0, v[np.maximum(k - 1, 0)], 0)
        out = np.maximum(out, np.maximum(hw_at - pos, 0).max(axis=0))
    return out


def client_timeseries(recorder: Recorder, batches: pd.DataFrame, events: pd.DataFrame, end_ms: float) -> pd.DataFrame:
    """Per simulated second, the metrics that need the model's own facts (a simulated run only):

    - ``isr_shrinks_per_sec`` / ``isr_expands_per_sec``: ISR changes a leader committed through
      AlterPartition (Partition: PendingShrinkIsr / PendingExpandIsr.notifyListener marks
      ReplicaManager's IsrShrinksPerSec / IsrExpandsPerSec when the controller accepts them). An
      ISR the controller changes itself (a fenced broker, a controlled shutdown, an election) is not
      counted by Kafka's meters, so these can be lower than the summary's isr_shrinks / isr_expands;
    - ``record_error_rate``: records of batches that ended in an exception the application is told:
      an error response it does not retry, or delivery.timeout.ms (Sender.failBatch ->
      SenderMetrics.recordErrors); a producer crash or the end of the run tells nobody;
    - ``record_retry_rate``: records of batches re-enqueued after an error or a disconnect, at the
      error (Sender.reenqueueBatch -> recordRetries);
    - ``request_latency_avg_ms``: mean produce request latency, request sent to response received,
      by the second the response came (Sender.handleProduceResponse -> recordLatency); requests
      that got no response (a disconnect, a timeout, acks=0) have none. NaN in a second without one.
    """
    edges = _edges(end_ms)
    n_bins = len(edges) - 1
    out = pd.DataFrame(index=np.arange(n_bins))
    # --- broker: ISR meters (AlterPartition commits only)
    isr = events[(events["kind"] == "isr_change") & (events["reason"] == "alter_partition")]
    before = np.array([len(x) for x in isr["isr_before"]], dtype=np.int64)
    size = isr["value"].to_numpy()
    t = isr["time_ms"].to_numpy()
    out["isr_shrinks_per_sec"] = _per_second(t[size < before], None, n_bins).astype(np.int64)
    out["isr_expands_per_sec"] = _per_second(t[size > before], None, n_bins).astype(np.int64)
    # --- producer
    count = batches["record_count"].to_numpy().astype(np.int64)
    done = pd.DataFrame(recorder.arrays("batch_done"))
    err = pd.DataFrame({k: v for k, v in recorder.arrays("produce_error").items() if k != "error"})
    err["error"] = recorder.arrays("produce_error")["error"]
    expired = recorder.arrays("batch_expired")["batch_id"]
    failed = done[done["outcome"] != OUTCOMES.index("acked")]
    told = failed.merge(err[["time_ms", "batch_id"]].drop_duplicates(), on=["time_ms", "batch_id"], how="left",
                        indicator=True)["_merge"].to_numpy() == "both"
    told |= np.isin(failed["batch_id"].to_numpy(), expired)
    ft, fb = failed["time_ms"].to_numpy()[told], failed["batch_id"].to_numpy()[told]
    out["record_error_rate"] = _per_second(ft, count[fb].astype(float), n_bins).astype(np.int64)
    sent = pd.DataFrame(recorder.arrays("batch_sent"))
    retried = sent[sent["attempt"] >= 2].sort_values("time_ms", kind="stable")
    errs = err.sort_values("time_ms", kind="stable").rename(columns={"time_ms": "error_ms"})
    if len(retried):
        # the error that re-enqueued each retried attempt: the batch's last error before it was sent again
        at = pd.merge_asof(retried, errs[["error_ms", "batch_id"]], left_on="time_ms", right_on="error_ms",
                           by="batch_id", direction="backward")
        rt = at["error_ms"].fillna(at["time_ms"]).to_numpy()
        out["record_retry_rate"] = _per_second(rt, count[at["batch_id"].to_numpy()].astype(float),
                                               n_bins).astype(np.int64)
    else:
        out["record_retry_rate"] = np.zeros(n_bins, dtype=np.int64)
    out["request_latency_avg_ms"] = _request_latency_avg(sent, errs, done, batches, n_bins)
    return out.reset_index(drop=True)


def _request_latency_avg(sent: pd.DataFrame, errs: pd.DataFrame, done: pd.DataFrame, batches: pd.DataFrame,
                         n_bins: int) -> np.ndarray:
    """Mean produce request latency per second of the response (NaN: no response that second).

    A batch's attempt is answered by the batch's next fact after it was sent: an error response
    or an acknowledgement from a broker. A disconnect (NETWORK_EXCEPTION, raised by the client),
    an expiry or a crash is no response. The batches of one request share its producer, broker,
    send time and response time, so each distinct (producer, broker, sent, answered) is one request.
    """
    out = np.full(n_bins, np.nan)
    if not len(sent):
        return out
    acks = done[(done["outcome"] == OUTCOMES.index("acked")) & (done["broker"] >= 0)]
    answers = pd.concat([
        pd.DataFrame({"answer_ms": errs["error_ms"].to_numpy(), "batch_id": errs["batch_id"].to_numpy(),
                      "response": (errs["error"] != "NETWORK_EXCEPTION").to_numpy()}),
        pd.DataFrame({"answer_ms": acks["time_ms"].to_numpy(), "batch_id": acks["batch_id"].to_numpy(),
                      "response": np.ones(len(acks), dtype=bool)}),
    ]).sort_values("answer_ms", kind="stable")
    att = sent.sort_values("time_ms", kind="stable")
    att = pd.merge_asof(att, answers, left_on="time_ms", right_on="answer_ms", by="batch_id",
                        direction="forward", allow_exact_matches=False)
    att = att[att["response"].fillna(False).astype(bool)]
    if not len(att):
        return out
    producer = batches["producer"].cat.codes.to_numpy() if hasattr(batches["producer"], "cat") \
        else batches["producer"].to_numpy()
    req = pd.DataFrame({"producer": producer[att["batch_id"].to_numpy()], "broker": att["broker"].to_numpy(),
                        "sent_ms": att["time_ms"].to_numpy(), "answer_ms": att["answer_ms"].to_numpy()})
    req = req.drop_duplicates()
    lat = (req["answer_ms"] - req["sent_ms"]).to_numpy()
    n = _per_second(req["answer_ms"].to_numpy(), None, n_bins)
    total = _per_second(req["answer_ms"].to_numpy(), lat, n_bins)
    has = n > 0
    out[has] = total[has] / n[has]
    return out


KAFKA_METRICS: dict[str, tuple[str, str]] = {
    "kafka.server:type=ReplicaManager,name=UnderReplicatedPartitions": ("under_replicated_partitions", "sum"),
    "kafka.server:type=ReplicaManager,name=UnderMinIsrPartitionCount": ("under_min_isr_partitions", "sum"),
    "kafka.controller:type=KafkaController,name=OfflinePartitionsCount": ("offline_partitions", "gauge"),
    "kafka.server:type=ReplicaManager,name=IsrShrinksPerSec": ("isr_shrinks_per_sec", "sum"),
    "kafka.server:type=ReplicaManager,name=IsrExpandsPerSec": ("isr_expands_per_sec", "sum"),
    "kafka.controller:type=ControllerStats,name=LeaderElectionRateAndTimeMs": ("leader_elections_per_sec", "rate"),
    "kafka.controller:type=ControllerStats,name=UncleanLeaderElectionsPerSec":
        ("unclean_leader_elections_per_sec", "rate"),
    "kafka.producer:type=producer-metrics,client-id=*:record-error-rate": ("record_error_rate", "sum"),
    "kafka.producer:type=producer-metrics,client-id=*:record-retry-rate": ("record_retry_rate", "sum"),
    "kafka.producer:type=producer-metrics,client-id=*:request-latency-avg": ("request_latency_avg_ms", "mean"),
    "kafka.consumer:type=consumer-fetch-manager-metrics,client-id=*:records-lag-max": ("records_lag_max", "max"),
}
"""The JMX metric each `timeseries.parquet` column stands for, and how the column aggregates it
over the cluster's brokers or clients (docs/metrics.md says how each is computed)."""
