"""The faults of a scenario: scheduled fault specs, operator actions and random fault processes.

A fault spec is a discriminated union on `kind` (`FaultSpec`): what every fault has lives in
`ScheduledFault`, each kind adds its own fields in one subclass; its action is in
sim/model/faults.py (operator actions: sim/model/operator.py). A random fault process
(`RandomFault`) takes a template of any scheduled kind.
"""

from __future__ import annotations

import typing
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import Discriminator, Field, PrivateAttr, Tag, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from sim.scenario.cluster import LatencyDist
from sim.scenario.types import Bandwidth, Duration, FrozenModel, PositiveDuration, SignedDuration

__all__ = [
    "ScheduledFault", "TARGET_SELECTORS", "CrashFault", "NetPeers", "PartitionFault", "DegradeFault", "PauseFault",
    "ControlledShutdownFault", "ControllerOutageFault", "PowerLossFault", "DiskLossFault", "SlowDiskFault",
    "ClientFault", "ProducerCrashFault", "ConsumerCrashFault", "ConsumerPauseFault", "ClockSkewFault",
    "LostFsyncFault", "OperatorAction", "RollingRestartAction", "PreferredLeaderElectionAction", "Reassignment",
    "ReassignPartitionsAction", "AddBrokerAction", "RemoveBrokerAction", "OPERATOR_KINDS", "FaultSpec",
    "union_kinds", "FAULT_KINDS", "RandomFault", "RandomFaultSpec", "RandomCrashFault",
]


# --- faults ------------------------------------------------------------------------------------
# A fault spec is a discriminated union on `kind`: the fields every fault has (when, which target,
# when it heals) live in a base class, each kind adds its own in one subclass. A new kind is one
# class here, listed in FaultSpec, plus its action in sim/model/faults.py. `kind` may be left out
# for a crash (the only kind files had before the union).
class ScheduledFault(FrozenModel):
    """Fields of every scheduled fault: start time and target (a broker id, a partition's leader or
    one of its followers; kinds that can hit the controller add `controller`)."""

    kind: str = Field(..., description="the fault kind")
    at: Duration
    broker: int | None = Field(None, ge=0)
    leader_of: str | None = Field(None, description="'topic-partition', e.g. 'events-0'")
    follower_of: str | None = Field(None, description="'topic-partition': a replica that is not its leader at the "
                                                      "fault's time (the first live ISR follower in assignment order)")
    brokers: list[int] | None = Field(None, min_length=1, description="a set of broker ids, hit at once")
    rack: str | None = Field(None, description="every broker of this rack (cluster.racks), hit at once")
    zone: str | None = Field(None, description="every broker of this zone (cluster.zones), hit at once")

    @model_validator(mode="after")
    def _one_target(self) -> "ScheduledFault":
        given = sum(getattr(self, k) is not None for k in TARGET_SELECTORS) + bool(getattr(self, "controller", False))
        if given != 1:
            names = "'broker', 'leader_of', 'follower_of', 'brokers', 'rack' or 'zone'"
            if "controller" in type(self).model_fields:
                names = names.replace(" or 'zone'", ", 'zone' or 'controller'")
            raise ValueError(f"a fault needs exactly one of {names}")
        if self.brokers is not None and len(set(self.brokers)) != len(self.brokers):
            twice = sorted({b for b in self.brokers if self.brokers.count(b) > 1})
            raise ValueError(f"brokers: {', '.join(map(str, twice))} listed more than once (a set of distinct "
                             f"broker ids, e.g. [0, 1])")
        return self

    @property
    def heal_after(self) -> float | None:
        """How long after it starts the fault ends (ms); None: when the faults heal at `duration`."""
        return None

    @property
    def target(self) -> str:
        """The target as written: 'broker 1', 'leader_of events-0', 'brokers 0,1', 'rack a', 'controller'."""
        if self.brokers is not None:
            return "brokers " + ",".join(map(str, self.brokers))
        if getattr(self, "controller", False):
            return "controller"
        key = next(k for k in TARGET_SELECTORS if getattr(self, k) is not None)
        return f"{key} {getattr(self, key)}"


