"""Build, wire and start a whole simulated cluster from a scenario.

Construction never advances time or starts processes (build, then start), so components stay
testable in isolation. Every component gets its own random stream keyed by its scope.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

import simpy

from sim.model.partition import PartitionSpec
from sim.model.consumer import Consumer
from sim.model.controller import Controller
from sim.model.distributions import make_latency
from sim.model.faults import ACTIONS, FaultInjector
from sim.model.group import GroupCoordinator
from sim.model.hardware import broker_class, install_hardware
from sim.model.network import Network
from sim.model.operator import OPERATOR_ACTIONS
from sim.model.producer import Producer

if TYPE_CHECKING:
    from sim.model.recorder import Recorder
    from sim.model.rng import RandomStreams
    from sim.scenario.schema import Scenario

__all__ = ["Cluster", "assign_replicas"]


def assign_replicas(n_brokers: int, partitions: int, rf: int, start: int, racks: list[str] | None) -> list[tuple]:
    """Replica lists like Kafka's assignReplicasToBrokers: round-robin leaders, followers next.

    With racks, brokers are first interleaved rack by rack (getRackAlternatedBrokerList), and each
    follower is the next broker of that list on a rack the partition has no replica on yet, until
    every rack has one (AdminUtils.assignReplicasToBrokersRackAware): a partition's replicas land
    on min(rf, racks) distinct racks even when the racks hold different numbers of brokers.
    """
    order = list(range(n_brokers))
    if not racks:
        return [tuple(order[(start + p + k) % n_brokers] for k in range(rf)) for p in range(partitions)]
    by_rack: dict[str, list[int]] = {}
    for b, r in enumerate(racks):
        by_rack.setdefault(r, []).append(b)
    order = [b for group in itertools.zip_longest(*by_rack.values()) for b in group if b is not None]
    n_racks = len(by_rack)
    out = []
    for p in range(partitions):
        first = (start + p) % n_brokers
        chosen = [order[first]]
        used = {racks[order[first]]}
        k = first
        while len(chosen) < rf:
            k = (k + 1) % n_brokers
            b = order[k]
            # AdminUtils: skip a broker on a rack that already has a replica, unless every rack has one
            if b in chosen or (racks[b] in used and len(used) < n_racks):
                continue
            chosen.append(b)
            used.add(racks[b])
        out.append(tuple(chosen))
    return out


class Cluster:
    """Brokers, controller, clients, network and faults of one run."""

    def __init__(self, env: simpy.Environment, scenario: "Scenario", streams: "RandomStreams",
                 recorder: "Recorder"):
        self.env = env
        self.scenario = scenario
        self.recorder = recorder
        cfg = scenario.cluster
        # loss draws from its own stream, so configuring loss never shifts the latency draws
        self.network = Network(env, make_latency(scenario.network.latency, streams.stream("cluster.network")),
                               scenario.network.bandwidth, loss_rng=streams.stream("cluster.network.loss"))
        assign_rng = streams.stream("cluster.assignment")
        self.partitions: list[PartitionSpec] = []
        self.topic_partitions: dict[str, list[int]] = {}
        names = scenario.partition_names()
        for t in scenario.topics:
            start = int(assign_rng.integers(cfg.brokers))
            idx = []
            for p, replicas in enumerate(assign_replicas(cfg.brokers, t.partitions, t.replication_factor, start,
                                                         cfg.racks or cfg.zones)):
                spec = PartitionSpec(len(self.partitions), names[len(self.partitions)], replicas, t.min_insync_replicas,
                                     t.unclean_leader_election_enable, t.flush_messages, t.flush_ms)
                idx.append(spec.index)
                self.partitions.append(spec)
            self.topic_partitions[t.name] = idx
        self.partition_index = {s.name: s.index for s in self.partitions}
        broker_cls = broker_class(cfg)  # Broker, or HardwareBroker when request handling costs time
        self.brokers = [broker_cls(env, b, cfg, self.partitions, self.network, recorder, streams.stream(f"cluster.broker{b}"))
                        for b in range(cfg.brokers)]
        for b in self.brokers:  # broker.rack defaults to the broker's zone (an availability zone is the usual rack)
            b.rack = (cfg.racks or cfg.zones or [None] * cfg.brokers)[b.broker_id]
            b.zone = cfg.zones[b.broker_id] if cfg.zones else None
        self.controller = Controller(env, cfg, self.partitions, self.network, recorder)
        self.controller.brokers_by_id = {b.broker_id: b for b in self.brokers}
        for b in self.brokers:
            b.controller = self.controller
            b.cluster_brokers = self.brokers
            self.network.attach(b)
        self.network.attach(self.controller)
        batch_ids = itertools.count()
        end_ms = scenario.duration
        self.producers: list[Producer] = []
        for spec, name in scenario.producer_instances():
            index = len(self.producers)
            p = Producer(env, index, name, spec, self.topic_partitions[spec.topic], self.brokers, self.network,
                         recorder, streams.stream(f"cluster.{name}"), end_ms, producer_id=1000 + index,
                         batch_ids=batch_ids, workload_rng=streams.stream(f"cluster.{name}.workload"))
            self.producers.append(p)
            self.network.attach(p)
        self.consumers: list[Consumer] = []
        self.group_offsets: dict[str, dict[int, int]] = {}  # group id -> committed offsets (__consumer_offsets)
        classic = {c.group: c.partition_assignment_strategy for c in scenario.consumers if c.group_protocol == "classic"}
        self.group_coordinator = None
        if classic:
            self.group_coordinator = GroupCoordinator(env, self.network, recorder, self.group_offsets, classic)
            self.network.attach(self.group_coordinator)
        for spec, i, name in scenario.consumer_instances():
            parts = self.topic_partitions[spec.topic]
            index = len(self.consumers)
            assigned = [p for k, p in enumerate(parts) if k * spec.instances // len(parts) == i]
            group = spec.group_protocol == "classic"
            c = Consumer(env, index, name, spec, [] if group else assigned, self.brokers, self.network,
                         recorder, streams.stream(f"cluster.consumer.{name}"), group_offsets=self.group_offsets,
                         coordinator=self.group_coordinator if group else None, topic_partitions=parts)
            self.consumers.append(c)
            self.network.attach(c)
        self.faults = FaultInjector(env, list(scenario.faults), self.brokers, self.controller,
                                    self.partition_index, recorder, list(scenario.random_faults),
                                    streams.stream("cluster.faults"), end_ms, streams=streams, racks=cfg.racks,
                                    clients={c.name: c for c in (*self.producers, *self.consumers)},
                                    actions={**ACTIONS, **OPERATOR_ACTIONS})
        self.faults.network = self.network
        # brokers that operator actions add (add_broker): built and wired now, started when added
        # (their ids follow cluster.brokers: sim/scenario/checks.py checks it)
        added = sorted(f.broker_id for f in scenario.faults if f.kind == "add_broker")
        self.spare_brokers = {b: broker_cls(env, b, cfg, self.partitions, self.network, recorder,
                                            streams.stream(f"cluster.broker{b}")) for b in added}
        for b in self.spare_brokers.values():
            b.rack = b.zone = None
            b.controller = self.controller
            b.cluster_brokers = self.brokers  # the cluster's list: the broker joins it when added
            self.network.attach(b)
        self.faults.spare_brokers = self.spare_brokers
        if any(f.kind == "degrade" for f in (*scenario.faults, *scenario.random_faults)):  # random ones too
            self.faults.net_rng = streams.stream("cluster.network.faults")
        if cfg.zones:
            self.place_in_zones(streams)
        install_hardware(self)  # cluster.hardware: NICs, request threads, disks, client capacity

    def place_in_zones(self, streams: "RandomStreams") -> None:
        """Zones: the controller and clients join their zone; links between zones get the extra latency."""
        cfg, net = self.scenario.cluster, self.scenario.network
        first = cfg.zones[0]
        self.controller.zone = net.controller_zone or first
        for c in (*self.producers, *self.consumers):
            c.zone = net.client_zone or first
        if net.zone_latency is None:
            return
        extra = make_latency(net.zone_latency, streams.stream("cluster.network.zones"))
        eps = self.network.endpoints
        for a in eps:
            for b in eps:
                if a is not b and a.zone != b.zone:
                    self.network.set_zone_latency(a, b, extra)

    def start(self) -> None:
        """Bootstrap the metadata, then start every process."""
        self.controller.bootstrap()
        self.controller.start()
        for b in self.brokers:
            b.start(bootstrapped=True)
        # The run begins from a settled cluster: brokers already know the initial leaders.
        for b in self.brokers:
            b.apply_metadata(list(self.controller.log), len(self.controller.log))
            b.fetch_metadata()
        for p in self.producers:
            p.start()
        for c in self.consumers:
            if c.config.start > 0:
                c.schedule(c.config.start, c.start)  # consumers.start: read what was written before
            else:
                c.start()
        self.faults.start()

    def finish(self) -> None:
        """Stop clients (pending batches become indeterminate) and snapshot the final logs."""
        for p in self.producers:
            p.finish()
        for c in self.consumers:
            c.finish()
        self.snapshot_logs()
        by_name = lambda counts: {t.__name__: n for t, n in sorted(counts.items(), key=lambda kv: kv[0].__name__)}  # noqa: E731
        self.recorder.messages_sent = by_name(self.network.sent)
        self.recorder.messages_dropped = by_name(self.network.dropped)

    def _successor(self, state, holder: int) -> int:
        """The replica an election still pending at the end would make leader, or -1 if none is pending.

        A run can end while the controller still names a leader whose process is gone (crashed, or
        restarted and not yet registered again: its old session has not expired, so it is not fenced
        yet). Its clients see an outage, not a loss: the controller will fence it and elect the first
        live, registered ISR member, as it would have a few seconds later. Reading the gone leader's
        stale checkpointed HW instead would count every record above it as lost.
        """
        if holder < 0 or state.leader != holder:
            return -1
        gone = self.brokers[holder]
        if gone.alive and gone.registered:
            return -1
        for b in state.isr:
            broker = self.brokers[b]
            if b != holder and broker.alive and broker.registered and self.controller.is_live(b):
                return b
        return -1

    def snapshot_logs(self) -> None:
        """Emit every partition's final log, as held by its leader (or last ISR member if offline),
        and the committed prefix of every other replica (for the log-matching invariant)."""
        rec = self.recorder
        for spec in self.partitions:
            state = self.controller.state[spec.index]
            # offline: the last ISR member, or with ELR (whose ISR may be empty) the controller's pick
            holder = state.leader if state.leader >= 0 else (state.isr[0] if state.isr
                                                             else self.controller.last_holder(spec.index))
            successor = self._successor(state, holder)
            for b in state.replicas:  # the assignment at the end (a reassignment may have changed it)
                broker = self.brokers[b]
                log = broker.logs.get(spec.index)
                if log is None:
                    continue  # a replica added here that this broker has not created yet
                hw = log.hw if broker.alive else log.checkpointed_hw
                if b == successor:
                    # the election still to come makes its whole log the partition's (KIP-101: the
                    # others truncate to it), committed once the remaining ISR catches up
                    rec.final_log(spec.index, log.base, log.batch_id, log.count, log.epoch, log.leo)
                elif b == holder and successor < 0:
                    rec.final_log(spec.index, log.base, log.batch_id, log.count, log.epoch, hw)
                else:
                    rec.replica_log(b, spec.index, log.base, log.batch_id, log.count, hw)
