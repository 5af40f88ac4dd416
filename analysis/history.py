"""A run as a Jepsen history: one row per client operation, in the shape of Jepsen's Kafka workload.

Jepsen's Kafka test (jepsen.tests.kafka, checked by Elle) records each client call as an
``:invoke`` and its completion as ``:ok`` (it happened), ``:fail`` (it did not) or ``:info``
(unknown). A send is a list of micro-operations ``[:send k v]``, completed with the offset each
value got, ``[:send k [offset v]]``; a poll completes with what it read, ``[:poll {k [[offset v]
...]}]``. Times are nanoseconds from the start; a process runs one operation at a time.

What a kafkasim run holds maps onto that as follows (from the results contract only):

- **A send is a producer batch** (its records are the micro-operations, in order). It is invoked
  when its first record arrived at the producer and completes ``:ok`` when it was acknowledged,
  with offsets ``offset + i``. A batch the producer was told failed is ``:fail``, one it never
  heard of is ``:info``; the run does not keep when those ended, so they complete at the end of
  the run.
- **Keys are partitions** (the partition's index in the run, `key_names` gives its name), and
  **values number each partition's records** 0, 1, ... in the order their batches were created:
  unique per key, as Elle needs, so a value names one record.
- **Processes** are the concurrent operations: a producer keeps several batches in flight, so each
  in-flight batch takes the lowest free process number, freed by its ``:ok`` or ``:fail`` (an
  ``:info`` never frees it, as Jepsen retires a process after an indeterminate operation).
- **One final poll per partition** after the end reads the acknowledged records still in the
  committed log, at the offsets they were acknowledged with: Jepsen's final reads. Records whose
  send was not acknowledged are not in it even where a copy is in the log (the run keeps no offset
  for them), and the consumers' reads during the run are not (the run keeps only their first time).

So an acknowledged value that no poll read is exactly an acknowledged, lost record: the records of
the ``:ok`` sends absent from the final polls add up to the summary's ``acked_lost``.
"""

from __future__ import annotations

import heapq
import json
from typing import Iterator

import numpy as np
import pandas as pd

from analysis.load import Run

__all__ = ["history_ops", "history_lines", "history_records", "history_frame", "key_names", "FORMATS", "DEFAULT_LIMIT",
           "HistoryError"]

FORMATS = ("edn", "jsonl")
DEFAULT_LIMIT = 1_000_000
"""Records (send micro-operations) a history may hold unless `--limit` says otherwise."""


class HistoryError(ValueError):
    """A history that cannot be written as asked (one line)."""


def history_records(run: Run) -> int:
    """The records a history of `run` holds (one send micro-operation each)."""
    return int(run.read_batches(["record_count"])["record_count"].sum())


def _ns(ms: float) -> int:
    return int(round(float(ms) * 1e6))


