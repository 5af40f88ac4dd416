"""Measures defined on the batches table alone: latency by mid arrival, and record outcomes counted.

Both the simulator (the summary) and `analysis` (from a run directory) compute them here, so
the two never disagree. Pure pandas/numpy on the table's columns: no model import.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["mid_arrival", "produce_latencies", "tally_outcomes", "committed_records", "committed_rps",
           "COMMITTED_RPS_LABEL"]

COMMITTED_RPS_LABEL = "committed (rec/s)"
"""The one name of the one throughput measure every table and figure shows (`committed_rps`): records in
the final committed log per second of producing, whatever the client was told. acks=0 records are never
acknowledged (Kafka's ProducerConfig, acks doc: with acks=0 "the producer will not wait for any
acknowledgment from the server"), so an acknowledged rate would show 0 for what they delivered.
kafka-producer-perf-test (ProducerPerformance) counts completed sends instead, which under acks=0
includes records the broker never wrote; the committed rate counts only what is in the log."""


def mid_arrival(batches: pd.DataFrame) -> np.ndarray:
    """Each batch's mid arrival (ms): its records arrived between its first and last arrival, and
    every latency counts a batch's records at this instant."""
    return (batches["first_arrival_ms"].to_numpy() + batches["last_arrival_ms"].to_numpy()) / 2.0


def produce_latencies(batches: pd.DataFrame) -> pd.DataFrame:
    """Produce latency of every acknowledged batch: ``latency_ms`` (mid arrival to ack) and ``records``.

    The summary's ``produce_latency_ms`` percentiles are these, weighted by records.
    """
    acked = batches[batches["outcome"] == "acked"]
    return pd.DataFrame({"latency_ms": acked["acked_ms"].to_numpy() - mid_arrival(acked),
                         "records": acked["record_count"].to_numpy().astype(np.int64)})


def tally_outcomes(batches: pd.DataFrame) -> dict[str, int]:
    """Record outcomes counted from the batches table (Jepsen-style, see `sim.measure.checker`).

    records_sent, records_produced, records_acked, records_failed, records_unknown, acked_lost,
    records_lost, failed_but_present, duplicates, records_consumed: the summary's counts except
    ``reordered``, which needs the final logs.
    """
    count = batches["record_count"].to_numpy(dtype=np.int64)
    outcome = batches["outcome"]
    acked = (outcome == "acked").to_numpy()
    failed = (outcome == "failed").to_numpy()
    unknown = (outcome == "unknown").to_numpy()
    copies = batches["copies_in_log"].to_numpy()
    absent = copies == 0
    sent = ~np.isnan(batches["sent_ms"].to_numpy(dtype=float))
    return {
        "records_sent": int(count[sent].sum()),
        "records_produced": int(count.sum()),
        "records_acked": int(count[acked].sum()),
        "records_failed": int(count[failed].sum()),
        "records_unknown": int(count[unknown].sum()),
        "acked_lost": int(count[acked & absent].sum()),
        "records_lost": int(count[(acked | unknown) & absent & sent].sum()),
        "failed_but_present": int(count[failed & ~absent].sum()),
        "duplicates": int((count * np.maximum(copies - 1, 0)).sum()),
        "records_consumed": int(count[batches["times_consumed"].to_numpy() > 0].sum()),
    }


def committed_records(batches: pd.DataFrame) -> int:
    """Records in the final committed log (each counted once), whatever the client was told."""
    count = batches["record_count"].to_numpy(dtype=np.int64)
    return int(count[batches["copies_in_log"].to_numpy() > 0].sum())


def committed_rps(batches: pd.DataFrame, produce_duration_ms: float | None) -> float:
    """`committed_records` per second of producing (NaN without a producing time)."""
    if not produce_duration_ms or not np.isfinite(produce_duration_ms) or produce_duration_ms <= 0:
        return float("nan")
    return committed_records(batches) / (float(produce_duration_ms) / 1000.0)
