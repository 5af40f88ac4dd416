"""Links between endpoints: sampled latency, optional bandwidth, drops and connection resets.

Every message between brokers, the controller and clients crosses the network as one SimPy
event with a callback (the cheapest event SimPy has). Each link is FIFO, like the TCP
connection Kafka uses, so a later message never overtakes an earlier one. A message to an endpoint that is down is
dropped. A *process* crash leaves the host's TCP stack up, so peers see a connection reset one
latency later (RST), as a SIGKILLed broker behaves; anything else a sender learns by timeout.
"""

from __future__ import annotations

from functools import partial
from typing import Protocol

import simpy

from .distributions import Distribution

__all__ = ["Network", "Endpoint"]


class Endpoint(Protocol):
    """What the network needs of a broker, controller or client."""

    endpoint_id: str
    alive: bool
    host_up: bool
    incarnation: int

    def handle(self, msg: object) -> None: ...

    def connection_lost(self, peer: "Endpoint") -> None: ...


class Network:
    """Delivers messages between endpoints after a sampled one-way latency."""

    def __init__(self, env: simpy.Environment, latency: Distribution, bandwidth_bps: float | None = None):
        self.env = env
        self.latency = latency
        self.ms_per_byte = 1000.0 / bandwidth_bps if bandwidth_bps else 0.0
        self.endpoints: list[Endpoint] = []
        self._link_clock: dict[tuple, float] = {}  # (src, dst) -> arrival of the last message
        self.sent: dict[type, int] = {}  # messages put on the wire, by message type

    def attach(self, endpoint: Endpoint) -> None:
        self.endpoints.append(endpoint)

    def send(self, src: Endpoint, dst: Endpoint, msg: object, nbytes: int = 0) -> None:
        """Send `msg` from `src` to `dst`; a dead sender sends nothing."""
        if not src.alive:
            return
        env = self.env
        now = env.now
        sent = self.sent
        kind = type(msg)
        sent[kind] = sent.get(kind, 0) + 1
        arrive = now + self.latency.sample() + nbytes * self.ms_per_byte
        # A connection is a TCP stream: messages on one link arrive in the order they were sent.
        link = (src, dst)  # endpoints hash by identity
        clocks = self._link_clock
        last = clocks.get(link, 0.0)
        if arrive < last:
            arrive = last
        clocks[link] = arrive
        # partial, not a lambda: SimPy calls it straight from C, one Python frame fewer per message
        env.timeout(arrive - now).callbacks.append(partial(self._deliver, src, dst, dst.incarnation, msg))

    def _deliver(self, src: Endpoint, dst: Endpoint, incarnation: int, msg: object, _ev=None) -> None:
        if dst.alive and dst.incarnation == incarnation:
            dst.handle(msg)
            return
        if dst.host_up and src.alive:
            # Process down, host up: the connection is refused / reset, seen one latency later.
            self._notify_reset(dst, src)

    def reset_connections(self, crashed: Endpoint) -> None:
        """A process died with its host up: every peer sees its connection reset (RST)."""
        for ep in self.endpoints:
            if ep is not crashed and ep.alive:
                self._notify_reset(crashed, ep)

    def close_connection(self, closer: Endpoint, peer: Endpoint) -> None:
        """`closer` closes its connection to `peer`, which sees it one latency later."""
        self._notify_reset(closer, peer)

    def _notify_reset(self, peer: Endpoint, victim: Endpoint) -> None:
        ev = self.env.timeout(self.latency.sample())
        incarnation = victim.incarnation
        ev.callbacks.append(
            lambda _ev: victim.connection_lost(peer) if victim.alive and victim.incarnation == incarnation else None)
