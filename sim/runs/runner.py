"""Run one scenario: build the cluster, simulate, heal, settle, then measure from the facts.

Timeline: producers produce for `duration`; at `duration` every crashed broker is restarted
(faults heal) and producers stop creating records; the run continues for `settle` so that
replication, retries and consumers converge; then clients stop and the final logs are
snapshotted for the checker.
"""

from __future__ import annotations

import gc
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import simpy

from sim import __version__
from sim.measure.checker import batches_table, check
from sim.runs.contract import RunSummary
from sim.measure.invariants import check_invariants_by_rule
from sim.measure.metrics import (client_timeseries, consumer_lag, e2e_latency, events_table, failovers,
                                 produce_latency, records_lag_max, records_redelivered, timeseries,
                                 under_replicated_at_end)
from sim.model.cluster import Cluster
from sim.model.recorder import Recorder
from sim.runs.results import Results
from sim.model.rng import RandomStreams
from sim.scenario.schema import Scenario, ScenarioError, ScenarioLike, scenario_warnings

__all__ = ["run", "simulate", "build", "advance", "finish", "estimate_work", "check_work", "work_warnings", "WorkEstimate", "WorkTooLarge", "scenario_warnings",
           "physical_memory"]

ProgressFn = Callable[[float, float], None]


def _as_scenario(scenario: ScenarioLike, overrides: Any = None) -> Scenario:
    if isinstance(scenario, Scenario):
        if overrides:
            return Scenario.resolve(scenario.declared(), overrides)  # version defaults refill for a new version
        return scenario
    return Scenario.resolve(scenario if isinstance(scenario, (dict, Path)) else Path(scenario), overrides)


def build(scenario: Scenario, seed: int, prepare: Callable[[Cluster], None] | None = None
          ) -> tuple[simpy.Environment, Cluster, Recorder]:
    """The model of `scenario` with its random streams from `seed`, built and not yet started."""
    env = simpy.Environment()
    streams = RandomStreams(seed)
    recorder = Recorder(scenario.partition_names())
    cluster = Cluster(env, scenario, streams, recorder)
    if prepare is not None:
        prepare(cluster)
    recorder.producer_names = [p.name for p in cluster.producers]
    recorder.consumer_names = [c.name for c in cluster.consumers]
    return env, cluster, recorder


def simulate(scenario: Scenario, seed: int, progress: ProgressFn | None = None,
             prepare: Callable[[Cluster], None] | None = None) -> tuple[Cluster, Recorder, int]:
    """Run the model; returns the cluster, the filled recorder and the SimPy events processed.

    `prepare(cluster)` runs once the cluster is built, before it starts: a hook for tests and
    studies that reach into the model (e.g. `cluster.network.set_loss_all(0.01)`).
    """
    env, cluster, recorder = build(scenario, seed, prepare)
    cluster.start()
    # The model keeps many long-lived objects (batches, logs, fact columns) and makes almost no
    # reference cycles, so CPython's cyclic GC would mostly rescan the live heap over and over:
    # switch it off while simulating and collect the young generations between progress steps.
    gc_enabled = gc.isenabled()
    gc.disable()
    try:
        advance(env, cluster, scenario, progress)
        events_processed = finish(env, cluster)
    finally:
        if gc_enabled:
            gc.enable()
    return cluster, recorder, events_processed


def advance(env: simpy.Environment, cluster: Cluster, scenario: Scenario, progress: ProgressFn | None = None,
            until: float | None = None) -> None:
    """Simulate from now to `until` (default: the end of the settle period), healing faults at `duration`.

    Stopping early and calling again later (as `kafkasim explore` does to fork a run) simulates
    exactly what one call would: the stops are SimPy `until` events, which change no model state.
    """
    end = scenario.duration + scenario.settle
    stop = end if until is None else min(until, end)
    step = max(1000.0, end / 200)
    t = env.now
    while t < stop:
        t = min(t + step, stop)
        if not cluster.faults.healed and t >= scenario.duration:
            if scenario.duration > env.now:
                env.run(until=scenario.duration)
            cluster.faults.heal()
        if t > env.now:
            env.run(until=t)
        gc.collect(1)
        if progress is not None:
            progress(env.now, end)