def history_ops(run: Run, limit: int = DEFAULT_LIMIT) -> list[dict]:
    """The run's operations, in time order: dicts with index, time (ns), type, process, f, value.

    `value` is a list of micro-operations: ``("send", k, v)`` / ``("send", k, (offset, v))``,
    ``("poll",)`` / ``("poll", {k: [(offset, v), ...]})``. Raises HistoryError past `limit` records.
    """
    records = history_records(run)
    if records > limit:
        raise HistoryError(f"--limit: the run has {records:,} records, over the limit of {limit:,} "
                           f"(allowed: --limit {records} or more, or a shorter run)")
    b = run.read_batches(["batch_id", "partition_index", "record_count", "first_arrival_ms", "acked_ms", "offset",
                          "outcome", "copies_in_log"]).sort_values("batch_id", kind="stable").reset_index(drop=True)
    end_ms = float(run.end_ms)
    outcome = b["outcome"].astype(str).to_numpy()
    start = b["first_arrival_ms"].to_numpy(dtype=float)
    done = np.where(outcome == "acked", b["acked_ms"].to_numpy(dtype=float), np.maximum(end_ms, start))
    key = b["partition_index"].to_numpy(dtype=np.int64)
    count = b["record_count"].to_numpy(dtype=np.int64)
    # values: each key's records numbered 0, 1, ... in batch order (unique per key, as Elle needs; a
    # record id is unique only per producer and partition)
    cum = b.groupby("partition_index", sort=False)["record_count"].cumsum().to_numpy(dtype=np.int64)
    first = cum - count
    offset = b["offset"].to_numpy(dtype=np.int64)
    start_ns = np.rint(start * 1e6).astype(np.int64).tolist()
    done_ns = np.rint(done * 1e6).astype(np.int64).tolist()
    keys, counts, firsts, offsets = key.tolist(), count.tolist(), first.tolist(), offset.tolist()

    # (time, 0: completions first at one instant, so their processes are free; 1: invokes, batch row)
    # (an operation done at the instant it began completes after its own invoke: 2)
    steps = sorted([(start_ns[i], 1, i) for i in range(len(b))]
                   + [(done_ns[i], 2 if done_ns[i] <= start_ns[i] else 0, i) for i in range(len(b))])
    free: list[int] = []
    next_process = 0
    process_of: dict[int, int] = {}
    ops: list[dict] = []
    for t, phase, i in steps:
        k, n, v0 = keys[i], counts[i], firsts[i]
        if phase == 1:
            if free:
                p = heapq.heappop(free)
            else:
                p, next_process = next_process, next_process + 1
            process_of[i] = p
            ops.append({"time": t, "type": "invoke", "process": p, "f": "send",
                        "value": [("send", k, v0 + j) for j in range(n)]})
            continue
        p = process_of.pop(i)
        kind = {"acked": "ok", "failed": "fail"}.get(outcome[i], "info")
        if kind == "ok":
            o = offsets[i]
            value = [("send", k, (o + j, v0 + j)) for j in range(n)]
        else:
            value = [("send", k, v0 + j) for j in range(n)]
        if kind != "info":
            heapq.heappush(free, p)
        ops.append({"time": t, "type": kind, "process": p, "f": "send", "value": value})

    # the final reads: per partition, the acknowledged records still in the committed log
    kept = (outcome == "acked") & (b["copies_in_log"].to_numpy() > 0)
    t = _ns(end_ms) + 1
    for k in sorted(set(int(x) for x in key)):
        rows = np.flatnonzero(kept & (key == k))
        read = sorted((offsets[i] + j, firsts[i] + j) for i in rows.tolist() for j in range(counts[i]))
        p, next_process = next_process, next_process + 1
        ops.append({"time": t, "type": "invoke", "process": p, "f": "poll", "value": [("poll",)]})
        ops.append({"time": t + 1, "type": "ok", "process": p, "f": "poll", "value": [("poll", {k: read})]})
        t += 2
    return [{"index": index, **op} for index, op in enumerate(ops)]


def key_names(run: Run) -> dict[int, str]:
    """Partition name of each key."""
    b = run.read_batches(["partition_index", "partition"]).drop_duplicates("partition_index")
    return {int(k): str(p) for k, p in zip(b["partition_index"], b["partition"])}


# --- writers -------------------------------------------------------------------------------------
def _edn_mop(mop: tuple) -> str:
    """One micro-operation as EDN: [:send k v], [:send k [offset v]], [:poll], [:poll {k [[offset v] ...]}]."""
    if mop[0] == "send":
        v = mop[2]
        return f"[:send {mop[1]} [{v[0]} {v[1]}]]" if type(v) is tuple else f"[:send {mop[1]} {v}]"
    if len(mop) == 1:
        return "[:poll]"
    reads = ", ".join(f"{k} [" + " ".join(f"[{o} {v}]" for o, v in pairs) + "]" for k, pairs in mop[1].items())
    return f"[:poll {{{reads}}}]"


def _edn_op(op: dict) -> str:
    value = "[" + " ".join(map(_edn_mop, op["value"])) + "]"
    return (f"{{:index {op['index']}, :time {op['time']}, :type :{op['type']}, :process {op['process']}, "
            f":f :{op['f']}, :value {value}}}")


def _json_mop(mop: tuple) -> list:
    if mop[0] == "send":
        v = mop[2]
        return ["send", mop[1], [v[0], v[1]] if type(v) is tuple else v]
    if len(mop) == 1:
        return ["poll"]
    return ["poll", {str(k): [[o, v] for o, v in pairs] for k, pairs in mop[1].items()}]


def history_lines(ops: list[dict], fmt: str = "edn") -> Iterator[str]:
    """One line per operation: EDN maps as Jepsen writes history.edn, or JSON objects (keywords as strings)."""
    if fmt not in FORMATS:
        raise HistoryError(f"--format: {fmt!r} is not a format (allowed: {', '.join(FORMATS)})")
    for op in ops:
        if fmt == "edn":
            yield _edn_op(op)
        else:
            yield json.dumps({**op, "value": [_json_mop(m) for m in op["value"]]}, separators=(",", ":"))


def history_frame(ops: list[dict]) -> pd.DataFrame:
    """The operations as a table (index, time, type, process, f, records): for a quick look."""
    return pd.DataFrame({"index": [o["index"] for o in ops], "time": [o["time"] for o in ops],
                         "type": [o["type"] for o in ops], "process": [o["process"] for o in ops],
                         "f": [o["f"] for o in ops], "records": [len(o["value"]) for o in ops]})
