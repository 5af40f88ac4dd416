"""The lifecycle every actor shares: brokers, the controller, producers and consumers are nodes.

A node's `lifecycle` is up, crashed (its process died; the host and its TCP stack are up, so peers see resets),
paused (a stop-the-world pause or SIGSTOP: nothing runs, but connections stay open and the kernel
keeps accepting bytes) or powered off (the host is down: no resets, no answers). An incarnation
counts the node's starts; everything a node receives or has scheduled belongs to one incarnation.

The node is also the network endpoint (`scope`, `endpoint_id`, `alive`, `host_up`, `incarnation`,
`handle`, `connection_lost`: see `Network`), and it owns one way to run code later:
`schedule(delay, callback, *args)`. A crash cancels what was scheduled (the callback runs only
while the node is alive in the incarnation that scheduled it); a pause defers it to `resume()`.

Pausing costs nothing while no node is paused: `pause()` shadows the node's `handle` and
`connection_lost` with methods that queue what arrives, so the network's delivery point calls the
same attribute whatever the state, and `resume()` removes the shadows and replays the queue in
arrival order. Scheduled callbacks and inbound messages share that queue, so they replay in the
order they would have run. SimPy processes of the node (heartbeat loops and the like) are not
paused by the network: each periodic loop asks `paused` after its wait and, if so, yields
`until_resumed()`, so a task that fell due during the pause runs right after it, as a JVM thread
scheduled during a stop-the-world pause does. Request timeouts kept outside `schedule` (the
TimeoutQueues) go through `deferring(callback)`, which queues the call while paused.

The node's host also has a wall clock, `wall_ms()` (Java's System.currentTimeMillis, Kafka's
`time.milliseconds()`): simulated time, unless a clock_skew fault stepped it or made it drift
(`skew_clock`). Timers that Kafka runs on the wall clock read it; timers on the monotonic clock
(System.nanoTime: schedulers, event-queue deadlines, the controller's broker sessions) read `env.now`.

Pauses nest: a node paused again while paused (a GC pause inside a frozen VM, two pause faults that
overlap) stays frozen until every pause has ended (`pause_depth` counts them); a crash ends them all.
"""

from __future__ import annotations

from functools import partial
from typing import Callable

import simpy

__all__ = ["Node", "UP", "CRASHED", "PAUSED", "POWERED_OFF"]

UP = "up"
CRASHED = "crashed"
PAUSED = "paused"
POWERED_OFF = "powered_off"