TARGET_SELECTORS = ("broker", "leader_of", "follower_of", "brokers", "rack", "zone")
"""The target fields of a scheduled fault: exactly one is set (or `controller`, for kinds that can hit it)."""


class CrashFault(ScheduledFault):
    """A process crash (SIGKILL) of the target broker; the OS and page cache survive."""

    kind: Literal["crash"] = Field("crash", description="crash: process crash (SIGKILL); the OS and page cache survive")
    restart_after: PositiveDuration | None = None

    @property
    def heal_after(self) -> float | None:
        return self.restart_after


NetPeers = Literal["peers", "controller", "clients", "all"]


class _LinkFault(ScheduledFault):
    """Fields of the faults on the target's links: which links, which direction, how long."""

    between: list[NetPeers] = Field(
        ["all"], min_length=1,
        description="the target's links to: peers (brokers outside the target), controller, clients, all")
    direction: Literal["both", "outbound", "inbound"] = Field(
        "both", description="both; outbound: the target cannot reach them (they reach it); inbound: the reverse")
    heal: PositiveDuration | None = Field(None, description="how long the fault lasts (default: until duration)")

    @property
    def heal_after(self) -> float | None:
        return self.heal


class PartitionFault(_LinkFault):
    """A network partition: the target's chosen links lose every transmission (no reset); TCP
    retransmits what waits on them, so it arrives after the heal."""

    kind: Literal["partition"] = Field(
        "partition", description="partition: cut the target's links; senders learn only by their timeouts")


class DegradeFault(_LinkFault):
    """Link degradation: extra latency and TCP-retransmitted loss on the target's chosen links."""

    kind: Literal["degrade"] = Field(
        "degrade", description="degrade: extra latency and loss (retransmitted after TCP's RTO) on the target's links")
    latency: LatencyDist | None = Field(None, description="extra one-way latency of each message")
    loss: float = Field(0.0, ge=0, le=1, description="probability that each transmission is lost (retransmitted)")
    rto_min: PositiveDuration = Field(200.0, description="TCP's first retransmission timeout (Linux TCP_RTO_MIN)")
    rto_max: PositiveDuration = Field(120_000.0, description="TCP's largest retransmission timeout (TCP_RTO_MAX)")
    retries: int = Field(15, ge=0, description="retransmissions before the connection breaks (tcp_retries2)")

    @model_validator(mode="after")
    def _does_something(self) -> "DegradeFault":
        if self.latency is None and self.loss == 0:
            raise ValueError("a degrade fault needs a 'latency' or a 'loss'")
        return self


class PauseFault(ScheduledFault):
    """A process pause (GC, SIGSTOP, a frozen VM) of a broker or of the active controller."""

    kind: Literal["pause"] = Field("pause", description="pause: the process is frozen for `duration`, then resumes "
                                                        "with its old view and the messages queued meanwhile")
    duration: PositiveDuration = Field(..., description="how long the process is frozen")
    controller: bool = Field(False, description="pause the active controller instead of a broker")

    @property
    def heal_after(self) -> float | None:
        return self.duration


class ControlledShutdownFault(ScheduledFault):
    """SIGTERM: the controller moves the broker's leaderships away, the broker flushes and stops."""

    kind: Literal["controlled_shutdown"] = Field(
        "controlled_shutdown",
        description="controlled_shutdown: SIGTERM; leadership moves away first, logs are flushed")
    restart_after: PositiveDuration | None = Field(None, description="restart this long after the fault starts")

    @property
    def heal_after(self) -> float | None:
        return self.restart_after


class ControllerOutageFault(ScheduledFault):
    """The KRaft controller quorum has no leader for `duration`: no heartbeats, ISR changes or elections."""

    kind: Literal["controller_outage"] = Field(
        "controller_outage", description="controller_outage: the controller quorum is unavailable for `duration`")
    duration: PositiveDuration = Field(..., description="how long the quorum has no leader")
    controller: Literal[True] = Field(True, description="the target: always the controller quorum")

    @property
    def heal_after(self) -> float | None:
        return self.duration


