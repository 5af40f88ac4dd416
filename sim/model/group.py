"""Consumer groups with the classic protocol: the group coordinator and each member's side of it.

Followed: GroupCoordinator.scala / GroupMetadata.scala (the broker side: states Empty,
PreparingRebalance, CompletingRebalance, Stable; JoinGroup, SyncGroup, Heartbeat, OffsetCommit;
heartbeat expiry after session.timeout.ms; the join phase ends when every member has rejoined or
after the rebalance timeout, max.poll.interval.ms, which removes the members that did not; an
empty group's first join waits group.initial.rebalance.delay.ms, InitialDelayedJoin) and
AbstractCoordinator.java / ConsumerCoordinator.java (the client side: a heartbeat every
heartbeat.interval.ms; REBALANCE_IN_PROGRESS in a heartbeat answer makes the member rejoin, and
the eager protocol first commits its positions synchronously when auto-commit is on
(onJoinPrepare -> maybeAutoCommitOffsetsSync) and revokes every partition; UNKNOWN_MEMBER_ID or
ILLEGAL_GENERATION means the member was removed: it loses its partitions without committing and
rejoins; the group leader runs the assignor (range, roundrobin, cooperative-sticky) and sends
the assignment in its SyncGroup).

Left out, on purpose: the coordinator's own failover (it stands for the broker that leads the
group's __consumer_offsets partition, taken here as always available), FindCoordinator, the
MEMBER_ID_REQUIRED round trip of KIP-394, static membership (group.instance.id), LeaveGroup (a
crash sends none; the model has no graceful close), max.poll.interval.ms expiry of a member that
heartbeats but does not poll, and the cooperative protocol's two-phase rebalance
(cooperative-sticky assigns stickily but rebalances eagerly). An offset commit is checked against
the member's generation without a round trip (like the committed-offset store of
sim/model/consumer.py it replaces nothing else).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import simpy

from sim.model.node import Node

if TYPE_CHECKING:
    from sim.model.consumer import Consumer
    from sim.model.network import Network
    from sim.model.recorder import Recorder

__all__ = ["GroupCoordinator", "GroupMembership", "assign", "committed_epochs", "INITIAL_REBALANCE_DELAY_MS"]

INITIAL_REBALANCE_DELAY_MS = 3000.0  # broker group.initial.rebalance.delay.ms (GroupCoordinatorConfig default)
NONE, REBALANCE_IN_PROGRESS, UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION = (
    "NONE", "REBALANCE_IN_PROGRESS", "UNKNOWN_MEMBER_ID", "ILLEGAL_GENERATION")
EMPTY, PREPARING, COMPLETING, STABLE = "Empty", "PreparingRebalance", "CompletingRebalance", "Stable"


def committed_epochs(offsets: dict, group: str) -> dict[int, int]:
    """The leader epoch of each of `group`'s committed offsets (OffsetAndMetadata.leaderEpoch,
    KIP-320; -1 or absent: none), kept in the committed-offset store beside the offsets themselves."""
    return offsets.setdefault((group, "leader_epoch"), {})


# --- messages ----------------------------------------------------------------------------------
@dataclass(slots=True, eq=False)
class JoinGroup:
    client: object
    group: str
    member_id: str  # "" for a new member
    session_timeout_ms: float
    rebalance_timeout_ms: float
    owned: tuple  # partitions the member owns (cooperative-sticky's subscription userData)


@dataclass(slots=True, eq=False)
class JoinGroupResponse:
    error: str
    generation: int
    member_id: str
    leader: str
    members: dict  # leader only: member id -> partitions it owned


@dataclass(slots=True, eq=False)
class SyncGroup:
    client: object
    group: str
    member_id: str
    generation: int
    assignment: dict | None  # the leader's: member id -> partitions


@dataclass(slots=True, eq=False)
class SyncGroupResponse:
    error: str
    generation: int
    partitions: tuple


@dataclass(slots=True, eq=False)
class Heartbeat:
    client: object
    group: str
    member_id: str
    generation: int


@dataclass(slots=True, eq=False)
class HeartbeatResponse:
    error: str
    generation: int


# --- assignors (run by the group leader) -------------------------------------------------------
def assign(strategy: str, members: dict[str, tuple], partitions: list[int]) -> dict[str, list[int]]:
    """The assignment of the topic's `partitions` to `members` (member id -> partitions it owned).

    range: RangeAssignor (members sorted by id, contiguous ranges, the first P % C get one more);
    roundrobin: RoundRobinAssignor (partitions dealt to the sorted members in turn);
    cooperative-sticky: CooperativeStickyAssignor's goal (balanced, each member keeps as many of
    the partitions it owned as the balance allows, the rest dealt to the members below quota).
    """
    ids = sorted(members)
    out: dict[str, list[int]] = {m: [] for m in ids}
    if not ids:
        return out
    n, c = len(partitions), len(ids)
    if strategy == "range":
        per, extra = divmod(n, c)
        start = 0
        for i, mid in enumerate(ids):
            k = per + (1 if i < extra else 0)
            out[mid] = list(partitions[start:start + k])
            start += k
    elif strategy == "roundrobin":
        for i, p in enumerate(partitions):
            out[ids[i % c]].append(p)
    else:  # cooperative-sticky
        per, extra = divmod(n, c)
        quota = {mid: per + (1 if i < extra else 0) for i, mid in enumerate(ids)}
        taken = set()
        for mid in ids:
            for p in sorted(members[mid]):
                if p in partitions and p not in taken and len(out[mid]) < quota[mid]:
                    out[mid].append(p)
                    taken.add(p)
        free = [p for p in partitions if p not in taken]
        for mid in ids:
            while len(out[mid]) < quota[mid] and free:
                out[mid].append(free.pop(0))
        for mid in ids:
            out[mid].sort()
    return out


# --- the broker side ---------------------------------------------------------------------------
@dataclass(slots=True)
class Member:
    member_id: str
    client: object
    session_timeout_ms: float
    rebalance_timeout_ms: float
    owned: tuple
    last_heartbeat: float
    awaiting_join: bool = True
    awaiting_sync: bool = False


@dataclass(slots=True)
class Group:
    name: str
    strategy: str
    state: str = EMPTY
    generation: int = 0
    leader: str = ""
    members: dict = field(default_factory=dict)  # member id -> Member
    join_token: int = 0  # the DelayedJoin in force (older timers are void)
    initial_until: float = -1.0  # InitialDelayedJoin: no join completes before this time
    assignment: dict = field(default_factory=dict)


class GroupCoordinator(Node):
    """The group coordinator (GroupCoordinator.scala) of every classic consumer group of the run."""

    base_name = "group-coordinator"

    def __init__(self, env: simpy.Environment, network: "Network", recorder: "Recorder",
                 offsets: dict[str, dict[int, int]], strategies: dict[str, str], parent_scope: str = "cluster"):
        self.init_node(env, f"{parent_scope}.{self.base_name}")
        self.network = network
        self.recorder = recorder
        self.offsets = offsets  # group -> partition -> committed offset (__consumer_offsets)
        self.groups = {g: Group(g, s) for g, s in strategies.items()}
        self._member_ids = 0

    # --- requests ------------------------------------------------------------------------------
    def handle(self, msg) -> None:
        t = type(msg)
        if t is Heartbeat:
            self.on_heartbeat(msg)
        elif t is JoinGroup:
            self.on_join(msg)
        elif t is SyncGroup:
            self.on_sync(msg)

    def _reply(self, client, msg) -> None:
        self.network.send(self, client, msg, 64)

    def on_join(self, req: JoinGroup) -> None:
        """handleJoinGroup: a new member gets an id and triggers a rebalance; a known one rejoins."""
        g = self.groups[req.group]
        now = self.env.now
        if req.member_id and req.member_id not in g.members:
            self._reply(req.client, JoinGroupResponse(UNKNOWN_MEMBER_ID, -1, "", "", {}))
            return
        if not req.member_id:
            self._member_ids += 1
            mid = f"{req.client.name}-m{self._member_ids}"
            g.members[mid] = Member(mid, req.client, req.session_timeout_ms, req.rebalance_timeout_ms, req.owned, now)
            self.schedule(req.session_timeout_ms, self._check_session, g, mid)
            self.recorder.event(now, "group_member_joined", -1, -1, len(g.members), f"{req.group}: {mid}",
                                client=req.client.name)
        else:
            mid = req.member_id
        member = g.members[mid]
        member.client, member.owned, member.awaiting_join, member.last_heartbeat = req.client, req.owned, True, now
        if g.state == EMPTY:
            # InitialDelayedJoin: wait for more members, group.initial.rebalance.delay.ms at a time
            self._prepare_rebalance(g, "initial join")
            g.initial_until = now + INITIAL_REBALANCE_DELAY_MS
            self.schedule(INITIAL_REBALANCE_DELAY_MS, self._maybe_complete_join, g, g.join_token)
        elif g.state in (STABLE, COMPLETING):
            self._prepare_rebalance(g, f"{mid} joined")
        elif now < g.initial_until:
            g.initial_until = now + INITIAL_REBALANCE_DELAY_MS
            self.schedule(INITIAL_REBALANCE_DELAY_MS, self._maybe_complete_join, g, g.join_token)
        self._maybe_complete_join(g, g.join_token)

    def on_sync(self, req: SyncGroup) -> None:
        """handleSyncGroup: the leader's assignment moves the group to Stable and answers every member."""
        g = self.groups[req.group]
        member = g.members.get(req.member_id)
        if member is None:
            self._reply(req.client, SyncGroupResponse(UNKNOWN_MEMBER_ID, -1, ()))
            return
        if req.generation != g.generation:
            self._reply(req.client, SyncGroupResponse(ILLEGAL_GENERATION, g.generation, ()))
            return
        if g.state == PREPARING:
            self._reply(req.client, SyncGroupResponse(REBALANCE_IN_PROGRESS, g.generation, ()))
            return
        if g.state == STABLE:
            self._reply(req.client, SyncGroupResponse(NONE, g.generation, tuple(g.assignment.get(req.member_id, ()))))
            return
        member.awaiting_sync = True
        if req.member_id == g.leader and req.assignment is not None:
            g.assignment = req.assignment
            g.state = STABLE
            self.recorder.event(self.env.now, "group_stable", -1, -1, g.generation,
                                f"{g.name}: " + "; ".join(f"{m}={list(p)}" for m, p in sorted(g.assignment.items())))
            for m in g.members.values():
                if m.awaiting_sync:
                    m.awaiting_sync = False
                    mine = tuple(g.assignment.get(m.member_id, ()))
                    self._reply(m.client, SyncGroupResponse(NONE, g.generation, mine))

    def on_heartbeat(self, req: Heartbeat) -> None:
        """handleHeartbeat: reset the member's session; tell it about a rebalance in progress."""
        g = self.groups[req.group]
        member = g.members.get(req.member_id)
        if member is None or g.state == EMPTY:
            self._reply(req.client, HeartbeatResponse(UNKNOWN_MEMBER_ID, -1))
            return
        if req.generation != g.generation:
            self._reply(req.client, HeartbeatResponse(ILLEGAL_GENERATION, g.generation))
            return
        member.last_heartbeat = self.env.now
        self._reply(req.client, HeartbeatResponse(REBALANCE_IN_PROGRESS if g.state == PREPARING else NONE,
                                                  g.generation))

    def commit(self, group: str, member_id: str, generation: int, offsets: dict[int, int],
               epochs: dict[int, int] | None = None) -> str:
        """handleCommitOffsets: accepted from a current member of the current generation, unless the
        group awaits its assignment; a removed member's (a zombie's) commit is rejected. `epochs`:
        each offset's leader epoch (KIP-320), stored with it."""
        g = self.groups[group]
        if member_id not in g.members:
            return UNKNOWN_MEMBER_ID
        if generation != g.generation:
            return ILLEGAL_GENERATION
        if g.state == COMPLETING:
            return REBALANCE_IN_PROGRESS
        self.offsets.setdefault(group, {}).update(offsets)
        if epochs:
            committed_epochs(self.offsets, group).update(epochs)
        return NONE

    # --- the rebalance ---------------------------------------------------------------------------
    def _prepare_rebalance(self, g: Group, why: str) -> None:
        """prepareRebalance: every member must rejoin, within the rebalance timeout (DelayedJoin)."""
        g.state = PREPARING
        g.join_token += 1
        for m in g.members.values():
            m.awaiting_sync = False
        timeout = max((m.rebalance_timeout_ms for m in g.members.values()), default=0.0)
        self.schedule(timeout, self._join_timed_out, g, g.join_token)
        self.recorder.event(self.env.now, "group_rebalance", -1, -1, g.generation, f"{g.name}: {why}", reason=why[:40])

    def _maybe_complete_join(self, g: Group, token: int) -> None:
        """DelayedJoin.tryComplete: every member has rejoined (and the initial delay is over)."""
        if (token == g.join_token and g.state == PREPARING and self.env.now + 1e-9 >= g.initial_until
                and all(m.awaiting_join for m in g.members.values())):
            self._complete_join(g)

    def _join_timed_out(self, g: Group, token: int) -> None:
        """DelayedJoin.onExpiration: members that did not rejoin are removed, the join completes."""
        if token != g.join_token or g.state != PREPARING:
            return
        for mid in [mid for mid, m in g.members.items() if not m.awaiting_join]:
            self._remove(g, mid, "rebalance timeout")
        self._complete_join(g)

    def _complete_join(self, g: Group) -> None:
        """onCompleteJoin: a new generation; the leader gets the members, everyone a JoinGroup answer."""
        g.join_token += 1
        g.generation += 1
        if not g.members:
            g.state, g.leader = EMPTY, ""
            return
        g.state = COMPLETING
        if g.leader not in g.members:
            g.leader = next(iter(g.members))
        owned = {mid: m.owned for mid, m in g.members.items()}
        for mid, m in g.members.items():
            m.awaiting_join = False
            m.last_heartbeat = self.env.now  # completeAndScheduleNextHeartbeatExpiration
            self._reply(m.client, JoinGroupResponse(NONE, g.generation, mid, g.leader,
                                                    owned if mid == g.leader else {}))

    def _check_session(self, g: Group, mid: str) -> None:
        """DelayedHeartbeat: a member silent for session.timeout.ms is removed and the group rebalances."""
        m = g.members.get(mid)
        if m is None:
            return
        due = m.last_heartbeat + m.session_timeout_ms
        if m.awaiting_join and g.state == PREPARING:
            due = self.env.now + m.session_timeout_ms  # shouldKeepAlive: a pending JoinGroup keeps it in
        if self.env.now + 1e-9 < due:
            self.schedule(due - self.env.now, self._check_session, g, mid)
            return
        self._remove(g, mid, "session timeout")
        if g.state in (STABLE, COMPLETING):
            self._prepare_rebalance(g, f"{mid} session timeout")
        self._maybe_complete_join(g, g.join_token)

    def _remove(self, g: Group, mid: str, why: str) -> None:
        m = g.members.pop(mid)
        self.recorder.event(self.env.now, "group_member_removed", -1, -1, len(g.members), f"{g.name}: {mid}",
                            client=m.client.name, reason=why)


