"""A run's numbers as Kafka's `kafka-producer-perf-test` and the OpenMessaging Benchmark print them,
and its latency distribution as files those tools' users already read.

- **perf-test** (`org.apache.kafka.tools.ProducerPerformance.Stats.printTotal`, trunk 2024-10-25):
  ``N records sent, X records/sec (Y MB/sec), Z ms avg latency, W ms max latency, a ms 50th, b ms
  95th, c ms 99th, d ms 99.9th.`` It counts only records whose send succeeded (the callback had no
  exception), a record's latency is send() to its callback, MB is 2^20 bytes of payload, and the
  percentiles are whole milliseconds (its latencies are ints).
- **OpenMessaging Benchmark** (OMB; `WorkloadGenerator` and `TestResult`): the
  ``----- Aggregated Pub Latency (ms) avg: .. - 50%: .. - 95%: .. - 99%: .. - 99.9%: .. - 99.99%: .. - Max: ..``
  line and the result JSON (``publishRate``, ``publishLatency50pct``, ...,
  ``aggregatedPublishLatency9999pct``), whose lists have one value per 10 s window and whose
  latencies come from an HdrHistogram of microseconds.
- An **HdrHistogram log** (the format `HistogramLogWriter` writes and `HistogramLogProcessor`,
  HdrHistogram's plotter and OMB's tooling read): one interval histogram per simulated second
  of acknowledgements, values in microseconds, 3 significant digits.

What a record's latency is here: the summary's ``produce_latency_ms`` (`sim.measure.batches`): a batch
counts its records at its mid arrival, acknowledged at its ack, so the percentiles are the summary's
exactly; max is the summary's (from the batch's first record). Throughput is per second of
producing (`summary.json: produce_duration_ms`), as ``throughput_rps``. Without the hardware model
(`cluster.hardware` unlimited, the default) a latency is protocol only: network delays, batching,
replication and purgatory waits, retries, but no CPU, disk or GC time.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.load import Run
from sim.measure.batches import mid_arrival, produce_latencies
from sim.measure.stats import weighted_percentiles
from sim.runs.contract import write_atomic
from sim.scenario.cluster import HardwareConfig

__all__ = ["PERCENTILES", "OMB_WINDOW_MS", "perf_numbers", "perf_test_line", "omb_line", "hardware_note",
           "latency_histogram", "write_hdr_log", "read_hdr_log", "omb_result", "write_omb_json"]

PERCENTILES = (50.0, 95.0, 99.0, 99.9, 99.99)
"""The percentiles perf-test (the first four) and OMB's aggregated line (all five) print."""

OMB_WINDOW_MS = 10_000.0
"""OMB's reporting window: its lists hold one value per 10 s."""

_OMB_QS = (50.0, 75.0, 95.0, 99.0, 99.9, 99.99)
_OMB_NAMES = ("50pct", "75pct", "95pct", "99pct", "999pct", "9999pct")
_HIGHEST_US = 3_600 * 1_000_000  # an hour, in microseconds: the histograms' default range


def _record_sizes(run: Run) -> np.ndarray:
    """Each producer instance's record.size (bytes), in the order of the batches' producer codes."""
    return np.array([float(p.get("record.size") or 0) for p in run.scenario.get("producers") or []
                     for _ in range(int(p.get("instances") or 1))])


def hardware_on(run: Run) -> bool:
    """Whether the run had a capacity model (`cluster.hardware` with a preset or a field set)."""
    hw = (run.scenario.get("cluster") or {}).get("hardware")
    return bool(hw) and HardwareConfig.model_validate(hw).enabled


def hardware_note(run: Run) -> str:
    """What the latencies include: protocol only without the hardware model (and, for acks=0
    producers, that nothing is acknowledged)."""
    if hardware_on(run):
        note = "latency includes the hardware model's queues (cluster.hardware: NICs, request threads, disk)"
    else:
        note = "latency is protocol-only: no CPU, disk or GC cost (cluster.hardware is unlimited)"
    if any(str(p.get("acks")) == "0" for p in run.scenario.get("producers") or []):
        # ProducerConfig: acks=0 "considered sent" once in the socket buffer; perf-test would count
        # those callbacks, which carry no acknowledgement
        note += "; acks=0 records are never acknowledged and are not counted"
    return note


