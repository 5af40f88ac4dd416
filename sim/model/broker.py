"""A Kafka broker (BrokerServer, KafkaApis): a node that hosts partition replicas.

Follows Kafka at batch granularity. The broker process starts, registers and heartbeats
(BrokerLifecycleManager), long-polls the KRaft metadata log, shuts down in a controlled way, and
dispatches requests (KafkaApis). The replicas it hosts are `sim.model.replica_manager`'s
(ReplicaManager, a base class: metadata application, leader and follower transitions, truncation,
produce, ISR expiry and upkeep); the leader side of fetching is `sim.model.fetch_session`'s
(FetchManager: incremental fetch sessions, KIP-227, and the fetch purgatory, DelayedFetch).
What a partition does is in `sim.model.partition` (Partition.scala: HW, ISR shrink and expansion
via AlterPartition, the produce purgatory), the follower side in `sim.model.fetcher`
(ReplicaFetcherThread: one fetcher per leader broker, long-polled up to
replica.fetch.wait.max.ms, divergence truncation, KIP-101/279/595), and every write to a log goes
through the broker's `sim.model.disk.Disk`.
Request handling costs no simulated time here; with `cluster.hardware` set, `sim.model.hardware`'s
HardwareBroker puts requests through processors, io threads, connection muting and the disk first.
What is left out: segments and retention, compression, quotas, follower fetching for consumers (KIP-392).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import simpy

from sim.model import messages as m
from sim.model.connection import Connection
from sim.model.disk import Disk
from sim.model.fetch_session import FetchManager
from sim.model.fetcher import ReplicaFetcher
from sim.model.log import Log
from sim.model.node import Node
from sim.model.partition import Partition, PartitionSpec
from sim.model.replica_manager import ReplicaManager
from sim.model.timeouts import TimeoutQueue, exponential_backoff

if TYPE_CHECKING:
    from sim.model.network import Network
    from sim.model.recorder import Recorder
    from sim.scenario.cluster import ClusterConfig

__all__ = ["Broker"]

# Broker-to-controller requests (registration, AlterPartition) are resent when unanswered within
# the broker's request.timeout.ms (NodeToControllerChannelManager), default 30 s.
BROKER_TO_CONTROLLER_TIMEOUT_MS = 30_000.0
# A metadata log fetch is given up after the long-poll wait plus controller.quorum.request.timeout.ms (2 s).
METADATA_FETCH_TIMEOUT_MS = 500.0 + 2_000.0
# BrokerLifecycleManager.resendExponentialBackoff: 100 ms, doubling, up to broker.session.timeout.ms
# (its 2 % jitter is not modelled), after a heartbeat that failed or timed out.
HEARTBEAT_RETRY_BACKOFF_MS = 100.0


class Broker(ReplicaManager, Node):
    """A Kafka broker process on a host: replicas, fetchers, heartbeats, ISR expiry."""

    base_name = "broker"

    def __init__(self, env: simpy.Environment, broker_id: int, config: "ClusterConfig",
                 partitions: list[PartitionSpec], network: "Network", recorder: "Recorder",
                 rng: np.random.Generator | None = None, parent_scope: str = "cluster"):
        self.init_node(env, f"{parent_scope}.{self.base_name}{broker_id}", up=False, incarnation=0)
        self.rng = rng
        self.broker_id = broker_id
        self.config = config
        self.partitions = partitions
        self.network = network
        self.recorder = recorder
        self.controller = None  # wired by the cluster
        self.hosted_controller = None  # zookeeper controller mode: the controller runs on this broker
        self.cluster_brokers: list[Broker] = []  # wired by the cluster (network addresses)
        self.strict_min_isr = config.version_defaults.strict_min_isr  # KIP-966 part 1 (KAFKA-15583), 3.7+
        self.zookeeper_mode = config.controller_mode == "zookeeper"
        # log.truncation: high_watermark, the pre-0.11 protocol: fetch responses carry the HW from before the fetch
        self.hw_before_follower_update = config.log_truncation == "high_watermark"
        # Disk: survives a process crash (the page cache survives too; no power loss here).
        self.logs: dict[int, Log] = {p.index: Log() for p in partitions if broker_id in p.replicas}
        self.disk = Disk(self.logs)  # every write to the logs goes through it
        self._request_ids = 0
        self._session_ids = 0
        # KIP-966: the broker epoch in the clean-shutdown file a controlled shutdown leaves on disk
        # (LogManager writes it as the logs close); -1: no such file
        self.clean_shutdown_epoch = -1
        # what this incarnation read from that file at startup and sends as previousBrokerEpoch
        self.previous_broker_epoch = -1
        # a restart came due while a controlled shutdown still waited for the controller (not process
        # memory: the operator's restart, carried out once the process has stopped)
        self.restart_when_stopped = False
        # KIP-73 replication throttling, set by a throttled reassignment (sim/model/operator.py): the leader's
        # quota (leader.replication.throttled.rate) and the partitions it applies to
        # (leader.replication.throttled.replicas); None: no throttle
        self.leader_quota = None
        self.throttled_partitions: set[int] = set()
        self.decommissioned = False  # removed from the cluster (unregistered): never restarted
        self._reset_memory()

    # --- lifecycle -------------------------------------------------------------------------
    def _reset_memory(self) -> None:
        """Everything a process crash loses."""
        self.replicas: dict[int, Partition] = {}
        self.metadata: dict[int, m.PartitionRecord] = {}
        self.fenced: set[int] = set()
        self.broker_epochs: dict[int, int] = {}  # each broker's registered epoch (KRaftMetadataCache)
        self.shutting_down_brokers: set[int] = set()  # brokers in controlled shutdown (inControlledShutdown)
        self.metadata_offset = 0
        self.fetchers: dict[int, ReplicaFetcher] = {}
        self.processes: list[simpy.Process] = []
        # Request timeouts fire outside `schedule`: while paused they wait for the resume (Node.deferring).
        self.fetch_timeouts = TimeoutQueue(self.env, self.config.replica_socket_timeout_ms,
                                           self.deferring(self._fetch_timed_out))
        self.produce_timeouts: dict[float, TimeoutQueue] = {}  # DelayedProduce expiry, per request timeout
        # The leader side of fetching (sim/model/fetch_session.py): its sessions and parked fetches die
        # with the process. Its entry points are bound here once, as the broker's own: the produce path
        # and every Partition call them per batch (Partition's PartitionHost).
        fm = self.fetch_manager = FetchManager(self)
        self.handle_fetch = fm.handle_fetch
        self.mark_dirty = fm.mark_dirty
        self.wake_consumers = fm.wake_consumers
        self.fetch_parked = fm.fetch_parked
        self.out_of_isr: set[int] = set()  # partitions led here whose ISR lacks some replica
        self.alter_timeouts = TimeoutQueue(self.env, BROKER_TO_CONTROLLER_TIMEOUT_MS,
                                           self.deferring(self._alter_partition_timed_out))
        self._metadata_fetch_pending = False
        self._metadata_fetch_id = 0
        # KRaft registration of this incarnation (BrokerLifecycleManager): metadata is applied only
        # once registered, and the broker is "starting" until the controller unfences it.
        self.registered = False
        self.registration_offset = 0
        self.starting = True
        self.shutting_down = False  # controlled shutdown asked for, not yet let go by the controller
        self._alter_resend_pending = False  # AlterPartitions to send again once the controller is back
        self._registration_failures = 0  # registrations refused by an unreachable controller (backoff exponent)
        self._register_retry_pending = False
        # BrokerLifecycleManager: one heartbeat in flight (communicationInFlight); the next is
        # scheduled from its answer or its timeout
        self._heartbeat: m.BrokerHeartbeat | None = None
        self._heartbeat_sent = False  # on the wire (else waiting for the connection to the controller)
        self._heartbeat_failures = 0
        self._heartbeat_soon = False  # answer the one in flight with the next at once (caught up)
        self._metadata_fetch_sent = False
        self._alter_unsent: list[m.AlterPartition] = []  # AlterPartitions waiting for the connection
        # Connections this process opened: to the controller (its channels share one here) and to
        # each leader it fetches from; a timed-out request closes one (sim/model/connection.py).
        self.connections: dict[object, Connection] = {}

    def start(self, bootstrapped: bool = False) -> None:
        """Start (or restart) the broker process: recover logs, register, begin heartbeating.

        `bootstrapped`: the run's first start, into a settled cluster that already has this broker
        registered and unfenced (the cluster hands it the initial metadata). A restart registers a
        new incarnation and catches up with the metadata log before it acts on any of it.
        """
        self.mark_up()
        self.restart_when_stopped = False
        # The clean-shutdown file is read and deleted at startup, so a later crash of this
        # incarnation registers as unclean (BrokerServer: previousBrokerEpoch, KIP-966).
        self.previous_broker_epoch, self.clean_shutdown_epoch = self.clean_shutdown_epoch, -1
        for p, log in self.logs.items():
            # Recovery: HW from the replication-offset checkpoint; producer state from the log.
            log.hw = min(log.checkpointed_hw, log.leo)
            log.rebuild_producer_state()
            spec = self.partitions[p]
            self.replicas[p] = Partition(self, spec, log, self.effective_min_isr(spec))
        self.processes = [
            self.env.process(self.expire_lagging_replicas()),
            self.env.process(self.checkpoint_high_watermarks()),
        ]
        if bootstrapped:
            self.registered, self.starting = True, False
            # Brokers start at different moments, so their heartbeat schedules have different
            # phases: failover time then depends on the seed, not only on the fault time.
            interval = self.config.broker_heartbeat_interval_ms
            phase = float(self.rng.uniform(0.0, interval)) if self.rng is not None else 0.0
            self.schedule(phase, self.heartbeat)
            # the cluster hands over the initial metadata, then the broker long-polls for more
        else:
            self.register()

    def register(self) -> None:
        """BrokerRegistration of this incarnation, resent until answered (BrokerLifecycleManager)."""
        if not self.alive or self.registered:
            return
        self.network.send(self, self.controller, m.BrokerRegistration(self.broker_id, self.incarnation,
                                                                       self.previous_broker_epoch))
        self.schedule(BROKER_TO_CONTROLLER_TIMEOUT_MS, self.register)

    def _registration_backoff(self) -> None:
        """BrokerLifecycleManager.scheduleNextCommunicationAfterFailure: a registration that failed is
        sent again after resendExponentialBackoff = ExponentialBackoff(100 ms, x2, broker.session.timeout.ms)
        (its 2 % jitter is not modelled), not after the 30 s request timeout."""
        if self._register_retry_pending:
            return
        self._register_retry_pending = True
        backoff = exponential_backoff(100.0, self.config.broker_session_timeout_ms, self._registration_failures)
        self._registration_failures += 1
        self.schedule(backoff, self._retry_register)

    def _retry_register(self) -> None:
        self._register_retry_pending = False
        if self.alive and not self.registered:
            self.network.send(self, self.controller, m.BrokerRegistration(self.broker_id, self.incarnation,
                                                                           self.previous_broker_epoch))

    def on_registered(self, resp: m.BrokerRegistrationResponse) -> None:
        if resp.broker_epoch != self.incarnation or self.registered:
            return
        if resp.error != m.NONE:
            # BrokerLifecycleManager.BrokerRegistrationResponseEvent: an error (DUPLICATE_BROKER_REGISTRATION
            # while our previous incarnation's session lasts) -> scheduleNextCommunicationAfterFailure.
            self._registration_backoff()
            return
        self._registration_failures = 0
        self.registered = True
        self.registration_offset = resp.registration_offset
        self.recorder.event(self.env.now, "broker_registered_ack", self.broker_id, -1, resp.registration_offset)
        self.heartbeat()
        self.fetch_metadata()

    def crash(self, host_down: bool = False) -> None:
        """Process crash (SIGKILL): memory is lost, the log and page cache survive.

        `host_down`: the whole host stops (power loss, disk loss): no TCP stack is left to reset the
        peers' connections; they find out through their timeouts.
        """
        if not self.alive:
            return
        if host_down:
            self.mark_powered_off()
        else:
            self.mark_crashed()
        for proc in self.processes:
            if proc.is_alive:
                proc.interrupt("crash")
        self.fetch_timeouts.clear()
        self.alter_timeouts.clear()
        for tq in self.produce_timeouts.values():
            tq.clear()
        self._reset_memory()
        if not host_down:
            self.network.reset_connections(self)
        if self.hosted_controller is not None:  # zookeeper mode: the controller dies with its broker
            self.hosted_controller.host_failed(self.broker_id)

    def power_off(self) -> None:
        """Power loss / OS crash: the process and the page cache are gone; each log keeps its durable prefix."""
        if not self.alive:
            return
        self.crash(host_down=True)
        now = self.env.now
        for p, (leo, removed) in self.disk.lose_page_cache(now).items():
            if removed:
                self.recorder.event(now, "log_lost_tail", self.broker_id, p, leo, f"removed={removed} power loss",
                                    removed=removed, reason="power_loss")

    def lose_disk(self) -> None:
        """Disk loss: the host goes down and its disk is replaced by an empty one (every log from offset 0)."""
        if not self.alive:
            return
        self.crash(host_down=True)
        now = self.env.now
        lost = {p: log.leo for p, log in self.logs.items()}
        self.disk.replace()
        self.clean_shutdown_epoch = -1  # the file was on the lost disk
        for p, removed in lost.items():
            self.recorder.event(now, "log_lost_tail", self.broker_id, p, 0, f"removed={removed} disk loss",
                                removed=removed, reason="disk_loss")

    def restart(self) -> None:
        if not self.alive and not self.decommissioned:  # a removed broker (remove_broker) stays removed
            self.start()

    # --- controlled shutdown (SIGTERM) ---------------------------------------------------------
    def begin_controlled_shutdown(self) -> None:
        """SIGTERM: ask the controller to move leadership away first (BrokerLifecycleManager.
        beginControlledShutdown: heartbeats carry wantShutDown until the controller answers
        shouldShutDown), then flush and stop. Unanswered within request.timeout.ms, stop anyway."""
        if not self.alive or self.shutting_down:
            return
        if self._paused is not None:  # a stopped (SIGSTOP) process handles SIGTERM once it runs again
            self._paused.append((self.begin_controlled_shutdown, ()))
            return
        self.shutting_down = True
        self.request_shutdown()
        self.schedule(BROKER_TO_CONTROLLER_TIMEOUT_MS, self.finish_controlled_shutdown, self.incarnation)

    def request_shutdown(self, resend: bool = True) -> None:
        """One heartbeat with wantShutDown; resent every broker.heartbeat.interval.ms until let go."""
        if not self.alive or not self.shutting_down:
            return
        self.network.send(self, self.controller,
                          m.ControlledShutdownRequest(self.broker_id, self.incarnation, self.metadata_offset))
        if resend:
            self.schedule(self.config.broker_heartbeat_interval_ms, self.request_shutdown)

    def finish_controlled_shutdown(self, broker_epoch: int) -> None:
        """shouldShutDown: flush every log (a clean shutdown syncs its logs and checkpoints the HW,
        so nothing needs recovery), then stop the process."""
        if not self.alive or not self.shutting_down or broker_epoch != self.incarnation:
            return
        self.disk.flush()
        for log in self.logs.values():
            log.checkpointed_hw = log.hw
        self.clean_shutdown_epoch = self.incarnation  # the clean-shutdown file: nothing to recover
        self.recorder.event(self.env.now, "broker_shutdown", self.broker_id, -1, self.incarnation)
        self.crash()  # the process exits: what it held in memory goes, as for any stop
        if self.restart_when_stopped:
            self.start()

    def restart_after_shutdown(self) -> None:
        """A restart due while a controlled shutdown is still waiting for the controller: the
        operator's restart runs once the process has stopped (as `systemctl restart` would)."""
        self.restart_when_stopped = True

    # --- heartbeats and the connection to the controller (BrokerLifecycleManager) -----------------
    def heartbeat(self) -> None:
        """BrokerLifecycleManager.sendBrokerHeartbeat: one BrokerHeartbeat in flight at a time.

        Its answer schedules the next after broker.heartbeat.interval.ms
        (scheduleNextCommunicationAfterSuccess); unanswered within the heartbeat channel's request
        timeout, broker.session.timeout.ms / 2 (KAFKA-14392, BrokerServer.startup), it times out,
        which closes the connection, and the next follows after the resend backoff
        (scheduleNextCommunicationAfterFailure). A heartbeat needs a connection to the controller,
        and a new connection needs a round trip: a broker whose answers are cut off stops
        heartbeating, and the controller fences it broker.session.timeout.ms after the last one.
        """
        if not self.alive:
            return
        if self._heartbeat is not None:
            self._heartbeat_soon = True  # caught up meanwhile: the next goes as soon as this one is answered
            return
        hb = m.BrokerHeartbeat(self.broker_id, self.incarnation, self.metadata_offset, self.next_request_id())
        self._heartbeat, self._heartbeat_sent = hb, False
        self._send_heartbeat()
        cfg = self.config
        if cfg.controller_mode == "zookeeper":
            # ZooKeeper's ClientCnxn gives up on a silent server after 2/3 of the session timeout
            timeout = cfg.zookeeper_session_timeout_ms * 2.0 / 3.0
        else:
            timeout = cfg.broker_session_timeout_ms / 2  # the heartbeat channel's request timeout (KAFKA-14392)
        self.schedule(timeout, self._heartbeat_timed_out, hb)

    def _send_heartbeat(self) -> None:
        hb = self._heartbeat
        if hb is None or self._heartbeat_sent or not self.controller_connection().when_ready(self._to_controller):
            return
        self._heartbeat_sent = True
        hb.metadata_offset = self.metadata_offset
        self.network.send(self, self.controller, hb)

    def on_heartbeat_response(self, resp: m.BrokerHeartbeatResponse) -> None:
        """BrokerHeartbeatResponseEvent: the next heartbeat after the interval (at once if asked for)."""
        if self._heartbeat is None or resp.request_id != self._heartbeat.request_id:
            return  # the answer to a heartbeat that timed out
        self._heartbeat = None
        self._heartbeat_failures = 0
        if resp.broker_epoch == self.incarnation and not resp.fenced:
            self.starting = False
        soon, self._heartbeat_soon = self._heartbeat_soon, False
        self.schedule(0.0 if soon else self.config.broker_heartbeat_interval_ms, self.heartbeat)

    def _heartbeat_timed_out(self, hb: m.BrokerHeartbeat) -> None:
        """BrokerHeartbeatResponseHandler.onTimeout: back off (100 ms doubling, up to the session timeout),
        then heartbeat again; a heartbeat that was sent and not answered closes the connection
        (NetworkClient.handleTimedOutRequests)."""
        if self._heartbeat is not hb:
            return
        self._heartbeat = None
        self._heartbeat_soon = False
        if self._heartbeat_sent:
            self.controller_connection().close()
        backoff = min(HEARTBEAT_RETRY_BACKOFF_MS * 2.0 ** self._heartbeat_failures, self.config.session_timeout_ms)
        self._heartbeat_failures += 1
        self.schedule(backoff, self.heartbeat)

    def controller_connection(self) -> Connection:
        """This process's connection to the controller (heartbeats, metadata fetches, AlterPartition)."""
        conn = self.connections.get(self.controller)
        if conn is None:
            conn = self.connections[self.controller] = Connection(self, self.controller, self.network)
        return conn

    def connection_to(self, broker_id: int) -> Connection:
        """This process's connection to broker `broker_id` (a follower's fetches to its leader)."""
        peer = self.cluster_brokers[broker_id]
        conn = self.connections.get(peer)
        if conn is None:
            conn = self.connections[peer] = Connection(self, peer, self.network)
        return conn

    def _to_controller(self) -> None:
        """The connection to the controller is ready again: send what waited for it."""
        self._send_heartbeat()
        self._send_metadata_fetch()
        unsent, self._alter_unsent = self._alter_unsent, []
        for req in unsent:
            r = self.replicas.get(req.partition)
            if r is not None and r.alter_in_flight is req:
                self.network.send(self, self.controller, req)

    # --- message dispatch ------------------------------------------------------------------
    def handle(self, msg) -> None:
        t = type(msg)
        if t is m.FetchRequest:
            self.handle_fetch(msg)
        elif t is m.FetchResponse:
            msg_client = self.fetchers.get(msg.broker)
            if msg_client is not None:
                msg_client.on_response(msg)
        elif t is m.ProduceRequest:
            self.handle_produce(msg)
        elif t is m.MetadataRequest:
            me, inc = self.broker_id, self.incarnation
            # a leadership of our own previous incarnation is not ours: no leader known yet
            leaders = {p: (rec.leader if rec.leader != me or rec.leader_broker_epoch == inc else -1, rec.leader_epoch)
                       for p, rec in self.metadata.items()}
            self.network.send(self, msg.client, m.MetadataResponse(msg.request_id, self.broker_id, leaders),
                              16 * len(leaders))
        elif t is m.MetadataFetchResponse:
            if msg.offset != self.metadata_offset or not self._metadata_fetch_pending:
                return  # an answer to a fetch we gave up on (timed out): its successor is in flight
            self._metadata_fetch_pending = False
            self.apply_metadata(msg.records, msg.end_offset)
            self.fetch_metadata()
        elif t is m.AlterPartitionResponse:
            self.on_alter_partition_response(msg)
        elif t is m.BrokerHeartbeatResponse:
            self.on_heartbeat_response(msg)
        elif t is m.BrokerRegistrationResponse:
            self.on_registered(msg)
        elif t is m.ControlledShutdownResponse:
            self.finish_controlled_shutdown(msg.broker_epoch)
        else:  # pragma: no cover - a wiring bug, not an input error
            raise TypeError(f"{self.scope} cannot handle {t.__name__}")

    def connection_lost(self, peer) -> None:
        """A peer's connection was reset: fail what we had in flight to it."""
        if peer is self.controller:
            if not self.registered:
                self._registration_backoff()  # connection refused: the quorum has no leader
            self._metadata_fetch_pending = False
            self.schedule(self.config.broker_heartbeat_interval_ms, self.fetch_metadata)
            # NodeToControllerChannelManager re-queues what the lost controller had not answered and
            # sends it once a controller is reachable again (tried here every heartbeat interval).
            if not self._alter_resend_pending and any(r.alter_in_flight is not None for r in self.replicas.values()):
                self._alter_resend_pending = True
                self.schedule(self.config.broker_heartbeat_interval_ms, self._resend_alter_partitions)
            return
        fetcher = self.fetchers.get(getattr(peer, "broker_id", -1))
        if fetcher is not None and fetcher.in_flight is not None:
            fetcher.on_failure()

    # --- what the fetchers ask of their broker (FetcherHost; the rest is ReplicaManager's) ---------
    def next_request_id(self) -> int:
        self._request_ids += 1
        return self._request_ids

    # --- metadata (KRaft metadata log, long-polled from the controller) ---------------------
    def fetch_metadata(self) -> None:
        """Long-poll the metadata log from the controller; a fetch unanswered within the long-poll wait
        plus controller.quorum.request.timeout.ms is given up and sent again."""
        if not self.alive or self._metadata_fetch_pending or not self.registered:
            return
        self._metadata_fetch_pending = True
        self._metadata_fetch_sent = False
        self._metadata_fetch_id += 1
        self._send_metadata_fetch()
        self.schedule(METADATA_FETCH_TIMEOUT_MS, self._metadata_fetch_expired, self._metadata_fetch_id)

    def _send_metadata_fetch(self) -> None:
        if (not self._metadata_fetch_pending or self._metadata_fetch_sent
                or not self.controller_connection().when_ready(self._to_controller)):
            return
        self._metadata_fetch_sent = True
        self.network.send(self, self.controller, m.MetadataFetch(self.broker_id, self.incarnation, self.metadata_offset))

    def _metadata_fetch_expired(self, fetch_id: int) -> None:
        if self._metadata_fetch_pending and self._metadata_fetch_id == fetch_id:
            self._metadata_fetch_pending = False
            if self._metadata_fetch_sent:  # KafkaRaftClient: a timed-out request closes the connection
                self.controller_connection().close()
            self.fetch_metadata()
