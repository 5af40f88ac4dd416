"""The real clients' JSON lines turned into the facts the simulator records, so the same checker and
metrics (`sim.measure`) measure both.

A real "batch" is one record: VerifiableProducer reports each record's fate on its own line
(``producer_send_success`` with partition and offset, ``producer_send_error`` with the exception).
Record ``i`` of producer ``k`` (value ``"k.i"``, ``--value-prefix k``) is batch id ``base_k + i``;
it arrived at ``startup + i / throughput`` (VerifiableProducer's ThroughputThrottler aims at that
open-loop schedule, which is the simulator's constant arrival), was acknowledged at the callback's
timestamp, by the broker that led its partition at that time according to the metadata poller.
Records the producer never answered for (killed at the end, or still in flight) stay ``unknown``.

The final logs are KafkasimAdmin's ``dump`` of every partition from the beginning up to its end
offset (the high watermark: read_uncommitted), so every record in it is committed. Consumers'
``record_data`` lines (VerifiableConsumer ``--verbose``) are the ``consumed`` facts. The metadata
poller's ``partition_state`` lines become ``leader_elected``, ``partition_offline``,
``unclean_election`` and ``isr_change`` events (its resolution is its polling interval, 100 ms,
plus the metadata propagation to the broker it asked); the leader epoch of those events counts
the leader changes the poller saw (a same-leader re-election between two polls is invisible).
"""

from __future__ import annotations

import re
import time
from bisect import bisect_right
from dataclasses import dataclass, field

from sim.model.events import FAULT_END, FAULT_SKIPPED, FAULT_START
from sim.model.recorder import OUTCOMES, Recorder

__all__ = ["ProducerLog", "outcome_of_error", "parse_value", "LeaderTimeline", "build_recorder",
           "partition_events"]

ACKED, FAILED, UNKNOWN = (OUTCOMES.index(o) for o in ("acked", "failed", "unknown"))

# Exceptions after which the record may or may not be in the log (the request may have been
# written before the answer was lost): the simulator's "unknown". Every other error is definite.
AMBIGUOUS = ("TimeoutException", "NetworkException", "DisconnectException", "InterruptException",
             "KafkaException")


def outcome_of_error(exception: str) -> int:
    """FAILED or UNKNOWN for a producer_send_error's exception class ('class org...TimeoutException')."""
    name = exception.rsplit(".", 1)[-1]
    return UNKNOWN if name in AMBIGUOUS else FAILED


def parse_value(value: str | None) -> tuple[int, int] | None:
    """(producer index, record sequence) of a value 'k.i' written with --value-prefix k (the
    sequence counts the warm-up records too: see ProducerLog.skip)."""
    if not value:
        return None
    k, _, i = value.partition(".")
    if not (k.isdigit() and i.isdigit()):
        return None
    return int(k), int(i)


@dataclass
class ProducerLog:
    """One VerifiableProducer's output: its index (value prefix), throughput and JSON lines."""

    index: int
    name: str
    throughput: float
    lines: list[dict]
    skip: int = 0
    """Warm-up records (sequences below this) sent before time zero: not counted (the simulator's
    producers have their metadata and connections at time zero; a fresh JVM needs a second or two)."""
    startup_ms: float | None = None
    """When its ThroughputThrottler started: the earliest of its startup_complete line and of
    ``ack - sequence / throughput`` over its acknowledgements (a record is never sent before its
    turn, and startup_complete is printed some ms after the throttler starts)."""
    records: int = 0
    """How many records it tried after the warm-up: the tool's own count, else the highest sequence
    it reported, + 1, minus `skip`."""

    def __post_init__(self) -> None:
        top = -1
        earliest = None
        for d in self.lines:
            name = d.get("name")
            if name == "startup_complete" and self.startup_ms is None:
                self.startup_ms = float(d["timestamp"])
            elif name == "tool_data":
                self.records = max(self.records, int(d.get("sent", 0)))
            elif name in ("producer_send_success", "producer_send_error"):
                v = parse_value(d.get("value"))
                if v is not None:
                    top = max(top, v[1])
                    if name == "producer_send_success" and v[1] >= self.skip:
                        s = float(d["timestamp"]) - v[1] * 1000.0 / self.throughput
                        earliest = s if earliest is None else min(earliest, s)
        self.records = max(0, max(self.records, top + 1) - self.skip)
        if earliest is not None:
            self.startup_ms = earliest if self.startup_ms is None else min(self.startup_ms, earliest)


