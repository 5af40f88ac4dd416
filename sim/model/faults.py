"""The fault schedule: crash brokers at given or random times, restart them, heal at the end.

The injector is omniscient like a Jepsen nemesis: "the leader of events-0" is resolved from the
controller's committed state at the moment of the fault. Random faults draw from their own
random stream, so adding a client never moves them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import simpy

if TYPE_CHECKING:
    from sim.model.recorder import Recorder
    from sim.scenario.schema import FaultSpec, RandomFaultSpec
    from sim.model.broker import Broker
    from sim.model.controller import Controller

__all__ = ["FaultInjector"]


class FaultInjector:
    """Runs each scheduled fault as its own process."""

    base_name = "faults"

    def __init__(self, env: simpy.Environment, faults: list["FaultSpec"], brokers: list["Broker"],
                 controller: "Controller", partition_index: dict[str, int], recorder: "Recorder",
                 random_faults: list["RandomFaultSpec"] | None = None, rng: np.random.Generator | None = None,
                 end_ms: float = float("inf")):
        self.env = env
        self.faults = faults
        self.random_faults = random_faults or []
        if self.random_faults and rng is None:
            raise ValueError("random faults need a random stream")
        self.rng = rng
        self.end_ms = end_ms
        self.brokers = brokers
        self.controller = controller
        self.partition_index = partition_index
        self.recorder = recorder

    def start(self) -> list[simpy.Process]:
        procs = [self.env.process(self.inject(i, f)) for i, f in enumerate(self.faults)]
        procs += [self.env.process(self.inject_randomly(i, f)) for i, f in enumerate(self.random_faults)]
        return procs

    def resolve_target(self, fault: "FaultSpec") -> int:
        if fault.broker is not None:
            return fault.broker
        rec = self.controller.state[self.partition_index[fault.leader_of]]
        return rec.leader

    def inject(self, index: int, fault: "FaultSpec"):
        """Crash the target at `at`; restart it `restart_after` later if given."""
        yield self.env.timeout(fault.at)
        target = self.resolve_target(fault)
        if target < 0 or not self.brokers[target].alive:
            self.recorder.event(self.env.now, "fault_skipped", target, -1, index,
                                f"{fault.kind}: target {fault.leader_of or fault.broker} has no live broker")
            return
        self.recorder.event(self.env.now, "crash", target, -1, index, fault.kind)
        self.brokers[target].crash()
        if fault.restart_after is not None:
            yield self.env.timeout(fault.restart_after)
            self.restart(target, "scheduled")

    def inject_randomly(self, index: int, spec: "RandomFaultSpec"):
        """Crash a random live broker after each exponential gap; restart it after `downtime`."""
        stop = min(spec.stop if spec.stop is not None else self.end_ms, self.end_ms)
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
                self.recorder.event(self.env.now, "fault_skipped", -1, -1, index, f"random {spec.kind}: at max_down")
                continue
            target = live[int(self.rng.integers(len(live)))]
            self.recorder.event(self.env.now, "crash", target, -1, index, f"random {spec.kind}")
            self.brokers[target].crash()
            down.append(target)
            self.env.process(self._restart_later(target, spec.downtime))

    def _restart_later(self, broker_id: int, after: float):
        yield self.env.timeout(after)
        self.restart(broker_id, "random downtime over")

    def restart(self, broker_id: int, why: str) -> None:
        b = self.brokers[broker_id]
        if not b.alive:
            b.restart()
            self.recorder.event(self.env.now, "restart", broker_id, -1, 0, why)

    def heal(self) -> None:
        """End of the fault window: bring every crashed broker back."""
        for b in self.brokers:
            self.restart(b.broker_id, "heal")
