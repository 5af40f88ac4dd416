"""Consumers after log truncation (KIP-320), and what poll() returns and auto-commit commits.

After an unclean election the new leader's log diverges from what a consumer has read. Kafka's
consumer validates its position against the leader's epochs (SubscriptionState.maybeCompleteValidation
after OffsetsForLeaderEpoch; a fetch carrying lastFetchedEpoch gets the same answer as a diverging
epoch, Partition.readRecords) and seeks to the first offset known to diverge: it re-reads nothing
it read before that point and skips nothing committed after it. auto.offset.reset is only for an
offset that is really out of range (no epoch to validate against). The bundled scenario
`scenarios/faults/unclean-consumer.yaml` is run in tests/test_faults_clients.py.
"""

from __future__ import annotations

import pytest

from sim.model import messages as m
from tests.conftest import Tiny, tiny_scenario



def _fetch(t: Tiny, offset: int, last_epoch: int, current_epoch: int = 0) -> m.PartitionData:
    """A consumer fetch of partition 0 from its leader, answered at once."""
    c = t.client
    c.responses.clear()
    req = m.FetchRequest(c, next(c._ids), -1, 0.0, 1 << 20, 1 << 20, [m.PartitionFetch(0, offset, last_epoch, current_epoch)])
    t.cluster.network.send(c, t.brokers[t.leader()], req, 0)
    t.run(t.env.now + 5)
    (resp,) = [msg for _, msg in c.responses if isinstance(msg, m.FetchResponse)]
    (pd,) = resp.partitions
    return pd


def test_the_leader_answers_a_consumer_fetch_carrying_its_last_fetched_epoch_like_a_followers():
    """Partition.readRecords: the epoch's end offset below the fetch offset is a diverging epoch (no
    data); an epoch the leader never had, newer than any of its own, too; without an epoch, an offset
    past the log end is OFFSET_OUT_OF_RANGE."""
    t = Tiny(tiny_scenario())
    t.run(10)
    for bid in (1, 2, 3):
        t.client.produce(t.cluster.network, t.brokers[t.leader()], [t.client.batch(count=10, batch_id=bid)], acks=-1)
    t.run(100)
    pd = _fetch(t, 20, 0)
    assert pd.error == m.NONE and pd.diverging_epoch is None and list(pd.batch_id) == [3]
    pd = _fetch(t, 40, 0)
    assert pd.error == m.NONE and pd.diverging_epoch == (0, 30) and not pd.base
    pd = _fetch(t, 20, 7)
    assert pd.diverging_epoch == (0, 30) and not pd.base
    assert _fetch(t, 40, -1).error == m.OFFSET_OUT_OF_RANGE
    assert _fetch(t, 20, 0, current_epoch=1).error == m.UNKNOWN_LEADER_EPOCH


def test_auto_commit_commits_only_what_was_handed_to_the_application():
    """ConsumerCoordinator.maybeAutoCommitOffsetsAsync runs inside poll() and commits the positions
    of the records earlier polls returned, never of records fetched and not yet returned. kafkasim
    hands a fetch's batches to the application when the fetch arrives (a poll loop with no
    processing time returns them at once, max.poll.records at a time) and counts them consumed
    then: so every commit is exactly the end of what was consumed before it, partition by partition,
    through a leader crash and its failover."""
    import sim
    from pathlib import Path

    res = sim.run(Path(__file__).resolve().parents[1] / "scenarios/quickstart.yaml", seed=1,
                  overrides={"duration": "30s", "settle": "5s", "faults.0.at": "10s", "faults.0.restart_after": "10s"})
    b, ev = res.batches, res.events
    got = b[b["times_consumed"] > 0]
    assert got["record_count"].sum() == res.summary["records_consumed"] > 100_000
    commits = ev[ev["kind"] == "offset_commit"]
    assert len(commits) >= 6
    ends = (got["offset"] + got["record_count"]).to_numpy()
    for t, value in zip(commits["time_ms"], commits["value"]):
        before = got["consumed_ms"].to_numpy() <= t
        end_per_partition = (got[before].assign(end=ends[before]).groupby("partition", observed=True)["end"].max())
        assert value == int(end_per_partition.sum()), t