def perf_numbers(run: Run) -> dict:
    """perf-test's and OMB's totals for one run: records, records/s, MB/s, avg, the percentiles, max.

    Keys: ``records`` (acknowledged), ``records_per_sec``, ``mb_per_sec``, ``avg_ms``, ``p50_ms``,
    ``p95_ms``, ``p99_ms``, ``p999_ms``, ``p9999_ms``, ``max_ms``, ``duration_s`` (producing),
    ``hardware`` (whether the capacity model was on). Latencies are None without an acknowledgement.
    """
    b = run.batches
    lat = produce_latencies(b)
    v, w = lat["latency_ms"].to_numpy(), lat["records"].to_numpy()
    acked = b[b["outcome"] == "acked"]
    codes = acked["producer"].cat.codes.to_numpy() if hasattr(acked["producer"], "cat") else \
        acked["producer"].to_numpy()
    sizes = _record_sizes(run)
    nbytes = float((acked["record_count"].to_numpy() * sizes[codes]).sum()) if len(sizes) and len(acked) else 0.0
    secs = float(run.summary.produce_duration_ms or run.produce_end_ms) / 1000.0
    records = int(w.sum())
    pct = weighted_percentiles(v, w, list(PERCENTILES)) if records else [math.nan] * len(PERCENTILES)
    max_ms = (run.summary.produce_latency_ms or {}).get("max") if run.summary.produce_latency_ms else None
    out = {
        "records": records,
        "records_per_sec": records / secs if secs > 0 else 0.0,
        "mb_per_sec": nbytes / secs / 2**20 if secs > 0 else 0.0,
        "avg_ms": float(np.average(v, weights=w)) if records else None,
    }
    for q, x in zip(("p50_ms", "p95_ms", "p99_ms", "p999_ms", "p9999_ms"), pct):
        out[q] = None if math.isnan(x) else float(x)
    out["max_ms"] = float(max_ms) if max_ms is not None else (float(v.max()) if records else None)
    out["duration_s"] = secs
    out["hardware"] = hardware_on(run)
    return out


def perf_test_line(n: dict) -> str:
    """kafka-producer-perf-test's closing line (ProducerPerformance.Stats.printTotal's format)."""
    def whole(x):  # its latencies are whole milliseconds
        return 0 if x is None else int(math.floor(x))

    return (f"{n['records']} records sent, {n['records_per_sec']:.1f} records/sec ({n['mb_per_sec']:.2f} MB/sec), "
            f"{(n['avg_ms'] or 0.0):.2f} ms avg latency, {(n['max_ms'] or 0.0):.2f} ms max latency, "
            f"{whole(n['p50_ms'])} ms 50th, {whole(n['p95_ms'])} ms 95th, {whole(n['p99_ms'])} ms 99th, "
            f"{whole(n['p999_ms'])} ms 99.9th.")


def omb_line(n: dict) -> str:
    """OMB's aggregated publish-latency line (WorkloadGenerator, DecimalFormat "0.0")."""
    def f(x):
        return "-" if x is None else f"{x:.1f}"

    return (f"----- Aggregated Pub Latency (ms) avg: {f(n['avg_ms'])} - 50%: {f(n['p50_ms'])} - 95%: {f(n['p95_ms'])}"
            f" - 99%: {f(n['p99_ms'])} - 99.9%: {f(n['p999_ms'])} - 99.99%: {f(n['p9999_ms'])} - Max: {f(n['max_ms'])}")


# --- HdrHistogram ---------------------------------------------------------------------------------
def _histogram(values_ms: np.ndarray, weights: np.ndarray, highest_us: int):
    """An HdrHistogram of microseconds (3 significant digits) holding each value `weights` times."""
    from hdrh.histogram import HdrHistogram

    h = HdrHistogram(1, highest_us, 3)
    us = np.maximum(np.rint(np.asarray(values_ms, dtype=float) * 1000.0), 1).astype(np.int64)
    if len(us):
        uniq, inv = np.unique(us, return_inverse=True)
        counts = np.bincount(inv, weights=np.asarray(weights, dtype=float)).astype(np.int64)
        for value, count in zip(uniq.tolist(), counts.tolist()):
            if count:
                h.record_value(value, count)
    return h


def _highest_us(values_ms: np.ndarray) -> int:
    top = int(np.ceil(float(np.max(values_ms)) * 1000.0)) + 1 if len(values_ms) else 1
    return max(_HIGHEST_US, 2 * top)


