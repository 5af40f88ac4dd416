"""A KafkaConsumer in a consumer group: fetches its partitions from their leaders up to the HW.

One fetch request per leader broker covering the assigned partitions it leads, long-polled up to
fetch.max.wait.ms; leader changes are followed through metadata refreshes; positions are
committed every auto.commit.interval.ms when enable.auto.commit is on. The group protocol
(rebalances, session timeouts) is not modelled: partitions are assigned once, range-style.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import simpy

from . import messages as m
from .metadata import TIME_EPS, MetadataClient
from .timeouts import TimeoutQueue

if TYPE_CHECKING:
    from ..recorder import Recorder
    from ..scenario import ConsumerConfig
    from .network import Network

__all__ = ["Consumer"]


class Consumer:
    """One consumer instance of a group."""

    base_name = "consumer"

    def __init__(self, env: simpy.Environment, index: int, name: str, config: "ConsumerConfig",
                 partitions: list[int], brokers: list, network: "Network", recorder: "Recorder",
                 rng: np.random.Generator, parent_scope: str = "cluster"):
        self.env = env
        self.index = index
        self.name = name
        self.config = config
        self.partitions = partitions  # assigned partitions (global indices)
        self.brokers = brokers
        self.network = network
        self.recorder = recorder
        self.rng = rng
        self.scope = f"{parent_scope}.{name}"
        self.endpoint_id = self.scope
        self.alive = True
        self.host_up = True
        self.incarnation = 1
        self.positions = dict.fromkeys(partitions, 0)
        self.in_flight: dict[int, m.FetchRequest] = {}  # broker id -> fetch
        self.backoff_until = [0.0] * len(brokers)
        self.request_ids = 0
        self.metadata = MetadataClient(env, self, network, brokers, partitions, int(rng.integers(len(brokers))),
                                       config.retry_backoff_ms, config.request_timeout_ms, self.fetch_all)
        self.timeouts = TimeoutQueue(env, config.request_timeout_ms + config.fetch_max_wait_ms, self._timed_out)
        self.processes: list[simpy.Process] = []

    def start(self) -> None:
        if self.partitions:
            self.metadata.request()
            if self.config.enable_auto_commit:
                self.processes.append(self.env.process(self.commit_offsets()))

    def fetch_all(self) -> None:
        for broker in range(len(self.brokers)):
            self.maybe_fetch(broker)

    def maybe_fetch(self, broker: int) -> None:
        """Send a fetch to `broker` for the assigned partitions it leads, unless one is in flight."""
        if not self.alive or broker in self.in_flight or self.env.now + TIME_EPS < self.backoff_until[broker]:
            return
        parts = []
        for p in self.partitions:
            leader, epoch = self.metadata.leaders.get(p, (-1, -1))
            if leader == broker:
                parts.append(m.PartitionFetch(p, self.positions[p], -1, epoch))
        if not parts:
            return
        self.request_ids += 1
        cfg = self.config
        req = m.FetchRequest(self, self.request_ids, -1, cfg.fetch_max_wait_ms, cfg.fetch_max_bytes,
                             cfg.max_partition_fetch_bytes, parts)
        self.in_flight[broker] = req
        self.timeouts.add(req)
        self.network.send(self, self.brokers[broker], req, 32 * len(parts))

    def handle(self, msg) -> None:
        t = type(msg)
        if t is m.FetchResponse:
            self.on_fetch_response(msg)
        elif t is m.MetadataResponse:
            self.metadata.on_response(msg)

    def on_fetch_response(self, resp: m.FetchResponse) -> None:
        req = self.in_flight.get(resp.broker)
        if req is None or req.request_id != resp.request_id:
            return
        del self.in_flight[resp.broker]
        self.timeouts.done(req)
        now = self.env.now
        refresh = False
        rec = self.recorder
        for pd in resp.partitions:
            p = pd.partition
            if pd.error == m.OFFSET_OUT_OF_RANGE:
                # auto.offset.reset: the log was truncated below our position (e.g. unclean election).
                new = 0 if self.config.auto_offset_reset == "earliest" else pd.high_watermark
                rec.event(now, "consumer_offset_reset", resp.broker, p, new, f"{self.name} from {self.positions[p]}")
                self.positions[p] = new
                continue
            if pd.error != m.NONE:
                refresh = True
                continue
            if not pd.base:
                continue
            pos = self.positions[p]
            bases, counts = pd.base, pd.count
            i = 0
            while i < len(bases) and bases[i] + counts[i] <= pos:
                i += 1  # already consumed (the fetch overlapped our position): a prefix
            if i < len(bases):
                rec.consumed_many(now, self.index, p, bases[i:], pd.batch_id[i:])
            self.positions[p] = max(pos, bases[-1] + counts[-1])
        if refresh:
            self.metadata.request()
        self.maybe_fetch(resp.broker)

    def _timed_out(self, req: m.FetchRequest) -> None:
        for broker, r in list(self.in_flight.items()):
            if r is req:
                del self.in_flight[broker]
                self._back_off(broker)

    def connection_lost(self, peer) -> None:
        broker = getattr(peer, "broker_id", None)
        if broker is None:
            return
        self.metadata.connection_lost(broker)
        req = self.in_flight.pop(broker, None)
        if req is not None:
            self.timeouts.done(req)
            self._back_off(broker)

    def _back_off(self, broker: int) -> None:
        self.backoff_until[broker] = self.env.now + self.config.retry_backoff_ms
        self.metadata.request()
        self.env.timeout(self.config.retry_backoff_ms).callbacks.append(lambda _ev: self.maybe_fetch(broker))

    def commit_offsets(self):
        """Auto-commit the consumed positions every auto.commit.interval.ms."""
        try:
            while True:
                yield self.env.timeout(self.config.auto_commit_interval_ms)
                # the committed offsets are the positions at this moment
                self.recorder.event(self.env.now, "offset_commit", -1, -1, sum(self.positions.values()), self.name)
        except simpy.Interrupt:
            return

    def finish(self) -> None:
        for proc in self.processes:
            if proc.is_alive:
                proc.interrupt("end")
