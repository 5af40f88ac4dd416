"""The scenario's cross-field checks: one named function per rule, composed in `SCENARIO_CHECKS`.

Each check takes the scenario as declared (before `Scenario` fills the defaults that derive
from other sections) and raises a ValueError that names its field and the allowed values; the
first rule that breaks is the error. The order of `SCENARIO_CHECKS` (and of the per-producer,
per-fault and per-random-fault rules) is the order in which errors are reported. A check never
changes the scenario: filling defaults is `Scenario._fill_defaults`, after every check passed.
A new rule is a new function in one of these lists.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from sim.scenario.faults import OPERATOR_KINDS, ClientFault
from sim.scenario.units import format_ms

if TYPE_CHECKING:
    from sim.scenario.clients import ProducerConfig
    from sim.scenario.faults import RandomFault, ScheduledFault
    from sim.scenario.schema import Scenario

__all__ = ["SCENARIO_CHECKS", "PRODUCER_CHECKS", "FAULT_CHECKS", "RANDOM_FAULT_CHECKS"]


# --- topics ------------------------------------------------------------------------------------
def topic_names_unique(sc: Scenario) -> None:
    """No two topics share a name."""
    names = [t.name for t in sc.topics]
    if len(set(names)) != len(names):
        raise ValueError("topic names must be unique")


def replication_factor_fits_brokers(sc: Scenario) -> None:
    """A topic's replication.factor is at most the number of brokers (INVALID_REPLICATION_FACTOR)."""
    for t in sc.topics:
        if t.replication_factor > sc.cluster.brokers:
            raise ValueError(f"topic {t.name}: replication.factor {t.replication_factor} exceeds "
                             f"{sc.cluster.brokers} brokers (INVALID_REPLICATION_FACTOR)")


def unclean_election_supported(sc: Scenario) -> None:
    """unclean.leader.election.enable needs a KRaft release that honours it (KAFKA-12670, 3.9)."""
    kv = sc.cluster.version_defaults
    if not kv.kraft_unclean_election:
        where = ["cluster"] if sc.cluster.unclean_leader_election_enable else []
        where += [f"topics.{i}" for i, t in enumerate(sc.topics) if t.unclean_leader_election_enable]
        if where:
            raise ValueError(f"{where[0]}.unclean.leader.election.enable: true needs kafka.version 3.9 or later, "
                             f"the first KRaft release that honours it (KAFKA-12670); this scenario has "
                             f"{kv.version} (allowed: false)")


# --- producers: each rule on producer `i` as declared --------------------------------------------
def producer_topic_known(sc: Scenario, i: int, p: ProducerConfig) -> None:
    """A producer writes to a topic of the scenario."""
    if p.topic not in sc.topic_names():
        raise ValueError(f"producers.{i}.topic: unknown topic {p.topic!r} (allowed: {', '.join(sc.topic_names())})")


def producer_acks_fit_replication(sc: Scenario, i: int, p: ProducerConfig) -> None:
    """acks is at most the topic's replication factor."""
    rf = sc.topic(p.topic).replication_factor
    if p.acks > rf:
        # Kafka 0.8 waited for N replicas that cannot exist until the request timed out: every write
        # would end unknown. Modern Kafka rejects any N >= 2 (INVALID_REQUIRED_ACKS, KAFKA-1697).
        legacy = f", or legacy 2..{rf}" if rf >= 2 else ""
        raise ValueError(f"producers.{i}.acks: {p.acks} exceeds replication.factor {rf} of topic {p.topic}: "
                         f"no write could ever be acknowledged (allowed: all, -1, 0, 1{legacy})")


def producer_retry_backoff_max_exists(sc: Scenario, i: int, p: ProducerConfig) -> None:
    """retry.backoff.max.ms exists from Kafka 3.7 (KIP-580)."""
    kv = sc.cluster.version_defaults
    if p.retry_backoff_max_ms is not None and not kv.exponential_retry_backoff:
        raise ValueError(f"producers.{i}.retry.backoff.max.ms: exists from Kafka 3.7 (KIP-580); kafka.version "
                         f"{kv.version} retries after a constant retry.backoff.ms (remove it, or set "
                         f"cluster.kafka.version to 3.7 or later)")


def producer_in_flight_allowed(sc: Scenario, i: int, p: ProducerConfig) -> None:
    """max.in.flight > 5 with enable.idempotence unset: from 4.0 a ConfigException (KAFKA-17927)."""
    kv = sc.cluster.version_defaults
    if p.enable_idempotence is None and not kv.idempotence_in_flight_fallback:  # unset with max.in.flight > 5
        raise ValueError(f"producers.{i}.max.in.flight.requests.per.connection: {p.max_in_flight} needs "
                         f"enable.idempotence=false from Kafka 4.0, which no longer turns idempotence off "
                         f"silently (KAFKA-17927) (allowed: 1..5, or set enable.idempotence=false)")


