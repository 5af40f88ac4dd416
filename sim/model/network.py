"""Links between endpoints: sampled latency, optional bandwidth, loss, drops and connection resets.

Every message between brokers, the controller and clients crosses the network as one SimPy
event with a callback (the cheapest event SimPy has). Each link is FIFO, like the TCP
connection Kafka uses, so a later message never overtakes an earlier one (it fires at or after the
instant SimPy fires the one before, float rounding included: `_delay_until`); with Kafka's broker
reading one request per connection at a time (SocketServer mutes the channel until the response is
sent), an idempotent producer's requests reach the leader in sequence order. A message to an endpoint that is down is
dropped. A *process* crash leaves the host's TCP stack up, so peers see a connection reset one
latency later (RST), as a SIGKILLed broker behaves; anything else a sender learns by timeout.

Bandwidth is a capacity of each sending endpoint's NIC (egress serialisation): a message starts
transmitting when the previous message from the same sender has left the wire, so
``tx_end = max(now, nic_free) + nbytes / bandwidth`` and ``arrival = tx_end + latency``. This is
what limits a Kafka leader: it sends every follower's FetchResponse and every consumer's from one
NIC, so replication fan-out and consumers compete for its egress. Messages from different senders
transmit in parallel. The queue is per message, FIFO across all of the sender's connections (the
kernel interleaves connections packet by packet, so a small message behind a large one waits a
little longer here than on a real host). With `network.bandwidth` alone the receiver's NIC is not
modelled. Without bandwidth no NIC state is kept at all.

Per-host NICs (`set_nic`, from `cluster.hardware`, sim/model/hardware.py) give an endpoint its own
capacity in each direction (full duplex). Egress works as above with the endpoint's own rate. On
ingress the senders' TCP flows share the receiver's link about equally (TCP's congestion control
converges to a fair share of a bottleneck), so a message is received at the receiver's rate
divided by the number of flows still receiving when its first byte arrives, after the flow's
previous message: ``arrival = max(tx_end + latency, max(tx_start + latency, flow_free) + nbytes *
flows / bandwidth_in)`` (cut-through: a receiver with room adds nothing). One large message (a
follower's fetch response) thus takes its flow's share, not the whole link, and a flow cannot get
more than its share when others are busy. The share is computed when the message is sent, so it
costs no second event per message; a flow that starts or ends meanwhile does not change it, so a
message sent to an idle receiver keeps the whole link while later flows take their shares beside
it (the link then carries more than its capacity for that while). Under sustained load every flow
is busy and the shares add up to the link: in the V9 three-producer case each 1 GbE broker NIC
receives ~104 MB/s of its 125 MB/s. The egress stays one FIFO queue per sender (a fair egress share
computed the same way over-commits a sender's link by up to a sixth in tests, so it is left out).

Loss is a per-link, per-direction probability that a message never arrives (a path that drops
it: nothing is reset, the sender learns only by its own timeout, e.g. `request.timeout.ms`). A
lost message was still sent (it counts in `sent` and used the sender's NIC) and is counted in
`dropped`. Loss draws from its own random stream, and only for a message on a link with a
non-zero probability, so a run without loss draws nothing from it and is bit-identical to a run
of a model that has no loss at all; a lossy link does not shift the latency draws of other
messages (every message draws its latency, lost or not).

Impairments (faults and topology, docs/faults/net.md) follow TCP: a transmission on an impaired link
may be lost, and a lost transmission is retransmitted after the retransmission timeout (RTO from
`rto_min`, doubling, capped at `rto_max`), so the message arrives late, not never, and holds back the
link's later messages (the link is FIFO); past `retries` consecutive retransmissions (Linux
`tcp_retries2`) the connection breaks (the sender's `connection_lost`, ETIMEDOUT) and what it held
is gone. One rule, two causes of loss: a *degraded* link loses each transmission with a probability
(drawn when the message is sent, as the whole retransmission schedule is then known) and adds a
sampled latency; a *cut* link (a network partition) loses every transmission until it heals, and
so does a link to a host that is down (power loss): the message waits on the link (`_Stall`), and
one timer per stalled link retransmits its head, so it arrives at the first retransmission after
the heal (Linux defaults for a cut link without its own degradation: 200 ms doubling to 120 s, 15
retries). A host that comes back after a power loss, or a process restarted meanwhile, answers that
retransmission with a reset, so the sender learns at once (RST). Cuts are counted per link, so
overlapping partitions heal independently. A *zone* latency is a static extra latency on links
between endpoints of different zones (a stretch cluster).

Connections: the model keeps one connection per pair of endpoints and does not open it for every
message. A client that closes its connection at the application level (a request timed out:
NetworkClient.handleTimedOutRequests) discards what is still queued on it in both directions
(`drop_connection`) and must complete a handshake (`handshake`: SYN out, SYN-ACK back, each subject
to the links' impairments and retransmitted from TCP_TIMEOUT_INIT, 1 s) before it sends again
(`sim.model.connection.Connection`), so a one-way cut, which lets requests through but no answers,
leaves it unable to reconnect. A connection reset by a crashed peer is reopened with the next
request without a handshake (the reset itself proves the path works).

The cheapest `send` for the configuration is chosen once (at construction, and again when loss, a
cut, a degradation, a zone latency or a stalled link comes or goes), so a run without them pays nothing.
"""

