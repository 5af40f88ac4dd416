"""Columnar fact buffers that the model appends to; measurement reads them after the run.

The model never computes a metric: it emits flat facts (a batch was created, sent, appended on a
replica, acknowledged, consumed; a leader was elected; an ISR changed; a broker crashed) into
named tables of typed columns. Numeric columns are ``array.array`` buffers: as cheap to append to
as lists, a quarter of the memory, and invisible to the cyclic garbage collector (a list of
millions of objects makes every full GC pass crawl). ``Recorder.arrays()`` turns them into numpy.
"""

from __future__ import annotations

from array import array

import numpy as np

from sim.model.events import EVENT_KINDS, FIELDS

__all__ = ["Recorder", "TABLES", "OUTCOMES"]

OUTCOMES = ("acked", "failed", "unknown")

# name -> ((column, numpy dtype), ...). Partitions are global indices (see Recorder.partition_names).
TABLES: dict[str, tuple[tuple[str, str], ...]] = {
    "batch_created": (("batch_id", "i8"), ("producer", "i4"), ("partition", "i4"), ("record_count", "i4"),
                      ("first_record_id", "i8"), ("first_arrival_ms", "f8"), ("last_arrival_ms", "f8")),
    "batch_sent": (("time_ms", "f8"), ("batch_id", "i8"), ("broker", "i4"), ("attempt", "i4")),
    "produce_error": (("time_ms", "f8"), ("batch_id", "i8"), ("broker", "i4"), ("error", "U40")),
    "batch_done": (("time_ms", "f8"), ("batch_id", "i8"), ("outcome", "i1"), ("offset", "i8"), ("broker", "i4")),
    # delivery.timeout.ms ended a batch: the application got a TimeoutException (Sender.failBatch)
    "batch_expired": (("time_ms", "f8"), ("batch_id", "i8")),
    "appended": (("time_ms", "f8"), ("broker", "i4"), ("partition", "i4"), ("offset", "i8"), ("batch_id", "i8"),
                 ("leader_epoch", "i4"), ("as_leader", "?")),
    "hw_advanced": (("time_ms", "f8"), ("broker", "i4"), ("partition", "i4"), ("leader_epoch", "i4"), ("hw", "i8")),
    "consumed": (("time_ms", "f8"), ("consumer", "i4"), ("partition", "i4"), ("offset", "i8"), ("batch_id", "i8")),
    # the fixed columns, then the structured fields of sim.model.events (each kind fills its own)
    "events": (("time_ms", "f8"), ("kind", "U32"), ("broker", "i4"), ("partition", "i4"), ("value", "i8"),
               ("detail", "U200"), *((f.name, f.dtype) for f in FIELDS.values())),
    "final_log": (("partition", "i4"), ("offset", "i8"), ("batch_id", "i8"), ("record_count", "i4"),
                  ("leader_epoch", "i4"), ("committed", "?")),
    # the other replicas' logs at the end, below each one's own HW (what it believes committed)
    "replica_log": (("broker", "i4"), ("partition", "i4"), ("offset", "i8"), ("batch_id", "i8")),
}


