"""The controller (KRaft, or a ZooKeeper-era one): broker liveness, leader elections, ISR changes, the metadata log.

Brokers heartbeat every broker.heartbeat.interval.ms; one silent for broker.session.timeout.ms
is fenced: it leaves every ISR, and each partition it led gets a new leader, the first live ISR
member in assignment order, with a bumped leader epoch. `cluster.controller.mode` (kafkasim's own
key) decides what elections cost:

- kraft (the default): the elections waiting when the controller gets to them are made in one
  controller event and committed as one batch of metadata records, costing
  `controller.election.cost.ms` once (ReplicationControlManager.handleBrokerFenced ->
  generateLeaderAndIsrUpdates: every partition of the fenced broker in one call), so failover
  time does not grow with the number of partitions led by the failed broker.
- zookeeper (up to 3.9): elections run one at a time, `controller.election.cost.ms` each (Rao
  2015: ~5 ms per partition; KafkaController.onBrokerFailure -> PartitionStateMachine elects and
  writes each partition's new state to ZooKeeper), a broker is failed once
  zookeeper.session.timeout.ms passes without a heartbeat (its ephemeral znode expires), and the
  controller runs on a broker (broker 0, the first to create /controller). When that broker dies
  the controller goes with it: the others notice when its ZooKeeper session expires, the lowest
  live broker id becomes controller and first loads every partition's state from ZooKeeper
  (KafkaController.onControllerFailover: `controller.failover.cost.ms` x all partitions, Rao 2015:
  ~2 ms each) before it fences or elects anything. A `controller_outage` in this mode ends with
  the same load. Left out: a GC pause of the controller's broker does not move the controller.

With no live ISR member the partition goes offline unless
unclean.leader.election.enable picks any live replica. Changes are committed to a metadata log
that brokers long-poll (KRaft brokers fetch the metadata topic), after a commit linger of
controller.quorum.append.linger.ms. The controller quorum itself is one node: it can be paused
(a stop-the-world pause of the active controller) or lose its quorum for a while (`lose_quorum` /
`regain_quorum`: a Raft leader re-election), during which nothing reaches it and it neither
fences nor elects. A broker's controlled shutdown (wantShutDown) moves its leaderships away.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

import simpy

from sim.model import messages as m
from sim.model.node import Node

if TYPE_CHECKING:
    from sim.model.recorder import Recorder
    from sim.scenario.cluster import ClusterConfig
    from sim.model.partition import PartitionSpec
    from sim.model.network import Network

__all__ = ["Controller"]

# controller.quorum.append.linger.ms default (QuorumConfig.java)
APPEND_LINGER_MS = 25.0
METADATA_FETCH_WAIT_MS = 500.0


class BrokerRegistration:
    """The controller's view of one broker (ClusterControlManager / BrokerHeartbeatManager)."""

    __slots__ = ("broker_id", "broker_epoch", "fenced", "last_heartbeat_ms", "registration_offset",
                 "shutdown_offset")

    def __init__(self, broker_id: int):
        self.broker_id = broker_id
        self.broker_epoch = -1
        self.fenced = True
        self.last_heartbeat_ms = -1.0
        # metadata log offset just past the registration record: the broker is unfenced once it
        # has caught up to it (BrokerHeartbeatManager: currentMetadataOffset >= registerBrokerRecordOffset)
        self.registration_offset = 0
        self.shutdown_offset = -1  # in controlled shutdown: the log offset past its leadership moves


