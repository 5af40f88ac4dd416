"""Operator actions: what an operator does to a running cluster with Kafka's own tools, scheduled like faults.

- ``rolling_restart``: a controlled shutdown (SIGTERM) of each broker in turn, a restart after
  ``downtime``, and the next broker only once no partition is under-replicated, the wait bounded
  by ``max_wait`` (past it the roll stops, as a careful operator's script or Kafka's own system
  tests would);
- ``leader_election``: ``kafka-leader-election --election-type PREFERRED``, the
  controller's ElectLeaders (Controller.elect_preferred_leaders);
- ``reassign_partitions``: ``kafka-reassign-partitions --execute [--throttle]``: the controller's
  AlterPartitionReassignments (Controller.alter_partition_reassignments: add the new replicas,
  wait for them to join the ISR, remove the old ones), with KIP-73 replication throttling of the
  catch-up (ReplicationQuota, applied by the leader: FetchManager._throttle);
- ``add_broker``: a new broker starts, registers and is unfenced; it hosts nothing until a
  reassignment moves replicas to it;
- ``remove_broker``: a controlled shutdown, then ``kafka-cluster unregister`` (UnregisterBroker).

Each action is a FaultAction with a ``run(injector, index, spec)`` process, which the fault
injector starts in place of its usual start-and-heal. Its steps are ``fault_start`` /
``fault_end`` pairs (one per broker a rolling restart stops, one for a reassignment from its
request to its completion, ...), so failover metrics, down intervals and the timeline's fault
lane show them like any fault; ``operator_step`` events record the waits and their outcome.

The operator reads the controller's committed state (what ``kafka-topics --describe`` shows) and
its requests take effect at the controller at once, or when the controller is running again; it
does not go through the network as an Admin client would (left out: admin request timeouts).
Left out of throttling: the follower side (follower.replication.throttled.rate, applied by the
ReplicaFetcherThread); the tool sets both rates to the same value, and the leader's bound is
applied to the same bytes.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from sim.model.controller import APPEND_LINGER_MS
from sim.model.events import FAULT_END, FAULT_SKIPPED, FAULT_START
from sim.model.faults import CONTROLLER, ActiveFault, ControlledShutdown, FaultAction

if TYPE_CHECKING:
    from sim.model.faults import FaultInjector

__all__ = ["ReplicationQuota", "RollingRestart", "PreferredLeaderElection", "ReassignPartitions", "AddBroker",
           "RemoveBroker", "OPERATOR_ACTIONS"]

# How often the operator looks at a broker it stopped, or at a reassignment it started (its own polls).
POLL_MS = 100.0
# ReplicationQuotaManagerConfig defaults: replication.quota.window.num and replication.quota.window.size.seconds
QUOTA_WINDOW_NUM = 11
QUOTA_WINDOW_MS = 1_000.0


class ReplicationQuota:
    """A replication quota (ReplicationQuotaManager): a SimpleRate of the bytes recorded over the last
    replication.quota.window.num windows of replication.quota.window.size.seconds, exceeded above the bound."""

    __slots__ = ("bound", "samples")

    def __init__(self, bytes_per_s: float):
        self.bound = bytes_per_s / 1000.0  # bytes per ms
        self.samples: deque[list] = deque()  # [window start ms, bytes], oldest first

    def record(self, now: float, nbytes: int) -> None:
        """Sensor.record: the bytes go into the current window (a new one once the last is full)."""
        self._purge(now)
        if not self.samples or now - self.samples[-1][0] >= QUOTA_WINDOW_MS:
            self.samples.append([now, 0])
        self.samples[-1][1] += nbytes

    def rate(self, now: float) -> float:
        """SimpleRate.measure: bytes over the time since the oldest window began (at least one window), per ms."""
        self._purge(now)
        if not self.samples:
            return 0.0
        return sum(s[1] for s in self.samples) / max(now - self.samples[0][0], QUOTA_WINDOW_MS)

    def exceeded(self, now: float) -> bool:
        """ReplicationQuotaManager.isQuotaExceeded: Sensor.checkQuotas against the bound."""
        return self.rate(now) > self.bound

    def _purge(self, now: float) -> None:
        """SampledStat.purgeObsoleteSamples: windows older than window.num x window size are dropped."""
        while self.samples and now - self.samples[0][0] >= QUOTA_WINDOW_NUM * QUOTA_WINDOW_MS:
            self.samples.popleft()


def _step(inj: "FaultInjector", broker: int, info: ActiveFault, reason: str, urp: int = 0) -> None:
    """An operator_step event: what the operator saw or decided."""
    inj._event("operator_step", broker, urp, reason, info, reason=reason)


def _controller_running(inj: "FaultInjector"):
    """Wait until the controller can take a request (a quorum, not paused)."""
    ctl = inj.controller
    while not ctl.running:
        yield ctl.until_running()


class _Operator(FaultAction):
    """An operator action: the injector runs `run` as its own process (no heal of its own)."""

    takes_down = False
    kills_process = False

    def start(self, node) -> None:  # pragma: no cover - operator actions start in `run`
        raise NotImplementedError

    def end(self, node) -> bool:
        return False  # nothing to undo at the heal

    def run(self, inj: "FaultInjector", index: int, spec):
        raise NotImplementedError



class RollingRestart(ControlledShutdown):
    """A rolling restart: each broker's step is a controlled shutdown (this kind's start and end are
    ControlledShutdown's), its restart, and a wait for no under-replicated partition."""

    kind = "rolling_restart"

    def run(self, inj: "FaultInjector", index: int, spec):
        """Roll the brokers one at a time (spec.brokers, default every broker in id order), each only when no
        partition is under-replicated; after the last, wait for that once more."""
        yield inj.due(spec.at)
        env = inj.env
        info = ActiveFault(self.kind, "faults", index, spec.target, spec)
        ids = list(spec.brokers) if spec.brokers is not None else [b.broker_id for b in inj.brokers
                                                                     if not b.decommissioned]
        for n, b in enumerate(ids):
            healthy = yield from self._wait_healthy(inj, spec, info, ids[n - 1] if n else -1)
            if not healthy:
                return
            broker = inj.brokers[b]
            if not broker.alive or broker.shutting_down:
                inj._event(FAULT_SKIPPED, b, index, f"{self.kind}: broker {b} is not up", info, reason="no live broker")
                continue
            inj._start(b, info, f"rolling restart {n + 1}/{len(ids)}")
            while broker.alive:  # until the controller lets it go (or its own request.timeout.ms passes)
                yield env.timeout(POLL_MS)
                if inj.healed:
                    return  # the heal restarts it and ends the step
            if spec.downtime > 0:
                yield env.timeout(spec.downtime)
                if inj.healed:
                    return
            inj.end(b, "restarted", info)
        if (yield from self._wait_healthy(inj, spec, info, ids[-1] if ids else -1)):
            _step(inj, -1, info, "done")

    @staticmethod
    def _wait_healthy(inj: "FaultInjector", spec, info: ActiveFault, last: int):
        """Wait until no partition is under-replicated and the broker restarted last is unfenced (checked every
        check_interval, as `kafka-topics --describe --under-replicated-partitions` would be); False if
        max_wait passes first (the roll stops) or the faults heal meanwhile."""
        ctl = inj.controller
        waited = 0.0
        while True:
            urp = ctl.under_replicated() if ctl.running else list(ctl.state)
            if not urp and (last < 0 or ctl.is_live(last)):
                _step(inj, last, info, "no under-replicated partition")
                return True
            if waited >= spec.max_wait:
                _step(inj, last, info, "max_wait passed: the roll stops", len(urp))
                return False
            yield inj.env.timeout(spec.check_interval)
            waited += spec.check_interval
            if inj.healed:
                return False


