"""The fault schedule: faults of any kind at given or random times, their end, and the heal at the end.

Each fault kind is a :class:`FaultAction` in :data:`ACTIONS` (what it does to its target when it
starts and ends); its spec is a class of the ``FaultSpec`` union in sim/scenario/schema.py. The
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

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import simpy

from sim.model.events import FAULT_END, FAULT_SKIPPED, FAULT_START

if TYPE_CHECKING:
    from sim.model.broker import Broker
    from sim.model.controller import Controller
    from sim.model.recorder import Recorder
    from sim.model.rng import RandomStreams
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


ACTIONS: dict[str, FaultAction] = {a.kind: a for a in (Crash(),)}
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
                 end_ms: float = float("inf"), actions: dict[str, FaultAction] | None = None,
                 streams: "RandomStreams | None" = None, racks: list[str] | None = None):
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
        self.active: dict[int, ActiveFault] = {}  # broker id -> the fault it is under

    def start(self) -> list[simpy.Process]:
        procs = [self.env.process(self.inject(i, f)) for i, f in enumerate(self.faults)]
        for i, f in enumerate(self.random_faults):
            if f.per == "cluster":
                procs.append(self.env.process(self.inject_randomly(i, f)))
            else:
                down: set[str] = set()  # the units of this process under a fault now (max_down)
                procs += [self.env.process(self.inject_per_unit(i, f, key, label, targets, down))
                          for key, label, targets in self._random_units(f)]
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

    def _start(self, broker_id: int, fault: ActiveFault, detail: str) -> None:
        self._event(FAULT_START, broker_id, fault.index, detail, fault)
        self.active[broker_id] = fault
        self.actions[fault.kind].start(self.brokers[broker_id])

    def inject(self, index: int, fault: "FaultSpec"):
        """Start the fault at `at` on its target; end it `heal_after` later if the spec says so."""
        yield self.env.timeout(fault.at)
        target = self.resolve_target(fault)
        info = ActiveFault(fault.kind, "faults", index, fault.target)
        if target < 0 or not self.brokers[target].alive:
            self._event(FAULT_SKIPPED, target, index,
                        f"{fault.kind}: target {fault.leader_of or fault.broker} has no live broker", info,
                        reason="no live broker")
            return
        self._start(target, info, fault.kind)
        if fault.heal_after is not None:
            yield self.env.timeout(fault.heal_after)
            self.end(target, "scheduled")

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
                      repair: float) -> int | None:
        """Start one firing of a random process on `broker` with `target` (None: the template's own target)."""
        fault = spec.instance(self.env.now, target, repair)
        if broker is None:
            broker = self.resolve_target(fault)
        if broker < 0 or not self.brokers[broker].alive or broker in self.active:
            self._event(FAULT_SKIPPED, broker, info.index, f"random {spec.kind}: target {info.target} is down",
                        info, reason="no live broker")
            return None
        self._start(broker, info, f"random {spec.kind}")  # (an action taking its spec gets `fault` here)
        return broker

    def _stop_ms(self, spec: "RandomFaultSpec") -> float:
        return min(spec.stop if spec.stop is not None else self.end_ms, self.end_ms)

    def inject_randomly(self, index: int, spec: "RandomFaultSpec"):
        """per: cluster: fault a random live broker (or the template's target) after each exponential gap."""
        rng = self._random_stream(index, spec)
        stop = self._stop_ms(spec)
        fixed = spec.fault.get("broker") is not None or spec.fault.get("leader_of") is not None
        label = spec.instance(0.0, {}, 1.0).target if fixed else "random broker"
        info = ActiveFault(spec.kind, "random_faults", index, label)
        down: list[int] = []
        t = spec.start
        while True:
            t += float(rng.exponential(spec.mean_interval))
            if t >= stop:
                return
            yield self.env.timeout(t - self.env.now)
            down = [b for b in down if not self.brokers[b].alive or self.active.get(b) is info]
            live = [b.broker_id for b in self.brokers if b.alive and b.broker_id not in self.active]
            if len(down) >= spec.max_down or len(live) <= 1:
                self._event(FAULT_SKIPPED, -1, index, f"random {spec.kind}: at max_down", info, reason="at max_down")
                continue
            broker = None if fixed else live[int(rng.integers(len(live)))]
            repair = self._repair(spec, rng)
            broker = self._start_random(spec, info, broker, {} if fixed else {"broker": broker}, repair)
            if broker is not None:
                down.append(broker)
                self.env.process(self._end_later(broker, repair))

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
            hit = [b for b in (self._start_random(spec, info, b, tg, repair) for b, tg in targets) if b is not None]
            if not hit:
                t = self.env.now
                continue
            down.add(key)
            yield self.env.timeout(repair)
            for b in hit:
                if self.active.get(b) is info:
                    self.end(b, "random repair over")
            down.discard(key)
            t = self.env.now

    def _end_later(self, broker_id: int, after: float):
        yield self.env.timeout(after)
        self.end(broker_id, "random downtime over")

    def end(self, broker_id: int, why: str) -> None:
        """End the fault the broker is under (a down broker no fault of ours took down: restart it)."""
        fault = self.active.get(broker_id) or ActiveFault(Crash.kind, "", -1, f"broker {broker_id}")
        if self.actions[fault.kind].end(self.brokers[broker_id]):
            self.active.pop(broker_id, None)
            self._event(FAULT_END, broker_id, 0, why, fault, reason=why)

    def heal(self) -> None:
        """End of the fault window: end every fault still active, restart every crashed broker."""
        for b in self.brokers:
            self.end(b.broker_id, "heal")