from __future__ import annotations

from collections import deque
from functools import partial
from math import inf, nextafter
from typing import Callable, Protocol

import numpy as np
import simpy

from sim.model.distributions import Distribution

__all__ = ["Network", "Endpoint", "Degradation", "TCP_TIMEOUT_INIT_MS", "TCP_SYN_RETRIES"]

# Linux: the RTO of a SYN or SYN-ACK before any round trip was measured (TCP_TIMEOUT_INIT, RFC 6298),
# and how often a SYN is retransmitted before connect() fails (net.ipv4.tcp_syn_retries).
TCP_TIMEOUT_INIT_MS = 1_000.0
TCP_SYN_RETRIES = 6


class Degradation:
    """A degraded link: extra latency, per-transmission loss, and TCP's retransmission rules.

    Linux TCP: the retransmission timeout starts at TCP_RTO_MIN (200 ms), doubles on each
    consecutive loss (exponential backoff) up to TCP_RTO_MAX (120 s); after tcp_retries2 (15)
    retransmissions of one segment the connection is aborted (ETIMEDOUT).
    """

    __slots__ = ("latency", "loss", "rto_min", "rto_max", "retries")

    def __init__(self, latency: Distribution | None = None, loss: float = 0.0, rto_min: float = 200.0,
                 rto_max: float = 120_000.0, retries: int = 15):
        if not 0.0 <= loss <= 1.0:
            raise ValueError(f"loss probability must be in [0, 1], got {loss!r}")
        self.latency, self.loss, self.rto_min, self.rto_max, self.retries = latency, loss, rto_min, rto_max, retries


_LINUX_TCP = Degradation()
"""The retransmission rules of a cut link without a degradation of its own: Linux's defaults."""


def _delay_until(now: float, at: float) -> float:
    """The delay after which a SimPy timer set at `now` fires at `at` or later, never before.

    SimPy fires a timer at `now + delay` (Environment.schedule). With `delay = at - now` float
    rounding can land one ulp before `at`, so two messages held to the same arrival on one link
    but sent at different times could fire in the wrong order; the link is FIFO (TCP) only if each
    message fires at or after the previous one's actual instant (equal instants fire in the order
    they were scheduled). The hot sends inline the usual case and call this only to round up.
    """
    delay = at - now
    while now + delay < at:
        delay = nextafter(delay, inf)
    return delay


class _Stall:
    """A link whose head-of-line transmission is being lost (a cut, or a host that is down): what waits
    on it, in order, and its retransmission state (TCP's RTO backoff; one timer per link)."""

    __slots__ = ("queue", "rto", "rto_max", "retries", "sent", "src_incarnation")

    def __init__(self, rto: float, rto_max: float, retries: int, src_incarnation: int):
        self.queue: deque = deque()  # (delivery callback, the latency its transmission will take)
        self.rto, self.rto_max, self.retries = rto, rto_max, retries
        self.sent = 0  # retransmissions so far
        self.src_incarnation = src_incarnation