@dataclass
class LeaderTimeline:
    """Each partition's leader over time, from the poller (for the broker that answered an ack)."""

    times: dict[str, list[float]] = field(default_factory=dict)
    leaders: dict[str, list[int]] = field(default_factory=dict)
    epochs: dict[str, list[int]] = field(default_factory=dict)

    def add(self, partition: str, t: float, leader: int, epoch: int) -> None:
        self.times.setdefault(partition, []).append(t)
        self.leaders.setdefault(partition, []).append(leader)
        self.epochs.setdefault(partition, []).append(epoch)

    def at(self, partition: str, t: float) -> tuple[int, int]:
        """(leader, epoch) of `partition` at time `t` ((-1, -1) before the first poll)."""
        ts = self.times.get(partition)
        if not ts:
            return -1, -1
        k = bisect_right(ts, t) - 1
        if k < 0:
            return self.leaders[partition][0], self.epochs[partition][0]
        return self.leaders[partition][k], self.epochs[partition][k]


UNCLEAN_LINE = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3})\].*UNCLEAN partition change for (\S+) "
                          r"with topic ID \S+: isr: \[([\d, ]*)\] -> \[[\d, ]*\], leader: -?\d+ -> (\d+)")


FENCE_LINE = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3})\].*Fencing broker (\d+) at epoch (\d+) "
                        r"because its session has timed out")


def _log_ms(stamp: str, millis: str) -> float:
    return time.mktime(time.strptime(stamp, "%Y-%m-%d %H:%M:%S")) * 1000.0 + int(millis)


CHANGE_LINE = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3})\].*?(UNCLEAN )?partition change for (\S+) "
                         r"with topic ID \S+: (.*?)(?: \(org\.apache\S*\))?$")
CREATE_LINE = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3})\].*Replayed PartitionRecord for new "
                         r"partition (\S+) with topic ID \S+ and PartitionRegistration\(replicas=\[([\d, ]*)\].*?"
                         r"isr=\[([\d, ]*)\].*?leader=(-?\d+).*?leaderEpoch=(\d+)")
DIFF_FIELD = re.compile(r"(\w+): (\[[^\]]*\]|[^,]+?) -> (\[[^\]]*\]|[^,]+?)(?:, |$)")


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.strip("[]").replace(" ", "").split(",") if x]


def controller_log_events(text: str) -> list[dict]:
    """What the controller's own log says about partitions and brokers, each with the controller's time:

    - ``partition_created`` (``Replayed PartitionRecord for new partition``, INFO) and
      ``partition_change`` (PartitionRegistration.maybeLogPartitionChange: ``partition change for``
      at DEBUG, which the harness enables for ReplicationControlManager, or ``UNCLEAN partition
      change`` at INFO) with leader, ISR and leader epoch before and after: the elections and ISR
      changes as the controller committed them, the authoritative source when present;
    - ``unclean_election`` (`unclean_from_controller_log`);
    - ``broker_fenced`` ("Fencing broker N at epoch E because its session has timed out").
    """
    out = unclean_from_controller_log(text)
    for line in text.splitlines():
        m = FENCE_LINE.match(line)
        if m:
            out.append({"timestamp": _log_ms(m.group(1), m.group(2)), "name": "broker_fenced",
                        "broker": int(m.group(3)), "epoch": int(m.group(4))})
            continue
        m = CREATE_LINE.match(line)
        if m:
            out.append({"timestamp": _log_ms(m.group(1), m.group(2)), "name": "partition_created",
                        "partition": m.group(3), "replicas": _ints(m.group(4)), "isr": _ints(m.group(5)),
                        "leader": int(m.group(6)), "leader_epoch": int(m.group(7))})
            continue
        m = CHANGE_LINE.match(line)
        if m:
            diff = {f.group(1): (f.group(2), f.group(3)) for f in DIFF_FIELD.finditer(m.group(5))}
            d = {"timestamp": _log_ms(m.group(1), m.group(2)), "name": "partition_change",
                 "partition": m.group(4), "unclean": bool(m.group(3))}
            if "isr" in diff:
                d["isr_before"], d["isr"] = _ints(diff["isr"][0]), _ints(diff["isr"][1])
            if "leader" in diff:
                d["leader_before"], d["leader"] = int(diff["leader"][0]), int(diff["leader"][1])
            if "leaderEpoch" in diff:
                d["leader_epoch"] = int(diff["leaderEpoch"][1])
            out.append(d)
    return sorted(out, key=lambda d: d["timestamp"])


