"""Kafka's own config files: `run`/`validate` --producer-config, --broker-config, --topic-config (issue 11, item 15)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from sim.cli import main
from sim.scenario.kafka_config import MODELLED, NOT_MODELLED, convert_value, map_config_files, read_properties
from sim.scenario.schema import Scenario, ScenarioError
from sim.scenario.cluster import ClusterConfig, TopicConfig
from sim.scenario.clients import ProducerConfig

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "scenarios" / "quickstart.yaml"
EXAMPLES = ROOT / "scenarios" / "kafka-config"
FAST = ["--set", "duration=3s", "--set", "settle=1s", "--set", "faults.0.at=1s", "--set", "faults.0.restart_after=1s"]


def cli(capsys, *args) -> tuple[int, str, str]:
    rc = main([str(a) for a in args])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def shown(out: str) -> dict:
    """The scenario `validate --show` printed (without its closing `ok:` line)."""
    return yaml.safe_load("\n".join(line for line in out.splitlines() if not line.startswith("ok: ")))


def write(tmp_path: Path, name: str, text: str) -> Path:
    f = tmp_path / name
    f.write_text(text, encoding="utf-8")
    return f


# --- parsing ---------------------------------------------------------------------------------------
def test_properties_syntax(tmp_path):
    f = write(tmp_path, "p.properties", (
        "# a comment\n"
        "! another comment\n"
        "\n"
        "acks=all\n"
        "linger.ms : 20\n"
        "batch.size 32768\n"
        "   retries   =   7   \n"
        "bootstrap.servers=a:9092,\\\n"
        "    b:9092\n"
        "client.id=caf\\u00e9\\tx\n"
        "key\\ with\\ spaces=v\n"
        "empty.value=\n"
        "request.timeout.ms=30000\n"
    ))
    entries = read_properties(f)
    got = {e.key: (e.value, e.line) for e in entries}
    assert got["acks"] == ("all", 4)
    assert got["linger.ms"] == ("20", 5)
    assert got["batch.size"] == ("32768", 6)
    assert got["retries"][0].strip() == "7" and got["retries"][1] == 7
    assert got["bootstrap.servers"] == ("a:9092,b:9092", 8)  # continuation joined, leading blanks dropped
    assert got["client.id"] == ("caf\u00e9\tx", 10)  # escapes
    assert got["key with spaces"] == ("v", 11)
    assert got["empty.value"] == ("", 12)
    assert got["request.timeout.ms"] == ("30000", 13)  # line numbers count continuation lines


def test_repeated_key_last_wins_and_crlf_lines(tmp_path):
    f = tmp_path / "p.properties"
    f.write_bytes(b"acks=1\r\n# c\r\nacks=all\r\nlinger.msx=3\r\n")
    entries = read_properties(f)
    assert [(e.key, e.value, e.line) for e in entries] == [("acks", "1", 1), ("acks", "all", 3), ("linger.msx", "3", 4)]


def test_convert_value():
    assert convert_value(" true ") is True and convert_value("FALSE") is False
    assert convert_value("30000") == 30000 and convert_value("-1") == -1
    assert convert_value("all") == "all" and convert_value("30s") == "30s"


def test_modelled_keys_are_scenario_fields():
    # every key mapped must be a Kafka-named field of the model it lands on
    for kind, model in (("producer", ProducerConfig), ("broker", ClusterConfig), ("topic", TopicConfig)):
        aliases = {f.alias or n for n, f in model.model_fields.items()}
        assert set(MODELLED[kind]) <= aliases, kind
        assert not set(MODELLED[kind]) & NOT_MODELLED[kind]


# --- mapping onto the scenario ---------------------------------------------------------------------
def two_producers_two_topics() -> dict:
    return {
        "name": "t", "duration": "5s",
        "topics": [{"name": "a", "replication.factor": 3}, {"name": "b", "replication.factor": 3}],
        "producers": [{"topic": "a", "rate": "10/s"}, {"topic": "b", "rate": "10/s"}],
    }


def test_mapping_lands_in_every_producer_topic_and_cluster(tmp_path):
    data = two_producers_two_topics()
    prod = write(tmp_path, "producer.properties",
                 "acks=1\nenable.idempotence=false\nlinger.ms=25\nbatch.size=65536\nretries=3\n")
    broker = write(tmp_path, "server.properties",
                   "min.insync.replicas=2\nreplica.lag.time.max.ms=10000\nbroker.session.timeout.ms=6000\n"
                   "unclean.leader.election.enable=true\n")
    topic = write(tmp_path, "topic.properties", "min.insync.replicas=3\n")
    m = map_config_files(data, producer=prod, broker=broker, topic=topic)
    sc = Scenario.resolve(data, m.overrides)
    assert sc.cluster.min_insync_replicas == 2
    assert sc.cluster.replica_lag_time_max_ms == 10000
    assert sc.cluster.broker_session_timeout_ms == 6000
    assert sc.cluster.unclean_leader_election_enable is True
    assert [t.min_insync_replicas for t in sc.topics] == [3, 3]
    assert [t.unclean_leader_election_enable for t in sc.topics] == [True, True]  # inherited from the broker
    for p in sc.producers:
        assert (p.acks, p.enable_idempotence, p.linger_ms, p.batch_size, p.retries) == (1, False, 25, 65536, 3)
    assert m.warnings == []


def test_acks_all_string(tmp_path):
    data = two_producers_two_topics()
    prod = write(tmp_path, "producer.properties", "acks=-1\n")
    assert all(p.acks == -1 for p in Scenario.resolve(data, map_config_files(data, producer=prod).overrides).producers)
    prod.write_text("acks = all\n")
    assert all(p.acks == -1 for p in Scenario.resolve(data, map_config_files(data, producer=prod).overrides).producers)


def test_not_modelled_listed_once(tmp_path):
    prod = write(tmp_path, "producer.properties",
                 "bootstrap.servers=x:9092\nbuffer.memory=1\nbootstrap.servers=y:9092\nacks=all\n"
                 "ssl.truststore.location=/t\n")
    m = map_config_files(two_producers_two_topics(), producer=prod)
    assert len(m.warnings) == 1
    w = m.warnings[0]
    assert "not modelled" in w and w.count("bootstrap.servers") == 1
    assert "buffer.memory (back-pressure not modelled)" in w and "ssl.truststore.location" in w
    assert "acks" not in w


def test_broker_listener_prefixed_key_not_modelled(tmp_path):
    broker = write(tmp_path, "server.properties", "listener.name.internal.ssl.keystore.location=/k\n")
    m = map_config_files(two_producers_two_topics(), broker=broker)
    assert "listener.name.internal.ssl.keystore.location" in m.warnings[0]


@pytest.mark.parametrize("kind,text,fragment", [
    ("producer", "acks=all\n\nlinger.msx=5\n", "p.properties:3: unknown Kafka producer config 'linger.msx' "
                                               "(did you mean 'linger.ms'?)"),
    ("broker", "min.insync.replica=2\n", "p.properties:1: unknown Kafka broker config 'min.insync.replica' "
                                         "(did you mean 'min.insync.replicas'?)"),
    ("topic", "retention.msec=1\n", "unknown Kafka topic config 'retention.msec' (did you mean 'retention.ms'?)"),
    ("producer", "zzzz=1\n", "unknown Kafka producer config 'zzzz'"),
])
def test_misspelt_key_is_an_error_with_the_closest_name(tmp_path, kind, text, fragment):
    f = write(tmp_path, "p.properties", text)
    with pytest.raises(ScenarioError) as e:
        map_config_files(two_producers_two_topics(), **{kind: f})
    assert fragment in str(e.value)


# --- the command line ------------------------------------------------------------------------------
def test_cli_misspelt_key_exit_2(capsys, tmp_path):
    f = write(tmp_path, "producer.properties", "# durable\nacks=all\nlinger.msx=5\n")
    for command in ("validate", "run"):
        rc, out, err = cli(capsys, command, QUICKSTART, "--producer-config", f)
        assert rc == 2
        assert err.strip() == (f"error: {f}:3: unknown Kafka producer config 'linger.msx' (did you mean 'linger.ms'?)")


def test_cli_missing_file_exit_2(capsys, tmp_path):
    rc, out, err = cli(capsys, "validate", QUICKSTART, "--topic-config", tmp_path / "nope.properties")
    assert rc == 2 and "nope.properties: no such file" in err


def test_cli_bad_value_names_the_file_line(capsys, tmp_path):
    f = write(tmp_path, "server.properties", "# x\nmin.insync.replicas=zero\n")
    rc, out, err = cli(capsys, "validate", QUICKSTART, "--broker-config", f)
    assert rc == 2 and "cluster.min.insync.replicas" in err and f"(from {f}:2 min.insync.replicas=zero)" in err


def test_cli_validate_show_bundled_examples(capsys):
    rc, out, err = cli(capsys, "validate", QUICKSTART, "--show",
                       "--producer-config", EXAMPLES / "producer.properties",
                       "--broker-config", EXAMPLES / "server.properties",
                       "--topic-config", EXAMPLES / "topic.properties")
    assert rc == 0, err
    resolved = shown(out)
    assert resolved["producers"][0]["linger.ms"] == 10 and resolved["producers"][0]["batch.size"] == 32768
    assert resolved["cluster"]["min.insync.replicas"] == 2
    assert resolved["topics"][0]["min.insync.replicas"] == 2
    assert Scenario.resolve(resolved).model_dump(mode="json", by_alias=True) == resolved  # validates again, unchanged
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    for name in ("producer.properties", "server.properties", "topic.properties"):
        assert sum(name in w and "not modelled" in w for w in warnings) == 1, warnings
    assert "buffer.memory (back-pressure not modelled)" in err


def test_cli_set_wins_over_config_file(capsys, tmp_path):
    f = write(tmp_path, "producer.properties", "linger.ms=50\n")
    rc, out, err = cli(capsys, "validate", QUICKSTART, "--show", "--producer-config", f,
                       "--set", "producers.0.linger.ms=7")
    assert rc == 0, err
    assert shown(out)["producers"][0]["linger.ms"] == 7


def test_a_repeated_key_is_a_warning_naming_both_lines_and_the_value_used(capsys, tmp_path):
    """java.util.Properties keeps the last of a repeated key, silently; a YAML scenario refuses one. Here
    the last wins, as in Kafka, and the user is told (issue 22)."""
    f = write(tmp_path, "producer.properties", "acks=1\nlinger.ms=5\nacks = all\n")
    rc, out, err = cli(capsys, "validate", QUICKSTART, "--show", "--producer-config", f)
    assert rc == 0, err
    assert shown(out)["producers"][0]["acks"] == "all"
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert warnings == [f"warning: {f}:3: acks is repeated (first at line 1): the last value, all, is used "
                        "(as Kafka reads the file)"]


def test_cli_run_records_config_and_warnings(capsys, tmp_path):
    f = write(tmp_path, "producer.properties", "client.id=me\nlinger.ms=20\n")
    out_dir = tmp_path / "run"
    rc, out, err = cli(capsys, "run", QUICKSTART, *FAST, "--seed", "1", "--producer-config", f, "--out", out_dir)
    assert rc == 0, err
    summary = json.loads((out_dir / "summary.json").read_text())
    assert summary["overrides"]["producers.0.linger.ms"] == 20
    assert sum("not modelled" in w and "client.id" in w for w in summary["warnings"]) == 1
    assert err.count("not modelled") == 1  # printed once
    assert yaml.safe_load((out_dir / "scenario.yaml").read_text())["producers"][0]["linger.ms"] == 20
