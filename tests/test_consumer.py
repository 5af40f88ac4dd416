"""The consumer's committed offsets, crash and restart, and auto.offset.reset (Tiny clusters)."""

from __future__ import annotations

import pytest

from sim.model.consumer import Consumer
from tests.conftest import Tiny, tiny_scenario


def _tiny(**consumer) -> Tiny:
    group = {"group.id": "g", "topic": "t", "auto.commit.interval.ms": 1000, "fetch.max.wait.ms": 100, **consumer}
    return Tiny(tiny_scenario(consumers=[group]))


def _produce(t: Tiny, *batch_ids: int) -> None:
    """Batches of 10 records, acks=all, to the leader."""
    for bid in batch_ids:
        t.client.produce(t.cluster.network, t.brokers[t.leader()], [t.client.batch(count=10, batch_id=bid)], acks=-1)


def _consumed(t: Tiny, after_ms: float = -1.0) -> list[tuple[int, int]]:
    """(offset, batch id) of every batch consumed after `after_ms`, in order."""
    c = t.recorder.arrays("consumed")
    return [(o, b) for at, o, b in zip(c["time_ms"].tolist(), c["offset"].tolist(), c["batch_id"].tolist())
            if at > after_ms]


def test_auto_commit_writes_the_positions_to_the_groups_store():
    t = _tiny()
    c = t.cluster.consumers[0]
    assert c.committed is t.cluster.group_offsets["g"] and c.committed == {}
    t.run(10)
    _produce(t, 1, 2, 3)
    t.run(999)
    assert c.positions == {0: 30} and c.committed == {}  # nothing committed before the first interval
    t.run(1001)
    assert c.committed == {0: 30}
    assert [(e[4], e[5]) for e in t.events("offset_commit")] == [(30, "g-0")]  # and still an event


def test_a_restarted_consumer_resumes_from_its_committed_offsets():
    """At-least-once: what was consumed after the last commit is consumed again after a restart."""
    t = _tiny()
    c = t.cluster.consumers[0]
    t.run(10)
    _produce(t, 1, 2, 3)
    t.run(1100)  # committed 30 at 1000
    _produce(t, 4, 5)
    t.run(1500)
    assert c.positions == {0: 50} and c.committed == {0: 30}
    c.crash()
    assert not c.alive and c.positions == {0: None}
    _produce(t, 6)  # while it is down
    t.run(2500)
    assert c.committed == {0: 30}  # a dead consumer commits nothing
    c.restart()
    t.run(2600)
    assert _consumed(t, 2500) == [(30, 4), (40, 5), (50, 6)]  # from the committed offset: 4 and 5 again
    t.run(3600)
    assert c.committed == {0: 60}
    assert [e[1] for e in t.events() if e[1].startswith("consumer_")] == ["consumer_crash", "consumer_restart"]


def test_the_committed_offsets_outlive_the_consumer_object():
    """A new consumer instance of the group (another process) starts where the group committed."""
    t = _tiny()
    old = t.cluster.consumers[0]
    t.run(10)
    _produce(t, 1, 2)
    t.run(1100)
    old.crash()
    _produce(t, 3)
    t.run(1200)
    c = t.cluster
    new = Consumer(t.env, 1, "g-0-new", old.config, old.partitions, c.brokers, c.network, t.recorder,
                   old.rng, group_offsets=c.group_offsets)
    c.network.attach(new)
    new.start()
    assert new.committed is old.committed and new.positions == {0: 20}
    t.run(1300)
    assert _consumed(t, 1200) == [(20, 3)]


@pytest.mark.parametrize("reset, expected", [("earliest", [(0, 1), (10, 2), (20, 3), (30, 4), (40, 5)]),
                                             ("latest", [(40, 5)])])
def test_without_committed_offsets_a_restart_applies_auto_offset_reset(reset, expected):
    """earliest: from offset 0; latest: from the partition's HW at the restart (from the answer to
    a fetch at no offset, sent at once), so only what is written after it."""
    t = _tiny(**{"enable.auto.commit": False, "auto.offset.reset": reset})
    c = t.cluster.consumers[0]
    t.run(10)
    _produce(t, 1, 2)
    t.run(500)
    assert _consumed(t) == [(0, 1), (10, 2)]  # a run starts with empty logs: both resets mean offset 0
    c.crash()
    _produce(t, 3, 4)
    t.run(1000)
    c.restart()
    t.run(1100)
    assert c.committed == {} and c.positions == {0: 40}  # latest: the HW; earliest: all read again
    resets = [(e[4], e[5]) for e in t.events("consumer_offset_reset")]
    assert resets == ([(40, "g-0: no committed offset, auto.offset.reset=latest")] if reset == "latest" else [])
    _produce(t, 5)
    t.run(1200)
    assert _consumed(t, 500) == expected


def test_a_restarted_consumer_ignores_answers_to_its_previous_incarnation():
    """A fetch the broker parked before the crash is answered to the new incarnation: it is stale."""
    t = _tiny(**{"fetch.max.wait.ms": 500})
    c = t.cluster.consumers[0]
    t.run(100)  # a long-polled fetch is parked at the leader
    assert c.in_flight
    c.crash()
    c.restart()  # at once: the parked fetch's answer reaches the new incarnation
    t.run(110)
    _produce(t, 1)
    t.run(700)
    assert _consumed(t) == [(0, 1)]  # once, by the new incarnation's own fetch