class PreferredLeaderElection(_Operator):
    """kafka-leader-election --election-type PREFERRED (--all-topic-partitions, or the listed ones)."""

    kind = "leader_election"

    def run(self, inj: "FaultInjector", index: int, spec):
        """Ask the controller for preferred elections; the answer comes once its records are committed."""
        yield inj.due(spec.at)
        ctl = inj.controller
        info = ActiveFault(self.kind, "faults", index, spec.target, spec)
        inj._event(FAULT_START, CONTROLLER, index, self.kind, info)
        yield from _controller_running(inj)
        parts = [inj.partition_index[n] for n in spec.partitions] if spec.partitions else sorted(ctl.state)
        results = ctl.elect_preferred_leaders(parts)
        yield inj.env.timeout(APPEND_LINGER_MS)  # ElectLeaders is answered after the commit
        moved = sum(e == "NONE" for e in results.values())
        inj._event(FAULT_END, CONTROLLER, 0, f"{moved} of {len(parts)} partitions moved", info,
                   reason=f"{moved} of {len(parts)} partitions moved")


class ReassignPartitions(_Operator):
    """kafka-reassign-partitions --execute [--throttle RATE], then --verify until it completes."""

    kind = "reassign_partitions"

    def run(self, inj: "FaultInjector", index: int, spec):
        """Throttle, request the reassignment, wait for it (max_wait), then remove the throttle as --verify does."""
        yield inj.due(spec.at)
        env, ctl = inj.env, inj.controller
        info = ActiveFault(self.kind, "faults", index, spec.target, spec)
        moves = {inj.partition_index[r.partition]: tuple(r.replicas) for r in spec.reassignments}
        inj._event(FAULT_START, CONTROLLER, index, self.kind, info)
        yield from _controller_running(inj)
        throttled = []
        if spec.throttle is not None:
            # leader.replication.throttled.replicas: the moving partitions on their current replicas (any may
            # lead them), each broker with leader.replication.throttled.rate = --throttle
            for p in moves:
                for b in ctl.state[p].replicas:
                    broker = inj.brokers[b]
                    if broker.leader_quota is None:
                        broker.leader_quota = ReplicationQuota(spec.throttle)
                    broker.throttled_partitions.add(p)
                    throttled.append((broker, p))
        ctl.alter_partition_reassignments(moves)
        waited, done = 0.0, True
        while any(p in ctl.reassignments for p in moves):
            yield env.timeout(POLL_MS)
            waited += POLL_MS
            if waited >= spec.max_wait:
                done = False
                _step(inj, -1, info, "max_wait passed: still reassigning",
                           sum(p in ctl.reassignments for p in moves))
                break
        for broker, p in throttled:  # --verify removes the throttle once the reassignment is complete
            broker.throttled_partitions.discard(p)
            if not broker.throttled_partitions:
                broker.leader_quota = None
        why = "complete" if done else "max_wait"
        inj._event(FAULT_END, CONTROLLER, 0, why, info, reason=why)


