"""TimeoutQueue: request deadlines sharing one timer event."""

from __future__ import annotations

import simpy

from sim.model import messages as m
from sim.model.timeouts import TimeoutQueue


def test_only_requests_still_waiting_expire_and_each_expires_once():
    env = simpy.Environment()
    expired = []
    tq = TimeoutQueue(env, 100.0, lambda req: expired.append((env.now, req.request_id)))
    reqs = [m.MetadataRequest(None, i) for i in range(4)]
    tq.add(reqs[0])
    env.run(until=10)
    tq.add(reqs[1])
    tq.add(reqs[2])
    env.run(until=50)
    assert tq.done(reqs[1]) is True  # answered in time: never expires
    env.run(until=200)
    assert expired == [(100.0, 0), (110.0, 2)]
    assert tq.done(reqs[0]) is False  # its answer came too late
    assert tq.done(reqs[3]) is False  # never added
    tq.add(reqs[3])
    tq.clear()  # the owner crashed: nothing that was waiting fires
    env.run(until=1000)
    assert expired == [(100.0, 0), (110.0, 2)]


def test_equal_requests_are_still_distinct_keys():
    env = simpy.Environment()
    expired = []
    tq = TimeoutQueue(env, 5.0, lambda req: expired.append(req))
    a, b = m.MetadataRequest(None, 1), m.MetadataRequest(None, 1)  # same fields, two requests
    tq.add(a)
    tq.add(b)
    assert tq.done(a) is True
    env.run(until=10)
    assert len(expired) == 1 and expired[0] is b


def test_a_request_sent_from_the_timeout_callback_adds_no_second_wake_up_chain():
    """A retry sent when a request times out must not start another wake-up chain: with one chain
    per retry, the wake-ups would grow with the square of the run's length."""
    env = simpy.Environment()
    expired = []
    ids = iter(range(10**6))

    def retry(req):
        expired.append(env.now)
        tq.add(m.MetadataRequest(None, next(ids)))  # the retry goes out at once

    tq = TimeoutQueue(env, 10.0, retry)
    for _ in range(3):
        tq.add(m.MetadataRequest(None, next(ids)))
    wake_ups = 0
    while env.peek() < 10_005:
        env.step()
        wake_ups += 1
    assert len(expired) == 3 * 1000  # each request and each retry expires once, every 10 ms
    assert wake_ups == 1000  # one wake-up per deadline (a chain per retry made it 500,500)
