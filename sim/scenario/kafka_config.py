"""Kafka's own config files (Java .properties) mapped onto a scenario's Kafka-named keys.

``kafkasim run SCENARIO --producer-config producer.properties --broker-config server.properties
--topic-config topic.properties``: each file is read as ``java.util.Properties`` reads it (the
``javaproperties`` package: ``#``/``!`` comments, ``key=value``, ``key: value``, ``key value``,
trailing-backslash continuations, ``\\uXXXX`` escapes) and becomes dotted overrides, the mechanism
of ``--set``:

* producer keys -> ``producers.<i>.<key>`` for every producer of the scenario,
* broker (server.properties) keys -> ``cluster.<key>``,
* topic keys -> ``topics.<i>.<key>`` for every topic.

A real Kafka key the model does not use (``bootstrap.servers``, ``compression.type``, ``log.dirs``,
``retention.ms`` ...) is listed once per file as "not modelled" (a warning); any other key is an
error naming the file, the line and the closest Kafka name.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import javaproperties

from sim.scenario.errors import ScenarioError
from sim.scenario.loading import MAX_FILE_BYTES, read_text_capped

__all__ = ["KINDS", "MODELLED", "NOT_MODELLED", "PropertiesEntry", "ConfigMapping", "read_properties",
           "map_properties", "map_config_files", "convert_value"]

KINDS = {"producer": "producer", "broker": "broker", "topic": "topic"}

# --- the Kafka keys the model uses, per kind: each is a field alias of the scenario model --------------
MODELLED: dict[str, tuple[str, ...]] = {
    "producer": (
        "acks", "enable.idempotence", "retries", "linger.ms", "batch.size",
        "max.in.flight.requests.per.connection", "retry.backoff.ms", "retry.backoff.max.ms",
        "request.timeout.ms", "delivery.timeout.ms", "reconnect.backoff.ms", "reconnect.backoff.max.ms",
    ),
    "broker": (
        "broker.session.timeout.ms", "broker.heartbeat.interval.ms", "replica.lag.time.max.ms",
        "replica.fetch.wait.max.ms", "replica.fetch.max.bytes", "replica.fetch.response.max.bytes",
        "replica.fetch.backoff.ms", "replica.socket.timeout.ms", "replica.high.watermark.checkpoint.interval.ms",
        "min.insync.replicas", "unclean.leader.election.enable", "zookeeper.session.timeout.ms",
        "num.network.threads", "num.io.threads",  # used by cluster.hardware.cpu (sim/model/hardware.py)
        "auto.leader.rebalance.enable", "leader.imbalance.check.interval.seconds",
        "leader.imbalance.per.broker.percentage",
    ),
    "topic": ("min.insync.replicas", "unclean.leader.election.enable"),
}

# --- real Kafka config names the model does not use (Kafka 3.6-4.0) --------------------------------------
_SSL = (
    "ssl.protocol ssl.provider ssl.cipher.suites ssl.enabled.protocols ssl.keystore.type ssl.keystore.location "
    "ssl.keystore.password ssl.key.password ssl.keystore.key ssl.keystore.certificate.chain "
    "ssl.truststore.certificates ssl.truststore.type ssl.truststore.location ssl.truststore.password "
    "ssl.keymanager.algorithm ssl.trustmanager.algorithm ssl.endpoint.identification.algorithm "
    "ssl.secure.random.implementation ssl.engine.factory.class"
)
_SASL = (
    "sasl.mechanism sasl.jaas.config sasl.client.callback.handler.class sasl.login.callback.handler.class "
    "sasl.login.class sasl.kerberos.service.name sasl.kerberos.kinit.cmd sasl.kerberos.ticket.renew.window.factor "
    "sasl.kerberos.ticket.renew.jitter sasl.kerberos.min.time.before.relogin sasl.login.refresh.window.factor "
    "sasl.login.refresh.window.jitter sasl.login.refresh.min.period.seconds sasl.login.refresh.buffer.seconds "
    "sasl.login.connect.timeout.ms sasl.login.read.timeout.ms sasl.login.retry.backoff.ms "
    "sasl.login.retry.backoff.max.ms sasl.oauthbearer.scope.claim.name sasl.oauthbearer.sub.claim.name "
    "sasl.oauthbearer.token.endpoint.url sasl.oauthbearer.jwks.endpoint.url "
    "sasl.oauthbearer.jwks.endpoint.refresh.ms sasl.oauthbearer.jwks.endpoint.retry.backoff.ms "
    "sasl.oauthbearer.jwks.endpoint.retry.backoff.max.ms sasl.oauthbearer.clock.skew.seconds "
    "sasl.oauthbearer.expected.audience sasl.oauthbearer.expected.issuer sasl.oauthbearer.header.urlencode"
)
_METRICS = "metric.reporters metrics.num.samples metrics.sample.window.ms metrics.recording.level"
_CLIENT = (
    "bootstrap.servers client.dns.lookup client.id client.rack send.buffer.bytes receive.buffer.bytes "
    "connections.max.idle.ms socket.connection.setup.timeout.ms socket.connection.setup.timeout.max.ms "
    "metadata.max.age.ms metadata.recovery.strategy metadata.recovery.rebootstrap.trigger.ms "
    "enable.metrics.push security.protocol security.providers auto.include.jmx.reporter"
)
_PRODUCER = (
    "buffer.memory max.block.ms compression.type compression.gzip.level compression.lz4.level "
    "compression.zstd.level max.request.size metadata.max.idle.ms key.serializer value.serializer "
    "partitioner.class partitioner.adaptive.partitioning.enable partitioner.availability.timeout.ms "
    "partitioner.ignore.keys interceptor.classes transaction.timeout.ms transactional.id "
    "transaction.two.phase.commit.enable"
)
_TOPIC = (
    "cleanup.policy compression.type compression.gzip.level compression.lz4.level compression.zstd.level "
    "delete.retention.ms file.delete.delay.ms flush.messages flush.ms follower.replication.throttled.replicas "
    "leader.replication.throttled.replicas index.interval.bytes local.retention.bytes local.retention.ms "
    "max.compaction.lag.ms min.compaction.lag.ms max.message.bytes message.downconversion.enable "
    "message.format.version message.timestamp.type message.timestamp.difference.max.ms "
    "message.timestamp.before.max.ms message.timestamp.after.max.ms min.cleanable.dirty.ratio preallocate "
    "remote.storage.enable remote.log.copy.disable remote.log.delete.on.disable retention.bytes retention.ms "
    "segment.bytes segment.index.bytes segment.jitter.ms segment.ms"
)
_BROKER = (
    "process.roles node.id broker.id broker.rack controller.quorum.voters controller.quorum.bootstrap.servers "
    "controller.listener.names listeners advertised.listeners listener.security.protocol.map "
    "inter.broker.listener.name security.inter.broker.protocol inter.broker.protocol.version "
    "log.dir log.dirs metadata.log.dir num.network.threads num.io.threads num.replica.fetchers "
    "num.recovery.threads.per.data.dir num.replica.alter.log.dirs.threads background.threads queued.max.requests "
    "num.partitions default.replication.factor auto.create.topics.enable delete.topic.enable "
    "auto.leader.rebalance.enable leader.imbalance.check.interval.seconds leader.imbalance.per.broker.percentage "
    "offsets.topic.replication.factor offsets.topic.num.partitions offsets.retention.minutes "
    "offsets.commit.timeout.ms transaction.state.log.replication.factor transaction.state.log.min.isr "
    "transaction.state.log.num.partitions transaction.max.timeout.ms transactional.id.expiration.ms "
    "producer.id.expiration.ms socket.send.buffer.bytes socket.receive.buffer.bytes socket.request.max.bytes "
    "socket.listen.backlog.size max.connections max.connections.per.ip connections.max.idle.ms "
    "log.retention.hours log.retention.minutes log.retention.ms log.retention.bytes "
    "log.retention.check.interval.ms log.segment.bytes log.segment.delete.delay.ms log.roll.ms log.roll.hours "
    "log.roll.jitter.ms log.roll.jitter.hours log.cleanup.policy log.cleaner.enable log.cleaner.threads "
    "log.cleaner.dedupe.buffer.size log.cleaner.min.cleanable.ratio log.cleaner.delete.retention.ms "
    "log.flush.interval.messages log.flush.interval.ms log.flush.scheduler.interval.ms log.preallocate "
    "log.index.size.max.bytes log.index.interval.bytes log.message.timestamp.type log.message.format.version "
    "log.local.retention.ms log.local.retention.bytes message.max.bytes compression.type "
    "replica.fetch.min.bytes replica.socket.receive.buffer.bytes replica.selector.class "
    "fetch.purgatory.purge.interval.requests producer.purgatory.purge.interval.requests "
    "group.initial.rebalance.delay.ms group.min.session.timeout.ms group.max.session.timeout.ms "
    "group.coordinator.rebalance.protocols group.max.size controlled.shutdown.enable "
    "controller.quorum.election.timeout.ms controller.quorum.fetch.timeout.ms "
    "controller.quorum.election.backoff.max.ms controller.quorum.request.timeout.ms "
    "controller.quorum.retry.backoff.ms controller.quorum.append.linger.ms metadata.log.segment.bytes "
    "metadata.log.segment.ms metadata.max.retention.bytes metadata.max.retention.ms "
    "metadata.max.idle.interval.ms initial.broker.registration.timeout.ms remote.log.storage.system.enable "
    "sasl.enabled.mechanisms sasl.mechanism.inter.broker.protocol sasl.mechanism.controller.protocol "
    "ssl.client.auth ssl.principal.mapping.rules authorizer.class.name super.users allow.everyone.if.no.acl.found "
    "zookeeper.connect zookeeper.connection.timeout.ms zookeeper.session.timeout.ms "
    "kafka.metrics.reporters kafka.metrics.polling.interval.secs auto.include.jmx.reporter "
    "quota.window.num quota.window.size.seconds replication.quota.window.num"
)

NOT_MODELLED: dict[str, frozenset[str]] = {
    "producer": frozenset(f"{_PRODUCER} {_CLIENT} {_METRICS} {_SSL} {_SASL}".split()) - set(MODELLED["producer"]),
    "broker": frozenset(f"{_BROKER} {_METRICS} {_SSL} {_SASL}".split()) - set(MODELLED["broker"]),
    "topic": frozenset(_TOPIC.split()) - set(MODELLED["topic"]),
}
"""Real Kafka config names, per kind, that the model does not use: warned about, never an error."""

NOT_MODELLED_PREFIXES = {"broker": ("listener.name.",), "producer": (), "topic": ()}
"""Broker keys with a per-listener prefix (`listener.name.internal.ssl.keystore.location`)."""

WHY_NOT_MODELLED = {
    "buffer.memory": "back-pressure not modelled",
    "max.block.ms": "back-pressure not modelled",
    "compression.type": "records are not compressed",
    "transactional.id": "transactions not modelled",
}
"""A short reason shown after a key in the not-modelled warning."""

FILE_NAMES = {"producer": "producer", "broker": "broker", "topic": "topic"}


@dataclass(frozen=True)
class PropertiesEntry:
    """One key=value of a .properties file, with the line it starts on."""

    key: str
    value: str
    line: int


@dataclass
class ConfigMapping:
    """Properties files mapped onto a scenario: dotted overrides, where each came from, and warnings."""

    overrides: dict[str, Any] = field(default_factory=dict)
    origin: dict[str, str] = field(default_factory=dict)  # dotted path -> "FILE:LINE key=value"
    warnings: list[str] = field(default_factory=list)


def read_properties(path: str | Path) -> list[PropertiesEntry]:
    """The key=value entries of a Java .properties file, in file order (a repeated key: the last wins).

    A file that cannot be read is a ScenarioError naming it.
    """
    path = Path(path)
    if path.is_dir():
        raise ScenarioError(f"{path}: is a directory, expected a Kafka .properties file")
    try:
        raw = read_text_capped(path, MAX_FILE_BYTES)
    except FileNotFoundError:
        raise ScenarioError(f"{path}: no such file") from None
    except OSError as e:
        raise ScenarioError(f"{path}: cannot read ({e.strerror})") from None
    try:
        text = raw.decode("utf-8")  # Java 9+ reads .properties as UTF-8
    except UnicodeDecodeError:
        text = raw.decode("latin-1")  # java.util.Properties.load(InputStream)'s encoding
    if "\0" in text:
        raise ScenarioError(f"{path}: not a text file")
    entries, line = [], 1
    try:
        for el in javaproperties.parse(text):
            if isinstance(el, javaproperties.KeyValue):
                entries.append(PropertiesEntry(el.key, el.value, line))
            line += el.source.count("\n") + el.source.count("\r") - el.source.count("\r\n")
    except (ValueError, UnicodeError) as e:  # a malformed \\u escape
        raise ScenarioError(f"{path}:{line}: cannot parse ({e})") from None
    return entries


_INT = re.compile(r"^[+-]?\d+$")


def convert_value(value: str) -> Any:
    """A .properties value as Kafka's ConfigDef reads it: trimmed; true/false (any case) a boolean,
    an integer an int, anything else (``all``, ``30s``) the string, which the scenario validates."""
    v = value.strip()
    if v.lower() in ("true", "false"):
        return v.lower() == "true"
    if _INT.match(v):
        return int(v)
    return v


def _not_modelled(kind: str, key: str) -> bool:
    return key in NOT_MODELLED[kind] or key.startswith(NOT_MODELLED_PREFIXES[kind])


def map_properties(kind: str, path: str | Path, data: dict, mapping: ConfigMapping | None = None) -> ConfigMapping:
    """Map one properties file of `kind` (producer, broker, topic) onto raw scenario `data`.

    Raises ScenarioError for a key that is no Kafka config of that kind (with the closest name).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}")
    mapping = mapping or ConfigMapping()
    entries = read_properties(path)
    skipped: list[str] = []
    if kind == "producer":
        targets = [f"producers.{i}" for i in range(len(data.get("producers") or []))]
    elif kind == "topic":
        targets = [f"topics.{i}" for i in range(len(data.get("topics") or []))]
    else:
        targets = ["cluster"]
    first_line: dict[str, int] = {}
    for e in entries:
        key = e.key.strip()
        if key in MODELLED[kind]:
            # java.util.Properties keeps the last of a repeated key without a word: say which value is used
            if key in first_line:
                mapping.warnings.append(f"{path}:{e.line}: {key} is repeated (first at line {first_line[key]}): "
                                        f"the last value, {e.value.strip()}, is used (as Kafka reads the file)")
            first_line.setdefault(key, e.line)
            for t in targets:
                dotted = f"{t}.{key}"
                mapping.overrides[dotted] = convert_value(e.value)
                mapping.origin[dotted] = f"{path}:{e.line} {key}={e.value.strip()}"
        elif _not_modelled(kind, key):
            if key not in skipped:
                skipped.append(key)
        else:
            names = [*MODELLED[kind], *sorted(NOT_MODELLED[kind])]
            close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ScenarioError(f"{path}:{e.line}: unknown Kafka {kind} config {key!r}{hint}")
    if skipped:
        shown = ", ".join(f"{k} ({WHY_NOT_MODELLED[k]})" if k in WHY_NOT_MODELLED else k for k in skipped)
        mapping.warnings.append(f"{path}: not modelled (ignored): {shown}")
    if kind != "broker" and not targets and any(e.key.strip() in MODELLED[kind] for e in entries):
        mapping.warnings.append(f"{path}: the scenario has no {kind}s: its {kind} configs apply to none")
    return mapping


def map_config_files(data: dict, producer: Path | None = None, broker: Path | None = None,
                     topic: Path | None = None) -> ConfigMapping:
    """Map the given producer, broker and topic properties files onto raw scenario `data`
    (broker first, then topic, then producer; a later --set overrides all of them)."""
    mapping = ConfigMapping()
    for kind, path in (("broker", broker), ("topic", topic), ("producer", producer)):
        if path is not None:
            map_properties(kind, path, data, mapping)
    return mapping
