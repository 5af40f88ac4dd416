"""The fault schedule: faults of any kind at given or random times, their end, and the heal at the end.

Each fault kind is a :class:`FaultAction` in :data:`ACTIONS` (what it does to its target when it
starts and ends); its spec is a class of the ``FaultSpec`` union in sim/scenario/faults.py. The
injector is the same for every kind: it resolves the target, emits ``fault_start``, applies the
action, and emits ``fault_end`` when the fault ends (after the spec's ``heal_after``, a random
source's downtime, or the heal at the end of ``duration``). A fault whose target is already down
is a ``fault_skipped``. The events carry the fault kind, its index and source list and its target
as structured fields (sim/model/events.py), so metrics never match a kind by name.

The injector is omniscient like a Jepsen nemesis: "the leader of events-0" is resolved from the
controller's committed state at the moment of the fault.

Random fault processes (``random_faults``) are sources of scheduled faults of any kind: each
firing fills the process's template with the time, a target and a repair time and starts it like
a scheduled fault. ``per: cluster`` is one Poisson stream of failures on random live brokers;
``per: broker | rack | link`` runs one alternating renewal process per unit (up for an exponential
time, then down for the repair time). Each process, and each unit of it, draws from its own
random stream, so adding a client or another process never moves its faults.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import simpy
from simpy.events import URGENT

from sim.model.events import FAULT_END, FAULT_SKIPPED, FAULT_START
from sim.model.netfaults import fault_links, make_degradation

if TYPE_CHECKING:
    from sim.model.broker import Broker
    from sim.model.controller import Controller
    from sim.model.recorder import Recorder
    from sim.model.rng import RandomStreams
    from sim.scenario.faults import FaultSpec, RandomFaultSpec

__all__ = ["FaultInjector", "FaultAction", "Crash", "Pause", "ControlledShutdown", "ControllerOutage", "PowerLoss",
           "DiskLoss", "SlowDisk", "NetworkPartition", "Degrade", "ClientCrash", "ClientPause", "ClockSkew", "LostFsync",
           "ACTIONS",
           "CONTROLLER"]

CONTROLLER = -2
"""The target id of a fault on the controller (its events' broker column holds -1)."""


class FaultAction:
    """What one fault kind does to a broker when it starts and when it ends."""

    kind: ClassVar[str]
    takes_down: ClassVar[bool]
    """The fault stops its target serving: failovers are measured from it and it counts as downtime."""
    kills_process: ClassVar[bool]
    """The fault ends the target's process: it comes back as a new incarnation (the invariants rely on it)."""

    def start(self, broker: "Broker") -> None:
        raise NotImplementedError

    def end(self, broker: "Broker") -> bool:
        """Undo the fault; False if there was nothing to undo (the broker is already back)."""
        raise NotImplementedError

    def start_with(self, node, spec) -> None:
        """Start the fault with its spec's parameters (a kind with parameters overrides this)."""
        self.start(node)

    def prepare(self, brokers: list["Broker"], env: simpy.Environment) -> None:
        """Once, before the run, when the scenario has this kind: set up what the fault needs (default: nothing)."""

    def bind(self, spec: "FaultSpec", targets: list[int], injector: "FaultInjector") -> "FaultAction":
        """The action of one fault on its targets: the kind's own action, or (for a kind that needs
        its spec or its whole target set, e.g. a network partition) a new one holding them."""
        return self


class Crash(FaultAction):
    """Process crash (SIGKILL) and, at its end, a restart."""

    kind = "crash"
    takes_down = True
    kills_process = True

    def start(self, broker: "Broker") -> None:
        broker.crash()

    def end(self, broker: "Broker") -> bool:
        if broker.alive:
            return False
        broker.restart()
        return True


class _LinkAction(FaultAction):
    """A fault on the links of its targets (sim/model/netfaults.py says which links)."""

    takes_down = False
    kills_process = False

    def __init__(self, links: dict[int, list[tuple]] | None = None, network=None):
        self.links, self.network = links or {}, network  # target broker id -> its (src, dst) links
        self.on: set[int] = set()

    def bind(self, spec, targets, injector) -> "FaultAction":
        return type(self)(fault_links(spec, targets, injector.brokers, injector.controller, injector.network),
                          injector.network).configured(spec, injector)

    def configured(self, spec, injector) -> "_LinkAction":
        return self

    def start(self, broker: "Broker") -> None:
        self.on.add(broker.broker_id)
        for src, dst in self.links.get(broker.broker_id, ()):
            self.apply(src, dst)

    def end(self, broker: "Broker") -> bool:
        if broker.broker_id not in self.on:
            return False
        self.on.discard(broker.broker_id)
        for src, dst in self.links.get(broker.broker_id, ()):
            self.undo(src, dst)
        return True


class NetworkPartition(_LinkAction):
    """A network partition: the target's chosen links lose every transmission until it heals (TCP
    retransmits, so what waits on a link arrives after the heal; sim/model/network.py)."""

    kind = "partition"
    takes_down = True  # the target stops serving whoever is cut off (failovers are measured from it)
    # What follows from a cut is the model's own timeouts, as in Kafka: the controller fences a broker
    # whose heartbeat requests stop arriving (BrokerHeartbeatManager.touch sets lastContactNs on
    # receipt; the session expires broker.session.timeout.ms later). A one-way cut stops them too:
    # the heartbeat in flight gets no answer, times out (broker.session.timeout.ms / 2), closes the
    # connection, and a new one needs a handshake the cut blocks (BrokerLifecycleManager,
    # NodeToControllerChannelManager); clients and followers give up after their request timeouts.

    def apply(self, src, dst) -> None:
        self.network.cut(src, dst)

    def undo(self, src, dst) -> None:
        self.network.uncut(src, dst)


class Degrade(_LinkAction):
    """Link degradation: extra latency and retransmitted loss on the target's chosen links."""

    kind = "degrade"

    def configured(self, spec, injector) -> "_LinkAction":
        self.degradation = make_degradation(spec, injector.net_rng)
        return self

    def apply(self, src, dst) -> None:
        self.network.degrade(src, dst, self.degradation)

    def undo(self, src, dst) -> None:
        self.network.restore(src, dst, self.degradation)


class _Hold(FaultAction):
    """A pause fault's hold on its nodes (Node.pause / resume); bound per fault, so each pause ends itself.

    Pauses of one node nest (Node.pause_depth): a pause of a paused node extends the freeze until
    the later of the two ends, and each fault has its own fault_start and fault_end. A pause whose
    node crashed meanwhile still ends at its time (fault_end), but resumes nothing: the process it
    froze is gone, and a restarted one (a new incarnation) was never paused by it.
    """

    takes_down = True
    kills_process = False

    def __init__(self) -> None:
        self.holds: dict[int, tuple[int, bool]] = {}  # id(node) -> (its incarnation, whether this fault holds it)

    def bind(self, spec, targets, injector) -> "FaultAction":
        return type(self)()

    def start(self, node) -> None:
        depth = node.pause_depth
        node.pause()
        self.holds[id(node)] = (node.incarnation, node.pause_depth > depth)

    def end(self, node) -> bool:
        hold = self.holds.pop(id(node), None)
        if hold is None:
            return False  # not started by this fault, or ended already (by the heal)
        incarnation, held = hold
        if held and node.incarnation == incarnation:
            node.resume()  # the node runs again only when no other pause holds it
        return True


class Pause(_Hold):
    """Process pause (GC, SIGSTOP, a frozen VM) of a broker or the controller: Node.pause / resume."""

    kind = "pause"


class ControlledShutdown(FaultAction):
    """SIGTERM: leadership moves away, logs are flushed, the broker stops; at its end, a restart.

    It does not end the process at fault_start (the broker serves, as a follower, until the
    controller lets it go a few ms later: `broker_shutdown`), so it is not `kills_process`.
    """

    kind = "controlled_shutdown"
    takes_down = True
    kills_process = False

    def start(self, broker: "Broker") -> None:
        broker.begin_controlled_shutdown()

    def end(self, broker: "Broker") -> bool:
        if broker.alive:
            if not broker.shutting_down:
                return False  # it never stopped (the SIGTERM waits for a pause to end, say): nothing to undo yet
            broker.restart_after_shutdown()  # due before the controller let it go: it restarts once stopped
            return True
        broker.restart()
        return True


class ControllerOutage(FaultAction):
    """The controller quorum has no leader: Controller.lose_quorum, then regain_quorum."""

    kind = "controller_outage"
    takes_down = False  # no broker stops serving; failovers are measured from the crashes it delays
    kills_process = False

    def start(self, controller: "Controller") -> None:
        controller.lose_quorum()

    def end(self, controller: "Controller") -> bool:
        if controller.alive:
            return False
        controller.regain_quorum()
        return True


class PowerLoss(FaultAction):
    """Power loss / OS crash of the host and, at its end, power back and a restart (recovery from the flushed prefix)."""

    kind = "power_loss"
    takes_down = True
    kills_process = True

    def prepare(self, brokers: list["Broker"], env: simpy.Environment) -> None:
        from sim.model.disk import FlushPolicy
        for b in brokers:
            cfg = b.config
            b.disk.track_writes(env, {p: FlushPolicy(b.partitions[p].flush_messages, b.partitions[p].flush_ms,
                                                     cfg.log_flush_scheduler_interval_ms) for p in b.logs},
                                cfg.os_dirty_expire_ms, cfg.os_dirty_writeback_ms)

    def start(self, broker: "Broker") -> None:
        broker.power_off()

    def end(self, broker: "Broker") -> bool:
        return Crash.end(self, broker)


class DiskLoss(FaultAction):
    """The host goes down and, at the fault's end, comes back on an empty disk and re-replicates."""

    kind = "disk_loss"
    takes_down = True
    kills_process = True

    def start(self, broker: "Broker") -> None:
        broker.lose_disk()

    def end(self, broker: "Broker") -> bool:
        return Crash.end(self, broker)


class SlowDisk(FaultAction):
    """Every write of the broker takes `latency` (+ `flush_latency` for an fsync) more while the fault lasts.

    Bound per fault: two slow-disk faults of one broker share its slow disk (the slower one's latency
    counts while both last), and each ends itself (sim/model/disk.py SlowDisk.add / drop).
    """

    kind = "slow_disk"
    takes_down = False
    kills_process = False

    def __init__(self) -> None:
        self.on: dict[int, object] = {}  # id(broker) -> the slow disk this fault made slower

    def bind(self, spec, targets, injector) -> "FaultAction":
        return type(self)()

    def start_with(self, broker: "Broker", spec) -> None:
        from sim.model.disk import SlowDisk as Slow
        slow = getattr(broker, "slow_disk", None)
        if slow is None:
            slow = broker.slow_disk = Slow(broker, spec.latency, spec.flush_latency, key=self)
            slow.install()
        else:
            slow.add(self, spec.latency, spec.flush_latency)
        self.on[id(broker)] = slow

    def end(self, broker: "Broker") -> bool:
        slow = self.on.pop(id(broker), None)
        if slow is None:
            return False  # not started by this fault, or ended already (by the heal)
        if slow.drop(self) and getattr(broker, "slow_disk", None) is slow:
            slow.remove()  # the last slow-disk fault of this broker: the writes still queued complete now
            broker.slow_disk = None
        return True


class ClientCrash(FaultAction):
    """A producer or consumer process crash and, at its end, a restart (a new incarnation)."""

    kind = "client_crash"
    takes_down = True
    kills_process = True

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def start(self, client) -> None:
        client.crash()

    def end(self, client) -> bool:
        if client.alive:
            return False
        client.restart()
        return True


class ClientPause(_Hold):
    """A stop-the-world pause of a consumer (GC, SIGSTOP): see Consumer.pause."""

    kind = "consumer_pause"


class ClockSkew(FaultAction):
    """The host's wall clock steps by `offset` (and drifts `drift_ppm`) and, at the end, is set right (Node.skew_clock).

    Nothing stops: the fault only changes what the node's wall-clock timers read (Node.wall_ms). Bound
    per fault, so two skews of one host add up and each takes back its own.
    """

    kind = "clock_skew"
    takes_down = False
    kills_process = False

    def __init__(self) -> None:
        self.on: set[int] = set()  # id() of the nodes this fault skewed

    def bind(self, spec, targets, injector) -> "FaultAction":
        return type(self)()

    def start_with(self, node, spec) -> None:
        node.skew_clock(self, spec.offset, spec.drift_ppm)
        self.on.add(id(node))

    def end(self, node) -> bool:
        if id(node) not in self.on:
            return False
        self.on.discard(id(node))
        return node.unskew_clock(self)


class LostFsync(FaultAction):
    """The broker's disk acknowledges fsyncs it does not do while the fault lasts (Disk.lose_fsyncs).

    Harmless until the host loses power: then what only an fsync had made durable is gone, although
    the broker (and, with acks=all, the producer) was told it was flushed.
    """

    kind = "lost_fsync"
    takes_down = False
    kills_process = False

    def __init__(self) -> None:
        self.on: set[int] = set()  # ids of the brokers whose disk this fault made lie

    def bind(self, spec, targets, injector) -> "FaultAction":
        return type(self)()

    def start(self, broker: "Broker") -> None:
        broker.disk.lose_fsyncs(True, broker.env.now)
        self.on.add(broker.broker_id)

    def end(self, broker: "Broker") -> bool:
        if broker.broker_id not in self.on:
            return False
        self.on.discard(broker.broker_id)
        broker.disk.lose_fsyncs(False, broker.env.now)
        return True


ACTIONS: dict[str, FaultAction] = {a.kind: a for a in (
    Crash(), Pause(), ControlledShutdown(), ControllerOutage(), PowerLoss(), DiskLoss(), SlowDisk(), NetworkPartition(),
    Degrade(), ClientCrash("producer_crash"), ClientCrash("consumer_crash"), ClientPause(), ClockSkew(), LostFsync())}
"""The action of each fault kind (the tags of the FaultSpec union)."""


def _same_source(a: "ActiveFault | None", b: "ActiveFault") -> bool:
    """Whether `a` is a firing of the same fault (source list and index) as `b`."""
    return a is not None and a.source == b.source and a.index == b.index


@dataclass(frozen=True, slots=True)
class ActiveFault:
    """A fault that has started on a broker and not yet ended: what its fault_end reports."""

    kind: str
    source: str  # "faults" or "random_faults"
    index: int
    target: str
    spec: object = None  # the fault's spec (its parameters)


class FaultInjector:
    """Runs each scheduled fault and each random fault source as its own process."""

    base_name = "faults"

    def __init__(self, env: simpy.Environment, faults: list["FaultSpec"], brokers: list["Broker"],
                 controller: "Controller", partition_index: dict[str, int], recorder: "Recorder",
                 random_faults: list["RandomFaultSpec"] | None = None, rng: np.random.Generator | None = None,
                 end_ms: float = float("inf"), actions: dict[str, FaultAction] | None = None,
                 streams: "RandomStreams | None" = None, racks: list[str] | None = None,
                 clients: dict | None = None):
        self.env = env
        self.faults = faults
        self.random_faults = random_faults or []
        if self.random_faults and rng is None:
            raise ValueError("random faults need a random stream")
        self.actions = ACTIONS if actions is None else actions
        missing = sorted({f.kind for f in (*self.faults, *self.random_faults)} - set(self.actions))
        if missing:
            raise ValueError(f"fault kind(s) {missing} have no action in sim/model/faults.py ACTIONS")
        self.rng = rng
        self.streams = streams  # the per-process streams of random faults
        self.racks = racks  # broker id -> its rack (per: rack)
        self.end_ms = end_ms
        self.brokers = brokers
        self.controller = controller
        self.partition_index = partition_index
        self.recorder = recorder
        self.active: dict[int, ActiveFault] = {}  # broker id -> the last fault it came under that has not ended
        # broker id -> every fault on it that started and has not ended, in start order: a broker may be under
        # several at once (a degrade, then a crash), and each one that starts ends (its own fault_end)
        self.open: dict[int, list[ActiveFault]] = {}
        for kind in dict.fromkeys(f.kind for f in (*self.faults, *self.random_faults)):
            self.actions[kind].prepare(brokers, env)
        self._bound: dict[tuple, FaultAction] = {}  # (target, source, index) -> its fault's action, when bound to the spec
        self.network = None  # the cluster's Network and a random stream for link faults (set by Cluster)
        self.net_rng: np.random.Generator | None = None
        self.clients = clients or {}  # producer and consumer instances by name
        self.active_clients: dict[str, ActiveFault] = {}  # client name -> the fault it is under
        self._healed = env.event()  # client faults without a heal time end at the heal
        self.healed = False  # the heal at `duration` has happened
        self.spare_brokers: dict[int, "Broker"] = {}  # brokers an add_broker action starts (set by Cluster)

    def start(self) -> list[simpy.Process]:
        procs = [self.env.process(self.inject_client(i, f) if getattr(f, "client", None) else
                                  self.actions[f.kind].run(self, i, f) if hasattr(self.actions[f.kind], "run") else
                                  self.inject(i, f))  # an operator action runs itself (sim/model/operator.py)
                 for i, f in enumerate(self.faults)]
        for i, f in enumerate(self.random_faults):
            if f.per == "cluster":
                procs.append(self.env.process(self.inject_randomly(i, f)))
            else:
                down: set[str] = set()  # the units of this process under a fault now (max_down)
                procs += [self.env.process(self.inject_per_unit(i, f, key, label, targets, down))
                          for key, label, targets in self._random_units(f)]
        return procs

    def due(self, at: float) -> simpy.Event:
        """An event at simulated time `at` that fires before every other event due then.

        A scheduled fault starts before anything else happens at its time (SimPy's URGENT priority;
        nothing else in the model schedules URGENT events ahead of time). So a run forked just before
        the fault (`kafkasim explore`, sim/runs/explore/forking.py) meets it at the same point of the
        event order as a run from the start, whatever else is due at that instant.
        """
        event = simpy.Event(self.env)
        event._ok, event._value = True, None
        self.env.schedule(event, URGENT, max(0.0, at - self.env.now))
        return event

    def resolve_target(self, fault: "FaultSpec") -> int:
        """The broker id the fault hits now (-1: none; CONTROLLER: the controller)."""
        if getattr(fault, "controller", False):
            return CONTROLLER
        if fault.broker is not None:
            return fault.broker
        follower_of = getattr(fault, "follower_of", None)
        if follower_of is not None:
            rec = self.controller.state[self.partition_index[follower_of]]
            # not the leader; deterministic: live ISR members first, then live others, assignment order
            rank = {b: (not self.brokers[b].alive, b not in rec.isr, i) for i, b in enumerate(rec.replicas)}
            followers = sorted((b for b in rec.replicas if b != rec.leader), key=rank.__getitem__)
            return followers[0] if followers else -1
        rec = self.controller.state[self.partition_index[fault.leader_of]]
        return rec.leader

    def resolve_targets(self, fault: "FaultSpec") -> list[int]:
        """Every target the fault hits: one (broker, leader_of, follower_of, controller) or a set (brokers, rack, zone)."""
        if getattr(fault, "brokers", None) is not None:
            return list(fault.brokers)
        for key in ("rack", "zone"):
            want = getattr(fault, key, None)
            if want is not None:
                # broker.rack defaults to the broker's zone (Cluster sets both)
                return [b.broker_id for b in self.brokers if getattr(b, key, None) == want]
        return [self.resolve_target(fault)]

    def node(self, target: int):
        """The node a resolved target names: a broker, or the controller."""
        return self.controller if target == CONTROLLER else self.brokers[target]

    def _event(self, kind: str, broker: int, value: int, detail: str, fault: ActiveFault, **more) -> None:
        action = self.actions[fault.kind]
        self.recorder.event(self.env.now, kind, max(broker, -1), -1, value, detail, fault=fault.kind,
                            fault_index=fault.index, fault_source=fault.source, target=fault.target,
                            takes_down=action.takes_down, kills_process=action.kills_process, **more)

    def _start(self, target: int, fault: ActiveFault, detail: str, action: FaultAction | None = None) -> None:
        self._event(FAULT_START, target, fault.index, detail, fault)
        self.active[target] = fault
        self.open.setdefault(target, []).append(fault)
        action = action or self.actions[fault.kind]
        if action is not self.actions[fault.kind]:
            self._bound[(target, fault.source, fault.index)] = action
        action.start_with(self.node(target), fault.spec)

    def inject(self, index: int, fault: "FaultSpec"):
        """Start the fault at `at` on its targets; end it `heal_after` later if the spec says so."""
        yield self.due(fault.at)
        info = ActiveFault(fault.kind, "faults", index, fault.target, fault)
        live = []
        for target in self.resolve_targets(fault):
            if target == -1 or not self.node(target).alive:
                self._event(FAULT_SKIPPED, target, index, f"{fault.kind}: target {fault.target} has no live broker",
                            info, reason="no live broker")
            elif fault.kind == ControllerOutage.kind and self.node(target).paused:
                # as a pause of a controller without a quorum is skipped (not alive): the two never overlap,
                # so the pause still ends (resumes) and each fault that starts also ends
                self._event(FAULT_SKIPPED, target, index, f"{fault.kind}: the controller is paused", info,
                            reason="controller paused")
            elif fault.kind == ControlledShutdown.kind and getattr(self.node(target), "shutting_down", False):
                # a second SIGTERM changes nothing (as a crash of a crashed broker): skipped, so that each
                # fault that starts also ends (the first one's restart ends only that one)
                self._event(FAULT_SKIPPED, target, index, f"{fault.kind}: target {fault.target} is already "
                            "shutting down", info, reason="already shutting down")
            else:
                live.append(target)
        if not live:
            return
        action = self.actions[fault.kind].bind(fault, live, self)
        for target in live:
            self._start(target, info, fault.kind, action)
        if fault.heal_after is not None:
            yield self.env.timeout(fault.heal_after)
            for target in live:
                self.end(target, "scheduled", info)

    # --- random fault processes ---------------------------------------------------------------
    # A random process is a source of scheduled faults: each time it fires it fills its template
    # (RandomFault.instance) with the time, a target and a repair time, and starts that fault like a
    # scheduled one. Each process (and each unit of a per-broker/rack/link process) draws from its
    # own stream, so adding a process never moves another's faults.
    def _random_stream(self, index: int, spec: "RandomFaultSpec", unit: str = "") -> np.random.Generator:
        if index == 0 and spec.per == "cluster":
            return self.rng  # "cluster.faults": the stream random faults had when they were one process
        if self.streams is None:
            raise ValueError(f"random fault process {index} needs the run's random streams")
        return self.streams.stream(f"cluster.faults.random{index}" + (f".{unit}" if unit else ""))

    def _repair(self, spec: "RandomFaultSpec", rng: np.random.Generator) -> float:
        return spec.downtime if spec.downtime is not None else float(rng.exponential(spec.mean_repair))

    def _random_units(self, spec: "RandomFaultSpec") -> list[tuple[str, str, list[tuple[int, dict]]]]:
        """(stream key, target label, (broker, target fields) of each fault of one firing) of each unit."""
        ids = [b.broker_id for b in self.brokers]
        if spec.per == "broker":
            return [(f"broker{b}", f"broker {b}", [(b, {"broker": b})]) for b in ids]
        if spec.per == "rack":
            racks = list(dict.fromkeys(self.racks or []))
            return [(f"rack.{r}", f"rack {r}", [(b, {"broker": b}) for b, br in zip(ids, self.racks) if br == r])
                    for r in racks]
        kind_cls = type(spec.instance(0.0, {}, 1.0))  # per link: the kind names a link its own way
        return [(f"link{a}-{b}", f"link {a}-{b}", [(a, kind_cls.link_target(a, b))])
                for a in ids for b in ids if a < b]

    def _start_random(self, spec: "RandomFaultSpec", info: ActiveFault, broker: int | None, target: dict,
                      repair: float) -> tuple[int, ActiveFault] | None:
        """Start one firing of a random process on `broker` with `target` (None: the template's own target):
        the broker and the fault that started, or None."""
        fault = spec.instance(self.env.now, target, repair)
        if broker is None:
            broker = self.resolve_target(fault)
        if broker < 0 or not self.brokers[broker].alive or broker in self.active:
            self._event(FAULT_SKIPPED, broker, info.index, f"random {spec.kind}: target {info.target} is down",
                        info, reason="no live broker")
            return None
        fired = replace(info, spec=fault)  # this firing: its kind's own spec, with the drawn target and repair
        self._start(broker, fired, f"random {spec.kind}", self.actions[fault.kind].bind(fault, [broker], self))
        return broker, fired

    def _stop_ms(self, spec: "RandomFaultSpec") -> float:
        return min(spec.stop if spec.stop is not None else self.end_ms, self.end_ms)

    def inject_client(self, index: int, fault: "FaultSpec"):
        """A fault on a producer or consumer instance (sim/model/producer.py, consumer.py)."""
        yield self.due(fault.at)
        info = ActiveFault(fault.kind, "faults", index, fault.target)
        client = self.clients.get(fault.client)
        if client is None or not client.alive:
            self._event(FAULT_SKIPPED, -1, index, f"{fault.kind}: {fault.target} is not up", info, reason="not up")
            return
        self._event(FAULT_START, -1, index, fault.kind, info)
        self.active_clients[fault.client] = info
        action = self.actions[fault.kind].bind(fault, [], self)  # a pause: its own hold on the client
        action.start(client)
        if fault.heal_after is not None:
            yield self.env.timeout(fault.heal_after)
        else:
            yield self._healed
        if self.active_clients.get(fault.client) is info:  # not a later fault of the client's (a crash in a pause)
            del self.active_clients[fault.client]
        if action.end(client):
            self._event(FAULT_END, -1, 0, "scheduled" if fault.heal_after is not None else "heal", info,
                        reason="scheduled" if fault.heal_after is not None else "heal")

    def inject_randomly(self, index: int, spec: "RandomFaultSpec"):
        """per: cluster: fault a random live broker (or the template's target) after each exponential gap."""
        rng = self._random_stream(index, spec)
        stop = self._stop_ms(spec)
        fixed = spec.fault.get("broker") is not None or spec.fault.get("leader_of") is not None
        label = spec.instance(0.0, {}, 1.0).target if fixed else "random broker"
        info = ActiveFault(spec.kind, "random_faults", index, label, spec)
        down: list[int] = []
        t = spec.start
        while True:
            t += float(rng.exponential(spec.mean_interval))
            if t >= stop:
                return
            yield self.env.timeout(t - self.env.now)
            down = [b for b in down if not self.brokers[b].alive or _same_source(self.active.get(b), info)]
            live = [b.broker_id for b in self.brokers if b.alive and b.broker_id not in self.active]
            if len(down) >= spec.max_down or len(live) <= 1:
                self._event(FAULT_SKIPPED, -1, index, f"random {spec.kind}: at max_down", info, reason="at max_down")
                continue
            broker = None if fixed else live[int(rng.integers(len(live)))]
            repair = self._repair(spec, rng)
            started = self._start_random(spec, info, broker, {} if fixed else {"broker": broker}, repair)
            if started is not None:
                down.append(started[0])
                self.env.process(self._end_later(*started, repair))

    def inject_per_unit(self, index: int, spec: "RandomFaultSpec", key: str, label: str, targets: list[dict],
                        down: set):
        """One broker, rack or link of a per-unit process: up for an exponential time, then faulted for a repair
        time, again and again (an alternating renewal process: a unit never fails while it is down)."""
        rng = self._random_stream(index, spec, key)
        stop = self._stop_ms(spec)
        info = ActiveFault(spec.kind, "random_faults", index, label)
        t = spec.start
        while True:
            t += float(rng.exponential(spec.mean_interval))
            if t >= stop:
                return
            yield self.env.timeout(t - self.env.now)
            repair = self._repair(spec, rng)  # drawn at every failure, so a skip never shifts later draws
            if len(down) >= spec.max_down:
                self._event(FAULT_SKIPPED, -1, index, f"random {spec.kind}: at max_down", info, reason="at max_down")
                t = self.env.now
                continue
            hit = [h for h in (self._start_random(spec, info, b, tg, repair) for b, tg in targets) if h is not None]
            if not hit:
                t = self.env.now
                continue
            down.add(key)
            yield self.env.timeout(repair)
            for b, fired in hit:
                self.end(b, "random repair over", fired)
            down.discard(key)
            t = self.env.now

    def _end_later(self, broker_id: int, fault: ActiveFault, after: float):
        yield self.env.timeout(after)
        self.end(broker_id, "random downtime over", fault)

    def end(self, target: int, why: str, fault: ActiveFault | None = None, final: bool = False) -> None:
        """End the fault the target is under (a down broker no fault of ours took down: restart it).

        `fault`: the one to end (a target may be under two at once, e.g. a pause, then a SIGTERM). A fault
        with nothing to undo yet (a SIGTERMed broker still shutting down) stays on until the heal, which
        ends (`final`) every fault still on, even one a later fault on the target left nothing to undo.
        """
        opened = self.open.get(target, [])
        if fault is not None and not any(f is fault for f in opened):
            return  # it has ended already (the heal ended it before its own time)
        fault = fault or self.active.get(target) or ActiveFault(Crash.kind, "", -1, f"broker {target}")
        is_open = any(f is fault for f in opened)
        key = (target, fault.source, fault.index)
        action = self._bound.get(key) or self.actions[fault.kind]
        if not action.end(self.node(target)) and not (final and is_open):
            return
        self._bound.pop(key, None)
        if is_open:
            opened[:] = [f for f in opened if f is not fault]
            if opened:
                self.active[target] = opened[-1]
            else:
                self.open.pop(target, None)
                self.active.pop(target, None)
        self._event(FAULT_END, target, 0, why, fault, reason=why)

    def heal(self) -> None:
        """End of the fault window: end every fault still active, restart every crashed broker."""
        self.healed = True
        for b in self.brokers:
            opened = list(self.open.get(b.broker_id, ()))
            for fault in reversed(opened):  # the latest first: each undoes what it did on top of the earlier ones
                self.end(b.broker_id, "heal", fault, final=True)
            if not opened and not getattr(b, "decommissioned", False):  # a removed broker stays removed
                self.end(b.broker_id, "heal")  # a broker down for no fault of ours is restarted
        for fault in reversed(self.open.get(CONTROLLER, [])):
            self.end(CONTROLLER, "heal", fault, final=True)
        if self.active_clients:  # the latest fault of each client: one left to the heal blocks any later one
            self._healed.succeed()
