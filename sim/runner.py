"""Run one scenario: build the cluster, simulate, heal, settle, then measure from the facts.

Timeline: producers produce for `duration`; at `duration` every crashed broker is restarted
(faults heal) and producers stop creating records; the run continues for `settle` so that
replication, retries and consumers converge; then clients stop and the final logs are
snapshotted for the checker.
"""

from __future__ import annotations

import gc
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import simpy

from . import __version__
from .checker import batches_table, check
from .invariants import check_invariants
from .metrics import e2e_latency, events_table, failovers, produce_latency, timeseries, under_replicated_at_end
from .model.cluster import Cluster, partition_names
from .recorder import Recorder
from .results import Results
from .rng import RandomStreams
from .scenario import Scenario, ScenarioLike

__all__ = ["run", "simulate"]

ProgressFn = Callable[[float, float], None]


def _as_scenario(scenario: ScenarioLike, overrides: Any = None) -> Scenario:
    if isinstance(scenario, Scenario):
        if overrides:
            return Scenario.resolve(scenario.model_dump(mode="json", by_alias=True), overrides)
        return scenario
    return Scenario.resolve(scenario if isinstance(scenario, (dict, Path)) else Path(scenario), overrides)


def simulate(scenario: Scenario, seed: int, progress: ProgressFn | None = None,
             prepare: Callable[[Cluster], None] | None = None) -> tuple[Cluster, Recorder, int]:
    """Run the model; returns the cluster, the filled recorder and the SimPy events processed.

    `prepare(cluster)` runs once the cluster is built, before it starts: a hook for tests and
    studies that reach into the model (e.g. `cluster.network.set_loss_all(0.01)`).
    """
    env = simpy.Environment()
    streams = RandomStreams(seed)
    recorder = Recorder(partition_names(scenario))
    cluster = Cluster(env, scenario, streams, recorder)
    if prepare is not None:
        prepare(cluster)
    recorder.producer_names = [p.name for p in cluster.producers]
    recorder.consumer_names = [c.name for c in cluster.consumers]
    cluster.start()
    # The model keeps many long-lived objects (batches, logs, fact columns) and makes almost no
    # reference cycles, so CPython's cyclic GC would mostly rescan the live heap over and over:
    # switch it off while simulating and collect the young generations between progress steps.
    gc_enabled = gc.isenabled()
    gc.disable()
    try:
        events_processed = _advance(env, cluster, scenario, progress)
    finally:
        if gc_enabled:
            gc.enable()
    return cluster, recorder, events_processed


def _advance(env: simpy.Environment, cluster: Cluster, scenario: Scenario, progress: ProgressFn | None) -> int:
    """Run to the end of the settle period, healing faults at `duration`."""
    end = scenario.duration + scenario.settle
    step = max(1000.0, end / 200)
    t = 0.0
    healed = False
    while t < end:
        t = min(t + step, end)
        if not healed and t >= scenario.duration:
            if scenario.duration > env.now:
                env.run(until=scenario.duration)
            cluster.faults.heal()
            healed = True
        if t > env.now:
            env.run(until=t)
        gc.collect(1)
        if progress is not None:
            progress(env.now, end)
    cluster.finish()
    return next(env._eid) - len(env._queue)


def run(scenario: ScenarioLike, seed: int | None = None, *, overrides: Any = None,
        progress: ProgressFn | None = None, prepare: Callable[[Cluster], None] | None = None) -> Results:
    """Simulate `scenario` with `seed` (default: the scenario's) and measure the outcome."""
    sc = _as_scenario(scenario, overrides)
    seed = sc.seed if seed is None else int(seed)
    sc = sc.model_copy(update={"seed": seed})
    caught = scenario_warnings(sc)
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
        summary, batches, events, ts = _measure(sc, seed, recorder, n_events, wall, replication, offline_end, caught)
    finally:
        if gc_enabled:
            gc.enable()
    return Results(sc, seed, summary, batches, events, ts, caught)


def _measure(sc: Scenario, seed: int, recorder: Recorder, n_events: int, wall: float,
             replication: dict[int, int], offline_end: int, caught: list[str]):
    """Checker and metrics over the recorded facts."""
    batches = batches_table(recorder)
    events = events_table(recorder)
    counts = check(recorder, batches)
    acks_zero = bool(sc.producers) and all(p.acks == 0 for p in sc.producers)
    fo = failovers(recorder, events, batches, acks_zero)
    ts = timeseries(batches, events, replication, sc.duration + sc.settle)
    elect = [f["election_ms"] for f in fo if f["election_ms"] is not None]
    unavail = [f["unavailable_ms"] for f in fo if f["unavailable_ms"] is not None]
    summary = {
        "scenario": sc.name,
        "seed": seed,
        "version": __version__,
        "sim_duration_ms": float(sc.duration + sc.settle),
        "produce_duration_ms": float(sc.duration),
        "wall_time_s": round(wall, 4),
        "sim_events": int(n_events),
        # requests and responses on the wire by type: the round trips a configuration costs
        "messages_sent": dict(recorder.messages_sent),
        "messages_dropped": dict(recorder.messages_dropped),  # lost on lossy links (network.set_loss)
        **{k: v for k, v in counts.items() if k != "records_produced"},
        "batches": int(len(batches)),
        "throughput_rps": counts["records_acked"] / (sc.duration / 1000.0),
        "produce_latency_ms": produce_latency(batches),
        "e2e_latency_ms": e2e_latency(batches),
        "failovers": fo,
        "failover_ms": {"p50": float(np.median(elect)) if elect else None, "max": max(elect) if elect else None},
        "unavailable_ms": {"p50": float(np.median(unavail)) if unavail else None,
                           "max": max(unavail) if unavail else None},
        "unclean_elections": int((events["kind"] == "unclean_election").sum()),
        "leader_elections": int(((events["kind"] == "leader_elected") & (events["time_ms"] > 0)).sum()),
        "isr_shrinks": int(_count_isr(events, shrink=True)),
        "isr_expands": int(_count_isr(events, shrink=False)),
        "truncations": int((events["kind"] == "truncation").sum()),
        "offline_partitions_at_end": int(offline_end),
        "under_replicated_partitions_at_end": under_replicated_at_end(events, replication),
        "warnings": caught,
    }
    violations = check_invariants(recorder)
    summary["invariant_violations"] = len(violations)
    summary["invariant_examples"] = violations[:5]
    return summary, batches, events, ts


def scenario_warnings(sc: Scenario) -> list[str]:
    """Settings a Kafka user should hear about even though the run goes ahead."""
    out = []
    for i, p in enumerate(sc.producers):
        if p.acks >= 2:
            out.append(f"producers.{i}.acks={p.acks} is the Kafka 0.8 legacy form (any {p.acks} ISR replicas "
                       "incl. the leader); modern Kafka rejects it with INVALID_REQUIRED_ACKS")
    return out


def _count_isr(events, shrink: bool) -> int:
    """ISR shrinks (or expansions): changes whose new ISR size is below (above) the previous one."""
    isr = events[events["kind"] == "isr_change"].sort_values(["partition_index", "time_ms"], kind="stable")
    if isr.empty:
        return 0
    prev = isr.groupby("partition_index", sort=False)["value"].shift(1)
    size = isr["value"]
    changed = prev.notna() & ((size < prev) if shrink else (size > prev))
    return int(changed.sum())