def finish(env: simpy.Environment, cluster: Cluster) -> int:
    """Stop the clients and snapshot the final logs; returns the SimPy events processed."""
    cluster.finish()
    return next(env._eid) - len(env._queue)


def run(scenario: ScenarioLike, seed: int | None = None, *, overrides: Any = None,
        progress: ProgressFn | None = None, prepare: Callable[[Cluster], None] | None = None,
        checked: Sequence[str] | None = None) -> Results:
    """Simulate `scenario` with `seed` (default: the scenario's) and measure the outcome.

    `checked`: the scenario's warnings and work-estimate warnings when the caller has already
    computed them for this scenario (a sweep does, once per combination, before anything runs);
    by default they are computed here, and a run that cannot fit in memory is refused.
    """
    sc = _as_scenario(scenario, overrides)
    seed = sc.seed if seed is None else int(seed)
    sc = sc.model_copy(update={"seed": seed})
    if checked is None:
        caught = scenario_warnings(sc)
        caught += check_work(sc)[1]  # raises WorkTooLarge before anything is allocated
    else:
        caught = list(checked)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        wall0 = time.perf_counter()
        cluster, recorder, n_events = simulate(sc, seed, progress, prepare)
        wall = time.perf_counter() - wall0
        caught += [str(x.message) for x in w]
    replication = {s.index: len(s.replicas) for s in cluster.partitions}
    offline_end = sum(1 for s in cluster.partitions if cluster.controller.state[s.index].leader < 0)
    del cluster  # the model's objects are no longer needed: measurement reads the facts only
    gc_enabled = gc.isenabled()
    gc.disable()
    try:
        summary, batches, events, ts = _measure(sc, seed, _recorded_overrides(overrides), recorder, n_events, wall,
                                                replication, offline_end, caught)
    finally:
        if gc_enabled:
            gc.enable()
    return Results(sc, seed, summary, batches, events, ts, caught)


def _recorded_overrides(overrides: Any) -> dict:
    """Overrides as summary.json records them: dotted key -> value (a --set list is parsed)."""
    if not overrides:
        return {}
    if isinstance(overrides, dict):
        return {str(k): v for k, v in overrides.items()}
    from sim.scenario.loading import parse_override

    return dict(parse_override(o) for o in overrides)


