"""Random fault processes (issue 13 kind 11): MTBF and MTTR within statistical tolerance, one stream per
process and per unit, any scheduled kind as a template.

The statistical tests drive the real FaultInjector against stand-in brokers (a crash only flips
`alive`), so thousands of faults cost milliseconds; one test runs a real cluster for a simulated hour.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import simpy
import yaml

import sim
from sim.measure.metrics import events_table
from sim.model.faults import FaultInjector
from sim.model.recorder import Recorder
from sim.model.rng import RandomStreams
from sim.scenario.schema import Scenario, ScenarioError, load_scenario
from sim.scenario.faults import CrashFault, RandomFault

ROOT = Path(__file__).resolve().parent.parent
HOUR = 3_600_000.0


class _Broker:
    """A stand-in broker: the crash action only needs alive, crash() and restart()."""

    def __init__(self, broker_id: int):
        self.broker_id, self.alive = broker_id, True

    def crash(self) -> None:
        self.alive = False

    def restart(self) -> None:
        self.alive = True


def _schedule(specs: list[dict], brokers: int = 3, seed: int = 1, until: float = HOUR, racks=None):
    """Run only the fault injector for `until` ms; the fault events as a DataFrame."""
    env = simpy.Environment()
    streams = RandomStreams(seed)
    r = Recorder(["p-0"])
    inj = FaultInjector(env, [], [_Broker(b) for b in range(brokers)], None, {}, r,
                        [RandomFault(**s) for s in specs], streams.stream("cluster.faults"), until,
                        streams=streams, racks=racks)
    inj.start()
    env.run(until=until)
    ev = events_table(r)
    return ev[ev.kind.str.startswith("fault")].reset_index(drop=True)


def _poisson_bounds(mean: float, z: float = 4.0) -> tuple[float, float]:
    """A two-sided ~4-sigma interval for a Poisson count (normal approximation, fine for mean >= 20)."""
    return mean - z * math.sqrt(mean), mean + z * math.sqrt(mean)


def _durations(ev) -> np.ndarray:
    """Each fault's length (ms): every start paired with the next end on its broker."""
    out, open_ = [], {}
    for t, kind, b in zip(ev.time_ms, ev.kind, ev.broker):
        if kind == "fault_start":
            open_[b] = t
        elif kind == "fault_end":
            out.append(t - open_.pop(b))
    return np.array(out)


# --- MTBF: the number of faults in an hour -------------------------------------------------------
def test_a_random_crash_process_over_one_simulated_hour_fires_at_its_mtbf_on_a_real_cluster():
    """per: cluster is a Poisson stream of failures: over an hour with a 3 min MTBF, 20 expected per seed.
    Every arrival is a fault_start or (a broker already down: max_down 1) a fault_skipped."""
    over = {"duration": "1h", "settle": "5s", "faults": [], "producers.0.rate": "5/s", "consumers": [],
            "random_faults": [{"kind": "crash", "mean_interval": "3m", "downtime": "10s"}]}
    arrivals = 0
    seeds = (1, 2)
    for seed in seeds:
        r = sim.run(ROOT / "scenarios/quickstart.yaml", seed=seed, overrides=over)
        ev = r.events
        starts, ends = (ev.kind == "fault_start").sum(), (ev.kind == "fault_end").sum()
        assert starts == ends > 0  # every crash restarted
        assert set(ev[ev.kind == "fault_start"].fault_source) == {"random_faults"}
        assert np.allclose(_durations(ev[ev.kind.isin(["fault_start", "fault_end"])]), 10_000.0)
        assert r.summary["acked_lost"] == 0 and r.summary["invariant_violations"] == 0
        arrivals += starts + (ev.kind == "fault_skipped").sum()
    lo, hi = _poisson_bounds(len(seeds) * HOUR / 180_000.0)
    assert lo <= arrivals <= hi, (arrivals, lo, hi)


