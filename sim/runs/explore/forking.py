"""Run many fault schedules over one base scenario, sharing the fault-free prefix by forking.

Every schedule of a search runs the same scenario with the same seed, and until its first fault
nothing differs: the model draws from per-component random streams and a fault does nothing
before it starts. So one parent process simulates the fault-free run, stops just before each
schedule's first fault (in order of time), and `os.fork`s: the child (a copy-on-write image of
the model at that instant) adds the schedule's faults, simulates to the end, judges the property
and sends back a small verdict through a pipe. The parent goes on to the next fork point.

A forked run is the run from scratch, event for event (tests/test_explore.py checks every fault
kind): a fault fires before anything else due at its instant (FaultInjector.due, SimPy's URGENT
priority), and a run stopped and resumed (`runner.advance`) processes the same events in the
same order. The one thing a fault list changes before any fault starts is what its kinds prepare
(`FaultAction.prepare`: power loss tracks unflushed writes; a degrade takes a random stream), so
schedules are grouped by those kinds and each group has its own parent.

Without `os.fork` (or with ``fork=False``, or on Dask, whose workers run threads) each schedule
runs from scratch, with the same results.
"""

from __future__ import annotations

import gc
import os
import pickle
import time
from dataclasses import dataclass, field
import numpy as np

from sim.measure.checker import batches_table, check
from sim.model.faults import ACTIONS, FaultAction
from sim.runs.explore.properties import Property
from sim.runs.runner import advance, build, finish
from sim.runs.sweep.executors import RunOutcome, describe_error
from sim.scenario.schema import Scenario

__all__ = ["Verdict", "Job", "JobOutcome", "run_job", "run_schedules", "with_faults", "PREPARED_KINDS", "can_fork"]

PREPARED_KINDS = frozenset({"degrade"} | {k for k, a in ACTIONS.items()
                                          if type(a).prepare is not FaultAction.prepare})
"""Fault kinds whose presence in a scenario changes the model before any fault starts."""


def can_fork() -> bool:
    """Whether this platform can fork a running simulation (POSIX)."""
    return hasattr(os, "fork")


@dataclass
class Verdict:
    """What one schedule's run showed: the property's verdict and the counts it was judged on."""

    index: int
    violation: str | None = None
    """What the run violated, in one line (None: the property held)."""
    unsettled: str | None = None
    """Why the run could not be judged: it ended before the cluster settled (None: it could)."""
    counts: dict = field(default_factory=dict)
    availability: float | None = None
    forked_at_ms: float | None = None
    """Where the run was forked from the shared prefix (None: it ran from scratch)."""
    wall_s: float = 0.0
    error: str | None = None
    fingerprint: str | None = None
    """A hash of the run's batches and events tables (asked for by tests: forked == from scratch)."""
    stopped_ms: float | None = None
    """Where the run stopped early, its faults over and the cluster settled (None: it ran to the end)."""

    @property
    def violated(self) -> bool:
        return self.violation is not None


@dataclass
class Job:
    """Schedules of one base scenario, run by one worker: the unit the executor hands out."""

    run_id: str
    scenario: Scenario
    """The base scenario: its own `faults` and `random_faults` are replaced by each schedule's."""
    seed: int
    schedules: list[tuple[int, list[dict]]]
    """(index in the search, the faults as a scenario's `faults:` list)."""
    prop: Property
    fork: bool = True
    fingerprint: bool = False
    early_stop: bool = True
    """Stop a run once its faults are over and the cluster has settled (no-acked-loss only; see `settled`)."""
    progress_path: str | None = None
    """A file to which the job appends one character per finished schedule (v: violated, u: unsettled,
    e: failed, .: held), so the search can show progress while the job runs."""


def with_faults(scenario: Scenario, faults: list[dict]) -> Scenario:
    """`scenario` with `faults` as its whole fault list (and no random faults), validated."""
    data = scenario.declared()
    data["faults"] = [dict(f) for f in faults]
    data["random_faults"] = []
    return Scenario.resolve(data)


