"""Jepsen-style classification of every producer batch from the recorded facts.

A batch's records share their fate (Kafka appends, replicates, truncates and fetches whole
batches), so classification is per batch and counts are weighted by records:

- ``acked_lost``: acknowledged, absent from the final committed log (a durability violation);
- ``records_failed``: the client got a definite error, so it knows to resend;
- ``records_unknown``: no definite answer (acks=0, timeouts, ambiguous errors);
- ``records_lost``: sent, absent from the final committed log, and the client was never told
  (acked_lost plus unknown-and-absent; the loss to compare across acks modes);
- ``duplicates``: extra copies in the final committed log;
- ``reordered``: records of batches that sit after a later batch of the same producer in a
  partition's committed log (order inversions).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sim.model.recorder import OUTCOMES, Recorder
from sim.measure.batches import tally_outcomes

__all__ = ["check", "Classification"]


class Classification(dict):
    """The record counts of a run's outcome classification."""


def _first_per_batch(n: int, batch_ids: np.ndarray, values: np.ndarray, fill: float = np.nan) -> np.ndarray:
    """The first value recorded for each batch id (facts are in time order)."""
    out = np.full(n, fill, dtype=np.float64)
    if len(batch_ids):
        ids_rev, vals_rev = batch_ids[::-1], values[::-1]
        out[ids_rev] = vals_rev  # later writes win, so reversed order leaves the first
    return out


def batches_table(recorder: Recorder) -> pd.DataFrame:
    """One row per producer batch: what happened to it, from the facts (results contract)."""
    created = recorder.arrays("batch_created")
    n = len(created["batch_id"])
    if n and not np.array_equal(created["batch_id"], np.arange(n)):
        order = np.argsort(created["batch_id"])
        created = {k: v[order] for k, v in created.items()}
    sent = recorder.arrays("batch_sent")
    done = recorder.arrays("batch_done")
    final = recorder.arrays("final_log")
    consumed = recorder.arrays("consumed")

    outcome = np.full(n, OUTCOMES.index("unknown"), dtype=np.int8)
    acked_ms = np.full(n, np.nan)
    offset = np.full(n, -1, dtype=np.int64)
    if len(done["batch_id"]):
        outcome[done["batch_id"]] = done["outcome"]
        is_ack = done["outcome"] == OUTCOMES.index("acked")
        acked_ms[done["batch_id"][is_ack]] = done["time_ms"][is_ack]
        offset[done["batch_id"][is_ack]] = done["offset"][is_ack]
    attempts = np.zeros(n, dtype=np.int32)
    if len(sent["batch_id"]):
        np.maximum.at(attempts, sent["batch_id"], sent["attempt"])
    committed = final["committed"]
    copies = np.bincount(final["batch_id"][committed], minlength=n)[:n] if n else np.zeros(0, dtype=np.int64)
    times_consumed = np.bincount(consumed["batch_id"], minlength=n)[:n] if n else np.zeros(0, dtype=np.int64)

    names = recorder.partition_names
    producers = recorder.producer_names
    df = pd.DataFrame({
        "batch_id": created["batch_id"],
        "producer": pd.Categorical.from_codes(created["producer"], categories=producers) if producers
        else created["producer"],
        "partition": pd.Categorical.from_codes(created["partition"], categories=names) if names
        else created["partition"],
        "record_count": created["record_count"],
        "first_record_id": created["first_record_id"],
        "first_arrival_ms": created["first_arrival_ms"],
        "last_arrival_ms": created["last_arrival_ms"],
        "sent_ms": _first_per_batch(n, sent["batch_id"], sent["time_ms"]),
        "acked_ms": acked_ms,
        "offset": offset,
        "outcome": pd.Categorical.from_codes(outcome, categories=list(OUTCOMES)),
        "attempts": attempts,
        "copies_in_log": copies.astype(np.int32),
        "times_consumed": times_consumed.astype(np.int32),
        "consumed_ms": _first_per_batch(n, consumed["batch_id"], consumed["time_ms"]),
    })
    df["partition_index"] = created["partition"]
    return df


def count_reordered(recorder: Recorder, batches: pd.DataFrame) -> int:
    """Records of batches that appear after a later batch of the same producer in a partition."""
    final = recorder.arrays("final_log")
    keep = final["committed"]
    if not keep.any():
        return 0
    log = pd.DataFrame({"partition": final["partition"][keep], "offset": final["offset"][keep],
                        "batch_id": final["batch_id"][keep]})
    log = log.drop_duplicates("batch_id", keep="first").sort_values(["partition", "offset"])
    ids = log["batch_id"].to_numpy()
    first = batches["first_record_id"].to_numpy()[ids]
    producer = batches["producer"].cat.codes.to_numpy()[ids] if hasattr(batches["producer"], "cat") \
        else batches["producer"].to_numpy()[ids]
    log = log.assign(first=first, producer=producer)
    prev_max = log.groupby(["partition", "producer"], sort=False)["first"].cummax().groupby(
        [log["partition"], log["producer"]], sort=False).shift(1)
    inverted = (log["first"] < prev_max).to_numpy()
    return int(batches["record_count"].to_numpy()[ids][inverted].sum())


def check(recorder: Recorder, batches: pd.DataFrame | None = None) -> Classification:
    """Classify every record of the run; returns record counts.

    The counts that follow from the batches table alone are `sim.measure.batches.tally_outcomes`
    (which analysis uses too); ``reordered`` needs the final logs.
    """
    if batches is None:
        batches = batches_table(recorder)
    counts = tally_outcomes(batches)
    consumed = counts.pop("records_consumed")
    return Classification(**counts, reordered=count_reordered(recorder, batches), records_consumed=consumed)
