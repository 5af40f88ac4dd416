"""`kafkasim explore` / `sim.explore`: fault-schedule search, forking, early stop, shrinking, replay.

The claims tested are the ones a user relies on:
- a forked run is the run from scratch (batches and events tables hash the same), for every fault kind;
- stopping a run once it has settled never changes its verdict;
- for configurations Kafka does not protect (acks=1; min.insync=1 with unclean election; acks=all
  with the default flush under power loss) a small search finds acknowledged loss, shrinks it to at
  most 3 faults, and the written YAML replays with `kafkasim run` to the same violation;
- for one it does protect (acks=all, min.insync=2, RF 3, crashes and partitions, one at a time) it
  finds nothing;
- one seed and budget give one counterexample with 1 worker or 2.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

import sim
from sim.cli.app import main as cli_main
from sim.runs.explore import forking
from sim.runs.explore.properties import PropertyError, parse_property
from sim.runs.explore.schedules import FAULT_KINDS, KindsError, Space, fault_window, generate, overlap_ok, parse_kinds

BASE = {
    "name": "explore-test",
    "description": "3 brokers, 2 partitions, RF 3, 2000 rec/s for 20 s: small enough to search in seconds.",
    "duration": "20s", "settle": "40s", "seed": 1,
    "cluster": {"brokers": 3},
    "network": {"latency": {"dist": "lognormal", "median": "0.5ms", "sigma": 0.25}},
    "topics": [{"name": "events", "partitions": 2, "replication.factor": 3, "min.insync.replicas": 2}],
    "producers": [{"topic": "events", "rate": "2000/s", "acks": "all", "enable.idempotence": True}],
    "consumers": [{"group.id": "readers", "topic": "events", "group.protocol": "classic"}],
}
ACKS1 = {"producers.0.acks": 1, "producers.0.enable.idempotence": False}
UNCLEAN = {"topics.0.replication.factor": 2, "topics.0.min.insync.replicas": 1,
           "topics.0.unclean.leader.election.enable": True}


def _scenario(overrides: dict | None = None):
    return sim.load_scenario(BASE, overrides=overrides)


@pytest.fixture(scope="module")
def base_file(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("explore") / "base.yaml"
    p.write_text(yaml.safe_dump(BASE, sort_keys=False))
    return p


# --- schedules and properties ----------------------------------------------------------------------
def test_schedules_are_drawn_from_the_seed_and_index_alone():
    space = Space.of(_scenario(), kinds=parse_kinds("crash,partition,pause,power"), max_faults=3)
    assert generate(space, 7, 5) == generate(space, 7, 5)
    assert generate(space, 7, 5) != generate(space, 8, 5)
    many = [generate(space, 7, i) for i in range(40)]
    assert {len(s) for s in many} == {1, 2, 3}
    lo, hi = space.window
    assert all(lo <= fault_window(f)[0] < hi for s in many for f in s)
    # every schedule is a valid fault list of the scenario
    for s in many[:10]:
        assert len(forking.with_faults(_scenario(), s).faults) == len(s)


def test_max_concurrent_keeps_faults_apart():
    space = Space.of(_scenario(), kinds=("crash", "partition"), max_faults=3, max_concurrent=1)
    for i in range(40):
        s = generate(space, 3, i)
        windows = sorted(map(fault_window, s))
        assert all(a[1] <= b[0] for a, b in zip(windows, windows[1:])), s
    two = [{"kind": "crash", "at": "1s", "broker": 0, "restart_after": "5s"},
           {"kind": "crash", "at": "3s", "broker": 1, "restart_after": "5s"}]
    assert not overlap_ok(two, 1) and overlap_ok(two, 2)


def test_bad_kinds_and_properties_name_what_is_allowed():
    with pytest.raises(KindsError, match="unknown fault kind 'meteor'.*allowed: crash"):
        parse_kinds("crash,meteor")
    assert parse_kinds("power,crash,power") == ("power_loss", "crash")
    assert set(parse_kinds(",".join(FAULT_KINDS))) == set(FAULT_KINDS.values())
    with pytest.raises(PropertyError, match="allowed: no-acked-loss"):
        parse_property("no-loss")
    assert parse_property("availability>=99.9%").min_availability == pytest.approx(0.999)
    assert parse_property("availability>=0.99").judge({}, 0.98) is not None
    assert parse_property("availability>=0.99").judge({}, 0.995) is None
    p = parse_property("no-acked-loss")
    assert p.judge({"acked_lost": 10, "acked_pending": 10}) is None  # not committed yet is not lost
    assert p.unsettled({"acked_lost": 10, "acked_pending": 10}) is not None
    assert "4 acknowledged" in p.judge({"acked_lost": 14, "acked_pending": 10})


# --- forking and early stop change no verdict ------------------------------------------------------
def test_forked_runs_are_the_runs_from_scratch_for_every_fault_kind():
    sc = _scenario({"duration": "10s", "settle": "6s"})
    kinds = tuple(dict.fromkeys(FAULT_KINDS.values()))
    space = Space.of(sc, kinds=kinds, max_faults=3)
    schedules = [(i, generate(space, 11, i)) for i in range(20)]
    assert {f["kind"] for _, s in schedules for f in s} >= {"crash", "partition", "pause", "power_loss", "degrade"}
    prop = parse_property("no-acked-loss")
    forked = forking.run_schedules(sc, 1, schedules, prop, fork=True, digest=True, early=False)
    scratch = forking.run_schedules(sc, 1, schedules, prop, fork=False, digest=True, early=False)
    assert all(v.forked_at_ms is not None for v in forked)
    assert not [v.error for v in forked + scratch if v.error]
    differ = [(i, s) for (i, s), a, b in zip(schedules, forked, scratch) if a.fingerprint != b.fingerprint]
    assert not differ, f"forked != from scratch for {differ[:2]}"


def test_stopping_a_settled_run_early_keeps_its_verdict():
    sc = _scenario(ACKS1)
    space = Space.of(sc, kinds=("crash", "partition", "pause", "controller_outage"), max_faults=2)
    schedules = [(i, generate(space, 4, i)) for i in range(16)]
    prop = parse_property("no-acked-loss")
    early = forking.run_schedules(sc, 1, schedules, prop, fork=True, early=True)
    full = forking.run_schedules(sc, 1, schedules, prop, fork=True, early=False)
    assert sum(v.stopped_ms is not None for v in early) >= 6  # it does stop early, most of the time
    assert any(v.violated for v in full)  # and there are violations to keep
    assert [(v.violation, v.unsettled) for v in early] == [(v.violation, v.unsettled) for v in full]


# --- unsafe configurations: found, shrunk, replayed ----------------------------------------------------
def _replays(path: Path, tmp_path: Path) -> dict:
    out = tmp_path / "replay"
    assert cli_main(["run", str(path), "--out", str(out)]) == 0
    return json.loads((out / "summary.json").read_text())


def test_acks1_loss_is_found_shrunk_and_replayed_from_the_cli(base_file, tmp_path, capsys):
    out = tmp_path / "search"
    code = cli_main(["explore", str(base_file), "--budget", "8", "--faults", "crash,partition,pause",
                     "--set", "producers.0.acks=1", "--set", "producers.0.enable.idempotence=false",
                     "--shrink-budget", "30", "--workers", "1", "--out", str(out)])
    printed = capsys.readouterr()
    assert code == 1, printed.err  # a violation was found
    report = json.loads((out / "explore.json").read_text())
    assert report["tried"] == 8 and report["violated"] >= 1
    cx = report["counterexample"]
    assert 1 <= len(cx["faults"]) <= 3 and cx["replayed"] is True
    assert len(cx["faults"]) <= len(report["found"]["faults"])
    for name in ("counterexample.yaml", "found.yaml", "account.md", "timeline.png", "schedules.csv"):
        assert (out / name).is_file(), name
    assert (out / "counterexample" / "summary.json").is_file()
    account = (out / "account.md").read_text()
    assert "acknowledged records missing" in account and " at " in account
    # the written YAML is a scenario `kafkasim run` replays to the same loss
    summary = _replays(out / "counterexample.yaml", tmp_path)
    assert summary["acked_lost"] > 0
    assert summary["acked_lost"] == json.loads((out / "counterexample" / "summary.json").read_text())["acked_lost"]
    assert "replay: kafkasim run" in printed.out


def test_unclean_election_loss_is_found_and_shrunk(tmp_path):
    # RF 2, min.insync.replicas 1, unclean election: the follower drops out of the ISR (fenced after
    # broker.session.timeout.ms), then the leader goes down and the out-of-sync follower is elected. It
    # takes two crashes lined up over ~10 s each, so the run is 40 s; about 2 schedules in 100 line them
    # up (the first, for seed 1, is schedule 13: the budget covers it with room, not by chance per run,
    # since schedules depend on the seed and index alone).
    rep = sim.explore(BASE, overrides={**UNCLEAN, "duration": "40s"}, budget=24, faults="crash", shrink_budget=16,
                      workers=1, out=tmp_path / "s")
    assert rep.violated >= 1 and rep.counterexample is not None and rep.replayed
    assert len(rep.counterexample.faults) <= 3
    assert rep.results.summary["acked_lost"] > 0 and rep.results.summary["unclean_elections"] >= 1
    again = sim.run(sim.load_scenario(tmp_path / "s" / "counterexample.yaml"))
    assert again.summary["acked_lost"] == rep.results.summary["acked_lost"]


def test_acks_all_with_the_default_flush_loses_data_to_power_loss(tmp_path):
    rep = sim.explore(BASE, budget=24, faults="power", shrink_budget=20, workers=1, out=tmp_path / "p")
    assert rep.violated >= 1 and rep.replayed
    faults = rep.counterexample.faults
    assert 1 <= len(faults) <= 3 and all(f["kind"] == "power_loss" for f in faults)
    assert any("lost power" in line for line in rep.account)


# --- a safe configuration ---------------------------------------------------------------------------
def test_acks_all_min_insync_2_survives_crashes_and_partitions_one_at_a_time():
    rep = sim.explore(BASE, budget=16, faults="crash,partition", max_concurrent=1, workers=1)
    assert rep.tried == 16 and rep.errors == 0
    assert rep.violated == 0 and rep.found is None and rep.counterexample is None


def test_one_seed_and_budget_give_one_counterexample_with_any_number_of_workers():
    kw = dict(overrides=ACKS1, budget=6, faults="crash,partition,pause", shrink_budget=8)
    one, two = sim.explore(BASE, workers=1, **kw), sim.explore(BASE, workers=2, **kw)
    assert one.found is not None
    assert one.found.schedule_index == two.found.schedule_index
    assert one.counterexample.data == two.counterexample.data
    assert one.schedules.drop(columns=["wall_s", "forked_at_ms"]).equals(
        two.schedules.drop(columns=["wall_s", "forked_at_ms"]))


# --- guard rails -----------------------------------------------------------------------------------
@pytest.mark.parametrize("args, says", [
    (["--faults", "crash,meteor"], "unknown fault kind 'meteor'"),
    (["--property", "no-loss"], "property: unknown 'no-loss'"),
    (["--window", "5s..90s"], "window: must satisfy"),
    (["--budget", "5", "--time", "1m"], "give one of them"),
    (["--set", "topics.0.partitions=0"], "topics.0.partitions"),
])
def test_bad_arguments_are_one_line_errors(base_file, tmp_path, capsys, args, says):
    assert cli_main(["explore", str(base_file), "--out", str(tmp_path / "o"), *args]) == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_never_writes_over_a_directory_it_did_not_write(base_file, tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    assert cli_main(["explore", str(base_file), "--budget", "1", "--out", str(mine)]) == 2
    assert "kafkasim never deletes" in capsys.readouterr().err
    assert (mine / "notes.txt").read_text() == "keep me" and len(list(mine.iterdir())) == 1


def test_the_warning_about_the_base_scenarios_faults_is_a_whole_sentence(tmp_path, capsys):
    """The scenario's own faults are set aside for each schedule's: the warning says so in full (it
    ended "replaced by each schedule's")."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")  # refused before any run: only the warning is wanted here
    quickstart = Path(__file__).resolve().parents[1] / "scenarios" / "quickstart.yaml"
    assert cli_main(["explore", str(quickstart), "--budget", "1", "--out", str(mine)]) == 2
    (warning,) = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert warning == (f"warning: {quickstart}: its 1 fault(s) are not used: each schedule brings its own "
                       "faults in their place")


