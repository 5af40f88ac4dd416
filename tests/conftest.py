"""Shared fixtures: tiny hand-driven clusters with constant 1 ms links and a fake client."""

from __future__ import annotations

import itertools
import os
import sys

import pytest
import simpy

from sim.model import messages as m
from sim.model.cluster import Cluster
from sim.model.producer import ProducerBatch
from sim.model.recorder import Recorder
from sim.model.rng import RandomStreams
from sim.scenario.schema import Scenario


def pytest_addoption(parser):
    parser.addoption("--slow", action="store_true", help="many more property-based examples (hypothesis)")


def pytest_configure(config):
    if config.getoption("--slow"):
        os.environ["KAFKASIM_SLOW"] = "1"
    # Bytecode caches on, even where PYTHONDONTWRITEBYTECODE=1 is set (this machine's shells set it): else
    # every xdist worker, and every process a test starts (CLI runs, sweep pools, the notebook's kernel),
    # compiles kafkasim and rewrites the test modules from source again. One collection measured 12.9 s of
    # CPU without the caches, 5.7 s with them. The workers start after this and inherit the environment.
    sys.dont_write_bytecode = False
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)


def pytest_collection_modifyitems(config, items):
    """Tests marked `heavy` (tens of seconds each) first, the rest in their order: xdist hands tests out
    in collection order, and a long test handed out last keeps one worker busy after the other is done."""
    items.sort(key=lambda item: item.get_closest_marker("heavy") is None)


def tiny_scenario(**over) -> Scenario:
    """3 brokers, one topic with one RF-3 partition, constant 1 ms links, no clients, no faults."""
    data = {
        "name": "tiny",
        "duration": "600s",
        "cluster": {"brokers": 3},
        "network": {"latency": {"dist": "constant", "value": "1ms"}},
        "topics": [{"name": "t", "partitions": 1, "replication.factor": 3, "min.insync.replicas": 2}],
    }
    for key, value in over.items():
        node = data
        *path, last = key.split("/")
        for p in path:
            node = node[int(p)] if isinstance(node, list) else node[p]
        node[last] = value
    return Scenario.resolve(data)


class FakeClient:
    """An endpoint that sends raw requests and keeps every response with its arrival time."""

    def __init__(self, env):
        self.env = env
        self.endpoint_id = "fake-client"
        self.alive = True
        self.host_up = True
        self.incarnation = 1
        self.responses: list[tuple[float, object]] = []
        self.resets: list[tuple[float, object]] = []
        self._ids = itertools.count(1)
        self._batch_ids = itertools.count(10_000)

    def handle(self, msg):
        self.responses.append((self.env.now, msg))

    def connection_lost(self, peer):
        self.resets.append((self.env.now, peer))

    def batch(self, partition=0, count=10, pid=-1, seq=0, batch_id=None):
        bid = next(self._batch_ids) if batch_id is None else batch_id
        return ProducerBatch(bid, partition, count, 0, self.env.now, self.env.now, self.env.now, pid, seq, 100 * count)

    def produce(self, network, broker, batches, acks=-1, timeout_ms=30_000.0):
        req = m.ProduceRequest(self, next(self._ids), acks, timeout_ms, list(batches))
        network.send(self, broker, req, 0)
        return req

    def results(self):
        """(arrival time, batch id, error, offset) of every produce result received."""
        out = []
        for t, msg in self.responses:
            if isinstance(msg, m.ProduceResponse):
                out.extend((t, b.batch_id, err, off) for b, err, off in msg.results)
        return out


class Tiny:
    """A started cluster plus a fake client, driven step by step by a test."""

    def __init__(self, scenario: Scenario, seed: int = 0):
        self.env = simpy.Environment()
        self.recorder = Recorder(scenario.partition_names())
        self.cluster = Cluster(self.env, scenario, RandomStreams(seed), self.recorder)
        self.client = FakeClient(self.env)
        self.cluster.network.attach(self.client)
        self.cluster.start()

    @property
    def brokers(self):
        return self.cluster.brokers

    def leader(self, p=0) -> int:
        return self.cluster.controller.state[p].leader

    def run(self, until_ms: float):
        self.env.run(until=until_ms)

    def events(self, kind=None):
        ev = self.recorder.arrays("events")
        rows = list(zip(ev["time_ms"].tolist(), ev["kind"].tolist(), ev["broker"].tolist(),
                        ev["partition"].tolist(), ev["value"].tolist(), ev["detail"].tolist()))
        return [r for r in rows if kind is None or r[1] == kind]

    def appended(self):
        a = self.recorder.arrays("appended")
        return list(zip(a["time_ms"].tolist(), a["broker"].tolist(), a["offset"].tolist(), a["batch_id"].tolist()))

    def hw_advances(self):
        h = self.recorder.arrays("hw_advanced")
        return list(zip(h["time_ms"].tolist(), h["broker"].tolist(), h["hw"].tolist()))

    def stall_fetcher(self, follower: int):
        """Make a follower stop fetching while its process (and heartbeats) stay alive."""
        b = self.brokers[follower]
        for f in b.fetchers.values():
            f.in_flight = None  # any response to the outstanding fetch is ignored
            f.backing_off = True  # and no new fetch is sent

    def resume_fetcher(self, follower: int):
        b = self.brokers[follower]
        for f in b.fetchers.values():
            f.backing_off = False
            f.maybe_fetch()


@pytest.fixture
def tiny():
    return Tiny(tiny_scenario())


def attach_endpoints(env, net, n: int) -> list:
    """`n` fake clients named ep-0.. attached to `net` (for hand-driven network tests)."""
    eps = []
    for i in range(n):
        ep = FakeClient(env)
        ep.endpoint_id = f"ep-{i}"
        net.attach(ep)
        eps.append(ep)
    return eps


def skip_unless_required(reason: str, env_var: str) -> None:
    """Skip a test whose tools are missing, or fail it where CI sets `env_var`=1 (.ci/run installs them)."""
    if os.environ.get(env_var) == "1":
        pytest.fail(f"{reason} ({env_var}=1)")
    pytest.skip(reason)