def availability(scenario: Scenario, fo: list[dict]) -> float:
    """The share of partition-time over the produce period during which each partition had a writable leader.

    From the failover rows (sim/measure/metrics.py): a partition whose leader a fault took down is
    unavailable from the fault to its first acknowledged write under a new leader (to the end of the
    produce period if none came); overlapping outages of one partition count once.
    """
    n = sum(t.partitions for t in scenario.topics)
    end = float(scenario.duration)
    if n == 0 or end <= 0:
        return 1.0
    spans: dict[str, list[tuple[float, float]]] = {}
    for f in fo:
        start = float(f["fault_ms"])
        stop = start + f["unavailable_ms"] if f.get("unavailable_ms") is not None else end
        spans.setdefault(f["partition"], []).append((min(start, end), min(stop, end)))
    down = 0.0
    for intervals in spans.values():
        reach = -np.inf
        for a, b in sorted(intervals):
            a = max(a, reach)
            if b > a:
                down += b - a
            reach = max(reach, b)
    return 1.0 - down / (n * end)


def fingerprint(recorder) -> str:
    """A hash of a finished run's batches and events tables."""
    import hashlib

    from sim.measure.metrics import events_table

    h = hashlib.sha256()
    for table in (batches_table(recorder), events_table(recorder)):
        h.update(table.to_csv(index=False).encode())
    return h.hexdigest()[:16]


def acked_pending(recorder, batches) -> int:
    """Records acknowledged, not in the final committed log, but still in the final leader's log above
    its high watermark: the run ended before they were committed (a follower was still timing out)."""
    final = recorder.arrays("final_log")
    held = np.zeros(len(batches), dtype=bool)
    if len(final["batch_id"]):
        held[final["batch_id"][~final["committed"]]] = True
    acked = (batches["outcome"] == "acked").to_numpy()
    missing = acked & (batches["copies_in_log"].to_numpy() == 0) & held
    return int(batches["record_count"].to_numpy()[missing].sum())


def judge(scenario: Scenario, recorder, prop: Property) -> tuple[str | None, dict, float | None]:
    """The property's verdict on a finished run, from its facts: (violation, counts, availability)."""
    batches = batches_table(recorder)
    counts = {k: int(v) for k, v in check(recorder, batches).items()}
    counts["acked_pending"] = acked_pending(recorder, batches)
    avail = None
    if prop.needs_failovers:
        from sim.measure.metrics import events_table, failovers

        acks_zero = bool(scenario.producers) and all(p.acks == 0 for p in scenario.producers)
        avail = availability(scenario, failovers(recorder, events_table(recorder), batches, acks_zero))
    return prop.judge(counts, avail), counts, avail


def _verdict(index: int, prop: Property, judged, forked_at: float | None, digest: str | None = None,
             stopped: float | None = None) -> Verdict:
    """A run's verdict; one stopped early was settled by definition (what its leaders still held above the high
    watermark then is not lost, and not a sign the run ended too soon)."""
    violation, counts, avail = judged
    unsettled = None if violation or stopped is not None else prop.unsettled(counts)
    return Verdict(index, violation, unsettled, counts, avail, forked_at, fingerprint=digest, stopped_ms=stopped)


def run_from_scratch(scenario: Scenario, seed: int, index: int, prop: Property, digest: bool = False,
                     early: bool = False) -> Verdict:
    """One schedule's scenario (faults included), run from time 0."""
    t0 = time.perf_counter()
    env, cluster, recorder = build(scenario, seed)
    cluster.start()
    stopped = _simulate_rest(env, cluster, scenario, early and prop.stops_early)
    verdict = _verdict(index, prop, judge(scenario, recorder, prop), None, fingerprint(recorder) if digest else None,
                       stopped)
    verdict.wall_s = time.perf_counter() - t0
    return verdict


def _simulate_rest(env, cluster, scenario: Scenario, early: bool) -> float | None:
    """Simulate to the end (or, `early`, until settled); returns where it stopped early, or None."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        stopped = None
        if early and advance_until_settled(env, cluster, scenario):
            stopped = env.now
        else:
            advance(env, cluster, scenario)
        finish(env, cluster)
        return stopped
    finally:
        if enabled:
            gc.enable()


QUIET_CHECK_MS = 500.0
"""How often a schedule's run checks, once its faults are over, whether the cluster has settled."""


