"""A replica's log of record batches: log end offset, high watermark, leader-epoch cache.

The log is columnar (one Python list per batch field), never per record: a batch of N records
occupies offsets [base, base + N). The leader-epoch cache (KIP-101) maps each leader epoch to
the first offset written in it; truncation and divergence checks use it instead of the HW.
Producer state for idempotence (last sequences per producer id, Kafka's ProducerStateManager) is
derived from the log, so it survives leader changes exactly as Kafka rebuilds it from log segments.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections import deque

from sim.model import messages as m

__all__ = ["Log", "ProducerStateEntry", "ProducerStateManager"]

# Kafka keeps metadata of the last 5 batches per producer to answer duplicates (ProducerStateEntry).
NUM_BATCHES_TO_RETAIN = 5


class ProducerStateEntry:
    """Last sequences written by one producer id on one partition."""

    __slots__ = ("last_seq", "recent")

    def __init__(self) -> None:
        self.last_seq = -1
        # (sequence, base offset), newest last; the oldest falls off by itself
        self.recent: deque[tuple[int, int]] = deque(maxlen=NUM_BATCHES_TO_RETAIN)

    def add(self, seq: int, base: int) -> None:
        self.last_seq = seq
        self.recent.append((seq, base))

    def offset_of(self, seq: int) -> int | None:
        for s, base in self.recent:
            if s == seq:
                return base
        return None


class ProducerStateManager:
    """Idempotent producer state of one partition replica (ProducerStateManager): an entry per producer
    id with its last sequences, kept as batches are appended and rebuilt from the log."""

    __slots__ = ("entries",)

    def __init__(self) -> None:
        self.entries: dict[int, ProducerStateEntry] = {}

    def __contains__(self, pid: int) -> bool:
        return pid in self.entries

    def __getitem__(self, pid: int) -> ProducerStateEntry:
        return self.entries[pid]

    def __bool__(self) -> bool:
        return bool(self.entries)

    def check_sequence(self, pid: int, seq: int) -> tuple[int | None, str | None]:
        """ProducerAppendInfo.checkSequence for a batch of producer `pid` at sequence `seq`:
        (base offset of the duplicate it retries, None), (None, error), or (None, None) to append."""
        entries = self.entries
        entry = entries.get(pid)
        if entry is not None:
            if seq <= entry.last_seq:
                # Idempotence: a retry of a batch already in the log is not appended again.
                base = entry.offset_of(seq)
                if base is None:
                    return None, m.OUT_OF_ORDER_SEQUENCE_NUMBER
                return base, None
            if seq != entry.last_seq + 1:
                return None, m.OUT_OF_ORDER_SEQUENCE_NUMBER
        elif seq != 0:
            # (3.x/4.0): a producer the partition has no state for may start at any sequence, but a
            # new epoch of a producer it knows must start at 0. The model gives each epoch its own
            # producer id (see Producer._bump_epoch), so look for an older epoch of the same producer.
            from sim.model.producer import EPOCH_STRIDE
            older = pid - EPOCH_STRIDE
            while older >= 0 and older not in entries:
                older -= EPOCH_STRIDE
            if older >= 0:
                return None, m.OUT_OF_ORDER_SEQUENCE_NUMBER
        return None, None


class Log:
    """The batches of one partition replica, on its broker's disk (survives a process crash)."""

    __slots__ = ("base", "count", "epoch", "batch_id", "pid", "seq", "nbytes", "leo", "hw",
                 "epoch_cache", "producer_state", "checkpointed_hw")

    def __init__(self) -> None:
        # typed buffers: compact, and not scanned by the cyclic GC
        self.base = array("q")
        self.count = array("q")
        self.epoch = array("i")  # same typecode as the recorder's leader_epoch column
        self.batch_id = array("q")
        self.pid = array("q")
        self.seq = array("q")
        self.nbytes = array("q")
        self.leo = 0  # log end offset: the next offset to be written
        self.hw = 0  # high watermark (in memory; see checkpointed_hw)
        self.checkpointed_hw = 0  # replication-offset-checkpoint file, written periodically
        self.epoch_cache: list[tuple[int, int]] = []  # (leader epoch, start offset), ascending
        self.producer_state = ProducerStateManager()

    # --- leader epochs (KIP-101 / KIP-279) ---------------------------------------------------
    @property
    def latest_epoch(self) -> int:
        return self.epoch_cache[-1][0] if self.epoch_cache else -1

    def assign_epoch_start_offset(self, epoch: int, start_offset: int) -> None:
        """Record that `epoch` starts at `start_offset` (LeaderEpochFileCache.assign)."""
        if self.epoch_cache and epoch <= self.epoch_cache[-1][0]:
            return
        self.epoch_cache.append((epoch, start_offset))

    def end_offset_for_epoch(self, epoch: int) -> tuple[int, int]:
        """(largest epoch <= `epoch`, its end offset): the OffsetsForLeaderEpoch answer.

        The end offset of an epoch is the start offset of the next epoch, or the LEO for the
        latest epoch. Unknown (older than the cache): (-1, -1).
        """
        cache = self.epoch_cache
        if not cache:
            return (-1, -1)
        i = bisect_right(cache, (epoch, float("inf"))) - 1
        if i < 0:
            return (-1, -1)
        found = cache[i][0]
        end = self.leo if i == len(cache) - 1 else cache[i + 1][1]
        return (found, end)

    # --- appends ---------------------------------------------------------------------------
    def append(self, count: int, epoch: int, batch_id: int, pid: int, seq: int, nbytes: int) -> int:
        """Append one batch at the LEO (leader path) and return its base offset."""
        base = self.leo
        self.base.append(base)
        self.count.append(count)
        self.epoch.append(epoch)
        self.batch_id.append(batch_id)
        self.pid.append(pid)
        self.seq.append(seq)
        self.nbytes.append(nbytes)
        self.leo = base + count
        if not self.epoch_cache or epoch > self.epoch_cache[-1][0]:
            self.epoch_cache.append((epoch, base))
        if pid >= 0:
            producers = self.producer_state.entries
            entry = producers.get(pid)
            if entry is None:
                entry = producers[pid] = ProducerStateEntry()
            entry.add(seq, base)
        return base

    def append_fetched(self, data) -> None:
        """Append the batches of a fetch response (follower path); they start at our LEO."""
        base, count, epoch, pid, seq = data.base, data.count, data.epoch, data.pid, data.seq
        self.base.extend(base)
        self.count.extend(count)
        self.epoch.extend(epoch)
        self.batch_id.extend(data.batch_id)
        self.pid.extend(pid)
        self.seq.extend(seq)
        self.nbytes.extend(data.nbytes)
        self.leo = base[-1] + count[-1]
        cache = self.epoch_cache
        if not cache or epoch[-1] > cache[-1][0]:  # epochs never decrease along a log
            for i in range(len(base)):
                e = epoch[i]
                if not cache or e > cache[-1][0]:
                    cache.append((e, base[i]))
        producers = self.producer_state.entries
        for p, s, b in zip(pid, seq, base):
            if p >= 0:
                entry = producers.get(p)
                if entry is None:
                    entry = producers[p] = ProducerStateEntry()
                entry.last_seq = s  # ProducerStateEntry.add, inlined: this loop is hot
                entry.recent.append((s, b))

    # --- reads -----------------------------------------------------------------------------
    def read_range(self, offset: int, upto: int, max_bytes: int) -> tuple[int, int]:
        """Batch index range [i, j) from `offset` below `upto`, at most `max_bytes` (at least one batch)."""
        i = bisect_left(self.base, offset)
        j_limit = bisect_left(self.base, upto, lo=i)
        if j_limit <= i:
            return i, i
        nbytes = self.nbytes
        total = nbytes[i]
        j = i + 1
        while j < j_limit and total + nbytes[j] <= max_bytes:
            total += nbytes[j]
            j += 1
        return i, j

    # --- truncation ------------------------------------------------------------------------
    def truncate_to(self, offset: int) -> int:
        """Remove every batch at or beyond `offset`; returns the number of records removed."""
        if offset >= self.leo:
            # No records to cut, but epochs starting at or past `offset` are still dropped.
            self.epoch_cache = [e for e in self.epoch_cache if e[1] < offset]
            return 0
        i = bisect_left(self.base, offset)
        # A batch straddling `offset` cannot stay half-written: drop it whole.
        if i > 0 and self.base[i - 1] + self.count[i - 1] > offset:
            i -= 1
        removed = self.leo - (self.base[i] if i < len(self.base) else self.leo)
        for col in (self.base, self.count, self.epoch, self.batch_id, self.pid, self.seq, self.nbytes):
            del col[i:]
        self.leo = self.base[-1] + self.count[-1] if self.base else 0
        self.hw = min(self.hw, self.leo)
        # LeaderEpochFileCache.truncateFromEnd: drop epochs that start at or beyond the new LEO.
        self.epoch_cache = [e for e in self.epoch_cache if e[1] < self.leo]
        self.rebuild_producer_state()
        return removed

    def rebuild_producer_state(self) -> None:
        """Rebuild idempotence state by scanning the log tail (as on recovery or truncation)."""
        known = self.producer_state.entries
        if not known:
            return  # no idempotent batch was ever appended: nothing to find (and no full scan)
        producers: dict[int, ProducerStateEntry] = {}
        pids, seqs, bases = self.pid, self.seq, self.base
        need: dict[int, int] = {}
        for i in range(len(pids) - 1, -1, -1):
            p = pids[i]
            if p < 0:
                continue
            n = need.get(p, 0)
            if n >= NUM_BATCHES_TO_RETAIN:
                continue
            need[p] = n + 1
            entry = producers.get(p)
            if entry is None:
                entry = producers[p] = ProducerStateEntry()
                entry.last_seq = seqs[i]
            entry.recent.appendleft((seqs[i], bases[i]))
            if len(need) == len(known) and all(v >= NUM_BATCHES_TO_RETAIN for v in need.values()):
                break
        self.producer_state.entries = producers
