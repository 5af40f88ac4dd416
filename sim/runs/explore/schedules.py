"""Random fault schedules over a base scenario: which kinds, which targets, when, for how long.

Schedule `i` of a search is drawn from its own generator (the search seed and `i`), so the same
seed gives the same schedules whatever the number of workers or the budget, and schedule 7 of a
budget of 10 is schedule 7 of a budget of 1,000. A schedule is a scenario's `faults:` list (plain
dicts, durations as unit strings), so a counterexample is written as an ordinary scenario file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from sim.scenario.schema import Scenario
from sim.scenario.units import format_ms, parse_duration_ms

__all__ = ["FAULT_KINDS", "DEFAULT_KINDS", "Space", "parse_kinds", "generate", "overlap_ok", "KindsError",
           "fault_window", "heal_key", "describe_fault"]

FAULT_KINDS = {
    "crash": "crash", "shutdown": "controlled_shutdown", "controlled_shutdown": "controlled_shutdown",
    "partition": "partition", "degrade": "degrade", "pause": "pause", "power": "power_loss",
    "power_loss": "power_loss", "disk": "disk_loss", "disk_loss": "disk_loss", "slow_disk": "slow_disk",
    "controller": "controller_outage", "controller_outage": "controller_outage",
    "producer_crash": "producer_crash", "consumer_crash": "consumer_crash", "consumer_pause": "consumer_pause",
}
"""What `--faults` accepts (short names and the scenario's own kind names) -> the fault kind."""

DEFAULT_KINDS = ("crash", "partition", "pause", "power_loss")


class KindsError(ValueError):
    """An unknown fault kind for the search: one line naming the allowed ones."""


def parse_kinds(kinds) -> tuple[str, ...]:
    """`crash,partition,...` (or a list) -> fault kinds, in the order given, without repeats."""
    items = kinds.split(",") if isinstance(kinds, str) else list(kinds)
    out = []
    for k in items:
        k = str(k).strip().lower().replace("-", "_")
        if not k:
            continue
        if k not in FAULT_KINDS:
            raise KindsError(f"faults: unknown fault kind {k!r}; allowed: {', '.join(dict.fromkeys(FAULT_KINDS))}")
        out.append(FAULT_KINDS[k])
    if not out:
        raise KindsError(f"faults: name at least one fault kind; allowed: {', '.join(dict.fromkeys(FAULT_KINDS))}")
    return tuple(dict.fromkeys(out))


@dataclass(frozen=True)
class Space:
    """What the search draws from: the fault kinds, how many faults, when, and how long."""

    kinds: tuple[str, ...] = DEFAULT_KINDS
    max_faults: int = 3
    window: tuple[float, float] = (0.0, 0.0)
    """Start times are drawn from [window[0], window[1]) ms."""
    shortest: float = 1_000.0
    longest: float = 45_000.0
    """Fault lengths are log-uniform in [shortest, longest] ms (past `duration`, the heal ends them)."""
    max_concurrent: int | None = None
    """At most this many faults in effect at any instant (None: no limit)."""
    brokers: int = 3
    partitions: tuple[str, ...] = ()
    producers: tuple[str, ...] = ()
    consumers: tuple[str, ...] = ()
    racks: tuple[str, ...] = field(default=())

    @classmethod
    def of(cls, scenario: Scenario, kinds=DEFAULT_KINDS, max_faults: int = 3, window: tuple[float, float] | None = None,
           max_concurrent: int | None = None) -> "Space":
        """The space over `scenario`: its brokers, partitions and clients; faults start within `window`
        (default: the middle 80% of the produce period)."""
        d = float(scenario.duration)
        win = window if window is not None else (round(0.1 * d), round(0.9 * d))
        producers = [name for _, name in scenario.producer_instances()]
        consumers = [name for _, _, name in scenario.consumer_instances()]
        racks = tuple(dict.fromkeys(scenario.cluster.racks or ())) if scenario.cluster.racks else ()
        return cls(tuple(kinds), int(max_faults), (float(win[0]), float(win[1])), max_concurrent=max_concurrent,
                   brokers=scenario.cluster.brokers,
                   partitions=tuple(scenario.partition_names()),
                   producers=tuple(producers), consumers=tuple(consumers), racks=racks if len(racks) > 1 else ())


def _ms(x: float) -> str:
    return format_ms(float(round(x)))


def _length(rng: np.random.Generator, space: Space) -> float:
    lo, hi = math.log(space.shortest), math.log(max(space.longest, space.shortest))
    return float(round(math.exp(rng.uniform(lo, hi))))


def _partition(rng: np.random.Generator, space: Space, focus: str | None) -> str:
    """Mostly the schedule's focus partition: faults on one partition's replicas are the ones that interact
    (its follower out of the ISR, then its leader down), and a search finds those sequences far sooner."""
    if focus is not None and rng.random() < FOCUS:
        return focus
    return space.partitions[int(rng.integers(len(space.partitions)))]


FOCUS = 0.8
"""The share of a schedule's partition targets that name its focus partition."""


def _broker_target(rng: np.random.Generator, space: Space, kind: str, focus: str | None = None) -> dict:
    """A broker target: the leader or a follower of a partition, a broker id, or (host faults) a set."""
    r = rng.random()
    if space.partitions and r < 0.45:
        return {"leader_of": _partition(rng, space, focus)}
    if space.partitions and r < 0.8:
        return {"follower_of": _partition(rng, space, focus)}
    if kind in ("power_loss", "crash") and r < 0.87:
        # correlated: a rack, or a whole data centre losing power at once
        if space.racks:
            return {"rack": space.racks[int(rng.integers(len(space.racks)))]}
        if space.brokers > 1:
            return {"brokers": list(range(space.brokers))}
    return {"broker": int(rng.integers(space.brokers))}


def _fault(rng: np.random.Generator, space: Space, kind: str, at: float, focus: str | None = None) -> dict:
    """One fault of `kind` starting at `at`, as a scenario's `faults:` entry."""
    length = _length(rng, space)
    f: dict = {"kind": kind, "at": _ms(at)}
    if kind in ("crash", "power_loss", "disk_loss", "controlled_shutdown"):
        f.update(_broker_target(rng, space, kind, focus))
        f["restart_after"] = _ms(length)
    elif kind in ("partition", "degrade"):
        f.update(_broker_target(rng, space, kind, focus))
        between = [["all"], ["peers"], ["controller"], ["clients"], ["peers", "controller"]]
        f["between"] = between[int(rng.choice(len(between), p=[0.4, 0.2, 0.15, 0.1, 0.15]))]
        f["direction"] = ["both", "inbound", "outbound"][int(rng.choice(3, p=[0.6, 0.2, 0.2]))]
        if kind == "degrade":
            f["latency"] = {"dist": "constant", "value": _ms(math.exp(rng.uniform(math.log(5), math.log(2000))))}
            f["loss"] = float(round(rng.choice([0.0, 0.01, 0.1, 0.3]), 2))
        f["heal"] = _ms(length)
    elif kind == "pause":
        if rng.random() < 0.1:
            f["controller"] = True
        else:
            f.update(_broker_target(rng, space, kind, focus))
        f["duration"] = _ms(length)
    elif kind == "slow_disk":
        f.update(_broker_target(rng, space, kind, focus))
        f["latency"] = _ms(math.exp(rng.uniform(math.log(1), math.log(500))))
        f["duration"] = _ms(length)
    elif kind == "controller_outage":
        f["duration"] = _ms(length)
    elif kind in ("producer_crash",):
        f["producer"] = space.producers[int(rng.integers(len(space.producers)))]
        f["restart_after"] = _ms(length)
    elif kind == "consumer_crash":
        f["consumer"] = space.consumers[int(rng.integers(len(space.consumers)))]
        f["restart_after"] = _ms(length)
    elif kind == "consumer_pause":
        f["consumer"] = space.consumers[int(rng.integers(len(space.consumers)))]
        f["duration"] = _ms(length)
    else:  # pragma: no cover - FAULT_KINDS and this function list the same kinds
        raise KindsError(f"faults: no generator for kind {kind!r}")
    return f


def _usable(space: Space) -> list[str]:
    kinds = [k for k in space.kinds if not (k.startswith("producer") and not space.producers)
             and not (k.startswith("consumer") and not space.consumers)]
    if not kinds:
        raise KindsError(f"faults: none of {', '.join(space.kinds)} has a target in this scenario "
                         f"(client faults need producers or consumers)")
    return kinds


HEAL_FIELDS = ("restart_after", "heal", "duration")
"""The field that says how long a fault lasts, by kind (crash: restart_after; partition: heal; pause: duration)."""
TARGET_FIELDS = ("broker", "leader_of", "follower_of", "brokers", "rack", "zone", "producer", "consumer")


def heal_key(f: dict) -> str | None:
    """The field of a `faults:` entry that says how long it lasts (None: it lasts until the heal at `duration`)."""
    return next((k for k in HEAL_FIELDS if isinstance(f.get(k), str)), None)


def fault_window(f: dict) -> tuple[float, float]:
    """[start, end) of a `faults:` entry in ms."""
    at = parse_duration_ms(f["at"])
    key = heal_key(f)
    return at, at + (parse_duration_ms(f[key]) if key else math.inf)


def describe_fault(f: dict, length: bool = False) -> str:
    """'crash of leader_of events-0 at 12000ms' (and ' for 5s' with `length`), for shrink steps and descriptions."""
    target = next((f"{k} {f[k]}" for k in TARGET_FIELDS if k in f), "the controller")
    key = heal_key(f) if length else None
    return f"{f.get('kind', 'crash')} of {target} at {f['at']}" + (f" for {f[key]}" if key else "")


def overlap_ok(faults: list[dict], limit: int | None) -> bool:
    """Whether at most `limit` of `faults` are in effect at any instant."""
    if limit is None:
        return True
    edges = sorted([(a, 1) for a, _ in map(fault_window, faults)] + [(b, -1) for _, b in map(fault_window, faults)],
                   key=lambda e: (e[0], e[1]))
    on = 0
    for _, d in edges:
        on += d
        if on > limit:
            return False
    return True


def generate(space: Space, seed: int, index: int) -> list[dict]:
    """Schedule `index` of the search with `seed`: 1..max_faults faults, in order of start time."""
    rng = np.random.default_rng([int(seed), 0x5EA2C4, int(index)])
    kinds = _usable(space)
    lo, hi = space.window
    n = int(rng.integers(1, space.max_faults + 1))
    focus = space.partitions[int(rng.integers(len(space.partitions)))] if space.partitions else None
    faults: list[dict] = []
    for _ in range(n):
        for _try in range(20):  # keep to max_concurrent by drawing again
            kind = kinds[int(rng.integers(len(kinds)))]
            # whole milliseconds, never `hi` itself (a fault at `duration` is not a valid one)
            f = _fault(rng, space, kind, float(min(math.floor(rng.uniform(lo, hi)), math.ceil(hi) - 1)), focus)
            if overlap_ok(faults + [f], space.max_concurrent):
                faults.append(f)
                break
    return sorted(faults, key=lambda f: fault_window(f)[0])
