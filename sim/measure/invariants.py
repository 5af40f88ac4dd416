"""Model invariants, checked over the recorded facts after every run (not asserts in the model).

One function per rule, named, composed in `INVARIANTS` (summary.json counts violations per rule
name in ``invariant_violations_by_rule``). Each returns human-readable violations; an empty list
means the run kept the protocol's rule:

- every producer batch has exactly one final outcome;
- a leader's HW never decreases within its leader epoch, and never exceeds what it holds;
- at most one broker appends as leader in each (partition, leader epoch), and one incarnation:
  each epoch is begun (became_leader) once, and every append as leader in it is by the broker that
  began it, after it did and before that broker next crashed (a restarted broker is a new
  incarnation: it may not lead its old epoch again);
- the final committed log of every partition is contiguous from offset 0, one batch per offset range;
- an acknowledged batch was appended by a leader at the offset its acknowledgement reported;
- log matching: below its own HW, every replica holds what the final leader holds at the same
  offsets (KIP-101/279 truncation by leader epoch), unless an unclean election gave that up;
- consumers see committed records only: every batch a consumer received is in the final committed
  log at the offset it was read from, unless an unclean election on its partition gave that up.

Guarantees that hold only under conditions (acks=all with min.insync and at most m-1 failures
loses nothing; idempotence means no duplicates) are checked by the tests that set them up.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

import numpy as np

from sim.model.events import FAULT_START
from sim.model.recorder import OUTCOMES, Recorder

__all__ = ["INVARIANTS", "Invariant", "check_invariants", "check_invariants_by_rule"]

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


@dataclass(frozen=True)
class Invariant:
    """One named rule over a run's facts: `check` returns its violations, worded for a reader."""

    name: str
    rule: str
    check: Callable[["_Facts"], list[str]]


class _Facts:
    """The recorder's tables the rules share, each read once (a rule reads only what it needs)."""

    def __init__(self, recorder: Recorder):
        self.recorder = recorder
        names = recorder.partition_names
        self.pname = (lambda p: names[p] if 0 <= p < len(names) else str(p))  # noqa: E731
        self.created = recorder.arrays("batch_created")
        self.done = recorder.arrays("batch_done")
        self.n = len(self.created["batch_id"])
        self.ap = recorder.arrays("appended")
        self.fl = recorder.arrays("final_log")
        self.keep = self.fl["committed"].astype(bool)
        self.ev = recorder.arrays("events")

    @functools.cached_property
    def given_up(self) -> np.ndarray:
        """Partitions whose committed data was given up: an unclean election, or a power or disk
        loss that cut a log (log_lost_tail); log matching and committed reads are not owed there."""
        ev = self.ev
        return np.unique(ev["partition"][(ev["kind"] == "unclean_election") | (ev["kind"] == "log_lost_tail")])


def one_outcome_per_batch(f: _Facts) -> list[str]:
    """Every producer batch has exactly one final outcome."""
    outcomes = np.bincount(f.done["batch_id"], minlength=f.n) if f.n else np.zeros(0, dtype=np.int64)
    bad = np.nonzero(outcomes != 1)[0]
    return [f"batch {b}: {int(outcomes[b])} final outcomes (expected exactly 1)" for b in bad[:MAX_REPORTED]]


def hw_monotone_in_epoch(f: _Facts) -> list[str]:
    """A leader's HW never decreases within its leader epoch."""
    hw, pname = f.recorder.arrays("hw_advanced"), f.pname
    if not len(hw["hw"]):
        return []
    key = np.lexsort((hw["time_ms"], hw["leader_epoch"], hw["partition"], hw["broker"]))
    b, p, e, h = (hw[c][key] for c in ("broker", "partition", "leader_epoch", "hw"))
    same = (b[1:] == b[:-1]) & (p[1:] == p[:-1]) & (e[1:] == e[:-1])
    dec = np.nonzero(same & (h[1:] < h[:-1]))[0]
    return [f"{pname(int(p[i]))}: HW fell from {int(h[i])} to {int(h[i + 1])} on broker {int(b[i])} in "
            f"epoch {int(e[i])}" for i in dec[:MAX_REPORTED]]