def _measure(sc: Scenario, seed: int, overrides: dict, recorder: Recorder, n_events: int, wall: float,
             replication: dict[int, int], offline_end: int, caught: list[str]
             ) -> tuple[RunSummary, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Checker and metrics over the recorded facts."""
    batches = batches_table(recorder)
    events = events_table(recorder)
    counts = check(recorder, batches)
    acks_zero = bool(sc.producers) and all(p.acks == 0 for p in sc.producers)
    fo = failovers(recorder, events, batches, acks_zero)
    # min.insync.replicas of every partition, in the cluster's order (topics, then their partitions)
    min_isr = dict(enumerate(t.min_insync_replicas or sc.cluster.min_insync_replicas
                             for t in sc.topics for _ in range(t.partitions)))
    ts = timeseries(batches, events, replication, sc.duration + sc.settle, min_isr)
    ts = pd.concat([ts, client_timeseries(recorder, batches, events, sc.duration + sc.settle)], axis=1)
    elect = [f["election_ms"] for f in fo if f["election_ms"] is not None]
    unavail = [f["unavailable_ms"] for f in fo if f["unavailable_ms"] is not None]
    by_rule = check_invariants_by_rule(recorder)
    violations = [v for found in by_rule.values() for v in found]
    group_metrics = {}
    if any(c.group_protocol == "classic" for c in sc.consumers) or any(
            f.kind in ("consumer_crash", "consumer_pause") for f in sc.faults):
        # consumer groups in use (issue 13): redeliveries and lag; absent otherwise, as before
        groups = [spec.group for spec, _, _ in sc.consumer_instances()]
        ts["consumer_lag"] = consumer_lag(recorder, batches, groups, ts["time_ms"].to_numpy() + 1000.0)
        group_metrics = {"records_redelivered": records_redelivered(recorder, batches, groups),
                         "consumer_lag_max": int(ts["consumer_lag"].max()) if len(ts) else 0}
    if sc.consumers:  # the consumers' records-lag-max, read at the end of each second
        ts["records_lag_max"] = records_lag_max(recorder, batches, [c.group for c in sc.consumers for _ in
                                                                    range(c.instances)], ts["time_ms"].to_numpy() + 1000.0)
    summary = RunSummary(
        scenario=sc.name,
        seed=seed,
        overrides=overrides,
        version=__version__,
        sim_duration_ms=float(sc.duration + sc.settle),
        produce_duration_ms=float(sc.duration),
        wall_time_s=round(wall, 4),
        sim_events=int(n_events),
        messages_sent=dict(recorder.messages_sent),
        messages_dropped=dict(recorder.messages_dropped),
        **counts,
        batches=int(len(batches)),
        throughput_rps=counts["records_acked"] / (sc.duration / 1000.0),
        produce_latency_ms=produce_latency(batches),
        e2e_latency_ms=e2e_latency(batches),
        failovers=fo,
        failover_ms={"p50": float(np.median(elect)) if elect else None, "max": max(elect) if elect else None},
        unavailable_ms={"p50": float(np.median(unavail)) if unavail else None,
                        "max": max(unavail) if unavail else None},
        unclean_elections=int((events["kind"] == "unclean_election").sum()),
        leader_elections=int(((events["kind"] == "leader_elected") & (events["time_ms"] > 0)).sum()),
        isr_shrinks=int(_count_isr(events, shrink=True)),
        isr_expands=int(_count_isr(events, shrink=False)),
        truncations=int((events["kind"] == "truncation").sum()),
        offline_partitions_at_end=int(offline_end),
        under_replicated_partitions_at_end=under_replicated_at_end(events, replication),
        warnings=caught,
        invariant_violations=len(violations),
        invariant_examples=violations[:5],
        invariant_violations_by_rule={name: len(found) for name, found in by_rule.items()},
        **group_metrics,
    )
    return summary, batches, events, ts


# --- how much work a run is, before it runs -----------------------------------------------------
# Calibrated on the bundled and bench scenarios (Python 3.11, 2-core CI machine): peak memory per
# producer batch (the batch, its facts and its rows in the result tables), SimPy events per batch
# (request, response, replication, acknowledgement, consumption) and wall time per batch (its
# share of round trips included, README "Performance") and per idle periodic event (heartbeats,
# empty fetches). Estimates, good to a factor of two or three: enough to refuse what cannot fit
# and to warn about what takes hours.
BYTES_PER_BATCH = 1500.0
BYTES_PER_SIMULATED_SECOND = 400.0     # the per-second timeseries and periodic facts
BASE_BYTES = 200 * 2**20               # the interpreter, numpy, pandas, pyarrow
ARRIVAL_BYTES = 48.0                   # per record of one chunk of generated arrivals
EVENTS_PER_BATCH = 12.0
SECONDS_PER_BATCH = 40e-6
SECONDS_PER_IDLE_EVENT = 15e-6
# Per partition and per replica (measured on this 2-core machine under load, 1-100k partitions,
# RF 1 and 3, 1-5 topics, peak RSS of sim.run; the table is in docs/architecture.md, "What a run costs"): the
# controller's records, each replica's Partition, Log and fetch state, and the events table's
# initial rows. Without these a 100,000-partition scenario was estimated at 201.5 MiB and took 2.6 GB.
BYTES_PER_PARTITION = 11 * 1024.0
BYTES_PER_REPLICA = 3 * 1024.0
SECONDS_PER_PARTITION = 0.2e-3         # building and starting it, elections at time 0
SECONDS_PER_REPLICA = 0.05e-3
SECONDS_PER_PARTITION_SECOND = 20e-6   # periodic per-partition upkeep (ISR expiry, HW checkpoints)
LONG_DURATION_MS = 86_400_000.0        # a simulated day: beyond it, blame the duration first
WARN_WALL_S = 30 * 60.0                # warn when a run would take longer than this
WARN_MEMORY_SHARE = 0.5                # ... or need more than this share of the memory available now


class WorkTooLarge(ScenarioError):
    """A run that cannot fit in this machine's memory: one line saying why and what to change."""


def physical_memory() -> int:
    """Bytes of RAM on this machine (0 if unknown)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return 0


def available_memory() -> int:
    """Bytes of memory available now (MemAvailable on Linux; else the physical memory)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return physical_memory()


def _bytes(n: float) -> str:
    for unit, f in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20)):
        if n >= f:
            return f"{n / f:,.1f} {unit}" if n / f < 1e6 else f"{n / f:.1e} {unit}"
    return f"{n / 1024:,.0f} KiB"