def settled(cluster, watermarks: dict[int, int]) -> bool:
    """Whether the cluster is whole again and committing: every node up, every ISR full, every replica on
    the current leader epoch, and each leader's high watermark past the log end offset it had at the
    previous check (`watermarks`, updated here). From such a state, with no fault to come, no acknowledged
    record can be lost any more: the loss a run shows then is the loss it ends with. That holds because
    without a fault no leader moves, except by a preferred-leader election (`auto.leader.rebalance.enable`):
    so a run with one due before its end has not settled."""
    ctl = cluster.controller
    now = cluster.env.now
    # and every broker heard by the controller within 1.5 heartbeat intervals: a broker whose heartbeats a
    # healed cut dropped is fenced later (broker.session.timeout.ms after its last one), which moves leaders
    fresh = 1.5 * cluster.scenario.cluster.broker_heartbeat_interval_ms
    ok = ctl.running and all(not r.fenced and now - r.last_heartbeat_ms <= fresh for r in ctl.registrations.values())
    ok = ok and all(b.alive and not b.paused and not b.shutting_down for b in cluster.brokers)
    ok = ok and all(c.alive and not c.paused for c in (*cluster.producers, *cluster.consumers))
    due = ctl.preferred_election_due_ms
    ok = ok and (due is None or due > cluster.scenario.duration + cluster.scenario.settle)
    leos = {}
    for spec in cluster.partitions:
        rec = ctl.state[spec.index]
        if not ok or rec.leader < 0 or len(rec.isr) != len(spec.replicas):
            ok = False
            break
        if any(cluster.brokers[b].replicas[spec.index].leader_epoch != rec.leader_epoch for b in spec.replicas):
            ok = False
            break
        log = cluster.brokers[rec.leader].logs[spec.index]
        leos[spec.index] = log.leo
        if log.hw < watermarks.get(spec.index, 1 << 62):
            ok = False
    watermarks.clear()
    watermarks.update(leos)
    return ok


def advance_until_settled(env, cluster, scenario: Scenario) -> bool:
    """Simulate to the end, or stop early once the schedule's faults are over and the cluster has settled
    (`settled` at two checks in a row); True if it stopped early."""
    faults = cluster.faults
    last = max((f.at for f in scenario.faults), default=0.0)
    end = scenario.duration + scenario.settle
    watermarks: dict[int, int] = {}
    t = env.now
    while t < end:
        t = min(max(t, last) + QUIET_CHECK_MS, end)
        advance(env, cluster, scenario, until=t)
        if env.now >= last and not faults.open and not faults.active_clients and t < end:
            if settled(cluster, watermarks):
                return True
        else:
            watermarks.clear()
    return False


def _first_at(scenario: Scenario) -> float:
    return min((f.at for f in scenario.faults), default=float(scenario.duration))


def _prepared(scenario: Scenario) -> frozenset:
    return frozenset(f.kind for f in scenario.faults) & PREPARED_KINDS


def _tick(path: str | None, v: Verdict) -> None:
    if path is not None:
        with open(path, "a") as f:
            f.write("e" if v.error else "v" if v.violated else "u" if v.unsettled else ".")


def run_schedules(base: Scenario, seed: int, schedules: list[tuple[int, list[dict]]], prop: Property,
                  fork: bool = True, digest: bool = False, early: bool = True,
                  progress_path: str | None = None) -> list[Verdict]:
    """Run every schedule over `base` with `seed`; verdicts in the order of `schedules`.

    With `fork` (and os.fork available) each group of schedules that prepare the same kinds shares
    one fault-free prefix; otherwise each runs from scratch.
    """
    scenarios = {}
    verdicts: dict[int, Verdict] = {}
    for index, faults in schedules:
        try:
            scenarios[index] = with_faults(base, faults)
        except Exception as e:  # noqa: BLE001 - a generator bug: this schedule fails, not the search
            verdicts[index] = Verdict(index, error=f"invalid schedule: {type(e).__name__}: {e}")
            _tick(progress_path, verdicts[index])
    if not (fork and can_fork()):
        for index, sc in scenarios.items():
            verdicts[index] = _guarded(lambda: run_from_scratch(sc, seed, index, prop, digest, early), index)
            _tick(progress_path, verdicts[index])
    else:
        groups: dict[frozenset, list[int]] = {}
        for index, sc in scenarios.items():
            groups.setdefault(_prepared(sc), []).append(index)
        for members in groups.values():
            members.sort(key=lambda i: (_first_at(scenarios[i]), i))
            verdicts.update(_forked(scenarios, members, seed, prop, digest, early, progress_path))
    return [verdicts[i] for i, _ in schedules]