class AddBroker(_Operator):
    """A new broker process starts: it registers, catches up with the metadata log and is unfenced."""

    kind = "add_broker"

    def run(self, inj: "FaultInjector", index: int, spec):
        """Start the new broker (built by the cluster beforehand) and wait until the controller unfences it."""
        yield inj.due(spec.at)
        b = spec.broker_id
        broker = inj.spare_brokers[b]
        info = ActiveFault(self.kind, "faults", index, spec.target, spec)
        inj.brokers.append(broker)  # its id is the next one (the scenario checks it): the cluster's list grows
        inj.controller.add_broker(broker)
        for client in inj.clients.values():
            client.broker_added()  # per-broker connection state of each producer and consumer
        inj._event(FAULT_START, b, index, self.kind, info)
        broker.start()  # a new incarnation registers (BrokerLifecycleManager)
        while not inj.controller.is_live(b):
            yield inj.env.timeout(POLL_MS)
        inj._event(FAULT_END, b, 0, "registered and unfenced", info, reason="unfenced")


class RemoveBroker(ControlledShutdown):
    """Decommission a broker: a controlled shutdown, then UnregisterBroker; it never restarts."""

    kind = "remove_broker"

    def end(self, broker) -> bool:
        return False  # a removed broker is not restarted (not even by the heal)

    def run(self, inj: "FaultInjector", index: int, spec):
        """SIGTERM the broker, wait until it has stopped, then unregister it at the controller."""
        yield inj.due(spec.at)
        b = spec.broker_id
        broker = inj.brokers[b]
        info = ActiveFault(self.kind, "faults", index, spec.target, spec)
        broker.decommissioned = True
        inj._start(b, info, self.kind)  # a controlled shutdown (nothing to do if it is down already)
        while broker.alive:
            yield inj.env.timeout(POLL_MS)
        yield from _controller_running(inj)
        inj.controller.unregister_broker(b)
        inj.end(b, "unregistered", info, final=True)


OPERATOR_ACTIONS: dict[str, FaultAction] = {a.kind: a for a in (
    RollingRestart(), PreferredLeaderElection(), ReassignPartitions(), AddBroker(), RemoveBroker())}
"""The action of each operator kind (sim/scenario/faults.py OPERATOR_KINDS); the cluster adds them to the injector's."""
