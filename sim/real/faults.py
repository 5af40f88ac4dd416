"""Faults on real processes: what each scenario fault kind is on a real cluster, and the driver.

``crash`` = SIGKILL of the broker's process group (restarted after ``restart_after``, else when the
faults heal at ``duration``); ``pause`` = SIGSTOP/SIGCONT (of a broker, or of the controller with
``controller: true``); ``controlled_shutdown`` = SIGTERM, then restart; ``controller_outage`` =
SIGSTOP of the single KRaft controller for ``duration``. Kinds that cannot be real here (power and
disk loss, a slow disk, link degradation, client faults, random faults), targets by rack or zone,
and network partitions (no working firewall in this sandbox, see :func:`partition_support`) are
refused by :func:`unsupported` in one line before anything starts.

The driver (:class:`FaultDriver`) resolves a target when its fault starts, as the simulator does
(``leader_of`` the partition's current leader, ``follower_of`` the first live ISR follower in
replica order), from the metadata poller's latest state, and records each fault's real start and
end (ms since the run's time zero) as ``fault_start``/``fault_end`` rows.
"""

from __future__ import annotations

import signal
import threading
from dataclasses import dataclass, field
from typing import Callable, Protocol

from sim.scenario.schema import Scenario

__all__ = ["SUPPORTED_KINDS", "unsupported", "FaultDriver", "FaultRecord", "Target", "TAKES_DOWN", "KILLS_PROCESS"]

SUPPORTED_KINDS = ("crash", "pause", "controlled_shutdown", "controller_outage", "partition")
# the simulator's FaultAction flags per kind (sim/model/faults.py): the failover metrics key on them
TAKES_DOWN = {"crash": True, "pause": True, "controlled_shutdown": True, "controller_outage": False,
              "partition": True}
KILLS_PROCESS = {"crash": True, "pause": False, "controlled_shutdown": False, "controller_outage": False,
                 "partition": False}
CONTROLLER = -2
IMPOSSIBLE_KINDS = ("power_loss", "disk_loss", "slow_disk", "degrade")
"""Kinds this machine cannot do to a real process: losing the page cache or a disk, slowing a disk or
a link (no fault-injecting block device or qdisc in the sandbox)."""


def partition_support() -> str | None:
    """Why network partitions cannot run here (None if they can): iptables rules by process group id
    must take effect on loopback (sim.real.netfaults.available tests it with a real connection)."""
    from sim.real.netfaults import available

    return available()


def unsupported(sc: Scenario) -> str | None:
    """One line saying why the real cluster cannot run `sc` as written, or None."""
    from sim.real.kafka import MODEL_VERSION, KAFKA_VERSION

    if sc.cluster.kafka_version != MODEL_VERSION:
        return (f"cluster.kafka.version: the real cluster runs Apache Kafka {KAFKA_VERSION}, so it needs "
                f"{MODEL_VERSION!r} (this scenario has {sc.cluster.kafka_version!r})")
    if sc.cluster.controller_mode != "kraft":
        return "cluster.controller.mode: the real cluster runs KRaft (allowed: kraft)"
    if sc.random_faults:
        return "random_faults: the real cluster runs only scheduled faults (allowed: faults)"
    for i, f in enumerate(sc.faults):
        if f.kind == "partition":
            why = partition_support()
            if why:
                allowed = ", ".join(k for k in SUPPORTED_KINDS if k != "partition")
                return f"faults.{i}.kind: partition: {why} (allowed here: {allowed})"
        elif f.kind in IMPOSSIBLE_KINDS:
            return (f"faults.{i}.kind: {f.kind} cannot be done to a real process on this machine "
                    f"(allowed: {', '.join(SUPPORTED_KINDS)})")
        elif f.kind not in SUPPORTED_KINDS:
            return (f"faults.{i}.kind: {f.kind} is not implemented on the real cluster yet "
                    f"(allowed: {', '.join(SUPPORTED_KINDS)})")
        for key in ("rack", "zone"):
            if getattr(f, key, None) is not None:
                return f"faults.{i}.{key}: the real cluster has no racks or zones (allowed: broker, brokers, " \
                       f"leader_of, follower_of)"
    from sim.scenario.cluster import ClusterConfig

    if sc.cluster.hardware != ClusterConfig().hardware:
        return "cluster.hardware: the real cluster runs on this machine's hardware (allowed: unlimited)"
    return None


class Target(Protocol):
    """What the driver acts on: the cluster's processes and the poller's view."""

    def signal_broker(self, broker: int, sig: int) -> None: ...
    def signal_controller(self, sig: int) -> None: ...
    def restart(self, broker: int) -> None: ...
    def wait_exit(self, broker: int, timeout: float) -> bool: ...
    def cut(self, key, broker: int, between: list[str], direction: str) -> None: ...
    def heal(self, key) -> None: ...
    def leader(self, partition: str) -> int: ...
    def isr(self, partition: str) -> list[int]: ...
    def replicas(self, partition: str) -> list[int]: ...


