"""Smoke test of the real-cluster harness (issue 20): a real Kafka 4.0.1 cluster on this machine.

Starts one KRaft controller and three brokers, produces for a few seconds under acks=1 with
VerifiableProducer, SIGKILLs the leader and restarts it, reads the logs back, and checks that the
parsed results went through the checker and the comparison with the simulator, and that no JVM of
the run survives (also when the run fails midway). Without Java or the fetched jars
(`kafkasim real setup`) it skips; KAFKASIM_REQUIRE_REAL=1 (set by .ci/run) makes that a failure.
"""

from __future__ import annotations

import shutil

import pytest

from sim.real.kafka import is_ready
from sim.real.processes import alive, wait_for
from sim.real.run import real_scenario, run_real
from sim.real.versus import METRICS, compare
from sim.runs.runner import run as sim_run
from sim.scenario.schema import Scenario
from tests.conftest import skip_unless_required

SCENARIO = {
    "name": "real-smoke", "duration": "14s", "settle": "10s",
    "cluster": {"brokers": 3, "kafka.version": "4.0", "broker.session.timeout.ms": 4000,
                "broker.heartbeat.interval.ms": 1000},
    "topics": [{"name": "events", "partitions": 1, "replication.factor": 3, "min.insync.replicas": 2}],
    "producers": [{"topic": "events", "rate": "500/s", "arrival": "constant", "record.size": "10B", "acks": 1}],
    "faults": [{"kind": "crash", "leader_of": "events-0", "at": "3s", "restart_after": "8s"}],
}


@pytest.fixture(scope="module", autouse=True)
def _need_kafka():
    missing = [t for t in ("java",) if shutil.which(t) is None]
    if not is_ready():
        missing.append("the Kafka jars (run `kafkasim real setup`)")
    if missing:
        skip_unless_required(f"real-cluster smoke test needs {', '.join(missing)}", "KAFKASIM_REQUIRE_REAL")


@pytest.mark.heavy
def test_leader_sigkill_on_a_real_cluster_goes_through_checker_and_comparison():
    sc, notes = real_scenario(Scenario.resolve(SCENARIO))
    assert notes == []
    held = []
    result = run_real(sc, 0, after_start=held.append)
    pids = held[0].pids  # every process the run started, clients and restarted brokers included
    s = result.summary
    # the cluster started, the producer ran, the logs were read back and classified
    assert s.extra["source"] == "real" and s.extra["kafka_version"] == "4.0.1"
    assert s.records_produced == 7000
    assert s.records_acked > 0.8 * s.records_produced
    assert s.records_acked + s.records_failed + s.records_unknown == s.records_produced
    assert len(result.batches) == s.records_produced
    assert (result.batches["copies_in_log"] > 0).sum() >= s.records_acked - s.acked_lost
    # the leader was SIGKILLed and another broker took over (seen by the metadata poller)
    (fault,) = s.extra["faults_real"]
    assert fault["kind"] == "crash" and fault["end_ms"] - fault["start_ms"] == pytest.approx(8000, abs=500)
    (fo,) = s.failovers
    assert fo["new_leader"] not in (-1, fault["broker"])
    assert 1000 < fo["election_ms"] < 8000  # broker.session.timeout.ms 4 s, give or take a heartbeat
    assert fo["unavailable_ms"] is not None and fo["unavailable_ms"] >= fo["election_ms"]
    # ... and the comparison with the simulator takes it
    table = compare([sim_run(sc, 0).summary], [s])
    assert list(table["metric"]) == [m.label for m in METRICS]
    assert set(table["verdict"]) <= {"agree", "DISAGREE", "n/a"}
    assert table.loc[table["metric"] == "failover_ms", "real"].iloc[0] != "-"
    # nothing of the run is left running
    assert len(pids) >= 13  # 4 storage formats, controller, 3 brokers, topic, poller, producer, restart, dump
    assert wait_for(lambda: not any(alive(p) for p in pids), 30)


def test_an_error_midway_leaves_no_jvm_running():
    sc, _ = real_scenario(Scenario.resolve(SCENARIO))
    pids: list[int] = []

    def boom(procs):
        pids.extend(procs.pids)
        assert any(alive(p) for p in pids)  # the brokers are up
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        run_real(sc, 0, after_start=boom)
    assert pids and wait_for(lambda: not any(alive(p) for p in pids), 30)