class Recorder:
    """Append-only columnar buffers, one per fact table."""

    def __init__(self, partition_names: list[str] | None = None, producer_names: list[str] | None = None,
                 consumer_names: list[str] | None = None):
        self.partition_names = list(partition_names or [])
        self.producer_names = list(producer_names or [])
        self.consumer_names = list(consumer_names or [])
        self.messages_sent: dict[str, int] = {}  # network messages by type, filled in at the end of a run
        self.messages_dropped: dict[str, int] = {}  # ... and those a lossy link lost
        self._cols: dict[str, tuple] = {name: tuple(_column(dtype) for _, dtype in cols) for name, cols in TABLES.items()}
        # Bound appenders for the hot tables, so the model pays one call per column.
        self._created = [c.append for c in self._cols["batch_created"]]
        self._sent = [c.append for c in self._cols["batch_sent"]]
        self._appended = [c.append for c in self._cols["appended"]]
        self._hw = [c.append for c in self._cols["hw_advanced"]]
        self._done = [c.append for c in self._cols["batch_done"]]

    def record(self, table: str, *values) -> None:
        """Append one row to `table` (columns in TABLES order)."""
        for col, v in zip(self._cols[table], values, strict=True):
            col.append(v)

    # hot paths: unrolled appends
    def batch_created(self, batch_id, producer, partition, count, first_id, first_ms, last_ms) -> None:
        a = self._created
        a[0](batch_id); a[1](producer); a[2](partition); a[3](count); a[4](first_id); a[5](first_ms); a[6](last_ms)

    def batch_sent(self, t, batch_id, broker, attempt) -> None:
        a = self._sent
        a[0](t); a[1](batch_id); a[2](broker); a[3](attempt)

    def appended(self, t, broker, partition, offset, batch_id, epoch) -> None:
        a = self._appended
        a[0](t); a[1](broker); a[2](partition); a[3](offset); a[4](batch_id); a[5](epoch); a[6](True)

    def appended_many(self, t, broker, partition, offsets, batch_ids, epochs) -> None:
        """A follower appended a fetched run of batches at once."""
        n = len(offsets)
        if n == 1:  # the usual case: one batch per partition per fetch
            a = self._appended
            a[0](t); a[1](broker); a[2](partition); a[3](offsets[0]); a[4](batch_ids[0]); a[5](epochs[0]); a[6](False)
            return
        a = self._cols["appended"]
        a[0].extend([t] * n); a[1].extend([broker] * n); a[2].extend([partition] * n)
        a[3].extend(offsets); a[4].extend(batch_ids); a[5].extend(epochs); a[6].extend(bytes(n))

    def hw_advanced(self, t, broker, partition, epoch, hw) -> None:
        a = self._hw
        a[0](t); a[1](broker); a[2](partition); a[3](epoch); a[4](hw)

    def consumed_many(self, t, consumer, partition, offsets, batch_ids) -> None:
        """A consumer received a run of batches from one partition (log-array slices)."""
        n = len(offsets)
        a = self._cols["consumed"]
        a[0].extend([t] * n); a[1].extend([consumer] * n); a[2].extend([partition] * n)
        a[3].extend(offsets); a[4].extend(batch_ids)

    def batch_done(self, t, batch_id, outcome: int, offset, broker) -> None:
        a = self._done
        a[0](t); a[1](batch_id); a[2](outcome); a[3](offset); a[4](broker)

    def final_log(self, partition: int, base, batch_id, count, epoch, hw: int) -> None:
        """One partition's whole final log at once, from the log's own array columns."""
        n = len(base)
        if not n:
            return
        a = self._cols["final_log"]
        ends = _batch_ends(base, count)
        a[0].extend([partition] * n); a[1].extend(base); a[2].extend(batch_id); a[3].extend(count.tolist())
        a[4].extend(epoch); a[5].frombytes((ends <= hw).astype(np.int8).tobytes())

    def replica_log(self, broker: int, partition: int, base, batch_id, count, hw: int) -> None:
        """A non-leader replica's final log, the batches below its own HW, from the log's columns."""
        n = len(base)
        if not n:
            return
        k = int(np.searchsorted(_batch_ends(base, count), hw, side="right"))  # batches wholly below the HW
        if not k:
            return
        a = self._cols["replica_log"]
        a[0].extend([broker] * k); a[1].extend([partition] * k); a[2].extend(base[:k]); a[3].extend(batch_id[:k])

    def event(self, t: float, kind: str, broker: int = -1, partition: int = -1, value: int = 0,
              detail: str = "", **fields) -> None:
        """A discrete model event of a kind declared in sim.model.events, with its structured fields.

        Raises ValueError for an undeclared kind or a field its kind does not declare.
        """
        spec = EVENT_KINDS.get(kind)
        if spec is None:
            raise ValueError(f"undeclared event kind {kind!r}: declare it in sim/model/events.py")
        if fields and not spec.fields_set.issuperset(fields):
            raise ValueError(f"event kind {kind!r} has no field(s) {sorted(set(fields) - spec.fields_set)} "
                             f"(declared: {', '.join(spec.fields) or 'none'})")
        cols = self._cols["events"]
        for col, v in zip(cols, (t, kind, broker, partition, value, detail)):
            col.append(v)
        for col, f in zip(cols[6:], FIELDS.values()):
            col.append(fields.get(f.name, f.missing))

    def arrays(self, table: str) -> dict[str, np.ndarray]:
        """The table as numpy columns with compact dtypes."""
        out = {}
        for (name, dtype), col in zip(TABLES[table], self._cols[table]):
            if isinstance(col, array):
                out[name] = np.frombuffer(col, dtype=_TYPECODES[dtype][1]).astype(dtype) if len(col) \
                    else np.empty(0, dtype=dtype)
            elif dtype == "O":  # tuples (an ISR): one object per row, never a 2-D array
                out[name] = np.empty(len(col), dtype=object)
                for i, v in enumerate(col):
                    out[name][i] = v
            else:
                out[name] = np.asarray(col, dtype=dtype) if col else np.empty(0, dtype=dtype)
        return out


# numpy dtype -> (array typecode, the numpy dtype of that typecode's buffer)
_TYPECODES = {"f8": ("d", "f8"), "i8": ("q", "i8"), "i4": ("i", "i4"), "i1": ("b", "i1"), "?": ("b", "i1")}


def _batch_ends(base, count) -> np.ndarray:
    """End offset of each batch of a log, from its 'q' array columns (no copy of the columns)."""
    return np.frombuffer(base, dtype="i8") + np.frombuffer(count, dtype="i8")


def _column(dtype: str):
    """A typed buffer for numeric columns; a list for strings."""
    if dtype in _TYPECODES:
        return array(_TYPECODES[dtype][0])
    return []