class Node:
    """A process on a host, as the network and the fault injector see it."""

    base_name = "node"

    def init_node(self, env: simpy.Environment, scope: str, up: bool = True, incarnation: int = 1) -> None:
        """Set the lifecycle fields (called from the component's `__init__`)."""
        self.env = env
        self.scope = scope
        self.endpoint_id = scope
        self.lifecycle = UP if up else CRASHED
        self.alive = up  # a plain attribute, not a property: the network reads it for every message
        self.host_up = True
        self.incarnation = incarnation
        self._paused: list | None = None  # while paused: what arrived or fell due, in order
        self._resumed: simpy.Event | None = None  # while paused: what the node's processes wait on
        self.pause_depth = 0  # the pauses in effect: the node runs again when the last one ends
        self._handle_below: Callable | None = None  # while paused: the shadow of `handle` the pause covers (a slow disk)
        # the host's clock (a restart of the process keeps its skew): wall_ms() = clock_base + clock_rate * env.now
        self._skews: dict[object, tuple[float, float, float]] = {}  # fault -> (step ms, drift ppm, since ms)
        self.clock_base, self.clock_rate = 0.0, 1.0

    # --- timers ----------------------------------------------------------------------------
    def schedule(self, delay: float, callback: Callable, *args) -> None:
        """Call `callback(*args)` after `delay` ms, unless the node crashes first; a pause defers it."""
        self.env.timeout(delay).callbacks.append(partial(self._fire, self.incarnation, callback, args))

    def _fire(self, incarnation: int, callback: Callable, args: tuple, _ev=None) -> None:
        if not self.alive or self.incarnation != incarnation:
            return  # crashed since (and maybe restarted): the timer died with its incarnation
        if self._paused is not None:
            self._paused.append((callback, args))
            return
        callback(*args)

    def deferring(self, callback: Callable) -> Callable:
        """`callback`, but called only while the node runs: during a pause the call waits for `resume()`."""
        def call(*args) -> None:
            if self._paused is not None:
                self._paused.append((callback, args))
            else:
                callback(*args)
        return call

    @property
    def paused(self) -> bool:
        return self._paused is not None

    def until_resumed(self) -> simpy.Event:
        """An event that fires when the current pause ends (a crash meanwhile leaves it pending)."""
        if self._resumed is None:
            self._resumed = self.env.event()
        return self._resumed

    # --- wall clock ------------------------------------------------------------------------
    def wall_ms(self) -> float:
        """The host's wall clock now (System.currentTimeMillis): simulated time plus any clock skew."""
        return self.clock_base + self.clock_rate * self.env.now

    def skew_clock(self, key: object, step_ms: float, drift_ppm: float = 0.0) -> None:
        """Step the wall clock by `step_ms` (negative: back) and make it run `drift_ppm` fast from now on."""
        self._skews[key] = (step_ms, drift_ppm, self.env.now)
        self._set_clock()

    def unskew_clock(self, key: object) -> bool:
        """Set the clock right again (an NTP step back to true time); False if `key` had not skewed it."""
        if self._skews.pop(key, None) is None:
            return False
        self._set_clock()
        return True

    def _set_clock(self) -> None:
        # wall(t) = t + sum(step + drift * (t - since)) over the skews in effect
        rate = sum(d for _, d, _ in self._skews.values()) * 1e-6
        self.clock_rate = 1.0 + rate
        self.clock_base = sum(step - d * 1e-6 * since for step, d, since in self._skews.values())

    # --- lifecycle -------------------------------------------------------------------------
    def mark_up(self) -> None:
        """The node's process starts (or restarts): a new incarnation begins."""
        self.lifecycle = UP
        self.alive = True
        self.host_up = True
        self.incarnation += 1

    def mark_crashed(self) -> None:
        """The node's process died: what it had paused or scheduled is gone."""
        if self._paused is not None:
            self._unshadow()
        self.lifecycle = CRASHED
        self.alive = False

    def mark_powered_off(self) -> None:
        """The host lost power: no process, no TCP stack (peers get no reset, messages vanish).

        What a power loss does to memory and disk (crash, then truncate each log to its flushed
        offset) is the fault's business; this only sets the state the network sees.
        """
        self.mark_crashed()
        self.lifecycle = POWERED_OFF
        self.host_up = False

    def pause(self) -> bool:
        """Stop the world: inbound messages and due timers wait, in order, until `resume()`.

        True if the node stopped now; a node already paused stays paused one `resume()` longer
        (False), and a node that is not up (crashed, powered off) is not paused (False).
        """
        if self.lifecycle == PAUSED:
            self.pause_depth += 1
            return False
        if self.lifecycle != UP:
            return False
        self.lifecycle = PAUSED
        self.pause_depth = 1
        self._paused = []
        # Shadow the delivery methods on the instance; what ran before (the class's methods, or a
        # slow disk's shadow of `handle`) runs again on resume.
        self._handle_below = self.__dict__.get("handle")
        self.handle = self._queue_message
        self.connection_lost = self._queue_connection_lost
        return True

    def resume(self) -> bool:
        """End a pause: when it is the last one in effect, deliver what arrived and run what fell
        due meanwhile, in that order. True if the node runs again now."""
        if self.lifecycle != PAUSED:
            return False
        if self.pause_depth > 1:  # another pause still holds the node
            self.pause_depth -= 1
            return False
        queued, resumed = self._paused, self._resumed
        self._unshadow()
        self.lifecycle = UP
        incarnation = self.incarnation
        if resumed is not None:
            resumed.succeed()  # the node's processes go on after what was queued (callbacks run first)
        for i, (callback, args) in enumerate(queued):
            if not self.alive or self.incarnation != incarnation:
                return True  # crashed while catching up
            if self._paused is not None:  # paused again by what it just ran: the rest waits
                self._paused[:0] = queued[i:]
                return True
            callback(*args)
        return True

    def _unshadow(self) -> None:
        below = self._handle_below
        del self.handle
        del self.connection_lost
        if below is not None:
            self.handle = below
            self._handle_below = None
        self._paused = None
        self._resumed = None
        self.pause_depth = 0

    def _queue_message(self, msg: object) -> None:
        self._paused.append((self._deliver, (msg,)))

    def _deliver(self, msg: object) -> None:
        """A message queued during a pause: handled as one arriving now would be (through a slow disk, if any)."""
        self.handle(msg)

    def shadow_handle(self, handler: Callable) -> None:
        """Put `handler` in front of the class's `handle` (a slow disk); during a pause it takes over on resume."""
        if self._paused is not None:
            self._handle_below = handler
        else:
            self.handle = handler

    def unshadow_handle(self, handler: Callable) -> None:
        """Remove `handler` put there by `shadow_handle` (if it is still the one in place)."""
        if self._paused is not None:
            if self._handle_below == handler:
                self._handle_below = None
        elif self.__dict__.get("handle") == handler:
            del self.handle

    def _queue_connection_lost(self, peer: object) -> None:
        self._paused.append((type(self).connection_lost.__get__(self), (peer,)))

    # --- what every node does with the network ----------------------------------------------
    def handle(self, msg: object) -> None:  # pragma: no cover - every node dispatches its own messages
        raise NotImplementedError

    def connection_lost(self, peer: object) -> None:
        """A peer's connection was reset; nodes that keep requests in flight override this."""
