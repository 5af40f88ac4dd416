"""The scenario schema: loading, Kafka defaults, validation messages, overrides, file errors."""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml
from pydantic import ValidationError

from sim.scenario.schema import Scenario, ScenarioError, apply_overrides, load_scenario
from sim.scenario.types import INT32_MAX
from sim.scenario.cluster import ClusterConfig, LatencyDist, TopicConfig
from sim.scenario.clients import ConsumerConfig, ProducerConfig
from sim.scenario.faults import CrashFault
from sim.scenario.loading import parse_override
from sim.scenario.versions import DEFAULT_VERSION, SOURCES, VERSIONS, KafkaVersion, describe, kafka_version, version_tuple
from tests.conftest import Tiny, tiny_scenario

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "scenarios" / "quickstart.yaml"
ACKS1 = ROOT / "scenarios" / "leader-crash-acks1.yaml"


def minimal(**top) -> dict:
    """The smallest useful scenario: every other value comes from the defaults."""
    data = {
        "name": "mini",
        "duration": "10s",
        "topics": [{"name": "t"}],
        "producers": [{"topic": "t", "rate": "1000/s"}],
        "consumers": [{"group.id": "g", "topic": "t"}],
    }
    data.update(top)
    return data


def raw_quickstart() -> dict:
    return yaml.safe_load(QUICKSTART.read_text())


def error_of(source, overrides=None) -> str:
    with pytest.raises(ScenarioError) as ei:
        Scenario.resolve(source, overrides)
    return str(ei.value)


def producer(**kw) -> ProducerConfig:
    return load_scenario(minimal(producers=[{"topic": "t", "rate": "1000/s", **kw}])).producers[0]


def round_trip(sc: Scenario) -> Scenario:
    return Scenario.resolve(yaml.safe_load(sc.to_yaml()))


# --- the bundled quickstart --------------------------------------------------------------------
def test_quickstart_loads_with_file_values():
    sc = load_scenario(QUICKSTART)
    assert sc.name == "quickstart"
    assert sc.duration == 60_000.0 and sc.settle == 20_000.0 and sc.seed == 1
    assert sc.cluster.brokers == 3
    assert sc.network.latency.dist == "lognormal"
    assert sc.network.latency.median == 0.5 and sc.network.latency.sigma == 0.25
    (t,) = sc.topics
    assert (t.name, t.partitions, t.replication_factor, t.min_insync_replicas) == ("events", 6, 3, 2)
    (p,) = sc.producers
    assert p.topic == "events" and p.rate == 20_000.0 and p.arrival == "poisson"
    assert p.record_size == 100 and p.acks == -1 and p.enable_idempotence is True
    (c,) = sc.consumers
    assert c.group == "readers" and c.topic == "events"
    (f,) = sc.faults
    assert f.kind == "crash" and f.leader_of == "events-0" and f.broker is None
    assert f.at == 20_000.0 and f.restart_after == 20_000.0


def test_load_scenario_accepts_str_and_path():
    assert load_scenario(str(QUICKSTART)) == load_scenario(QUICKSTART)


def test_scenario_is_frozen():
    sc = load_scenario(QUICKSTART)
    with pytest.raises(ValidationError, match="frozen"):
        sc.duration = 1.0  # type: ignore[misc]
    with pytest.raises(ValidationError, match="frozen"):
        sc.producers[0].acks = 1  # type: ignore[misc]


def test_acks1_scenario_resolves_idempotence_off():
    sc = load_scenario(ACKS1)
    p = sc.producers[0]
    assert p.acks == 1
    assert p.enable_idempotence is False


def test_resolving_does_not_mutate_the_input_dict():
    data = minimal()
    before = copy.deepcopy(data)
    Scenario.resolve(data, ["producers.0.linger.ms=10", "cluster.brokers=5"])
    assert data == before


# --- defaults ----------------------------------------------------------------------------------
def test_kafka_producer_defaults():
    p = load_scenario(minimal()).producers[0]
    assert p.acks == -1  # acks=all
    assert p.enable_idempotence is True  # KIP-679: on by default since 3.0
    assert p.retries == INT32_MAX == 2_147_483_647
    assert p.linger_ms == 5.0
    assert p.batch_size == 16_384
    assert p.max_in_flight == 5
    assert p.retry_backoff_ms == 100.0 and p.retry_backoff_max_ms == 1_000.0
    assert p.request_timeout_ms == 30_000.0 and p.delivery_timeout_ms == 120_000.0
    assert p.record_size == 100 and p.arrival == "poisson" and p.instances == 1
    assert p.keys is None and p.partitioner == "sticky"  # null keys: sticky partitioner
    assert p.start == 0.0


def test_kafka_broker_and_cluster_defaults():
    c = load_scenario(minimal()).cluster
    assert c.brokers == 3
    assert c.kafka_version == "4.0"  # the newest release the model follows (was 3.9: issue 10, defect 9)
    assert c.replica_lag_time_max_ms == 30_000.0
    assert c.broker_session_timeout_ms == 9_000.0
    assert c.broker_heartbeat_interval_ms == 2_000.0
    assert c.replica_fetch_wait_max_ms == 500.0
    assert c.replica_fetch_max_bytes == 1_048_576
    assert c.min_insync_replicas == 1
    assert c.unclean_leader_election_enable is False
    assert c.controller_election_cost_ms == 5.0


def test_election_cost_is_now_a_kafka_style_key_and_the_old_name_warns(tmp_path):
    """`cluster.election_cost` became `controller.election.cost.ms` (issue 11, item 14): a KafkaMs field
    (bare milliseconds or a duration), the old name accepted with a stored warning for one release."""
    import sim
    from sim.scenario.schema import scenario_warnings
    new = load_scenario({**minimal(), "cluster": {"controller.election.cost.ms": 12}})
    assert new.cluster.controller_election_cost_ms == 12.0 and scenario_warnings(new) == []
    assert "controller.election.cost.ms: 12" in yaml.safe_dump(new.model_dump(by_alias=True, mode="json"))
    assert load_scenario({**minimal(), "cluster": {"controller.election.cost.ms": "1s"}}
                         ).cluster.controller_election_cost_ms == 1000.0
    old = load_scenario({**minimal(), "cluster": {"election_cost": "12ms"}})
    assert old.cluster.controller_election_cost_ms == 12.0
    (w,) = scenario_warnings(old)
    assert w.startswith("cluster.election_cost is deprecated: it is now cluster.controller.election.cost.ms")
    over = load_scenario(minimal(), overrides=["cluster.election_cost=3ms"])
    assert over.cluster.controller_election_cost_ms == 3.0 and len(scenario_warnings(over)) == 1
    with pytest.raises(ScenarioError, match="election_cost is the old name of controller.election.cost.ms"):
        load_scenario({**minimal(), "cluster": {"election_cost": "1ms", "controller.election.cost.ms": 2}})
    with pytest.raises(ScenarioError, match="controller.election.cost.ms"):
        load_scenario({**minimal(), "cluster": {"controller.election.cost.ms": -1}})
    # a run stores the warning in summary.json
    res = sim.run(load_scenario({**minimal(), "duration": "1s", "settle": "1s",
                                 "cluster": {"election_cost": "5ms"}}), seed=0)
    assert any(x.startswith("cluster.election_cost is deprecated") for x in res.summary["warnings"])