# --- the member side ---------------------------------------------------------------------------
class GroupMembership:
    """One consumer's side of the classic protocol (ConsumerCoordinator over AbstractCoordinator)."""

    def __init__(self, consumer: "Consumer", coordinator: GroupCoordinator, topic_partitions: list[int]):
        self.consumer = consumer
        self.coordinator = coordinator
        self.topic_partitions = topic_partitions
        self.reset()

    def reset(self) -> None:
        """A new process knows nothing of the group (member id and generation were memory)."""
        self.member_id = ""
        self.generation = -1
        self.state = "unjoined"  # joining, syncing, stable
        self.owned: tuple = ()
        self.last_ok = self.consumer.env.now  # the last answer that kept the session alive

    def start(self) -> None:
        self.join()
        self.consumer.schedule(self.consumer.config.heartbeat_interval_ms, self.heartbeat)

    def _send(self, msg) -> None:
        c = self.consumer
        c.network.send(c, self.coordinator, msg, 64)

    def join(self) -> None:
        cfg = self.consumer.config
        self.state = "joining"
        self._send(JoinGroup(self.consumer, cfg.group, self.member_id, cfg.session_timeout_ms,
                             cfg.max_poll_interval_ms, self.owned))

    def rejoin(self, commit: bool) -> None:
        """onJoinPrepare (eager): commit synchronously when auto-commit is on and the member still
        belongs to the generation, revoke every partition, then JoinGroup."""
        if self.state == "joining":
            return
        c = self.consumer
        if commit and c.config.enable_auto_commit:
            c.commit()
        c.revoke()
        self.join()

    def heartbeat(self) -> None:
        """The heartbeat thread: one Heartbeat every heartbeat.interval.ms once the member has joined."""
        c = self.consumer
        if self.state in ("syncing", "stable"):
            self._send(Heartbeat(c, c.config.group, self.member_id, self.generation))
        c.schedule(c.config.heartbeat_interval_ms, self.heartbeat)

    def handle(self, msg) -> None:
        t = type(msg)
        if t is HeartbeatResponse:
            if msg.error in (NONE, REBALANCE_IN_PROGRESS):
                self.last_ok = self.consumer.env.now
            if msg.error == REBALANCE_IN_PROGRESS:
                self.rejoin(commit=True)
            elif msg.error in (UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION) and self.state != "joining":
                self._lost(msg.error)
        elif t is JoinGroupResponse:
            self.on_join_response(msg)
        elif t is SyncGroupResponse:
            self.on_sync_response(msg)

    def _lost(self, error: str) -> None:
        """onPartitionsLost: removed from the group; the positions are not committed."""
        c = self.consumer
        c.recorder.event(c.env.now, "consumer_partitions_lost", -1, -1, len(c.partitions), f"{c.name}: {error}",
                         client=c.name, reason=error)
        if error == UNKNOWN_MEMBER_ID:
            self.member_id = ""
        c.revoke()
        self.owned = ()
        self.join()

    def on_resume(self) -> None:
        """Back from a pause longer than the session: the heartbeat thread sees the session expired
        (AbstractCoordinator.HeartbeatThread: sessionTimeoutExpired), so the member stops handing
        out records and rejoins (its commit goes first, with its old generation)."""
        c = self.consumer
        if self.state in ("syncing", "stable") and c.env.now - self.last_ok >= c.config.session_timeout_ms:
            c.recorder.event(c.env.now, "consumer_partitions_lost", -1, -1, len(c.partitions),
                             f"{c.name}: session expired while paused", client=c.name, reason="session expired")
            self.rejoin(commit=True)

    def on_join_response(self, resp: JoinGroupResponse) -> None:
        if self.state != "joining":
            return
        if resp.error != NONE:
            self.member_id = ""
            self.join()
            return
        self.member_id, self.generation, self.state = resp.member_id, resp.generation, "syncing"
        c = self.consumer
        assignment = None
        if resp.leader == resp.member_id:  # the leader runs the assignor (ConsumerCoordinator.onLeaderElected)
            assignment = assign(c.config.partition_assignment_strategy, resp.members, self.topic_partitions)
        self._send(SyncGroup(c, c.config.group, self.member_id, self.generation, assignment))

    def on_sync_response(self, resp: SyncGroupResponse) -> None:
        if self.state != "syncing" or resp.generation != self.generation:
            return
        if resp.error != NONE:
            if resp.error == UNKNOWN_MEMBER_ID:
                self.member_id = ""
            self.join()
            return
        self.state = "stable"
        self.last_ok = self.consumer.env.now
        self.owned = resp.partitions
        self.consumer.assign(list(resp.partitions))

    def commit(self, offsets: dict[int, int], epochs: dict[int, int] | None = None) -> str:
        """OffsetCommit with this member's generation (no round trip: see the module docstring)."""
        if self.state == "unjoined" or not self.member_id:
            return UNKNOWN_MEMBER_ID
        return self.coordinator.commit(self.consumer.config.group, self.member_id, self.generation, offsets, epochs)
