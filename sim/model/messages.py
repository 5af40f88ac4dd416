"""Request and response types that cross the network, and Kafka's error codes.

Messages are batch-granular: a produce request carries at most one batch per partition (as
Kafka's RecordAccumulator.drain builds them) and a fetch response carries slices of a log.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "NONE", "NOT_LEADER_OR_FOLLOWER", "NOT_ENOUGH_REPLICAS", "NOT_ENOUGH_REPLICAS_AFTER_APPEND",
    "REQUEST_TIMED_OUT", "NETWORK_EXCEPTION", "OUT_OF_ORDER_SEQUENCE_NUMBER", "DUPLICATE_SEQUENCE_NUMBER",
    "FENCED_LEADER_EPOCH", "OFFSET_OUT_OF_RANGE", "UNKNOWN_LEADER_EPOCH", "RETRIABLE", "AMBIGUOUS",
    "DUPLICATE_BROKER_REGISTRATION",
    "ProduceRequest", "ProduceResponse", "FetchRequest", "FetchResponse", "PartitionFetch",
    "PartitionData", "MetadataRequest", "MetadataResponse", "BrokerHeartbeat", "MetadataFetch",
    "MetadataFetchResponse", "AlterPartition", "AlterPartitionResponse", "PartitionRecord",
    "BrokerRegistration", "BrokerRegistrationResponse", "BrokerHeartbeatResponse",
]

# Kafka error names (clients/.../protocol/Errors.java)
NONE = "NONE"
NOT_LEADER_OR_FOLLOWER = "NOT_LEADER_OR_FOLLOWER"
NOT_ENOUGH_REPLICAS = "NOT_ENOUGH_REPLICAS"
NOT_ENOUGH_REPLICAS_AFTER_APPEND = "NOT_ENOUGH_REPLICAS_AFTER_APPEND"
REQUEST_TIMED_OUT = "REQUEST_TIMED_OUT"
NETWORK_EXCEPTION = "NETWORK_EXCEPTION"
OUT_OF_ORDER_SEQUENCE_NUMBER = "OUT_OF_ORDER_SEQUENCE_NUMBER"
DUPLICATE_SEQUENCE_NUMBER = "DUPLICATE_SEQUENCE_NUMBER"
FENCED_LEADER_EPOCH = "FENCED_LEADER_EPOCH"
UNKNOWN_LEADER_EPOCH = "UNKNOWN_LEADER_EPOCH"
OFFSET_OUT_OF_RANGE = "OFFSET_OUT_OF_RANGE"
DUPLICATE_BROKER_REGISTRATION = "DUPLICATE_BROKER_REGISTRATION"

RETRIABLE = frozenset({
    NOT_LEADER_OR_FOLLOWER, NOT_ENOUGH_REPLICAS, NOT_ENOUGH_REPLICAS_AFTER_APPEND, REQUEST_TIMED_OUT,
    NETWORK_EXCEPTION, OUT_OF_ORDER_SEQUENCE_NUMBER, FENCED_LEADER_EPOCH, UNKNOWN_LEADER_EPOCH,
})
# Errors after which the batch may or may not be in the log: the client cannot know.
# NOT_LEADER_OR_FOLLOWER is ambiguous too: a leader that loses leadership while a request waits in
# purgatory answers it, although the batch is in its log and may have reached the new leader.
AMBIGUOUS = frozenset({NOT_ENOUGH_REPLICAS_AFTER_APPEND, REQUEST_TIMED_OUT, NETWORK_EXCEPTION,
                       NOT_LEADER_OR_FOLLOWER})


@dataclass(slots=True, eq=False)
class ProduceRequest:
    client: object
    request_id: int
    acks: int
    timeout_ms: float
    batches: list  # ProducerBatch objects, at most one per partition
    nbytes: int = 0


@dataclass(slots=True, eq=False)
class ProduceResponse:
    request_id: int
    broker: int
    results: list  # (batch, error, base_offset)


@dataclass(slots=True, eq=False)
class PartitionFetch:
    partition: int
    fetch_offset: int
    last_fetched_epoch: int  # KIP-320/KIP-595 divergence check: epoch of the last batch fetched (-1: none)
    current_leader_epoch: int


@dataclass(slots=True, eq=False)
class FetchRequest:
    client: object
    request_id: int
    replica_id: int  # broker id for follower fetches, -1 for consumers (read up to HW)
    max_wait_ms: float
    max_bytes: int
    partition_max_bytes: int
    partitions: list  # PartitionFetch
    # KIP-227 incremental fetch sessions (follower fetches): a full request lists every partition
    # and opens a session; an incremental one lists only partitions whose fetch state changed.
    session_id: int = 0
    full: bool = True
    # KIP-903: the follower's broker epoch (ReplicaState.ReplicaEpoch); -1 for consumers
    replica_epoch: int = -1


@dataclass(slots=True, eq=False)
class PartitionData:
    partition: int
    error: str
    high_watermark: int = 0
    # slices of the leader's log columns (immutable empty defaults: building a response is hot)
    base: list | tuple = ()
    count: list | tuple = ()
    epoch: list | tuple = ()
    batch_id: list | tuple = ()
    pid: list | tuple = ()
    seq: list | tuple = ()
    nbytes: list | tuple = ()
    diverging_epoch: tuple | None = None  # (epoch, end_offset) when the follower must truncate


@dataclass(slots=True, eq=False)
class FetchResponse:
    request_id: int
    broker: int
    partitions: list  # PartitionData
    session_error: bool = False  # FETCH_SESSION_ID_NOT_FOUND: the follower must send a full request


@dataclass(slots=True, eq=False)
class MetadataRequest:
    client: object
    request_id: int


@dataclass(slots=True, eq=False)
class MetadataResponse:
    request_id: int
    broker: int
    leaders: dict  # partition -> (leader broker or -1, leader epoch)


@dataclass(slots=True, eq=False)
class BrokerHeartbeat:
    broker: int
    broker_epoch: int  # incarnation; a restart registers a new epoch
    metadata_offset: int
    request_id: int = 0  # the broker matches the answer to its one heartbeat in flight


@dataclass(slots=True, eq=False)
class ControlledShutdownRequest:
    """KRaft: a BrokerHeartbeat with wantShutDown set (BrokerLifecycleManager.beginControlledShutdown)."""

    broker: int
    broker_epoch: int
    metadata_offset: int


@dataclass(slots=True, eq=False)
class ControlledShutdownResponse:
    """The controller's answer: shouldShutDown (leadership moved away and the broker has seen it)."""

    broker_epoch: int