# --- other properties and a search by time ---------------------------------------------------------
def test_availability_is_a_property_too():
    # a leader paused for 4 s leaves its partition without a writable leader for > 4 s of the 20 s run
    rep = sim.explore(BASE, budget=6, faults="pause", property="availability>=0.999", shrink_budget=0, workers=1,
                      window="2s..10s")
    assert rep.property == "availability>=0.999"
    avail = rep.schedules["availability"]
    assert avail.notna().all() and (avail <= 1.0).all()
    assert rep.violated == int((avail < 0.999).sum()) >= 1
    assert rep.found is not None and "availability" in rep.found.violation
    assert rep.schedules["forked_at_ms"].notna().all()  # availability runs fork too, and run to the end


def test_a_search_by_time_stops_and_counts_what_it_ran():
    rep = sim.explore(BASE, time_limit="2s", faults="crash", shrink_budget=0, workers=1)
    assert rep.tried >= 16  # a first round of 16, then rounds sized to the time left
    assert len(rep.schedules) == rep.tried and list(rep.schedules["schedule"]) == list(range(rep.tried))


def test_failed_schedules_make_the_search_incomplete_not_clean(base_file, tmp_path, capsys, monkeypatch):
    from sim.model import faults as model_faults

    def broken(self, broker):
        raise RuntimeError("a model bug")

    monkeypatch.setattr(model_faults.Crash, "start", broken)  # in this process: --workers 1 runs here
    code = cli_main(["explore", str(base_file), "--budget", "3", "--faults", "crash", "--workers", "1",
                     "--out", str(tmp_path / "o")])
    out = capsys.readouterr().out
    assert code == 3
    assert "3 schedule(s) failed" in out and "incomplete" in out
    table = (tmp_path / "o" / "schedules.csv").read_text()
    assert "RuntimeError: a model bug (at test_explore.py" in table  # the innermost frame of ours, not SimPy's


def test_fault_times_stay_inside_a_window_that_ends_at_duration():
    sc = _scenario()
    space = Space.of(sc, kinds=("crash",), window=(19_990.0, 20_000.0))
    assert all(fault_window(f)[0] < sc.duration for i in range(200) for f in generate(space, 1, i))


def test_a_remote_dask_takes_no_worker_count(base_file, capsys):
    assert cli_main(["explore", str(base_file), "--dask", "tcp://127.0.0.1:1", "--workers", "2"]) == 2
    assert "workers: applies to the local pool" in capsys.readouterr().err


def test_a_sweep_file_is_named_as_such(tmp_path, capsys):
    sweep_file = Path(__file__).resolve().parents[1] / "scenarios" / "sweeps" / "smoke.yaml"
    assert cli_main(["explore", str(sweep_file), "--budget", "1", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is a sweep file" in err and "explore its base scenario" in err