def latency_histogram(run: Run):
    """The run's produce latencies (mid arrival to ack, per record) as one HdrHistogram in µs."""
    lat = produce_latencies(run.batches)
    v = lat["latency_ms"].to_numpy()
    return _histogram(v, lat["records"].to_numpy(), _highest_us(v))


def write_hdr_log(run: Run, path: str | Path) -> Path:
    """Write the produce latencies as an HdrHistogram log: one interval per simulated second of the
    run, holding the records acknowledged in it (timestamps in simulated seconds from the start;
    empty intervals too), values in microseconds; the Interval_Max column is in milliseconds
    (max_value_unit_ratio 1000)."""
    from hdrh.log import HistogramLogWriter

    b = run.batches
    acked = b[b["outcome"] == "acked"]
    lat = produce_latencies(b)  # the rows of `acked`, in order
    v, w = lat["latency_ms"].to_numpy(), lat["records"].to_numpy()
    sec = (acked["acked_ms"].to_numpy() // 1000).astype(np.int64)
    highest = _highest_us(v)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = io.StringIO()
    log = HistogramLogWriter(text)
    log.output_comment(f"kafkasim {run.label}: produce latency per record (mid arrival to acknowledgement), "
                       f"microseconds; simulated time, one interval per second")
    log.output_comment(hardware_note(run))
    log.output_log_format_version()
    # HistogramLogWriter.outputStartTime's line (hdrh's own output_start_time is broken in 0.10.8):
    # simulated time starts at 0
    text.write("#[StartTime: 0.000 (seconds since epoch), simulated time 0]\n")
    log.output_legend()
    n_sec = max(int(np.ceil(float(run.summary.sim_duration_ms or run.end_ms) / 1000.0)), int(sec.max(initial=-1)) + 1)
    for s in range(n_sec):  # every second, empty ones too (a failover's gap shows as one)
        sel = sec == s
        h = _histogram(v[sel], w[sel], highest)
        h.set_start_time_stamp(int(s) * 1000)
        h.set_end_time_stamp(int(s + 1) * 1000)
        log.output_interval_histogram(h, max_value_unit_ratio=1000.0)
    write_atomic(path, lambda tmp: tmp.write_text(text.getvalue()))
    return path


def read_hdr_log(path: str | Path, highest_us: int = _HIGHEST_US):
    """All intervals of an HdrHistogram log added into one histogram (HistogramLogReader)."""
    from hdrh.histogram import HdrHistogram
    from hdrh.log import HistogramLogReader

    total = HdrHistogram(1, highest_us, 3)
    reader = HistogramLogReader(str(path), HdrHistogram(1, highest_us, 3))
    try:
        while reader.add_next_interval_histogram(total):
            pass
    finally:
        reader.close()
    return total


# --- OMB result JSON ------------------------------------------------------------------------------
def _ms(us: float) -> float:
    return round(float(us) / 1000.0, 3)


def _hist_fields(prefix: str, h) -> dict:
    """avg, 50/75/95/99/99.9/99.99 and max of a µs histogram in ms, as OMB names them."""
    out = {f"{prefix}Avg": _ms(h.get_mean_value()) if h.get_total_count() else 0.0}
    for q, name in zip(_OMB_QS, _OMB_NAMES):
        out[f"{prefix}{name}"] = _ms(h.get_value_at_percentile(q)) if h.get_total_count() else 0.0
    out[f"{prefix}Max"] = _ms(h.get_max_value()) if h.get_total_count() else 0.0
    return out


def omb_result(run: Run) -> dict:
    """The run as OMB's result JSON (TestResult): rates and backlog per 10 s window, publish and
    end-to-end latencies per window and aggregated, from HdrHistograms of microseconds as OMB
    computes them (so within 3 significant digits of the summary). Windows follow the simulated
    clock from 0 to the end of producing; ``publishDelay*`` (OMB's lag behind its intended send
    time) has no counterpart here (arrivals are open-loop) and is left out."""
    b = run.batches
    sc = run.scenario
    end = float(run.summary.produce_duration_ms or run.produce_end_ms)
    n_win = max(1, int(math.ceil(end / OMB_WINDOW_MS)))
    acked = b[b["outcome"] == "acked"]
    lat = produce_latencies(b)
    v, w = lat["latency_ms"].to_numpy(), lat["records"].to_numpy()
    highest = _highest_us(v)
    win = np.minimum((acked["acked_ms"].to_numpy() // OMB_WINDOW_MS).astype(np.int64), n_win - 1)
    got = b[b["times_consumed"] > 0]
    e2e = got["consumed_ms"].to_numpy() - mid_arrival(got)
    e2e_w = got["record_count"].to_numpy()
    cwin = np.minimum((got["consumed_ms"].to_numpy() // OMB_WINDOW_MS).astype(np.int64), n_win - 1)
    errors = run.timeseries["record_error_rate"].to_numpy() if "record_error_rate" in run.timeseries else None
    err_win = np.zeros(n_win)
    if errors is not None:
        ts_win = np.minimum((run.timeseries["time_ms"].to_numpy() // OMB_WINDOW_MS).astype(np.int64), n_win - 1)
        err_win = np.bincount(ts_win, weights=errors.astype(float), minlength=n_win)[:n_win]
    secs = np.full(n_win, OMB_WINDOW_MS / 1000.0)
    secs[-1] = (end - (n_win - 1) * OMB_WINDOW_MS) / 1000.0
    pub = np.bincount(win, weights=w.astype(float), minlength=n_win)[:n_win]
    con = np.bincount(cwin, weights=e2e_w.astype(float), minlength=n_win)[:n_win]
    topics = sc.get("topics") or []
    producers = sc.get("producers") or []
    consumers = sc.get("consumers") or []
    out = {
        "workload": run.summary.scenario,
        "driver": "kafkasim",
        "messageSize": int(producers[0].get("record.size") or 0) if producers else 0,
        "topics": len(topics),
        "partitions": int(sum(int(t.get("partitions") or 1) for t in topics)),
        "producersPerTopic": int(sum(int(p.get("instances") or 1) for p in producers)) // max(len(topics), 1),
        "consumersPerTopic": int(sum(int(c.get("instances") or 1) for c in consumers)) // max(len(topics), 1),
        "publishRate": [round(x, 1) for x in (pub / secs).tolist()],
        "publishErrorRate": [round(x, 1) for x in (err_win / secs).tolist()],
        "consumeRate": [round(x, 1) for x in (con / secs).tolist()],
        "backlog": [int(x) for x in (np.cumsum(pub) - np.cumsum(con)).tolist()],
    }
    per = {k: [] for k in _hist_fields("publishLatency", _histogram(v[:0], w[:0], highest))}
    per_e2e = {k: [] for k in _hist_fields("endToEndLatency", _histogram(v[:0], w[:0], highest))}
    for i in range(n_win):
        for k, x in _hist_fields("publishLatency", _histogram(v[win == i], w[win == i], highest)).items():
            per[k].append(x)
        for k, x in _hist_fields("endToEndLatency", _histogram(e2e[cwin == i], e2e_w[cwin == i],
                                                                 _highest_us(e2e))).items():
            per_e2e[k].append(x)
    out.update(per)
    agg = _histogram(v, w, highest)
    out.update(_hist_fields("aggregatedPublishLatency", agg))
    out["aggregatedPublishLatencyQuantiles"] = {str(q): _ms(agg.get_value_at_percentile(q)) if agg.get_total_count()
                                                else 0.0 for q in (50.0, 75.0, 90.0, 95.0, 99.0, 99.9, 99.99, 99.999, 100.0)}
    out.update(per_e2e)
    out.update(_hist_fields("aggregatedEndToEndLatency", _histogram(e2e, e2e_w, _highest_us(e2e))))
    out["kafkasim"] = {"run": str(run.path), "seed": run.seed, "note": hardware_note(run),
                       "latency": "produce: mid arrival of a batch's records to its acknowledgement; end to end: "
                                  "to the batch's first consumption"}
    return out


def write_omb_json(run: Run, path: str | Path) -> Path:
    """Write `omb_result` as JSON (atomically)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(omb_result(run), indent=2) + "\n"
    write_atomic(path, lambda tmp: tmp.write_text(text))
    return path


def perf_frame(runs: list[tuple[str, Run]]) -> pd.DataFrame:
    """One row of `perf_numbers` per run (for `analysis.tables.perf_table`)."""
    return pd.DataFrame([{"run": rid, **perf_numbers(r)} for rid, r in runs])
