"""Model invariants, checked over the recorded facts after every run (not asserts in the model).

Each returns human-readable violations; an empty list means the run kept the protocol's rules:

- every producer batch has exactly one final outcome;
- a leader's HW never decreases within its leader epoch, and never exceeds what it holds;
- at most one broker appends as leader in each (partition, leader epoch);
- the final committed log of every partition is contiguous from offset 0, one batch per offset range;
- an acknowledged batch was appended by a leader at the offset its acknowledgement reported;
- log matching: below its own HW, every replica holds what the final leader holds at the same
  offsets (KIP-101/279 truncation by leader epoch), unless an unclean election gave that up.

Guarantees that hold only under conditions (acks=all with min.insync and at most m-1 failures
loses nothing; idempotence means no duplicates) are checked by the tests that set them up.
"""

from __future__ import annotations

import numpy as np

from .recorder import OUTCOMES, Recorder

__all__ = ["check_invariants"]

MAX_REPORTED = 20


def _pair_keys(first: np.ndarray, second: np.ndarray, n_left: int) -> tuple[np.ndarray, np.ndarray]:
    """One int64 key per (first, second) pair, equal exactly when both parts are; the rows are
    split after `n_left` into the keys of the two tables being matched.

    Ids and offsets of a run are small non-negative numbers, so `first * span + second` is exact;
    other values are ranked first, so that no value range can make two pairs collide.
    """
    first, second = first.astype(np.int64), second.astype(np.int64)
    if len(first) == 0:
        return first[:n_left], first[n_left:]
    for part in (first, second):
        if part.min() < 0 or part.max() >= 2**31:
            part[:] = np.unique(part, return_inverse=True)[1]
    key = first * (int(second.max()) + 1) + second
    return key[:n_left], key[n_left:]