def _count(n: float) -> str:
    if n >= 1e12:
        return f"{n:.1e}"
    for unit, f in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= f:
            return f"{n / f:.1f}{unit}"
    return f"{n:.0f}"


def _duration(s: float) -> str:
    if s >= 86400 * 365:
        return f"{s / (86400 * 365):,.1f} years"
    for unit, f in (("days", 86400), ("h", 3600), ("min", 60)):
        if s >= f:
            return f"{s / f:.1f} {unit}"
    return f"{s:.0f} s"


@dataclass(frozen=True)
class WorkEstimate:
    """What a run of a scenario will cost, estimated from the scenario alone."""

    records: float
    """Records the producers create (the offered load)."""
    batches: float
    events: float
    """SimPy events."""
    memory_bytes: float
    """Peak memory of the run, measurement included."""
    arrival_chunk_bytes: float
    """The largest block of arrivals generated at once."""
    wall_s: float
    """Wall time on a machine like the CI's (rough)."""
    culprit: str
    """The dotted field that contributes most: the one to change."""

    def describe(self) -> str:
        return (f"about {_count(self.records)} records in {_count(self.batches)} batches, {_count(self.events)} "
                f"events, {_bytes(self.memory_bytes)} of memory and {_duration(self.wall_s)}")


def estimate_work(sc: Scenario) -> WorkEstimate:
    """Records, batches, events, peak memory and wall time of one run of `sc`, before running it.

    A batch holds ``batch.size / record.size`` records at most and closes after ``linger.ms``, so
    a producer instance filling one partition at a time (sticky) makes batches of
    ``rate x linger.ms`` records (at least one); keyed and round-robin producers spread their rate
    over the topic's partitions.
    """
    partitions = {t.name: t.partitions for t in sc.topics}
    total_s = (sc.duration + sc.settle) / 1000.0
    records = batches = 0.0
    chunk = 0.0
    worst, worst_batches = "duration", -1.0
    for i, p in enumerate(sc.producers):
        produce_s = max(0.0, sc.duration - p.start) / 1000.0
        n = p.rate * p.instances * produce_s
        cap = max(1.0, float(p.batch_size // p.record_size)) if p.batch_size else 1.0
        per_partition_rate = p.rate if p.partitioner == "sticky" else p.rate / partitions.get(p.topic, 1)
        per_batch = min(cap, max(1.0, per_partition_rate * p.linger_ms / 1000.0))
        b = n / per_batch
        records += n
        batches += b
        if b > worst_batches:
            worst, worst_batches = f"producers.{i}.rate", b
        rate_ms = p.rate / 1000.0
        chunk_ms = max(5.0 * max(p.linger_ms, 1.0), min(1000.0, 20000.0 / max(rate_ms, 1e-9)))
        chunk = max(chunk, rate_ms * chunk_ms * ARRIVAL_BYTES)
    brokers = sc.cluster.brokers
    consumers = sum(c.instances for c in sc.consumers)
    per_s = (brokers * max(brokers - 1, 0) * 2 * 1000.0 / max(sc.cluster.replica_fetch_wait_max_ms, 1.0)
             + brokers * 2 * 1000.0 / sc.cluster.broker_heartbeat_interval_ms
             + sum(c.instances * brokers * 2 * 1000.0 / max(c.fetch_max_wait_ms, 1.0) for c in sc.consumers)
             + 4.0 * brokers + consumers)
    idle_events = per_s * total_s
    events = EVENTS_PER_BATCH * batches + idle_events
    n_partitions = sum(t.partitions for t in sc.topics)
    n_replicas = sum(t.partitions * t.replication_factor for t in sc.topics)
    partition_bytes = BYTES_PER_PARTITION * n_partitions + BYTES_PER_REPLICA * n_replicas
    memory = BASE_BYTES + BYTES_PER_BATCH * batches + BYTES_PER_SIMULATED_SECOND * total_s + chunk + partition_bytes
    if BYTES_PER_BATCH * batches < BYTES_PER_SIMULATED_SECOND * total_s or sc.duration >= LONG_DURATION_MS:
        worst = "duration"  # what to change: a day or more of simulated time is the unusual setting
    if partition_bytes > max(BYTES_PER_BATCH * batches, BYTES_PER_SIMULATED_SECOND * total_s):
        biggest = max(range(len(sc.topics)), key=lambda i: sc.topics[i].partitions * (sc.topics[i].replication_factor + 4))
        worst = f"topics.{biggest}.partitions"
    wall = (SECONDS_PER_BATCH * batches + SECONDS_PER_IDLE_EVENT * idle_events + SECONDS_PER_PARTITION * n_partitions
            + SECONDS_PER_REPLICA * n_replicas + SECONDS_PER_PARTITION_SECOND * n_partitions * total_s)
    return WorkEstimate(records, batches, events, memory, chunk, wall, worst)


def check_work(sc: Scenario, *, parallel: int = 1, memory: int | None = None,
               available: int | None = None) -> tuple[WorkEstimate, list[str]]:
    """Refuse a run that cannot fit in memory (:class:`WorkTooLarge`); warn about a very large one.

    `parallel` runs at once (a sweep's workers) share the memory. Returns the estimate and the
    warnings (one line each): :func:`estimate_work`, then :func:`work_warnings`.
    """
    est = estimate_work(sc)
    return est, work_warnings(est, parallel=parallel, memory=memory, available=available)


def work_warnings(est: WorkEstimate, *, parallel: int = 1, memory: int | None = None,
                  available: int | None = None) -> list[str]:
    """:func:`check_work` for an estimate already made: raises :class:`WorkTooLarge`, returns the warnings."""
    memory = physical_memory() if memory is None else memory
    available = available_memory() if available is None else available
    fix = ("fewer partitions or a lower replication.factor" if est.culprit.startswith("topics.") else
           "lower the producers' rate or instances, or the duration, or raise batch.size and linger.ms"
           if est.culprit != "duration" else "shorten duration, or lower the producers' rate")
    if memory and max(est.memory_bytes, est.arrival_chunk_bytes) > memory:
        raise WorkTooLarge(f"{est.culprit}: this run needs {est.describe()}, more than the {_bytes(memory)} of "
                           f"memory this machine has: {fix}")
    warnings_: list[str] = []
    if available and est.memory_bytes * parallel > WARN_MEMORY_SHARE * available:
        share = f"{parallel} runs at once need" if parallel > 1 else "this run needs"
        warnings_.append(f"{est.culprit}: {share} {_bytes(est.memory_bytes * parallel)} of memory of the "
                         f"{_bytes(available)} available now ({est.describe()} each)"
                         + ("; fewer --workers would need less" if parallel > 1 else ""))
    if est.wall_s > WARN_WALL_S:
        warnings_.append(f"{est.culprit}: a long run: {est.describe()} (rough estimate; {fix} for a quicker one)")
    return warnings_


def _count_isr(events, shrink: bool) -> int:
    """ISR shrinks (or expansions): changes whose new ISR size is below (above) the previous one."""
    isr = events[events["kind"] == "isr_change"].sort_values(["partition_index", "time_ms"], kind="stable")
    if isr.empty:
        return 0
    prev = isr.groupby("partition_index", sort=False)["value"].shift(1)
    size = isr["value"]
    changed = prev.notna() & ((size < prev) if shrink else (size > prev))
    return int(changed.sum())
