"""Kafka's version-dependent defaults and behaviours: one table, one row per `kafka.version`.

Every default or behaviour of the model that changed between the Kafka releases it follows is
read from :data:`VERSIONS`, so a scenario's `cluster.kafka.version` decides all of them at once
(the Scenario validator fills the producer defaults in; brokers read their row). Each column
cites the KIP or commit that introduced the change. Versions compare as integer tuples, never
as strings ("3.10" < "3.7" as strings).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["KafkaVersion", "VERSIONS", "DEFAULT_VERSION", "SOURCES", "version_tuple", "kafka_version",
           "describe"]


def version_tuple(version: str) -> tuple[int, ...]:
    """'3.10' -> (3, 10): the only way versions are compared here."""
    return tuple(int(part) for part in version.split("."))


@dataclass(frozen=True)
class KafkaVersion:
    """One Kafka release's version-dependent defaults and behaviours (one row of the table)."""

    version: str
    linger_ms: float
    """Producer `linger.ms` default: 0 up to 3.9, 5 from 4.0 (KIP-1030)."""
    retry_backoff_max_ms: float | None
    """Producer `retry.backoff.max.ms` default; None where the config does not exist (before 3.7, KIP-580)."""
    strict_min_isr: bool
    """The HW advances only while ISR >= min.insync.replicas (KIP-966 part 1, KAFKA-15583, 3.7+)."""
    kraft_unclean_election: bool
    """A KRaft controller honours `unclean.leader.election.enable` (KAFKA-12670, 3.9+)."""
    idempotence_in_flight_fallback: bool
    """`max.in.flight.requests.per.connection` > 5 with `enable.idempotence` unset silently turns
    idempotence off; from 4.0 it is a ConfigException (KAFKA-17927)."""

    @property
    def exponential_retry_backoff(self) -> bool:
        """KIP-580 (3.7+): retries back off exponentially with +-20% jitter; before, a constant retry.backoff.ms."""
        return self.retry_backoff_max_ms is not None

    @property
    def key(self) -> tuple[int, ...]:
        return version_tuple(self.version)


SOURCES = {
    "linger_ms": "KIP-1030; KAFKA-16368 (apache/kafka PR #18080); 4.0 upgrade notes: 'The default linger.ms "
                 "changed from 0 to 5 in Apache Kafka 4.0'",
    "retry_backoff_max_ms": "KIP-580, commit b49013b73ef, first in 3.7.0 (CommonClientConfigs: "
                            "retry.backoff.max.ms=1000, ExponentialBackoff base 2, jitter 0.2)",
    "strict_min_isr": "KIP-966 part 1, commit edc7e10a745 'KAFKA-15583: Enforce HWM advance only if "
                      "partition is not under-min-ISR', first in 3.7.0",
    "kraft_unclean_election": "KAFKA-12670 (apache/kafka PR #16866), 3.9.0 upgrade notes; before 3.9 a "
                              "KRaft controller ignored the config (only the ElectLeaders API elected uncleanly)",
    "idempotence_in_flight_fallback": "KAFKA-17927 (apache/kafka PR #17717), 4.0 upgrade notes: 'enable.idempotence "
                                      "will no longer automatically fall back when max.in.flight... exceeds 5'",
}
"""Where each column of the table comes from."""

# version: linger.ms, retry.backoff.max.ms, strict min-ISR, KRaft unclean election, idempotence fallback
VERSIONS: dict[str, KafkaVersion] = {row.version: row for row in (
    KafkaVersion("3.6", linger_ms=0, retry_backoff_max_ms=None, strict_min_isr=False,
                 kraft_unclean_election=False, idempotence_in_flight_fallback=True),
    KafkaVersion("3.7", linger_ms=0, retry_backoff_max_ms=1000, strict_min_isr=True,
                 kraft_unclean_election=False, idempotence_in_flight_fallback=True),
    KafkaVersion("3.8", linger_ms=0, retry_backoff_max_ms=1000, strict_min_isr=True,
                 kraft_unclean_election=False, idempotence_in_flight_fallback=True),
    KafkaVersion("3.9", linger_ms=0, retry_backoff_max_ms=1000, strict_min_isr=True,
                 kraft_unclean_election=True, idempotence_in_flight_fallback=True),
    KafkaVersion("4.0", linger_ms=5, retry_backoff_max_ms=1000, strict_min_isr=True,
                 kraft_unclean_election=True, idempotence_in_flight_fallback=False),
)}
"""Every supported `kafka.version`, oldest first."""

DEFAULT_VERSION = "4.0"
"""The newest release the model follows: the default `kafka.version`."""

assert list(VERSIONS) == sorted(VERSIONS, key=version_tuple), "VERSIONS must be ordered oldest first"


def kafka_version(version: str) -> KafkaVersion:
    """The table row of a supported version (KeyError names the allowed ones)."""
    try:
        return VERSIONS[version]
    except KeyError:
        raise KeyError(f"kafka.version {version!r} is not supported (allowed: {', '.join(VERSIONS)})") from None


def _fmt(ms: float) -> str:
    return f"{ms:g}"


def describe(version: str) -> str:
    """One line: which version's defaults apply and the KIP behind each, for `validate --show`."""
    row = kafka_version(version)
    parts = [f"linger.ms={_fmt(row.linger_ms)} KIP-1030"]
    if row.exponential_retry_backoff:
        parts.append(f"retry.backoff.max.ms={_fmt(row.retry_backoff_max_ms)} exponential+jitter KIP-580")
    else:
        parts.append("constant retry.backoff.ms, no retry.backoff.max.ms KIP-580")
    parts.append(("strict" if row.strict_min_isr else "no strict") + " min-ISR HW rule KIP-966")
    parts.append("unclean.leader.election.enable " + ("honoured" if row.kraft_unclean_election else "unsupported")
                 + " in KRaft KAFKA-12670")
    parts.append("max.in.flight>5 " + ("turns idempotence off" if row.idempotence_in_flight_fallback
                                       else "needs enable.idempotence=false") + " KAFKA-17927")
    return f"defaults of Kafka {row.version} applied ({', '.join(parts)})"