@pytest.mark.parametrize("mtbf_s", [30, 120])
def test_the_fault_count_of_an_hour_follows_the_mtbf_over_many_seeds(mtbf_s):
    """30 seeds of a cluster process: the mean count is T/MTBF (Poisson), and its variance matches the mean
    (a fixed schedule, or a gap drawn with the wrong law, fails the dispersion check)."""
    spec = {"mean_interval": f"{mtbf_s}s", "downtime": "1s", "max_down": 3}
    counts = np.array([((ev := _schedule([spec], seed=s)).kind.isin(["fault_start", "fault_skipped"])).sum()
                       for s in range(30)])
    expected = HOUR / (mtbf_s * 1000.0)
    se = math.sqrt(expected / len(counts))
    assert abs(counts.mean() - expected) < 4 * se, (counts.mean(), expected)
    assert 0.5 < counts.var(ddof=1) / expected < 1.6  # Poisson: variance == mean


def test_a_per_broker_process_fails_each_broker_once_per_up_time_plus_repair():
    """per: broker is an alternating renewal process per broker: up ~ Exp(MTBF), down ~ Exp(MTTR), so each
    broker fails T / (MTBF + MTTR) times (a broker never fails while it is down)."""
    spec = {"per": "broker", "mean_interval": "60s", "mean_repair": "20s", "max_down": 4}
    per_broker = np.zeros(4)
    seeds = range(10)
    for s in seeds:
        ev = _schedule([spec], brokers=4, seed=s)
        assert (ev.kind == "fault_skipped").sum() == 0  # max_down covers every broker
        starts = ev[ev.kind == "fault_start"]
        per_broker += starts.groupby("broker").size().reindex(range(4), fill_value=0).to_numpy()
        assert set(starts.target) <= {f"broker {b}" for b in range(4)}
    expected = len(seeds) * HOUR / 80_000.0  # 450 per broker
    lo, hi = _poisson_bounds(expected)  # a renewal count is less dispersed than Poisson: the bound is loose
    assert all(lo <= n <= hi for n in per_broker), (per_broker, expected)


# --- MTTR --------------------------------------------------------------------------------------
@pytest.mark.parametrize("per", ["cluster", "broker"])
def test_mttr_draws_are_exponential_with_the_configured_mean(per):
    spec = {"per": per, "mean_interval": "10s", "mean_repair": "4s", "max_down": 3}
    d = np.concatenate([_durations(_schedule([spec], seed=s, until=HOUR / 2)) for s in range(4)])
    assert len(d) > 500
    assert abs(d.mean() - 4000.0) < 4 * 4000.0 / math.sqrt(len(d)), d.mean()
    # exponential, not fixed: its coefficient of variation is 1
    assert 0.85 < d.std() / d.mean() < 1.15


def test_downtime_stays_a_fixed_repair_time_and_resolves_as_before():
    sc = load_scenario(ROOT / "scenarios/bench/soak.yaml")
    (rf,) = sc.random_faults
    assert (rf.kind, rf.per, rf.downtime, rf.mean_repair, rf.max_down) == ("crash", "cluster", 60_000.0, None, 1)
    d = _durations(_schedule([{"mean_interval": "20s", "downtime": "3s"}], seed=3, until=HOUR / 4))
    assert len(d) > 20 and np.all(d == 3000.0)


# --- seeds and streams -------------------------------------------------------------------------
def _times(ev, index=0):
    own = ev[ev.fault_index == index]
    return list(zip(own.time_ms.round(6), own.kind, own.broker))


def test_the_same_seed_gives_the_same_schedule_and_another_seed_another():
    spec = [{"per": "broker", "mean_interval": "2m", "mean_repair": "10s"},
            {"mean_interval": "5m", "mean_repair": "30s", "max_down": 2}]
    a, b, c = _schedule(spec, seed=7), _schedule(spec, seed=7), _schedule(spec, seed=8)
    assert a.equals(b)
    assert _times(a) != _times(c)


def test_adding_a_process_does_not_shift_another_process_draws():
    """One stream per process: appending a second process (it draws its first gap at time 0, then never
    fires before the end) leaves the first process's schedule as it was. With one shared stream it would
    move every later fault of the first."""
    first = {"mean_interval": "1m", "mean_repair": "5s", "max_down": 3}
    alone = _schedule([first])
    late = {"per": "broker", "mean_interval": "1m", "downtime": "1s", "start": "2h"}
    with_second = _schedule([first, {"mean_interval": "1m", "downtime": "1s", "start": "2h"}, late])
    assert len(alone) > 50 and _times(alone) == _times(with_second)


