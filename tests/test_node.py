"""The node lifecycle shared by every actor: timers a crash cancels and a pause defers, and the
network's one delivery point (a paused node's messages wait in order; a dead node's are dropped)."""

from __future__ import annotations

import numpy as np
import simpy

from sim.model.distributions import Distribution
from sim.model.network import Network
from sim.model.node import CRASHED, PAUSED, POWERED_OFF, UP, Node


class Echo(Node):
    """A node that logs what it receives and when."""

    def __init__(self, env: simpy.Environment, name: str):
        self.init_node(env, f"test.{name}")
        self.log: list = []

    def handle(self, msg) -> None:
        self.log.append((self.env.now, "msg", msg))

    def connection_lost(self, peer) -> None:
        self.log.append((self.env.now, "reset", peer.scope))

    def tick(self, what) -> None:
        self.log.append((self.env.now, "timer", what))


def _pair():
    env = simpy.Environment()
    net = Network(env, Distribution("constant", np.random.default_rng(0), value=1.0))
    a, b = Echo(env, "a"), Echo(env, "b")
    net.attach(a)
    net.attach(b)
    return env, net, a, b


def test_a_scheduled_timer_runs_after_its_delay():
    env, _, a, _ = _pair()
    a.schedule(5.0, a.tick, "x")
    env.run(10)
    assert a.log == [(5.0, "timer", "x")]


def test_a_crash_cancels_a_scheduled_timer_even_after_a_restart():
    env, _, a, _ = _pair()
    a.schedule(5.0, a.tick, "before crash")
    env.run(1)
    a.mark_crashed()
    assert a.lifecycle == CRASHED and not a.alive
    env.run(2)
    a.mark_up()
    a.schedule(5.0, a.tick, "after restart")
    env.run(20)
    assert a.log == [(7.0, "timer", "after restart")] and a.incarnation == 2


def test_a_pause_defers_timers_and_queues_messages_in_order_until_resume():
    env, net, a, b = _pair()
    a.pause()
    assert a.lifecycle == PAUSED and a.alive  # connections stay open: peers see no reset
    b_sends = [(0.5, "m1"), (2.5, "m2"), (4.0, "m3")]
    for at, msg in b_sends:
        env.timeout(at).callbacks.append(lambda _ev, msg=msg: net.send(b, a, msg))
    a.schedule(3.0, a.tick, "t1")  # falls due between m2 (3.5) and m3 (5.0)
    env.run(10)
    assert a.log == []  # nothing ran while paused
    a.resume()
    assert a.lifecycle == UP
    assert a.log == [(10, "msg", "m1"), (10, "timer", "t1"), (10, "msg", "m2"), (10, "msg", "m3")]
    net.send(b, a, "m4")  # after resume, delivery is direct again
    env.run(12)
    assert a.log[-1] == (11.0, "msg", "m4")


def test_a_pause_costs_the_delivery_path_nothing_once_resumed():
    _, _, a, _ = _pair()
    a.pause()
    assert "handle" in vars(a)  # shadowed on the instance while paused
    a.resume()
    assert "handle" not in vars(a) and "connection_lost" not in vars(a)


def test_a_crash_while_paused_drops_what_was_waiting():
    env, net, a, b = _pair()
    a.pause()
    net.send(b, a, "lost")
    a.schedule(1.0, a.tick, "lost too")
    env.run(5)
    a.mark_crashed()
    a.resume()  # not paused any more: nothing to do
    a.mark_up()
    env.run(10)
    assert a.log == []


def test_overlapping_pauses_nest_the_node_runs_again_when_the_last_one_ends():
    env, net, a, b = _pair()
    assert a.pause() is True
    a.schedule(1.0, a.tick, "t1")
    env.run(2)
    assert a.pause() is False and a.pause_depth == 2  # paused again while paused: held one resume longer
    net.send(b, a, "m1")
    env.run(5)
    assert a.resume() is False  # the first pause ends; the second still holds the node
    assert a.lifecycle == PAUSED and a.log == [] and "handle" in vars(a)
    env.run(8)
    assert a.resume() is True and a.lifecycle == UP and a.pause_depth == 0
    assert a.log == [(8, "timer", "t1"), (8, "msg", "m1")]
    assert a.resume() is False  # not paused: nothing to do


def test_a_crash_ends_every_pause_and_a_restarted_node_is_paused_afresh():
    env, _, a, _ = _pair()
    a.pause()
    a.pause()
    a.mark_crashed()
    assert a.pause_depth == 0 and a.pause() is False  # a dead process cannot be stopped
    a.mark_up()
    assert a.pause() is True and a.pause_depth == 1
    assert a.resume() is True and a.lifecycle == UP


def test_a_message_to_a_crashed_node_is_dropped_and_the_sender_sees_a_reset():
    env, net, a, b = _pair()
    a.mark_crashed()
    net.send(b, a, "hello")
    env.run(5)
    assert a.log == []
    assert b.log == [(2.0, "reset", "test.a")]  # process down, host up: refused one latency later


def test_a_message_to_a_restarted_node_from_before_its_restart_is_dropped():
    env, net, a, b = _pair()
    net.send(b, a, "to the old incarnation")
    a.mark_crashed()
    a.mark_up()
    env.run(5)
    assert a.log == []


def test_a_powered_off_node_drops_messages_without_a_reset():
    env, net, a, b = _pair()
    a.mark_powered_off()
    assert a.lifecycle == POWERED_OFF and not a.host_up
    net.send(b, a, "hello")
    env.run(5)
    assert a.log == [] and b.log == []
