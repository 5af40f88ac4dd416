"""The scenario file: a validated, frozen pydantic tree using Kafka's own config names.

Keys that Kafka has (``acks``, ``min.insync.replicas``, ``linger.ms`` ...) keep Kafka's dotted
names and defaults, so a Kafka user can paste producer, broker and topic configs. Durations are
strings with units and become float milliseconds here, once; Kafka's ``*.ms`` keys also take
bare numbers in milliseconds. ``Scenario.resolve`` loads YAML, applies dotted ``--set``
overrides and validates; every problem becomes a one-line :class:`ScenarioError`. Defaults and
behaviours that changed between Kafka releases come from one table (sim/versions.py), picked by
``cluster.kafka.version``.
"""

from __future__ import annotations

import math
import re
import typing
import warnings
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Union

import yaml
from pydantic_core import PydanticCustomError
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PlainSerializer,
    PrivateAttr,
    Tag,
    ValidationError,
    model_serializer,
    model_validator,
)

from sim.scenario.units import format_bandwidth, format_ms, format_rate, parse_bandwidth, parse_duration_ms, parse_rate, parse_size
from sim.scenario.versions import DEFAULT_VERSION, VERSIONS, KafkaVersion, kafka_version

__all__ = [
    "Scenario", "ScenarioError", "ClusterConfig", "NetworkConfig", "TopicConfig", "ProducerConfig",
    "ConsumerConfig", "FaultSpec", "RandomFaultSpec", "ScheduledFault", "CrashFault", "RandomFault",
    "RandomCrashFault", "PowerLossFault", "DiskLossFault", "SlowDiskFault", "PartitionFault", "DegradeFault",
    "PauseFault", "ControlledShutdownFault", "ControllerOutageFault", "ClientFault", "ProducerCrashFault", "ConsumerCrashFault",
    "ConsumerPauseFault", "FAULT_KINDS", "union_kinds", "LatencyDist",
    "load_scenario",
    "apply_overrides", "format_errors",
    "scenario_warnings", "load_yaml", "is_sweep_data", "is_scenario_data", "MAX_FILE_BYTES",
]

INT32_MAX = 2_147_483_647


class ScenarioError(ValueError):
    """A scenario, override or sweep problem, already phrased as one line per problem."""


# --- field types -------------------------------------------------------------------------------
Duration = Annotated[
    float,
    BeforeValidator(lambda v: parse_duration_ms(v)),
    PlainSerializer(format_ms, return_type=str),
]
"""A duration written with a unit ("250ms", "30s"); float milliseconds inside."""

KafkaMs = Annotated[
    float,
    BeforeValidator(lambda v: parse_duration_ms(v, bare_is_ms=True)),
    PlainSerializer(lambda ms: int(ms) if float(ms).is_integer() else ms),
]
"""A Kafka ``*.ms`` config: a bare number of milliseconds or a duration string."""

Size = Annotated[int, BeforeValidator(parse_size)]
Rate = Annotated[float, BeforeValidator(parse_rate), PlainSerializer(format_rate, return_type=str)]
Bandwidth = Annotated[float, BeforeValidator(parse_bandwidth), PlainSerializer(format_bandwidth, return_type=str)]


def _positive(v: float) -> float:
    if v <= 0:
        raise ValueError("must be greater than 0")
    return v


PositiveMs = Annotated[KafkaMs, AfterValidator(_positive)]
PositiveDuration = Annotated[Duration, AfterValidator(_positive)]


def _parse_acks(v: Any) -> int:
    # Kafka accepts "all", "-1", "0", "1"; the 0.8 broker also took N >= 2 ("N replicas incl. leader").
    if isinstance(v, bool):
        raise ValueError("acks must be one of: all, -1, 0, 1 (or legacy N >= 2)")
    if isinstance(v, str):
        s = v.strip().lower()
        if s == "all":
            return -1
        try:
            v = int(s)
        except ValueError:
            raise ValueError(f"acks must be one of: all, -1, 0, 1 (or legacy N >= 2), got {v!r}") from None
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if not isinstance(v, int) or v < -1 or v > 1000:
        raise ValueError(f"acks must be one of: all, -1, 0, 1 (or legacy N >= 2), got {v!r}")
    if v >= 2:
        # KAFKA-1697: removed in 0.9.0.0; modern brokers answer INVALID_REQUIRED_ACKS.
        warnings.warn(
            f"acks={v} is the Kafka 0.8 legacy form (wait for {v} ISR replicas incl. the leader); "
            "modern Kafka rejects it with INVALID_REQUIRED_ACKS",
            stacklevel=2,
        )
    return v


