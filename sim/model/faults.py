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

if TYPE_CHECKING:
    from sim.model.broker import Broker
    from sim.model.controller import Controller
    from sim.model.recorder import Recorder
    from sim.scenario.schema import FaultSpec, RandomFaultSpec

__all__ = ["FaultInjector", "FaultAction", "Crash", "ClientCrash", "ClientPause", "ACTIONS"]


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


class ClientPause(FaultAction):
    """A stop-the-world pause of a consumer (GC, SIGSTOP): see Consumer.pause."""

    kind = "consumer_pause"
    takes_down = True
    kills_process = False

    def start(self, client) -> None:
        client.pause()

    def end(self, client) -> bool:
        if client.state != "paused":
            return False
        client.resume()
        return True


ACTIONS: dict[str, FaultAction] = {a.kind: a for a in (Crash(), ClientCrash("producer_crash"),
                                                       ClientCrash("consumer_crash"), ClientPause())}
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
        self.end_ms = end_ms
        self.brokers = brokers
        self.controller = controller
        self.partition_index = partition_index
        self.recorder = recorder
        self.active: dict[int, ActiveFault] = {}  # broker id -> the fault it is under
        self.clients = clients or {}  # producer and consumer instances by name
        self.active_clients: dict[str, ActiveFault] = {}  # client name -> the fault it is under
        self._healed = env.event()  # client faults without a heal time end at the heal

    def start(self) -> list[simpy.Process]:
        procs = [self.env.process(self.inject_client(i, f) if getattr(f, "client", None) else self.inject(i, f))
                 for i, f in enumerate(self.faults)]
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

    def inject_client(self, index: int, fault: "FaultSpec"):
        """A fault on a producer or consumer instance (sim/model/producer.py, consumer.py)."""
        yield self.env.timeout(fault.at)
        info = ActiveFault(fault.kind, "faults", index, fault.target)
        client = self.clients.get(fault.client)
        if client is None or not client.alive:
            self._event(FAULT_SKIPPED, -1, index, f"{fault.kind}: {fault.target} is not up", info, reason="not up")
            return
        self._event(FAULT_START, -1, index, fault.kind, info)
        self.active_clients[fault.client] = info
        self.actions[fault.kind].start(client)
        if fault.heal_after is not None:
            yield self.env.timeout(fault.heal_after)
        else:
            yield self._healed
        self.active_clients.pop(fault.client, None)
        if self.actions[fault.kind].end(client):
            self._event(FAULT_END, -1, 0, "scheduled" if fault.heal_after is not None else "heal", info,
                        reason="scheduled" if fault.heal_after is not None else "heal")

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
        if self.actions[fault.kind].end(self.brokers[broker_id]):
            self.active.pop(broker_id, None)
            self._event(FAULT_END, broker_id, 0, why, fault, reason=why)

    def heal(self) -> None:
        """End of the fault window: end every fault still active, restart every crashed broker."""
        for b in self.brokers:
            self.end(b.broker_id, "heal")
        if self.active_clients:
            self._healed.succeed()