def test_scenario_topic_consumer_and_network_defaults():
    sc = load_scenario(minimal())
    assert sc.settle == 30_000.0 and sc.seed == 0 and sc.faults == [] and sc.description == ""
    t = sc.topics[0]
    assert (t.partitions, t.replication_factor) == (1, 3)
    assert t.min_insync_replicas == 1 and t.unclean_leader_election_enable is False
    c = sc.consumers[0]
    assert c.enable_auto_commit is True and c.auto_commit_interval_ms == 5_000.0
    assert c.auto_offset_reset == "latest" and c.instances == 1
    # a scenario without a network section gets 0.5 ms constant links
    assert sc.network.latency.dist == "constant" and sc.network.latency.value == 0.5
    assert sc.network.bandwidth is None


def test_topic_inherits_min_insync_and_unclean_from_cluster():
    data = minimal(cluster={"min.insync.replicas": 2, "unclean.leader.election.enable": True},
                   topics=[{"name": "t"}, {"name": "u", "min.insync.replicas": 1,
                                           "unclean.leader.election.enable": False}])
    sc = load_scenario(data)
    t, u = sc.topics
    assert t.min_insync_replicas == 2 and t.unclean_leader_election_enable is True  # inherited
    assert u.min_insync_replicas == 1 and u.unclean_leader_election_enable is False  # own values win


# --- acks and idempotence ----------------------------------------------------------------------
@pytest.mark.parametrize("value, acks", [
    ("all", -1), ("ALL", -1), (" all ", -1), ("-1", -1), (-1, -1), (-1.0, -1),
    (0, 0), ("0", 0), (1, 1), ("1", 1),
])
def test_acks_forms(value, acks):
    assert producer(acks=value).acks == acks


@pytest.mark.parametrize("value", ["many", "", True, False, -2, 1.5, None, [1]])
def test_acks_invalid(value):
    msg = error_of(minimal(producers=[{"topic": "t", "rate": "1/s", "acks": value}]))
    assert msg.startswith("producers.0.acks: ")
    assert "\n" not in msg


@pytest.mark.parametrize("acks", [0, 1])
def test_idempotence_silently_off_when_acks_conflicts(acks):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # silently: no warning either
        p = producer(acks=acks)
    assert p.enable_idempotence is False


def test_idempotence_silently_off_on_other_conflicts():
    assert producer(retries=0).enable_idempotence is False
    # max.in.flight > 5 only up to 3.9; 4.0 refuses it (KAFKA-17927, see the version tests below)
    p = load_scenario(minimal(cluster={"kafka.version": "3.9"},
                              producers=[{"topic": "t", "rate": "1/s", "max.in.flight.requests.per.connection": 6}]))
    assert p.producers[0].enable_idempotence is False


def test_idempotence_explicit_false_is_kept():
    assert producer(**{"enable.idempotence": False}).enable_idempotence is False


def test_idempotence_explicit_true_with_acks_1_is_an_error():
    msg = error_of(minimal(producers=[{"topic": "t", "rate": "1/s", "acks": 1, "enable.idempotence": True}]))
    # the error says what to do (issue 11, item 12)
    assert msg == "producers.0: enable.idempotence=true requires acks=all (set enable.idempotence: false, or acks=all)"


@pytest.mark.parametrize("kw, needs", [
    ({"retries": 0}, "retries > 0"),
    ({"max.in.flight.requests.per.connection": 6}, "max.in.flight.requests.per.connection <= 5"),
    ({"acks": 0, "retries": 0}, "acks=all, retries > 0"),
])
def test_idempotence_explicit_true_with_other_conflicts_is_an_error(kw, needs):
    msg = error_of(minimal(producers=[{"topic": "t", "rate": "1/s", "enable.idempotence": True, **kw}]))
    assert msg == (f"producers.0: enable.idempotence=true requires {needs} "
                   f"(set enable.idempotence: false, or {needs.replace(', ', ' and ')})")


def test_quickstart_acks_1_conflicts_with_its_explicit_idempotence():
    msg = error_of(QUICKSTART, ["producers.0.acks=1"])
    assert "enable.idempotence=true requires acks=all" in msg
    sc = load_scenario(QUICKSTART, ["producers.0.acks=1", "producers.0.enable.idempotence=null"])
    assert sc.producers[0].acks == 1 and sc.producers[0].enable_idempotence is False


@pytest.mark.parametrize("value", [2, "2", 3])
def test_legacy_acks_n_warns(value):
    with pytest.warns(UserWarning, match=r"acks=\d is the Kafka 0.8 legacy form"):
        p = producer(acks=value)
    assert p.acks == int(value)
    assert p.enable_idempotence is False  # not acks=all: idempotence off


def test_modern_acks_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for acks in ("all", 0, 1):
            producer(acks=acks)


def test_partitioner_defaults_to_hash_for_keyed_records():
    assert producer(keys=100).partitioner == "hash"
    assert "partitioner 'hash' needs keys" in error_of(
        minimal(producers=[{"topic": "t", "rate": "1/s", "partitioner": "hash"}]))


def test_delivery_timeout_must_cover_request_timeout_and_linger():
    msg = error_of(minimal(producers=[{"topic": "t", "rate": "1/s", "delivery.timeout.ms": 30_000}]))
    assert msg.startswith("producers.0: delivery.timeout.ms must be >= request.timeout.ms + linger.ms")
    assert producer(**{"delivery.timeout.ms": 30_005}).delivery_timeout_ms == 30_005.0


# --- Kafka versions: every version-dependent default from one table (sim/versions.py) ----------
ALL_VERSIONS = ["3.6", "3.7", "3.8", "3.9", "4.0"]


def versioned(version: str, **producer_kw) -> Scenario:
    return load_scenario(minimal(cluster={"kafka.version": version},
                                 producers=[{"topic": "t", "rate": "1000/s", **producer_kw}]))


def test_the_table_covers_every_supported_version_oldest_first():
    assert list(VERSIONS) == ALL_VERSIONS
    assert DEFAULT_VERSION == "4.0"
    assert all(isinstance(row, KafkaVersion) and row.version == v for v, row in VERSIONS.items())
    # every column cites its source
    columns = [f for f in KafkaVersion.__dataclass_fields__ if f != "version"]
    assert sorted(SOURCES) == sorted(columns)


