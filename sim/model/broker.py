"""A Kafka broker (KafkaApis + ReplicaManager): a node that hosts partition replicas.

Follows Kafka at batch granularity. The broker dispatches requests, applies the KRaft metadata
log (leadership and ISR changes), registers and heartbeats, serves fetches (incremental fetch
sessions, KIP-227, and the fetch purgatory) and runs the periodic ISR expiry and HW checkpoint.
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
from sim.model.disk import Disk, FlushPolicy
from sim.model.fetcher import FetchSession, ParkedFetch, ReplicaFetcher
from sim.model.log import Log
from sim.model.node import Node
from sim.model.partition import DelayedProduce, Partition, PartitionSpec, purgatory_entry
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


class Broker(Node):
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
        self.fetch_sessions: dict[int, FetchSession] = {}  # follower broker id -> its fetch session
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

    # --- periodic processes ----------------------------------------------------------------
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

    def expire_lagging_replicas(self):
        """Shrink the ISR of followers not caught up within replica.lag.time.max.ms.

        ReplicaManager schedules the check every lag/2, so a stuck follower leaves the ISR
        1.0-1.5x replica.lag.time.max.ms after it last caught up.
        """
        lag = self.config.replica_lag_time_max_ms
        try:
            while True:
                yield self.env.timeout(lag / 2)
                if self._paused is not None:
                    yield self.until_resumed()
                # The check runs on KafkaScheduler (monotonic), but compares the wall clock
                # (Partition.getOutOfSyncReplicas: time.milliseconds()) with lastCaughtUpTimeMs.
                now = self.wall_ms()
                for r in self.replicas.values():
                    r.maybe_shrink_isr(now)
        except simpy.Interrupt:
            return

    def checkpoint_high_watermarks(self):
        """Write every replica's HW to the checkpoint file (replica.high.watermark.checkpoint.interval.ms)."""
        try:
            while True:
                yield self.env.timeout(self.config.replica_high_watermark_checkpoint_interval_ms)
                if self._paused is not None:
                    yield self.until_resumed()
                for log in self.logs.values():
                    log.checkpointed_hw = log.hw
        except simpy.Interrupt:
            return

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

    # --- what the fetchers ask of their broker (FetcherHost) -------------------------------------
    def next_request_id(self) -> int:
        self._request_ids += 1
        return self._request_ids

    def next_session_id(self) -> int:
        """A new fetch session id; never reused, even by a later incarnation."""
        self._session_ids += 1
        return self._session_ids

    def broker_endpoint(self, broker_id: int) -> "Broker":
        return self.cluster_brokers[broker_id]

    def _fetch_timed_out(self, req: m.FetchRequest) -> None:
        """replica.socket.timeout.ms passed without an answer: the fetcher closes its connection to the
        leader (ReplicaFetcherBlockingSend: NetworkClient.close), with what is still queued on it."""
        for leader, fetcher in self.fetchers.items():
            if fetcher.in_flight is req:
                self.connection_to(leader).close()
                fetcher.on_failure()

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

    def apply_metadata(self, records: list, end_offset: int) -> None:
        """Apply committed metadata records: broker fencing and partition leadership/ISR."""
        self.metadata_offset = end_offset
        # Apply the batch as one delta (as a broker loads the metadata log): only the latest
        # state of each partition matters, so a restarted broker never replays old leaderships.
        latest: dict[int, m.PartitionRecord] = {}
        unfenced: list[int] = []
        for rec in records:
            # ("fence" | "unfence" | "controlled_shutdown", broker id) or ("register", broker id, epoch)
            if type(rec) is tuple:
                if rec[0] == "fence":
                    self.fenced.add(rec[1])
                elif rec[0] == "unfence":
                    self.fenced.discard(rec[1])
                    unfenced.append(rec[1])
                elif rec[0] == "register":
                    self.broker_epochs[rec[1]] = rec[2]
                    self.shutting_down_brokers.discard(rec[1])
                elif rec[0] == "controlled_shutdown":
                    self.shutting_down_brokers.add(rec[1])
            else:
                latest[rec.partition] = rec
        me = self.broker_id
        for rec in latest.values():
            self.metadata[rec.partition] = rec
            r = self.replicas.get(rec.partition)
            if r is None:
                if me not in rec.replicas:
                    continue
                r = self.create_replica(rec.partition)  # reassigned here
            elif me not in rec.replicas:
                self.delete_replica(r)  # reassigned away
                continue
            if rec.leader_epoch > r.leader_epoch:
                if rec.leader != me:
                    self.make_follower(r, rec, start_fetching=False)
                elif rec.leader_broker_epoch == self.incarnation:
                    self.make_leader(r, rec)
                else:
                    # Elected while our previous incarnation was alive: that leadership died with
                    # it (Kafka's controller has already moved it; here the election may still be
                    # queued). Wait, leaderless, for the next leader epoch.
                    self.make_follower(r, rec, start_fetching=False, leader=-1)
            else:
                r.apply_isr_record(rec)
        if unfenced:
            for r in self.replicas.values():
                if r.is_leader and any(x in r.remote and x not in r.isr for x in unfenced):
                    r.maybe_expand_isr()
        # One fetch per leader for all partitions this delta moved to it (addPartitions).
        for fetcher in self.fetchers.values():
            fetcher.maybe_fetch()
        if self.starting and self.metadata_offset >= self.registration_offset:
            # BrokerLifecycleManager: caught up past our registration, heartbeat at once to be
            # unfenced (rather than at the next periodic heartbeat).
            self.heartbeat()
        if self.shutting_down:
            self.request_shutdown(resend=False)  # caught up with the moves: ask again at once

    def create_replica(self, p: int) -> Partition:
        """A replica a reassignment adds here (ReplicaManager.applyDelta -> getOrCreatePartition): an empty
        log, then a follower that copies the leader's log from offset 0."""
        spec = self.partitions[p]
        self.disk.add_log(p, Log(), FlushPolicy(spec.flush_messages, spec.flush_ms,
                                                self.config.log_flush_scheduler_interval_ms))
        r = self.replicas[p] = Partition(self, spec, self.logs[p], self.effective_min_isr(spec))
        self.recorder.event(self.env.now, "replica_created", self.broker_id, p, 0)
        return r

    def delete_replica(self, r: Partition) -> None:
        """A replica a reassignment removed from here (ReplicaManager.stopPartitions with deletePartition):
        it stops following and its log is deleted."""
        p = r.spec.index
        if r.is_leader:
            r.fail_delayed_produce(m.NOT_LEADER_OR_FOLLOWER)
            self.wake_consumers(r)
        self._stop_following(r)
        leo = r.log.leo
        del self.replicas[p]
        self.out_of_isr.discard(p)
        self.disk.remove_log(p)
        self.recorder.event(self.env.now, "replica_deleted", self.broker_id, p, leo)

    def make_leader(self, r: Partition, rec: m.PartitionRecord) -> None:
        """Become leader in a new epoch (Partition.makeLeader)."""
        self._stop_following(r)
        now = self.env.now
        r.make_leader(rec, self.wall_ms())  # resetReplicaState: lastCaughtUpTimeMs on the wall clock
        self.recorder.event(now, "became_leader", self.broker_id, r.spec.index, rec.leader_epoch)
        self.track_isr(r)
        r.maybe_increment_hw()

    def track_isr(self, r: Partition) -> None:
        """Keep `out_of_isr` (partitions led here whose ISR lacks some replica) up to date."""
        if r.is_leader and len(r.isr) < len(r.replicas):
            self.out_of_isr.add(r.spec.index)
        else:
            self.out_of_isr.discard(r.spec.index)

    def make_follower(self, r: Partition, rec: m.PartitionRecord, start_fetching: bool = True,
                      leader: int | None = None) -> None:
        """Follow the new leader (Partition.makeFollower); truncation happens on first fetch.

        `leader` overrides the record's leader (-1: none to follow)."""
        leader = rec.leader if leader is None else leader
        if r.is_leader:
            r.fail_delayed_produce(m.NOT_LEADER_OR_FOLLOWER)
            self.mark_dirty(r, wake=True)  # parked fetches answer now: NOT_LEADER_OR_FOLLOWER
            self.wake_consumers(r)
        self._stop_following(r)
        r.make_follower(rec, leader)
        self.track_isr(r)
        if self.config.log_truncation == "high_watermark":
            self.truncate_to_high_watermark(r)
        if leader >= 0:
            fetcher = self.fetchers.get(leader)
            if fetcher is None:
                fetcher = self.fetchers[leader] = ReplicaFetcher(self, leader)
            fetcher.add_partition(r.spec.index)
            if start_fetching:
                fetcher.maybe_fetch()

    def _stop_following(self, r: Partition) -> None:
        fetcher = self.fetchers.get(r.leader_id)
        if fetcher is not None:
            fetcher.remove_partition(r.spec.index)

    def truncate_to_high_watermark(self, r: Partition) -> None:
        """Before KIP-101 (0.11), `log.truncation: high_watermark`: a replica that becomes a follower
        truncates its log to its own high watermark and fetches on from there (ReplicaManager.makeFollowers
        in 0.10: logManager.truncateTo(hw), KAFKA-551). Its HW lags the leader's by a fetch round, or
        comes from the HW checkpoint after a restart, so this can drop committed records; if it is then
        elected before fetching them again, they are lost (KIP-101 scenario 1)."""
        log = r.log
        target = min(log.hw, log.leo)
        if target >= log.leo:
            return
        removed = self.disk.truncate(r.spec.index, target)
        self.recorder.event(self.env.now, "truncation", self.broker_id, r.spec.index, target,
                            f"removed={removed} to its high watermark (log.truncation: high_watermark)", removed=removed)

    def truncate_on_divergence(self, r: Partition, leader_epoch: int, leader_end_offset: int) -> None:
        """KIP-279/595: truncate to the end of the last epoch both logs agree on."""
        log = r.log
        # our end of the largest epoch <= the leader's (unknown: -1, e.g. for leader_epoch -1)
        _, local_end = log.end_offset_for_epoch(leader_epoch)
        target = leader_end_offset if local_end < 0 else min(leader_end_offset, local_end)
        target = max(0, min(target, log.leo))
        removed = self.disk.truncate(r.spec.index, target)
        self.recorder.event(self.env.now, "truncation", self.broker_id, r.spec.index, target,
                            f"removed={removed} leader_epoch={leader_epoch} end_offset={leader_end_offset}",
                            removed=removed, leader_epoch=leader_epoch, end_offset=leader_end_offset)

    # --- produce path (leader) ---------------------------------------------------------------
    def effective_min_isr(self, spec: PartitionSpec) -> int:
        # KAFKA-15583 (3.7): the min ISR is capped at the replication factor.
        if self.strict_min_isr:
            return min(spec.min_isr, len(spec.replicas))
        return spec.min_isr

    def handle_produce(self, req: m.ProduceRequest) -> None:
        """Append each batch on its partition leader; answer now (acks 0/1) or from purgatory."""
        now = self.env.now
        acks = req.acks
        results: list = [None] * len(req.batches)
        waiting = []
        touched = []
        replicas = self.replicas
        appended = self.recorder.appended
        for k, batch in enumerate(req.batches):
            r = replicas.get(batch.partition)
            if r is None or not r.is_leader:
                results[k] = (batch, m.NOT_LEADER_OR_FOLLOWER, -1)
                continue
            error, base, appended_now = r.append_records_to_leader(batch, acks)
            if error != m.NONE:
                results[k] = (batch, error, -1)
                continue
            if appended_now:
                appended(now, self.broker_id, batch.partition, base, batch.batch_id, r.leader_epoch)
                touched.append(r)
            if acks == -1 or acks >= 2:
                waiting.append((r, base + batch.record_count, k))
            else:
                results[k] = (batch, m.NONE, base)
        for r in touched:
            self.mark_dirty(r, wake=True)
            # Partition.appendRecordsToLeader: maybeIncrementLeaderHW after every leader append,
            # whatever the acks (the ISR may be just the leader: with RF 1 only this moves the HW).
            r.maybe_increment_hw()
        if acks == 0:
            # KafkaApis.handleProduceRequest: acks=0 gets no response; on any error the broker
            # closes the connection instead, so the client notices and refreshes its metadata.
            if any(res is not None and res[1] != m.NONE for res in results):
                self.network.close_connection(self, req.client)
            return
        if not waiting:
            self._respond_produce(req, results)
            return
        delayed = DelayedProduce(req, results, len(waiting), self._respond_produce)
        parked = []
        for r, required, k in waiting:
            r.watch_produce(purgatory_entry((required, delayed, k)), acks)
            if not parked or parked[-1] is not r:
                parked.append(r)
        # DelayedOperationPurgatory.tryCompleteElseWatch: try to complete before waiting. A retry
        # answered as a duplicate may already be below the HW; parked, it would wait for the next
        # HW advance, which never comes when every in-flight slot holds such a duplicate.
        for r in parked:
            r.try_complete_delayed_produce()
            r.check_legacy_waiters()
        if not delayed.done:
            tq = self.produce_timeouts.get(req.timeout_ms)
            if tq is None:
                tq = self.produce_timeouts[req.timeout_ms] = TimeoutQueue(self.env, req.timeout_ms,
                                                                          self.deferring(DelayedProduce.expire))
            delayed.timer = tq
            tq.add(delayed)

    def _respond_produce(self, req: m.ProduceRequest, results: list) -> None:
        self.network.send(self, req.client, m.ProduceResponse(req.request_id, self.broker_id, results),
                          32 * len(results))

    # --- ISR upkeep: what a Partition asks of its broker ----------------------------------------
    def isr_eligible(self, broker_id: int, broker_epoch: int | None = -1) -> bool:
        """Partition.isReplicaIsrEligible: an unfenced broker not in controlled shutdown (KIP-841) whose
        last fetch carried the broker epoch the metadata has for it (KIP-903, 3.5+: a new incarnation
        does not join on what its previous one fetched; `broker_epoch` None: no fetch yet, -1: not
        checked). ZooKeeper mode checks only that the broker is alive."""
        if broker_id in self.fenced:
            return False
        if self.zookeeper_mode:
            return True
        if broker_id in self.shutting_down_brokers or broker_epoch is None:
            return False
        return broker_epoch == -1 or broker_epoch == self.broker_epochs.get(broker_id, broker_epoch)

    def isr_broker_epochs(self, r: Partition, isr: tuple) -> dict:
        """KIP-903 NewIsrWithEpochs of an AlterPartition: each follower's epoch from its last fetch (-1: none)."""
        out = {}
        for b in isr:
            rr = r.remote.get(b)
            out[b] = rr.broker_epoch if rr is not None and rr.broker_epoch is not None else -1
        return out

    def fetch_parked(self, follower: int, p: int) -> bool:
        """Is `follower` fetching partition `p` right now (its session's fetch parked here)?"""
        s = self.fetch_sessions.get(follower)
        return s is not None and s.parked is not None and p in s.partitions

    def send_alter_partition(self, r: Partition) -> None:
        """Send the partition's pending ISR to the controller (AlterPartitionManager)."""
        req = m.AlterPartition(self.next_request_id(), self.broker_id, self.incarnation, r.spec.index, r.leader_epoch,
                               r.partition_epoch, r.pending_isr, self.isr_broker_epochs(r, r.pending_isr))
        r.alter_in_flight = req
        self.alter_timeouts.add(req)
        if self.controller_connection().when_ready(self._to_controller):
            self.network.send(self, self.controller, req)
        else:
            self._alter_unsent.append(req)

    def _resend_alter_partitions(self) -> None:
        self._alter_resend_pending = False
        for r in self.replicas.values():
            if r.alter_in_flight is not None and r.is_leader and r.pending_isr is not None:
                self.alter_timeouts.done(r.alter_in_flight)
                self.send_alter_partition(r)

    def _alter_partition_timed_out(self, req: m.AlterPartition) -> None:
        """AlterPartitionManager: the request or its answer was lost; send the proposal again (a
        proposal the controller already applied is refused as stale, and the change itself
        arrives with the metadata log)."""
        r = self.replicas.get(req.partition)
        if r is not None and r.alter_in_flight is req and r.is_leader and r.pending_isr is not None:
            if req not in self._alter_unsent:
                self.controller_connection().close()  # NetworkClient: a timed-out request closes the connection
            self.send_alter_partition(r)

    def on_alter_partition_response(self, resp: m.AlterPartitionResponse) -> None:
        r = self.replicas.get(resp.partition)
        if r is None:
            return
        mine = r.alter_in_flight is not None and r.alter_in_flight.request_id == resp.request_id
        if mine:
            self.alter_timeouts.done(r.alter_in_flight)
            r.alter_in_flight = None
        rec = resp.record
        if resp.error != m.NONE or rec is None:
            if mine:
                r.pending_isr = None
            return
        r.apply_isr_record(rec)

    # --- fetch path (leader side) ----------------------------------------------------------
    def handle_fetch(self, req: m.FetchRequest) -> None:
        """Serve a follower or consumer fetch; park it if there is nothing to return."""
        if req.replica_id >= 0:
            self.handle_follower_fetch(req)
            return
        results, has_data, budget = self._read_for_fetch(req)
        if has_data or req.max_wait_ms <= 0:
            self._respond_fetch(req, results, budget)
            return
        parked = ParkedFetch(req)
        for pf in req.partitions:
            r = self.replicas.get(pf.partition)
            if r is not None and r.is_leader:
                lst = r.parked_consumers
                if len(lst) > 16:  # fetches completed through another partition linger here
                    lst[:] = [f for f in lst if not f.done]
                lst.append(parked)
        self._expire_parked_later(parked)

    def _expire_parked_later(self, parked: ParkedFetch) -> None:
        self.schedule(parked.request.max_wait_ms, self._complete_fetch, parked)

    def handle_follower_fetch(self, req: m.FetchRequest) -> None:
        """A follower fetch within its incremental fetch session (KIP-227)."""
        follower = req.replica_id
        if req.full:
            session = FetchSession(req.session_id, {pf.partition for pf in req.partitions})
            old = self.fetch_sessions.get(follower)
            if old is not None and old.parked is not None:
                old.parked.done = True
            self.fetch_sessions[follower] = session
        else:
            session = self.fetch_sessions.get(follower)
            if session is None or session.session_id != req.session_id:
                self.network.send(self, req.client, m.FetchResponse(req.request_id, self.broker_id, [], session_error=True))
                return
        # Partitions where this follower is outside the ISR: reconsider them on every fetch, as
        # Kafka does, even when the follower lists nothing new (it may be caught up and idle).
        for p in (session.partitions & self.out_of_isr) if self.out_of_isr else ():
            r = self.replicas.get(p)
            if r is not None and r.is_leader and follower in r.remote and follower not in r.isr:
                r.maybe_expand_isr(fetching=follower)
        results, has_data, budget = self._read_session(req, session)
        if has_data or req.max_wait_ms <= 0:
            self._respond_fetch(req, results, budget)
            return
        parked = ParkedFetch(req)
        session.parked = parked
        self._expire_parked_later(parked)

    def _read_session(self, req: m.FetchRequest, session: FetchSession,
                      serve_listed: bool = True) -> tuple[list, bool, int]:
        """Read for the listed partitions (unless they were served already), then for those that
        changed on our side; also returns the response byte budget left."""
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
            r = self.replicas.get(p)
            if r is None or not r.is_leader:
                results.append(m.PartitionData(p, m.NOT_LEADER_OR_FOLLOWER))
                has_data = True
                continue
            log = r.log
            rr = r.remote.get(follower)
            fetch_offset = rr.leo if rr is not None else log.leo
            pd = self._read_partition(p, log, fetch_offset, log.leo, req, budget)
            if self.leader_quota is not None and p in self.throttled_partitions:
                pd = self._throttle(r, follower, pd)
            if pd.base:
                budget -= sum(pd.nbytes)
                has_data = True
            results.append(pd)
        # Marks made while serving this very request are already answered; what a full
        # response could not carry (byte limits) stays dirty for the next one.
        if listed and session.dirty:
            session.dirty -= listed
        replicas = self.replicas
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
        results = []
        has_data = False
        budget = req.max_bytes
        follower = req.replica_id
        for pf in req.partitions:
            p = pf.partition
            r = self.replicas.get(p)
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
                r.update_follower_fetch_state(follower, pf.fetch_offset, self.wall_ms(), req.replica_epoch)
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
            if follower >= 0 and self.leader_quota is not None and p in self.throttled_partitions:
                pd = self._throttle(r, follower, pd)
            if follower >= 0 and self.hw_before_follower_update:
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
        now = self.env.now
        if follower not in r.isr and self.leader_quota.exceeded(now):
            return m.PartitionData(pd.partition, m.NONE, pd.high_watermark)
        if pd.base:
            self.leader_quota.record(now, sum(pd.nbytes))
        return pd

    def _respond_fetch(self, req: m.FetchRequest, results: list, budget: int) -> None:
        """Send what was read; `budget` is what the reads left of req.max_bytes."""
        nbytes = req.max_bytes - budget + 32 * len(results)
        self.network.send(self, req.client, m.FetchResponse(req.request_id, self.broker_id, results), nbytes)

    def _complete_fetch(self, parked: ParkedFetch) -> None:
        if parked.done or not self.alive:
            return
        parked.done = True
        req = parked.request
        if req.replica_id >= 0:
            session = self.fetch_sessions.get(req.replica_id)
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
        sessions = self.fetch_sessions
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
