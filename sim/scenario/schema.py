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
from sim.scenario.faults import FaultSpec, RandomFaultSpec
from sim.scenario.loading import is_sweep_data, load_raw, parse_override, set_dotted
from sim.scenario.checks import SCENARIO_CHECKS
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

    @model_validator(mode="wrap")
    @classmethod
    def _check_and_fill(cls, data: Any, handler) -> "Scenario":
        """Validate the sections, run every cross-field rule of SCENARIO_CHECKS (sim/scenario/checks.py) on
        the scenario as declared, then fill the defaults that derive from other sections."""
        sc = handler(data)
        for check in SCENARIO_CHECKS:
            check(sc)
        return sc._with_defaults()

    def _with_defaults(self) -> "Scenario":
        """This scenario with the defaults that derive from other sections filled in: a topic's
        min.insync.replicas, unclean election and flush settings from the cluster's, a producer's
        version-dependent defaults from the row of cluster.kafka.version."""
        topics = [t.model_copy(update={
            "min_insync_replicas": t.min_insync_replicas or self.cluster.min_insync_replicas,
            "unclean_leader_election_enable": (self.cluster.unclean_leader_election_enable
                                               if t.unclean_leader_election_enable is None
                                               else t.unclean_leader_election_enable),
            "flush_messages": t.flush_messages or self.cluster.log_flush_interval_messages,
            "flush_ms": t.flush_ms or self.cluster.log_flush_interval_ms,
        }) for t in self.topics]
        return self.model_copy(update={"topics": topics, "producers": [self._with_version_defaults(p)
                                                                       for p in self.producers]})

    def _with_version_defaults(self, p: ProducerConfig) -> ProducerConfig:
        """Producer `p` with its version-dependent defaults filled from the row of cluster.kafka.version
        (checks.PRODUCER_CHECKS have passed: every value left unset has a default in that row)."""
        kv = self.cluster.version_defaults
        update: dict[str, Any] = {}
        if p.linger_ms is None:
            update["linger_ms"] = kv.linger_ms  # KIP-1030: 0 -> 5 in 4.0
        if p.retry_backoff_max_ms is None and kv.retry_backoff_max_ms is not None:
            update["retry_backoff_max_ms"] = kv.retry_backoff_max_ms  # KIP-580, 3.7+
        if p.enable_idempotence is None:  # unset with max.in.flight > 5: off up to 3.9 (KAFKA-17927)
            update["enable_idempotence"] = False
        resolved = p.model_copy(update=update) if update else p.model_copy()
        resolved._kafka_version = kv.version
        resolved._version_filled = frozenset(update) | (p._version_filled if p._kafka_version == kv.version else frozenset())
        return resolved

    # --- the naming rules: one place for the names the model, the faults and explore use ------------
    def topic_names(self) -> list[str]:
        """The topics' names, in scenario order."""
        return [t.name for t in self.topics]

    def topic(self, name: str) -> TopicConfig:
        """The topic called `name` (KeyError if there is none)."""
        for t in self.topics:
            if t.name == name:
                return t
        raise KeyError(name)

    def partition_names(self) -> list[str]:
        """Global partition index -> "topic-p", topics in scenario order."""
        return [f"{t.name}-{p}" for t in self.topics for p in range(t.partitions)]

    def producer_instances(self) -> list[tuple[ProducerConfig, str]]:
        """(spec, instance name) of every producer instance, in cluster order: the spec's `name` (default
        producer-<index>), with -<i> appended when it has several instances (fault targets use these names)."""
        out = []
        for j, spec in enumerate(self.producers):
            base = spec.name or f"producer-{j}"
            out += [(spec, base if spec.instances == 1 else f"{base}-{i}") for i in range(spec.instances)]
        return out

    def consumer_instances(self) -> list[tuple[ConsumerConfig, int, str]]:
        """(spec, instance number within its group, instance name <group.id>-<i>) of every consumer instance."""
        return [(spec, i, f"{spec.group}-{i}") for spec in self.consumers for i in range(spec.instances)]

    def effective_min_isr(self, topic: TopicConfig) -> int:
        """The min.insync.replicas a leader of `topic` enforces: the topic's (else the cluster's), capped at
        its replication factor from Kafka 3.7 (KAFKA-15583; Partition.effectiveMinIsr caps it at the
        assignment's size, which the model does on the live replica list)."""
        min_isr = topic.min_insync_replicas or self.cluster.min_insync_replicas
        if self.cluster.version_defaults.strict_min_isr:
            return min(min_isr, topic.replication_factor)
        return min_isr

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
