"""Request timeouts that cost one SimPy event per expiry wave, not one per request.

Requests of one kind from one endpoint share a timeout, so their deadlines arrive in send order;
a deque plus a single pending wake-up replaces a timer event per request (Kafka's NetworkClient
likewise scans in-flight requests for expiry on each poll).
"""

from __future__ import annotations

import math
from collections import deque
from typing import Callable

import simpy

__all__ = ["TimeoutQueue", "exponential_backoff"]


def exponential_backoff(initial: float, maximum: float, attempts: int, multiplier: float = 2.0) -> float:
    """`initial * multiplier ** attempts`, capped at `maximum`, without jitter (Kafka's ExponentialBackoff).

    Kafka caps the exponent (`Math.min(attempts, expMax)`), so the value never overflows however
    many attempts failed; a plain ``initial * 2 ** attempts`` raises OverflowError past ~1024
    attempts (a 10 ms reconnect backoff against a broker down for 12 s gets there). The exponent
    is capped at the first integer whose term reaches `maximum`, so every value is exactly
    ``min(initial * multiplier ** attempts, maximum)``.
    """
    if maximum <= initial or attempts <= 0:
        return min(initial, maximum)
    cap = math.ceil(math.log(maximum / max(initial, 1e-9)) / math.log(multiplier))
    return min(initial * multiplier ** min(attempts, cap), maximum)


class TimeoutQueue:
    """Deadlines of in-flight requests sharing one timeout; calls `on_timeout(key)` for expired ones."""

    def __init__(self, env: simpy.Environment, timeout_ms: float, on_timeout: Callable[[object], None]):
        self.env = env
        self.timeout_ms = timeout_ms
        self.on_timeout = on_timeout
        self._queue: deque = deque()
        self._live: set = set()  # keys still waiting (requests hash by identity)
        self._scheduled = False
        self._generation = 0

    def add(self, key: object) -> None:
        """Start the clock for `key` (an in-flight request)."""
        self._queue.append((self.env.now + self.timeout_ms, key))
        self._live.add(key)
        if not self._scheduled:
            self._schedule(self.timeout_ms)

    def done(self, key: object) -> bool:
        """Stop the clock for `key`; False if it already expired (or was never added)."""
        try:
            self._live.remove(key)
        except KeyError:
            return False
        # Responses mostly come back in send order: drop finished requests from the front now,
        # so the queue (and the requests it keeps alive) stays short.
        q, live = self._queue, self._live
        while q and q[0][1] not in live:
            q.popleft()
        return True

    def clear(self) -> None:
        """Forget everything (the owner crashed); pending wake-ups become no-ops."""
        self._queue.clear()
        self._live.clear()
        self._generation += 1
        self._scheduled = False

    def _schedule(self, delay: float) -> None:
        self._scheduled = True
        gen = self._generation
        self.env.timeout(max(delay, 0.0)).callbacks.append(lambda _ev: self._fire(gen))

    def _fire(self, generation: int) -> None:
        if generation != self._generation:
            return
        # The wake-up stays pending while requests expire: one that `on_timeout` sends at once (a
        # retry) queues behind the head and is covered by the single wake-up scheduled below. (Were
        # `add` to schedule its own, every retry would start another chain of wake-ups for good.)
        now = self.env.now
        q, live = self._queue, self._live
        while q and (q[0][0] <= now or q[0][1] not in live):
            deadline, key = q.popleft()
            if key in live:
                live.remove(key)
                self.on_timeout(key)
        if generation != self._generation:
            return  # cleared meanwhile: whatever was added since has its own wake-up
        self._scheduled = False
        if q:
            self._schedule(q[0][0] - now)
