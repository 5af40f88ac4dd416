"""The scenario: a validated, frozen pydantic tree using Kafka's own config names.

Keys that Kafka has (``acks``, ``min.insync.replicas``, ``linger.ms`` ...) keep Kafka's dotted
names and defaults, so a Kafka user can paste producer, broker and topic configs. Durations are
strings with units and become float milliseconds here, once; Kafka's ``*.ms`` keys also take
bare numbers in milliseconds. ``Scenario.resolve`` loads YAML, applies dotted ``--set``
overrides and validates; every problem becomes a one-line :class:`ScenarioError`. Defaults and
behaviours that changed between Kafka releases come from one table (sim/versions.py), picked by
``cluster.kafka.version``.

This module is the `Scenario` itself; its parts live by concept beside it: `types` (durations,
sizes, rates, acks), `cluster` (brokers, network, hardware, topics), `clients` (producers,
consumers), `faults` (fault specs, operator actions, random fault processes), `loading` (YAML,
overrides) and `errors` (`ScenarioError`, one-line errors).
"""

from __future__ import annotations

import copy
import math
import warnings
from pathlib import Path
from typing import Any, Union

import yaml
from pydantic import Field, ValidationError, model_validator

from sim.scenario.clients import ConsumerConfig, ProducerConfig
from sim.scenario.cluster import ClusterConfig, LatencyDist, NetworkConfig, TopicConfig
from sim.scenario.errors import ScenarioError, format_errors
from sim.scenario.faults import OPERATOR_KINDS, ClientFault, FaultSpec, RandomFaultSpec
from sim.scenario.loading import is_sweep_data, load_raw, parse_override, set_dotted
from sim.scenario.types import Duration, FrozenModel, PositiveDuration
from sim.scenario.units import format_ms

__all__ = ["Scenario", "ScenarioError", "ScenarioLike", "load_scenario", "validate_scenario", "apply_overrides",
           "scenario_warnings"]


# --- the scenario ------------------------------------------------------------------------------
class Scenario(FrozenModel):
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
        data = load_raw(source)
        if not isinstance(source, dict) and is_sweep_data(data):
            raise ScenarioError(f"{source}: is a sweep file (it names a base scenario and what to vary), not a "
                                f"scenario; run it with `kafkasim sweep {source}`")
        if overrides:
            data = apply_overrides(data, overrides)
        return validate_scenario(data)



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
            raise ScenarioError(format_errors(e, Scenario)) from None



def apply_overrides(data: dict, overrides: dict[str, Any] | list[str]) -> dict:
    """Apply dotted-key overrides to raw scenario data (the Scenario tree guides paths: loading.set_dotted).

    Keys may themselves contain dots (``producers.0.linger.ms``): at each level the longest
    run of path segments that names an existing or known key wins.
    """
    items = [parse_override(o) for o in overrides] if isinstance(overrides, list) else list(overrides.items())
    data = copy.deepcopy(data)
    for dotted, value in items:
        set_dotted(data, dotted, value, Scenario)
    return data


def load_scenario(path: str | Path | dict, overrides: dict[str, Any] | list[str] | None = None) -> Scenario:
    """Load and validate a scenario file (the notebook entry point)."""
    return Scenario.resolve(path, overrides)


ScenarioLike = Union[Scenario, str, Path, dict]
