"""The client side of one connection: ready to carry requests, or to be opened again by a handshake.

Kafka's NetworkClient keeps one connection per node (ClusterConnectionStates). A request that times
out closes it (NetworkClient.handleTimedOutRequests -> processTimeoutDisconnection), with whatever
was still queued on it; the next request waits until a new connection is ready, and a connection
is ready only after a round trip (the TCP handshake; ApiVersions is not modelled). A connection
attempt that gets no answer within socket.connection.setup.timeout.ms (10 s, doubling per failed
attempt up to socket.connection.setup.timeout.max.ms, 30 s) fails, and the next one starts after
reconnect.backoff.ms (50 ms, doubling up to reconnect.backoff.max.ms, 1 s) if a request still waits
for it. So a one-way cut, which
lets requests out but no answers back, leaves the client unable to reconnect until it heals.

A connection starts ready and stays ready until its owner closes it: a reset by the peer (a crash)
does not close it here, the next request goes out at once and meets a reset again if the peer is
still down (the owners' own backoffs pace that).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from sim.model.network import Network

__all__ = ["Connection", "SOCKET_CONNECTION_SETUP_TIMEOUT_MS", "SOCKET_CONNECTION_SETUP_TIMEOUT_MAX_MS"]

SOCKET_CONNECTION_SETUP_TIMEOUT_MS = 10_000.0  # socket.connection.setup.timeout.ms (CommonClientConfigs)
SOCKET_CONNECTION_SETUP_TIMEOUT_MAX_MS = 30_000.0  # socket.connection.setup.timeout.max.ms
RECONNECT_BACKOFF_MS = 50.0  # reconnect.backoff.ms
RECONNECT_BACKOFF_MAX_MS = 1_000.0  # reconnect.backoff.max.ms


class Connection:
    """`owner`'s connection to `peer` (a Node each): `close()` it after a timeout, `when_ready(send)`
    before sending on it."""

    __slots__ = ("owner", "peer", "network", "ready", "_attempt", "_connecting", "_failures", "_waiters")

    def __init__(self, owner, peer, network: "Network"):
        self.owner, self.peer, self.network = owner, peer, network
        self.ready = True
        self._attempt = 0  # the current connection attempt (answers to older ones are ignored)
        self._connecting = False
        self._failures = 0  # consecutive failed attempts (setup timeout and reconnect backoff grow)
        self._waiters: list[Callable[[], None]] = []

    def close(self) -> None:
        """Close the connection (a request on it timed out): what is queued on it goes, and the next
        request waits for a new connection."""
        self.network.drop_connection(self.owner, self.peer)
        self.ready = False
        self._connecting = False
        self._attempt += 1

    def when_ready(self, send: Callable[[], None]) -> bool:
        """True if requests can go now; else `send()` is called once the connection is ready again
        (a connection attempt starts if none is under way)."""
        if self.ready:
            return True
        if send not in self._waiters:
            self._waiters.append(send)
        if not self._connecting:
            self._connect()
        return False

    def _connect(self) -> None:
        self._connecting = True
        self._attempt += 1
        attempt = self._attempt
        owner = self.owner
        self.network.handshake(owner, self.peer, owner.deferring(lambda: self._established(attempt)),
                               owner.deferring(lambda: self._failed(attempt)))
        term = min(SOCKET_CONNECTION_SETUP_TIMEOUT_MS * 2 ** self._failures, SOCKET_CONNECTION_SETUP_TIMEOUT_MAX_MS)
        owner.schedule(term, self._failed, attempt)

    def _established(self, attempt: int) -> None:
        if attempt != self._attempt or not self._connecting or not self.owner.alive:
            return
        self.ready, self._connecting, self._failures = True, False, 0
        waiters, self._waiters = self._waiters, []
        for send in waiters:
            send()

    def _failed(self, attempt: int) -> None:
        """The attempt timed out (socket.connection.setup.timeout.ms) or was refused: back off, retry."""
        if attempt != self._attempt or not self._connecting or not self.owner.alive:
            return
        self._connecting = False
        self._attempt += 1
        self.network.drop_connection(self.owner, self.peer)  # the SYN (or SYN-ACK) still being retransmitted
        backoff = min(RECONNECT_BACKOFF_MS * 2 ** self._failures, RECONNECT_BACKOFF_MAX_MS)
        self._failures += 1
        waiters, self._waiters = self._waiters, []
        if waiters:
            self.owner.schedule(backoff, self._retry, waiters)

    @staticmethod
    def _retry(waiters: list) -> None:
        """After the reconnect backoff: whoever still has something to send asks again (NetworkClient
        connects only for a request), which starts the next attempt."""
        for send in waiters:
            send()
