"""Property-based tests: random clusters, workloads and crash schedules must keep Kafka's rules.

Hypothesis draws a scenario and a fault schedule; each example is a short real simulation.
A failing example is shrunk and printed as a scenario YAML that reproduces it
(`kafkasim run that.yaml --seed N`). Each property is two tests: a quick one in the default run (40
examples, 10 for the costlier ones, so the suite stays under 10 minutes on 2 cores) and the full one,
named `..._full`, behind the slow marker (`pytest -m slow`: 150 examples per property, many more with
`pytest -m slow --slow`). The quick one keeps the test's name and source, so Hypothesis (derandomized:
its draws follow from the test's source) draws the first examples of the original 150.
"""

from __future__ import annotations

import os
from typing import NamedTuple

import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, note, settings
from hypothesis import strategies as st

import sim
from sim.scenario.schema import Scenario
from sim.scenario.faults import FAULT_KINDS, FaultSpec, ScheduledFault, union_kinds
from tests.test_producer import REQUESTS_OVERTOOK
from tests.violations import all_violations

PROFILE = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
SLOW = bool(os.environ.get("KAFKASIM_SLOW"))  # set by `pytest --slow`
N = 2000 if SLOW else 150
"""Examples of a full property test (marked slow)."""
QUICK_N = 40
"""Examples of its quick twin in the default run: each example is a real run of 3-6 simulated seconds."""


@st.composite
def scenarios(draw, acks=None, idempotence=None, fault_schedule=None, consumers_required=False):
    """A scenario and a seed; `fault_schedule(ctx)` (a strategy) draws its faults and random_faults instead of
    the crash schedule."""
    brokers = draw(st.integers(3, 5))
    rf = draw(st.integers(2, min(3, brokers)))
    min_isr = draw(st.integers(1, rf))
    partitions = draw(st.integers(1, 4))
    acks_v = draw(st.sampled_from([0, 1, "all"])) if acks is None else acks
    duration_ms = draw(st.integers(3000, 6000))
    instances = draw(st.integers(1, 3))
    consumers = [{"group.id": "g", "topic": "t"}] if consumers_required else draw(
        st.sampled_from([[], [{"group.id": "g", "topic": "t"}]]))
    faults, random_faults = [], []
    if fault_schedule is not None:
        producer_names = ["producer-0"] if instances == 1 else [f"producer-0-{i}" for i in range(instances)]
        faults, random_faults = draw(fault_schedule(Ctx(brokers, partitions, duration_ms, tuple(producer_names),
                                                        ("g-0",) if consumers else ())))
    for _ in range(draw(st.integers(0, 3)) if fault_schedule is None else 0):
        at = draw(st.integers(200, duration_ms - 100))
        target = draw(st.one_of(st.builds(lambda b: {"broker": b}, st.integers(0, brokers - 1)),
                                st.builds(lambda p: {"leader_of": f"t-{p}"}, st.integers(0, partitions - 1))))
        restart = draw(st.one_of(st.none(), st.integers(300, 5000)))
        f = {"kind": "crash", "at": f"{at}ms", **target}
        if restart is not None:
            f["restart_after"] = f"{restart}ms"
        faults.append(f)
    producer = {
        "topic": "t", "rate": f"{draw(st.integers(500, 8000))}/s",
        "arrival": draw(st.sampled_from(["poisson", "constant"])), "acks": acks_v,
        "instances": instances,
        "linger.ms": draw(st.sampled_from([1, 5, 20])),
        "keys": draw(st.one_of(st.none(), st.integers(1, 50))),
    }
    if acks_v == "all" and idempotence is not None:
        producer["enable.idempotence"] = idempotence
    data = {
        "name": "property",
        "duration": f"{duration_ms}ms",
        "settle": "6s",
        # a short replica.lag.time.max.ms lets followers leave and rejoin the ISR within a run
        "cluster": {"brokers": brokers, "broker.session.timeout.ms": 1500, "broker.heartbeat.interval.ms": 300,
                    "replica.lag.time.max.ms": draw(st.sampled_from([300, 1000, 30000]))},
        "network": {"latency": {"dist": "lognormal", "median": f"{draw(st.sampled_from([0.2, 1.0, 3.0]))}ms",
                                "sigma": draw(st.sampled_from([0.1, 0.5, 1.0]))}},
        "topics": [{"name": "t", "partitions": partitions, "replication.factor": rf, "min.insync.replicas": min_isr}],
        "producers": [producer],
        "consumers": consumers,
        "faults": faults,
    }
    if random_faults:
        data["random_faults"] = random_faults
    return Scenario.resolve(data), draw(st.integers(0, 2**16))


