"""A broker's disk: the logs of its partition replicas, how much of each is flushed, and how fast it writes.

Every write to a log goes through the disk: the leader's append (Partition.appendRecordsToLeader),
the follower's append of fetched batches and truncation. Kafka writes to the page cache and leaves
flushing to the OS (log.flush.interval.messages/ms unset, see the reference, section 1.10): an
append is durable against a process crash at once, but only the flushed prefix survives a power
loss. What is flushed when the power fails (`durable_offset`):

- Kafka's own fsyncs: ``flush.messages`` (LogManager/UnifiedLog: after an append, fsync when
  ``logEndOffset - recoveryPoint >= flush.messages``), eager; ``flush.ms`` (LogManager's
  ``kafka-log-flusher`` task, every ``log.flush.scheduler.interval.ms``: fsync a log whose last
  flush is ``flush.ms`` old), computed lazily as flushes at multiples of its effective period;
- (a disk under a ``lost_fsync`` fault acknowledges Kafka's fsyncs without doing them:
  `lose_fsyncs`);
- the kernel's writeback: a flusher every ``os.dirty_writeback_interval`` (5 s) writes the pages
  dirtied more than ``os.dirty_expire`` (30 s) ago (Linux mm/page-writeback.c), computed lazily
  from the append time of each batch.

Zero cost when unused: the disk only remembers append times once `track_writes` is called (the
fault injector does it when the scenario has a power loss), and then through its own bound
methods; otherwise `append` and `append_fetched` are Log's own methods and nothing runs on a
schedule. A slow disk (`SlowDisk`) is likewise a shadow on the broker's `handle`, present only
while the fault lasts. A write bandwidth (`reserve_write`, cluster.hardware.disk.write) is a FIFO
queue the hardware model (sim/model/hardware.py) asks for the end of each write; unused, it is
never called.
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_right
from collections import deque
from typing import TYPE_CHECKING, Callable, Protocol

from sim.model import messages as m
from sim.model.log import Log

if TYPE_CHECKING:
    import simpy

    from sim.model.fetcher import ReplicaFetcher
    from sim.model.partition import PartitionSpec
    from sim.model.timeouts import TimeoutQueue

__all__ = ["Disk", "FlushPolicy", "SlowDisk", "SlowDiskHost"]

NEVER = math.inf


class FlushPolicy:
    """When one log is fsynced: after `messages` unflushed records, every `period_ms`; inf = never."""

    __slots__ = ("messages", "period_ms")

    def __init__(self, messages: int | None = None, flush_ms: float | None = None,
                 scheduler_interval_ms: float | None = None):
        self.messages = messages if messages is not None else NEVER
        # LogManager.flushDirtyLogs runs every log.flush.scheduler.interval.ms and flushes a log whose
        # last flush is at least flush.ms old: with both set, a flush every ceil(F/S)*S.
        if flush_ms is None or scheduler_interval_ms is None:
            self.period_ms = NEVER
        else:
            self.period_ms = math.ceil(flush_ms / scheduler_interval_ms) * scheduler_interval_ms


class Disk:
    """The logs on one broker's disk, keyed by partition index, with their flushed offsets.

    Writes: `append(log, count, epoch, batch_id, pid, seq, nbytes) -> base offset` (leader path)
    and `append_fetched(log, data)` (follower path). Untracked, they are Log's own methods, bound
    at construction, so a write through the disk costs no extra call; `track_writes` binds the
    tracking ones.
    """

    __slots__ = ("logs", "_flushed", "append", "append_fetched", "env", "_times", "_ends", "_policy",
                 "_p_of", "dirty_expire_ms", "writeback_ms", "write_ms_per_byte", "_write_free", "_lies",
                 "_lying_since", "_lie_until")

    def __init__(self, logs: dict[int, Log]):
        self.logs = logs
        self._flushed: dict[int, int] = {p: log.leo for p, log in logs.items()}
        self.append = Log.append  # called as append(log, ...): the write itself, synchronous
        self.append_fetched = Log.append_fetched
        self.env = None
        self._times: dict[int, array] | None = None  # tracked: append time of each batch, per log
        self._ends: dict[int, array] = {}  # tracked: the log end offset after each batch
        self._policy: dict[int, FlushPolicy] = {}
        self._p_of: dict[int, int] = {}
        self.dirty_expire_ms = 30_000.0
        self.writeback_ms = 5_000.0
        self.write_ms_per_byte = 0.0  # cluster.hardware.disk.write (sim/model/hardware.py); 0: free
        self._write_free = 0.0
        self._lies = 0  # lost_fsync faults in effect: while > 0, fsyncs are acknowledged but not done
        self._lying_since = NEVER  # when the disk last began to lie ...
        self._lie_until = NEVER  # ... and when it stopped (NEVER: it still lies, or never did)

    # --- write bandwidth (only with cluster.hardware.disk) ----------------------------------------
    def reserve_write(self, start: float, nbytes: int) -> float:
        """Queue a write of `nbytes` from `start` behind the writes before it; returns when it is done.

        One FIFO queue for the broker's log dirs together at `write_ms_per_byte`. The page cache
        absorbing bursts is not modelled: a write finishes when the disk has written it.
        """
        free = self._write_free
        done = (free if free > start else start) + nbytes * self.write_ms_per_byte
        self._write_free = done
        return done

    # --- write tracking (only when a power loss can happen) -------------------------------------
    def track_writes(self, env: "simpy.Environment", policies: dict[int, FlushPolicy], dirty_expire_ms: float,
                     writeback_ms: float) -> None:
        """Remember when each batch was written, so a power loss knows what the OS had flushed."""
        self.env = env
        self._policy = policies
        self.dirty_expire_ms, self.writeback_ms = dirty_expire_ms, writeback_ms
        self._times = {p: array("d") for p in self.logs}
        self._ends = {p: array("q") for p in self.logs}
        self._p_of = {id(log): p for p, log in self.logs.items()}
        self.append = self._tracked_append
        self.append_fetched = self._tracked_append_fetched

    def _written(self, log: Log) -> None:
        p = self._p_of[id(log)]
        self._times[p].append(self.env.now)
        self._ends[p].append(log.leo)
        # UnifiedLog.append: fsync once flush.messages records are unflushed (a lying disk: not done)
        if log.leo - self._flushed[p] >= self._policy[p].messages and not self._lies:
            self._flushed[p] = log.leo

    def _tracked_append(self, log: Log, *args) -> int:
        base = Log.append(log, *args)
        self._written(log)
        return base

    def _tracked_append_fetched(self, log: Log, data) -> None:
        Log.append_fetched(log, data)
        self._written(log)

    # --- writes ------------------------------------------------------------------------------
    def truncate(self, p: int, offset: int) -> int:
        """Truncate log `p` at `offset` (whole batches); returns the records removed."""
        log = self.logs[p]
        removed = log.truncate_to(offset)
        if self._flushed[p] > log.leo:
            self._flushed[p] = log.leo
        if self._times is not None and removed:
            ends, times = self._ends[p], self._times[p]
            keep = bisect_right(ends, log.leo)
            del ends[keep:]
            del times[keep:]
        return removed

    def replace(self) -> None:
        """A new, empty disk (disk loss): every log starts again from offset 0."""
        for p in self.logs:
            self.logs[p] = Log()
            self._flushed[p] = 0
        if self._times is not None:
            self._p_of = {id(log): p for p, log in self.logs.items()}
            for p in self.logs:
                del self._times[p][:]
                del self._ends[p][:]

    def add_log(self, p: int, log: Log, policy: FlushPolicy | None = None) -> None:
        """A new, empty log on this disk (a replica reassigned here, LogManager.getOrCreateLog)."""
        self.logs[p] = log
        self._flushed[p] = 0
        if self._times is not None:
            self._times[p], self._ends[p] = array("d"), array("q")
            self._p_of[id(log)] = p
            self._policy[p] = policy or FlushPolicy()

    def remove_log(self, p: int) -> None:
        """Delete log `p` (a replica reassigned away, LogManager.asyncDelete)."""
        log = self.logs.pop(p)
        self._flushed.pop(p, None)
        if self._times is not None:
            self._times.pop(p, None)
            self._ends.pop(p, None)
            self._p_of.pop(id(log), None)

    # --- durability ----------------------------------------------------------------------------
    def lose_fsyncs(self, on: bool, now: float) -> None:
        """A lost_fsync fault starts (`on`) or ends: while one lasts, every fsync (flush.messages,
        flush.ms, a clean shutdown's flush) is acknowledged and not done, as by a disk whose volatile
        write cache ignores flush commands. The kernel's writeback is still assumed to reach the
        platter (the cache destages it); the next honest fsync after the fault flushes everything."""
        if on:
            if not self._lies:
                self._lying_since, self._lie_until = now, NEVER
            self._lies += 1
        elif self._lies:
            self._lies -= 1
            if not self._lies:
                self._lie_until = now

    def flushed_offset(self, p: int) -> int:
        """The offset below which log `p` is on stable storage by an explicit fsync."""
        flushed = self._flushed[p]
        leo = self.logs[p].leo
        return flushed if flushed < leo else leo

    def flush(self, p: int | None = None) -> None:
        """fsync log `p` (every log when None): everything appended so far becomes durable (unless the disk lies)."""
        if self._lies:
            return
        for q in (self.logs if p is None else (p,)):
            self._flushed[q] = self.logs[q].leo

    def _offset_written_by(self, p: int, t: float) -> int:
        """The log end offset of `p` as it was at time `t` (from the tracked append times)."""
        i = bisect_right(self._times[p], t)
        return self._ends[p][i - 1] if i else 0

    def durable_offset(self, p: int, now: float) -> int:
        """What of log `p` is on stable storage at `now`: the largest of the explicit fsyncs, the last
        flush.ms flush and the kernel's last writeback (pages older than dirty_expire at its run)."""
        durable = self.flushed_offset(p)
        if self._times is None:
            return durable  # untracked: no power loss was expected; only explicit fsyncs count
        last_writeback = math.floor(now / self.writeback_ms) * self.writeback_ms
        durable = max(durable, self._offset_written_by(p, last_writeback - self.dirty_expire_ms))
        period = self._policy[p].period_ms
        if period != NEVER:
            flushed_at = math.floor(now / period) * period
            if self._lying_since < flushed_at < self._lie_until:  # a flush while the disk lied was not done
                flushed_at = math.floor(self._lying_since / period) * period
            durable = max(durable, self._offset_written_by(p, flushed_at))
        return min(durable, self.logs[p].leo)

    def lose_page_cache(self, now: float) -> dict[int, tuple[int, int]]:
        """Power loss: every log keeps only its durable prefix. Returns {p: (recovered LEO, records lost)}.

        The checkpoint files (HW, leader epochs, producer snapshots) are fsynced when written
        (CheckpointFile), so they survive; recovery (UnifiedLog / LogLoader) then truncates the
        epoch cache and rebuilds the producer state to the recovered log end, and the broker caps
        its HW at it when it starts.
        """
        out = {}
        for p in self.logs:
            durable = self.durable_offset(p, now)
            removed = self.truncate(p, durable)
            self._flushed[p] = self.logs[p].leo
            out[p] = (self.logs[p].leo, removed)
        return out


class SlowDiskHost(Protocol):
    """What a slow disk needs of the broker above it: its process (incarnation, timers, the `handle`
    its class defines and the shadow over it) and its fetchers' request timeouts."""

    env: simpy.Environment
    alive: bool
    incarnation: int
    partitions: list[PartitionSpec]
    fetchers: dict[int, ReplicaFetcher]
    fetch_timeouts: TimeoutQueue

    def handle(self, msg) -> None: ...

    def shadow_handle(self, handler: Callable) -> None: ...

    def unshadow_handle(self, handler: Callable) -> None: ...

    def schedule(self, delay: float, callback: Callable, *args) -> None: ...

    def deferring(self, callback: Callable) -> Callable: ...


class SlowDisk:
    """A slow disk under one broker: writes wait their turn and take `latency` more each.

    It shadows the broker's `handle` while it lasts (Node.pause does the same), so a broker with a
    healthy disk pays nothing. A produce request and a fetch response carrying batches are writes:
    the request handler (or the fetcher thread) is blocked on the append, so each is handled once
    the disk has done the writes queued before it plus its own (FIFO, one at a time). Reads come
    from the page cache and pass straight through. A write of a partition with flush.messages set
    also pays `flush_latency` (its fsync).

    Several slow-disk faults of one broker at once share its slow disk (`add`, `drop`): it is as slow
    as the slowest of them (the largest latency and flush latency in effect), until the last ends.
    """

    def __init__(self, broker: SlowDiskHost, latency: float, flush_latency: float = 0.0, key: object = None):
        self.broker = broker
        self.faults: dict[object, tuple[float, float]] = {key: (latency, flush_latency)}  # in effect: key -> latencies
        self.latency = latency
        self.flush_latency = flush_latency
        self.busy_until = 0.0
        self.queue: deque = deque()  # writes waiting for the disk, oldest first
        self.flushing = {s.index for s in broker.partitions if s.flush_messages}

    def install(self) -> None:
        self.broker.shadow_handle(self.handle)  # a paused broker: what it handles after its resume

    def add(self, key: object, latency: float, flush_latency: float = 0.0) -> None:
        """Another slow-disk fault of this disk: writes queued from now on take the largest latency in effect."""
        self.faults[key] = (latency, flush_latency)
        self._latencies()

    def drop(self, key: object) -> bool:
        """The fault `key` ends; True if it was the last (the caller then `remove`s the slow disk)."""
        self.faults.pop(key, None)
        if self.faults:
            self._latencies()
        return not self.faults

    def _latencies(self) -> None:
        self.latency = max(lat for lat, _ in self.faults.values())
        self.flush_latency = max(flush for _, flush in self.faults.values())

    def remove(self) -> None:
        """The disk is healthy again: the writes still queued complete now, in order."""
        self.broker.unshadow_handle(self.handle)
        complete = self.broker.deferring(self._complete)  # a paused broker handles them on resume
        for _ in range(len(self.queue)):
            complete()

    def _cost(self, parts) -> float:
        if self.flush_latency and any(p in self.flushing for p in parts):
            return self.latency + self.flush_latency
        return self.latency

    def handle(self, msg) -> None:
        t = type(msg)
        if t is m.ProduceRequest:
            cost = self._cost(b.partition for b in msg.batches)
        elif t is m.FetchResponse and any(pd.base for pd in msg.partitions):
            cost = self._cost(pd.partition for pd in msg.partitions if pd.base)
            # The response is in: replica.socket.timeout.ms no longer runs. The fetcher thread is now
            # stalled in the append (ReplicaFetcherThread.processPartitionData) and sends nothing until
            # it is done; its fetch stays in flight, so the write is applied, never thrown away.
            fetcher = self.broker.fetchers.get(msg.broker)
            if fetcher is not None and fetcher.in_flight is not None and fetcher.in_flight.request_id == msg.request_id:
                self.broker.fetch_timeouts.done(fetcher.in_flight)
        else:
            type(self.broker).handle(self.broker, msg)
            return
        queue = self.queue
        while queue and queue[0][0] != self.broker.incarnation:
            queue.popleft()  # queued by an incarnation that crashed: their completions died with it
        now = self.broker.env.now
        self.busy_until = max(now, self.busy_until) + cost
        self.queue.append((self.broker.incarnation, msg))
        self.broker.schedule(self.busy_until - now, self._complete)

    def _complete(self) -> None:
        """The write at the head of the queue is done: the broker handles its message (unless drained already)."""
        if not self.queue:
            return
        incarnation, msg = self.queue.popleft()
        if self.broker.alive and self.broker.incarnation == incarnation:
            type(self.broker).handle(self.broker, msg)