def test_versions_compare_numerically_not_as_strings():
    assert "3.10" < "3.7"  # why strings must not be compared
    assert version_tuple("3.10") > version_tuple("3.7") > version_tuple("3.6")
    assert version_tuple("4.0") > version_tuple("3.9")
    assert [VERSIONS[v].key for v in ALL_VERSIONS] == sorted(version_tuple(v) for v in ALL_VERSIONS)


def test_default_kafka_version_is_4_0_with_its_defaults():
    sc = load_scenario(minimal())
    assert sc.cluster.kafka_version == "4.0"
    p = sc.producers[0]
    assert p.linger_ms == 5 and p.retry_backoff_max_ms == 1000  # what the default results always had
    assert p.version_defaults is VERSIONS["4.0"] and sc.cluster.version_defaults is VERSIONS["4.0"]


@pytest.mark.parametrize("version, linger", [("3.6", 0), ("3.7", 0), ("3.8", 0), ("3.9", 0), ("4.0", 5)])
def test_linger_ms_default_follows_kafka_version(version, linger):
    # KIP-1030: linger.ms 0 -> 5 in 4.0 (before this change every version got 5)
    p = versioned(version).producers[0]
    assert p.linger_ms == linger
    assert yaml.safe_load(versioned(version).to_yaml())["producers"][0]["linger.ms"] == linger


@pytest.mark.parametrize("version", ALL_VERSIONS)
@pytest.mark.parametrize("linger", [0, 2.5, 7, 5])
def test_explicit_linger_ms_wins(version, linger):
    assert versioned(version, **{"linger.ms": linger}).producers[0].linger_ms == linger


def test_null_linger_ms_means_the_version_default():
    sc = load_scenario(QUICKSTART, ["cluster.kafka.version=3.8", "producers.0.linger.ms=null"])
    assert sc.producers[0].linger_ms == 0


@pytest.mark.parametrize("version, backoff_max, exponential", [
    ("3.6", None, False), ("3.7", 1000, True), ("3.8", 1000, True), ("3.9", 1000, True), ("4.0", 1000, True)])
def test_retry_backoff_max_ms_exists_from_3_7(version, backoff_max, exponential):
    sc = versioned(version)
    p = sc.producers[0]
    assert p.retry_backoff_max_ms == backoff_max
    assert p.version_defaults.exponential_retry_backoff is exponential
    shown = yaml.safe_load(sc.to_yaml())["producers"][0]
    assert ("retry.backoff.max.ms" in shown) is exponential  # absent in 3.6, never null
    assert None not in (shown["linger.ms"], shown.get("retry.backoff.max.ms", 0), shown["enable.idempotence"])


@pytest.mark.parametrize("value", [1000, 500, "2s"])
def test_retry_backoff_max_ms_rejected_for_3_6(value):
    msg = error_of(minimal(cluster={"kafka.version": "3.6"},
                           producers=[{"topic": "t", "rate": "1/s", "retry.backoff.max.ms": value}]))
    assert msg == ("producers.0.retry.backoff.max.ms: exists from Kafka 3.7 (KIP-580); kafka.version 3.6 retries "
                   "after a constant retry.backoff.ms (remove it, or set cluster.kafka.version to 3.7 or later)")
    assert versioned("3.7", **{"retry.backoff.max.ms": value}).producers[0].retry_backoff_max_ms > 0


def test_retry_backoff_max_ms_rejected_for_3_6_by_override():
    msg = error_of(QUICKSTART, ["cluster.kafka.version=3.6", "producers.0.retry.backoff.max.ms=2000"])
    assert msg.startswith("producers.0.retry.backoff.max.ms: exists from Kafka 3.7 (KIP-580)")
    assert "\n" not in msg


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_resolved_yaml_round_trips_for_every_version(version, tmp_path):
    sc = load_scenario(QUICKSTART, [f"cluster.kafka.version={version}"])
    text = sc.to_yaml()
    assert ": null" not in "".join(line for line in text.splitlines(True) if "linger" in line or "retry" in line)
    f = tmp_path / "resolved.yaml"
    f.write_text(text)
    again = load_scenario(f)
    assert again == sc and again.to_yaml() == text
    assert again.producers[0].version_defaults is VERSIONS[version]


@pytest.mark.parametrize("value, version", [(3.6, "3.6"), (3.9, "3.9"), (4.0, "4.0"), (4, "4.0"), ("3.7", "3.7")])
def test_kafka_version_accepts_yaml_numbers(value, version):
    # `--set cluster.kafka.version=3.9` and `kafka.version: 3.9` are YAML floats
    assert load_scenario(minimal(cluster={"kafka.version": value})).cluster.kafka_version == version


@pytest.mark.parametrize("value", [3.5, 3.10, "3.10", 4.1, "4", True, "latest"])
def test_unsupported_kafka_version_lists_the_allowed_ones(value):
    msg = error_of(minimal(cluster={"kafka.version": value}))
    assert msg == "cluster.kafka.version: must be one of '3.6', '3.7', '3.8', '3.9' or '4.0'"


@pytest.mark.parametrize("version, strict", [("3.6", False), ("3.7", True), ("3.8", True), ("3.9", True),
                                             ("4.0", True)])
def test_brokers_take_the_strict_min_isr_rule_from_the_table(version, strict):
    # KIP-966 part 1 (KAFKA-15583) from 3.7; the broker compared version strings before
    t = Tiny(tiny_scenario(**{"cluster/kafka.version": version}))
    assert {b.strict_min_isr for b in t.brokers} == {strict}


@pytest.mark.parametrize("where", ["cluster", "topics.0"])
@pytest.mark.parametrize("version", ["3.6", "3.7", "3.8"])
def test_unclean_election_needs_kafka_3_9_in_kraft(version, where):
    data = minimal(cluster={"kafka.version": version})
    if where == "cluster":
        data["cluster"]["unclean.leader.election.enable"] = True
    else:
        data["topics"][0]["unclean.leader.election.enable"] = True
    msg = error_of(data)
    assert msg == (f"{where}.unclean.leader.election.enable: true needs kafka.version 3.9 or later, the first KRaft "
                   f"release that honours it (KAFKA-12670); this scenario has {version} (allowed: false)")


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_unclean_election_false_is_fine_everywhere_and_true_from_3_9(version):
    assert load_scenario(minimal(cluster={"kafka.version": version, "unclean.leader.election.enable": False}))
    if version_tuple(version) >= (3, 9):
        sc = load_scenario(minimal(cluster={"kafka.version": version, "unclean.leader.election.enable": True}))
        assert sc.topics[0].unclean_leader_election_enable is True