class PowerLossFault(ScheduledFault):
    """Power loss / OS crash of the target broker's host: the page cache is gone, only flushed data survives."""

    kind: Literal["power_loss"] = Field(
        "power_loss", description="power_loss: the host loses power; each log keeps only its flushed prefix")
    restart_after: PositiveDuration | None = Field(None, description="power comes back and the broker restarts")

    @property
    def heal_after(self) -> float | None:
        return self.restart_after


class DiskLossFault(ScheduledFault):
    """The target broker's disk is lost (replaced volume): it comes back with empty logs."""

    kind: Literal["disk_loss"] = Field(
        "disk_loss", description="disk_loss: the host goes down and comes back with an empty disk")
    restart_after: PositiveDuration | None = Field(None, description="the broker restarts on the new disk")

    @property
    def heal_after(self) -> float | None:
        return self.restart_after


class SlowDiskFault(ScheduledFault):
    """The target broker's disk is slow for a while: every write waits `latency` more, one after another."""

    kind: Literal["slow_disk"] = Field(
        "slow_disk", description="slow_disk: appends (and fsyncs) take longer for `duration`")
    latency: PositiveDuration = Field(..., description="extra time of every write (an append or a fetched batch)")
    flush_latency: Duration = Field(0.0, ge=0, description="extra time of an fsync (writes of partitions with "
                                                           "flush.messages set)")
    duration: PositiveDuration = Field(..., description="how long the disk stays slow")

    @property
    def heal_after(self) -> float | None:
        return self.duration


class ClientFault(ScheduledFault):
    """Fields of a fault on a client instance: `producer` or `consumer` names the instance.

    Instance names are those of the cluster: a producer's `name` (default producer-<index>), with
    -<i> appended when it has several instances; a consumer group's instances are <group.id>-<i>.
    """

    producer: str | None = Field(None, description="the producer instance, e.g. 'producer-0'")
    consumer: str | None = Field(None, description="the consumer instance, e.g. 'group-a-0'")
    _client_kind: ClassVar[str] = "producer"  # which of the two the kind takes

    @model_validator(mode="after")
    def _one_target(self) -> "ClientFault":  # overrides ScheduledFault's: a client, not a broker
        other = "consumer" if self._client_kind == "producer" else "producer"
        if any(getattr(self, k) is not None for k in TARGET_SELECTORS) or getattr(self, other) is not None:
            raise ValueError(f"a {self.kind} fault targets a {self._client_kind} instance "
                             f"(allowed: {self._client_kind})")
        if getattr(self, self._client_kind) is None:
            raise ValueError(f"a {self.kind} fault needs '{self._client_kind}' (the instance name)")
        return self

    @property
    def client(self) -> str:
        """The client instance's name."""
        return self.producer if self.producer is not None else self.consumer

    @property
    def target(self) -> str:
        return f"{self._client_kind} {self.client}"


class ProducerCrashFault(ClientFault):
    """A producer instance crashes: its queued and in-flight records end unknown; it restarts with a new producer id."""

    kind: Literal["producer_crash"] = Field("producer_crash", description="producer_crash: a producer process crash")
    restart_after: PositiveDuration | None = None

    @property
    def heal_after(self) -> float | None:
        return self.restart_after


class ConsumerCrashFault(ClientFault):
    """A consumer instance crashes; with group.protocol classic its group rebalances after session.timeout.ms."""

    kind: Literal["consumer_crash"] = Field("consumer_crash", description="consumer_crash: a consumer process crash")
    _client_kind: ClassVar[str] = "consumer"
    restart_after: PositiveDuration | None = None

    @property
    def heal_after(self) -> float | None:
        return self.restart_after


class ConsumerPauseFault(ClientFault):
    """A consumer instance freezes (GC, SIGSTOP) for `duration`: no heartbeat, fetch or commit meanwhile."""

    kind: Literal["consumer_pause"] = Field("consumer_pause", description="consumer_pause: a stop-the-world pause")
    _client_kind: ClassVar[str] = "consumer"
    duration: PositiveDuration

    @property
    def heal_after(self) -> float | None:
        return self.duration