class Endpoint(Protocol):
    """What the network needs of a broker, controller or client (each a `sim.model.node.Node`)."""

    endpoint_id: str
    alive: bool
    host_up: bool
    incarnation: int

    def handle(self, msg: object) -> None: ...

    def connection_lost(self, peer: "Endpoint") -> None: ...


class Network:
    """Delivers messages between endpoints after egress serialisation and a sampled one-way latency."""

    _loss_chunk = 4096  # uniforms drawn at a time for loss decisions (as Distribution buffers latencies)

    def __init__(self, env: simpy.Environment, latency: Distribution, bandwidth_bps: float | None = None,
                 loss_rng: np.random.Generator | None = None):
        self.env = env
        self.latency = latency
        self.bandwidth_bps = bandwidth_bps
        self.ms_per_byte = 1000.0 / bandwidth_bps if bandwidth_bps else 0.0
        self.endpoints: list[Endpoint] = []
        self._link_clock: dict[tuple, float] = {}  # (src, dst) -> arrival of the last message
        self._nic_free: dict[Endpoint, float] = {}  # sender -> time its NIC finishes what it was given
        self.sent: dict[type, int] = {}  # messages put on the wire, by message type
        self.dropped: dict[type, int] = {}  # messages lost on a lossy link, by type (not those to a dead peer)
        self.loss_rng = loss_rng
        self._loss_all = 0.0  # probability on every link without its own setting
        self._loss_link: dict[tuple, float] = {}  # (src, dst) -> probability, overrides _loss_all
        self._uniforms = iter(())  # current chunk of loss draws
        self._cuts: dict[tuple, int] = {}  # (src, dst) -> active cuts on the link (network partitions)
        self._degraded: dict[tuple, list[Degradation]] = {}  # (src, dst) -> active degradations
        self._zone_latency: dict[tuple, Distribution] = {}  # (src, dst) -> extra latency between zones
        self.broken: dict[type, int] = {}  # messages whose connection broke after too many retransmissions
        self.held: dict[type, int] = {}  # messages that waited on a cut link (or to a host that was down)
        self.discarded = 0  # messages still queued on a connection when it was closed or broke
        self.aborted = 0  # connections that ran out of retransmissions on a stalled link (ETIMEDOUT)
        # (src, dst, src incarnation, dst incarnation) -> what waits on a connection whose link loses its
        # transmissions: a restarted endpoint's new connection does not wait behind its old one's
        self._stalls: dict[tuple, _Stall] = {}
        self._nic_out: dict[Endpoint, float] = {}  # per-host NICs (set_nic): endpoint -> ms per byte sent
        self._nic_in: dict[Endpoint, float] = {}  # endpoint -> ms per byte received
        self._rx_flows: dict[Endpoint, dict] = {}  # receiver -> {sender: when that flow's bytes are all in}
        self._tx_start = 0.0  # when the last message sent (by _egress) started to leave its sender
        self._hw = False  # some endpoint has its own NIC
        self._select_send()

    # --- configuration ---------------------------------------------------------------------------

    def set_loss(self, src: Endpoint, dst: Endpoint, probability: float | None) -> None:
        """Lose each message from `src` to `dst` (that direction only) with `probability`.

        The link's own setting overrides `set_loss_all`; 0 makes it lossless, None removes the
        setting so the link follows `set_loss_all` again.
        """
        if probability is None:
            self._loss_link.pop((src, dst), None)
        else:
            self._loss_link[(src, dst)] = self._check_probability(probability)
        self._select_send()

    def set_loss_all(self, probability: float) -> None:
        """Lose each message on every link without its own `set_loss` with `probability` (0 restores)."""
        self._loss_all = self._check_probability(probability)
        self._select_send()

    def _check_probability(self, probability: float) -> float:
        p = float(probability)
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"loss probability must be in [0, 1], got {probability!r}")
        if p > 0.0 and self.loss_rng is None:
            raise ValueError("this Network has no loss random stream (pass loss_rng)")
        return p

    def cut(self, src: Endpoint, dst: Endpoint) -> None:
        """Lose every transmission from `src` to `dst` (that direction) until as many `uncut` calls:
        messages wait on the link and arrive at the first retransmission after the heal."""
        link = (src, dst)
        self._cuts[link] = self._cuts.get(link, 0) + 1
        self._select_send()

    def uncut(self, src: Endpoint, dst: Endpoint) -> None:
        """Heal one cut of the link `src` -> `dst` (it carries messages again when no cut is left)."""
        link = (src, dst)
        n = self._cuts.get(link, 0) - 1
        if n > 0:
            self._cuts[link] = n
        else:
            self._cuts.pop(link, None)
        self._select_send()

    def is_cut(self, src: Endpoint, dst: Endpoint) -> bool:
        return (src, dst) in self._cuts

    def degrade(self, src: Endpoint, dst: Endpoint, degradation: Degradation) -> None:
        """Apply `degradation` to the link `src` -> `dst` until `restore` (degradations stack)."""
        if degradation.loss > 0.0 and self.loss_rng is None:
            raise ValueError("this Network has no loss random stream (pass loss_rng)")
        self._degraded.setdefault((src, dst), []).append(degradation)
        self._select_send()

    def restore(self, src: Endpoint, dst: Endpoint, degradation: Degradation) -> None:
        """Remove one `degradation` from the link `src` -> `dst`."""
        link = (src, dst)
        active = self._degraded.get(link, [])
        if degradation in active:
            active.remove(degradation)
        if not active:
            self._degraded.pop(link, None)
        self._select_send()

    def set_nic(self, endpoint: Endpoint, out_bps: float | None, in_bps: float | None) -> None:
        """Give `endpoint`'s host a NIC of `out_bps` / `in_bps` bytes per second (None: unlimited that way)."""
        for table, bps in ((self._nic_out, out_bps), (self._nic_in, in_bps)):
            if bps:
                table[endpoint] = 1000.0 / bps
            else:
                table.pop(endpoint, None)
        self._hw = bool(self._nic_out or self._nic_in)
        self._select_send()

    def _egress(self, src: Endpoint, nbytes: int, now: float) -> float:
        """When `src`'s NIC has sent `nbytes` more (its own rate, else network.bandwidth)."""
        mpb = self._nic_out.get(src, self.ms_per_byte)
        if not mpb:
            self._tx_start = now
            return now
        nic = self._nic_free
        start = nic.get(src, now)
        if start < now:
            start = now
        self._tx_start = start
        tx_end = start + nbytes * mpb
        nic[src] = tx_end
        return tx_end

    def _ingress(self, src: Endpoint, dst: Endpoint, nbytes: int, arrive: float, lead: float) -> float:
        """When `dst`'s NIC has received `nbytes` from `src` whose last byte reaches it at `arrive`
        and first byte `lead` earlier: at the flow's fair share of the link, after its previous bytes."""
        mpb = self._nic_in.get(dst)
        if mpb is None:
            return arrive
        flows = self._rx_flows.get(dst)
        if flows is None:
            flows = self._rx_flows[dst] = {}
        first = arrive - lead
        busy = flows.get(src, 0.0)
        n = 1
        for other, end in flows.items():
            if end > first and other is not src:
                n += 1
        received = (busy if busy > first else first) + nbytes * mpb * n
        if received < arrive:
            received = arrive
        flows[src] = received
        return received

    def set_zone_latency(self, src: Endpoint, dst: Endpoint, extra: Distribution | None) -> None:
        """A static extra one-way latency on `src` -> `dst` (endpoints in different zones); None removes it."""
        if extra is None:
            self._zone_latency.pop((src, dst), None)
        else:
            self._zone_latency[(src, dst)] = extra
        self._select_send()

    def _select_send(self) -> None:
        """Bind `send` to the cheapest implementation for the bandwidth, loss and impairments configured."""
        if self._cuts or self._degraded or self._zone_latency or self._stalls:
            self.send = self._send_impaired
        elif self._loss_all > 0.0 or any(p > 0.0 for p in self._loss_link.values()):
            self.send = self._send_any
        elif self._hw:
            self.send = self._send_nic
        elif self.ms_per_byte:
            self.send = self._send_serialised
        else:
            self.send = self._send_plain

    def attach(self, endpoint: Endpoint) -> None:
        self.endpoints.append(endpoint)

    # --- sending ---------------------------------------------------------------------------------

    def send(self, src: Endpoint, dst: Endpoint, msg: object, nbytes: int = 0) -> None:
        """Send `msg` of `nbytes` from `src` to `dst`; a dead sender sends nothing.

        Each instance rebinds `send` to the cheapest `_send_*` variant for its configuration (see
        `_select_send`); called through the class, this is the general one.
        """
        self._send_any(src, dst, msg, nbytes)

    def _send_plain(self, src: Endpoint, dst: Endpoint, msg: object, nbytes: int = 0) -> None:
        """`send` without bandwidth or loss: arrival = now + latency (the hot path)."""
        if not src.alive:
            return
        env = self.env
        now = env.now
        sent = self.sent
        kind = type(msg)
        sent[kind] = sent.get(kind, 0) + 1
        arrive = now + self.latency.sample()
        # A connection is a TCP stream: messages on one link arrive in the order they were sent.
        link = (src, dst)  # endpoints hash by identity
        clocks = self._link_clock
        last = clocks.get(link, 0.0)
        if arrive < last:
            arrive = last
        delay = arrive - now
        if now + delay < arrive:  # float rounding would fire it before the previous one: round up
            delay = _delay_until(now, arrive)
        clocks[link] = now + delay  # the instant SimPy fires it at
        # partial, not a lambda: SimPy calls it straight from C, one Python frame fewer per message
        env.timeout(delay).callbacks.append(partial(self._deliver, src, dst, dst.incarnation, msg))

    def _send_serialised(self, src: Endpoint, dst: Endpoint, msg: object, nbytes: int = 0) -> None:
        """`send` with bandwidth: the sender's NIC transmits one message at a time, then latency."""
        if not src.alive:
            return
        env = self.env
        now = env.now
        sent = self.sent
        kind = type(msg)
        sent[kind] = sent.get(kind, 0) + 1
        # Egress serialisation: the bytes leave after everything the sender queued before them.
        nic = self._nic_free
        start = nic.get(src, now)
        if start < now:
            start = now
        tx_end = start + nbytes * self.ms_per_byte
        nic[src] = tx_end
        arrive = tx_end + self.latency.sample()
        link = (src, dst)
        clocks = self._link_clock
        last = clocks.get(link, 0.0)
        if arrive < last:  # TCP: no overtaking on one connection, even with a lucky latency draw
            arrive = last
        delay = arrive - now
        if now + delay < arrive:  # see _delay_until
            delay = _delay_until(now, arrive)
        clocks[link] = now + delay
        env.timeout(delay).callbacks.append(partial(self._deliver, src, dst, dst.incarnation, msg))

    def _send_nic(self, src: Endpoint, dst: Endpoint, msg: object, nbytes: int = 0) -> None:
        """`send` with per-host NICs: the sender's egress, latency, then the receiver's ingress."""
        if not src.alive:
            return
        now = self.env.now
        sent = self.sent
        kind = type(msg)
        sent[kind] = sent.get(kind, 0) + 1
        tx_end = self._egress(src, nbytes, now)
        # no link is lossy when this send is bound, so _arrive only adds the ingress, FIFO and delivery
        self._arrive(src, dst, msg, kind, nbytes, now, tx_end, tx_end + self.latency.sample())

    def _transmitted(self, src: Endpoint, nbytes: int, now: float) -> float:
        """When the sender's NIC has put `nbytes` on the wire (the general sends; the hot ones inline it)."""
        if self._hw:
            return self._egress(src, nbytes, now)
        if self.ms_per_byte:
            nic = self._nic_free
            start = nic.get(src, now)
            tx_end = (start if start > now else now) + nbytes * self.ms_per_byte
            nic[src] = tx_end
            return tx_end
        return now

    def _send_any(self, src: Endpoint, dst: Endpoint, msg: object, nbytes: int = 0) -> None:
        """`send` for any configuration, bound while some link is lossy: bandwidth if set, latency,
        then maybe lose the message on the way."""
        if not src.alive:
            return
        now = self.env.now
        kind = type(msg)
        self.sent[kind] = self.sent.get(kind, 0) + 1
        tx_end = self._transmitted(src, nbytes, now)  # a lost message was still transmitted by the sender
        arrive = tx_end + self.latency.sample()  # drawn even if lost: other messages keep their draws
        self._arrive(src, dst, msg, kind, nbytes, now, tx_end, arrive)

    def _arrive(self, src: Endpoint, dst: Endpoint, msg: object, kind: type, nbytes: int, now: float,
                tx_end: float, arrive: float) -> None:
        """The general sends' last steps: maybe lost on the path, then the receiver's NIC, then
        FIFO on the link (a retransmitted message holds back the link's later ones), then delivery."""
        link = (src, dst)
        p = self._loss_link.get(link, self._loss_all)
        if p > 0.0 and self._uniform() < p:
            # Lost on the path: no RST, no FIN; the sender finds out by its own timeout. It does not
            # hold back the link's later messages (TCP's retransmission stall is not modelled).
            self.dropped[kind] = self.dropped.get(kind, 0) + 1
            return
        if self._hw:
            arrive = self._ingress(src, dst, nbytes, arrive, tx_end - self._tx_start)
        clocks = self._link_clock
        last = clocks.get(link, 0.0)
        if arrive < last:
            arrive = last
        delay = arrive - now
        if now + delay < arrive:  # see _delay_until
            delay = _delay_until(now, arrive)
        clocks[link] = now + delay
        self.env.timeout(delay).callbacks.append(partial(self._deliver, src, dst, dst.incarnation, msg))

    def _send_impaired(self, src: Endpoint, dst: Endpoint, msg: object, nbytes: int = 0) -> None:
        """`send` while some link is cut, degraded or between zones: `_send_any` plus those."""
        if not src.alive:
            return
        now = self.env.now
        kind = type(msg)
        self.sent[kind] = self.sent.get(kind, 0) + 1
        tx_end = self._transmitted(src, nbytes, now)
        arrive = tx_end + self.latency.sample()
        link = (src, dst)
        zone = self._zone_latency.get(link)
        if zone is not None:
            arrive += zone.sample()
        if link in self._cuts or (self._stalls and (src, dst, src.incarnation, dst.incarnation) in self._stalls):
            # A partition: the transmission is lost and TCP retransmits it (behind whatever already
            # waits on the link) until the link heals or the retransmissions run out.
            for d in self._degraded.get(link, ()):
                if d.latency is not None:
                    arrive += d.latency.sample()
            self.held[kind] = self.held.get(kind, 0) + 1
            self._hold(src, dst, dst.incarnation, partial(self._deliver, src, dst, dst.incarnation, msg),
                       arrive - tx_end, tx_end)
            return
        for d in self._degraded.get(link, ()):
            if d.latency is not None:
                arrive += d.latency.sample()
            if d.loss > 0.0:
                # TCP: each lost transmission is retransmitted after the RTO, which doubles (RFC 6298 5.5)
                rto, lost = d.rto_min, 0
                while self._uniform() < d.loss:
                    lost += 1
                    if lost > d.retries:  # tcp_retries2 exceeded: the sender aborts the connection
                        self.broken[kind] = self.broken.get(kind, 0) + 1
                        self._schedule_connection_lost(src, dst, arrive - now)
                        return
                    arrive += rto
                    rto = min(2.0 * rto, d.rto_max)
        self._arrive(src, dst, msg, kind, nbytes, now, tx_end, arrive)

    # --- lost transmissions: a cut link, a host that is down ---------------------------------------
    def _hold(self, src: Endpoint, dst: Endpoint, dst_incarnation: int, deliver: Callable, latency: float,
              first_tx: float, syn: bool = False) -> None:
        """Put a message (or a handshake segment) on a link whose transmissions are lost: it goes
        out with the first retransmission that gets through, `latency` after it (FIFO behind what
        waits already). The first lost transmission starts the link's retransmission timer."""
        key = (src, dst, src.incarnation, dst_incarnation)
        stall = self._stalls.get(key)
        if stall is None:
            degraded = self._degraded.get((src, dst))
            tcp = degraded[0] if degraded else _LINUX_TCP
            if syn:  # connect(): SYN retransmitted from TCP_TIMEOUT_INIT, tcp_syn_retries times
                stall = _Stall(TCP_TIMEOUT_INIT_MS, tcp.rto_max, TCP_SYN_RETRIES, src.incarnation)
            else:
                stall = _Stall(tcp.rto_min, tcp.rto_max, tcp.retries, src.incarnation)
            self._stalls[key] = stall
            now = self.env.now
            delay = (first_tx - now if first_tx > now else 0.0) + stall.rto
            self.env.timeout(delay).callbacks.append(partial(self._retransmit, key, stall))
            self._select_send()
        stall.queue.append((deliver, latency))

    def _retransmit(self, key: tuple, stall: _Stall, _ev=None) -> None:
        """The RTO of a stalled link expired: retransmit its head. Still lost: back off (the RTO
        doubles) or, past the retries, abort the connection; through: everything waiting follows."""
        if self._stalls.get(key) is not stall:
            return  # the connection was closed meanwhile (its queue discarded)
        src, dst = link = key[0], key[1]
        if not src.alive or src.incarnation != stall.src_incarnation:
            # the sender's process is gone: its sockets, and what they still had to send, with it
            del self._stalls[key]
            self.discarded += len(stall.queue)
            self._select_send()
            return
        stall.sent += 1
        if stall.sent > stall.retries:
            # tcp_retries2 (tcp_syn_retries for a SYN) retransmissions lost: ETIMEDOUT
            del self._stalls[key]
            self.discarded += len(stall.queue)
            self.aborted += 1
            self._schedule_connection_lost(src, dst, 0.0)
            self._select_send()
            return
        if link in self._cuts or not dst.host_up:
            stall.rto = min(2.0 * stall.rto, stall.rto_max)
            self.env.timeout(stall.rto).callbacks.append(partial(self._retransmit, key, stall))
            return
        del self._stalls[key]
        now = self.env.now
        clocks = self._link_clock
        last = clocks.get(link, 0.0)
        timeout = self.env.timeout
        for deliver, latency in stall.queue:
            arrive = now + latency
            if arrive < last:
                arrive = last
            delay = _delay_until(now, arrive)
            last = now + delay
            timeout(delay).callbacks.append(deliver)
        clocks[link] = last
        self._select_send()

    def _uniform(self) -> float:
        """One uniform draw in [0, 1) from the loss stream, from a buffered chunk."""
        try:
            return next(self._uniforms)
        except StopIteration:
            self._uniforms = iter(self.loss_rng.random(self._loss_chunk).tolist())
            return next(self._uniforms)

    def _deliver(self, src: Endpoint, dst: Endpoint, incarnation: int, msg: object, _ev=None) -> None:
        """The one delivery point: a message reaches the incarnation it was sent to or is dropped.

        A paused node's `handle` is shadowed by one that queues (Node.pause), so a paused node
        costs this path nothing and gets its messages in order when it resumes.
        """
        if dst.alive and dst.incarnation == incarnation:
            dst.handle(msg)
            return
        if dst.host_up:
            if src.alive:
                # Process down, host up: the connection is refused / reset, seen one latency later.
                self._notify_reset(dst, src)
        elif src.alive:
            # Host down (power loss): nothing acknowledges the segment, so the sender's TCP retransmits
            # it; the host's next incarnation answers a retransmission with a reset.
            self.held[type(msg)] = self.held.get(type(msg), 0) + 1
            self._hold(src, dst, incarnation, partial(self._deliver, src, dst, incarnation, msg), self.latency.sample(),
                       self.env.now)

    # --- connections -----------------------------------------------------------------------------

    def close_connection(self, closer: Endpoint, peer: Endpoint) -> None:
        """`closer` closes its connection to `peer` (as a Kafka broker does after an acks=0 produce
        error); `peer.connection_lost(closer)` follows one sampled latency later.

        The FIN travels in the stream, after whatever `closer` already sent to `peer` (FIFO, and
        behind the bytes queued on its NIC); it is not subject to random loss (TCP retransmits a
        FIN), but a cut link holds it like any segment. A peer that died or restarted meanwhile is
        not told (its old connection is gone anyway). What waited on the connection's stalled
        links is discarded (`drop_connection`).
        """
        if not closer.alive:
            return
        self.drop_connection(closer, peer)
        now = self.env.now
        start = self._nic_free.get(closer, now) if self.ms_per_byte or self._hw else now
        link = (closer, peer)
        if link in self._cuts or not peer.host_up:
            incarnation = peer.incarnation
            self._hold(closer, peer, incarnation,
                       lambda _ev: peer.connection_lost(closer) if peer.alive and peer.incarnation == incarnation
                       else None, self.latency.sample(), start)
            return
        arrive = (start if start > now else now) + self.latency.sample()
        last = self._link_clock.get(link, 0.0)
        if arrive < last:
            arrive = last
        self._schedule_connection_lost(peer, closer, _delay_until(now, arrive))

    def drop_connection(self, a: Endpoint, b: Endpoint) -> None:
        """The connection between `a` and `b` is closed (a request timed out, a connection attempt
        failed): what is still queued on it, retransmitting on a stalled link, is discarded, both ways."""
        if not self._stalls:
            return
        for key in ((a, b, a.incarnation, b.incarnation), (b, a, b.incarnation, a.incarnation)):
            stall = self._stalls.pop(key, None)
            if stall is not None:
                self.discarded += len(stall.queue)
        self._select_send()

    def handshake(self, src: Endpoint, dst: Endpoint, established: Callable[[], None],
                  refused: Callable[[], None]) -> None:
        """TCP's handshake for a new connection from `src` to `dst`: a SYN out, a SYN-ACK back, each
        a segment on its link (a cut holds it, retransmitted from TCP_TIMEOUT_INIT). Calls
        `established()` when the SYN-ACK is in, `refused()` when `dst`'s host answers with a reset (its
        process is down); a host that is down answers nothing (the caller's setup timeout decides).
        The peer's kernel answers, not its process: a paused process's host completes the handshake."""
        if not src.alive:
            return
        incarnation = src.incarnation
        self._segment(src, dst, partial(self._syn_arrived, src, dst, incarnation, established, refused))

    def _segment(self, src: Endpoint, dst: Endpoint, deliver: Callable) -> None:
        """A control segment (SYN, SYN-ACK) from `src` to `dst`: one latency, FIFO, held by a cut."""
        now = self.env.now
        link = (src, dst)
        latency = self.latency.sample()
        zone = self._zone_latency.get(link)
        if zone is not None:
            latency += zone.sample()
        if link in self._cuts or (src, dst, src.incarnation, dst.incarnation) in self._stalls or not dst.host_up:
            self._hold(src, dst, dst.incarnation, deliver, latency, now, syn=True)
            return
        arrive = now + latency
        last = self._link_clock.get(link, 0.0)
        if arrive < last:
            arrive = last
        delay = _delay_until(now, arrive)
        self._link_clock[link] = now + delay
        self.env.timeout(delay).callbacks.append(deliver)

    def _syn_arrived(self, src: Endpoint, dst: Endpoint, incarnation: int, established: Callable,
                     refused: Callable, _ev=None) -> None:
        if not src.alive or src.incarnation != incarnation:
            return
        if not dst.alive:
            if dst.host_up:  # nobody listens: RST, seen one latency later
                self.env.timeout(self.latency.sample()).callbacks.append(
                    lambda _ev: refused() if src.alive and src.incarnation == incarnation else None)
            return
        self._segment(dst, src, lambda _ev: established() if src.alive and src.incarnation == incarnation else None)

    def reset_connections(self, crashed: Endpoint) -> None:
        """A process died with its host up: every peer sees its connection reset (RST)."""
        for ep in self.endpoints:
            if ep is not crashed and ep.alive:
                self._notify_reset(crashed, ep)

    def _notify_reset(self, peer: Endpoint, victim: Endpoint) -> None:
        """`victim` sees its connection to `peer` reset one sampled latency from now."""
        self._schedule_connection_lost(victim, peer, self.latency.sample())

    def _schedule_connection_lost(self, victim: Endpoint, peer: Endpoint, delay: float) -> None:
        ev = self.env.timeout(delay)
        incarnation = victim.incarnation
        ev.callbacks.append(
            lambda _ev: victim.connection_lost(peer) if victim.alive and victim.incarnation == incarnation else None)