def hw_within_log(f: _Facts) -> list[str]:
    """A leader's HW never exceeds the data it holds."""
    out: list[str] = []
    hw, ap, created, pname = f.recorder.arrays("hw_advanced"), f.ap, f.created, f.pname
    if not len(hw["hw"]):
        return out
    # What each broker held when it announced each HW: the largest batch end it had appended to
    # that partition by then. Per broker (to bound memory), one sort of its appends and HW rows
    # together by partition and time, appends first at equal times; a running maximum, lifted
    # by a per-partition offset so it restarts for each partition, answers every HW row.
    counts = created["record_count"]
    ends_all = (ap["offset"] + (counts[ap["batch_id"]] if f.n else 0)).astype(np.int64)
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
    return out


def one_leader_per_epoch(f: _Facts) -> list[str]:
    """At most one broker, in one incarnation, appends as leader in each (partition, leader epoch)."""
    return _leadership_violations(f.recorder, f.ap, f.pname)


def committed_log_contiguous(f: _Facts) -> list[str]:
    """The final committed log of every partition is contiguous from offset 0."""
    out: list[str] = []
    fl, keep = f.fl, f.keep
    if keep.any():
        p, off, cnt = fl["partition"][keep], fl["offset"][keep], fl["record_count"][keep]
        order = np.lexsort((off, p))
        p, off, cnt = p[order], off[order], cnt[order]
        first = np.concatenate(([True], p[1:] != p[:-1]))
        expected = np.where(first, 0, np.concatenate(([0], off[:-1] + cnt[:-1])))
        for i in np.nonzero(off != expected)[0][:MAX_REPORTED]:
            out.append(f"{f.pname(int(p[i]))}: committed log jumps to offset {int(off[i])}, expected {int(expected[i])}")
    return out


def acks_truthful(f: _Facts) -> list[str]:
    """An acknowledged batch was appended by a leader at the offset its acknowledgement named (or,
    answering a retry as a duplicate, where the batch already was).

    Whether it then survives
    is durability, counted by the checker: under acks=1 an acknowledged copy can be lost while an
    earlier copy of the same batch, sent before a retry, survives at another offset.
    """
    out: list[str] = []
    done, ap = f.done, f.ap
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
    return out


def log_matching(f: _Facts) -> list[str]:
    """Below its own HW, every replica holds what the final leader holds at the same offsets
    (KIP-101/279 truncation by leader epoch), unless the partition's committed data was given up."""
    out: list[str] = []
    fl = f.fl
    rl = f.recorder.arrays("replica_log")
    if len(rl["offset"]):
        sel = ~np.isin(rl["partition"], f.given_up)
        rb, rp, ro, rid = (rl[c][sel] for c in ("broker", "partition", "offset", "batch_id"))
        rkey, lkey = _pair_keys(np.concatenate((rp, fl["partition"])), np.concatenate((ro, fl["offset"])), len(rp))
        order = np.argsort(lkey, kind="stable")
        lkey, lid = lkey[order], fl["batch_id"][order]
        i = np.minimum(np.searchsorted(lkey, rkey), max(len(lkey) - 1, 0))
        found = (lkey[i] == rkey) if len(lkey) else np.zeros(len(rkey), dtype=bool)
        leader_id = np.where(found, lid[i] if len(lid) else -1, -1)
        for j in np.nonzero(leader_id != rid)[0][:MAX_REPORTED]:
            there = f"batch {int(leader_id[j])}" if found[j] else "nothing"
            out.append(f"{f.pname(int(rp[j]))}: broker {int(rb[j])} holds batch {int(rid[j])} at offset {int(ro[j])} "
                       f"below its HW, but the leader has {there} there")
    return out