class ClockSkewFault(ScheduledFault):
    """The target host's wall clock is stepped by `offset` and/or drifts for a while, then set right.

    Kafka reads the wall clock (System.currentTimeMillis) for the leader's replica lag timer
    (replica.lag.time.max.ms, Partition.getOutOfSyncReplicas / Replica.isCaughtUp), and the
    monotonic clock (System.nanoTime) for the controller's broker sessions (BrokerHeartbeatManager)
    and the broker's heartbeat schedule (BrokerLifecycleManager), which a skew leaves alone.
    """

    kind: Literal["clock_skew"] = Field(
        "clock_skew", description="clock_skew: the host's wall clock jumps by `offset` (and drifts by `drift_ppm`)")
    offset: SignedDuration = Field(0.0, description="the step of the wall clock when the fault starts, e.g. '-60s' "
                                                    "(back) or '5m' (ahead)")
    drift_ppm: float = Field(0.0, ge=-1e5, le=1e5, allow_inf_nan=False,
                             description="how fast the clock runs wrong from then on, in parts per million "
                                         "(1000: 1 ms fast per second)")
    duration: PositiveDuration | None = Field(None, description="how long until NTP sets the clock right (a step "
                                                                "back to true time); default: until duration")
    controller: bool = Field(False, description="skew the active controller's host instead of a broker's")

    @model_validator(mode="after")
    def _does_something(self) -> "ClockSkewFault":
        if self.offset == 0 and self.drift_ppm == 0:
            raise ValueError("a clock_skew fault needs an 'offset' (e.g. '-60s') or a 'drift_ppm'")
        return self

    @property
    def heal_after(self) -> float | None:
        return self.duration


class LostFsyncFault(ScheduledFault):
    """The target broker's disk acknowledges fsyncs it does not do (a volatile write cache that ignores
    flushes): what only an fsync made durable is lost at the next power loss."""

    kind: Literal["lost_fsync"] = Field(
        "lost_fsync", description="lost_fsync: the disk acknowledges fsyncs without doing them (flush.messages, "
                                  "flush.ms, a clean shutdown's flush); the kernel's writeback still happens")
    duration: PositiveDuration | None = Field(None, description="how long the disk lies (default: until duration)")

    @property
    def heal_after(self) -> float | None:
        return self.duration
# --- operator actions -------------------------------------------------------------------------------
# What an operator does to a running cluster with Kafka's own tools, scheduled like faults: a rolling
# restart, kafka-leader-election, kafka-reassign-partitions, adding a broker and removing one. They
# have no heal: each runs to its end (or its bound) on its own; sim/model/operator.py carries them out.
class OperatorAction(ScheduledFault):
    """Fields of every operator action: when it starts; its own fields say what it acts on."""

    _targets: ClassVar[tuple[str, ...]] = ()  # the target selectors the action may take (none: its own fields)

    @model_validator(mode="after")
    def _one_target(self) -> "OperatorAction":  # overrides ScheduledFault's: an action names its own targets
        given = [k for k in TARGET_SELECTORS if getattr(self, k) is not None and k not in self._targets]
        if given:
            allowed = ", ".join(self._targets) if self._targets else "none: see the kind's own fields"
            raise ValueError(f"{given[0]}: a {self.kind} does not take it (allowed: {allowed})")
        return self


class RollingRestartAction(OperatorAction):
    """A rolling restart: a controlled shutdown of each broker in turn, restarted after `downtime`, the next
    one only when no partition is under-replicated (as operators and Kafka's system tests roll a cluster)."""

    kind: Literal["rolling_restart"] = Field(
        "rolling_restart", description="rolling_restart: controlled shutdown and restart of each broker in turn, "
                                       "waiting for no under-replicated partition before the next")
    downtime: Duration = Field(0.0, ge=0, description="how long each broker stays stopped before its restart")
    max_wait: PositiveDuration = Field(
        300_000.0, description="the bound on each wait for no under-replicated partition; past it the roll stops")
    check_interval: PositiveDuration = Field(
        1_000.0, description="how often the operator checks for under-replicated partitions "
                             "(kafka-topics --describe --under-replicated-partitions)")
    _targets: ClassVar[tuple[str, ...]] = ("brokers",)

    @property
    def target(self) -> str:
        return ("brokers " + ",".join(map(str, self.brokers)) if self.brokers is not None else "all brokers") + " in turn"


