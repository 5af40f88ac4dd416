"""A broker's disk: the logs of its partition replicas, and how much of each is flushed.

Every write to a log goes through the disk: the leader's append (Partition.appendRecordsToLeader),
the follower's append of fetched batches and truncation. Kafka writes to the page cache and leaves
flushing to the OS (log.flush.interval.messages/ms unset, see the reference, section 1.10): an
append is durable against a process crash at once, but only the flushed prefix survives a power
loss. The disk keeps that prefix per log (`flushed_offset`), advanced by `flush()`.

Today the disk costs no simulated time: an append is a direct, synchronous call (no SimPy event),
and nothing calls `flush()` on a schedule. It is the place where a slow disk (append latency) and
a flush policy and power loss (truncate each log to its flushed offset) will go.
"""

from __future__ import annotations

from sim.model.log import Log

__all__ = ["Disk"]


class Disk:
    """The logs on one broker's disk, keyed by partition index, with their flushed offsets.

    Writes: `append(log, count, epoch, batch_id, pid, seq, nbytes) -> base offset` (leader path)
    and `append_fetched(log, data)` (follower path). With no latency they are Log's own methods,
    bound at construction, so a write through the disk costs no extra call; a slow disk would
    bind its own.
    """

    __slots__ = ("logs", "_flushed", "append", "append_fetched")

    def __init__(self, logs: dict[int, Log]):
        self.logs = logs
        self._flushed: dict[int, int] = {p: log.leo for p, log in logs.items()}
        self.append = Log.append  # called as append(log, ...): the write itself, synchronous
        self.append_fetched = Log.append_fetched

    # --- writes ------------------------------------------------------------------------------
    def truncate(self, p: int, offset: int) -> int:
        """Truncate log `p` at `offset` (whole batches); returns the records removed."""
        log = self.logs[p]
        removed = log.truncate_to(offset)
        if self._flushed[p] > log.leo:
            self._flushed[p] = log.leo
        return removed

    # --- durability ----------------------------------------------------------------------------
    def flushed_offset(self, p: int) -> int:
        """The offset below which log `p` is on stable storage (survives a power loss)."""
        flushed = self._flushed[p]
        leo = self.logs[p].leo
        return flushed if flushed < leo else leo

    def flush(self, p: int | None = None) -> None:
        """fsync log `p` (every log when None): everything appended so far becomes durable."""
        for q in (self.logs if p is None else (p,)):
            self._flushed[q] = self.logs[q].leo