def test_per_broker_processes_are_independent():
    """Each broker has its own stream keyed by its id: broker 0's failures are the same in a 3- and a 6-broker
    cluster, and two brokers' counts per 10-minute window are uncorrelated."""
    spec = {"per": "broker", "mean_interval": "30s", "mean_repair": "5s", "max_down": 6}
    small, big = _schedule([spec], brokers=3), _schedule([spec], brokers=6)
    on0 = lambda ev: _times(ev[ev.broker == 0])  # noqa: E731
    assert len(on0(small)) > 50 and on0(small) == on0(big)
    starts = big[big.kind == "fault_start"]
    bins = np.arange(0, HOUR + 1, 60_000.0)
    c0 = np.histogram(starts[starts.broker == 0].time_ms, bins)[0]
    c1 = np.histogram(starts[starts.broker == 1].time_ms, bins)[0]
    assert abs(np.corrcoef(c0, c1)[0, 1]) < 0.35  # 60 windows: |r| < 0.35 is ~2.7 sigma of independence
    assert on0(big) != _times(big[big.broker == 1])


# --- max_down and racks ------------------------------------------------------------------------
def test_max_down_bounds_the_brokers_a_process_has_down_at_once():
    spec = {"per": "broker", "mean_interval": "20s", "mean_repair": "20s", "max_down": 2}
    ev = _schedule([spec], brokers=5, until=HOUR / 4)
    down, worst = set(), 0
    for kind, b in zip(ev.kind, ev.broker):
        if kind == "fault_start":
            down.add(b)
        elif kind == "fault_end":
            down.discard(b)
        worst = max(worst, len(down))
    assert worst == 2 and (ev.kind == "fault_skipped").sum() > 10
    assert set(ev[ev.kind == "fault_skipped"].reason) == {"at max_down"}


def test_a_per_rack_process_faults_every_broker_of_the_rack_at_once():
    spec = {"per": "rack", "mean_interval": "2m", "mean_repair": "10s", "max_down": 1}
    ev = _schedule([spec], brokers=4, racks=["a", "a", "b", "b"], until=HOUR / 2)
    starts = ev[ev.kind == "fault_start"]
    assert len(starts) > 10
    for t, group in starts.groupby("time_ms"):
        rack = set(group.target)
        assert len(rack) == 1 and len(group) == 2, group  # both brokers of one rack, at the same instant
        assert set(group.broker) == ({0, 1} if rack == {"rack a"} else {2, 3})


def test_a_per_rack_process_on_a_real_cluster_crashes_the_rack_and_loses_nothing_acknowledged():
    """Rack-aware placement (3 racks, rf 3) and min.insync 2: a whole rack down keeps a quorum of the ISR."""
    over = {"duration": "3m", "settle": "10s", "faults": [], "producers.0.rate": "200/s", "consumers": [],
            "cluster.brokers": 6, "cluster.racks": ["a", "b", "c", "a", "b", "c"],
            "random_faults": [{"per": "rack", "mean_interval": "1m", "mean_repair": "15s", "start": "5s"}]}
    r = sim.run(ROOT / "scenarios/quickstart.yaml", seed=2, overrides=over)
    starts = r.events[r.events.kind == "fault_start"]
    assert len(starts) >= 2 and starts.groupby("time_ms").size().eq(2).all()
    assert r.summary["acked_lost"] == 0 and r.summary["invariant_violations"] == 0


# --- templates and validation ------------------------------------------------------------------
def test_a_random_process_takes_a_template_of_a_scheduled_kind_and_fills_at_target_and_repair():
    rf = RandomFault(fault={"kind": "crash"}, per="broker", mean_interval="1m", mean_repair="5s")
    assert rf.kind == "crash" and rf.fault == {}
    f = rf.instance(1234.0, {"broker": 2}, 777.0)
    assert isinstance(f, CrashFault) and (f.at, f.broker, f.heal_after, f.target) == (1234.0, 2, 777.0, "broker 2")
    # a fixed target in the template, per cluster: every firing hits the leader of events-0
    fixed = RandomFault(fault={"kind": "crash", "leader_of": "events-0"}, mean_interval="1m", downtime="5s")
    assert fixed.instance(5.0, {}, 9.0).target == "leader_of events-0"