@pytest.mark.parametrize("version", ["3.6", "3.7", "3.8", "3.9"])
@pytest.mark.parametrize("acks", ["all", 1])
def test_max_in_flight_above_5_turns_idempotence_off_up_to_3_9(version, acks):
    p = versioned(version, acks=acks, **{"max.in.flight.requests.per.connection": 6}).producers[0]
    assert p.enable_idempotence is False and p.max_in_flight == 6


@pytest.mark.parametrize("acks", ["all", 1])
def test_max_in_flight_above_5_needs_idempotence_off_explicitly_from_4_0(acks):
    # KAFKA-17927: ProducerConfig throws even with acks=1, since the check runs before the fallback
    msg = error_of(minimal(producers=[{"topic": "t", "rate": "1/s", "acks": acks,
                                       "max.in.flight.requests.per.connection": 6}]))
    assert msg == ("producers.0.max.in.flight.requests.per.connection: 6 needs enable.idempotence=false from Kafka "
                   "4.0, which no longer turns idempotence off silently (KAFKA-17927) (allowed: 1..5, or set "
                   "enable.idempotence=false)")
    p = versioned("4.0", acks=acks, **{"max.in.flight.requests.per.connection": 6,
                                       "enable.idempotence": False}).producers[0]
    assert p.enable_idempotence is False


def test_delivery_timeout_check_uses_the_version_linger():
    # 30 s = request.timeout.ms + linger.ms holds with 3.9's linger.ms 0, not with 4.0's 5
    assert versioned("3.9", **{"delivery.timeout.ms": 30_000}).producers[0].delivery_timeout_ms == 30_000
    assert error_of(minimal(producers=[{"topic": "t", "rate": "1/s", "delivery.timeout.ms": 30_000}])).startswith(
        "producers.0: delivery.timeout.ms must be >= request.timeout.ms + linger.ms")


def test_describe_names_the_version_and_its_kips():
    assert describe("4.0").startswith("defaults of Kafka 4.0 applied (linger.ms=5 KIP-1030, "
                                      "retry.backoff.max.ms=1000 exponential+jitter KIP-580, ")
    assert describe("3.6").startswith("defaults of Kafka 3.6 applied (linger.ms=0 KIP-1030, "
                                      "constant retry.backoff.ms, no retry.backoff.max.ms KIP-580, ")
    assert all("\n" not in describe(v) for v in ALL_VERSIONS)
    with pytest.raises(KeyError, match="allowed: 3.6, 3.7, 3.8, 3.9, 4.0"):
        kafka_version("3.10")


# --- producer retry backoff by version ----------------------------------------------------------
def _producer_under(version: str):
    t = Tiny(tiny_scenario(**{"cluster/kafka.version": version,
                              "producers": [{"topic": "t", "rate": "5/s", "arrival": "constant"}]}))
    (p,) = t.cluster.producers
    return t, p


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_backoff_is_constant_before_3_7_and_exponential_with_jitter_after(version):
    _, p = _producer_under(version)
    reference = np.random.Generator(np.random.PCG64())
    reference.bit_generator.state = p.rng.bit_generator.state
    backoffs = [p._backoff(attempt) for attempt in range(1, 9)]
    if version == "3.6":
        assert backoffs == [100] * 8  # a fixed retry.backoff.ms, no jitter
        assert p.rng.bit_generator.state == reference.bit_generator.state  # and no random draw
    else:
        bases = [100, 200, 400, 800, 1000, 1000, 1000, 1000]  # doubling to retry.backoff.max.ms
        assert all(0.8 * b <= x <= 1.2 * b for x, b in zip(backoffs, bases)), backoffs
        assert len(set(backoffs)) == 8  # jittered
        # exactly one draw per retry, as before the change (default results stay bit-identical)
        assert backoffs == [b * float(reference.uniform(0.8, 1.2)) for b in bases]


@pytest.mark.parametrize("version", ["3.6", "3.7"])
def test_retries_under_not_enough_replicas_back_off_by_version(version):
    """End to end: both followers die, every produce gets NOT_ENOUGH_REPLICAS (no leader change, so no
    KIP-951 skip); the gap from a batch's error to its next send is the backoff."""
    t, p = _producer_under(version)
    t.run(10)
    for b in (0, 1, 2):
        if b != t.leader():
            t.brokers[b].crash()
    t.run(70_000)
    errors, sent = t.recorder.arrays("produce_error"), t.recorder.arrays("batch_sent")
    first = errors["batch_id"][0]
    err_t = errors["time_ms"][errors["batch_id"] == first]
    sent_t = sent["time_ms"][sent["batch_id"] == first]
    gaps = np.array([sent_t[sent_t > e].min() - e for e in err_t if (sent_t > e).any()])
    assert len(gaps) >= 10
    if version == "3.6":
        assert np.allclose(gaps, 100.0, atol=0.01)
    else:
        assert gaps.max() > 800 and len(np.unique(np.round(gaps, 3))) == len(gaps)  # grows, jittered


# --- durations and sizes inside the schema -----------------------------------------------------
@pytest.mark.parametrize("value, ms", [(10, 10.0), ("10", 10.0), ("10ms", 10.0), ("1s", 1_000.0), (0, 0.0)])
def test_kafka_ms_keys_take_bare_milliseconds_or_units(value, ms):
    assert producer(**{"linger.ms": value}).linger_ms == ms


def test_scenario_durations_need_units():
    msg = error_of(minimal(duration=60))
    assert msg == "duration: duration 60 needs a unit, e.g. '60s' or '60ms'"
    assert load_scenario(minimal(duration="1m")).duration == 60_000.0


@pytest.mark.parametrize("value, fragment", [
    (-1, "must not be negative"),
    ("-1", "cannot parse duration"),
    (float("nan"), "must be finite"),
    (float("inf"), "must be finite"),
    (10**400, "must be finite"),
    ("soon", "cannot parse duration"),
])
def test_bad_kafka_ms_values(value, fragment):
    msg = error_of(minimal(producers=[{"topic": "t", "rate": "1/s", "linger.ms": value}]))
    assert msg.startswith("producers.0.linger.ms: ") and fragment in msg


@pytest.mark.parametrize("key", ["duration", "faults.0.restart_after"])
def test_positive_durations(key):
    data = minimal(faults=[{"broker": 0, "at": "1s", "restart_after": "1s"}])
    msg = error_of(data, [f"{key}=0s"])
    assert msg.startswith(f"{key}: ") and "must be greater than 0" in msg


def test_sizes_in_the_schema():
    p = producer(**{"batch.size": "16KiB", "record.size": "1KB"})
    assert p.batch_size == 16_384 and p.record_size == 1_000
    assert "record.size" in error_of(minimal(producers=[{"topic": "t", "rate": "1/s", "record.size": "0B"}]))