def producer_delivery_timeout_covers_request(sc: Scenario, i: int, p: ProducerConfig) -> None:
    """delivery.timeout.ms >= request.timeout.ms + linger.ms (KafkaProducer's ConfigException)."""
    linger = p.linger_ms if p.linger_ms is not None else sc.cluster.version_defaults.linger_ms
    if p.delivery_timeout_ms < p.request_timeout_ms + linger:
        raise ValueError(f"producers.{i}: delivery.timeout.ms must be >= request.timeout.ms + linger.ms "
                         f"(Kafka rejects it)")


PRODUCER_CHECKS: tuple[Callable[[Scenario, int, ProducerConfig], None], ...] = (
    producer_topic_known, producer_acks_fit_replication, producer_retry_backoff_max_exists,
    producer_in_flight_allowed, producer_delivery_timeout_covers_request)
"""The rules of one producer, in the order their errors are reported."""


def producers_valid(sc: Scenario) -> None:
    """Every producer keeps every rule of PRODUCER_CHECKS (producer by producer)."""
    for i, p in enumerate(sc.producers):
        for check in PRODUCER_CHECKS:
            check(sc, i, p)


# --- consumers ---------------------------------------------------------------------------------
def consumer_topics_known(sc: Scenario) -> None:
    """A consumer group reads a topic of the scenario."""
    names = sc.topic_names()
    for i, c in enumerate(sc.consumers):
        if c.topic not in names:
            raise ValueError(f"consumers.{i}.topic: unknown topic {c.topic!r} (allowed: {', '.join(names)})")


# --- scheduled faults: each rule on fault `i` ----------------------------------------------------
def fault_broker_exists(sc: Scenario, i: int, f: ScheduledFault) -> None:
    """`broker` names a broker of the cluster."""
    if f.broker is not None and f.broker >= sc.cluster.brokers:
        raise ValueError(f"faults.{i}.broker: no broker {f.broker} (allowed: 0..{sc.cluster.brokers - 1})")


def fault_partition_exists(sc: Scenario, i: int, f: ScheduledFault) -> None:
    """`leader_of` / `follower_of` name a topic-partition; `follower_of` one with followers."""
    names = sc.topic_names()
    for field in ("leader_of", "follower_of"):
        tp = getattr(f, field)
        if tp is None:
            continue
        topic, _, part = tp.rpartition("-")
        if topic not in names or not part.isdigit() or int(part) >= sc.topic(topic).partitions:
            raise ValueError(f"faults.{i}.{field}: {tp!r} is not a topic-partition of this "
                             f"scenario (e.g. '{names[0]}-0')")
        if field == "follower_of" and sc.topic(topic).replication_factor < 2:
            raise ValueError(f"faults.{i}.follower_of: topic {topic} has replication.factor 1, so no "
                             f"followers (allowed: a topic with replication.factor >= 2)")


def fault_brokers_exist(sc: Scenario, i: int, f: ScheduledFault) -> None:
    """`brokers` names brokers of the cluster."""
    for b in f.brokers or ():
        if b >= sc.cluster.brokers:
            raise ValueError(f"faults.{i}.brokers: no broker {b} (allowed: 0..{sc.cluster.brokers - 1})")


def fault_rack_or_zone_exists(sc: Scenario, i: int, f: ScheduledFault) -> None:
    """`rack` / `zone` name a rack (cluster.racks, else the zones) or a zone of the cluster."""
    for key, have in (("rack", sc.cluster.racks or sc.cluster.zones), ("zone", sc.cluster.zones)):
        want = getattr(f, key)
        if want is not None and want not in (have or ()):
            allowed = ", ".join(dict.fromkeys(have)) if have else f"none: set cluster.{key}s"
            raise ValueError(f"faults.{i}.{key}: no {key} {want!r} (allowed: {allowed})")


def fault_before_duration(sc: Scenario, i: int, f: ScheduledFault) -> None:
    """A fault starts before the producers stop."""
    if f.at >= sc.duration:
        raise ValueError(f"faults.{i}.at: {format_ms(f.at)} is not before duration {format_ms(sc.duration)}")


FAULT_CHECKS: tuple[Callable[[Scenario, int, ScheduledFault], None], ...] = (
    fault_broker_exists, fault_partition_exists, fault_brokers_exist, fault_rack_or_zone_exists, fault_before_duration)
"""The rules of one scheduled fault, in the order their errors are reported."""