def _run(sc: Scenario, seed: int):
    note(f"# reproduce: kafkasim run scenario.yaml --seed {seed}\n{sc.to_yaml()}")
    return sim.run(sc, seed=seed)


def _max_down(events) -> int:
    """The most brokers that were down at the same time during the run."""
    ev = events[events["kind"].isin(["fault_start", "fault_end"])].sort_values("time_ms", kind="stable")
    down, worst = set(), 0
    for kind, b in zip(ev["kind"], ev["broker"]):
        (down.add if kind == "fault_start" else down.discard)(int(b))
        worst = max(worst, len(down))
    return worst


@settings(max_examples=QUICK_N, **PROFILE)
@given(scenarios())
def test_invariants_hold_under_random_faults(case):
    sc, seed = case
    with all_violations() as found:
        r = _run(sc, seed)
    s = r.summary
    assert s["invariant_violations"] == len(found)
    assert found == [], found[:5]
    b = r.batches
    assert s["records_acked"] + s["records_failed"] + s["records_unknown"] == int(b.record_count.sum())
    assert s["offline_partitions_at_end"] == 0  # every fault healed, no unclean election needed
    # ... and every replica caught up (truncating what diverged) and rejoined the ISR during the settle
    assert s["under_replicated_partitions_at_end"] == 0
    # a definite error means the batch was never appended: no "failed" record may survive
    assert s["failed_but_present"] == 0
    # a partition is unavailable until the leader elected after the fault takes a write: never
    # available again before that election
    for f in s["failovers"]:
        if f["first_ack_ms"] is not None:
            assert f["elected_ms"] is not None and f["first_ack_ms"] >= f["elected_ms"], f


@pytest.mark.slow
@settings(max_examples=N, **PROFILE)
@given(scenarios())
def test_invariants_hold_under_random_faults_full(case):
    test_invariants_hold_under_random_faults.hypothesis.inner_test(case)


# Truncation must rebuild the idempotent producer state (Log.truncate_to): without that, a leader
# answers a retry of a batch it truncated as a duplicate, with an offset its log no longer has, and
# this example loses 34 acknowledged records (0 with the rebuild). 150 random examples missed it.
TRUNCATION_FORGETS_SEQUENCES = (Scenario.resolve({
    "name": "property", "duration": "7420ms", "settle": "6s",
    "cluster": {"brokers": 5, "broker.session.timeout.ms": 1500, "broker.heartbeat.interval.ms": 300,
                "replica.lag.time.max.ms": 300},
    "network": {"latency": {"dist": "lognormal", "median": "1.0ms", "sigma": 1.0}},
    "topics": [{"name": "t", "partitions": 3, "replication.factor": 3, "min.insync.replicas": 3}],
    "producers": [{"topic": "t", "rate": "6135/s", "acks": "all", "enable.idempotence": True}],
    "consumers": [{"group.id": "g", "topic": "t"}],
    "faults": [{"kind": "crash", "at": "596ms", "leader_of": "t-2"},
               {"kind": "crash", "at": "682ms", "leader_of": "t-1", "restart_after": "403ms"},
               {"kind": "crash", "at": "2183ms", "broker": 3, "restart_after": "3691ms"}],
}), 42620)


# A link is FIFO (TCP): a message that drew a shorter latency than the one before it is held to that
# one's arrival. SimPy fires a timer at now + delay, and float rounding fired such a held message an
# ulp before the one it waited behind: this producer's first three requests to t-3's leader arrived
# as sequences 2, 0, 1, the leader took 2 from a producer it did not know and refused 0 and 1 as out
# of order, and the log ended with 15 records reordered (0 since Network schedules with _delay_until).
REQUESTS_OVERTOOK_ON_ONE_CONNECTION = (Scenario.resolve(REQUESTS_OVERTOOK), 45764)


def _lossy(probability: float, until_ms: float):
    """A `prepare` hook: every link loses `probability` of its messages until `until_ms` (faults heal)."""
    def prepare(cluster):
        cluster.network.set_loss_all(probability)
        cluster.env.timeout(until_ms).callbacks.append(lambda _ev: cluster.network.set_loss_all(0.0))
    return prepare