def test_rate_needs_a_unit_in_the_schema():
    msg = error_of(minimal(producers=[{"topic": "t", "rate": 50_000}]))
    assert msg == "producers.0.rate: rate 50000 needs a unit, e.g. '50000/s'"


def test_nan_sigma_rejected():
    msg = error_of(QUICKSTART, ["network.latency.sigma=.nan"])
    assert msg.startswith("network.latency.sigma: ")


# --- to_yaml round trip ------------------------------------------------------------------------
@pytest.mark.parametrize("source", [QUICKSTART, ACKS1])
def test_to_yaml_round_trips_bundled_scenarios(source):
    sc = load_scenario(source)
    again = round_trip(sc)
    assert again == sc
    assert again.to_yaml() == sc.to_yaml()


def test_to_yaml_round_trips_through_a_file(tmp_path):
    sc = load_scenario(QUICKSTART)
    f = tmp_path / "resolved.yaml"
    f.write_text(sc.to_yaml())
    assert load_scenario(f) == sc


def test_to_yaml_uses_kafka_names_and_fills_every_default():
    text = load_scenario(minimal()).to_yaml()
    data = yaml.safe_load(text)
    p = data["producers"][0]
    assert p["acks"] == "all" and p["enable.idempotence"] is True
    assert p["linger.ms"] == 5 and p["batch.size"] == 16_384 and p["retries"] == INT32_MAX
    assert p["rate"] == "1000/s"
    assert data["cluster"]["replica.lag.time.max.ms"] == 30_000
    assert data["cluster"]["broker.session.timeout.ms"] == 9_000
    assert data["topics"][0]["min.insync.replicas"] == 1  # resolved from the cluster
    assert data["duration"] == "10s" and data["settle"] == "30s"
    assert data["network"]["latency"]["value"] == "0.5ms"


def test_to_yaml_round_trips_unusual_values_exactly():
    data = minimal(
        duration="1234567ms",
        settle="1.5s",
        network={"latency": {"dist": "uniform", "low": "0.1ms", "high": "1234.567ms"}, "bandwidth": "1GiB/s"},
        producers=[{"topic": "t", "rate": "1/h", "linger.ms": 2.5, "keys": 10, "acks": 0, "start": "5us"}],
        faults=[{"broker": 2, "at": "1234566ms", "restart_after": "36h"}],
    )
    sc = load_scenario(data)
    again = round_trip(sc)
    assert again == sc
    assert again.duration == 1_234_567.0
    assert again.network.bandwidth == 1_073_741_824.0
    assert again.producers[0].rate == sc.producers[0].rate == 1 / 3600


@pytest.mark.parametrize("acks, rf, allowed", [(7, 3, "all, -1, 0, 1, or legacy 2..3"), (2, 1, "all, -1, 0, 1"),
                                               (4, 3, "all, -1, 0, 1, or legacy 2..3")])
def test_acks_above_the_replication_factor_is_an_error(acks, rf, allowed):
    """No write could ever be acknowledged: an error naming the field, not a run where every record is unknown."""
    with pytest.raises(ScenarioError) as e:
        load_scenario(minimal(topics=[{"name": "t", "replication.factor": rf}],
                              producers=[{"topic": "t", "rate": "1/s", "acks": acks}]))
    assert str(e.value).startswith(f"producers.0.acks: {acks} exceeds replication.factor {rf} of topic t")
    assert str(e.value).endswith(f"(allowed: {allowed})")


def test_to_yaml_round_trips_legacy_acks_with_the_warning():
    with pytest.warns(UserWarning):
        sc = load_scenario(minimal(producers=[{"topic": "t", "rate": "1/s", "acks": 2}]))
    with pytest.warns(UserWarning):
        assert round_trip(sc) == sc


# --- unknown keys ------------------------------------------------------------------------------
def _aliases(model) -> list[str]:
    return [f.alias or n for n, f in model.model_fields.items()]


@pytest.mark.parametrize("where, key, model", [
    ((), "bogus", Scenario),
    (("cluster",), "brokerz", ClusterConfig),
    (("network", "latency"), "mediam", LatencyDist),
    (("topics", 0), "partition", TopicConfig),
    (("producers", 0), "linger", ProducerConfig),
    (("consumers", 0), "group", ConsumerConfig),
    (("faults", 0), "time", CrashFault),
])
def test_unknown_key_names_dotted_path_and_allowed_keys(where, key, model):
    data = raw_quickstart()
    node = data
    for part in where:
        node = node[part]
    node[key] = 1
    msg = error_of(data)
    path = ".".join(str(p) for p in (*where, key))
    assert msg == f"{path}: unknown key (allowed: {', '.join(_aliases(model))})"


def test_unknown_key_lists_kafka_names():
    data = raw_quickstart()
    data["producers"][0]["lingerms"] = 3
    msg = error_of(data)
    assert msg.startswith("producers.0.lingerms: unknown key (allowed: ")
    assert "linger.ms" in msg and "enable.idempotence" in msg and "max.in.flight.requests.per.connection" in msg


def test_missing_required_fields_one_line_each():
    msg = error_of({"description": "nothing else"})
    assert msg.splitlines() == ["name: Field required", "duration: Field required", "topics: Field required"]


def test_literal_errors_list_the_choices():
    msg = error_of(QUICKSTART, ["network.latency.dist=gamma"])
    assert msg.startswith("network.latency.dist: must be one of ")
    assert "'constant'" in msg and "'lognormal'" in msg


# --- cross checks ------------------------------------------------------------------------------
def test_replication_factor_exceeding_brokers_rejected():
    msg = error_of(QUICKSTART, ["topics.0.replication.factor=4"])
    assert "replication.factor 4 exceeds 3 brokers" in msg and "INVALID_REPLICATION_FACTOR" in msg
    assert "\n" not in msg
    assert "exceeds 1 brokers" in error_of(QUICKSTART, ["cluster.brokers=1"])
    sc = load_scenario(QUICKSTART, ["topics.0.replication.factor=5", "cluster.brokers=5"])
    assert sc.topics[0].replication_factor == 5


@pytest.mark.parametrize("target", ["events-6", "events-99", "nope-0", "events", "events-x", "'-0'", "events--1",
                                    "Events-0"])
def test_fault_leader_of_missing_partition_rejected(target):
    msg = error_of(QUICKSTART, [f"faults.0.leader_of={target}"])
    target = target.strip("'")
    assert f"faults.0.leader_of: {target!r} is not a topic-partition of this scenario" in msg
    assert "e.g. 'events-0'" in msg


def test_fault_leader_of_last_partition_accepted():
    assert load_scenario(QUICKSTART, ["faults.0.leader_of=events-5"]).faults[0].leader_of == "events-5"


