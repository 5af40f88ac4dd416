"""The follower side of replication: one ReplicaFetcher per leader broker (ReplicaFetcherThread).
The leader side (fetch sessions, KIP-227, and parked fetches) is `sim.model.fetch_session`.

A fetcher owns its state (partitions fetched, the request in flight, its session, back-off and
partitions delayed after an error) and reaches its broker only through `FetcherHost`, the few
things a fetcher thread needs of ReplicaManager: the partitions, ids, the network and the disk.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from sim.model import messages as m

if TYPE_CHECKING:
    import simpy

    from sim.model.connection import Connection
    from sim.model.disk import Disk
    from sim.model.network import Network
    from sim.model.partition import Partition
    from sim.model.recorder import Recorder
    from sim.model.timeouts import TimeoutQueue
    from sim.scenario.cluster import ClusterConfig

__all__ = ["ReplicaFetcher", "FetcherHost"]


class FetcherHost(Protocol):
    """What a ReplicaFetcher needs of its broker."""

    env: "simpy.Environment"
    config: "ClusterConfig"
    network: "Network"
    recorder: "Recorder"
    broker_id: int
    incarnation: int
    alive: bool
    replicas: dict[int, "Partition"]
    fetch_timeouts: "TimeoutQueue"  # request.timeout of fetches, shared by the broker's fetchers
    disk: "Disk"  # fetched batches are written through it

    def schedule(self, delay: float, callback, *args) -> None: ...

    def next_request_id(self) -> int: ...

    def next_session_id(self) -> int: ...

    def broker_endpoint(self, broker_id: int) -> object: ...

    def truncate_on_divergence(self, r: "Partition", leader_epoch: int, leader_end_offset: int) -> None: ...

    def connection_to(self, broker_id: int) -> "Connection": ...


class ReplicaFetcher:
    """Fetches all partitions this broker follows from one leader broker (ReplicaFetcherThread)."""

    def __init__(self, broker: "FetcherHost", leader_id: int):
        self.broker = broker
        self.leader_id = leader_id
        self.leader = broker.broker_endpoint(leader_id)  # the network address of the broker it fetches from
        self.partitions: set[int] = set()
        self.in_flight: m.FetchRequest | None = None
        self.backing_off = False
        self.session_id = 0  # 0: no session, the next fetch is a full one
        self.changed: set[int] = set()  # partitions whose fetch state moved since the last request
        self.delayed: set[int] = set()  # partitions sitting out replica.fetch.backoff.ms after an error

    def add_partition(self, p: int) -> None:
        self.delayed.discard(p)
        self.partitions.add(p)
        self.session_id = 0

    def remove_partition(self, p: int) -> None:
        self.delayed.discard(p)
        if p in self.partitions:
            self.partitions.discard(p)
            self.session_id = 0

    def delay_partition(self, p: int) -> None:
        """AbstractFetcherThread.delayPartitions: a partition whose fetch returned an error sits out
        replica.fetch.backoff.ms while the others keep fetching."""
        self.partitions.discard(p)
        self.delayed.add(p)
        self.session_id = 0
        self.broker.schedule(self.broker.config.replica_fetch_backoff_ms, self._undelay_partition, p)

    def _undelay_partition(self, p: int) -> None:
        if p not in self.delayed:
            return
        self.delayed.discard(p)
        r = self.broker.replicas.get(p)
        if r is not None and not r.is_leader and r.leader_id == self.leader_id:
            self.add_partition(p)
            self.maybe_fetch()

    def maybe_fetch(self) -> None:
        """Send the next fetch unless one is in flight or we are backing off."""
        broker = self.broker
        if self.in_flight is not None or self.backing_off or not self.partitions or not broker.alive:
            return
        if not broker.connection_to(self.leader_id).when_ready(self.maybe_fetch):
            return  # the connection timed out: a new one first (a handshake, sim/model/connection.py)
        full = self.session_id == 0
        if full:
            self.session_id = broker.next_session_id()
            ids = sorted(self.partitions)
        else:
            ids = sorted(self.changed & self.partitions) if self.changed else ()
        self.changed = set()
        replicas = broker.replicas
        parts = []
        # log.truncation: high_watermark (before KIP-101, 0.11): fetches carry no last fetched epoch,
        # so the leader checks nothing but the offset (out of range: truncate to its log end offset,
        # ReplicaFetcherThread.handleOffsetOutOfRange in 0.10); the follower already truncated to its HW.
        epochs = broker.config.log_truncation == "leader_epoch"
        for p in ids:
            r = replicas[p]
            log = r.log
            parts.append(m.PartitionFetch(p, log.leo, log.latest_epoch if epochs else -1, r.leader_epoch))
        cfg = broker.config
        req = m.FetchRequest(broker, broker.next_request_id(), broker.broker_id, cfg.replica_fetch_wait_max_ms,
                             cfg.replica_fetch_response_max_bytes, cfg.replica_fetch_max_bytes, parts,
                             self.session_id, full, broker.incarnation)
        self.in_flight = req
        broker.fetch_timeouts.add(req)
        broker.network.send(broker, self.leader, req, 64 + 16 * len(parts))

    def back_off(self) -> None:
        """replica.fetch.backoff.ms after an error, then try again."""
        if self.backing_off:
            return
        self.backing_off = True
        self.broker.schedule(self.broker.config.replica_fetch_backoff_ms, self._end_back_off)

    def _end_back_off(self) -> None:
        self.backing_off = False
        self.maybe_fetch()

    def on_response(self, resp: m.FetchResponse) -> None:
        """Apply a fetch response: truncate on divergence, append batches, learn the HW."""
        if self.in_flight is None or resp.request_id != self.in_flight.request_id:
            return
        self.broker.fetch_timeouts.done(self.in_flight)
        self.in_flight = None
        broker = self.broker
        now = broker.env.now
        if resp.session_error:
            self.session_id = 0  # the leader lost our session (it restarted): start a new one
            self.maybe_fetch()
            return
        for pd in resp.partitions:
            r = broker.replicas.get(pd.partition)
            if r is None or r.is_leader or r.leader_id != self.leader_id or pd.partition not in self.partitions:
                continue
            log = r.log
            if pd.error != m.NONE:
                self.delay_partition(pd.partition)
                continue
            if pd.diverging_epoch is not None:
                broker.truncate_on_divergence(r, *pd.diverging_epoch)
                self.changed.add(pd.partition)
                continue
            if pd.base:
                if pd.base[0] != log.leo:
                    continue  # stale response; the next fetch resynchronises
                broker.disk.append_fetched(log, pd)
                self.changed.add(pd.partition)
                broker.recorder.appended_many(now, broker.broker_id, pd.partition, pd.base, pd.batch_id, pd.epoch)
            # The follower's HW: the leader's, capped by what it has (one fetch round late).
            new_hw = min(pd.high_watermark, log.leo)
            if new_hw > log.hw:
                log.hw = new_hw
        self.maybe_fetch()

    def on_failure(self) -> None:
        """Connection reset or request timeout: back off and retry with a new session."""
        if self.in_flight is not None:
            self.broker.fetch_timeouts.done(self.in_flight)
            self.in_flight = None
        self.session_id = 0
        self.back_off()