@settings(max_examples=QUICK_N // 4, **PROFILE)
@given(scenarios(), st.sampled_from([0.002, 0.01, 0.05]))
def test_invariants_hold_and_replicas_recover_with_message_loss(case, loss):
    """Every request/response exchange survives the loss of either message (timeouts and retries, as
    Kafka has them): nothing wedges, and after the settle every replica is back in the ISR."""
    sc, seed = case
    note(f"# every link loses {loss:.1%} of its messages until {sc.duration:.0f} ms")
    # a lost follower fetch waits out replica.socket.timeout.ms (30 s): settle long enough for it
    sc = sc.model_copy(update={"settle": 45_000.0})
    r = sim.run(sc, seed=seed, prepare=_lossy(loss, sc.duration))
    s = r.summary
    assert s["invariant_violations"] == 0, s["invariant_examples"]
    assert s["offline_partitions_at_end"] == 0
    assert s["under_replicated_partitions_at_end"] == 0
    assert s["failed_but_present"] == 0


@pytest.mark.slow
@settings(max_examples=N // 5, **PROFILE)
@given(scenarios(), st.sampled_from([0.002, 0.01, 0.05]))
def test_invariants_hold_and_replicas_recover_with_message_loss_full(case, loss):
    test_invariants_hold_and_replicas_recover_with_message_loss.hypothesis.inner_test(case, loss)


@settings(max_examples=QUICK_N, **PROFILE)
@given(scenarios(acks="all", idempotence=True))
@example(TRUNCATION_FORGETS_SEQUENCES)
@example(REQUESTS_OVERTOOK_ON_ONE_CONNECTION)
def test_acks_all_within_min_isr_minus_one_failures_loses_nothing(case):
    """design.html: a committed message is not lost while at most min.insync-1 replicas fail at once."""
    sc, seed = case
    r = _run(sc, seed)
    m = sc.topics[0].min_insync_replicas
    if _max_down(r.events) <= m - 1:
        assert r.summary["acked_lost"] == 0, r.summary
    # idempotent producers never duplicate or reorder, whatever failed
    assert r.summary["duplicates"] == 0 and r.summary["reordered"] == 0


@pytest.mark.slow
@settings(max_examples=N, **PROFILE)
@given(scenarios(acks="all", idempotence=True))
@example(TRUNCATION_FORGETS_SEQUENCES)
@example(REQUESTS_OVERTOOK_ON_ONE_CONNECTION)
def test_acks_all_within_min_isr_minus_one_failures_loses_nothing_full(case):
    test_acks_all_within_min_isr_minus_one_failures_loses_nothing.hypothesis.inner_test(case)


@settings(max_examples=QUICK_N // 4, **PROFILE)
@given(scenarios())
def test_same_seed_same_facts(case):
    sc, seed = case
    a, b = _run(sc, seed), _run(sc, seed)
    pd.testing.assert_frame_equal(a.batches, b.batches)
    pd.testing.assert_frame_equal(a.events, b.events)
    drop = lambda s: {k: v for k, v in s.items() if k != "wall_time_s"}  # noqa: E731
    assert drop(a.summary) == drop(b.summary)


@pytest.mark.slow
@settings(max_examples=N // 3, **PROFILE)
@given(scenarios())
def test_same_seed_same_facts_full(case):
    test_same_seed_same_facts.hypothesis.inner_test(case)


# --- the random-schedule property test: every fault kind of the FaultSpec union -----------------
# Kinds are discovered from the union, so a kind merged later is drawn without touching this file,
# unless it needs parameters: then it needs a strategy in KIND_PARAMS (test_every_fault_kind_can_be_drawn
# says which). A strategy draws the kind's own fields (and its target, if it is not a base selector).
class Ctx(NamedTuple):
    """What a fault strategy may target: the drawn cluster."""

    brokers: int
    partitions: int
    duration_ms: int
    producers: tuple = ("producer-0",)  # instance names
    consumers: tuple = ()


def _ms(lo: int, hi: int):
    return st.integers(lo, hi).map(lambda v: f"{v}ms")


def _base_target(ctx: Ctx):
    """A base target selector: a broker or the leader of a partition (the selectors of ScheduledFault)."""
    return st.one_of(st.builds(lambda b: {"broker": b}, st.integers(0, ctx.brokers - 1)),
                     st.builds(lambda p: {"leader_of": f"t-{p}"}, st.integers(0, ctx.partitions - 1)))


def _links(ctx: Ctx):
    return st.fixed_dictionaries({"between": st.lists(st.sampled_from(["peers", "controller", "clients", "all"]),
                                                      min_size=1, max_size=2, unique=True),
                                  "direction": st.sampled_from(["both", "outbound", "inbound"])})


KIND_PARAMS = {
    # kind -> (ctx -> strategy of the kind's own fields without its heal field); a kind missing here is
    # drawn with none of its own fields, which works only if it needs none. A strategy may draw the
    # target itself (a client instance, the controller): such a kind is not drawn as a random process.
    "crash": lambda ctx: st.just({}),
    "power_loss": lambda ctx: st.just({}),
    "disk_loss": lambda ctx: st.just({}),
    "controlled_shutdown": lambda ctx: st.just({}),
    "slow_disk": lambda ctx: st.fixed_dictionaries({"latency": _ms(1, 50)}),
    "partition": _links,
    "degrade": lambda ctx: _links(ctx).flatmap(lambda links: st.one_of(
        st.fixed_dictionaries({"latency": st.just({"dist": "constant", "value": "5ms"})}),
        st.fixed_dictionaries({"loss": st.sampled_from([0.01, 0.1])})).map(lambda d: {**links, **d})),
    "pause": lambda ctx: st.one_of(st.just({}), st.just({"controller": True})),
    "controller_outage": lambda ctx: st.just({"controller": True}),
    "clock_skew": lambda ctx: st.one_of(st.fixed_dictionaries({"offset": st.sampled_from(["-60s", "-1s", "5m"])}),
                                        st.just({"drift_ppm": 20_000.0}), st.just({"controller": True, "offset": "1m"})),
    "producer_crash": lambda ctx: st.sampled_from(ctx.producers).map(lambda n: {"producer": n}),
    "consumer_crash": lambda ctx: (st.sampled_from(ctx.consumers).map(lambda n: {"consumer": n}) if ctx.consumers
                                   else st.nothing()),
    "consumer_pause": lambda ctx: (st.sampled_from(ctx.consumers).map(lambda n: {"consumer": n}) if ctx.consumers
                                   else st.nothing()),
    # operator actions (no heal: they run to their end or their bound)
    "rolling_restart": lambda ctx: st.fixed_dictionaries({
        "brokers": st.lists(st.integers(0, ctx.brokers - 1), min_size=1, max_size=ctx.brokers, unique=True),
        "downtime": _ms(0, 2000), "check_interval": st.just("200ms"), "max_wait": _ms(500, 5000)}),
    "leader_election": lambda ctx: st.one_of(
        st.just({"partitions": [f"t-{p}" for p in range(ctx.partitions)]}),
        st.integers(0, ctx.partitions - 1).map(lambda p: {"partitions": [f"t-{p}"]})),
}
# Operator actions that change the cluster's shape are not drawn here: a reassignment's replica lists must match
# the drawn topic's replication factor and brokers are added with the next free id, so each has its own
# scenarios and tests (tests/test_faults_operator.py); rolling_restart and leader_election are drawn.
NOT_DRAWN = {"reassign_partitions": "tests/test_faults_operator.py", "add_broker": "tests/test_faults_operator.py",
             "remove_broker": "tests/test_faults_operator.py"}
OPERATOR = {"rolling_restart", "leader_election", *NOT_DRAWN}  # no heal field: nothing to draw for it
# Kinds the random-schedule test does not draw yet, with the defect this test found in each when the
# fault kinds merged (issue 13 stays open for them). None at the moment: degrade and controller_outage
# (tests/test_faults_network.py, test_faults_process.py) and overlapping pauses of one node or consumer
# (they nest, each ending itself: tests/test_faults_process.py, test_faults_clients.py) left it fixed.
KNOWN_DEFECTS: dict[str, str] = {}
KNOWN_HANGS = set(KNOWN_DEFECTS) | set(NOT_DRAWN)
# kinds whose target is not a broker: they are scheduled only (a random process picks brokers)
NOT_RANDOM = {"controller_outage", "producer_crash", "consumer_crash", "consumer_pause", *OPERATOR}
OWN_TARGETS = {"controller", "producer", "consumer", "partitions"}  # target fields a kind's strategy may draw itself


def _heal(kind: str, params: dict) -> str | None:
    """The field that sets `kind`'s heal_after (found as the random processes find it); None: an operator action."""
    from sim.scenario.faults import _heal_field
    if kind in OPERATOR:
        return None
    field = _heal_field(KINDS[kind], kind, params)
    assert field is not None, f"fault kind {kind!r} has no field that sets heal_after: a schedule cannot heal it"
    return field


KINDS = union_kinds(FaultSpec)
assert KINDS == FAULT_KINDS["faults"]


def _params(kind: str, ctx: Ctx):
    if kind in KIND_PARAMS:
        return KIND_PARAMS[kind](ctx)
    return st.just({})


def _kind_problem(kind: str) -> str | None:
    """Why `kind` cannot be drawn (no strategy, and it needs parameters), or None."""
    if kind in KIND_PARAMS or kind in NOT_DRAWN:
        return None
    try:
        KINDS[kind].model_validate({"kind": kind, "at": "1ms", "broker": 0})
    except Exception as e:  # noqa: BLE001 -- reported as the failure
        first = str(e).splitlines()
        return (f"fault kind {kind!r} needs parameters: add a strategy for it to KIND_PARAMS in "
                f"tests/test_properties.py ({' '.join(first[:3])})")
    return None


def test_every_fault_kind_can_be_drawn():
    problems = [p for k in KINDS if (p := _kind_problem(k))]
    assert not problems, "\n".join(problems)


@st.composite
def any_fault_schedule(draw, ctx: Ctx, kind: str):
    """Scheduled faults and random fault processes of any kind of the union, at least one of `kind`."""
    kinds = sorted(set(KINDS) - KNOWN_HANGS)
    faults, random_faults = [], []
    for i in range(draw(st.integers(1, 3))):
        k = kind if i == 0 else draw(st.sampled_from([k for k in kinds if ctx.consumers or not k.startswith("consumer_")]))
        params = draw(_params(k, ctx))
        own_target = set(params) & (set(ScheduledFault.model_fields) | OWN_TARGETS)
        target = {} if own_target else draw(_base_target(ctx))
        f = {"kind": k, "at": f"{draw(st.integers(200, ctx.duration_ms - 100))}ms", **target, **params}
        field = _heal(k, params)
        required = field is not None and KINDS[k].model_fields[field].is_required()  # a pause's duration: always
        heal = None if field is None else draw(st.integers(200, 5000) if required
                                                else st.one_of(st.none(), st.integers(200, 5000)))
        if heal is not None:
            f[field] = f"{heal}ms"
        faults.append(f)
    for _ in range(draw(st.integers(0, 1))):
        k = draw(st.sampled_from([k for k in kinds if k not in NOT_RANDOM]))
        per = draw(st.sampled_from(["cluster", "broker"]))
        repair = draw(st.sampled_from([{"downtime": f"{draw(st.integers(200, 3000))}ms"},
                                       {"mean_repair": f"{draw(st.integers(200, 3000))}ms"}]))
        # a random process picks brokers: its template draws no target of its own (a pause's controller: true)
        template = draw(_params(k, ctx).filter(lambda p: not set(p) & OWN_TARGETS))
        random_faults.append({"kind": k, "fault": template, "per": per,
                              "mean_interval": f"{draw(st.integers(800, 4000))}ms", "start": "200ms", **repair,
                              "max_down": draw(st.integers(1, ctx.brokers - 1))})
    return faults, random_faults


# every kind gets its own examples, ~40 in all by default (a few seconds of simulated time each)
PER_KIND = max(4, (400 if SLOW else 40) // len(KINDS))


@pytest.mark.parametrize("kind", sorted(KINDS))
@settings(max_examples=PER_KIND, **PROFILE)
@given(data=st.data())
def test_invariants_hold_under_random_schedules_of_every_fault_kind(kind, data):
    if kind in KNOWN_DEFECTS:
        pytest.skip(f"known defect (issue 13): {KNOWN_DEFECTS[kind]}")
    if kind in NOT_DRAWN:
        pytest.skip(f"{kind} is not drawn here (it changes the cluster's shape): see {NOT_DRAWN[kind]}")
    problem = _kind_problem(kind)
    assert problem is None, problem
    sc, seed = data.draw(scenarios(fault_schedule=lambda ctx: any_fault_schedule(ctx, kind),
                                   consumers_required=kind.startswith("consumer_")))
    with all_violations() as found:
        r = _run(sc, seed)
    s = r.summary
    assert found == [], found[:5]
    assert s["invariant_violations"] == len(found)
    assert s["records_acked"] + s["records_failed"] + s["records_unknown"] == int(r.batches.record_count.sum())
    assert s["failed_but_present"] == 0
    ev = r.events
    started = ev[ev.kind == "fault_start"]
    # every fault that started ended (by its heal time, its repair, or the heal at the end of duration)
    assert len(started) == (ev.kind == "fault_end").sum()
    assert len(started) + (ev.kind == "fault_skipped").sum() >= len(sc.faults)