def test_fault_leader_of_topic_with_dash_in_name():
    data = minimal(topics=[{"name": "my-topic", "partitions": 2}], producers=[], consumers=[],
                   faults=[{"leader_of": "my-topic-1", "at": "1s"}])
    assert load_scenario(data).faults[0].leader_of == "my-topic-1"


@pytest.mark.parametrize("at", ["60s", "1m", "61s", "2h"])
def test_fault_at_or_after_duration_rejected(at):
    msg = error_of(QUICKSTART, [f"faults.0.at={at}"])
    assert "faults.0.at: " in msg and "is not before duration 1m" in msg


def test_fault_just_before_duration_accepted():
    assert load_scenario(QUICKSTART, ["faults.0.at=59999ms"]).faults[0].at == 59_999.0


def test_fault_broker_out_of_range_rejected():
    msg = error_of(QUICKSTART, ["faults.0.leader_of=null", "faults.0.broker=3"])
    assert "faults.0.broker: no broker 3 (allowed: 0..2)" in msg
    assert load_scenario(QUICKSTART, ["faults.0.leader_of=null", "faults.0.broker=2"]).faults[0].broker == 2


@pytest.mark.parametrize("overrides", [["faults.0.broker=1"], ["faults.0.leader_of=null"]])
def test_fault_needs_exactly_one_target(overrides):
    assert "a fault needs exactly one of 'broker', 'leader_of', 'follower_of', 'brokers', 'rack' or 'zone'" in error_of(QUICKSTART, overrides)


def test_producer_and_consumer_topics_must_exist():
    assert "producers.0.topic: unknown topic 'other' (allowed: events)" in error_of(
        QUICKSTART, ["producers.0.topic=other"])
    assert "consumers.0.topic: unknown topic 'other' (allowed: events)" in error_of(
        QUICKSTART, ["consumers.0.topic=other"])


def test_topic_names_unique():
    assert "topic names must be unique" in error_of(minimal(topics=[{"name": "t"}, {"name": "t"}]))


def test_racks_must_match_brokers():
    assert "racks lists 2 racks for 3 brokers" in error_of(minimal(cluster={"racks": ["a", "b"]}))
    assert load_scenario(minimal(cluster={"racks": ["a", "b", "c"]})).cluster.racks == ["a", "b", "c"]


def test_heartbeat_must_be_below_session_timeout():
    msg = error_of(minimal(cluster={"broker.heartbeat.interval.ms": 9000}))
    assert "broker.heartbeat.interval.ms must be less than broker.session.timeout.ms" in msg


@pytest.mark.parametrize("latency, fragment", [
    ({"dist": "uniform", "low": "2ms", "high": "1ms"}, "uniform latency needs low <= high"),
    ({"dist": "normal", "mean": "1ms"}, "normal latency needs mean, std; missing std"),
    ({"dist": "constant", "value": "1ms", "median": "1ms"}, "constant latency takes only value; remove median"),
])
def test_latency_parameters_checked(latency, fragment):
    msg = error_of(minimal(network={"latency": latency}))
    assert msg == f"network.latency: {fragment}"


# --- overrides ---------------------------------------------------------------------------------
def test_override_dotted_kafka_producer_key():
    sc = load_scenario(QUICKSTART, ["producers.0.linger.ms=10"])
    assert sc.producers[0].linger_ms == 10.0
    assert load_scenario(QUICKSTART, ["producers.0.linger.ms=2s"]).producers[0].linger_ms == 2_000.0


def test_override_dotted_topic_key():
    sc = load_scenario(QUICKSTART, ["topics.0.min.insync.replicas=1"])
    assert sc.topics[0].min_insync_replicas == 1


def test_override_dotted_cluster_key():
    sc = load_scenario(QUICKSTART, ["cluster.unclean.leader.election.enable=true",
                                    "cluster.replica.lag.time.max.ms=10s"])
    assert sc.cluster.unclean_leader_election_enable is True
    assert sc.cluster.replica_lag_time_max_ms == 10_000.0
    assert sc.topics[0].unclean_leader_election_enable is True  # inherited by the topic


@pytest.mark.parametrize("order", [
    ["network.latency.dist=constant", "network.latency.value=1ms"],
    ["network.latency.value=1ms", "network.latency.dist=constant"],
])
def test_override_switches_latency_distribution(order):
    # the quickstart's lognormal median/sigma must not block switching to a constant latency
    lat = load_scenario(QUICKSTART, order).network.latency
    assert lat.dist == "constant" and lat.value == 1.0
    assert lat.median is None and lat.sigma is None


def test_override_latency_family_still_validated():
    assert error_of(QUICKSTART, ["network.latency.dist=constant"]) == \
        "network.latency: constant latency needs value; missing value"
    lat = load_scenario(QUICKSTART, ["network.latency.median=2ms"]).network.latency
    assert lat.dist == "lognormal" and lat.median == 2.0 and lat.sigma == 0.25  # same family: kept


def test_override_into_missing_section():
    sc = load_scenario(minimal(), ["network.bandwidth=1Gbps", "network.latency.dist=normal",
                                   "network.latency.mean=1ms", "network.latency.std=0.1ms"])
    assert sc.network.bandwidth == 125_000_000.0
    assert (sc.network.latency.dist, sc.network.latency.mean, sc.network.latency.std) == ("normal", 1.0, 0.1)


def test_override_values_are_yaml_literals():
    sc = load_scenario(QUICKSTART, ["producers.0.acks=0", "producers.0.enable.idempotence=false",
                                    "description=a: b: c", "producers.0.rate=5000/s", "producers.0.instances=4"])
    p = sc.producers[0]
    assert p.acks == 0 and p.enable_idempotence is False and p.rate == 5_000.0 and p.instances == 4
    assert sc.description == "a: b: c"  # invalid YAML falls back to the raw string
    assert parse_override("producers.0.acks=1") == ("producers.0.acks", 1)
    assert parse_override("x=[1, 2]") == ("x", [1, 2])
    assert parse_override("x=") == ("x", "")
    assert parse_override(" x = all") == ("x", "all")


def test_override_dict_form():
    sc = load_scenario(QUICKSTART, {"producers.0.acks": 1, "producers.0.enable.idempotence": None,
                                    "duration": "30s"})
    assert sc.producers[0].acks == 1 and sc.duration == 30_000.0


def test_apply_overrides_returns_a_copy():
    data = raw_quickstart()
    before = copy.deepcopy(data)
    out = apply_overrides(data, ["producers.0.linger.ms=10", "topics.0.partitions=2"])
    assert data == before
    assert out["producers"][0]["linger.ms"] == 10 and out["topics"][0]["partitions"] == 2


