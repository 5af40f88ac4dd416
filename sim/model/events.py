"""The one registry of model event kinds: every kind the model emits, declared once.

A model event is a row of the ``events`` table (``events.parquet``): ``time_ms``, ``kind``,
``broker``, ``partition``, ``value`` and a ``detail`` text for humans, then the structured
columns of :data:`FIELDS`. Each :class:`EventKind` says what its ``broker``, ``partition`` and
``value`` mean and which structured fields it fills; the others hold their missing value (-1,
"", an empty ISR, False). The recorder rejects a kind not declared here, or a field its kind does
not declare, so a new kind cannot slip past the metrics unnoticed and nobody parses ``detail``.

Faults: every fault, whatever its kind, is a ``fault_start`` and (once healed) a ``fault_end``
with the fault's kind, its index in the scenario list it came from (``faults`` or
``random_faults``) and its target; ``takes_down`` says whether it stops its target serving
(a crash does; a slow disk would not), ``kills_process`` whether the target comes back as a new
incarnation (a crash does; a pause would not). Failover metrics, down intervals and the timeline's fault
lane are built from these, never from a kind name such as ``crash``. A fault whose target is gone
is a ``fault_skipped``.

The kind and column names are part of the results contract: ``analysis`` reads them from the
parquet files (it never imports the model).
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Field", "EventKind", "FIELDS", "EVENT_KINDS", "FAULT_START", "FAULT_END", "FAULT_SKIPPED", "declare"]

FAULT_START = "fault_start"
FAULT_END = "fault_end"
FAULT_SKIPPED = "fault_skipped"


@dataclass(frozen=True, slots=True)
class Field:
    """A structured column of the events table: name, numpy dtype ("O" for an ISR tuple), missing value."""

    name: str
    dtype: str
    missing: object
    doc: str


@dataclass(frozen=True, slots=True)
class EventKind:
    """One kind of model event: what its fixed columns mean and which structured fields it fills."""

    name: str
    doc: str
    broker: str = ""  # what the broker column holds ("" = unused, -1)
    partition: str = ""  # ... the partition column ("" = unused, -1)
    value: str = ""  # ... the value column ("" = unused, 0)
    fields: tuple[str, ...] = ()
    fields_set: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "fields_set", frozenset(self.fields))


FIELDS: dict[str, Field] = {f.name: f for f in (
    Field("fault", "U24", "", "the fault's kind (crash, ...)"),
    Field("fault_index", "i4", -1, "the fault's index in its scenario list (fault_source)"),
    Field("fault_source", "U16", "", "the scenario list the fault comes from: faults or random_faults"),
    Field("target", "U64", "", "the target as the fault names it: 'broker 1', 'leader_of events-0', 'random broker'"),
    Field("takes_down", "?", False, "the fault stops its target serving (crash: yes; a degradation: no)"),
    Field("kills_process", "?", False, "the fault ends the target's process: it comes back as a new incarnation "
                                       "(crash: yes; a pause: no)"),
    Field("reason", "U40", "", "why: the election or ISR change's cause, how a fault ended or why it was skipped"),
    Field("isr", "O", (), "the ISR after the change (broker ids)"),
    Field("isr_before", "O", (), "the ISR before the change (broker ids)"),
    Field("removed", "i8", -1, "records a truncation removed"),
    Field("leader_epoch", "i4", -1, "the leader epoch a truncation followed"),
    Field("end_offset", "i8", -1, "the leader's end offset for that epoch (OffsetsForLeaderEpoch)"),
    Field("min_isr", "i4", -1, "min.insync.replicas of the partition"),
    Field("client", "U40", "", "the client instance's name"),
    Field("from_offset", "i8", -1, "a consumer's position before a reset (-1: none)"),
)}
"""Structured columns of the events table, in column order after the fixed ones."""

EVENT_KINDS: dict[str, EventKind] = {}
"""Every declared kind by name."""


def declare(kind: EventKind) -> EventKind:
    """Add a kind to the registry (once); its fields must be columns of FIELDS."""
    if kind.name in EVENT_KINDS:
        raise ValueError(f"event kind {kind.name!r} is declared twice")
    unknown = [f for f in kind.fields if f not in FIELDS]
    if unknown:
        raise ValueError(f"event kind {kind.name!r}: unknown fields {unknown} (allowed: {', '.join(FIELDS)})")
    EVENT_KINDS[kind.name] = kind
    return kind


_FAULT = ("fault", "fault_index", "fault_source", "target", "takes_down", "kills_process")
for _k in (
    # --- faults (sim/model/faults.py) -------------------------------------------------------
    EventKind(FAULT_START, "a fault begins (any kind: the fault field)", broker="the target broker (-1: none)",
              value="the fault's index in its list", fields=_FAULT),
    EventKind(FAULT_END, "a fault ends: restarted, healed", broker="the target broker (-1: none)",
              fields=(*_FAULT, "reason")),
    EventKind(FAULT_SKIPPED, "a fault found no target (already down, or a random source at max_down)",
              broker="the resolved target broker (-1: none)", value="the fault's index in its list",
              fields=(*_FAULT, "reason")),
    # --- controller ---------------------------------------------------------------------------
    EventKind("leader_elected", "the controller elected a leader (time 0: the initial one)",
              broker="the new leader", partition="the partition", value="the new leader epoch", fields=("reason",)),
    EventKind("partition_offline", "no eligible leader: the partition has none",
              broker="-1", partition="the partition", value="the new leader epoch", fields=("reason",)),
    EventKind("unclean_election", "a replica outside the ISR was elected (unclean.leader.election.enable)",
              broker="the new leader", partition="the partition", value="the new leader epoch",
              fields=("isr_before",)),
    EventKind("isr_change", "the controller committed a new ISR", broker="the leader (-1: none)",
              partition="the partition", value="the new ISR size", fields=("isr", "isr_before", "reason")),
    EventKind("broker_fenced", "the controller fenced a broker (missed heartbeats or a restart)",
              broker="the broker", value="its broker epoch"),
    EventKind("broker_unfenced", "the controller unfenced a caught-up broker", broker="the broker",
              value="its broker epoch"),
    EventKind("broker_registered", "the controller registered a broker incarnation", broker="the broker",
              value="its broker epoch"),
    EventKind("broker_registration_rejected", "the controller refused a broker incarnation's registration "
              "(DUPLICATE_BROKER_REGISTRATION: the previous incarnation's session is still valid)",
              broker="the broker", value="the refused broker epoch", fields=("reason",)),
    # --- broker -------------------------------------------------------------------------------
    EventKind("broker_shutdown", "a broker finished its controlled shutdown (logs flushed) and stopped",
              broker="the broker", value="the incarnation that stopped"),
    EventKind("broker_registered_ack", "a broker learnt its registration was accepted", broker="the broker",
              value="the metadata offset of its registration"),
    EventKind("became_leader", "a broker began leading a partition epoch", broker="the broker",
              partition="the partition", value="the leader epoch"),
    EventKind("truncation", "a follower truncated its log (KIP-101 / KIP-279)", broker="the follower",
              partition="the partition", value="the offset it truncated to",
              fields=("removed", "leader_epoch", "end_offset")),
    EventKind("hw_stall", "the leader stopped advancing the HW: ISR under min.insync.replicas (KIP-966)",
              broker="the leader", partition="the partition", value="the HW", fields=("isr", "min_isr")),
    EventKind("log_lost_tail", "a power or disk loss cut a log to what was on stable storage",
              broker="the broker", partition="the partition", value="the log end offset it recovers with",
              fields=("removed", "reason")),
    EventKind("elr_change", "the controller changed a partition's Eligible Leader Replicas (KIP-966)",
              broker="the leader (-1: none)", partition="the partition", value="the new ELR size",
              fields=("isr", "isr_before", "reason")),
    EventKind("hw_resume", "the leader advances the HW again", broker="the leader", partition="the partition",
              value="the HW"),
    # --- producer (fault kind producer_crash) -------------------------------------------------
    EventKind("producer_crash", "a producer instance crashed: its queued and in-flight batches end unknown",
              value="its producer id (-1: not idempotent)", fields=("client",)),
    EventKind("producer_restart", "a producer instance restarted with a new producer id",
              value="its new producer id (-1: not idempotent)", fields=("client",)),
    # --- consumer -----------------------------------------------------------------------------
    EventKind("consumer_crash", "a consumer instance crashed", fields=("client",)),
    EventKind("consumer_restart", "a consumer instance restarted", fields=("client",)),
    EventKind("consumer_offset_reset", "auto.offset.reset moved a consumer's position",
              broker="the broker that answered", partition="the partition", value="the new position",
              fields=("client", "from_offset", "reason")),
    EventKind("consumer_truncation_detected", "a consumer's position was past the end of its epoch on the leader "
              "(log truncation, KIP-320): it seeks to the first offset known to diverge",
              broker="the broker that answered", partition="the partition", value="the new position",
              fields=("client", "from_offset", "leader_epoch", "end_offset")),
    EventKind("offset_commit", "a consumer committed its positions", value="the sum of the committed offsets",
              fields=("client",)),
    # --- consumer groups, group.protocol classic (sim/model/group.py) -------------------------
    EventKind("offset_commit_rejected", "the group coordinator rejected a commit (a removed member, an old generation)",
              value="the sum of the offsets it tried to commit", fields=("client", "reason")),
    EventKind("consumer_pause", "a consumer instance froze (fault kind consumer_pause)", fields=("client",)),
    EventKind("consumer_resume", "a paused consumer instance resumed", fields=("client",)),
    EventKind("consumer_assigned", "a consumer got its partitions from the group (SyncGroup)",
              value="how many partitions", fields=("client",)),
    EventKind("consumer_partitions_lost", "a consumer learnt it was removed from its group and dropped its partitions",
              value="how many partitions it had", fields=("client", "reason")),
    EventKind("group_member_joined", "a new member joined a group", value="the group's member count",
              fields=("client",)),
    EventKind("group_member_removed", "the coordinator removed a member (session timeout, rebalance timeout)",
              value="the group's member count", fields=("client", "reason")),
    EventKind("group_rebalance", "a group began a rebalance (PreparingRebalance)", value="the generation it leaves",
              fields=("reason",)),
    EventKind("group_stable", "a group's leader sent the assignment: the group is Stable",
              value="the new generation"),
):
    declare(_k)
del _k

# --- operator actions (sim/model/operator.py) and the reassignments they start ---------------------
for _k in (
    EventKind("operator_step", "an operator action's progress (a rolling restart's wait for no under-replicated "
              "partition, a reassignment's completion, a bound reached)", broker="the broker concerned (-1: none)",
              value="under-replicated partitions at the time", fields=(*_FAULT, "reason")),
    EventKind("leader_election_result", "the controller's answer to a preferred leader election for one partition "
              "(NONE, ELECTION_NOT_NEEDED, PREFERRED_LEADER_NOT_AVAILABLE)", broker="the preferred replica",
              partition="the partition", value="its leader epoch after the election", fields=("reason",)),
    EventKind("replicas_change", "the controller changed a partition's replica set (a reassignment; the isr "
              "fields hold the replica lists)", broker="the leader (-1: none)", partition="the partition",
              value="the new number of replicas", fields=("isr", "isr_before", "reason")),
    EventKind("replica_created", "a broker created a replica a reassignment added to it (an empty log)",
              broker="the broker", partition="the partition", value="0"),
    EventKind("replica_deleted", "a broker deleted a replica a reassignment removed from it",
              broker="the broker", partition="the partition", value="the log end offset it had"),
    EventKind("broker_unregistered", "the controller unregistered a removed broker (kafka-cluster unregister)",
              broker="the broker", value="replicas still assigned to it"),
):
    declare(_k)
del _k
