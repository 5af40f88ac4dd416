"""The hardware capacity model: NICs, disk write bandwidth, request handling threads, client send capacity.

Without it (`cluster.hardware: unlimited`, the default) nothing in a broker or client costs
simulated time and only the network latency (and `network.bandwidth`) delays a message; none of
this module runs and no state is kept. With a preset or any field set, `install_hardware` wires:

- **NICs** (`nic`, `client.nic`): each host's NIC serialises what it sends and what it receives,
  each direction at its own rate (`Network.set_nic`; the queues are computed when a message is
  sent, so they cost no event).
- **Request handling** (`cpu`), as Kafka's SocketServer and KafkaRequestHandlerPool do it:
  - a connection is assigned to one of `num.network.threads` processors, round-robin as the
    Acceptor assigns new connections; the processor reads a request (`network_per_request` plus
    the bytes at `network_byte_rate`) and hands it to the request channel;
  - the processor then *mutes* the connection (SocketServer.Processor.processCompletedReceives:
    `selector.mute`) until the response has been sent (processCompletedSends: `unmute`), so a
    connection's requests are handled one at a time and in order: what a producer pipelines
    (max.in.flight) waits in the socket buffer, and an acks=all request holds its connection
    until the replicas have it;
  - the first free of `num.io.threads` KafkaRequestHandler threads handles it: `per_request`,
    plus the request's payload at `byte_rate` (a produce request's records are validated and
    copied into the log), plus waiting for the disk (below); then KafkaApis runs (the broker's
    own `handle`);
  - a follower's fetched data is appended by its ReplicaFetcherThread (one per leader broker,
    num.replica.fetchers=1), which pays the same per-request and per-byte cost and the disk
    before the fetcher sees the response (AbstractFetcherThread.processFetchRequest).
- **Disk** (`disk.write`): appends queue for the broker's write bandwidth (`Disk.reserve_write`);
  the page cache's ability to absorb a burst is not modelled, so this bounds sustained writes.
- **The producer's send capacity** (`client.per_record`): the application thread's cost per
  `send()` (serialise, partition, append); a producer offers at most 1/per_record records/s.

Each stage is a FIFO queue whose completion time is computed on admission (servers free at known
times), so a request costs one SimPy event (its completion), however many stages it crosses. The
io thread pool serves requests in the order the processors hand them over, computed at
admission. Left out: the response path's network thread cost (fetch responses are sent with
sendfile, zero-copy), request/response queue limits (queued.max.requests), the page cache,
and CPU contention between the pools (they are separate cores).
"""

from __future__ import annotations

import heapq
from collections import deque
from typing import TYPE_CHECKING

from sim.model import messages as m
from sim.model.broker import Broker

if TYPE_CHECKING:
    from sim.scenario.cluster import ClusterConfig, HardwareConfig

__all__ = ["HardwareBroker", "BrokerHardware", "broker_class", "install_hardware"]

REQUESTS = (m.ProduceRequest, m.FetchRequest, m.MetadataRequest)
"""What clients and followers send a broker through its SocketServer (controller traffic is not modelled here)."""
RESPONSES = (m.ProduceResponse, m.FetchResponse, m.MetadataResponse)
"""What a broker answers those with: sending one unmutes the requester's connection."""


def _ms_per_byte(bps: float | None) -> float:
    return 1000.0 / bps if bps else 0.0


class _Connection:
    """One client connection at a broker: its processor, whether it is muted, what waits behind."""

    __slots__ = ("processor", "muted", "waiting")

    def __init__(self, processor: int):
        self.processor = processor
        self.muted = False
        self.waiting: deque = deque()


class _ResponsePath:
    """The broker's view of the network: sending a response unmutes the requester's connection.

    Everything else is the cluster's `Network` (the broker sends through this object instead).
    """

    def __init__(self, network, hw: "BrokerHardware"):
        self._network = network
        self._hw = hw

    def send(self, src, dst, msg, nbytes: int = 0) -> None:
        self._network.send(src, dst, msg, nbytes)
        if type(msg) in RESPONSES:
            self._hw.responded(dst)

    def close_connection(self, closer, peer) -> None:
        self._network.close_connection(closer, peer)
        self._hw.responded(peer, closed=True)

    def __getattr__(self, name):
        return getattr(self._network, name)