Acks = Annotated[
    int,
    BeforeValidator(_parse_acks),
    PlainSerializer(lambda a: "all" if a == -1 else a),
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# --- network -----------------------------------------------------------------------------------
LATENCY_PARAMS = {
    "constant": ("value",), "uniform": ("low", "high"), "normal": ("mean", "std"),
    "lognormal": ("median", "sigma"), "exponential": ("mean",),
}
"""The parameters each latency distribution family takes."""


class LatencyDist(_Model):
    """One-way link latency distribution (ms inside)."""

    dist: Literal["constant", "uniform", "normal", "lognormal", "exponential"] = Field(
        "constant", description="distribution family")
    value: Duration | None = Field(None, description="constant: the latency")
    low: Duration | None = Field(None, description="uniform: lower bound")
    high: Duration | None = Field(None, description="uniform: upper bound")
    mean: Duration | None = Field(None, description="normal/exponential: the mean")
    std: Duration | None = Field(None, description="normal: standard deviation (truncated at 0)")
    median: Duration | None = Field(None, description="lognormal: the median")
    sigma: float | None = Field(None, ge=0, description="lognormal: shape (sigma of log)")

    @model_validator(mode="after")
    def _check_params(self) -> "LatencyDist":
        need = LATENCY_PARAMS[self.dist]
        allowed = set(need) | {"dist"}
        given = {k for k in type(self).model_fields if getattr(self, k) is not None}
        missing = [k for k in need if getattr(self, k) is None]
        if missing:
            raise ValueError(f"{self.dist} latency needs {', '.join(need)}; missing {', '.join(missing)}")
        extra = sorted(given - allowed)
        if extra:
            raise ValueError(f"{self.dist} latency takes only {', '.join(need)}; remove {', '.join(extra)}")
        if self.dist == "uniform" and self.high < self.low:
            raise ValueError("uniform latency needs low <= high")
        return self


class NetworkConfig(_Model):
    """Links between every pair of endpoints (brokers, controller, clients)."""

    latency: LatencyDist = Field(default_factory=lambda: LatencyDist(dist="constant", value="0.5ms"),
                                 description="one-way latency of every message")
    bandwidth: Bandwidth | None = Field(
        None, description="each endpoint's NIC capacity: what it sends queues behind what it sent, e.g. '125MB/s'")
    zone_latency: LatencyDist | None = Field(
        None, description="extra one-way latency between endpoints of different zones (cluster.zones)")
    controller_zone: str | None = Field(None, description="zone of the KRaft controller (default: the first zone)")
    client_zone: str | None = Field(None, description="zone of every producer and consumer (default: the first zone)")


# --- cluster.hardware: the capacity model (sim/model/hardware.py) ---------------------------------
HARDWARE_PRESETS: dict[str, dict] = {
    # today's behaviour: nothing has a capacity, nothing costs time
    "unlimited": {},
    # Kreps 2014 (kafka-reference 3b.1): three cheap machines, 2.5 GHz six-core Xeon, six 7200 rpm
    # SATA disks mounted separately (~822 MB/s linear writes together), 1 GbE. The CPU costs and the
    # producer's per-record cost are calibrated to the V9 case (scenarios/validation/v9-*.yaml).
    "kreps-2014": {
        "nic": "1Gbit/s",
        "disk": {"write": "822MB/s"},
        "cpu": {"per_request": "60us", "byte_rate": "60MB/s", "network_per_request": "20us",
                "network_byte_rate": "1000MB/s"},
        "client": {"nic": "1Gbit/s", "per_record": "1.2us"},
    },
    # Confluent OMB 2020 (3b.3): i3en.2xlarge brokers (8 vCPU, 2 x 2500 GB NVMe, up to 25 Gbps) and
    # c5n.2xlarge clients (up to 25 Gbps). Disk and CPU figures are rough instance specs, not calibrated.
    "omb-2020": {
        "nic": "25Gbit/s",
        "disk": {"write": "2GB/s"},
        "cpu": {"per_request": "30us", "byte_rate": "1000MB/s", "network_per_request": "10us",
                "network_byte_rate": "4000MB/s"},
        "client": {"nic": "25Gbit/s"},
    },
}
"""The `cluster.hardware` presets: name -> the hardware fields it sets (a scenario may override any)."""


class DiskHardware(_Model):
    """A broker's disks, as one write queue."""

    write: Bandwidth | None = Field(None, description="sustained write bandwidth of the broker's log dirs together")


class CpuHardware(_Model):
    """What request handling costs a broker's threads (KafkaRequestHandler, SocketServer.Processor)."""

    per_request: Duration = Field(0.0, description="io thread time per request (KafkaApis), e.g. '50us'")
    byte_rate: Bandwidth | None = Field(
        None, description="bytes of request payload one io thread (or the replica fetcher thread) validates and "
                          "appends per second: the per-byte cost is its inverse (none: free)")
    network_per_request: Duration = Field(0.0, description="network (processor) thread time per request read")
    network_byte_rate: Bandwidth | None = Field(
        None, description="bytes one network thread reads off sockets per second (none: free)")


class ClientHardware(_Model):
    """The producers' and consumers' machines."""

    nic: Bandwidth | None = Field(None, description="each client host's NIC, each direction (default: none)")
    per_record: Duration = Field(
        0.0, description="the producer application thread's time per send() (serialise, partition, append): "
                         "a producer offers at most 1/per_record records per second")


def _hardware_input(v: Any) -> Any:
    """`hardware: kreps-2014` is `{preset: kreps-2014}`; a preset's fields are the defaults of the given ones."""
    if v is None:
        return {}
    if isinstance(v, str):
        v = {"preset": v}
    if not isinstance(v, dict):
        return v
    preset = v.get("preset", "unlimited")
    base = HARDWARE_PRESETS.get(preset) if isinstance(preset, str) else None
    if not base:
        return v  # unknown presets are reported by the Literal on `preset`
    merged = {**base}
    for k, val in v.items():
        if isinstance(val, dict) and isinstance(base.get(k), dict):
            merged[k] = {**base[k], **val}
        else:
            merged[k] = val
    return merged


class HardwareConfig(_Model):
    """Capacities of the machines (sim/model/hardware.py); everything unset costs nothing.

    Either a preset name (`hardware: kreps-2014`) or fields, optionally on top of a preset
    (`hardware: {preset: kreps-2014, nic: 10Gbit/s}`).
    """

    preset: Literal[tuple(HARDWARE_PRESETS)] = Field(  # type: ignore[valid-type]
        "unlimited", description="a named machine (its fields are the defaults of those given here)")
    nic: Bandwidth | None = Field(
        None, description="each broker host's NIC, each direction (full duplex): what it sends and what it "
                          "receives queue behind each other, e.g. '1Gbit/s'")
    disk: DiskHardware | None = Field(None, description="the broker's disk write bandwidth")
    cpu: CpuHardware | None = Field(
        None, description="request handling: per-request and per-byte costs on num.network.threads / "
                          "num.io.threads (and one connection's requests one at a time, as Kafka mutes it)")
    client: ClientHardware | None = Field(None, description="the clients' machines: NIC and the producer's send capacity")

    @property
    def enabled(self) -> bool:
        """Is any capacity set (otherwise the model runs exactly as without hardware)?"""
        return self.broker_enabled or self.clients_enabled

    @property
    def broker_enabled(self) -> bool:
        return self.nic is not None or self.disk is not None and self.disk.write is not None or self.cpu is not None

    @property
    def clients_enabled(self) -> bool:
        return self.client is not None and (self.client.nic is not None or self.client.per_record > 0)


Hardware = Annotated[HardwareConfig, BeforeValidator(_hardware_input)]


# --- cluster / brokers ---------------------------------------------------------------------------
def _version_text(v: Any) -> Any:
    """YAML reads `kafka.version: 3.7` (and `--set cluster.kafka.version=3.7`) as a number: take its text."""
    if isinstance(v, bool):
        return v
    if isinstance(v, float) and math.isfinite(v):
        return f"{v}"  # 3.7 -> "3.7", 4.0 -> "4.0"
    if isinstance(v, int):
        return f"{v}.0"  # 4 -> "4.0"
    return v


KafkaVersionName = Annotated[Literal[tuple(VERSIONS)], BeforeValidator(_version_text)]  # type: ignore[valid-type]
"""A supported `kafka.version` (the rows of sim.scenario.versions.VERSIONS)."""


RENAMED_CLUSTER_KEYS = {"election_cost": "controller.election.cost.ms"}
"""Old cluster keys still accepted (with a warning) for one release after their rename: old -> new."""


class ClusterConfig(_Model):
    """Brokers, the KRaft controller, and broker-level Kafka configs."""

    brokers: int = Field(3, ge=1, le=1000, description="number of brokers (ids 0..n-1)")
    racks: list[str] | None = Field(None, description="rack of each broker (broker.rack)")
    zones: list[str] | None = Field(
        None, description="kafkasim's own: zone (data centre) of each broker; broker.rack defaults to it")
    kafka_version: KafkaVersionName = Field(
        DEFAULT_VERSION, alias="kafka.version",
        description="the Kafka release whose version-dependent defaults and behaviours apply (sim/versions.py)")
    controller_election_cost_ms: KafkaMs = Field(
        5, alias="controller.election.cost.ms", ge=0,
        description="kafkasim's own key (Kafka has no such config): controller time per partition leader "
                    "election (Rao 2015: ~5 ms); formerly `election_cost`")
    controller_mode: Literal["kraft", "zookeeper"] = Field(
        "kraft", alias="controller.mode",
        description="kafkasim's own key (Kafka has none: a ZooKeeper-mode broker sets zookeeper.connect, a KRaft "
                    "one process.roles): kraft elects a fenced broker's partitions in one controller batch; "
                    "zookeeper (up to 3.9) elects them one at a time (controller.election.cost.ms each), detects "
                    "failures after zookeeper.session.timeout.ms, runs the controller on a broker and, when the "
                    "controller fails over, reloads the metadata (controller.failover.cost.ms per partition)")
    controller_failover_cost_ms: KafkaMs = Field(
        2, alias="controller.failover.cost.ms", ge=0,
        description="kafkasim's own key (Kafka has no such config): zookeeper mode only, controller time per "
                    "partition to load the metadata from ZooKeeper after a controller failover (Rao 2015: ~2 ms)")
    zookeeper_session_timeout_ms: PositiveMs = Field(
        18000, alias="zookeeper.session.timeout.ms",
        description="zookeeper mode only: a broker silent this long loses its ZooKeeper session and the "
                    "controller treats it as failed (6000 up to 2.4, 18000 from 2.5, KIP-537)")
    log_truncation: Literal["leader_epoch", "high_watermark"] = Field(
        "leader_epoch", alias="log.truncation",
        description="kafkasim's own key (Kafka has no such config): how a replica that becomes a follower finds "
                    "where to truncate: leader_epoch (KIP-101/279, 0.11+: the leader's epoch end offsets) or "
                    "high_watermark (before 0.11: its own local high watermark, which can drop committed records)")
    broker_session_timeout_ms: PositiveMs = Field(9000, alias="broker.session.timeout.ms")
    broker_heartbeat_interval_ms: PositiveMs = Field(2000, alias="broker.heartbeat.interval.ms")
    replica_lag_time_max_ms: PositiveMs = Field(30000, alias="replica.lag.time.max.ms")
    replica_fetch_wait_max_ms: KafkaMs = Field(500, alias="replica.fetch.wait.max.ms")
    replica_fetch_max_bytes: Size = Field(1024 * 1024, alias="replica.fetch.max.bytes", gt=0)
    replica_fetch_response_max_bytes: Size = Field(10 * 1024 * 1024, alias="replica.fetch.response.max.bytes", gt=0)
    replica_fetch_backoff_ms: KafkaMs = Field(1000, alias="replica.fetch.backoff.ms")
    replica_socket_timeout_ms: PositiveMs = Field(30000, alias="replica.socket.timeout.ms")
    replica_high_watermark_checkpoint_interval_ms: PositiveMs = Field(
        5000, alias="replica.high.watermark.checkpoint.interval.ms")
    min_insync_replicas: int = Field(1, ge=1, alias="min.insync.replicas")
    unclean_leader_election_enable: bool = Field(False, alias="unclean.leader.election.enable")
    # --- preferred-leader rebalancing (QuorumController.maybeScheduleNextBalancePartitionLeaders)
    auto_leader_rebalance_enable: bool = Field(
        True, alias="auto.leader.rebalance.enable",
        description="the controller moves leadership back to each partition's preferred (first) replica when "
                    "it is in the ISR again; each such move is a leader change (an acks=1 loss window)")
    leader_imbalance_check_interval_seconds: int = Field(
        300, ge=1, alias="leader.imbalance.check.interval.seconds",
        description="KRaft: the preferred elections run this long after a leader change left a partition off "
                    "its preferred replica; zookeeper mode: the controller checks every this often (from 5 s)")
    leader_imbalance_per_broker_percentage: int = Field(
        10, ge=0, le=100, alias="leader.imbalance.per.broker.percentage",
        description="zookeeper mode only: a broker's partitions are moved back only when more than this "
                    "percentage of those it is preferred for are led elsewhere; a KRaft controller ignores it")
    # --- storage (docs/faults/disk.md): flushing, the OS writeback, Eligible Leader Replicas
    log_flush_interval_messages: int | None = Field(
        None, ge=1, alias="log.flush.interval.messages",
        description="fsync a log after this many unflushed records (default: never, Kafka's Long.MAX_VALUE)")
    log_flush_interval_ms: KafkaMs | None = Field(
        None, gt=0, alias="log.flush.interval.ms",
        description="fsync a log this long after its last fsync, checked every log.flush.scheduler.interval.ms "
                    "(default: never)")
    log_flush_scheduler_interval_ms: KafkaMs | None = Field(
        None, gt=0, alias="log.flush.scheduler.interval.ms",
        description="how often the log flusher checks flush.ms (LogManager; default never: flush.ms has no "
                    "effect unless this is set)")
    os_dirty_expire_ms: PositiveDuration = Field(
        30_000.0, alias="os.dirty_expire",
        description="kafkasim's own key (Linux vm.dirty_expire_centisecs): a dirty page older than this is "
                    "written back by the next writeback run")
    os_dirty_writeback_ms: PositiveDuration = Field(
        5_000.0, alias="os.dirty_writeback_interval",
        description="kafkasim's own key (Linux vm.dirty_writeback_centisecs): how often the kernel writeback runs")
    hardware: Hardware = Field(
        default_factory=HardwareConfig,
        description="kafkasim's own: machine capacities (NIC, disk, request threads, clients); a preset "
                    "(unlimited, kreps-2014, omb-2020) or fields; default unlimited (nothing costs time)")
    num_network_threads: int = Field(
        3, ge=1, le=1024, alias="num.network.threads",
        description="SocketServer processor threads per broker; matter only with cluster.hardware.cpu")
    num_io_threads: int = Field(
        8, ge=1, le=1024, alias="num.io.threads",
        description="KafkaRequestHandler threads per broker; matter only with cluster.hardware.cpu")
    eligible_leader_replicas_enable: bool | None = Field(
        None, alias="eligible.leader.replicas.enable",
        description="KIP-966 Eligible Leader Replicas (eligible.leader.replicas.version=1); default by "
                    "kafka.version: available from 4.0, off in 4.0 (on for new clusters from 4.1)")

    _renamed: tuple[tuple[str, str], ...] = PrivateAttr(default=())

    @model_validator(mode="wrap")
    @classmethod
    def _old_names(cls, data: Any, handler) -> "ClusterConfig":
        """Accept the keys of RENAMED_CLUSTER_KEYS under their old names for one release (a warning)."""
        renamed = []
        if isinstance(data, dict):
            for old, new in RENAMED_CLUSTER_KEYS.items():
                if old in data:
                    if new in data:
                        raise ValueError(f"{old} is the old name of {new}: set only {new}")
                    data = {(new if k == old else k): v for k, v in data.items()}
                    renamed.append((old, new))
        inst = handler(data)
        if renamed:
            inst._renamed = tuple(renamed)
        return inst

    @model_validator(mode="after")
    def _check(self) -> "ClusterConfig":
        if self.racks is not None and len(self.racks) != self.brokers:
            raise ValueError(f"racks lists {len(self.racks)} racks for {self.brokers} brokers")
        if self.zones is not None and len(self.zones) != self.brokers:
            raise ValueError(f"zones lists {len(self.zones)} zones for {self.brokers} brokers")
        if self.broker_heartbeat_interval_ms >= self.session_timeout_ms:
            key = "zookeeper" if self.controller_mode == "zookeeper" else "broker"
            raise ValueError(f"broker.heartbeat.interval.ms must be less than {key}.session.timeout.ms")
        if self.controller_mode == "zookeeper" and self.version_defaults.key >= (4, 0):
            raise ValueError(f"controller.mode: zookeeper needs kafka.version 3.9 or earlier (ZooKeeper "
                             f"mode was removed in 4.0); this scenario has {self.kafka_version} (allowed: kraft)")
        if self.eligible_leader_replicas_enable and self.version_defaults.key < (4, 0):
            raise ValueError(f"cluster.eligible.leader.replicas.enable: true needs kafka.version 4.0 or later "
                             f"(KIP-966 part 1 shipped in 4.0); this scenario has {self.kafka_version} "
                             f"(allowed: false)")
        return self

    @property
    def session_timeout_ms(self) -> float:
        """How long a silent broker keeps its session: broker.session.timeout.ms (KRaft) or
        zookeeper.session.timeout.ms (ZooKeeper mode)."""
        if self.controller_mode == "zookeeper":
            return self.zookeeper_session_timeout_ms
        return self.broker_session_timeout_ms

    @property
    def elr_enabled(self) -> bool:
        """Eligible Leader Replicas on: the explicit setting, else the version default (off up to 4.0)."""
        if self.eligible_leader_replicas_enable is not None:
            return self.eligible_leader_replicas_enable
        return self.version_defaults.key >= (4, 1)

    @property
    def version_defaults(self) -> KafkaVersion:
        """The sim.scenario.versions row of `kafka.version`: every version-dependent default and behaviour."""
        return kafka_version(self.kafka_version)


class TopicConfig(_Model):
    """A topic; ``min.insync.replicas`` and unclean election default to the broker values."""

    name: str = Field(..., min_length=1, pattern=r"^[A-Za-z0-9._-]+$")
    partitions: int = Field(1, ge=1, le=100_000)
    replication_factor: int = Field(3, ge=1, alias="replication.factor")
    min_insync_replicas: int | None = Field(None, ge=1, alias="min.insync.replicas")
    unclean_leader_election_enable: bool | None = Field(None, alias="unclean.leader.election.enable")
    flush_messages: int | None = Field(None, ge=1, alias="flush.messages",
                                       description="default: log.flush.interval.messages (never)")
    flush_ms: KafkaMs | None = Field(None, gt=0, alias="flush.ms", description="default: log.flush.interval.ms (never)")


# --- clients -----------------------------------------------------------------------------------
class ProducerConfig(_Model):
    """An open-loop producer (or `instances` identical ones) with KafkaProducer configs.

    Defaults that depend on the Kafka version are None here and filled in by the Scenario
    validator from the row of `cluster.kafka.version` (sim/scenario/versions.py).
    """

    name: str | None = Field(None, description="default producer-<index>")
    topic: str
    instances: int = Field(1, ge=1, le=1000, description="identical producers (each its own producer id)")
    rate: Rate = Field(..., gt=0, description="records per second per instance, e.g. '20000/s'")
    arrival: Literal["constant", "poisson"] = "poisson"
    record_size: Size = Field(100, alias="record.size", gt=0, le=100 * 1024 * 1024)
    keys: int | None = Field(None, ge=1, le=2**63 - 1, description="key space size; null = null keys")
    partitioner: Literal["sticky", "round-robin", "hash"] | None = Field(
        None, description="default: hash for keyed records, sticky (KIP-480/794) for null keys")
    acks: Acks = -1
    enable_idempotence: bool | None = Field(None, alias="enable.idempotence")
    retries: int = Field(INT32_MAX, ge=0, le=INT32_MAX)
    linger_ms: KafkaMs | None = Field(
        None, alias="linger.ms", description="default by kafka.version: 0 up to 3.9, 5 from 4.0 (KIP-1030)")
    batch_size: Size = Field(16384, alias="batch.size", ge=0, le=INT32_MAX)
    max_in_flight: int = Field(5, ge=1, le=1000, alias="max.in.flight.requests.per.connection")
    retry_backoff_ms: KafkaMs = Field(100, alias="retry.backoff.ms")
    retry_backoff_max_ms: KafkaMs | None = Field(
        None, alias="retry.backoff.max.ms",
        description="from Kafka 3.7 (KIP-580), default 1000; absent before (constant retry.backoff.ms)")
    request_timeout_ms: PositiveMs = Field(30000, alias="request.timeout.ms")
    delivery_timeout_ms: PositiveMs = Field(120000, alias="delivery.timeout.ms")
    reconnect_backoff_ms: KafkaMs = Field(50, alias="reconnect.backoff.ms")
    reconnect_backoff_max_ms: KafkaMs = Field(1000, alias="reconnect.backoff.max.ms")
    start: Duration = Field(0.0, description="when the producer starts sending")

    _kafka_version: str | None = PrivateAttr(None)  # set by the Scenario validator
    _version_filled: frozenset = PrivateAttr(frozenset())  # fields the validator filled from _kafka_version's row

    def __eq__(self, other: object) -> bool:
        # which values were filled in is provenance, not configuration: a resolved producer equals
        # the same producer read back from its YAML, where every value is explicit
        if type(other) is not type(self):
            return NotImplemented
        return self.__dict__ == other.__dict__ and self._kafka_version == other._kafka_version

    __hash__ = _Model.__hash__  # frozen: hashable like every other scenario model

    @property
    def version_defaults(self) -> KafkaVersion:
        """The sim.scenario.versions row this producer was resolved with (the default version if built alone)."""
        return kafka_version(self._kafka_version or DEFAULT_VERSION)

    @model_serializer(mode="wrap")
    def _omit_absent_configs(self, handler) -> dict:
        # retry.backoff.max.ms does not exist before Kafka 3.7 (KIP-580): leave it out, never null,
        # so that a resolved 3.6 scenario validates again to the same object
        data = handler(self)
        if self.retry_backoff_max_ms is None:
            data.pop("retry.backoff.max.ms", None)
            data.pop("retry_backoff_max_ms", None)
        return data

    @model_validator(mode="after")
    def _resolve_idempotence(self) -> "ProducerConfig":
        # KIP-679 (3.0+): idempotence defaults to true unless a setting conflicts, in which case
        # it is silently disabled; set explicitly with a conflict it is a ConfigException.
        # max.in.flight > 5 with it unset is left None: the fallback depends on the version (KAFKA-17927).
        conflicts = []
        if self.acks != -1:
            conflicts.append("acks=all")
        if self.retries == 0:
            conflicts.append("retries > 0")
        if self.max_in_flight > 5:
            conflicts.append("max.in.flight.requests.per.connection <= 5")
        if self.enable_idempotence is None:
            if self.max_in_flight <= 5:
                object.__setattr__(self, "enable_idempotence", not conflicts)
        elif self.enable_idempotence and conflicts:
            raise ValueError("enable.idempotence=true requires " + ", ".join(conflicts)
                             + " (set enable.idempotence: false, or " + " and ".join(conflicts) + ")")
        if self.partitioner == "hash" and self.keys is None:
            raise ValueError("partitioner 'hash' needs keys (a key space size)")
        if self.partitioner is None:
            object.__setattr__(self, "partitioner", "hash" if self.keys is not None else "sticky")
        return self


class ConsumerConfig(_Model):
    """A consumer group of `instances` consumers with KafkaConsumer configs."""

    group: str = Field(..., alias="group.id", min_length=1)
    topic: str
    instances: int = Field(1, ge=1, le=1000)
    enable_auto_commit: bool = Field(True, alias="enable.auto.commit")
    auto_commit_interval_ms: PositiveMs = Field(5000, alias="auto.commit.interval.ms")
    auto_offset_reset: Literal["earliest", "latest"] = Field("latest", alias="auto.offset.reset")
    fetch_max_wait_ms: KafkaMs = Field(500, alias="fetch.max.wait.ms")
    max_partition_fetch_bytes: Size = Field(1024 * 1024, alias="max.partition.fetch.bytes", gt=0)
    fetch_max_bytes: Size = Field(50 * 1024 * 1024, alias="fetch.max.bytes", gt=0)
    request_timeout_ms: PositiveMs = Field(30000, alias="request.timeout.ms")
    retry_backoff_ms: KafkaMs = Field(100, alias="retry.backoff.ms")
    group_protocol: Literal["none", "classic"] = Field(
        "none", alias="group.protocol",
        description="none: partitions assigned once (range), no heartbeats or rebalances (kafkasim's default, "
                    "cheapest); classic: the classic group protocol with a group coordinator (join/sync, "
                    "heartbeats, session timeout, rebalances)")
    session_timeout_ms: PositiveMs = Field(45000, alias="session.timeout.ms",
                                           description="classic protocol: a member silent this long is removed")
    heartbeat_interval_ms: PositiveMs = Field(3000, alias="heartbeat.interval.ms")
    max_poll_interval_ms: PositiveMs = Field(
        300000, alias="max.poll.interval.ms", description="classic protocol: the rebalance timeout of JoinGroup")
    partition_assignment_strategy: Literal["range", "roundrobin", "cooperative-sticky"] = Field(
        "range", alias="partition.assignment.strategy",
        description="classic protocol: the assignor (cooperative-sticky keeps owned partitions; rebalances are eager)")
    start: Duration = Field(
        0.0, description="when the consumers start (join and fetch), e.g. to read a backlog written before (kafkasim)")

    @model_validator(mode="after")
    def _heartbeat_below_session(self) -> "ConsumerConfig":
        if self.heartbeat_interval_ms >= self.session_timeout_ms:
            raise ValueError("heartbeat.interval.ms must be lower than session.timeout.ms (Kafka rejects it)")
        return self


# --- faults ------------------------------------------------------------------------------------
# A fault spec is a discriminated union on `kind`: the fields every fault has (when, which target,
# when it heals) live in a base class, each kind adds its own in one subclass. A new kind is one
# class here, listed in FaultSpec, plus its action in sim/model/faults.py. `kind` may be left out
# for a crash (the only kind files had before the union).
class ScheduledFault(_Model):
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


def _signed_duration_ms(v: Any) -> float:
    """A duration that may be negative ("-60s": a clock stepped back)."""
    if isinstance(v, str) and v.strip().startswith("-"):
        return -parse_duration_ms(v.strip()[1:])
    return parse_duration_ms(v)


SignedDuration = Annotated[
    float,
    BeforeValidator(_signed_duration_ms),
    PlainSerializer(lambda ms: ("-" if ms < 0 else "") + format_ms(abs(ms)), return_type=str),
]
"""A duration with a unit that may be negative ("-60s"); float milliseconds inside."""


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


class Reassignment(_Model):
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


class RandomFault(_Model):
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


# --- the scenario ------------------------------------------------------------------------------
class Scenario(_Model):
    """A complete, resolved scenario."""

    name: str = Field(..., min_length=1, pattern=r"^[A-Za-z0-9._-]+$")
    description: str = ""
    duration: PositiveDuration = Field(..., description="how long producers produce")
    settle: Duration = Field(30_000.0, description="after faults heal and producers stop: time to converge")
    seed: int = Field(0, ge=0, le=2**63 - 1)
    cluster: ClusterConfig = Field(default_factory=ClusterConfig)
    network: NetworkConfig = Field(default_factory=NetworkConfig)
    topics: list[TopicConfig] = Field(..., min_length=1)
    producers: list[ProducerConfig] = Field(default_factory=list)
    consumers: list[ConsumerConfig] = Field(default_factory=list)
    faults: list[FaultSpec] = Field(default_factory=list)
    random_faults: list[RandomFaultSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _cross_check(self) -> "Scenario":
        names = [t.name for t in self.topics]
        if len(set(names)) != len(names):
            raise ValueError("topic names must be unique")
        by_name = {t.name: t for t in self.topics}
        resolved = []
        for t in self.topics:
            if t.replication_factor > self.cluster.brokers:
                raise ValueError(f"topic {t.name}: replication.factor {t.replication_factor} exceeds "
                                 f"{self.cluster.brokers} brokers (INVALID_REPLICATION_FACTOR)")
            resolved.append(t.model_copy(update={
                "min_insync_replicas": t.min_insync_replicas or self.cluster.min_insync_replicas,
                "unclean_leader_election_enable": (self.cluster.unclean_leader_election_enable
                                                   if t.unclean_leader_election_enable is None
                                                   else t.unclean_leader_election_enable),
                "flush_messages": t.flush_messages or self.cluster.log_flush_interval_messages,
                "flush_ms": t.flush_ms or self.cluster.log_flush_interval_ms,
            }))
        kv = self.cluster.version_defaults
        if not kv.kraft_unclean_election:
            where = ["cluster"] if self.cluster.unclean_leader_election_enable else []
            where += [f"topics.{i}" for i, t in enumerate(self.topics) if t.unclean_leader_election_enable]
            if where:
                raise ValueError(f"{where[0]}.unclean.leader.election.enable: true needs kafka.version 3.9 or later, "
                                 f"the first KRaft release that honours it (KAFKA-12670); this scenario has "
                                 f"{kv.version} (allowed: false)")
        object.__setattr__(self, "topics", resolved)
        object.__setattr__(self, "producers", [self._resolve_producer(i, p, names)
                                               for i, p in enumerate(self.producers)])
        for i, c in enumerate(self.consumers):
            if c.topic not in by_name:
                raise ValueError(f"consumers.{i}.topic: unknown topic {c.topic!r} (allowed: {', '.join(names)})")
        for i, f in enumerate(self.faults):
            if f.broker is not None and f.broker >= self.cluster.brokers:
                raise ValueError(f"faults.{i}.broker: no broker {f.broker} (allowed: 0..{self.cluster.brokers - 1})")
            for field in ("leader_of", "follower_of"):
                tp = getattr(f, field)
                if tp is None:
                    continue
                topic, _, part = tp.rpartition("-")
                if topic not in by_name or not part.isdigit() or int(part) >= by_name[topic].partitions:
                    raise ValueError(f"faults.{i}.{field}: {tp!r} is not a topic-partition of this "
                                     f"scenario (e.g. '{names[0]}-0')")
                if field == "follower_of" and by_name[topic].replication_factor < 2:
                    raise ValueError(f"faults.{i}.follower_of: topic {topic} has replication.factor 1, so no "
                                     f"followers (allowed: a topic with replication.factor >= 2)")
            for b in f.brokers or ():
                if b >= self.cluster.brokers:
                    raise ValueError(f"faults.{i}.brokers: no broker {b} (allowed: 0..{self.cluster.brokers - 1})")
            for key, have in (("rack", self.cluster.racks or self.cluster.zones), ("zone", self.cluster.zones)):
                want = getattr(f, key)
                if want is not None and want not in (have or ()):
                    allowed = ", ".join(dict.fromkeys(have)) if have else f"none: set cluster.{key}s"
                    raise ValueError(f"faults.{i}.{key}: no {key} {want!r} (allowed: {allowed})")
            if f.at >= self.duration:
                raise ValueError(f"faults.{i}.at: {format_ms(f.at)} is not before duration {format_ms(self.duration)}")
        zones = self.cluster.zones or ()
        for key in ("controller_zone", "client_zone"):
            z = getattr(self.network, key)
            if z is not None and z not in zones:
                allowed = ", ".join(dict.fromkeys(zones)) if zones else "none: set cluster.zones"
                raise ValueError(f"network.{key}: no zone {z!r} (allowed: {allowed})")
        for i, rf in enumerate(self.random_faults):
            if rf.stop is not None and rf.stop < rf.start:
                raise ValueError(f"random_faults.{i}.stop: {format_ms(rf.stop)} is before start {format_ms(rf.start)} "
                                 f"(allowed: stop >= start)")
            if rf.per == "rack" and not self.cluster.racks:
                raise ValueError(f"random_faults.{i}.per: rack needs cluster.racks (allowed: cluster, broker, link)")
            units, what = ((len(set(self.cluster.racks)), "racks") if rf.per == "rack" else
                           (self.cluster.brokers * (self.cluster.brokers - 1) // 2, "links") if rf.per == "link" else
                           (self.cluster.brokers, "brokers"))
            if rf.max_down > units:
                raise ValueError(f"random_faults.{i}.max_down: {rf.max_down} is more than the {units} "
                                 f"{what} (allowed: 1..{units})")
            b = rf.fault.get("broker")
            if isinstance(b, int) and b >= self.cluster.brokers:
                raise ValueError(f"random_faults.{i}.fault.broker: no broker {b} "
                                 f"(allowed: 0..{self.cluster.brokers - 1})")
        return self

    @model_validator(mode="after")
    def _check_client_faults(self) -> "Scenario":
        """Client faults name an instance of the scenario (see ClientFault for the names)."""
        producers, consumers = [], []
        for j, p in enumerate(self.producers):
            base = p.name or f"producer-{j}"
            producers += [base] if p.instances == 1 else [f"{base}-{i}" for i in range(p.instances)]
        for c in self.consumers:
            consumers += [f"{c.group}-{i}" for i in range(c.instances)]
        for i, f in enumerate(self.faults):
            if isinstance(f, ClientFault):
                kind, names = f._client_kind, producers if f._client_kind == "producer" else consumers
                if f.client not in names:
                    raise ValueError(f"faults.{i}.{kind}: no {kind} instance {f.client!r} "
                                     f"(allowed: {', '.join(names) or 'none declared'})")
        return self

    @model_validator(mode="after")
    def _check_operator_actions(self) -> "Scenario":
        """Operator actions name brokers and partitions of the scenario; brokers are added with the next ids, in
        time order, and only brokers that exist at the action's time are moved to or removed."""
        n = self.cluster.brokers
        names = {f"{t.name}-{p}": t for t in self.topics for p in range(t.partitions)}
        example = next(iter(names))
        actions = sorted(((f.at, i, f) for i, f in enumerate(self.faults) if f.kind in OPERATOR_KINDS),
                         key=lambda x: (x[0], x[1]))
        added = [f for _, _, f in actions if f.kind == "add_broker"]
        if added and (self.cluster.racks or self.cluster.zones):
            i = self.faults.index(added[0])
            raise ValueError(f"faults.{i}.kind: add_broker with cluster.racks or cluster.zones is not modelled yet "
                             f"(allowed: a cluster without racks or zones)")
        known = n
        for at, i, f in actions:
            if f.kind == "add_broker":
                if f.broker_id != known:
                    raise ValueError(f"faults.{i}.broker.id: {f.broker_id} is not the next broker id at "
                                     f"{format_ms(at)} (allowed: {known})")
                known += 1
            elif f.kind == "remove_broker" and f.broker_id >= known:
                raise ValueError(f"faults.{i}.broker.id: no broker {f.broker_id} at {format_ms(at)} "
                                 f"(allowed: 0..{known - 1})")
            elif f.kind == "leader_election":
                for tp in f.partitions or ():
                    if tp not in names:
                        raise ValueError(f"faults.{i}.partitions: {tp!r} is not a topic-partition of this "
                                         f"scenario (e.g. '{example}')")
            elif f.kind == "reassign_partitions":
                seen = set()
                for j, r in enumerate(f.reassignments):
                    where = f"faults.{i}.reassignments.{j}"
                    if r.partition not in names:
                        raise ValueError(f"{where}.partition: {r.partition!r} is not a topic-partition of this "
                                         f"scenario (e.g. '{example}')")
                    if r.partition in seen:
                        raise ValueError(f"{where}.partition: {r.partition} is listed twice (allowed: once)")
                    seen.add(r.partition)
                    bad = [b for b in r.replicas if b >= known]
                    if bad:
                        raise ValueError(f"{where}.replicas: no broker {bad[0]} at {format_ms(at)} "
                                         f"(allowed: 0..{known - 1})")
                    if len(set(r.replicas)) != len(r.replicas):
                        raise ValueError(f"{where}.replicas: a broker listed twice (allowed: distinct broker ids)")
                    if len(r.replicas) != names[r.partition].replication_factor:
                        raise ValueError(f"{where}.replicas: {len(r.replicas)} replicas, the topic's "
                                         f"replication.factor is {names[r.partition].replication_factor} "
                                         f"(changing it is not modelled; allowed: that many replicas)")
        return self

    def _resolve_producer(self, i: int, p: ProducerConfig, topics: list[str]) -> ProducerConfig:
        """Fill producer `i`'s version-dependent defaults from the row of cluster.kafka.version."""
        if p.topic not in topics:
            raise ValueError(f"producers.{i}.topic: unknown topic {p.topic!r} (allowed: {', '.join(topics)})")
        rf = next(t.replication_factor for t in self.topics if t.name == p.topic)
        if p.acks > rf:
            # Kafka 0.8 waited for N replicas that cannot exist until the request timed out: every write
            # would end unknown. Modern Kafka rejects any N >= 2 (INVALID_REQUIRED_ACKS, KAFKA-1697).
            legacy = f", or legacy 2..{rf}" if rf >= 2 else ""
            raise ValueError(f"producers.{i}.acks: {p.acks} exceeds replication.factor {rf} of topic {p.topic}: "
                             f"no write could ever be acknowledged (allowed: all, -1, 0, 1{legacy})")
        kv = self.cluster.version_defaults
        update: dict[str, Any] = {}
        if p.linger_ms is None:
            update["linger_ms"] = kv.linger_ms  # KIP-1030: 0 -> 5 in 4.0
        if p.retry_backoff_max_ms is None:
            if kv.retry_backoff_max_ms is not None:
                update["retry_backoff_max_ms"] = kv.retry_backoff_max_ms
        elif not kv.exponential_retry_backoff:
            raise ValueError(f"producers.{i}.retry.backoff.max.ms: exists from Kafka 3.7 (KIP-580); kafka.version "
                             f"{kv.version} retries after a constant retry.backoff.ms (remove it, or set "
                             f"cluster.kafka.version to 3.7 or later)")
        if p.enable_idempotence is None:  # unset with max.in.flight > 5
            if not kv.idempotence_in_flight_fallback:
                raise ValueError(f"producers.{i}.max.in.flight.requests.per.connection: {p.max_in_flight} needs "
                                 f"enable.idempotence=false from Kafka 4.0, which no longer turns idempotence off "
                                 f"silently (KAFKA-17927) (allowed: 1..5, or set enable.idempotence=false)")
            update["enable_idempotence"] = False
        linger = update.get("linger_ms", p.linger_ms)
        if p.delivery_timeout_ms < p.request_timeout_ms + linger:
            raise ValueError(f"producers.{i}: delivery.timeout.ms must be >= request.timeout.ms + linger.ms "
                             f"(Kafka rejects it)")
        resolved = p.model_copy(update=update) if update else p.model_copy()
        resolved._kafka_version = kv.version
        resolved._version_filled = frozenset(update) | (p._version_filled if p._kafka_version == kv.version else frozenset())
        return resolved

    def declared(self) -> dict:
        """The scenario as data without the defaults filled in from `cluster.kafka.version`'s row.

        Resolving it again with overrides (which may change the version) fills them from the new
        version's row, so `linger.ms` becomes 0 when 4.0 is overridden to 3.9 (KIP-1030).
        """
        data = self.model_dump(mode="json", by_alias=True)
        for p, raw in zip(self.producers, data["producers"]):
            for name in p._version_filled:
                field = type(p).model_fields[name]
                raw.pop(field.alias or name, None)
        return data

    def to_yaml(self) -> str:
        """The fully resolved scenario, every default filled in, with Kafka's key names."""
        return yaml.safe_dump(self.model_dump(mode="json", by_alias=True), sort_keys=False)

    @classmethod
    def resolve(cls, source: str | Path | dict, overrides: dict[str, Any] | list[str] | None = None) -> "Scenario":
        """Load a scenario from a path, YAML text or dict, apply dotted overrides, validate."""
        data = _load_raw(source)
        if not isinstance(source, dict) and is_sweep_data(data):
            raise ScenarioError(f"{source}: is a sweep file (it names a base scenario and what to vary), not a "
                                f"scenario; run it with `kafkasim sweep {source}`")
        if overrides:
            data = apply_overrides(data, overrides)
        return validate_scenario(data)


def is_sweep_data(data: Any) -> bool:
    """Whether raw YAML data is a sweep file (a base `scenario` and what to vary) rather than a scenario."""
    return isinstance(data, dict) and "scenario" in data and "topics" not in data


def is_scenario_data(data: Any) -> bool:
    """Whether raw YAML data is a scenario file (it has topics and names no base scenario)."""
    return isinstance(data, dict) and "topics" in data and "scenario" not in data


def _typical_latency(lat: LatencyDist) -> float:
    """The central one-way latency of a link distribution (ms)."""
    return {"constant": lambda: lat.value, "uniform": lambda: (lat.low + lat.high) / 2,
            "normal": lambda: lat.mean, "lognormal": lambda: lat.median,
            "exponential": lambda: lat.mean * math.log(2)}[lat.dist]()


def scenario_warnings(sc: Scenario) -> list[str]:
    """Settings a Kafka user should hear about even though the scenario is valid and runs.

    One line each, naming the field. `kafkasim` prints them once, before a run, and every run
    stores them in summary.json ("warnings").
    """
    out = []
    for old, new in sc.cluster._renamed:
        out.append(f"cluster.{old} is deprecated: it is now cluster.{new} (kafkasim's own key, Kafka has none); "
                   f"the old name is accepted until the next release")
    for i, p in enumerate(sc.producers):
        if p.acks >= 2:
            out.append(f"producers.{i}.acks={p.acks} is the Kafka 0.8 legacy form (any {p.acks} ISR replicas "
                       "incl. the leader); modern Kafka rejects it with INVALID_REQUIRED_ACKS")
    kv = sc.cluster.version_defaults
    for i, t in enumerate(sc.topics):
        if t.min_insync_replicas > t.replication_factor:
            # the raw topic value was replaced by the resolved one: say where it came from
            where = (f"topics.{i}.min.insync.replicas" if t.min_insync_replicas != sc.cluster.min_insync_replicas
                     else f"cluster.min.insync.replicas (inherited by topic {t.name})")
            rf = t.replication_factor
            if kv.strict_min_isr:
                what = (f"Kafka {kv.version} caps the effective min ISR at the replication factor (KAFKA-15583, "
                        f"3.7+), so acks=all writes need all {rf} replicas in sync")
            else:
                what = (f"Kafka {kv.version} accepts the topic but answers every acks=all write with "
                        f"NOT_ENOUGH_REPLICAS (from 3.7 the effective min ISR is capped at the replication factor, "
                        f"KAFKA-15583)")
            out.append(f"{where}={t.min_insync_replicas} exceeds replication.factor {rf} of topic {t.name}: {what}")
    for i, rf in enumerate(sc.random_faults):
        if rf.per in ("cluster", "broker") and rf.max_down >= sc.cluster.brokers:
            out.append(f"random_faults.{i}.max_down={rf.max_down}: every one of the {sc.cluster.brokers} brokers "
                       "can be down at once, so the whole cluster can be unavailable (and partitions offline) "
                       "until one restarts")
        stop = sc.duration if rf.stop is None else min(rf.stop, sc.duration)
        if rf.start >= stop:
            out.append(f"random_faults.{i}.start={format_ms(rf.start)} is not before the end of producing "
                       f"({format_ms(stop)}): no random fault will happen")
    if sc.cluster.log_flush_scheduler_interval_ms is None:
        for i, t in enumerate(sc.topics):
            if t.flush_ms is not None:
                out.append(f"topics.{i}.flush.ms={format_ms(t.flush_ms)} has no effect: Kafka's log flusher runs every "
                           f"log.flush.scheduler.interval.ms, which is never by default (set cluster."
                           f"log.flush.scheduler.interval.ms too)")
    latency = _typical_latency(sc.network.latency)
    if latency >= sc.duration:
        out.append(f"network.latency: a typical one-way latency of {format_ms(latency)} is not shorter than the "
                   f"duration {format_ms(sc.duration)}: hardly any request is answered while producers produce")
    return out


def validate_scenario(data: Any) -> Scenario:
    """Validate raw data into a Scenario, turning every pydantic error into one line."""
    if not isinstance(data, dict):
        raise ScenarioError(f"scenario: expected a mapping at the top level, got {type(data).__name__}")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        try:
            return Scenario.model_validate(data)
        except ValidationError as e:
            raise ScenarioError(format_errors(e)) from None


def printable(text: str) -> str:
    """Escape control characters (a key like "\\r" must not break a one-line error)."""
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")


def format_errors(err: ValidationError) -> str:
    """Render pydantic errors as `field.path: message (allowed: ...)`, one per line."""
    lines = []
    for e in err.errors(include_url=False):
        raw = tuple(e["loc"])
        parts = _without_kind_tags(raw)
        msg = e["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        if e["type"] in ("union_tag_invalid", "union_tag_not_found"):  # a fault's kind
            if e["type"] == "union_tag_invalid" or isinstance(e.get("input"), dict):
                parts = (*parts, "kind")
                tags = e.get("ctx", {}).get("expected_tags") or _kind_tags(raw)
                msg = f"must be one of {tags}"
            else:
                msg = f"must be a mapping with a kind (allowed kinds: {_kind_tags(raw)})"
        loc = ".".join(str(x) for x in parts if not str(x).startswith("function-"))
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
            parent = _fields_at(raw[:-1])
            if parent:
                msg += f" (allowed: {', '.join(parent)})"
        elif e["type"] == "literal_error":
            msg = msg.replace("Input should be", "must be one of")
        loc, msg = printable(loc), printable(msg)
        if not loc and re.match(r"^[A-Za-z_][\w.]*: ", msg):
            lines.append(msg)  # a cross-field check that already names its field
        else:
            lines.append(f"{loc or 'scenario'}: {msg}")
    # one line per distinct problem, most specific first
    return "\n".join(dict.fromkeys(lines))


def _fields_at(loc: tuple) -> list[str]:
    """The allowed keys of the model found at `loc` in the Scenario tree."""
    model = _model_at(loc)
    return [f.alias or n for n, f in model.model_fields.items()] if model is not None else []


def _without_kind_tags(loc: tuple) -> tuple:
    """`loc` without the kind tag pydantic puts after a fault's index (faults.0.crash.at -> faults.0.at)."""
    return tuple(x for i, x in enumerate(loc) if not _is_kind_tag(loc, i))


def _is_kind_tag(loc: tuple, i: int) -> bool:
    return (i >= 2 and isinstance(loc[i - 1], int) and loc[i - 2] in FAULT_KINDS
            and loc[i] in FAULT_KINDS[loc[i - 2]])


def _kind_tags(loc: tuple) -> str:
    """The allowed kinds of the fault list `loc` is in, quoted as pydantic lists choices."""
    kinds = next((FAULT_KINDS[x] for x in loc if x in FAULT_KINDS), {})
    return ", ".join(f"'{k}'" for k in kinds)


def _model_at(loc: tuple) -> type[BaseModel] | None:
    """The model class found at `loc` in the Scenario tree (None for plain values and unknown paths).

    A fault's kind tag in `loc` (faults.0.crash) selects that kind's spec class.
    """
    model: Any = Scenario
    for i, part in enumerate(loc):
        if isinstance(part, int):
            continue
        if _is_kind_tag(loc, i):
            model = FAULT_KINDS[loc[i - 2]][part]
            continue
        if model is Scenario and part in FAULT_KINDS:  # a union of kinds: the base until the kind tag
            model = ScheduledFault if part == "faults" else RandomFault
            continue
        field = None
        for name, f in model.model_fields.items():
            if part in (name, f.alias):
                field = f
                break
        if field is None:
            return None
        ann = field.annotation
        args = getattr(ann, "__args__", ()) or ()
        candidates = [ann, *args, *[a for x in args for a in getattr(x, "__args__", ())]]
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if model is None:
            return None
    return model


MAX_FILE_BYTES = 1024 * 1024
"""The largest scenario or sweep file read (1 MiB): real ones are a few KB."""


class DuplicateKeyError(yaml.YAMLError):
    """A mapping repeats a key: YAML would silently keep the last value."""

    def __init__(self, key: Any, mark, first):
        super().__init__(f"duplicate key {key!r}")
        self.key, self.mark, self.first = key, mark, first


class UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader that rejects a key repeated in one mapping (merge keys `<<` may still be overridden)."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.setdefault(key, key_node.start_mark)
                except TypeError:  # unhashable: the base constructor reports it
                    continue
                if first is not key_node.start_mark:
                    raise DuplicateKeyError(key, key_node.start_mark, first)
        return super().construct_mapping(node, deep)


def load_yaml(text: str) -> Any:
    """Parse YAML like yaml.safe_load, but a repeated key is an error (DuplicateKeyError)."""
    return yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass


def read_text_capped(path: Path, limit: int = MAX_FILE_BYTES) -> bytes:
    """At most `limit` bytes of a file; a larger file (or an endless one, /dev/zero) is a ScenarioError."""
    with open(path, "rb") as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise ScenarioError(f"{path}: larger than {limit // 1024} KiB, which no kafkasim YAML file needs "
                            f"(they are a few KB): is this the right file?")
    return data


def _load_raw(source: str | Path | dict) -> dict:
    if isinstance(source, dict):
        import copy
        return copy.deepcopy(source)
    path = Path(source)
    if path.is_dir():
        raise ScenarioError(f"{path}: is a directory, expected a scenario YAML file")
    try:
        text = read_text_capped(path)
    except FileNotFoundError:
        raise ScenarioError(f"{path}: no such scenario file") from None
    except IsADirectoryError:
        raise ScenarioError(f"{path}: is a directory, expected a scenario YAML file") from None
    except OSError as e:
        raise ScenarioError(f"{path}: cannot read ({e.strerror})") from None
    try:
        data = load_yaml(text.decode("utf-8"))
    except UnicodeDecodeError:
        raise ScenarioError(f"{path}: not a text file (invalid UTF-8)") from None
    except DuplicateKeyError as e:
        raise ScenarioError(f"{path}: duplicate key {printable(str(e.key))!r} at line {e.mark.line + 1} (first at line "
                            f"{e.first.line + 1}); YAML would silently keep only the last value: keep one") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ScenarioError(f"{path}: invalid YAML{where}: {problem}") from None
    if data is None:
        raise ScenarioError(f"{path}: empty scenario file")
    if not isinstance(data, dict):
        raise ScenarioError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


# --- overrides ---------------------------------------------------------------------------------
def parse_override(text: str) -> tuple[str, Any]:
    """Parse one `dotted.key=value`; the value is a YAML literal, falling back to a string."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ScenarioError(f"--set {text!r}: expected dotted.key=value, e.g. producers.0.acks=1")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key, value


def apply_overrides(data: dict, overrides: dict[str, Any] | list[str]) -> dict:
    """Apply dotted-key overrides to raw scenario data (a resolved-default skeleton guides paths).

    Keys may themselves contain dots (``producers.0.linger.ms``): at each level the longest
    run of path segments that names an existing or known key wins.
    """
    import copy

    items = [parse_override(o) for o in overrides] if isinstance(overrides, list) else list(overrides.items())
    data = copy.deepcopy(data)
    for dotted, value in items:
        _set_dotted(data, dotted, value)
    return data


def _known_keys(path: list, node: Any = None) -> list[str]:
    if len(path) == 2 and path[0] in FAULT_KINDS and isinstance(path[1], int):
        # a fault entry: the keys of its kind's spec class (a kindless fault is a crash)
        kind = node.get("kind", "crash") if isinstance(node, dict) else "crash"
        cls = FAULT_KINDS[path[0]].get(kind)
        return [f.alias or n for n, f in cls.model_fields.items()] if cls is not None else []
    return _fields_at(tuple(p for p in path))


def _set_dotted(data: dict, dotted: str, value: Any) -> None:
    segs = dotted.split(".")
    node: Any = data
    path: list = []
    i = 0
    while i < len(segs):
        if isinstance(node, list):
            seg = segs[i]
            if not seg.isdigit() or int(seg) >= len(node):
                raise ScenarioError(f"--set {dotted}: {'.'.join(map(str, path)) or 'scenario'} has "
                                    f"{len(node)} entries; {seg!r} is not an index (allowed: 0..{len(node) - 1})")
            idx = int(seg)
            if i == len(segs) - 1:
                node[idx] = value
                return
            node, path, i = node[idx], path + [idx], i + 1
            continue
        if not isinstance(node, dict):
            raise ScenarioError(f"--set {dotted}: {'.'.join(map(str, path))} is a value, not a section")
        known = set(node) | set(_known_keys(path, node))
        old_names = set(RENAMED_CLUSTER_KEYS) if path == ["cluster"] else set()  # accepted, not listed
        for j in range(len(segs), i, -1):
            key = ".".join(segs[i:j])
            if key in known or key in old_names:
                break
        else:
            allowed = sorted(known)
            raise ScenarioError(f"--set {dotted}: unknown key {segs[i]!r} under "
                                f"{'.'.join(map(str, path)) or 'scenario'}"
                                + (f" (allowed: {', '.join(allowed)})" if allowed else ""))
        if j == len(segs):
            if key == "dist" and value != node.get("dist") and _model_at(tuple(path)) is LatencyDist:
                # switching the latency family drops the old family's parameters (a --set cannot
                # remove keys, and LatencyDist rejects parameters its family does not take)
                for k in [k for k in node if k != "dist" and k not in LATENCY_PARAMS.get(value, ())]:
                    del node[k]
            node[key] = value
            return
        if key not in node or node[key] is None:
            node[key] = {}
        node, path, i = node[key], path + [key], j


def load_scenario(path: str | Path | dict, overrides: dict[str, Any] | list[str] | None = None) -> Scenario:
    """Load and validate a scenario file (the notebook entry point)."""
    return Scenario.resolve(path, overrides)


ScenarioLike = Union[Scenario, str, Path, dict]