def consumers_read_committed(f: _Facts) -> list[str]:
    """Every batch a consumer received is in the final committed log at the offset it was read
    from, unless the partition's committed data was given up."""
    out: list[str] = []
    fl, keep = f.fl, f.keep
    con = f.recorder.arrays("consumed")
    if len(con["offset"]):
        sel = ~np.isin(con["partition"], f.given_up)
        cc, cp, co, cid, ct = (con[c][sel] for c in ("consumer", "partition", "offset", "batch_id", "time_ms"))
        fp, fo, fid = fl["partition"][keep], fl["offset"][keep], fl["batch_id"][keep]
        ckey, fkey = _pair_keys(np.concatenate((cp, fp)), np.concatenate((co, fo)), len(cp))
        order = np.argsort(fkey, kind="stable")
        fkey, fid = fkey[order], fid[order]
        i = np.minimum(np.searchsorted(fkey, ckey), max(len(fkey) - 1, 0))
        found = (fkey[i] == ckey) if len(fkey) else np.zeros(len(ckey), dtype=bool)
        there_id = np.where(found, fid[i] if len(fid) else -1, -1)
        cnames = f.recorder.consumer_names
        for j in np.nonzero(there_id != cid)[0][:MAX_REPORTED]:
            who = cnames[cc[j]] if 0 <= cc[j] < len(cnames) else f"consumer {int(cc[j])}"
            there = f"batch {int(there_id[j])}" if found[j] else "nothing"
            out.append(f"{f.pname(int(cp[j]))}: {who} consumed batch {int(cid[j])} at offset {int(co[j])} at "
                       f"{ct[j]:.3f} ms, but the final committed log has {there} there")
    return out


def _rule(fn: Callable[[_Facts], list[str]]) -> Invariant:
    return Invariant(fn.__name__, " ".join((fn.__doc__ or "").split("\n\n")[0].split()), fn)


#: The rules, in the order their violations are listed (the Jepsen/TigerBeetle shape: a list of
#: named checks). A new rule is one function and one row here.
INVARIANTS: tuple[Invariant, ...] = tuple(_rule(fn) for fn in (
    one_outcome_per_batch, hw_monotone_in_epoch, hw_within_log, one_leader_per_epoch,
    committed_log_contiguous, acks_truthful, log_matching, consumers_read_committed))


def check_invariants_by_rule(recorder: Recorder) -> dict[str, list[str]]:
    """Each rule's violations (at most MAX_REPORTED per rule), keyed by the rule's name, in order."""
    facts = _Facts(recorder)
    return {inv.name: inv.check(facts) for inv in INVARIANTS}


def check_invariants(recorder: Recorder) -> list[str]:
    """All violations found in the run's facts (at most MAX_REPORTED per rule), rule by rule."""
    return [v for found in check_invariants_by_rule(recorder).values() for v in found]