def unclean_from_controller_log(text: str) -> list[dict]:
    """The controller's "UNCLEAN partition change for <topic-partition>" lines
    (ReplicationControlManager, INFO) as unclean_election records: the authoritative source (the
    poller can miss the ISR a partition had when it was offline). Log times are the JVM's local time."""
    out = []
    for line in text.splitlines():
        m = UNCLEAN_LINE.match(line)
        if not m:
            continue
        when = _log_ms(m.group(1), m.group(2))
        isr = [int(x) for x in m.group(4).replace(" ", "").split(",") if x]
        out.append({"timestamp": when, "name": "unclean_election", "partition": m.group(3),
                    "leader": int(m.group(5)), "isr_before": isr})
    return out


def controller_partition_events(rec: Recorder, facts: list[dict], t0: float, names: list[str]) -> LeaderTimeline:
    """Leader and ISR events from the controller's log (`controller_log_events`), with the real leader epochs."""
    index = {n: i for i, n in enumerate(names)}
    timeline = LeaderTimeline()
    state: dict[str, dict] = {}
    for d in facts:
        p = d.get("partition")
        if p not in index:
            continue
        t, pi = max(0.0, float(d["timestamp"]) - t0), index[p]
        if d["name"] == "partition_created":
            state[p] = {"leader": d["leader"], "isr": tuple(d["isr"]), "epoch": d["leader_epoch"]}
            rec.event(t, "leader_elected", d["leader"], pi, d["leader_epoch"], "initial", reason="initial")
            rec.event(t, "isr_change", d["leader"], pi, len(d["isr"]), "initial", isr=tuple(d["isr"]), isr_before=(),
                      reason="initial")
            timeline.add(p, t, d["leader"], d["leader_epoch"])
        elif d["name"] == "partition_change" and p in state:
            st = state[p]
            if "leader_epoch" in d:
                st["epoch"] = d["leader_epoch"]
            if "leader" in d:
                st["leader"] = d["leader"]
                if d["leader"] < 0:
                    rec.event(t, "partition_offline", -1, pi, st["epoch"], "controller log", reason="no eligible leader")
                else:
                    if d.get("unclean"):
                        rec.event(t, "unclean_election", d["leader"], pi, st["epoch"], "controller log",
                                  isr_before=tuple(d.get("isr_before", st["isr"])))
                    rec.event(t, "leader_elected", d["leader"], pi, st["epoch"], "controller log",
                              reason="unclean" if d.get("unclean") else "clean")
                timeline.add(p, t, st["leader"], st["epoch"])
            if "isr" in d:
                st["isr"] = tuple(d["isr"])
                rec.event(t, "isr_change", st["leader"], pi, len(d["isr"]), "controller log", isr=tuple(d["isr"]),
                          isr_before=tuple(d["isr_before"]), reason="controller log")
    return timeline