def _guarded(fn, index: int) -> Verdict:
    t0 = time.perf_counter()
    try:
        return fn()
    except Exception as e:  # noqa: BLE001 - a model error fails this schedule, never the search
        return Verdict(index, error=describe_error(e), wall_s=time.perf_counter() - t0)


def _forked(scenarios: dict[int, Scenario], members: list[int], seed: int, prop: Property,
            digest: bool, early: bool, progress_path: str | None = None) -> dict[int, Verdict]:
    """One parent simulates the fault-free prefix of `members` (sorted by first fault) and forks each."""
    first = scenarios[members[0]]
    # the parent's model: built with a schedule's fault list (so its kinds prepare what they need),
    # its faults held back until each child adds its own
    env, cluster, recorder = build(first, seed)
    cluster.faults.faults = []
    cluster.start()
    out: dict[int, Verdict] = {}
    enabled = gc.isenabled()
    gc.disable()
    try:
        for index in members:
            sc = scenarios[index]
            t0 = time.perf_counter()
            at = _first_at(sc)
            advance(env, cluster, sc, until=at)
            out[index] = _fork_one(env, cluster, recorder, sc, index, prop, at, t0, digest, early)
            _tick(progress_path, out[index])
    finally:
        if enabled:
            gc.enable()
    return out


def _fork_one(env, cluster, recorder, sc: Scenario, index: int, prop: Property, at: float, t0: float,
              digest: bool, early: bool) -> Verdict:
    """Fork here: the child runs `sc`'s faults from now to the end and writes its verdict to a pipe."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        code = 0
        try:
            os.close(read_fd)
            cluster.faults.faults = list(sc.faults)
            cluster.faults.start()
            stopped = _simulate_rest(env, cluster, sc, early and prop.stops_early)
            verdict = _verdict(index, prop, judge(sc, recorder, prop), at, fingerprint(recorder) if digest else None,
                               stopped)
        except BaseException as e:  # noqa: BLE001 - reported to the parent, which records it
            verdict, code = Verdict(index, error=describe_error(e), forked_at_ms=at), 1
        try:
            with os.fdopen(write_fd, "wb") as w:
                pickle.dump(verdict, w, protocol=pickle.HIGHEST_PROTOCOL)
        finally:
            os._exit(code)
    os.close(write_fd)
    status = None
    try:
        with os.fdopen(read_fd, "rb") as r:
            data = r.read()
        _, status = os.waitpid(pid, 0)
    finally:
        if status is None:  # interrupted (Ctrl-C in a notebook): the child must not run on as an orphan
            try:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
            except OSError:
                pass
    try:
        verdict: Verdict = pickle.loads(data)
    except Exception:  # noqa: BLE001 - the child died before it wrote (killed, out of memory)
        verdict = Verdict(index, error=f"the forked run died (wait status {status})", forked_at_ms=at)
    verdict.wall_s = time.perf_counter() - t0
    return verdict


@dataclass
class JobOutcome(RunOutcome):
    """A job's verdicts, one per schedule."""

    verdicts: list[Verdict] = field(default_factory=list)


def run_job(job: Job) -> JobOutcome:
    """Executor entry point: a Job's verdicts (see sim/runs/explore/search.py)."""
    t0 = time.perf_counter()
    try:
        verdicts = run_schedules(job.scenario, job.seed, job.schedules, job.prop, fork=job.fork, digest=job.fingerprint,
                                 early=job.early_stop, progress_path=job.progress_path)
        return JobOutcome(job.run_id, verdicts=verdicts, wall_s=time.perf_counter() - t0)
    except Exception as e:  # noqa: BLE001 - the whole job failed: every schedule of it is an error
        return JobOutcome(job.run_id, error=describe_error(e), wall_s=time.perf_counter() - t0)