def _leadership_violations(recorder: Recorder, ap: dict, pname) -> list[str]:
    """One leader per (partition, epoch) and incarnation, from the became_leader and crash events.

    (a) Each (partition, epoch) is begun once: a second became_leader, even by the same broker
    (restarted while the metadata still named it leader, leading its old epoch again), is a violation.
    (b) Every append as leader in (partition, E) is by the broker that first became leader of E,
    at or after that, and no later than that broker's next crash. Of two brokers appending in one
    epoch, one is not that broker, so (b) implies one leader per epoch.
    In a partition whose leadership the facts do not record (hand-written facts) only the weaker
    rule is checked: at most one broker appends as leader in each epoch.
    """
    out: list[str] = []
    ev = recorder.arrays("events")
    kind = ev["kind"]
    became = kind == "became_leader"
    bp, be = ev["partition"][became].astype(np.int64), ev["value"][became].astype(np.int64)
    bb, bt = ev["broker"][became].astype(np.int64), ev["time_ms"][became]
    lead = ap["as_leader"].astype(bool)
    a_p = ap["partition"][lead].astype(np.int64)
    # which appends are in a partition with recorded leadership (a lookup table: a few partitions
    # against every append)
    n_parts = int(max(bp.max(initial=-1), a_p.max(initial=-1))) + 1
    table = np.zeros(max(n_parts, 0) + 1, dtype=bool)
    table[bp[bp >= 0]] = True
    known = table[np.where(a_p >= 0, a_p, n_parts)]
    if not known.all():
        # at most one broker appends as leader in each (partition, epoch); one int64 key per
        # (partition, epoch, broker): a 1-D unique is a plain sort
        part, epoch, broker = (ap[c][lead][~known].astype(np.int64) for c in ("partition", "leader_epoch", "broker"))
        nb, ne = int(broker.max()) + 1, int(epoch.max()) + 2
        triples = np.unique((part * ne + (epoch + 1)) * nb + broker)
        pairs, counts = np.unique(triples // nb, return_counts=True)
        for i in np.nonzero(counts > 1)[0][:MAX_REPORTED]:
            out.append(f"{pname(int(pairs[i] // ne))}: {int(counts[i])} brokers appended as leader in epoch "
                       f"{int(pairs[i] % ne) - 1}")
    if not len(bp):
        return out
    sel = np.nonzero(lead)[0][known]
    a_p = a_p[known]
    a_e, a_b, a_t = (ap[c][sel] for c in ("leader_epoch", "broker", "time_ms"))
    bkey, akey = _pair_keys(np.concatenate((bp, a_p)), np.concatenate((be, a_e)), len(bp))
    order = np.lexsort((bt, bkey))  # by (partition, epoch), then time
    skey = bkey[order]
    first = np.concatenate(([True], skey[1:] != skey[:-1]))
    starts = np.nonzero(first)[0]
    counts = np.diff(np.append(starts, len(skey)))
    for s, c in zip(starts[counts > 1][:MAX_REPORTED].tolist(), counts[counts > 1][:MAX_REPORTED].tolist()):
        rows = order[s:s + c]
        who = ", ".join(f"broker {int(bb[r])} at {bt[r]:.3f} ms" for r in rows)
        out.append(f"{pname(int(bp[rows[0]]))}: leader epoch {int(be[rows[0]])} begun {c} times ({who})")
    if not len(akey):
        return out

    # the first became_leader of each (partition, epoch), and its broker's next crash after it
    firsts = order[first]
    ukey, f_b, f_t = skey[first], bb[firsts], bt[firsts]
    f_end = np.full(len(firsts), np.inf)
    # the end of an incarnation: any fault that ends the broker's process (a crash, ...), not a pause
    crash = (kind == FAULT_START) & ev["kills_process"].astype(bool)
    c_b, c_t = ev["broker"][crash], ev["time_ms"][crash]
    for b in np.unique(f_b).tolist():
        ct = np.sort(c_t[c_b == b])
        if len(ct):
            mine = f_b == b
            k = np.searchsorted(ct, f_t[mine], side="left")
            f_end[mine] = np.where(k < len(ct), ct[np.minimum(k, len(ct) - 1)], np.inf)
    i = np.minimum(np.searchsorted(ukey, akey), len(ukey) - 1)
    found = ukey[i] == akey
    bad = ~found | (a_b != f_b[i]) | (a_t < f_t[i]) | (a_t > f_end[i])
    for j in np.nonzero(bad)[0][:MAX_REPORTED].tolist():
        head = (f"{pname(int(a_p[j]))}: broker {int(a_b[j])} appended as leader in epoch {int(a_e[j])} at "
                f"{a_t[j]:.3f} ms, ")
        k = i[j]
        if not found[j]:
            out.append(head + f"but no broker became leader of epoch {int(a_e[j])}")
        elif a_b[j] != f_b[k]:
            out.append(head + f"but broker {int(f_b[k])} became leader of epoch {int(a_e[j])}")
        elif a_t[j] < f_t[k]:
            out.append(head + f"before it became leader of that epoch at {f_t[k]:.3f} ms")
        else:
            out.append(head + f"after it crashed at {f_end[k]:.3f} ms (it became leader of that epoch at "
                       f"{f_t[k]:.3f} ms, in an earlier incarnation)")
    return out