@dataclass(slots=True, eq=False)
class BrokerHeartbeatResponse:
    broker_epoch: int
    fenced: bool
    request_id: int = 0


@dataclass(slots=True, eq=False)
class BrokerRegistration:
    """A (re)started broker registers a new incarnation (ClusterControlManager.registerBroker)."""

    broker: int
    broker_epoch: int
    # KIP-966: the broker epoch of a clean shutdown (from the clean-shutdown file); -1 after an
    # unclean one (crash, power loss, disk loss), which ELR treats as possibly lossy.
    previous_broker_epoch: int = -1


@dataclass(slots=True, eq=False)
class BrokerRegistrationResponse:
    broker_epoch: int
    registration_offset: int  # metadata log offset just past the registration record
    # DUPLICATE_BROKER_REGISTRATION: the previous incarnation's session is still valid
    error: str = "NONE"


@dataclass(slots=True, eq=False)
class MetadataFetch:
    broker: int
    broker_epoch: int
    offset: int


@dataclass(slots=True, eq=False)
class MetadataFetchResponse:
    offset: int  # where `records` start: a response to an older fetch is ignored
    records: list
    end_offset: int


@dataclass(slots=True, frozen=True)
class PartitionRecord:
    """A committed partition state in the KRaft metadata log (PartitionChangeRecord)."""

    partition: int
    leader: int  # -1: no leader (offline)
    leader_epoch: int
    partition_epoch: int
    isr: tuple
    replicas: tuple
    # The broker epoch (incarnation) the leader had when elected. Kafka's controller moves
    # leadership off a fenced broker in the same record batch as the fence
    # (ReplicationControlManager.handleBrokerFenced); here elections take controller.election.cost.ms each, so a
    # record can still name a dead incarnation as leader until its election runs. A broker never
    # acts on a leadership of a previous incarnation.
    leader_broker_epoch: int = -1


@dataclass(slots=True, eq=False)
class AlterPartition:
    request_id: int
    broker: int
    broker_epoch: int
    partition: int
    leader_epoch: int
    partition_epoch: int
    new_isr: tuple
    # KIP-903 NewIsrWithEpochs: each member's broker epoch as the leader last saw it fetch (-1 or
    # absent: not checked)
    broker_epochs: dict | None = None


@dataclass(slots=True, eq=False)
class AlterPartitionResponse:
    request_id: int
    partition: int
    error: str
    record: PartitionRecord | None
