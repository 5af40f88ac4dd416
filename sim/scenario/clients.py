"""The clients of a scenario: open-loop producers and consumer groups, with Kafka's client configs.

Keys keep the names of KafkaProducer and KafkaConsumer configs (``acks``, ``linger.ms``,
``group.id`` ...). A producer's version-dependent defaults are None here and filled in by the
Scenario from the row of ``cluster.kafka.version`` (sim/scenario/versions.py).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PrivateAttr, model_serializer, model_validator

from sim.scenario.types import INT32_MAX, Acks, Duration, FrozenModel, KafkaMs, PositiveMs, Rate, Size
from sim.scenario.versions import DEFAULT_VERSION, KafkaVersion, kafka_version

__all__ = ["ProducerConfig", "ConsumerConfig"]


class ProducerConfig(FrozenModel):
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

    __hash__ = FrozenModel.__hash__  # frozen: hashable like every other scenario model

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


class ConsumerConfig(FrozenModel):
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