class BrokerHardware:
    """One broker's processors, io threads, replica fetcher threads and disk queue."""

    def __init__(self, broker: "HardwareBroker", hw: "HardwareConfig", cfg: "ClusterConfig"):
        self.broker = broker
        cpu = hw.cpu
        self.modelled = cpu is not None  # the request path (threads, muting); else only NIC and disk
        self.per_request = cpu.per_request if cpu else 0.0
        self.ms_per_byte = _ms_per_byte(cpu.byte_rate) if cpu else 0.0
        self.net_per_request = cpu.network_per_request if cpu else 0.0
        self.net_ms_per_byte = _ms_per_byte(cpu.network_byte_rate) if cpu else 0.0
        self.n_network = cfg.num_network_threads
        self.n_io = cfg.num_io_threads
        self.disk_ms_per_byte = _ms_per_byte(hw.disk.write) if hw.disk is not None else 0.0
        broker.disk.write_ms_per_byte = self.disk_ms_per_byte
        self.reset()

    def reset(self) -> None:
        """A (re)started process: no connections, idle threads (the disk's queue is the disk's)."""
        self.connections: dict[tuple, _Connection] = {}
        self._next_processor = 0
        self.processor_free = [0.0] * self.n_network
        self.io_free = [0.0] * self.n_io  # a heap of when each io thread is next free
        self.fetcher_free: dict[int, float] = {}  # leader broker id -> when its fetcher thread is free

    # --- requests: SocketServer.Processor -> RequestChannel -> KafkaRequestHandler -----------------
    def receive(self, msg) -> None:
        """A request arrived on its connection: handle it now, or after the one in progress."""
        client = msg.client
        key = (client, client.incarnation)
        conn = self.connections.get(key)
        if conn is None:
            # Acceptor: new connections go to the processors in turn
            conn = self.connections[key] = _Connection(self._next_processor)
            self._next_processor = (self._next_processor + 1) % self.n_network
        if conn.muted:
            conn.waiting.append(msg)
            return
        self._read(conn, msg)

    def _read(self, conn: _Connection, msg) -> None:
        """The processor reads the request and mutes the connection; an io thread handles it."""
        conn.muted = True
        broker = self.broker
        now = broker.env.now
        t = type(msg)
        nbytes = msg.nbytes if t is m.ProduceRequest else 64
        p = conn.processor
        free = self.processor_free[p]
        read = (free if free > now else now) + self.net_per_request + nbytes * self.net_ms_per_byte
        self.processor_free[p] = read
        io_free = heapq.heappop(self.io_free)  # the io thread free first takes the request next
        start = io_free if io_free > read else read
        done = start + self.per_request
        if t is m.ProduceRequest:
            done += nbytes * self.ms_per_byte
            if self.disk_ms_per_byte:
                written = broker.disk.reserve_write(start, nbytes)
                if written > done:
                    done = written  # the handler thread waits for the write (no page cache slack)
        heapq.heappush(self.io_free, done)
        broker.schedule(done - now, self._handled, msg)

    def _handled(self, msg) -> None:
        """KafkaApis handles the request (the broker's own `handle`)."""
        Broker.handle(self.broker, msg)
        if type(msg) is m.ProduceRequest and msg.acks == 0:
            self.responded(msg.client)  # acks=0: a NoOpResponse unmutes the connection at once

    def responded(self, client, closed: bool = False) -> None:
        """The response to `client`'s request went out: unmute its connection, read the next one."""
        key = (client, getattr(client, "incarnation", None))
        conn = self.connections.get(key)
        if conn is None or not conn.muted:
            return
        if closed:
            del self.connections[key]  # the connection is gone, with what was queued on it
            return
        conn.muted = False
        if conn.waiting:
            self._read(conn, conn.waiting.popleft())

    # --- the follower side: ReplicaFetcherThread -------------------------------------------------
    def fetched(self, msg: m.FetchResponse) -> None:
        """The fetcher thread appends what the leader sent, then goes on with the response."""
        broker = self.broker
        now = broker.env.now
        nbytes = 0
        for pd in msg.partitions:
            if pd.base:
                nbytes += sum(pd.nbytes)
        free = self.fetcher_free.get(msg.broker, 0.0)
        start = free if free > now else now
        done = start + self.per_request + nbytes * self.ms_per_byte
        if nbytes and self.disk_ms_per_byte:
            written = broker.disk.reserve_write(start, nbytes)
            if written > done:
                done = written
        self.fetcher_free[msg.broker] = done
        if done <= now:
            Broker.handle(broker, msg)
        else:
            broker.schedule(done - now, Broker.handle, broker, msg)


class HardwareBroker(Broker):
    """A broker whose requests cost time on its threads, its disk and its NIC (cluster.hardware)."""

    def install(self, hw: "HardwareConfig") -> None:
        self.hw = BrokerHardware(self, hw, self.config)
        self.network = _ResponsePath(self.network, self.hw)

    def _reset_memory(self) -> None:
        super()._reset_memory()
        hw = self.__dict__.get("hw")
        if hw is not None:
            hw.reset()

    def handle(self, msg) -> None:
        t = type(msg)
        hw = self.hw
        if t in REQUESTS and hw.modelled:
            hw.receive(msg)
        elif t is m.FetchResponse and msg.broker in self.fetchers:
            hw.fetched(msg)
        elif t is m.ProduceRequest and hw.disk_ms_per_byte:
            # a disk but no request threads: the write alone delays the request's handling
            now = self.env.now
            done = self.disk.reserve_write(now, msg.nbytes)
            self.schedule(done - now, Broker.handle, self, msg)
        else:
            Broker.handle(self, msg)


def broker_class(cfg: "ClusterConfig") -> type[Broker]:
    """The broker class for the scenario: the plain one unless some broker capacity is set."""
    hw = cfg.hardware
    return HardwareBroker if hw.cpu is not None or hw.disk is not None and hw.disk.write else Broker


def install_hardware(cluster) -> None:
    """Wire `cluster.hardware` into a built cluster (before it starts); a no-op when unlimited."""
    hw = cluster.scenario.cluster.hardware
    if not hw.enabled:
        return
    net = cluster.network
    for b in (*cluster.brokers, *getattr(cluster, "spare_brokers", {}).values()):
        if isinstance(b, HardwareBroker):
            b.install(hw)
        if hw.nic:
            net.set_nic(b, hw.nic, hw.nic)
    client = hw.client
    if client is not None:
        for c in (*cluster.producers, *cluster.consumers):
            if client.nic:
                net.set_nic(c, client.nic, client.nic)
        if client.per_record > 0:
            for p in cluster.producers:
                p.send_capacity = 1000.0 / client.per_record  # records per second