def test_override_then_cross_check():
    assert "is not before duration 5s" in error_of(QUICKSTART, ["duration=5s"])
    sc = load_scenario(QUICKSTART, ["duration=5s", "faults.0.at=2s", "faults.0.restart_after=1s"])
    assert sc.duration == 5_000.0 and sc.faults[0].at == 2_000.0 and sc.faults[0].restart_after == 1_000.0


@pytest.mark.parametrize("override, fragment", [
    ("producers.1.acks=1", "producers has 1 entries; '1' is not an index (allowed: 0..0)"),
    ("producers.x.acks=1", "producers has 1 entries; 'x' is not an index (allowed: 0..0)"),
    ("topics.-1.partitions=2", "topics has 1 entries; '-1' is not an index (allowed: 0..0)"),
    ("faults.3=null", "faults has 1 entries; '3' is not an index (allowed: 0..0)"),
])
def test_override_list_index_out_of_range(override, fragment):
    msg = error_of(QUICKSTART, [override])
    assert msg == f"--set {override.partition('=')[0]}: {fragment}"


@pytest.mark.parametrize("override, under", [
    ("bogus=1", "scenario"),
    ("producers.0.lingerr.ms=10", "producers.0"),
    ("cluster.broker=5", "cluster"),
    ("network.latency.mode=x", "network.latency"),
])
def test_override_unknown_key(override, under):
    msg = error_of(QUICKSTART, [override])
    first = override.partition("=")[0].split(".")[len(under.split(".")) if under != "scenario" else 0]
    assert msg.startswith(f"--set {override.partition('=')[0]}: unknown key {first!r} under {under} (allowed: ")
    assert "\n" not in msg


def test_override_unknown_key_lists_kafka_names():
    msg = error_of(QUICKSTART, ["producers.0.lingerr.ms=10"])
    assert "linger.ms" in msg and "batch.size" in msg and "enable.idempotence" in msg


def test_override_into_a_value():
    assert error_of(QUICKSTART, ["duration.x=1"]) == "--set duration.x: duration is a value, not a section"


@pytest.mark.parametrize("text", ["foo", "=1", " =1", ""])
def test_override_without_key_or_equals(text):
    msg = error_of(QUICKSTART, [text])
    assert msg.startswith(f"--set {text!r}: expected dotted.key=value")


def test_override_type_error_reported_at_the_field():
    assert error_of(QUICKSTART, ["cluster.brokers=two"]).startswith("cluster.brokers: ")
    assert error_of(QUICKSTART, ["cluster=5"]).startswith("cluster: ")


# --- file errors -------------------------------------------------------------------------------
def _file_error(path: Path) -> str:
    msg = error_of(path)
    assert "\n" not in msg, msg  # exactly one line
    assert str(path) in msg  # names the file
    return msg


@pytest.mark.parametrize("content, fragment", [
    (b"", "empty scenario file"),
    (b"   \n# only a comment\n\n", "empty scenario file"),
    (b"\xff\xfe\x00\x81\x9c\xc3\x28binary\x00\x01\x02", "not a text file"),
    (bytes(range(256)) * 4, "not a text file"),
    (b"- a\n- b\n", "expected a mapping at the top level, got list"),
    (b"42\n", "expected a mapping at the top level, got int"),
    (b"just a string\n", "expected a mapping at the top level, got str"),
    (b"name: [unclosed\nduration: 5s\n", "invalid YAML at line 2"),
    (b"name: x\n\tduration: 5s\n", "invalid YAML"),
    (b"a: *undefined\n", "invalid YAML"),
    (b"name: x\nname: y: z\n", "invalid YAML"),
    (b"abc\x00def\n", "invalid YAML"),
    (b"x: !!python/object:os.system ls\n", "invalid YAML"),
])
def test_bad_files_give_one_line_naming_the_file(tmp_path, content, fragment):
    f = tmp_path / "scenario.yaml"
    f.write_bytes(content)
    msg = _file_error(f)
    assert fragment in msg


def test_missing_file(tmp_path):
    assert _file_error(tmp_path / "nope.yaml").endswith("no such scenario file")


def test_directory_instead_of_file(tmp_path):
    assert "is a directory" in _file_error(tmp_path)