def partition_events(rec: Recorder, poller: list[dict], t0: float, names: list[str],
                     unclean: list[dict] | None = None) -> LeaderTimeline:
    """The poller's partition_state lines as leader/ISR events (times in ms since t0; before t0 -> 0).

    `unclean`: the controller log's facts (`controller_log_events`). When they include the
    partitions' creation and changes (the controller logged at DEBUG), they are the source of the
    leader and ISR events and the poller is not used; else the poller's lines are, with unclean
    elections from the log (without it a new leader outside the last ISR the poller saw counts as unclean)."""
    if unclean and any(d.get("name") == "partition_created" and d.get("partition") in names for d in unclean):
        timeline = controller_partition_events(rec, unclean, t0, names)
        for d in unclean:
            if d.get("name") == "broker_fenced":
                rec.event(max(0.0, float(d["timestamp"]) - t0), "broker_fenced", int(d["broker"]), -1,
                          int(d["epoch"]), "session timed out (controller log)")
        return timeline
    index = {n: i for i, n in enumerate(names)}
    timeline = LeaderTimeline()
    last: dict[str, dict] = {}
    epoch: dict[str, int] = {}
    for d in sorted((d for d in poller if d.get("name") == "partition_state"), key=lambda d: d["timestamp"]):
        p = d["partition"]
        if p not in index:
            continue
        t = max(0.0, float(d["timestamp"]) - t0)
        pi = index[p]
        leader, isr = int(d["leader"]), tuple(int(b) for b in d["isr"])
        prev = last.get(p)
        if prev is None or prev["leader"] != leader:
            epoch[p] = epoch.get(p, -1) + 1
            if leader < 0:
                rec.event(t, "partition_offline", -1, pi, epoch[p], "no leader (poller)", reason="poller")
            else:
                if unclean is None and prev is not None and leader not in prev["isr"]:
                    rec.event(t, "unclean_election", leader, pi, epoch[p], "leader outside the last ISR",
                              isr_before=tuple(prev["isr"]))
                rec.event(t, "leader_elected", leader, pi, epoch[p],
                          "initial" if prev is None else "poller", reason="initial" if prev is None else "poller")
            timeline.add(p, t, leader, epoch[p])
        if prev is None or tuple(prev["isr"]) != isr:
            rec.event(t, "isr_change", leader, pi, len(isr), "poller", isr=isr,
                      isr_before=() if prev is None else tuple(prev["isr"]), reason="poller")
        last[p] = {"leader": leader, "isr": isr}
    for d in unclean or ():
        if d.get("name") == "broker_fenced":
            rec.event(max(0.0, float(d["timestamp"]) - t0), "broker_fenced", int(d["broker"]), -1, int(d["epoch"]),
                      "session timed out (controller log)")
        elif d["partition"] in index:
            rec.event(max(0.0, float(d["timestamp"]) - t0), "unclean_election", int(d["leader"]), index[d["partition"]],
                      -1, "controller log", isr_before=tuple(d["isr_before"]))
    return timeline