def faults_valid(sc: Scenario) -> None:
    """Every scheduled fault keeps every rule of FAULT_CHECKS (fault by fault)."""
    for i, f in enumerate(sc.faults):
        for check in FAULT_CHECKS:
            check(sc, i, f)


# --- network -----------------------------------------------------------------------------------
def network_zones_exist(sc: Scenario) -> None:
    """network.controller_zone and network.client_zone name zones of cluster.zones."""
    zones = sc.cluster.zones or ()
    for key in ("controller_zone", "client_zone"):
        z = getattr(sc.network, key)
        if z is not None and z not in zones:
            allowed = ", ".join(dict.fromkeys(zones)) if zones else "none: set cluster.zones"
            raise ValueError(f"network.{key}: no zone {z!r} (allowed: {allowed})")


# --- random faults: each rule on random fault process `i` ----------------------------------------
def random_fault_window_ordered(sc: Scenario, i: int, rf: RandomFault) -> None:
    """stop is not before start."""
    if rf.stop is not None and rf.stop < rf.start:
        raise ValueError(f"random_faults.{i}.stop: {format_ms(rf.stop)} is before start {format_ms(rf.start)} "
                         f"(allowed: stop >= start)")


def random_fault_units_exist(sc: Scenario, i: int, rf: RandomFault) -> None:
    """per: rack needs racks; max_down is at most the racks, links or brokers there are."""
    if rf.per == "rack" and not sc.cluster.racks:
        raise ValueError(f"random_faults.{i}.per: rack needs cluster.racks (allowed: cluster, broker, link)")
    units, what = ((len(set(sc.cluster.racks)), "racks") if rf.per == "rack" else
                   (sc.cluster.brokers * (sc.cluster.brokers - 1) // 2, "links") if rf.per == "link" else
                   (sc.cluster.brokers, "brokers"))
    if rf.max_down > units:
        raise ValueError(f"random_faults.{i}.max_down: {rf.max_down} is more than the {units} "
                         f"{what} (allowed: 1..{units})")


def random_fault_broker_exists(sc: Scenario, i: int, rf: RandomFault) -> None:
    """A template's fixed `broker` names a broker of the cluster."""
    b = rf.fault.get("broker")
    if isinstance(b, int) and b >= sc.cluster.brokers:
        raise ValueError(f"random_faults.{i}.fault.broker: no broker {b} "
                         f"(allowed: 0..{sc.cluster.brokers - 1})")


RANDOM_FAULT_CHECKS: tuple[Callable[[Scenario, int, RandomFault], None], ...] = (
    random_fault_window_ordered, random_fault_units_exist, random_fault_broker_exists)
"""The rules of one random fault process, in the order their errors are reported."""


def random_faults_valid(sc: Scenario) -> None:
    """Every random fault process keeps every rule of RANDOM_FAULT_CHECKS (process by process)."""
    for i, rf in enumerate(sc.random_faults):
        for check in RANDOM_FAULT_CHECKS:
            check(sc, i, rf)


# --- client faults and operator actions ----------------------------------------------------------
def client_fault_targets_exist(sc: Scenario) -> None:
    """Client faults name an instance of the scenario (Scenario.producer_instances, consumer_instances)."""
    producers = [name for _, name in sc.producer_instances()]
    consumers = [name for _, _, name in sc.consumer_instances()]
    for i, f in enumerate(sc.faults):
        if isinstance(f, ClientFault):
            kind, names = f._client_kind, producers if f._client_kind == "producer" else consumers
            if f.client not in names:
                raise ValueError(f"faults.{i}.{kind}: no {kind} instance {f.client!r} "
                                 f"(allowed: {', '.join(names) or 'none declared'})")


def operator_actions_consistent(sc: Scenario) -> None:
    """Operator actions name brokers and partitions of the scenario; brokers are added with the next ids, in
    time order, and only brokers that exist at the action's time are moved to or removed."""
    n = sc.cluster.brokers
    names = {name: t for name, t in zip(sc.partition_names(), (t for t in sc.topics for _ in range(t.partitions)))}
    example = next(iter(names))
    actions = sorted(((f.at, i, f) for i, f in enumerate(sc.faults) if f.kind in OPERATOR_KINDS),
                     key=lambda x: (x[0], x[1]))
    added = [f for _, _, f in actions if f.kind == "add_broker"]
    if added and (sc.cluster.racks or sc.cluster.zones):
        i = sc.faults.index(added[0])
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


SCENARIO_CHECKS: tuple[Callable[[Scenario], None], ...] = (
    topic_names_unique, replication_factor_fits_brokers, unclean_election_supported, producers_valid,
    consumer_topics_known, faults_valid, network_zones_exist, random_faults_valid, client_fault_targets_exist,
    operator_actions_consistent)
"""Every cross-field rule of a scenario, in the order their errors are reported."""