def test_valid_yaml_with_bad_content_names_the_field(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text("name: x\nduration: 5s\ntopics: []\n")
    assert error_of(f).startswith("topics: List should have at least 1 item")


# --- issue 11: questionable configs (items 10, 11) ----------------------------------------------
from sim.scenario.schema import scenario_warnings  # noqa: E402
from sim.scenario.loading import MAX_FILE_BYTES  # noqa: E402


@pytest.mark.parametrize("text, key, line, first", [
    ("name: a\nduration: 5s\nname: b\ntopics: [{name: t}]\n", "name", 3, 1),
    ("name: a\nduration: 5s\ntopics:\n  - name: t\n    partitions: 2\n    partitions: 3\n", "partitions", 6, 5),
    ("name: a\nduration: 5s\ntopics: [{name: t}]\nproducers:\n  - {topic: t, rate: 1/s, acks: 1, acks: all}\n",
     "acks", 5, 5),
])
def test_duplicate_yaml_keys_are_an_error_naming_the_line(tmp_path, text, key, line, first):
    f = tmp_path / "dup.yaml"
    f.write_text(text)
    msg = error_of(f)
    assert msg == (f"{f}: duplicate key {key!r} at line {line} (first at line {first}); YAML would silently keep "
                   f"only the last value: keep one")


def test_yaml_merge_keys_may_still_be_overridden(tmp_path):
    f = tmp_path / "merge.yaml"
    f.write_text("topics: [{<<: {name: t, partitions: 2}, partitions: 3}]\nname: m\nduration: 5s\n")
    assert Scenario.resolve(f).topics[0].partitions == 3  # an explicit key beats a merged one: no duplicate


def test_a_huge_or_endless_file_is_refused_quickly(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_bytes(b"# " + b"x" * MAX_FILE_BYTES + b"\nname: x\n")
    assert "larger than 1024 KiB" in error_of(big)
    if Path("/dev/zero").exists():
        import time
        t0 = time.monotonic()
        assert error_of(Path("/dev/zero")).startswith("/dev/zero: larger than 1024 KiB")
        assert time.monotonic() - t0 < 5


def test_a_sweep_file_is_not_a_scenario():
    sweep = ROOT / "scenarios" / "sweeps" / "smoke.yaml"
    assert error_of(sweep) == (f"{sweep}: is a sweep file (it names a base scenario and what to vary), not a "
                               f"scenario; run it with `kafkasim sweep {sweep}`")


def test_random_faults_stop_before_start_is_an_error():
    msg = error_of(minimal(random_faults=[{"mean_interval": "5s", "downtime": "1s", "start": "8s", "stop": "2s"}]))
    assert msg == "random_faults.0.stop: 2s is before start 8s (allowed: stop >= start)"


def test_random_faults_max_down_above_the_brokers_is_an_error_and_all_of_them_a_warning():
    msg = error_of(minimal(random_faults=[{"mean_interval": "5s", "downtime": "1s", "max_down": 4}]))
    assert msg == "random_faults.0.max_down: 4 is more than the 3 brokers (allowed: 1..3)"
    sc = load_scenario(minimal(random_faults=[{"mean_interval": "5s", "downtime": "1s", "max_down": 3}]))
    (w,) = scenario_warnings(sc)
    assert w.startswith("random_faults.0.max_down=3: every one of the 3 brokers can be down at once")
    assert scenario_warnings(load_scenario(minimal(random_faults=[{"mean_interval": "5s", "downtime": "1s",
                                                                   "max_down": 2}]))) == []


@pytest.mark.parametrize("version, fragment", [
    ("3.6", "Kafka 3.6 accepts the topic but answers every acks=all write with NOT_ENOUGH_REPLICAS"),
    ("3.7", "Kafka 3.7 caps the effective min ISR at the replication factor (KAFKA-15583, 3.7+)"),
    ("4.0", "Kafka 4.0 caps the effective min ISR at the replication factor (KAFKA-15583, 3.7+)"),
])
def test_min_insync_above_replication_factor_warns_what_the_version_does(version, fragment):
    sc = load_scenario(QUICKSTART, [f"cluster.kafka.version={version}", "topics.0.replication.factor=2",
                                    "topics.0.min.insync.replicas=3"])
    (w,) = scenario_warnings(sc)
    assert w.startswith("topics.0.min.insync.replicas=3 exceeds replication.factor 2 of topic events: ")
    assert fragment in w
    inherited = load_scenario(minimal(cluster={"min.insync.replicas": 3},
                                      topics=[{"name": "t", "replication.factor": 2}]))
    assert scenario_warnings(inherited)[0].startswith(
        "cluster.min.insync.replicas (inherited by topic t)=3 exceeds replication.factor 2")
    assert scenario_warnings(load_scenario(QUICKSTART)) == []


def test_a_link_latency_longer_than_the_run_warns():
    sc = load_scenario(minimal(network={"latency": {"dist": "constant", "value": "20s"}}))
    (w,) = scenario_warnings(sc)
    assert w.startswith("network.latency: a typical one-way latency of 20s is not shorter than the duration 10s")
    assert scenario_warnings(load_scenario(minimal(network={"latency": {"dist": "constant", "value": "2s"}}))) == []


def test_overriding_the_version_of_a_resolved_scenario_refills_its_version_defaults():
    """linger.ms and retry.backoff.max.ms filled from 4.0's row follow a new kafka.version; explicit values stay."""
    from sim.runs.runner import _as_scenario

    sc = load_scenario(ROOT / "scenarios/leader-crash-acks1.yaml")
    assert (sc.producers[0].linger_ms, sc.producers[0].retry_backoff_max_ms) == (5.0, 1000.0)  # 4.0, the default
    old = _as_scenario(sc, {"cluster.kafka.version": "3.6"}).producers[0]
    assert (old.linger_ms, old.retry_backoff_max_ms) == (0.0, None)  # KIP-1030 and KIP-580 not yet there
    back = _as_scenario(_as_scenario(sc, {"cluster.kafka.version": "3.6"}), {"cluster.kafka.version": "4.0"})
    assert (back.producers[0].linger_ms, back.producers[0].retry_backoff_max_ms) == (5.0, 1000.0)
    mine = _as_scenario(_as_scenario(sc, {"producers.0.linger.ms": "7ms"}), {"cluster.kafka.version": "3.9"})
    assert mine.producers[0].linger_ms == 7.0  # what the user set is never replaced


def test_a_fault_listing_a_broker_twice_is_an_error():
    with pytest.raises(ScenarioError, match=r"faults.0: brokers: 0 listed more than once"):
        load_scenario(minimal(cluster={"brokers": 3}, faults=[{"kind": "crash", "at": "1s", "brokers": [0, 0]}]))


# --- issue 23, move 3: the scenario split by concept, named checks, one naming rule -------------
def test_no_module_of_the_scenario_layer_is_over_600_lines():
    sizes = {p.name: len(p.read_text().splitlines()) for p in (ROOT / "sim" / "scenario").glob("*.py")}
    assert {name: n for name, n in sizes.items() if n > 600} == {}


def test_the_cross_field_rules_are_named_checks_run_in_order():
    from sim.scenario import checks

    names = [c.__name__ for c in checks.SCENARIO_CHECKS]
    assert names[:3] == ["topic_names_unique", "replication_factor_fits_brokers", "unclean_election_supported"]
    assert len(set(names)) == len(names) and all(callable(c) for c in checks.SCENARIO_CHECKS)
    # two broken rules: the one earlier in SCENARIO_CHECKS is reported (consumers before faults)
    data = minimal(faults=[{"kind": "crash", "broker": 7, "at": "1s"}])
    data["consumers"][0]["topic"] = "nope"
    with pytest.raises(ScenarioError, match=r"^consumers\.0\.topic: unknown topic 'nope'"):
        load_scenario(data)
    # a check reads the scenario as declared and changes nothing: the defaults are filled afterwards
    sc = load_scenario(minimal())
    for check in checks.SCENARIO_CHECKS:
        assert check(sc) is None
    assert sc.topics[0].min_insync_replicas == 1 and sc.producers[0].linger_ms == 5.0


def test_naming_rules_and_effective_min_isr_are_methods_of_the_scenario():
    data = minimal(topics=[{"name": "a", "partitions": 2, "replication.factor": 2, "min.insync.replicas": 3},
                           {"name": "b"}])
    data["producers"] = [{"topic": "a", "rate": "10/s", "instances": 2}, {"name": "w", "topic": "b", "rate": "1/s"}]
    data["consumers"] = [{"group.id": "g", "topic": "a", "instances": 2}]
    sc = load_scenario(data)
    assert sc.partition_names() == ["a-0", "a-1", "b-0"]
    assert [name for _, name in sc.producer_instances()] == ["producer-0-0", "producer-0-1", "w"]
    assert [(i, name) for _, i, name in sc.consumer_instances()] == [(0, "g-0"), (1, "g-1")]
    # KAFKA-15583 (3.7+): min.insync.replicas is capped at the replication factor; before, it is not
    assert sc.effective_min_isr(sc.topics[0]) == 2 and sc.effective_min_isr(sc.topics[1]) == 1
    old = load_scenario(data, ["cluster.kafka.version=3.6"])
    assert old.effective_min_isr(old.topics[0]) == 3