def build_recorder(names: list[str], producers: list[ProducerLog], consumers: list[list[dict]],
                   poller: list[dict], dump: list[dict], faults: list, t0: float,
                   consumer_names: list[str] | None = None, unclean: list[dict] | None = None) -> Recorder:
    """Every fact of a real run in a Recorder, as the simulator would have recorded them.

    `faults` are sim.real.faults.FaultRecord (times already relative to t0); all other times are
    wall-clock ms, made relative to `t0`.
    """
    rec = Recorder(names, [p.name for p in producers], consumer_names or [f"consumer-{i}" for i in range(len(consumers))])
    index = {n: i for i, n in enumerate(names)}
    for f in faults:
        fields = dict(fault=f.kind, fault_index=f.index, fault_source="faults", target=f.target,
                      takes_down=_takes_down(f.kind, f.broker), kills_process=_kills(f.kind))
        if f.skipped:
            rec.event(f.start_ms, FAULT_SKIPPED, f.broker, -1, f.index, f"{f.kind}: {f.reason}", reason=f.reason, **fields)
            continue
        rec.event(f.start_ms, FAULT_START, f.broker, -1, f.index, f.kind, **fields)
    timeline = partition_events(rec, poller, t0, names, unclean)
    for f in faults:
        if not f.skipped and f.end_ms is not None:
            rec.event(f.end_ms, FAULT_END, f.broker, -1, f.index, f"{f.kind} ended", reason=f.reason,
                      **dict(fault=f.kind, fault_index=f.index, fault_source="faults", target=f.target,
                             takes_down=_takes_down(f.kind, f.broker), kills_process=_kills(f.kind)))

    # the final logs: where each record is (its partition, even when the producer never learnt it)
    base: dict[int, int] = {}
    nxt = 0
    for p in producers:
        base[p.index] = nxt
        nxt += p.records
    where: dict[int, int] = {}
    final = []
    for d in dump:
        if d.get("name") != "record" or d.get("partition") not in index:
            continue
        bid = _batch_id(producers, base, d.get("value"))
        if bid is None:
            continue
        pi = index[d["partition"]]
        where.setdefault(bid, pi)
        final.append((pi, int(d["offset"]), bid, int(d.get("leader_epoch", -1))))

    done = []
    for p in producers:
        start = p.startup_ms if p.startup_ms is not None else t0
        answer: dict[int, dict] = {}
        for d in p.lines:
            if d.get("name") in ("producer_send_success", "producer_send_error"):
                v = parse_value(d.get("value"))
                if v is not None and v[0] == p.index and v[1] >= p.skip and v[1] - p.skip not in answer:
                    answer[v[1] - p.skip] = d  # the first answer counts (a record has one callback)
        for i in range(p.records):
            bid = base[p.index] + i
            arrival = start + (i + p.skip) * 1000.0 / p.throughput - t0
            d = answer.get(i)
            partition = index.get(d.get("topic", "") + "-" + str(d.get("partition"))) \
                if d is not None and d.get("name") == "producer_send_success" else None
            if partition is None:
                partition = where.get(bid, -1)
            rec.batch_created(bid, p.index, partition, 1, i, arrival, arrival)
            rec.batch_sent(arrival, bid, -1, 1)
            if d is None:
                continue
            t = float(d["timestamp"]) - t0
            if d["name"] == "producer_send_success":
                broker, epoch = timeline.at(names[partition], t) if partition >= 0 else (-1, -1)
                off = int(d["offset"])
                rec.appended(t, broker, partition, off, bid, epoch)
                done.append((t, bid, ACKED, off, broker))
            else:
                done.append((t, bid, outcome_of_error(str(d.get("exception", ""))), -1, -1))
    for row in sorted(done):
        rec.batch_done(*row)

    for ci, lines in enumerate(consumers):
        rows = []
        for d in lines:
            if d.get("name") != "record_data":
                continue
            bid = _batch_id(producers, base, d.get("value"))
            key = f"{d.get('topic')}-{d.get('partition')}"
            if bid is None or key not in index:
                continue
            rows.append((float(d["timestamp"]) - t0, index[key], int(d["offset"]), bid))
        for t, pi, off, bid in sorted(rows):
            rec.consumed_many(t, ci, pi, [off], [bid])

    import numpy as np
    for pi in range(len(names)):
        rows = sorted((off, bid, ep) for (p, off, bid, ep) in final if p == pi)
        if rows:
            offs = np.array([r[0] for r in rows], dtype=np.int64)
            rec.final_log(pi, _q(offs), _q([r[1] for r in rows]), _q([1] * len(rows)), [int(r[2]) for r in rows],
                          int(offs.max()) + 1)
    return rec


def _q(values):
    from array import array

    return array("q", [int(v) for v in values])


def _batch_id(producers: list[ProducerLog], base: dict[int, int], value: str | None) -> int | None:
    """The batch id of a record value, None for a warm-up record or a value not ours."""
    v = parse_value(value)
    if v is None or v[0] not in base:
        return None
    p = next(p for p in producers if p.index == v[0])
    i = v[1] - p.skip
    return base[v[0]] + i if 0 <= i < p.records else None


def _takes_down(kind: str, broker: int) -> bool:
    from sim.real.faults import TAKES_DOWN

    return bool(TAKES_DOWN.get(kind, False)) and broker >= 0


def _kills(kind: str) -> bool:
    from sim.real.faults import KILLS_PROCESS

    return bool(KILLS_PROCESS.get(kind, False))