@dataclass
class FaultRecord:
    """One fault on one target as it really happened (ms since time zero)."""

    index: int
    kind: str
    target: str
    broker: int  # -1: the controller, or skipped
    start_ms: float
    end_ms: float | None = None
    reason: str = ""
    skipped: bool = False


@dataclass
class _Active:
    spec: object
    index: int
    brokers: list[int]
    records: list[FaultRecord] = field(default_factory=list)


class FaultDriver:
    """Starts and ends the scenario's faults on the real processes at their times.

    `clock()` is ms since time zero. `tick()` runs what is due; `heal_all()` ends every open fault
    (at `duration`, and in a `finally`: a stopped process is always continued or killed).
    """

    def __init__(self, sc: Scenario, target: Target, clock: Callable[[], float]):
        self.sc, self.target, self.clock = sc, target, clock
        self.records: list[FaultRecord] = []
        self.down: set[int] = set()  # brokers this driver has stopped or killed
        self._pending = sorted(((f.at, i, f) for i, f in enumerate(sc.faults)), key=lambda x: (x[0], x[1]))
        self._heals: list[tuple[float, _Active]] = []
        self._lock = threading.Lock()

    def next_due(self) -> float | None:
        times = [t for t, _, _ in self._pending] + [t for t, _ in self._heals]
        return min(times) if times else None

    def tick(self) -> None:
        now = self.clock()
        while self._pending and self._pending[0][0] <= now:
            _, i, f = self._pending.pop(0)
            self._start(i, f)
        due = [h for h in self._heals if h[0] <= now]
        for h in due:
            self._heals.remove(h)
            self._end(h[1], "scheduled")

    def heal_all(self, reason: str = "healed at duration") -> None:
        self._pending.clear()
        heals, self._heals = self._heals, []
        for _, active in heals:
            self._end(active, reason)

    # --- targets ------------------------------------------------------------------------------
    def resolve(self, f) -> list[int]:
        """The brokers a fault hits now (CONTROLLER for the controller), -1 where none is live."""
        if getattr(f, "controller", False) is True:
            return [CONTROLLER]
        if f.brokers is not None:
            return list(f.brokers)
        if f.broker is not None:
            return [f.broker]
        if f.leader_of is not None:
            return [self.target.leader(f.leader_of)]
        isr = self.target.isr(f.follower_of)
        leader = self.target.leader(f.follower_of)
        for b in self.target.replicas(f.follower_of):
            if b != leader and b in isr and b not in self.down:
                return [b]
        return [-1]

    def _start(self, index: int, f) -> None:
        t = self.clock()
        targets = self.resolve(f)
        live = []
        for b in targets:
            if b == -1 or b in self.down:
                self.records.append(FaultRecord(index, f.kind, f.target, b, t, t, "no live broker", skipped=True))
            else:
                live.append(b)
        if not live:
            return
        active = _Active(f, index, live)
        for b in live:
            if f.kind == "partition":
                self.target.cut((index, b), b, list(f.between), f.direction)
                if "peers" in f.between or "controller" in f.between or "all" in f.between:
                    self.down.add(b)
            else:
                self._apply(f.kind, b)
            rec = FaultRecord(index, f.kind, f.target, -1 if b == CONTROLLER else b, self.clock())
            active.records.append(rec)
            self.records.append(rec)
        heal = f.heal_after
        if heal is not None:
            self._heals.append((t + heal, active))
        else:
            self._heals.append((float("inf"), active))

    def _apply(self, kind: str, b: int) -> None:
        tg = self.target
        if kind == "crash":
            self.down.add(b)
            tg.signal_broker(b, signal.SIGKILL)
        elif kind == "pause":
            if b == CONTROLLER:
                tg.signal_controller(signal.SIGSTOP)
            else:
                self.down.add(b)
                tg.signal_broker(b, signal.SIGSTOP)
        elif kind == "controller_outage":
            tg.signal_controller(signal.SIGSTOP)
        elif kind == "controlled_shutdown":
            self.down.add(b)
            tg.signal_broker(b, signal.SIGTERM)
        else:  # refused by unsupported() before a run starts
            raise ValueError(f"fault kind {kind} cannot run on the real cluster")

    def _end(self, active: _Active, reason: str) -> None:
        kind = active.spec.kind
        for b, rec in zip(active.brokers, active.records):
            tg = self.target
            if kind in ("pause", "controller_outage"):
                if b == CONTROLLER or kind == "controller_outage":
                    tg.signal_controller(signal.SIGCONT)
                else:
                    tg.signal_broker(b, signal.SIGCONT)
            elif kind == "controlled_shutdown":
                tg.wait_exit(b, 30)
                tg.restart(b)
            elif kind == "crash":
                tg.restart(b)
            elif kind == "partition":
                tg.heal((active.index, b))
            self.down.discard(b)
            rec.end_ms = self.clock()
            rec.reason = reason
