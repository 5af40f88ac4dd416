"""The fault schedule: faults of any kind at given or random times, their end, and the heal at the end.

Each fault kind is a :class:`FaultAction` in :data:`ACTIONS` (what it does to its target when it
starts and ends); its spec is a class of the ``FaultSpec`` union in sim/scenario/schema.py. The
injector is the same for every kind: it resolves the target, emits ``fault_start``, applies the
action, and emits ``fault_end`` when the fault ends (after the spec's ``heal_after``, a random
source's downtime, or the heal at the end of ``duration``). A fault whose target is already down
is a ``fault_skipped``. The events carry the fault kind, its index and source list and its target
as structured fields (sim/model/events.py), so metrics never match a kind by name.

The injector is omniscient like a Jepsen nemesis: "the leader of events-0" is resolved from the
controller's committed state at the moment of the fault. Random faults draw from their own
random stream, so adding a client never moves them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import simpy

from sim.model.events import FAULT_END, FAULT_SKIPPED, FAULT_START
from sim.model.netfaults import fault_links, make_degradation

if TYPE_CHECKING:
    from sim.model.broker import Broker
    from sim.model.controller import Controller
    from sim.model.recorder import Recorder
    from sim.scenario.schema import FaultSpec, RandomFaultSpec

__all__ = ["FaultInjector", "FaultAction", "Crash", "ACTIONS"]


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


class Partition(_LinkAction):
    """A network partition: the target's chosen links drop every message until it heals."""

    kind = "partition"
    takes_down = True  # the target stops serving whoever is cut off (failovers are measured from it)
    # What follows from a cut is the model's own timeouts, as in Kafka: the controller fences a broker
    # whose heartbeat *requests* stop arriving (BrokerHeartbeatManager.touch sets lastContactNs on
    # receipt; the session expires broker.session.timeout.ms later), so a one-way cut that still lets
    # heartbeats through fences nobody; clients and followers give up after their request timeouts.

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


ACTIONS: dict[str, FaultAction] = {a.kind: a for a in (Crash(), Partition(), Degrade())}
"""The action of each fault kind (the tags of the FaultSpec union)."""


@dataclass(frozen=True, slots=True)
class ActiveFault:
    """A fault that has started on a broker and not yet ended: what its fault_end reports."""

    kind: str
    source: str  # "faults" or "random_faults"
    index: int
    target: str


class FaultInjector:
    """Runs each scheduled fault and each random fault source as its own process."""

    base_name = "faults"

    def __init__(self, env: simpy.Environment, faults: list["FaultSpec"], brokers: list["Broker"],
                 controller: "Controller", partition_index: dict[str, int], recorder: "Recorder",
                 random_faults: list["RandomFaultSpec"] | None = None, rng: np.random.Generator | None = None,
                 end_ms: float = float("inf"), actions: dict[str, FaultAction] | None = None):
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
        self.end_ms = end_ms
        self.brokers = brokers
        self.controller = controller
        self.partition_index = partition_index
        self.recorder = recorder
        self.active: dict[int, ActiveFault] = {}  # broker id -> the fault it is under
        self._bound: dict[int, FaultAction] = {}  # broker id -> the action of its fault, when bound to the spec
        self.network = None  # the cluster's Network and a random stream for link faults (set by Cluster)
        self.net_rng: np.random.Generator | None = None

    def start(self) -> list[simpy.Process]:
        procs = [self.env.process(self.inject(i, f)) for i, f in enumerate(self.faults)]
        procs += [self.env.process(self.inject_randomly(i, f)) for i, f in enumerate(self.random_faults)]
        return procs

    def resolve_target(self, fault: "FaultSpec") -> int:
        if fault.broker is not None:
            return fault.broker
        rec = self.controller.state[self.partition_index[fault.leader_of]]
        return rec.leader

    def _event(self, kind: str, broker: int, value: int, detail: str, fault: ActiveFault, **more) -> None:
        action = self.actions[fault.kind]
        self.recorder.event(self.env.now, kind, broker, -1, value, detail, fault=fault.kind,
                            fault_index=fault.index, fault_source=fault.source, target=fault.target,
                            takes_down=action.takes_down, kills_process=action.kills_process, **more)

    def resolve_targets(self, fault: "FaultSpec") -> list[int]:
        """Every broker the fault hits: one (broker, leader_of) or a set (brokers, rack, zone)."""
        if getattr(fault, "brokers", None) is not None:
            return list(fault.brokers)
        for key in ("rack", "zone"):
            want = getattr(fault, key, None)
            if want is not None:
                # broker.rack defaults to the broker's zone (Cluster sets both)
                return [b.broker_id for b in self.brokers if getattr(b, key, None) == want]
        return [self.resolve_target(fault)]

    def _start(self, broker_id: int, fault: ActiveFault, detail: str, action: FaultAction | None = None) -> None:
        self._event(FAULT_START, broker_id, fault.index, detail, fault)
        self.active[broker_id] = fault
        action = action or self.actions[fault.kind]
        if action is not self.actions[fault.kind]:
            self._bound[broker_id] = action
        action.start(self.brokers[broker_id])

    def inject(self, index: int, fault: "FaultSpec"):
        """Start the fault at `at` on its targets; end it `heal_after` later if the spec says so."""
        yield self.env.timeout(fault.at)
        info = ActiveFault(fault.kind, "faults", index, fault.target)
        live = []
        for target in self.resolve_targets(fault):
            if target < 0 or not self.brokers[target].alive:
                who = fault.leader_of or fault.broker if (fault.leader_of or fault.broker is not None) else fault.target
                self._event(FAULT_SKIPPED, target, index, f"{fault.kind}: target {who} has no live broker",
                            info, reason="no live broker")
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
                self.end(target, "scheduled")

    def inject_randomly(self, index: int, spec: "RandomFaultSpec"):
        """Fault a random live broker after each exponential gap; end it after `downtime`."""
        stop = min(spec.stop if spec.stop is not None else self.end_ms, self.end_ms)
        info = ActiveFault(spec.kind, "random_faults", index, "random broker")
        down: list[int] = []
        t = spec.start
        while True:
            t += float(self.rng.exponential(spec.mean_interval))
            if t >= stop:
                return
            yield self.env.timeout(t - self.env.now)
            down = [b for b in down if not self.brokers[b].alive]
            live = [b.broker_id for b in self.brokers if b.alive]
            if len(down) >= spec.max_down or len(live) <= 1:
                self._event(FAULT_SKIPPED, -1, index, f"random {spec.kind}: at max_down", info, reason="at max_down")
                continue
            target = live[int(self.rng.integers(len(live)))]
            self._start(target, info, f"random {spec.kind}")
            down.append(target)
            self.env.process(self._end_later(target, spec.downtime))

    def _end_later(self, broker_id: int, after: float):
        yield self.env.timeout(after)
        self.end(broker_id, "random downtime over")

    def end(self, broker_id: int, why: str) -> None:
        """End the fault the broker is under (a down broker no fault of ours took down: restart it)."""
        fault = self.active.get(broker_id) or ActiveFault(Crash.kind, "", -1, f"broker {broker_id}")
        action = self._bound.get(broker_id) if broker_id in self.active else None
        if (action or self.actions[fault.kind]).end(self.brokers[broker_id]):
            self.active.pop(broker_id, None)
            self._bound.pop(broker_id, None)
            self._event(FAULT_END, broker_id, 0, why, fault, reason=why)

    def heal(self) -> None:
        """End of the fault window: end every fault still active, restart every crashed broker."""
        for b in self.brokers:
            self.end(b.broker_id, "heal")
