"""The cluster's part of a scenario: brokers and their Kafka configs, the network, the hardware, topics.

Broker-level keys keep Kafka's dotted names and defaults (``min.insync.replicas``,
``replica.lag.time.max.ms`` ...); defaults that changed between Kafka releases come from the row
of ``cluster.kafka.version`` (sim/scenario/versions.py).
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, PrivateAttr, model_validator

from sim.scenario.types import Bandwidth, Duration, FrozenModel, KafkaMs, PositiveDuration, PositiveMs, Size
from sim.scenario.versions import DEFAULT_VERSION, VERSIONS, KafkaVersion, kafka_version

__all__ = ["LATENCY_PARAMS", "LatencyDist", "NetworkConfig", "HARDWARE_PRESETS", "DiskHardware", "CpuHardware",
           "ClientHardware", "HardwareConfig", "Hardware", "KafkaVersionName", "RENAMED_CLUSTER_KEYS", "ClusterConfig",
           "TopicConfig"]


# --- network -----------------------------------------------------------------------------------
LATENCY_PARAMS = {
    "constant": ("value",), "uniform": ("low", "high"), "normal": ("mean", "std"),
    "lognormal": ("median", "sigma"), "exponential": ("mean",),
}
"""The parameters each latency distribution family takes."""


class LatencyDist(FrozenModel):
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


class NetworkConfig(FrozenModel):
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


class DiskHardware(FrozenModel):
    """A broker's disks, as one write queue."""

    write: Bandwidth | None = Field(None, description="sustained write bandwidth of the broker's log dirs together")


class CpuHardware(FrozenModel):
    """What request handling costs a broker's threads (KafkaRequestHandler, SocketServer.Processor)."""

    per_request: Duration = Field(0.0, description="io thread time per request (KafkaApis), e.g. '50us'")
    byte_rate: Bandwidth | None = Field(
        None, description="bytes of request payload one io thread (or the replica fetcher thread) validates and "
                          "appends per second: the per-byte cost is its inverse (none: free)")
    network_per_request: Duration = Field(0.0, description="network (processor) thread time per request read")
    network_byte_rate: Bandwidth | None = Field(
        None, description="bytes one network thread reads off sockets per second (none: free)")


class ClientHardware(FrozenModel):
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


class HardwareConfig(FrozenModel):
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


class ClusterConfig(FrozenModel):
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


class TopicConfig(FrozenModel):
    """A topic; ``min.insync.replicas`` and unclean election default to the broker values."""

    name: str = Field(..., min_length=1, pattern=r"^[A-Za-z0-9._-]+$")
    partitions: int = Field(1, ge=1, le=100_000)
    replication_factor: int = Field(3, ge=1, alias="replication.factor")
    min_insync_replicas: int | None = Field(None, ge=1, alias="min.insync.replicas")
    unclean_leader_election_enable: bool | None = Field(None, alias="unclean.leader.election.enable")
    flush_messages: int | None = Field(None, ge=1, alias="flush.messages",
                                       description="default: log.flush.interval.messages (never)")
    flush_ms: KafkaMs | None = Field(None, gt=0, alias="flush.ms", description="default: log.flush.interval.ms (never)")