def check_invariants(recorder: Recorder) -> list[str]:
    """All violations found in the run's facts (at most MAX_REPORTED per rule)."""
    out: list[str] = []
    names = recorder.partition_names
    pname = (lambda p: names[p] if 0 <= p < len(names) else str(p))  # noqa: E731
    created = recorder.arrays("batch_created")
    done = recorder.arrays("batch_done")
    n = len(created["batch_id"])

    # one final outcome per batch
    outcomes = np.bincount(done["batch_id"], minlength=n) if n else np.zeros(0, dtype=np.int64)
    bad = np.nonzero(outcomes != 1)[0]
    out += [f"batch {b}: {int(outcomes[b])} final outcomes (expected exactly 1)" for b in bad[:MAX_REPORTED]]

    # leader HW monotone within an epoch, and not past the data the leader holds
    hw = recorder.arrays("hw_advanced")
    ap = recorder.arrays("appended")
    if len(hw["hw"]):
        key = np.lexsort((hw["time_ms"], hw["leader_epoch"], hw["partition"], hw["broker"]))
        b, p, e, h = (hw[c][key] for c in ("broker", "partition", "leader_epoch", "hw"))
        same = (b[1:] == b[:-1]) & (p[1:] == p[:-1]) & (e[1:] == e[:-1])
        dec = np.nonzero(same & (h[1:] < h[:-1]))[0]
        out += [f"{pname(int(p[i]))}: HW fell from {int(h[i])} to {int(h[i + 1])} on broker {int(b[i])} in "
                f"epoch {int(e[i])}" for i in dec[:MAX_REPORTED]]
        # What each broker held when it announced each HW: the largest batch end it had appended to
        # that partition by then. Per broker (to bound memory), one sort of its appends and HW rows
        # together by partition and time, appends first at equal times; a running maximum, lifted
        # by a per-partition offset so it restarts for each partition, answers every HW row.
        counts = created["record_count"]
        ends_all = (ap["offset"] + (counts[ap["batch_id"]] if n else 0)).astype(np.int64)
        span = int(max(ends_all.max() if len(ends_all) else 0, 0)) + 2
        reported = 0
        for broker in np.unique(hw["broker"]).tolist():
            sa = np.nonzero(ap["broker"] == broker)[0]
            sh = np.nonzero(hw["broker"] == broker)[0]
            part = np.concatenate((ap["partition"][sa], hw["partition"][sh])).astype(np.int64)
            is_hw = np.concatenate((np.zeros(len(sa), dtype=bool), np.ones(len(sh), dtype=bool)))
            order = np.lexsort((is_hw, np.concatenate((ap["time_ms"][sa], hw["time_ms"][sh])), part))
            lift = part[order] * span
            del part
            value = np.concatenate((ends_all[sa] + 1, np.zeros(len(sh), dtype=np.int64)))[order]  # 0: none yet
            value += lift
            held = np.maximum.accumulate(value) - lift - 1  # -1: nothing appended yet
            del value, lift
            hw_pos = is_hw[order]
            rows = sh[order[hw_pos] - len(sa)]  # this broker's HW rows, by partition and time
            held = np.maximum(held[hw_pos], 0)
            for i in np.nonzero(hw["hw"][rows] > held)[0][:MAX_REPORTED - reported]:
                j = rows[i]
                out.append(f"{pname(int(hw['partition'][j]))}: HW {int(hw['hw'][j])} beyond the {int(held[i])} "
                           f"records broker {broker} held at {hw['time_ms'][j]:.3f} ms")
                reported += 1

    # one leader per (partition, epoch)
    lead = ap["as_leader"].astype(bool)
    if lead.any():
        # one int64 key per (partition, epoch, broker): a 1-D unique is a plain sort
        part, epoch, broker = (ap[c][lead].astype(np.int64) for c in ("partition", "leader_epoch", "broker"))
        nb, ne = int(broker.max()) + 1, int(epoch.max()) + 2
        triples = np.unique((part * ne + (epoch + 1)) * nb + broker)
        pairs, counts = np.unique(triples // nb, return_counts=True)
        for i in np.nonzero(counts > 1)[0][:MAX_REPORTED]:
            out.append(f"{pname(int(pairs[i] // ne))}: {int(counts[i])} brokers appended as leader in epoch "
                       f"{int(pairs[i] % ne) - 1}")

    # the final committed log is contiguous from 0
    fl = recorder.arrays("final_log")
    keep = fl["committed"].astype(bool)
    if keep.any():
        p, off, cnt = fl["partition"][keep], fl["offset"][keep], fl["record_count"][keep]
        order = np.lexsort((off, p))
        p, off, cnt = p[order], off[order], cnt[order]
        first = np.concatenate(([True], p[1:] != p[:-1]))
        expected = np.where(first, 0, np.concatenate(([0], off[:-1] + cnt[:-1])))
        for i in np.nonzero(off != expected)[0][:MAX_REPORTED]:
            out.append(f"{pname(int(p[i]))}: committed log jumps to offset {int(off[i])}, expected {int(expected[i])}")

    # acknowledged offsets are truthful: a leader appended the batch at the offset its answer named
    # (or, answering a retry as a duplicate, where the batch already was). Whether it then survives
    # is durability, counted by the checker: under acks=1 an acknowledged copy can be lost while an
    # earlier copy of the same batch, sent before a retry, survives at another offset.
    acked = done["outcome"] == OUTCOMES.index("acked")
    ab, ao = done["batch_id"][acked].astype(np.int64), done["offset"][acked].astype(np.int64)
    if len(ab):
        lead = ap["as_leader"].astype(bool)
        cb, co = ap["batch_id"][lead].astype(np.int64), ap["offset"][lead].astype(np.int64)
        # a batch appended more than once (a retry without idempotence) may name any of its appends
        acked_key, append_key = _pair_keys(np.concatenate((ab, cb)), np.concatenate((ao, co)), len(ab))
        for i in np.nonzero(~np.isin(acked_key, append_key))[0][:MAX_REPORTED].tolist():
            out.append(f"batch {int(ab[i])}: acknowledged at offset {int(ao[i])} but appended by "
                       f"leaders at {co[cb == ab[i]].tolist()}")

    # log matching: a replica's committed prefix agrees with the leader's log, offset by offset
    rl = recorder.arrays("replica_log")
    if len(rl["offset"]):
        ev = recorder.arrays("events")
        unclean = np.unique(ev["partition"][ev["kind"] == "unclean_election"])
        sel = ~np.isin(rl["partition"], unclean)
        rb, rp, ro, rid = (rl[c][sel] for c in ("broker", "partition", "offset", "batch_id"))
        rkey, lkey = _pair_keys(np.concatenate((rp, fl["partition"])), np.concatenate((ro, fl["offset"])), len(rp))
        order = np.argsort(lkey, kind="stable")
        lkey, lid = lkey[order], fl["batch_id"][order]
        i = np.minimum(np.searchsorted(lkey, rkey), max(len(lkey) - 1, 0))
        found = (lkey[i] == rkey) if len(lkey) else np.zeros(len(rkey), dtype=bool)
        leader_id = np.where(found, lid[i] if len(lid) else -1, -1)
        for j in np.nonzero(leader_id != rid)[0][:MAX_REPORTED]:
            there = f"batch {int(leader_id[j])}" if found[j] else "nothing"
            out.append(f"{pname(int(rp[j]))}: broker {int(rb[j])} holds batch {int(rid[j])} at offset {int(ro[j])} "
                       f"below its HW, but the leader has {there} there")
    return out
