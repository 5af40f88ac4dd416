"""The leader side of fetching (KafkaApis.handleFetchRequest, ReplicaManager.fetchMessages):
followers' incremental fetch sessions (KIP-227, kafka.server.FetchSession.scala: FetchSession,
FetchSessionCache, FetchManager) and the fetch purgatory (kafka.server.DelayedFetch).

A broker holds one `FetchManager` per incarnation (a crash loses its sessions and parked
fetches). It answers follower and consumer fetches from the broker's partitions, parks a fetch
with nothing to return up to its max wait, and completes parked fetches when a partition changes
(`mark_dirty`: new data or a new HW for the followers' sessions; `wake_consumers`: the HW moved
or leadership was lost). It reaches its broker only through `FetchServingHost`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from sim.model import messages as m

if TYPE_CHECKING:
    import simpy

    from sim.model.log import Log
    from sim.model.network import Network
    from sim.model.partition import Partition

__all__ = ["DelayedFetch", "FetchManager", "FetchServingHost", "FetchSession"]


class FetchServingHost(Protocol):
    """What the leader side of fetching needs of its broker (ReplicaManager's state)."""

    env: simpy.Environment
    network: Network
    broker_id: int
    alive: bool
    replicas: dict[int, Partition]
    out_of_isr: set[int]  # partitions led here whose ISR lacks some replica
    leader_quota: object  # KIP-73 leader.replication.throttled.rate (None: no throttle)
    throttled_partitions: set[int]
    hw_before_follower_update: bool  # log.truncation: high_watermark (pre-0.11 fetch responses)

    def schedule(self, delay: float, callback, *args) -> None: ...

    def wall_ms(self) -> float: ...


class DelayedFetch:
    """A fetch with no data to return, held up to max wait (kafka.server.DelayedFetch)."""

    __slots__ = ("request", "done")

    def __init__(self, request: m.FetchRequest):
        self.request, self.done = request, False


class FetchSession:
    """The leader's side of one follower's incremental fetch session (KIP-227 FetchSession).

    Partitions the follower did not list are unchanged on its side; the leader adds those that
    changed on its side (new data or a new HW) from `dirty`, so a fetch costs work in proportion
    to what moved, not to the number of partitions followed.
    """

    __slots__ = ("session_id", "partitions", "dirty", "parked")

    def __init__(self, session_id: int, partitions: set[int]):
        self.session_id = session_id
        self.partitions = partitions
        self.dirty: set[int] = set()
        self.parked: DelayedFetch | None = None


class FetchManager:
    """Serves fetches on a leader: the follower fetch sessions (FetchManager with its
    FetchSessionCache, one session per follower broker here) and the parked fetches (DelayedFetch)."""

    __slots__ = ("broker", "sessions")

    def __init__(self, broker: FetchServingHost):
        self.broker = broker
        self.sessions: dict[int, FetchSession] = {}  # follower broker id -> its fetch session

    def fetch_parked(self, follower: int, p: int) -> bool:
        """Is `follower` fetching partition `p` right now (its session's fetch parked here)?"""
        s = self.sessions.get(follower)
        return s is not None and s.parked is not None and p in s.partitions

    def handle_fetch(self, req: m.FetchRequest) -> None:
        """Serve a follower or consumer fetch; park it if there is nothing to return."""
        broker = self.broker
        if req.replica_id >= 0:
            self.handle_follower_fetch(req)
            return
        results, has_data, budget = self._read_for_fetch(req)
        if has_data or req.max_wait_ms <= 0:
            self._respond_fetch(req, results, budget)
            return
        parked = DelayedFetch(req)
        for pf in req.partitions:
            r = broker.replicas.get(pf.partition)
            if r is not None and r.is_leader:
                lst = r.parked_consumers
                if len(lst) > 16:  # fetches completed through another partition linger here
                    lst[:] = [f for f in lst if not f.done]
                lst.append(parked)
        self._expire_parked_later(parked)

    def _expire_parked_later(self, parked: DelayedFetch) -> None:
        self.broker.schedule(parked.request.max_wait_ms, self._complete_fetch, parked)

    def handle_follower_fetch(self, req: m.FetchRequest) -> None:
        """A follower fetch within its incremental fetch session (KIP-227)."""
        broker = self.broker
        follower = req.replica_id
        if req.full:
            session = FetchSession(req.session_id, {pf.partition for pf in req.partitions})
            old = self.sessions.get(follower)
            if old is not None and old.parked is not None:
                old.parked.done = True
            self.sessions[follower] = session
        else:
            session = self.sessions.get(follower)
            if session is None or session.session_id != req.session_id:
                broker.network.send(broker, req.client, m.FetchResponse(req.request_id, broker.broker_id, [], session_error=True))
                return
        # Partitions where this follower is outside the ISR: reconsider them on every fetch, as
        # Kafka does, even when the follower lists nothing new (it may be caught up and idle).
        for p in (session.partitions & broker.out_of_isr) if broker.out_of_isr else ():
            r = broker.replicas.get(p)
            if r is not None and r.is_leader and follower in r.remote and follower not in r.isr:
                r.maybe_expand_isr(fetching=follower)
        results, has_data, budget = self._read_session(req, session)
        if has_data or req.max_wait_ms <= 0:
            self._respond_fetch(req, results, budget)
            return
        parked = DelayedFetch(req)
        session.parked = parked
        self._expire_parked_later(parked)

    def _read_session(self, req: m.FetchRequest, session: FetchSession,
                      serve_listed: bool = True) -> tuple[list, bool, int]:
        """Read for the listed partitions (unless they were served already), then for those that
        changed on our side; also returns the response byte budget left."""
        broker = self.broker
        dirty, session.dirty = session.dirty, set()
        if serve_listed and req.partitions:
            results, has_data, budget = self._read_for_fetch(req)
            listed = {pf.partition for pf in req.partitions}
        else:  # a parked fetch completing, or a follower with nothing new to say
            results, has_data, budget, listed = [], False, req.max_bytes, ()
        follower = req.replica_id
        partitions = session.partitions
        for p in (sorted(dirty) if len(dirty) > 1 else dirty):
            if p in listed or p not in partitions:
                continue
            r = broker.replicas.get(p)
            if r is None or not r.is_leader:
                results.append(m.PartitionData(p, m.NOT_LEADER_OR_FOLLOWER))
                has_data = True
                continue
            log = r.log
            rr = r.remote.get(follower)
            fetch_offset = rr.leo if rr is not None else log.leo
            pd = self._read_partition(p, log, fetch_offset, log.leo, req, budget)
            if broker.leader_quota is not None and p in broker.throttled_partitions:
                pd = self._throttle(r, follower, pd)
            if pd.base:
                budget -= sum(pd.nbytes)
                has_data = True
            results.append(pd)
        # Marks made while serving this very request are already answered; what a full
        # response could not carry (byte limits) stays dirty for the next one.
        if listed and session.dirty:
            session.dirty -= listed
        replicas = broker.replicas
        for pd in results:
            if pd.error != m.NONE or pd.diverging_epoch is not None:
                continue
            leo = replicas[pd.partition].log.leo
            if pd.base:
                served = pd.base[-1] + pd.count[-1]
            else:
                rr = replicas[pd.partition].remote.get(follower)
                served = rr.leo if rr is not None else leo
            if served < leo:
                session.dirty.add(pd.partition)
        return results, has_data, budget

    def _read_partition(self, p: int, log: Log, fetch_offset: int, upto: int, req: m.FetchRequest,
                        budget: int) -> m.PartitionData:
        """One partition's answer: the HW, the LEO and the batches from `fetch_offset` below `upto`
        within the request's byte limits (at least one batch when any is due)."""
        pd = m.PartitionData(p, m.NONE, log.hw)
        if budget > 0 and 0 <= fetch_offset < upto:
            i, j = log.read_range(fetch_offset, upto, min(req.partition_max_bytes, budget))
            if j > i:
                self._fill(pd, log, i, j)
        return pd

    @staticmethod
    def _fill(pd: m.PartitionData, log: Log, i: int, j: int) -> None:
        pd.base = log.base[i:j]
        pd.count = log.count[i:j]
        pd.epoch = log.epoch[i:j]
        pd.batch_id = log.batch_id[i:j]
        pd.pid = log.pid[i:j]
        pd.seq = log.seq[i:j]
        pd.nbytes = log.nbytes[i:j]

    def _read_for_fetch(self, req: m.FetchRequest) -> tuple[list, bool, int]:
        """Answer each listed partition; also returns the response byte budget left."""
        broker = self.broker
        results = []
        has_data = False
        budget = req.max_bytes
        follower = req.replica_id
        for pf in req.partitions:
            p = pf.partition
            r = broker.replicas.get(p)
            if r is None or not r.is_leader:
                results.append(m.PartitionData(p, m.NOT_LEADER_OR_FOLLOWER))
                has_data = True
                continue
            if pf.current_leader_epoch != r.leader_epoch:
                err = m.FENCED_LEADER_EPOCH if pf.current_leader_epoch < r.leader_epoch else m.UNKNOWN_LEADER_EPOCH
                results.append(m.PartitionData(p, err))
                has_data = True
                continue
            log = r.log
            if follower >= 0:
                if pf.last_fetched_epoch == r.leader_epoch and pf.fetch_offset <= log.leo:
                    pass  # the follower is in our current epoch: nothing can have diverged
                elif pf.last_fetched_epoch >= 0:
                    # KIP-595 style divergence check: does our log agree with the follower's last epoch?
                    epoch, end = log.end_offset_for_epoch(pf.last_fetched_epoch)
                    if epoch != pf.last_fetched_epoch or end < pf.fetch_offset:
                        if epoch < 0 and log.epoch_cache:
                            end = log.epoch_cache[0][1]
                        elif epoch < 0:
                            end = 0
                        results.append(m.PartitionData(p, m.NONE, log.hw, diverging_epoch=(epoch, end)))
                        has_data = True
                        continue
                elif pf.fetch_offset > 0 and pf.fetch_offset > log.leo:
                    results.append(m.PartitionData(p, m.NONE, log.hw, diverging_epoch=(-1, log.leo)))
                    has_data = True
                    continue
                hw_read = log.hw
                # ReplicaManager.readFromLog: fetchTimeMs = time.milliseconds (the wall clock)
                r.update_follower_fetch_state(follower, pf.fetch_offset, broker.wall_ms(), req.replica_epoch)
                upto = log.leo
            else:
                upto = log.hw  # consumers read only committed data (read_uncommitted still stops at HW)
                fe = pf.last_fetched_epoch
                if fe >= 0 and not (fe == r.leader_epoch and pf.fetch_offset <= log.leo):
                    # KIP-320 (Partition.readRecords, for any fetcher): the epoch of the records the
                    # consumer read last must end at or after its fetch offset here, else the answer is
                    # that epoch's end (a diverging epoch, no data); an epoch older than our log's: out of range
                    epoch, end = log.end_offset_for_epoch(fe)
                    if epoch < 0:
                        results.append(m.PartitionData(p, m.OFFSET_OUT_OF_RANGE, log.hw))
                        has_data = True
                        continue
                    if epoch < fe or end < pf.fetch_offset:
                        results.append(m.PartitionData(p, m.NONE, log.hw, diverging_epoch=(epoch, end)))
                        has_data = True
                        continue
                if pf.fetch_offset > log.leo:
                    results.append(m.PartitionData(p, m.OFFSET_OUT_OF_RANGE, log.hw))
                    has_data = True
                    continue
            pd = self._read_partition(p, log, pf.fetch_offset, upto, req, budget)
            if follower >= 0 and broker.leader_quota is not None and p in broker.throttled_partitions:
                pd = self._throttle(r, follower, pd)
            if follower >= 0 and broker.hw_before_follower_update:
                # Before 0.11 (log.truncation: high_watermark) the leader read the log, HW included,
                # before recording the follower's new offset (ReplicaManager.fetchMessages in 0.10:
                # readFromLocalLog, then updateFollowerLogReadResults), so a follower learnt the HW its
                # fetch advanced one fetch round later: the stale HW of KIP-101 scenario 1.
                pd.high_watermark = hw_read
            if pd.base:
                budget -= sum(pd.nbytes)
                has_data = True
            results.append(pd)
        return results, has_data, budget

    def _throttle(self, r: Partition, follower: int, pd: m.PartitionData) -> m.PartitionData:
        """KIP-73 on the leader: a throttled partition's data for a follower outside the ISR is left out
        while leader.replication.throttled.rate is exceeded (ReplicaManager.shouldLeaderThrottle); what
        is sent of a throttled partition counts against the quota (KafkaApis: quotas.leader.record)."""
        broker = self.broker
        now = broker.env.now
        if follower not in r.isr and broker.leader_quota.exceeded(now):
            return m.PartitionData(pd.partition, m.NONE, pd.high_watermark)
        if pd.base:
            broker.leader_quota.record(now, sum(pd.nbytes))
        return pd

    def _respond_fetch(self, req: m.FetchRequest, results: list, budget: int) -> None:
        """Send what was read; `budget` is what the reads left of req.max_bytes."""
        broker = self.broker
        nbytes = req.max_bytes - budget + 32 * len(results)
        broker.network.send(broker, req.client, m.FetchResponse(req.request_id, broker.broker_id, results), nbytes)

    def _complete_fetch(self, parked: DelayedFetch) -> None:
        broker = self.broker
        if parked.done or not broker.alive:
            return
        parked.done = True
        req = parked.request
        if req.replica_id >= 0:
            session = self.sessions.get(req.replica_id)
            if session is None or session.session_id != req.session_id:
                return  # superseded by a newer session of the same follower
            session.parked = None
            # the listed partitions were processed on arrival; now serve whatever moved since
            results, _, budget = self._read_session(req, session, serve_listed=False)
        else:
            results, _, budget = self._read_for_fetch(req)
        self._respond_fetch(req, results, budget)

    def mark_dirty(self, r: Partition, wake: bool) -> None:
        """Partition `r` changed on the leader: tell each follower's session (and wake it on new data)."""
        p = r.spec.index
        sessions = self.sessions
        for follower in r.remote:
            s = sessions.get(follower)
            if s is not None and p in s.partitions:
                s.dirty.add(p)
                if wake and s.parked is not None:
                    self._complete_fetch(s.parked)

    def wake_consumers(self, r: Partition) -> None:
        """Complete the consumer fetches parked on `r` (its HW moved, or it lost leadership)."""
        if r.parked_consumers:
            parked, r.parked_consumers = r.parked_consumers, []
            for f in parked:
                self._complete_fetch(f)

