"""Client-side metadata: which broker leads each partition, refreshed on demand.

Producers and consumers ask a broker (rotating through the bootstrap list) for leaders, at most
once per retry.backoff.ms, and never accept an older leader epoch than they know (KIP-320).
"""

from __future__ import annotations

from typing import Callable

import simpy

from sim.model import messages as m
from sim.model.timeouts import TimeoutQueue

__all__ = ["MetadataClient", "TIME_EPS"]

# Wake-ups land at `now + (at - now)`, which float rounding can put a hair before `at`.
TIME_EPS = 1e-6


class MetadataClient:
    """The leader cache of one client endpoint (Metadata + NetworkClient's metadata updater)."""

    def __init__(self, env: simpy.Environment, owner, network, brokers: list, partitions: list[int],
                 first_broker: int, backoff_ms: float, timeout_ms: float, on_update: Callable[[], None]):
        self.env = env
        self.owner = owner
        self.network = network
        self.brokers = brokers
        self.partitions = partitions
        self.backoff_ms = backoff_ms
        self.on_update = on_update
        self.leaders: dict[int, tuple[int, int]] = {}  # partition -> (leader or -1, leader epoch)
        self._broker = first_broker
        self._in_flight: m.MetadataRequest | None = None
        self._last_ms = -1e18
        self._wake_pending = False
        self._ids = 0
        self.timeouts = TimeoutQueue(env, timeout_ms, self._timed_out)

    def leader(self, p: int) -> int:
        return self.leaders.get(p, (-1, -1))[0]

    def request(self, force: bool = False) -> None:
        """Ask for fresh metadata now, or once the backoff since the last request has passed."""
        now = self.env.now
        if self._in_flight is not None:
            return
        if not force and now < self._last_ms + self.backoff_ms - TIME_EPS:
            self._wake(self._last_ms + self.backoff_ms)
            return
        self._last_ms = now
        self._broker = (self._broker + 1) % len(self.brokers)
        self._ids += 1
        req = m.MetadataRequest(self.owner, self._ids)
        self._in_flight = req
        self.timeouts.add(req)
        self.network.send(self.owner, self.brokers[self._broker], req)

    def _wake(self, at: float) -> None:
        if self._wake_pending:
            return
        self._wake_pending = True

        self.owner.schedule(max(at - self.env.now, 0.0), self._woken)

    def _woken(self) -> None:
        self._wake_pending = False
        self.request()

    def _timed_out(self, req) -> None:
        if self._in_flight is req:
            self._in_flight = None
            self.request(force=True)

    def connection_lost(self, broker: int) -> None:
        """The broker we asked went away: ask the next one."""
        if self._in_flight is not None and self._broker == broker:
            self.timeouts.done(self._in_flight)
            self._in_flight = None
            self.request(force=True)

    def reset(self) -> None:
        """The owner crashed: the leader cache and the request in flight were memory."""
        self.timeouts.clear()
        self.leaders.clear()
        self._in_flight = None
        self._last_ms = -1e18
        self._wake_pending = False  # its wake-up died with the owner's incarnation

    def on_response(self, resp: m.MetadataResponse) -> None:
        req = self._in_flight
        if req is None or resp.request_id != req.request_id:
            return
        self.timeouts.done(req)
        self._in_flight = None
        incomplete = False
        for p in self.partitions:
            new = resp.leaders.get(p)
            if new is None:
                incomplete = True
                continue
            old = self.leaders.get(p)
            if old is None or new[1] >= old[1]:
                self.leaders[p] = new
            if new[0] < 0:
                incomplete = True
        if incomplete:
            self.request()
        self.on_update()
