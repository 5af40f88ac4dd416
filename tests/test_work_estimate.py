"""The pre-run estimate (sim.runs.runner.estimate_work) counts partitions and replicas, not only records.

A 100,000-partition scenario was estimated at 201.5 MiB and took 2.6 GB, so the memory guard never
fired. The estimate is checked here against a measured run (peak RSS of a fresh interpreter).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import sim
from sim.runs.runner import WorkTooLarge, check_work, estimate_work

MEASURE = r"""
import json, resource, sys
import sim
from sim.runs.runner import estimate_work
data = json.loads(sys.argv[1])
sc = sim.load_scenario(data)
est = estimate_work(sc)
sim.run(sc, seed=1)
print(json.dumps({"peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "est": est.memory_bytes}))
"""


def shape(partitions: int, rf: int = 3, topics: int = 1, duration: str = "5s") -> dict:
    return {"name": "est", "duration": duration, "settle": "2s", "cluster": {"brokers": 3},
            "network": {"latency": {"dist": "constant", "value": "0.5ms"}},
            "topics": [{"name": f"t{i}", "partitions": partitions, "replication.factor": rf,
                        "min.insync.replicas": 1} for i in range(topics)],
            "producers": [{"topic": "t0", "rate": "1000/s", "acks": 1, "enable.idempotence": False}]}


def test_estimate_grows_with_partitions_and_replicas():
    small, many, replicated = (estimate_work(sim.load_scenario(shape(p, rf))) for p, rf in
                               ((1, 3), (100_000, 1), (100_000, 3)))
    assert small.memory_bytes < 300 * 2**20
    assert many.memory_bytes > 1.0 * 2**30  # measured: 1.25 GiB peak for 100,000 partitions, RF 1
    assert replicated.memory_bytes > many.memory_bytes
    assert many.wall_s > 10 * small.wall_s and many.culprit == "topics.0.partitions"


def test_the_memory_guard_fires_for_too_many_partitions():
    sc = sim.load_scenario(shape(100_000, topics=5))
    with pytest.raises(WorkTooLarge, match=r"^topics\.\d\.partitions: this run needs about .* fewer partitions"):
        check_work(sc, memory=4 * 2**30, available=4 * 2**30)


@pytest.mark.slow  # a measurement: peak RSS of a fresh interpreter varied under the loaded full suite (-m slow)
def test_estimate_is_within_a_factor_of_two_of_a_measured_run():
    data = shape(5_000)
    out = subprocess.run([sys.executable, "-c", MEASURE, json.dumps(data)], capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert 0.5 <= got["est"] / got["peak"] <= 2.0, got
