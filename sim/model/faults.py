"""The fault schedule: crash brokers at given times, restart them later, heal at the end.

The injector is omniscient like a Jepsen nemesis: "the leader of events-0" is resolved from the
controller's committed state at the moment of the fault.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import simpy

if TYPE_CHECKING:
    from ..recorder import Recorder
    from ..scenario import FaultSpec
    from .broker import Broker
    from .controller import Controller

__all__ = ["FaultInjector"]


class FaultInjector:
    """Runs each scheduled fault as its own process."""

    base_name = "faults"

    def __init__(self, env: simpy.Environment, faults: list["FaultSpec"], brokers: list["Broker"],
                 controller: "Controller", partition_index: dict[str, int], recorder: "Recorder"):
        self.env = env
        self.faults = faults
        self.brokers = brokers
        self.controller = controller
        self.partition_index = partition_index
        self.recorder = recorder

    def start(self) -> list[simpy.Process]:
        return [self.env.process(self.inject(i, f)) for i, f in enumerate(self.faults)]

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

    def restart(self, broker_id: int, why: str) -> None:
        b = self.brokers[broker_id]
        if not b.alive:
            b.restart()
            self.recorder.event(self.env.now, "restart", broker_id, -1, 0, why)

    def heal(self) -> None:
        """End of the fault window: bring every crashed broker back."""
        for b in self.brokers:
            self.restart(b.broker_id, "heal")