class Controller(Node):
    """The active KRaft controller (QuorumController + ReplicationControlManager)."""

    base_name = "controller"

    def __init__(self, env: simpy.Environment, config: "ClusterConfig", partitions: list["PartitionSpec"],
                 network: "Network", recorder: "Recorder", parent_scope: str = "cluster"):
        self.init_node(env, f"{parent_scope}.{self.base_name}")
        self.config = config
        self.partitions = partitions
        self.network = network
        self.recorder = recorder
        self.brokers_by_id: dict = {}  # wired by the cluster: broker id -> Broker endpoint
        self.registrations = {b: BrokerRegistration(b) for b in range(config.brokers)}
        self.state: dict[int, m.PartitionRecord] = {}
        self.log: list = []  # committed metadata records
        self._uncommitted: list = []
        self._after_commit: list = []  # responses held until their records commit
        self._commit_scheduled = False
        self._parked: dict[int, tuple] = {}  # broker id -> (broker epoch, offset) of a parked metadata fetch
        self._elections: deque[int] = deque()
        self._election_wakeup: simpy.Event | None = None
        self._queued: set[int] = set()
        # KIP-966 Eligible Leader Replicas, per partition (None: ELR off). Kept by the controller only:
        # brokers never act on it (in Kafka it is in the PartitionRecord, for the controller's elections).
        self.elr: dict[int, tuple] | None = {} if config.elr_enabled else None
        self._available: simpy.Event | None = None  # while the quorum has no leader: fires on its return
        self.zookeeper = config.controller_mode == "zookeeper"
        # ZooKeeper mode: the broker the controller runs on (the first to create /controller)
        self.host_id: int | None = 0 if self.zookeeper else None
        self._loading = False  # ZooKeeper mode: a new controller is loading the metadata (onControllerFailover)
        # Preferred-leader rebalancing (auto.leader.rebalance.enable): partitions not led by their first
        # replica (ReplicationControlManager.imbalancedPartitions), and when the next balance runs (None: not due)
        self.rebalance = config.auto_leader_rebalance_enable
        self.imbalance_check_ms = config.leader_imbalance_check_interval_seconds * 1000.0
        self._imbalanced: set[int] = set()
        self.preferred_election_due_ms: float | None = None
        # Ongoing reassignments (PartitionRegistration.addingReplicas / removingReplicas): partition ->
        # (target replicas, adding, removing); see alter_partition_reassignments
        self.reassignments: dict[int, tuple[tuple, tuple, tuple]] = {}

    def bootstrap(self) -> None:
        """Initial partition states: the first replica leads in epoch 0 with a full ISR."""
        for spec in self.partitions:
            rec = m.PartitionRecord(spec.index, spec.replicas[0], 0, 0, spec.replicas, spec.replicas,
                                    leader_broker_epoch=1)
            self.state[spec.index] = rec
            self.log.append(rec)
            self.recorder.event(0.0, "leader_elected", rec.leader, spec.index, 0, "initial", reason="initial")
            self.recorder.event(0.0, "isr_change", rec.leader, spec.index, len(rec.isr), _isr_str(rec.isr), isr=tuple(rec.isr))
        for reg in self.registrations.values():
            reg.fenced = False
            reg.broker_epoch = 1  # each broker's first incarnation
            reg.last_heartbeat_ms = 0.0
            self.log.append(("register", reg.broker_id, reg.broker_epoch))
        if self.host_id is not None:
            self.brokers_by_id[self.host_id].hosted_controller = self

    def start(self) -> list[simpy.Process]:
        if self.rebalance and self.zookeeper:
            # KafkaController.onControllerFailover: the first check 5 s after the controller starts
            self._schedule_balance(5_000.0)
        return [self.env.process(self.fence_expired_brokers()), self.env.process(self.elect_leaders())]

    # --- liveness -----------------------------------------------------------------------------
    def fence_expired_brokers(self):
        """Fence brokers whose session (broker.session.timeout.ms, or zookeeper.session.timeout.ms) has lapsed."""
        timeout = self.config.session_timeout_ms
        period = min(100.0, timeout / 10)
        while True:
            yield self.env.timeout(period)
            while not self.running:
                yield self.until_running()
            now = self.env.now
            for reg in self.registrations.values():
                if not reg.fenced and now - reg.last_heartbeat_ms > timeout:
                    self.fence(reg)

    def fence(self, reg: BrokerRegistration) -> None:
        """Fence a broker: drop it from every ISR and queue elections for what it led."""
        now = self.env.now
        reg.fenced = True
        self.recorder.event(now, "broker_fenced", reg.broker_id, -1, reg.broker_epoch)
        self._append(("fence", reg.broker_id))
        b = reg.broker_id
        for p, rec in list(self.state.items()):
            if b not in rec.replicas:
                continue
            # ReplicationControlManager.handleBrokerFenced: out of every ISR it is in (KRaft keeps
            # the last member), and a new leader for what it led (queued: controller.election.cost.ms each).
            # With ELR the ISR may become empty: its last member moves to the ELR (KIP-966).
            if b in rec.isr and (len(rec.isr) > 1 or self.elr is not None):
                self._change(rec, isr=tuple(x for x in rec.isr if x != b), why="fenced")
            if rec.leader == b:
                self._queue_election(p)

    def unfence(self, reg: BrokerRegistration) -> None:
        reg.fenced = False
        self.recorder.event(self.env.now, "broker_unfenced", reg.broker_id, -1, reg.broker_epoch)
        self._append(("unfence", reg.broker_id))
        for p, rec in self.state.items():
            if rec.leader < 0 and reg.broker_id in rec.replicas:
                self._queue_election(p)

    def handle(self, msg) -> None:
        t = type(msg)
        if t is m.BrokerHeartbeat:
            self.on_heartbeat(msg)
        elif t is m.BrokerRegistration:
            self.on_register(msg)
        elif t is m.MetadataFetch:
            self.on_metadata_fetch(msg)
        elif t is m.AlterPartition:
            self.on_alter_partition(msg)
        elif t is m.ControlledShutdownRequest:
            self.on_controlled_shutdown(msg)

    def connection_lost(self, peer) -> None:
        self._parked.pop(getattr(peer, "broker_id", -1), None)

    def has_valid_session(self, reg: BrokerRegistration) -> bool:
        """BrokerHeartbeatManager.hasValidSession: unfenced, and heard from within the session timeout."""
        return not reg.fenced and self.env.now - reg.last_heartbeat_ms <= self.config.session_timeout_ms

    def on_register(self, req: m.BrokerRegistration) -> None:
        """A (re)started broker registers a new incarnation (ClusterControlManager.registerBroker).

        While the previous incarnation's session is valid the registration is refused with
        DUPLICATE_BROKER_REGISTRATION (the same in 3.6 to 4.0: the check dates from KAFKA-12276,
        2.8); the broker retries with backoff until the session expires and the old incarnation is
        fenced (fence_expired_brokers, QuorumController.maybeFenceOneStaleBroker). So a broker
        restarted inside broker.session.timeout.ms keeps its leaderships leaderless until then,
        whatever the restart time. (ZooKeeper mode has the same wait for another reason: the old
        session's /brokers/ids/N znode lives until zookeeper.session.timeout.ms, and a broker
        cannot register over it, KafkaZkClient.checkedEphemeralCreate: NODEEXISTS; Kafka's broker
        then exits at startup and its supervisor restarts it, modelled here as the same retries.)
        A session that has lapsed but is not yet fenced (the fence check runs every 100 ms) is
        fenced here. The new incarnation stays fenced until it has caught up with the metadata log
        past its registration record. A retried registration of the same incarnation gets the
        same answer.
        """
        reg = self.registrations[req.broker]
        broker = self.brokers_by_id[req.broker]
        if req.broker_epoch < reg.broker_epoch:
            return  # a zombie incarnation
        if req.broker_epoch > reg.broker_epoch:
            if self.has_valid_session(reg):
                self.recorder.event(self.env.now, "broker_registration_rejected", req.broker, -1, req.broker_epoch,
                                    reason=m.DUPLICATE_BROKER_REGISTRATION)
                self.network.send(self, broker, m.BrokerRegistrationResponse(
                    req.broker_epoch, -1, m.DUPLICATE_BROKER_REGISTRATION))
                return
            previous_epoch = reg.broker_epoch
            if not reg.fenced:
                self.fence(reg)
            reg.broker_epoch = req.broker_epoch
            reg.last_heartbeat_ms = self.env.now
            reg.shutdown_offset = -1
            self.recorder.event(self.env.now, "broker_registered", req.broker, -1, req.broker_epoch)
            self._append(("register", req.broker, req.broker_epoch))
            if self.elr is not None and req.previous_broker_epoch != previous_epoch:
                self.handle_unclean_shutdown(req.broker)
            reg.registration_offset = len(self.log) + len(self._uncommitted)
        resp = m.BrokerRegistrationResponse(req.broker_epoch, reg.registration_offset)
        if reg.registration_offset > len(self.log):
            self._after_commit.append((broker, resp))  # answered once the record is committed
        else:
            self.network.send(self, broker, resp)

    def on_heartbeat(self, hb: m.BrokerHeartbeat) -> None:
        reg = self.registrations[hb.broker]
        if hb.broker_epoch != reg.broker_epoch:
            return  # STALE_BROKER_EPOCH: a zombie, or an incarnation whose registration is not in yet
        reg.last_heartbeat_ms = self.env.now
        # Unfenced once caught up with the metadata log past its own registration record.
        if reg.fenced and hb.metadata_offset >= reg.registration_offset:
            self.unfence(reg)
        self.network.send(self, self.brokers_by_id[hb.broker],
                          m.BrokerHeartbeatResponse(reg.broker_epoch, reg.fenced, hb.request_id))

    # --- controlled shutdown ----------------------------------------------------------------------
    def on_controlled_shutdown(self, req: m.ControlledShutdownRequest) -> None:
        """A heartbeat with wantShutDown (ReplicationControlManager.handleBrokerInControlledShutdown).

        The first one moves every leadership of the broker to the first other live ISR member and
        takes it out of every ISR, in one batch of records (no per-partition election cost: no
        broker failed). Once those are committed and the broker has fetched past them, it may go
        (BrokerHeartbeatManager: CONTROLLED_SHUTDOWN -> SHUTDOWN_NOW); it is fenced then. From its
        first request the broker is no acceptable leader (generateLeaderAndIsrUpdates with
        brokerToRemove), so a partition with no other live ISR member is left leaderless at once
        in the same batch, its ISR keeping its last member (with ELR: an empty ISR, the broker in the
        ELR), or, with unclean.leader.election.enable, led by a live replica outside the ISR
        (PartitionChangeBuilder.electAnyLeader).
        """
        reg = self.registrations[req.broker]
        if req.broker_epoch != reg.broker_epoch:
            return
        b = req.broker
        if reg.shutdown_offset < 0 and not reg.fenced:
            # BrokerRegistrationChangeRecord(inControlledShutdown): leaders stop proposing it for an ISR
            self._append(("controlled_shutdown", b))
            for p, rec in list(self.state.items()):
                if b not in rec.isr:
                    continue
                isr = tuple(x for x in rec.isr if x != b)
                if rec.leader == b:
                    others = [x for x in rec.replicas if x in isr and self.is_live(x)
                              and self.registrations[x].shutdown_offset < 0]
                    if others:
                        self._change(rec, leader=others[0], isr=isr, why="controlled_shutdown")
                    else:
                        self._leave_leaderless(rec, b)
                elif isr:
                    self._change(rec, isr=isr, why="controlled_shutdown")
            reg.shutdown_offset = len(self.log) + len(self._uncommitted)
        if reg.shutdown_offset <= len(self.log) and req.metadata_offset >= reg.shutdown_offset:
            if not reg.fenced:
                self.fence(reg)
            self.network.send(self, self.brokers_by_id[b], m.ControlledShutdownResponse(req.broker_epoch))

    def _leave_leaderless(self, rec: m.PartitionRecord, b: int) -> None:
        """Broker `b`, shutting down, leads `rec` and no other live replica is in its ISR: an unclean
        election if the topic allows it (a live replica not shutting down), else no leader."""
        if self.partitions[rec.partition].unclean:
            live = [x for x in rec.replicas if x != b and self.is_live(x) and self.registrations[x].shutdown_offset < 0]
            if live:
                self.recorder.event(self.env.now, "unclean_election", live[0], rec.partition, rec.leader_epoch + 1,
                                    f"isr was {_isr_str(rec.isr)}", isr_before=tuple(rec.isr))
                self._change(rec, leader=live[0], isr=(live[0],), why="unclean")
                return
        if self.elr is not None:
            self._change(rec, leader=-1, isr=(), why="controlled_shutdown")  # KIP-966: the ISR may be empty
        else:
            self._change(rec, leader=-1, why="controlled_shutdown")  # KRaft keeps the last ISR member

    # --- quorum outage ---------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        """Neither paused nor without a quorum: the controller's loops may act."""
        return self.alive and self._paused is None

    def until_running(self) -> simpy.Event:
        return self.until_resumed() if self._paused is not None else self._until_available()

    def _until_available(self) -> simpy.Event:
        if self._available is None:
            self._available = self.env.event()
        return self._available

    def lose_quorum(self) -> None:
        """The active controller is gone and the quorum has no leader yet: nothing reaches the
        controller (brokers see their connections reset and retry), nothing is committed, no
        broker is fenced and no leader is elected. The committed log survives in the quorum; what
        was appended but not yet committed is kept and committed by the next leader."""
        if not self.alive:
            return
        resumed = self._resumed  # loops waiting for a pause to end: they must wait for the quorum instead
        self.mark_crashed()  # its timers (commit linger, parked fetches) die with this leader
        if resumed is not None:
            resumed.succeed()  # else they would wait forever on a pause the crash discarded
        self._parked = {}
        self.preferred_election_due_ms = None  # its timer died with this leader
        self.network.reset_connections(self)

    def regain_quorum(self) -> None:
        """A new active controller (QuorumController.claim). ClusterControlManager.activate
        touches every registered broker: each gets a fresh session of broker.session.timeout.ms
        from now, so brokers are not all fenced at once for heartbeats the quorum could not take.
        In zookeeper mode it first loads the metadata (`controller.failover.cost.ms` x partitions)."""
        if self.alive:
            return
        if self.zookeeper and self.config.controller_failover_cost_ms > 0:
            if self._loading:
                return
            # KafkaController.onControllerFailover: the new controller reads every partition's state
            # from ZooKeeper before it acts (Rao 2015: ~2 ms per partition); nothing reaches it meanwhile.
            self._loading = True
            load = self.config.controller_failover_cost_ms * len(self.partitions)
            self.env.timeout(load).callbacks.append(lambda _ev: self._activate())
            return
        self._activate()

    def _activate(self) -> None:
        """The new active controller starts acting: sessions restart, pending commits go out."""
        self._loading = False
        if self.alive:
            return
        self.mark_up()
        now = self.env.now
        for reg in self.registrations.values():
            if self.zookeeper and not self.brokers_by_id[reg.broker_id].alive:
                # ZooKeeper keeps the sessions, not the controller: a dead broker's ephemeral znode
                # expires zookeeper.session.timeout.ms after its last heartbeat, whoever the controller is.
                continue
            reg.last_heartbeat_ms = now
        self._commit_scheduled = False
        if self._uncommitted or self._after_commit:
            self._commit_scheduled = True
            self.schedule(APPEND_LINGER_MS, self._commit)
        if self.rebalance and self.zookeeper:
            self._schedule_balance(5_000.0)  # onControllerFailover
        else:
            self._maybe_schedule_balance()
        available, self._available = self._available, None
        if available is not None:
            available.succeed()

    def host_failed(self, broker_id: int) -> None:
        """ZooKeeper mode: the broker the controller runs on died, and the controller with it.

        The other brokers learn it when that broker's ZooKeeper session expires (the /controller
        znode is ephemeral); the lowest live broker id wins the new /controller znode
        (KafkaController.elect), loads the metadata (regain_quorum) and then handles the dead
        broker like any other.
        """
        host = self.brokers_by_id[broker_id]
        host.hosted_controller = None
        self.host_id = None
        self.lose_quorum()
        self.env.timeout(self.config.zookeeper_session_timeout_ms).callbacks.append(
            lambda _ev: self._controller_elected(broker_id))

    def _controller_elected(self, failed_id: int) -> None:
        others = [b for b in sorted(self.brokers_by_id) if b != failed_id] or [failed_id]
        live = [b for b in others if self.brokers_by_id[b].alive]
        self.host_id = (live or others)[0]
        self.brokers_by_id[self.host_id].hosted_controller = self
        self.regain_quorum()

    # --- metadata log ---------------------------------------------------------------------------
    def _append(self, record) -> None:
        self._uncommitted.append(record)
        if not self._commit_scheduled:
            self._commit_scheduled = True
            self.schedule(APPEND_LINGER_MS, self._commit)
        if self._imbalanced and self.preferred_election_due_ms is None:
            self._maybe_schedule_balance()

    # --- preferred-leader rebalancing (auto.leader.rebalance.enable) ------------------------------------
    def _maybe_schedule_balance(self) -> None:
        """KRaft (QuorumController.maybeScheduleNextBalancePartitionLeaders, after every write event):
        if some partition is not led by its preferred replica and no balance is scheduled, run one
        leader.imbalance.check.interval.seconds from now. leader.imbalance.per.broker.percentage plays
        no part (only the ZooKeeper-mode KafkaController reads it)."""
        if self.rebalance and not self.zookeeper and self._imbalanced and self.preferred_election_due_ms is None:
            self._schedule_balance(self.imbalance_check_ms)

    def _schedule_balance(self, delay: float) -> None:
        self.preferred_election_due_ms = self.env.now + delay
        self.schedule(delay, self._balance_leaders)

    def _balance_leaders(self) -> None:
        """Preferred elections. KRaft: ReplicationControlManager.maybeBalancePartitionLeaders, a
        PREFERRED election (PartitionChangeBuilder.electPreferredLeader) for every imbalanced partition
        whose first replica is in the ISR, unfenced and not shutting down; then scheduled again if any
        partition is still imbalanced. ZooKeeper mode (KafkaController.checkAndTriggerAutoLeaderRebalance):
        every leader.imbalance.check.interval.seconds, per preferred broker, only when more than
        leader.imbalance.per.broker.percentage of its partitions are led elsewhere."""
        self.preferred_election_due_ms = None
        if self.zookeeper:
            by_broker: dict[int, list[int]] = {}
            for spec in self.partitions:
                by_broker.setdefault(self.state[spec.index].replicas[0], []).append(spec.index)
            pct = self.config.leader_imbalance_per_broker_percentage / 100.0
            candidates = []
            for b, parts in by_broker.items():
                off = [p for p in parts if self.state[p].leader != b]
                if off and len(off) / len(parts) > pct:
                    candidates.extend(off)
        else:
            candidates = list(self._imbalanced)
        for p in sorted(candidates):
            rec = self.state[p]
            preferred = rec.replicas[0]
            if (rec.leader != preferred and preferred in rec.isr and self.is_live(preferred)
                    and self.registrations[preferred].shutdown_offset < 0):
                self._change(rec, leader=preferred, why="preferred")
        if self.zookeeper:
            self._schedule_balance(self.imbalance_check_ms)
        else:
            self._maybe_schedule_balance()

    def _commit(self) -> None:
        self._commit_scheduled = False
        self.log.extend(self._uncommitted)
        self._uncommitted = []
        replies, self._after_commit = self._after_commit, []
        for dst, msg in replies:
            self.network.send(self, dst, msg)
        parked, self._parked = self._parked, {}
        for broker_id, (epoch, offset) in parked.items():
            self._answer_fetch(broker_id, offset)

    def on_metadata_fetch(self, req: m.MetadataFetch) -> None:
        if req.offset < len(self.log):
            self._answer_fetch(req.broker, req.offset)
            return
        self._parked[req.broker] = (req.broker_epoch, req.offset)
        self.schedule(METADATA_FETCH_WAIT_MS, self._expire_fetch, req.broker, req.broker_epoch, req.offset)

    def _expire_fetch(self, broker_id: int, epoch: int, offset: int) -> None:
        if self._parked.get(broker_id) == (epoch, offset):
            del self._parked[broker_id]
            self._answer_fetch(broker_id, offset)

    def _answer_fetch(self, broker_id: int, offset: int) -> None:
        records = self.log[offset:]
        self.network.send(self, self.brokers_by_id[broker_id], m.MetadataFetchResponse(offset, records, len(self.log)),
                          48 * len(records))

    def _change(self, rec: m.PartitionRecord, *, leader: int | None = None, isr: tuple | None = None,
                why: str = "", replicas: tuple | None = None) -> m.PartitionRecord:
        """Commit a partition change; a new leader bumps the leader epoch. `replicas`: a new replica set
        (a reassignment, PartitionChangeRecord.replicas)."""
        now = self.env.now
        new_leader = rec.leader if leader is None else leader
        new_isr = rec.isr if isr is None else isr
        new_replicas = rec.replicas if replicas is None else replicas
        epoch = rec.leader_epoch + (1 if leader is not None else 0)
        if leader is None:
            leader_broker_epoch = rec.leader_broker_epoch
        else:
            leader_broker_epoch = self.registrations[leader].broker_epoch if leader >= 0 else -1
        new = m.PartitionRecord(rec.partition, new_leader, epoch, rec.partition_epoch + 1, new_isr, new_replicas,
                                leader_broker_epoch)
        self.state[rec.partition] = new
        if new_replicas != rec.replicas:
            self.recorder.event(now, "replicas_change", new_leader, rec.partition, len(new_replicas),
                                f"{_isr_str(rec.replicas)}->{_isr_str(new_replicas)} {why}".strip(),
                                isr=tuple(new_replicas), isr_before=tuple(rec.replicas), reason=why)
        # the preferred replica is the first of the current assignment (a reassignment may change it)
        if new_leader == new_replicas[0]:
            self._imbalanced.discard(rec.partition)
        else:
            self._imbalanced.add(rec.partition)
        self._append(new)
        if self.elr is not None and new_isr != rec.isr:
            self._update_elr(rec, new, why)
        if leader is not None:
            kind = "partition_offline" if new_leader < 0 else "leader_elected"
            self.recorder.event(now, kind, new_leader, rec.partition, epoch, why, reason=why)
        if new_isr != rec.isr:
            self.recorder.event(now, "isr_change", new_leader, rec.partition, len(new_isr),
                                f"{_isr_str(rec.isr)}->{_isr_str(new_isr)} {why}".strip(), isr=tuple(new_isr),
                                isr_before=tuple(rec.isr), reason=why)
        return new

    # --- Eligible Leader Replicas (KIP-966) ----------------------------------------------------------
    def _update_elr(self, old: m.PartitionRecord, new: m.PartitionRecord, why: str) -> None:
        """PartitionChangeBuilder.populateTargetElr: while the ISR is under min.insync.replicas the HW
        cannot advance, so the members it loses keep every committed record and join the ELR; an ISR
        back at min.insync.replicas clears it. ELR members are never ISR members."""
        p = new.partition
        spec = self.partitions[p]
        before = self.elr.get(p, ())
        if len(new.isr) >= min(spec.min_isr, len(spec.replicas)):
            after = ()
        else:
            joined = set(before) | set(old.isr)
            after = tuple(b for b in spec.replicas if b in joined and b not in new.isr)
        self._set_elr(p, before, after, new.leader, why)

    def _set_elr(self, p: int, before: tuple, after: tuple, leader: int, why: str) -> None:
        if after == before:
            return
        self.elr[p] = after
        self.recorder.event(self.env.now, "elr_change", leader, p, len(after),
                            f"{_isr_str(before)}->{_isr_str(after)} {why}".strip(), isr=after, isr_before=before,
                            reason=why)

    def handle_unclean_shutdown(self, broker_id: int) -> None:
        """ReplicationControlManager.handleBrokerUncleanShutdown: a broker that registers after an
        unclean shutdown (no clean-shutdown file: previousBrokerEpoch is not its last epoch) may
        have lost its unflushed tail, so it leaves every ISR and ELR it is in (even an ISR's last
        member) until it catches up again as a follower."""
        for p, rec in list(self.state.items()):
            if broker_id in rec.isr:
                self._change(rec, isr=tuple(b for b in rec.isr if b != broker_id), why="unclean_shutdown")
            before = self.elr.get(p, ())
            if broker_id in before:
                self._set_elr(p, before, tuple(b for b in before if b != broker_id), self.state[p].leader,
                              "unclean_shutdown")

    def last_holder(self, p: int) -> int:
        """Whose log stands for an offline partition whose ISR is empty (ELR): its first ELR member, or
        its first replica."""
        elr = self.elr.get(p, ()) if self.elr is not None else ()
        return elr[0] if elr else self.partitions[p].replicas[0]

    # --- elections --------------------------------------------------------------------------------
    def _queue_election(self, p: int) -> None:
        if p in self._queued:
            return
        self._queued.add(p)
        self._elections.append(p)
        if self._election_wakeup is not None and not self._election_wakeup.triggered:
            self._election_wakeup.succeed()

    def elect_leaders(self):
        """Work through queued elections: one partition at a time, `controller.election.cost.ms` each
        (zookeeper), or all that are waiting in one batch for one `controller.election.cost.ms` (kraft)."""
        cost = self.config.controller_election_cost_ms
        while True:
            if not self._elections:
                self._election_wakeup = self.env.event()
                yield self._election_wakeup
                continue
            if self.zookeeper:
                # KafkaController / PartitionStateMachine: each election is its own ZooKeeper write.
                p = self._elections.popleft()
                if cost > 0:
                    yield self.env.timeout(cost)
                while not self.running:  # paused, or no quorum: elections wait
                    yield self.until_running()
                self._queued.discard(p)
                self.elect_leader(p)
                continue
            # ReplicationControlManager.handleBrokerFenced / electLeaders: one controller event
            # generates the PartitionChangeRecords of every affected partition, committed together.
            if cost > 0:
                yield self.env.timeout(cost)
            while not self.running:
                yield self.until_running()
            batch = list(self._elections)
            self._elections.clear()
            self._queued.difference_update(batch)
            for p in batch:
                self.elect_leader(p)

    def is_live(self, broker_id: int) -> bool:
        return not self.registrations[broker_id].fenced

    def leads(self, rec: m.PartitionRecord) -> bool:
        """The partition's leader is live and is the incarnation that was elected."""
        return (rec.leader >= 0 and self.is_live(rec.leader)
                and rec.leader_broker_epoch == self.registrations[rec.leader].broker_epoch)

    def elect_leader(self, p: int) -> None:
        """PartitionChangeBuilder: first live ISR member in assignment order, else unclean or offline."""
        rec = self.state[p]
        if self.leads(rec):
            return  # already led by a live broker (a restarted one that re-registered does not count)
        spec = self.partitions[p]
        live_isr = [b for b in rec.replicas if b in rec.isr and self.is_live(b)]
        if live_isr:
            leader = live_isr[0]
            self._change(rec, leader=leader, isr=tuple(live_isr), why="clean")
            return
        if self.elr is not None:
            # KIP-966 election order: ISR member, then an unfenced ELR member (it has every committed record)
            live_elr = [b for b in rec.replicas if b in self.elr.get(p, ()) and self.is_live(b)]
            if live_elr:
                self._change(rec, leader=live_elr[0], isr=(live_elr[0],), why="elr")
                return
        live = [b for b in rec.replicas if self.is_live(b)]
        if spec.unclean and live:
            leader = live[0]
            self.recorder.event(self.env.now, "unclean_election", leader, p, rec.leader_epoch + 1,
                                f"isr was {_isr_str(rec.isr)}", isr_before=tuple(rec.isr))
            self._change(rec, leader=leader, isr=(leader,), why="unclean")
            return
        if rec.leader >= 0:
            # KRaft keeps the last ISR member in the ISR and sets no leader.
            self._change(rec, leader=-1, why="no live ISR member")

    # --- AlterPartition ---------------------------------------------------------------------------
    def _ineligible_replicas(self, rec: m.PartitionRecord, req: m.AlterPartition) -> list[int]:
        """ReplicationControlManager.ineligibleReplicasForIsr: members that are fenced or in controlled
        shutdown (KIP-841), or whose broker epoch in the request is not their registered one (KIP-903,
        3.5+; -1: not checked). ZooKeeper mode checks only that a joining broker is alive."""
        out = []
        epochs = req.broker_epochs or {}
        for b in req.new_isr:
            reg = self.registrations[b]
            if self.zookeeper:
                if b not in rec.isr and not self.is_live(b):
                    out.append(b)
            elif reg.fenced or reg.shutdown_offset >= 0 or epochs.get(b, -1) not in (-1, reg.broker_epoch):
                out.append(b)
        return out

    def on_alter_partition(self, req: m.AlterPartition) -> None:
        rec = self.state.get(req.partition)
        leader = self.brokers_by_id[req.broker]
        reg = self.registrations[req.broker]
        error = m.NONE
        if (rec is None or rec.leader != req.broker or req.broker_epoch != reg.broker_epoch
                or rec.leader_broker_epoch != req.broker_epoch):
            error = m.NOT_LEADER_OR_FOLLOWER
        elif req.leader_epoch != rec.leader_epoch:
            error = m.FENCED_LEADER_EPOCH
        elif req.partition_epoch != rec.partition_epoch:
            error = "INVALID_UPDATE_VERSION"
        elif self._ineligible_replicas(rec, req):
            error = "INELIGIBLE_REPLICA"
        if error != m.NONE:
            self.network.send(self, leader, m.AlterPartitionResponse(req.request_id, req.partition, error, None))
            return
        new = self._change(rec, isr=req.new_isr, why="alter_partition")
        if req.partition in self.reassignments:
            new = self._maybe_complete_reassignment(req.partition)
        # The leader hears back only once the change is committed to the metadata log.
        self._after_commit.append((leader, m.AlterPartitionResponse(req.request_id, req.partition, m.NONE, new)))


    # --- operator requests (sim/model/operator.py) ---------------------------------------------------
    def elect_preferred_leaders(self, partitions: list[int]) -> dict[int, str]:
        """ElectLeaders with ElectionType.PREFERRED (ReplicationControlManager.electLeader): each partition
        is led by its first replica if that replica is a valid leader (in the ISR, unfenced, not shutting
        down: PartitionChangeBuilder.electPreferredLeader); the error code of each partition."""
        out = {}
        for p in partitions:
            rec = self.state[p]
            preferred = rec.replicas[0]
            if rec.leader == preferred and self.leads(rec):
                out[p] = "ELECTION_NOT_NEEDED"  # partition.hasPreferredLeader()
            elif preferred in rec.isr and self.is_live(preferred) and self.registrations[preferred].shutdown_offset < 0:
                self._change(rec, leader=preferred, why="preferred")
                out[p] = m.NONE
            else:
                out[p] = "PREFERRED_LEADER_NOT_AVAILABLE"  # the builder produced no change
            self.recorder.event(self.env.now, "leader_election_result", preferred, p, self.state[p].leader_epoch,
                                out[p], reason=out[p])
        return out

    def alter_partition_reassignments(self, moves: dict[int, tuple]) -> None:
        """AlterPartitionReassignments (ReplicationControlManager.changePartitionReassignment): the replica
        set becomes the target followed by the replicas to remove (PartitionReassignmentReplicas), with the
        new ones as addingReplicas; they copy the log as followers, and once the ISR holds every target
        replica the reassignment completes (_maybe_complete_reassignment)."""
        for p, target in moves.items():
            rec = self.state[p]
            target = tuple(target)
            current = rec.replicas
            if p in self.reassignments:  # a new target replaces an ongoing one (from its original replicas)
                current = tuple(b for b in current if b not in self.reassignments[p][1])
            removing = tuple(sorted(set(current) - set(target)))
            adding = tuple(sorted(set(target) - set(current)))
            if not removing and not adding:
                self.reassignments.pop(p, None)
                if target != rec.replicas:
                    self._change(rec, replicas=target, why="reassignment")  # a new order only
                continue
            self.reassignments[p] = (target, adding, removing)
            self._change(rec, replicas=target + removing, why="reassignment")
            self._maybe_complete_reassignment(p)

    def _maybe_complete_reassignment(self, p: int) -> m.PartitionRecord:
        """PartitionReassignmentReplicas.maybeCompleteReassignment, run by PartitionChangeBuilder: once the
        ISR (without the removing replicas) holds every target replica, the replica set becomes the target
        and the removed replicas leave the ISR; a leader that is removed hands over to the first target
        replica in the ISR (an election), and dropping replicas bumps the leader epoch in any case
        (triggerLeaderEpochBumpForReplicaReassignmentIfNeeded), so followers refetch from the new set."""
        rec = self.state[p]
        target, _, removing = self.reassignments[p]
        isr = tuple(b for b in rec.isr if b not in removing)
        if not isr or not set(target) <= set(isr):
            return rec
        del self.reassignments[p]
        isr = tuple(b for b in target if b in isr)
        if rec.leader in target and self.leads(rec):
            leader = rec.leader  # stays leader; the epoch bump is for the removed replicas
        else:
            live = [b for b in isr if self.is_live(b) and self.registrations[b].shutdown_offset < 0]
            leader = live[0] if live else -1
        new = self._change(rec, leader=leader, isr=isr, replicas=target, why="reassignment_complete")
        return new

    def under_replicated(self) -> list[int]:
        """Partitions the operator's `kafka-topics --describe --under-replicated-partitions` would list: an
        ISR smaller than the replication factor (replicas being added do not count, Partition.isUnderReplicated)
        or no leader."""
        out = []
        for p, rec in self.state.items():
            adding = self.reassignments[p][1] if p in self.reassignments else ()
            if rec.leader < 0 or len(rec.isr) < len(rec.replicas) - len(adding):
                out.append(p)
        return out

    def add_broker(self, broker) -> None:
        """A new broker's id becomes known (its registration follows: ClusterControlManager.registerBroker)."""
        self.brokers_by_id[broker.broker_id] = broker
        self.registrations[broker.broker_id] = BrokerRegistration(broker.broker_id)

    def unregister_broker(self, broker_id: int) -> None:
        """UnregisterBroker (kafka-cluster unregister, ClusterControlManager.unregisterBroker): the broker's
        registration goes; handleBrokerUnregistered takes it out of every ISR and leadership as a fence
        does. Replicas it still holds stay assigned to it (and under-replicated) until reassigned."""
        reg = self.registrations[broker_id]
        if not reg.fenced:
            self.fence(reg)
        reg.broker_epoch = 1 << 62  # no incarnation can register under this id again (modelled: never tried)
        self.recorder.event(self.env.now, "broker_unregistered", broker_id, -1,
                            sum(broker_id in rec.replicas for rec in self.state.values()))
        self._append(("unregister", broker_id))


def _isr_str(isr: tuple) -> str:
    return "[" + ",".join(map(str, isr)) + "]"