class PreferredLeaderElectionAction(OperatorAction):
    """kafka-leader-election --election-type PREFERRED: each listed partition (default every one) is led by its
    first replica again if that replica is live and in the ISR (the controller's ElectLeaders)."""

    kind: Literal["leader_election"] = Field(
        "leader_election",
        description="leader_election: move leadership back to each partition's preferred (first) replica")
    election_type: Literal["preferred"] = Field(
        "preferred", alias="election.type", description="--election-type: preferred (unclean is not modelled yet)")
    partitions: list[str] | None = Field(
        None, min_length=1, description="'topic-partition' names (default: every partition, --all-topic-partitions)")

    @property
    def target(self) -> str:
        return ",".join(self.partitions) if self.partitions is not None else "all partitions"


class Reassignment(FrozenModel):
    """One partition's new replica list (an entry of kafka-reassign-partitions' JSON)."""

    partition: str = Field(..., description="'topic-partition', e.g. 'events-0'")
    replicas: list[int] = Field(..., min_length=1, description="the new replica list, preferred leader first")


class ReassignPartitionsAction(OperatorAction):
    """kafka-reassign-partitions --execute [--throttle]: the controller adds the new replicas, which copy the log
    (throttled by leader/follower.replication.throttled.rate, KIP-73) and join the ISR; then it removes the old ones."""

    kind: Literal["reassign_partitions"] = Field(
        "reassign_partitions", description="reassign_partitions: move replicas to other brokers (adding replicas "
                                           "catch up, join the ISR, then the old ones are removed)")
    reassignments: list[Reassignment] = Field(..., min_length=1, description="the partitions to move and where")
    throttle: Bandwidth | None = Field(
        None, description="leader.replication.throttled.rate and follower.replication.throttled.rate of the "
                          "moving replicas while they catch up (--throttle; default: unthrottled)")
    max_wait: PositiveDuration = Field(
        3_600_000.0, description="how long the operator waits for the reassignment to complete (--verify)")

    @property
    def target(self) -> str:
        if len(self.reassignments) > 1:
            return f"{len(self.reassignments)} partitions"  # short: it labels the fault on the timeline
        r = self.reassignments[0]
        return f"{r.partition} -> [{','.join(map(str, r.replicas))}]"


class AddBrokerAction(OperatorAction):
    """A new broker starts and registers with the controller; it hosts nothing until partitions are reassigned to it."""

    kind: Literal["add_broker"] = Field("add_broker", description="add_broker: a new broker joins the cluster")
    broker_id: int = Field(..., ge=0, alias="broker.id", description="the new broker's id: the next unused one")

    @property
    def target(self) -> str:
        return f"broker {self.broker_id}"


class RemoveBrokerAction(OperatorAction):
    """Decommission a broker: a controlled shutdown, then kafka-cluster unregister (after its partitions were moved)."""

    kind: Literal["remove_broker"] = Field(
        "remove_broker", description="remove_broker: controlled shutdown, then unregister the broker for good")
    broker_id: int = Field(..., ge=0, alias="broker.id", description="the broker to remove")

    @property
    def target(self) -> str:
        return f"broker {self.broker_id}"


OPERATOR_KINDS = ("rolling_restart", "leader_election", "reassign_partitions", "add_broker", "remove_broker")
"""The kinds of the FaultSpec union that are operator actions (they run to their end; no heal, no random process)."""


def _fault_kind(v: Any) -> Any:
    """The discriminator: a mapping's `kind` (crash when left out), a spec's own kind."""
    kind = v.get("kind", "crash") if isinstance(v, dict) else getattr(v, "kind", None)
    return kind if isinstance(kind, str) or kind is None else repr(kind)


