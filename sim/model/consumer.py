"""A KafkaConsumer in a consumer group: fetches its partitions from their leaders up to the HW.

One fetch request per leader broker covering the assigned partitions it leads, long-polled up to
fetch.max.wait.ms; leader changes are followed through metadata refreshes. When
enable.auto.commit is on, positions are committed every auto.commit.interval.ms to the group's
committed offsets, a store owned by the cluster that outlives a consumer's memory (it stands in
for the group coordinator's __consumer_offsets; a commit costs no round trip here). A consumer can
crash and restart: it then resumes from its committed offsets, or where auto.offset.reset says when
it has none (earliest: offset 0, there is no retention; latest: the partition's HW, learned from a
fetch at no offset answered at once, standing in for ListOffsets). The group protocol
(rebalances, session timeouts) is not modelled: partitions are assigned once, range-style.

Log truncation (KIP-320): a position carries the leader epoch of the last batch read (committed
offsets carry it too, OffsetAndMetadata.leaderEpoch), and every fetch sends it as lastFetchedEpoch.
The leader answers a position past the end of that epoch in its own log with the epoch's end (a
diverging epoch, Partition.readRecords), and the consumer seeks there, to the first offset known
to diverge, as SubscriptionState.maybeCompleteValidation does with the OffsetsForLeaderEpoch
answer after a leader change; the Java client spends one more round trip on that request before
it fetches again. auto.offset.reset applies only to an offset really out of range: no epoch to
validate against, or an epoch older than the leader's log.

poll(): the application is a poll loop with no processing time. A fetch's batches are handed to
it (the ``consumed`` facts) when the fetch arrives, as the Java client's successive poll() calls
return them, max.poll.records at a time, within that instant; so auto-commit, which runs inside
poll() (ConsumerCoordinator.maybeAutoCommitOffsetsAsync), commits the positions of records already
returned, never of records fetched and still buffered. Without processing time max.poll.records
changes nothing, so it is no setting here.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

import numpy as np
import simpy

from sim.model import messages as m
from sim.model.connection import Connection
from sim.model.group import GroupMembership, committed_epochs
from sim.model.metadata import TIME_EPS, MetadataClient
from sim.model.node import Node
from sim.model.timeouts import TimeoutQueue

if TYPE_CHECKING:
    from sim.model.network import Network
    from sim.model.recorder import Recorder
    from sim.scenario.clients import ConsumerConfig

__all__ = ["Consumer"]


class Consumer(Node):
    """One consumer instance of a group."""

    base_name = "consumer"

    def __init__(self, env: simpy.Environment, index: int, name: str, config: "ConsumerConfig",
                 partitions: list[int], brokers: list, network: "Network", recorder: "Recorder",
                 rng: np.random.Generator, parent_scope: str = "cluster",
                 group_offsets: dict[str, dict[int, int]] | None = None, coordinator=None,
                 topic_partitions: list[int] | None = None):
        self.init_node(env, f"{parent_scope}.{name}")
        self.index = index
        self.name = name
        self.config = config
        self.partitions = partitions  # assigned partitions (global indices)
        self.brokers = brokers
        self.network = network
        self.recorder = recorder
        self.rng = rng
        # The group's committed offsets (partition -> next offset to read), in a store of every
        # group's offsets that the cluster owns (__consumer_offsets): not this consumer's memory.
        store = {} if group_offsets is None else group_offsets
        self.committed: dict[int, int] = store.setdefault(config.group, {})
        self.committed_epochs = committed_epochs(store, config.group)  # their leader epochs (KIP-320)
        # next offset to read per partition; None: not known yet (auto.offset.reset=latest, looked up)
        self.positions: dict[int, int | None] = dict.fromkeys(partitions, 0)
        # the leader epoch of the last batch read below each position (FetchPosition.offsetEpoch); -1: none
        self.position_epochs: dict[int, int] = {}
        self.in_flight: dict[int, m.FetchRequest] = {}  # broker id -> fetch
        self.backoff_until = [0.0] * len(brokers)
        self.request_ids = 0  # never reset: answers to a previous incarnation's requests stay stale
        self.metadata = MetadataClient(env, self, network, brokers, partitions, int(rng.integers(len(brokers))),
                                       config.retry_backoff_ms, config.request_timeout_ms, self.fetch_all)
        self.timeouts = TimeoutQueue(env, config.request_timeout_ms + config.fetch_max_wait_ms, self._timed_out)
        self.processes: list[simpy.Process] = []
        self.connections: dict[int, Connection] = {}  # broker id -> this process's connection to it
        self._fetchers = [partial(self.maybe_fetch, b) for b in range(len(brokers))]  # one callable per broker
        # group.protocol classic: the group assigns the partitions (sim/model/group.py); None: assigned once
        self.membership = None
        if coordinator is not None:
            self.membership = GroupMembership(self, coordinator, list(topic_partitions))
            self.metadata.partitions = self.membership.topic_partitions  # the subscribed topic's metadata

    def start(self) -> None:
        if self.membership is not None:
            self.membership.start()
            if self.config.enable_auto_commit:
                self.processes.append(self.env.process(self.commit_offsets()))
            return
        self._initial_positions()
        if self.partitions:
            self.metadata.request()
            if self.config.enable_auto_commit:
                self.processes.append(self.env.process(self.commit_offsets()))

    def _initial_positions(self) -> None:
        """Committed offsets first; else auto.offset.reset. At the start of a run every log is
        empty, so earliest and latest are both offset 0 and need no lookup."""
        latest = None if self.env.now > 0 else 0
        self.position_epochs = {}
        for p in self.partitions:
            if p in self.committed:
                self.positions[p] = self.committed[p]
                self.position_epochs[p] = self.committed_epochs.get(p, -1)  # validated by the first fetch
            else:
                self.positions[p] = 0 if self.config.auto_offset_reset == "earliest" else latest

    def crash(self) -> None:
        """Process crash: positions, fetches in flight and metadata are lost; the group's committed
        offsets are not (they live with the group coordinator)."""
        if not self.alive:
            return
        self.mark_crashed()
        for proc in self.processes:
            if proc.is_alive:
                proc.interrupt("crash")
        self.processes = []
        self.in_flight = {}
        self.connections = {}
        self.timeouts.clear()
        self.metadata.reset()  # the client's metadata cache and its request in flight are memory too
        self.positions = dict.fromkeys(self.partitions, None)
        self.position_epochs = {}
        if self.membership is not None:
            self.membership.reset()  # the member id was memory: the restarted process joins as a new member
            self.partitions[:] = []
            self.positions = {}
        self.recorder.event(self.env.now, "consumer_crash", -1, -1, 0, self.name, client=self.name)
        self.network.reset_connections(self)

    def restart(self) -> None:
        """Start a new incarnation: it resumes from the committed offsets (or auto.offset.reset)."""
        if self.alive:
            return
        self.mark_up()
        self.backoff_until = [0.0] * len(self.brokers)
        self.recorder.event(self.env.now, "consumer_restart", -1, -1, 0, self.name, client=self.name)
        self.start()

    def broker_added(self) -> None:
        """A broker joined the cluster (add_broker): the consumer can fetch from it once it leads something."""
        self.backoff_until.append(0.0)
        self._fetchers.append(partial(self.maybe_fetch, len(self._fetchers)))

    def fetch_all(self) -> None:
        for broker in range(len(self.brokers)):
            self.maybe_fetch(broker)

    def maybe_fetch(self, broker: int) -> None:
        """Send a fetch to `broker` for the assigned partitions it leads, unless one is in flight."""
        if not self.alive or broker in self.in_flight or self.env.now + TIME_EPS < self.backoff_until[broker]:
            return
        if not self._connection(broker).when_ready(self._fetchers[broker]):
            return  # its fetch timed out: a new connection first (a handshake, sim/model/connection.py)
        parts = []
        lookup = False
        epochs = self.position_epochs
        for p in self.partitions:
            leader, epoch = self.metadata.leaders.get(p, (-1, -1))
            if leader == broker:
                pos = self.positions[p]
                if pos is None:
                    lookup = True  # a fetch at no offset returns no data, only the HW (ListOffsets)
                    parts.append(m.PartitionFetch(p, -1, -1, epoch))
                else:  # KIP-320: the position's epoch, validated by the leader (lastFetchedEpoch)
                    parts.append(m.PartitionFetch(p, pos, epochs.get(p, -1), epoch))
        if not parts:
            return
        self.request_ids += 1
        cfg = self.config
        req = m.FetchRequest(self, self.request_ids, -1, 0.0 if lookup else cfg.fetch_max_wait_ms,
                             cfg.fetch_max_bytes, cfg.max_partition_fetch_bytes, parts)
        self.in_flight[broker] = req
        self.timeouts.add(req)
        self.network.send(self, self.brokers[broker], req, 32 * len(parts))

    def handle(self, msg) -> None:
        t = type(msg)
        if t is m.FetchResponse:
            self.on_fetch_response(msg)
        elif t is m.MetadataResponse:
            self.metadata.on_response(msg)
        elif self.membership is not None:
            self.membership.handle(msg)

    def on_fetch_response(self, resp: m.FetchResponse) -> None:
        req = self.in_flight.get(resp.broker)
        if req is None or req.request_id != resp.request_id:
            return
        del self.in_flight[resp.broker]
        self.timeouts.done(req)
        now = self.env.now
        refresh = False
        rec = self.recorder
        asked = {pf.partition: pf.fetch_offset for pf in req.partitions}
        epochs = self.position_epochs
        for pd in resp.partitions:
            p = pd.partition
            if p not in self.positions:
                continue  # revoked meanwhile
            pos = self.positions[p]
            if pd.error != m.NONE and pd.error != m.OFFSET_OUT_OF_RANGE:
                refresh = True
                continue
            if asked.get(p) != (-1 if pos is None else pos):
                continue  # the position moved since the request: an obsolete answer (FetchCollector)
            if pd.error == m.OFFSET_OUT_OF_RANGE:
                # auto.offset.reset: an offset really out of range (no epoch to validate it by, or
                # one older than the leader's log); a truncation the epochs show is handled below
                new = 0 if self.config.auto_offset_reset == "earliest" else pd.high_watermark
                rec.event(now, "consumer_offset_reset", resp.broker, p, new, f"{self.name} from {pos}",
                          client=self.name, from_offset=-1 if pos is None else pos, reason="offset out of range")
                self.positions[p] = new
                epochs.pop(p, None)
                continue
            if pos is None:  # auto.offset.reset=latest without a committed offset: start at the HW
                self.positions[p] = pd.high_watermark
                rec.event(now, "consumer_offset_reset", resp.broker, p, pd.high_watermark,
                          f"{self.name}: no committed offset, auto.offset.reset=latest", client=self.name,
                          reason="no committed offset")
                continue
            if pd.diverging_epoch is not None:
                epoch, end = pd.diverging_epoch
                if end < pos:
                    # SubscriptionState.maybeCompleteValidation: "Truncation detected ... resetting offset
                    # to the first offset known to diverge"; what we read from there on is gone
                    rec.event(now, "consumer_truncation_detected", resp.broker, p, end,
                              f"{self.name} from {pos} (epoch {epochs.get(p, -1)} ends at {end} as {epoch})",
                              client=self.name, from_offset=pos, leader_epoch=epoch, end_offset=end)
                    self.positions[p] = end
                epochs[p] = epoch  # validated: the next fetch goes on from here
                continue
            if not pd.base:
                continue
            bases, counts = pd.base, pd.count
            i = 0
            while i < len(bases) and bases[i] + counts[i] <= pos:
                i += 1  # wholly below our position (a batch the read began inside of): not returned again
            if i < len(bases):
                rec.consumed_many(now, self.index, p, bases[i:], pd.batch_id[i:])
            self.positions[p] = max(pos, bases[-1] + counts[-1])
            epochs[p] = pd.epoch[-1]
        if refresh:
            self.metadata.request()
        self.maybe_fetch(resp.broker)

    def _timed_out(self, req: m.FetchRequest) -> None:
        if self._paused is not None:  # the timeout wheel is no Node timer: a paused client acts on resume
            self._paused.append((self._timed_out, (req,)))
            return
        for broker, r in list(self.in_flight.items()):
            if r is req:
                del self.in_flight[broker]
                self._connection(broker).close()  # NetworkClient: a timed-out request closes the connection
                self._back_off(broker)

    def _connection(self, broker: int) -> Connection:
        """This process's connection to `broker` (fetches; metadata requests are not gated by it)."""
        conn = self.connections.get(broker)
        if conn is None:
            conn = self.connections[broker] = Connection(self, self.brokers[broker], self.network)
        return conn

    def connection_lost(self, peer) -> None:
        broker = getattr(peer, "broker_id", None)
        if broker is None:
            return
        self.metadata.connection_lost(broker)
        req = self.in_flight.pop(broker, None)
        if req is not None:
            self.timeouts.done(req)
            self._back_off(broker)

    def _back_off(self, broker: int) -> None:
        self.backoff_until[broker] = self.env.now + self.config.retry_backoff_ms
        self.metadata.request()
        self.schedule(self.config.retry_backoff_ms, self.maybe_fetch, broker)

    def commit_offsets(self):
        """Auto-commit the consumed positions every auto.commit.interval.ms."""
        try:
            while True:
                yield self.env.timeout(self.config.auto_commit_interval_ms)
                if self._paused is not None:  # frozen: one commit waits for the resume, in order
                    if (self.commit, ()) not in self._paused:
                        self._paused.append((self.commit, ()))
                else:
                    self.commit()
        except simpy.Interrupt:
            return

    def commit(self) -> None:
        """Commit the current positions (those known) to the group's committed offsets, each with the
        leader epoch of the last batch read below it (OffsetAndMetadata.leaderEpoch, KIP-320)."""
        known = {p: pos for p, pos in self.positions.items() if pos is not None}
        epochs = {p: self.position_epochs.get(p, -1) for p in known}
        if self.membership is not None:
            if not known:
                return
            error = self.membership.commit(known, epochs)
            if error != "NONE":
                self.recorder.event(self.env.now, "offset_commit_rejected", -1, -1, sum(known.values()),
                                    f"{self.name}: {error}", client=self.name, reason=error)
                return
            self.recorder.event(self.env.now, "offset_commit", -1, -1, sum(known.values()), self.name, client=self.name)
            return
        self.committed.update(known)
        self.committed_epochs.update(epochs)
        self.recorder.event(self.env.now, "offset_commit", -1, -1, sum(known.values()), self.name, client=self.name)

    # --- group.protocol classic (sim/model/group.py) ------------------------------------------
    def assign(self, partitions: list[int]) -> None:
        """The group gave this member `partitions`: start each at the committed offset (OffsetFetch),
        else where auto.offset.reset says."""
        self.partitions[:] = partitions
        self.positions = {}
        self.position_epochs = {}
        for p in partitions:
            if p in self.committed:
                self.positions[p] = self.committed[p]
                self.position_epochs[p] = self.committed_epochs.get(p, -1)  # validated by the first fetch
            else:
                self.positions[p] = 0 if self.config.auto_offset_reset == "earliest" else None
        self.recorder.event(self.env.now, "consumer_assigned", -1, -1, len(partitions),
                            f"{self.name}: {partitions}", client=self.name)
        self.metadata.request()
        self.fetch_all()

    def revoke(self) -> None:
        """Give up every partition (eager rebalance): fetches in flight are forgotten."""
        self.partitions[:] = []
        self.positions = {}
        self.position_epochs = {}
        self.in_flight = {}
        self.timeouts.clear()

    def pause(self) -> bool:
        """A stop-the-world pause (fault kind consumer_pause): see Node.pause; the auto-commit
        process and the fetch timeouts defer to the resume too, so nothing runs while frozen.
        A pause of a paused consumer extends the freeze to the later end (no second event)."""
        stopped = super().pause()
        if stopped:
            self.recorder.event(self.env.now, "consumer_pause", -1, -1, 0, self.name, client=self.name)
        return stopped

    def resume(self) -> bool:
        if self._paused is not None and self.pause_depth == 1:  # the last pause in effect ends: it runs again
            self.recorder.event(self.env.now, "consumer_resume", -1, -1, 0, self.name, client=self.name)
            if self.membership is not None:
                self.membership.on_resume()  # before the queue replays: records fetched meanwhile are dropped
        return super().resume()

    def finish(self) -> None:
        for proc in self.processes:
            if proc.is_alive:
                proc.interrupt("end")
