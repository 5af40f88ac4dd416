"""Every bundled scenario shows what its description claims, at its default seed and full length.

A user runs `kafkasim run scenarios/X.yaml` and reads the description next to the numbers: if the
description says acknowledged writes are lost, they must be. The hour-long soak is run for its
first 3 simulated minutes (one crash and its restart at the default seed) (its full length is the benchmark's job, `bench/bench.py`),
and the million-records-per-second benchmark for its first 42 s in the default run (its crash and restart
included; its full 60 s with `pytest -m slow`).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import sim

SCEN = Path(__file__).resolve().parent.parent / "scenarios"


def _run(name: str, **overrides):
    r = sim.run(SCEN / name, overrides=overrides or None)
    assert r.summary["invariant_violations"] == 0, r.summary["invariant_examples"]  # every rule, counted in full
    if r.scenario.consumers:
        assert r.summary["records_consumed"] > 0
    return r


def _kinds(r, kind):
    return r.events[r.events.kind == kind]


# The bundled scenarios a test in this file runs: every one outside scenarios/faults/ (a new one fails
# test_every_bundled_scenario_is_covered_here until it has its test and is named here), and the fault
# library's random soak. The other scenarios/faults/ ones are the fault tests' (tests/test_faults_*.py,
# one file per part of the fault library: test_every_fault_scenario_is_exercised_by_a_fault_test).
COVERED_HERE = {"quickstart.yaml", "leader-crash-acks1.yaml", "bench/steady.yaml", "bench/many-partitions.yaml",
                "bench/soak.yaml", "faults/soak-random.yaml"}


def _bundled_names() -> set[str]:
    """Every bundled scenario (scenarios/sweeps/ holds sweep files: tests/test_sweep.py runs them;
    scenarios/validation/ is the validation cases': tests/test_validation.py checks each is used;
    scenarios/real/ is the real-cluster calibration set: tests/test_real_setup.py simulates each)."""
    return {p.relative_to(SCEN).as_posix() for p in SCEN.rglob("*.yaml")
            if not {"sweeps", "validation", "real"} & set(p.parts)}


def test_every_bundled_scenario_is_covered_here():
    names = _bundled_names()
    assert {n for n in names if not n.startswith("faults/")} == {n for n in COVERED_HERE if not n.startswith("faults/")}
    assert COVERED_HERE <= names, sorted(COVERED_HERE - names)  # a scenario named here still exists
    # ... and a test of this file runs each one named here
    source = Path(__file__).read_text()
    assert not [n for n in COVERED_HERE if f'_run("{n}"' not in source]


def _referenced(stem: str, text: str) -> bool:
    """Whether `text` names the scenario `stem` as a whole: "gc-pause", "gc-pause.yaml" or ".../gc-pause.yaml"
    (not as a part of another name: power-loss is not power-loss-flushed)."""
    return re.search(rf'["/]{re.escape(stem)}(\.yaml)?"', text) is not None


def test_every_fault_scenario_is_exercised_by_a_fault_test():
    tests = "\n".join(p.read_text() for p in Path(__file__).parent.glob("test_faults_*.py"))
    missing = sorted(p.name for p in (SCEN / "faults").glob("*.yaml") if not _referenced(p.stem, tests))
    assert not missing, f"bundled fault scenarios no tests/test_faults_*.py runs: {missing}"


def test_quickstart_crashes_the_leader_at_20s_restarts_it_at_40s_and_loses_nothing():
    r = _run("quickstart.yaml")
    sc, s = r.scenario, r.summary
    assert sc.producers[0].acks == -1 and sc.producers[0].enable_idempotence
    assert sc.topics[0].replication_factor == 3 and sc.topics[0].min_insync_replicas == 2
    crash, restart = _kinds(r, "fault_start"), _kinds(r, "fault_end")
    assert crash.time_ms.tolist() == [20_000.0] and restart.time_ms.tolist() == [40_000.0]
    victim = int(crash.broker.iloc[0])
    first = _kinds(r, "leader_elected").query("time_ms == 0 and partition == 'events-0'")
    assert int(first.broker.iloc[0]) == victim  # it was the leader of events-0
    moved = _kinds(r, "leader_elected").query("time_ms > 20000 and partition == 'events-0'")
    assert len(moved) >= 1 and int(moved.broker.iloc[0]) != victim
    assert s["acked_lost"] == 0 and s["records_lost"] == 0 and s["duplicates"] == 0
    assert s["under_replicated_partitions_at_end"] == 0


def test_leader_crash_acks1_loses_the_acknowledged_tail_at_its_default_seed():
    r = _run("leader-crash-acks1.yaml")
    sc, s = r.scenario, r.summary
    assert sc.producers[0].acks == 1 and not sc.producers[0].enable_idempotence
    assert sc.producers[0].instances == 10 and sc.producers[0].rate == 20_000
    crash = _kinds(r, "fault_start")
    assert crash.time_ms.tolist() == [20_000.0]
    assert s["acked_lost"] > 0
    b = r.batches
    lost = b[(b.outcome == "acked") & (b.copies_in_log == 0)]
    # the tail: acknowledged just before the crash, on partitions the crashed broker led (events-0 among them)
    victim = int(crash.broker.iloc[0])
    led = set(_kinds(r, "leader_elected").query("time_ms == 0 and broker == @victim").partition)
    assert "events-0" in led and set(lost.partition) <= led
    assert lost.acked_ms.max() <= 20_000 + 5 and lost.last_arrival_ms.min() > 20_000 - 1_000
    assert s["truncations"] >= 1


@pytest.mark.heavy
def test_bench_steady_one_leader_crash_and_restart_at_a_million_records_per_second():
    """Its first 42 simulated seconds in the default run (crash at 20 s, restart at 40 s); all 60 below."""
    _bench_steady(duration="42s")


@pytest.mark.slow
def test_bench_steady_one_leader_crash_and_restart_at_a_million_records_per_second_full_length():
    _bench_steady()


def _bench_steady(**overrides):
    r = _run("bench/steady.yaml", **overrides)
    s = r.summary
    assert len(_kinds(r, "fault_start")) == 1 and len(_kinds(r, "fault_end")) == 1
    assert s["records_produced"] / (r.scenario.duration / 1000) == pytest.approx(1_000_000, rel=0.01)
    assert s["acked_lost"] == 0 and s["records_acked"] > 0.98 * s["records_produced"]


def test_bench_many_partitions_fails_over_about_2000_leaders_in_one_kraft_batch():
    r = _run("bench/many-partitions.yaml")
    elected = _kinds(r, "leader_elected").query("time_ms > 0 and time_ms < 30000").sort_values("time_ms")
    assert 1_800 <= len(elected) <= 2_200  # broker 0 of 5 leads a fifth of 10,000 partitions
    # KRaft (the default controller.mode): the fenced broker's elections are one controller batch
    assert elected.time_ms.max() - elected.time_ms.min() == pytest.approx(0.0)
    assert r.summary["acked_lost"] == 0


def test_bench_soak_crashes_random_brokers_about_every_5_minutes_for_60s():
    r = _run("bench/soak.yaml", duration="3m")
    crash, restart = _kinds(r, "fault_start"), _kinds(r, "fault_end")
    assert len(crash) >= 1 and (restart.detail == "random downtime over").sum() >= 1
    for t, b in zip(restart.time_ms, restart.broker):
        if t < r.scenario.duration:  # a crash near the end is healed early, at `duration`
            assert ((crash.broker == b) & ((crash.time_ms - (t - 60_000)).abs() < 1)).any()
    assert r.summary["acked_lost"] == 0 and r.summary["under_replicated_partitions_at_end"] == 0


def test_faults_soak_random_crashes_each_broker_on_its_own_schedule_and_loses_nothing():
    r = _run("faults/soak-random.yaml", duration="7m")  # its first two crashes at the default seed
    crash, restart = _kinds(r, "fault_start"), _kinds(r, "fault_end")
    assert len(crash) >= 2 and len(restart) == len(crash)
    assert set(crash.target) == {f"broker {b}" for b in crash.broker}  # one process per broker
    assert (restart.reason == "random repair over").all()
    assert r.summary["acked_lost"] == 0 and r.summary["under_replicated_partitions_at_end"] == 0