FaultSpec = Annotated[
    Union[Annotated[CrashFault, Tag("crash")],  # noqa: UP007 -- the list of kinds; add a kind here
          Annotated[PowerLossFault, Tag("power_loss")], Annotated[DiskLossFault, Tag("disk_loss")],
          Annotated[SlowDiskFault, Tag("slow_disk")], Annotated[PartitionFault, Tag("partition")],
          Annotated[DegradeFault, Tag("degrade")], Annotated[PauseFault, Tag("pause")],
          Annotated[ControlledShutdownFault, Tag("controlled_shutdown")],
          Annotated[ControllerOutageFault, Tag("controller_outage")],
          Annotated[ProducerCrashFault, Tag("producer_crash")], Annotated[ConsumerCrashFault, Tag("consumer_crash")],
          Annotated[ConsumerPauseFault, Tag("consumer_pause")],
          Annotated[ClockSkewFault, Tag("clock_skew")], Annotated[LostFsyncFault, Tag("lost_fsync")],
          # operator actions
          Annotated[RollingRestartAction, Tag("rolling_restart")],
          Annotated[PreferredLeaderElectionAction, Tag("leader_election")],
          Annotated[ReassignPartitionsAction, Tag("reassign_partitions")],
          Annotated[AddBrokerAction, Tag("add_broker")], Annotated[RemoveBrokerAction, Tag("remove_broker")]],
    Discriminator(_fault_kind),
]
"""A scheduled fault of any kind."""


def union_kinds(union: Any) -> dict[str, type[ScheduledFault]]:
    """The spec class of each kind in a discriminated union of fault specs, by tag (in union order)."""
    # Annotated[Union[Annotated[Cls, Tag], ...], Discriminator]; a union of one kind collapses into
    # Annotated[Cls, Tag, Discriminator]
    inner = union.__origin__
    members = typing.get_args(inner) if typing.get_origin(inner) is Union else (union,)
    return {next(x.tag for x in m.__metadata__ if isinstance(x, Tag)): m.__origin__ for m in members}


FAULT_KINDS = {"faults": union_kinds(FaultSpec)}
"""The spec class of each kind, by scenario list (the tags of FaultSpec; a random process takes any of them)."""


# A random fault process takes a template of any scheduled kind: the kind and its own fields, without
# `at`, a target or the repair time, which the process fills in each time it fires (see sim/model/faults.py).
def _missing(field: str, msg: str) -> ValidationError:
    """A 'Field required'-style error located at `field` (pydantic prefixes the outer path)."""
    return ValidationError.from_exception_data("RandomFault", [
        {"type": PydanticCustomError("missing", msg), "loc": (field,), "input": None}])