def test_a_fixed_leader_target_is_resolved_at_each_firing():
    over = {"duration": "40s", "settle": "5s", "faults": [], "consumers": [],
            "random_faults": [{"fault": {"kind": "crash", "leader_of": "events-0"}, "mean_interval": "8s",
                               "downtime": "3s", "start": "2s"}]}
    r = sim.run(ROOT / "scenarios/quickstart.yaml", seed=1, overrides=over)
    ev = r.events
    starts = ev[ev.kind == "fault_start"]
    assert len(starts) >= 2 and set(starts.target) == {"leader_of events-0"}
    for t, b in zip(starts.time_ms, starts.broker):  # the broker crashed led events-0 just before
        led = ev[(ev.kind == "leader_elected") & (ev.partition == "events-0") & (ev.time_ms < t)]
        assert int(led.broker.iloc[-1]) == b


@pytest.mark.parametrize("entry, message", [
    ("{kind: x, mean_interval: 1s, downtime: 1s}", "random_faults.0.kind: must be one of 'crash'"),
    ("{mean_interval: 1s}", "random_faults.0.downtime: Field required (or mean_repair"),
    ("{mean_interval: 1s, downtime: 1s, mean_repair: 1s}", "random_faults.0: give one of 'downtime'"),
    ("{mean_interval: 1s, downtime: 1s, per: zone}", "random_faults.0.per: must be one of 'cluster'"),
    ("{mean_interval: 1s, downtime: 1s, per: rack}", "random_faults.0.per: rack needs cluster.racks"),
    ("{mean_interval: 1s, downtime: 1s, per: link}", "random_faults.0: per: link needs a kind that targets links"),
    ("{mean_interval: 1s, downtime: 1s, fault: {restart_after: 2s}}", "random_faults.0: fault.restart_after: set by"),
    ("{mean_interval: 1s, downtime: 1s, fault: {at: 2s}}", "random_faults.0: fault.at: set by the random process"),
    ("{mean_interval: 1s, downtime: 1s, fault: {bogus: 1}}", "random_faults.0.fault.bogus: "),
    ("{mean_interval: 1s, downtime: 1s, per: broker, fault: {broker: 1}}", "random_faults.0: fault.broker: a fixed"),
    ("{mean_interval: 1s, downtime: 1s, fault: {broker: 9}}", "random_faults.0.fault.broker: no broker 9"),
    ("{kind: crash, fault: {kind: pause}, mean_interval: 1s, downtime: 1s}", "random_faults.0: kind: 'crash' differs"),
])
def test_random_fault_errors_are_one_line_naming_the_field(entry, message):
    with pytest.raises(ScenarioError) as e:
        load_scenario(ROOT / "scenarios/quickstart.yaml", [f"random_faults=[{entry}]"])
    assert str(e.value).startswith(message) and "\n" not in str(e.value), str(e.value)


def test_the_cli_exits_2_with_one_line_on_a_bad_random_fault(tmp_path, capsys):
    from sim.cli import main
    rc = main(["run", str(ROOT / "scenarios/faults/soak-random.yaml"), "--set", "random_faults.0.per=zone",
               "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "random_faults.0.per: must be one of 'cluster'" in err, err


def test_the_bundled_soak_random_scenario_validates_and_round_trips():
    sc = load_scenario(ROOT / "scenarios/faults/soak-random.yaml")
    assert sc.description and "\n" not in sc.description
    (rf,) = sc.random_faults
    assert (rf.per, rf.mean_interval, rf.mean_repair, rf.max_down) == ("broker", 1_200_000.0, 45_000.0, 1)
    assert Scenario.resolve(yaml.safe_load(sc.to_yaml())) == sc