class RandomFault(FrozenModel):
    """A random fault process: faults of one kind at exponential gaps (MTBF), each repaired after `downtime`
    or an exponential time (MTTR); one process for the cluster, or one per broker, rack or link."""

    kind: str = Field("crash", description="the fault kind: any kind of the faults list (crash when left out)")
    fault: dict[str, Any] = Field(default_factory=dict, description="the template: the kind's own fields "
                                                                    "(not at, the target or the repair time)")
    per: Literal["cluster", "broker", "rack", "link"] = Field(
        "cluster", description="cluster: one process faulting a random live broker; broker/rack/link: one "
                               "process per broker, rack or broker pair, each failing after an exponential "
                               "up-time")
    mean_interval: PositiveDuration = Field(..., description="mean time between faults (MTBF, exponential)")
    downtime: PositiveDuration | None = Field(None, description="how long each fault lasts (a fixed repair time)")
    mean_repair: PositiveDuration | None = Field(None, description="mean time to repair (MTTR, exponential)")
    start: Duration = Field(0.0, description="no random fault before this time")
    stop: Duration | None = Field(None, description="no random fault after this time (default: duration)")
    max_down: int = Field(1, ge=1, description="at most this many brokers (racks, links) faulted at once "
                                               "by this process")
    _prototype: Any = PrivateAttr(None)
    _heal_field: str | None = PrivateAttr(None)

    @model_validator(mode="before")
    @classmethod
    def _kind_from_template(cls, data: Any) -> Any:
        """`fault: {kind: pause, ...}` and `kind: pause` name the same thing; a template's kind wins if alone."""
        if isinstance(data, dict) and isinstance(data.get("fault"), dict) and "kind" in data["fault"]:
            data = dict(data)
            fault = dict(data["fault"])
            kind = fault.pop("kind")
            if data.setdefault("kind", kind) != kind:
                raise ValueError(f"kind: {data['kind']!r} differs from fault.kind {kind!r} (allowed: one kind)")
            data["fault"] = fault
        return data

    @model_validator(mode="after")
    def _check(self) -> "RandomFault":
        kinds = FAULT_KINDS["faults"]
        if self.kind not in kinds:
            raise ValidationError.from_exception_data("RandomFault", [{
                "type": PydanticCustomError("literal_error", "must be one of {tags}",
                                            {"tags": ", ".join(f"'{k}'" for k in kinds)}),
                "loc": ("kind",), "input": self.kind}])
        if (self.downtime is None) == (self.mean_repair is None):
            if self.downtime is None:
                raise _missing("downtime", "Field required (or mean_repair: an exponential repair time)")
            raise ValueError("give one of 'downtime' (fixed) or 'mean_repair' (exponential), not both")
        cls = kinds[self.kind]
        base = set(ScheduledFault.model_fields) - {"kind"}  # `at` and the target selectors
        fixed_target = sorted(base & set(self.fault) - {"at"})
        if "at" in self.fault:
            raise ValueError("fault.at: set by the random process (allowed: the kind's own fields)")
        if fixed_target and self.per != "cluster":
            raise ValueError(f"fault.{fixed_target[0]}: a fixed target needs per: cluster (per: {self.per} "
                             f"picks the target)")
        if self.per == "link" and not hasattr(cls, "link_target"):
            link_kinds = [k for k, c in kinds.items() if hasattr(c, "link_target")]
            raise ValueError(f"per: link needs a kind that targets links "
                             f"(allowed kinds: {link_kinds or 'none yet'})")
        heal = _heal_field(cls, self.kind, {k: v for k, v in self.fault.items() if k in cls.model_fields})
        if heal is None:
            raise ValueError(f"kind: {self.kind} has no repair time field (heal_after), "
                             f"a random process cannot repair it")
        if heal in self.fault:
            raise ValueError(f"fault.{heal}: set by the random process from downtime or mean_repair")
        target = {} if fixed_target else {"broker": 0}
        if self.per == "link":
            target = cls.link_target(0, 1)
        try:
            proto = cls.model_validate({**self.fault, "kind": self.kind, "at": "0ms", **target, heal: "1ms"})
        except ValidationError as e:
            raise ValidationError.from_exception_data("RandomFault", [
                {"type": PydanticCustomError(x["type"], x["msg"]), "loc": ("fault", *x["loc"]),
                 "input": x.get("input")} for x in e.errors(include_url=False)]) from None
        self._prototype, self._heal_field = proto, heal
        return self

    def instance(self, at: float, target: dict[str, Any], repair: float) -> ScheduledFault:
        """The scheduled fault one firing of this process is: its template at `at` on `target`, healed after
        `repair` (no validation: the template was validated once)."""
        return self._prototype.model_copy(update={"at": at, **target, self._heal_field: repair})


def _heal_field(cls: type[ScheduledFault], kind: str, template: dict[str, Any]) -> str | None:
    """The field of `cls` that sets its `heal_after` (its ClassVar `heal_field`, or found by trying each)."""
    declared = getattr(cls, "heal_field", None)
    if isinstance(declared, str):
        return declared
    own_target = set(template) & (set(ScheduledFault.model_fields) | {"controller", "producer", "consumer"})
    target = {} if own_target else {"broker": 0}
    for name in cls.model_fields:
        if name in ScheduledFault.model_fields:
            continue
        try:
            spec = cls.model_validate({**{k: v for k, v in template.items() if k != name}, "kind": kind, "at": "0ms",
                                       **target, name: "1234.5ms"})
        except ValidationError:
            continue
        if spec.heal_after == 1234.5:
            return name
    return None


RandomFaultSpec = RandomFault
"""A random fault process (of any kind of the FaultSpec union)."""
RandomCrashFault = RandomFault
"""The name random faults had when crashes were their only kind."""
FAULT_KINDS["random_faults"] = dict.fromkeys(FAULT_KINDS["faults"], RandomFault)
