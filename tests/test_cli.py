"""The `kafkasim` command line: exit codes, one-line errors, validate/scenarios/run, run directories."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import yaml
from rich.console import Console

import sim
import sim.cli.app as cli
import sim.runs.runner
from sim.cli import main
from sim.runs.results import RUN_FILES, Results, read_results
from sim.scenario.schema import Scenario, load_scenario

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "scenarios" / "quickstart.yaml"
ACKS1 = ROOT / "scenarios" / "leader-crash-acks1.yaml"

# 5 s of producing, the leader of events-0 crashes at 2 s and restarts at 3 s, 2 s to settle.
FAST = ["--set", "duration=5s", "--set", "settle=2s", "--set", "faults.0.at=2s", "--set", "faults.0.restart_after=1s"]
RUN_SEED = "0"

SUMMARY_KEYS = [
    "scenario", "seed", "version", "sim_duration_ms", "wall_time_s", "sim_events", "records_sent", "records_acked",
    "records_failed", "records_unknown", "records_lost", "acked_lost", "duplicates", "reordered", "records_consumed",
    "throughput_rps", "produce_latency_ms", "e2e_latency_ms", "failovers", "failover_ms", "unclean_elections",
    "offline_partitions_at_end", "under_replicated_partitions_at_end",
]


def cli_run(capsys, *args) -> tuple[int, str, str]:
    rc = main([str(a) for a in args])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def assert_one_line_error(rc: int, out: str, err: str) -> str:
    assert rc == 2, (rc, out, err)
    assert err.startswith("error: "), err
    assert err.endswith("\n") and err.count("\n") == 1, err  # exactly one line
    assert "Traceback" not in err
    assert out == ""
    return err


def siblings(d: Path) -> list[str]:
    """Everything next to the run directory: leftovers of an atomic write would show up here."""
    return sorted(p.name for p in d.parent.iterdir() if p != d)


@contextlib.contextmanager
def deadline(seconds: float):
    """Fail (instead of hanging the whole test session) if a simulation never finishes."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGALRM"):
        yield
        return

    def expire(signum, frame):
        raise TimeoutError(f"the simulation did not finish within {seconds:g} s")

    old = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


# --- bad input: exit code 2, one `error:` line, no traceback -----------------------------------
def _bad_files(tmp: Path) -> dict[str, Path]:
    files = {
        "empty": (b"", "empty scenario file"),
        "garbage": (bytes(range(256)) * 8, "not a text file"),
        "list": (b"- name: x\n- duration: 5s\n", "expected a mapping at the top level, got list"),
        "invalid": (b"name: [oops\nduration: 5s\n", "invalid YAML at line 2"),
    }
    out = {}
    for name, (content, fragment) in files.items():
        f = tmp / f"{name}.yaml"
        f.write_bytes(content)
        out[name] = (f, fragment)
    return out


@pytest.mark.parametrize("kind", ["empty", "garbage", "list", "invalid"])
@pytest.mark.parametrize("command", ["validate", "run"])
def test_invalid_file(capsys, tmp_path, kind, command):
    f, fragment = _bad_files(tmp_path)[kind]
    err = assert_one_line_error(*cli_run(capsys, command, f))
    assert err.startswith(f"error: {f}: {fragment}")


@pytest.mark.parametrize("command", ["validate", "run"])
def test_missing_scenario_path(capsys, tmp_path, command):
    missing = tmp_path / "nope.yaml"
    err = assert_one_line_error(*cli_run(capsys, command, missing))
    assert err == f"error: {missing}: no such scenario file\n"


def test_directory_as_scenario(capsys, tmp_path):
    err = assert_one_line_error(*cli_run(capsys, "validate", tmp_path))
    assert err == f"error: {tmp_path}: is a directory, expected a scenario YAML file\n"


@pytest.mark.parametrize("args, fragment", [
    (["run", QUICKSTART, "--set", "bogus=1"], "--set bogus: unknown key 'bogus' under scenario (allowed: "),
    (["validate", QUICKSTART, "--set", "producers.0.lingerr.ms=5"], "unknown key 'lingerr' under producers.0"),
    (["validate", QUICKSTART, "--set", "nokey"], "--set 'nokey': expected dotted.key=value"),
    (["run", QUICKSTART, "--set", "producers.3.acks=1"], "producers has 1 entries; '3' is not an index"),
    (["run", QUICKSTART, "--set", "faults.0.at=90s"], "faults.0.at: 90s is not before duration 1m"),
    (["run", QUICKSTART, "--set", "producers.0.acks=1"], "producers.0: enable.idempotence=true requires acks=all"),
    (["run", QUICKSTART, "--set", "topics.0.replication.factor=4"], "replication.factor 4 exceeds 3 brokers"),
    (["validate", QUICKSTART, "--set", "producers.0.linger.ms=soon"], "producers.0.linger.ms: cannot parse duration"),
    (["validate", QUICKSTART, "--set"], "Option '--set' requires an argument"),
])
def test_bad_set(capsys, args, fragment):
    err = assert_one_line_error(*cli_run(capsys, *args))
    assert fragment in err


@pytest.mark.parametrize("seed", ["abc", "-1", "1.5", ""])
def test_bad_seed(capsys, seed):
    err = assert_one_line_error(*cli_run(capsys, "run", QUICKSTART, "--seed", seed))
    assert "Invalid value for '--seed'" in err


@pytest.mark.parametrize("args, fragment", [
    (["run", QUICKSTART, "--bogus"], "No such option: --bogus"),
    (["validate", QUICKSTART, "--seed", "3"], "No such option: --seed"),
    (["validate", QUICKSTART, "--out", "x"], "No such option: --out"),
    (["frobnicate"], "No such command 'frobnicate'"),
    (["validate"], "Missing argument 'SCENARIO'"),
    (["run"], "Missing argument 'SCENARIO'"),
    (["validate", QUICKSTART, "extra"], "Got unexpected extra argument"),
])
def test_usage_errors(capsys, args, fragment):
    err = assert_one_line_error(*cli_run(capsys, *args))
    assert fragment.lower() in err.lower()


def test_several_problems_one_error_line_each(capsys, tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text("description: nothing else\n")
    rc, out, err = cli_run(capsys, "validate", f)
    assert rc == 2 and out == "" and "Traceback" not in err
    assert err.splitlines() == ["error: name: Field required", "error: duration: Field required",
                                "error: topics: Field required"]


def test_no_arguments_shows_usage(capsys):
    rc, out, err = cli_run(capsys)
    assert rc == 2
    assert "Usage:" in err and "Traceback" not in err


def test_help(capsys):
    rc, out, err = cli_run(capsys, "--help")
    assert rc == 0
    for command in ("run", "validate", "scenarios"):
        assert command in out


def _launchers() -> dict[str, list[str]]:
    script = Path(sys.executable).parent / "kafkasim"
    return {"script": [str(script)], "module": [sys.executable, "-m", "sim.cli"]}


@pytest.mark.parametrize("launcher", ["script", "module"])
@pytest.mark.parametrize("case", ["invalid-file", "bad-seed", "unknown-option", "bad-set", "missing-file"])
def test_subprocess_errors_have_no_traceback(tmp_path, launcher, case):
    cmd = _launchers()[launcher]
    if launcher == "script":
        assert Path(cmd[0]).exists(), f"console script not installed next to {sys.executable}"
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"\x00\xff\xfe garbage \x81")
    args = {
        "invalid-file": ["validate", str(bad)],
        "bad-seed": ["run", str(QUICKSTART), "--seed", "x"],
        "unknown-option": ["run", str(QUICKSTART), "--no-such-flag"],
        "bad-set": ["run", str(QUICKSTART), "--set", "cluster.brokerz=5"],
        "missing-file": ["run", str(tmp_path / "missing.yaml")],
    }[case]
    env = {**os.environ, "COLUMNS": "40"}  # a narrow terminal must not wrap the error line
    p = subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env)
    assert p.returncode == 2, p.stderr
    assert p.stderr.startswith("error: "), p.stderr
    assert len(p.stderr.splitlines()) == 1, p.stderr
    assert "Traceback" not in p.stderr and "Traceback" not in p.stdout
    assert p.stdout == ""
    assert not (tmp_path / "results").exists()  # nothing was run or written


def test_subprocess_validate_ok():
    cmd = _launchers()["script"]
    p = subprocess.run([*cmd, "validate", str(QUICKSTART)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("ok: quickstart: ")
    assert p.stderr == ""


# --- validate ----------------------------------------------------------------------------------
def test_validate_ok(capsys):
    rc, out, err = cli_run(capsys, "validate", QUICKSTART)
    assert rc == 0 and err == ""
    ok, estimate = out.splitlines()
    assert ok == "ok: quickstart: 3 brokers, 1 topic(s), 6 partitions, 1 producer(s), 1 fault(s)"
    assert estimate.startswith("a run takes about 1.2M records in ")
    # the time's basis is said (it read 5x optimistic on a loaded machine, issue 22)
    assert estimate.endswith(" (rough estimate, good to a factor of 2-3: the time is one unloaded core of "
                             "the 2-core CI machine; a busy machine takes longer)")


def test_validate_applies_overrides(capsys):
    rc, out, err = cli_run(capsys, "validate", QUICKSTART, "--set", "producers.0.instances=10",
                           "--set", "topics.0.partitions=12", "--set", "cluster.brokers=5", "--set", "faults=[]")
    assert rc == 0, err
    assert out.splitlines()[0] == "ok: quickstart: 5 brokers, 1 topic(s), 12 partitions, 10 producer(s), 0 fault(s)"
    assert "about 12.0M records" in out.splitlines()[1]


def test_validate_show_prints_the_resolved_yaml_unwrapped(capsys, monkeypatch):
    # a narrow terminal must not re-wrap the YAML (that would make it invalid)
    monkeypatch.setattr(cli, "out_console", Console(width=30))
    rc, out, err = cli_run(capsys, "validate", QUICKSTART, "--show", "--set", "producers.0.linger.ms=10")
    assert rc == 0, err
    version_line, *yaml_lines, ok, estimate = out.rstrip("\n").split("\n")
    assert estimate.startswith("# a run takes about")  # a comment: the printed file stays a scenario
    assert version_line.startswith("# defaults of Kafka 4.0 applied (linger.ms=5 KIP-1030, ")  # a YAML comment
    assert ok.startswith("ok: quickstart: 3 brokers")
    expected = load_scenario(QUICKSTART, ["producers.0.linger.ms=10"])
    shown = yaml.safe_load("\n".join([version_line, *yaml_lines]))  # the comment keeps it loadable
    assert shown == yaml.safe_load(expected.to_yaml())
    assert Scenario.resolve(shown) == expected
    assert shown["producers"][0]["linger.ms"] == 10
    assert shown["producers"][0]["retries"] == 2_147_483_647  # defaults are filled in


@pytest.mark.parametrize("version, linger, fragment", [
    ("3.6", 0, "constant retry.backoff.ms, no retry.backoff.max.ms KIP-580"),
    ("3.9", 0, "retry.backoff.max.ms=1000 exponential+jitter KIP-580"),
    ("4.0", 5, "retry.backoff.max.ms=1000 exponential+jitter KIP-580"),
])
def test_validate_show_names_the_version_whose_defaults_applied(capsys, tmp_path, version, linger, fragment):
    rc, out, err = cli_run(capsys, "validate", QUICKSTART, "--show", "--set", f"cluster.kafka.version={version}")
    assert rc == 0, err
    first, rest = out.split("\n", 1)
    assert first.startswith(f"# defaults of Kafka {version} applied (linger.ms={linger} KIP-1030, ")
    assert fragment in first
    shown = yaml.safe_load(rest.rsplit("ok: ", 1)[0])
    assert shown["cluster"]["kafka.version"] == version
    assert shown["producers"][0]["linger.ms"] == linger  # the concrete value, never null
    assert ("retry.backoff.max.ms" in shown["producers"][0]) is (version != "3.6")
    # the shown scenario is a file that validates again to the same scenario
    f = tmp_path / "shown.yaml"
    f.write_text(out.rsplit("ok: ", 1)[0])
    assert load_scenario(f) == load_scenario(QUICKSTART, [f"cluster.kafka.version={version}"])
    rc, again, err = cli_run(capsys, "validate", f, "--show")
    assert rc == 0 and again.split("\n", 1)[0] == first


def test_validate_rejects_retry_backoff_max_for_3_6_on_one_line(capsys):
    err = assert_one_line_error(*cli_run(capsys, "validate", QUICKSTART, "--set", "cluster.kafka.version=3.6",
                                         "--set", "producers.0.retry.backoff.max.ms=2000"))
    assert err.startswith("error: producers.0.retry.backoff.max.ms: exists from Kafka 3.7 (KIP-580)")



def test_validate_legacy_acks_warns_on_one_line(capsys):
    rc, out, err = cli_run(capsys, "validate", QUICKSTART, "--set", "producers.0.acks=2",
                           "--set", "producers.0.enable.idempotence=false")
    assert rc == 0
    assert out.startswith("ok: quickstart")
    assert err.startswith("warning: producers.0.acks=2 is the Kafka 0.8 legacy form")
    assert err.count("\n") == 1
    assert "UserWarning" not in err and ".py:" not in err


def test_validate_bundled_acks1(capsys):
    rc, out, err = cli_run(capsys, "validate", ACKS1)
    assert rc == 0 and out.startswith("ok: leader-crash-acks1: ")


# --- scenarios ---------------------------------------------------------------------------------
def test_scenarios_lists_bundled_files(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    rc, out, err = cli_run(capsys, "scenarios")
    assert rc == 0, err
    assert "scenarios/quickstart.yaml" in out
    assert "scenarios/leader-crash-acks1.yaml" in out


def test_scenarios_lists_local_and_source_tree(capsys, monkeypatch, tmp_path):
    local = tmp_path / "scenarios"
    local.mkdir()
    (local / "mine.yaml").write_text("name: mine\ndescription: my own study\ntopics: [{name: t}]\n")
    (local / "notes.yaml").write_text("just: some config\n")  # no topics: not a scenario
    (local / "broken.yaml").write_text("a: [\n")  # unreadable: skipped, no error
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli, "out_console", Console(width=400))
    rc, out, err = cli_run(capsys, "scenarios")
    assert rc == 0, err
    assert "scenarios/mine.yaml" in out and "my own study" in out
    assert "notes.yaml" not in out and "broken.yaml" not in out
    assert str(QUICKSTART) in out and str(ACKS1) in out  # the source tree's, by absolute path


def test_scenarios_never_truncates_a_path(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # paths are absolute from here
    monkeypatch.setattr(cli, "out_console", Console(width=60))
    rc, out, err = cli_run(capsys, "scenarios")
    assert rc == 0, err
    assert "…" not in out
    file_column = "".join(line.split("│")[1].strip() for line in out.splitlines() if line.startswith("│"))
    assert str(QUICKSTART) in file_column and str(ACKS1) in file_column


# --- run: a real, short simulation -------------------------------------------------------------
@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    """One real `kafkasim run` of the shortened quickstart, replacing an earlier run directory."""
    out_dir = tmp_path_factory.mktemp("cli-run") / "runs" / "quick"
    out_dir.mkdir(parents=True)
    (out_dir / "summary.json").write_text("{}")  # an earlier run (its files, nothing else) may be replaced
    (out_dir / "scenario.yaml").write_text("name: earlier\n")
    (out_dir / "plots").mkdir()
    (out_dir / "plots" / "timeline.png").write_bytes(b"png")  # its figures go with it
    stdout, stderr = io.StringIO(), io.StringIO()
    with deadline(120), contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        rc = main(["run", str(QUICKSTART), "--seed", RUN_SEED, *FAST, "--out", str(out_dir)])
    return SimpleNamespace(rc=rc, out=stdout.getvalue(), err=stderr.getvalue(), dir=out_dir)


def test_run_exit_code_and_output(real_run):
    assert real_run.rc == 0, real_run.err
    assert "Traceback" not in real_run.err
    assert f"wrote {real_run.dir}" in real_run.err
    assert "quickstart  seed 0" in real_run.out  # the summary table
    assert "records acked" in real_run.out and "acked_lost" in real_run.out
    assert "records produced (offered)" in real_run.out


def test_run_writes_exactly_the_run_files(real_run):
    assert sorted(p.name for p in real_run.dir.iterdir()) == sorted(RUN_FILES)
    assert siblings(real_run.dir) == []  # no temporary or old directory left behind


def test_run_replaced_the_earlier_run_directory_cleanly(real_run):
    assert not (real_run.dir / "plots").exists()
    assert json.loads((real_run.dir / "summary.json").read_text()) != {}


def test_run_summary_keys_and_values(real_run):
    s = json.loads((real_run.dir / "summary.json").read_text())
    missing = [k for k in SUMMARY_KEYS if k not in s]
    assert missing == []
    assert set(s["produce_latency_ms"]) >= {"p50", "p99", "p999", "max"}
    assert set(s["e2e_latency_ms"]) >= {"p50", "p99"}
    assert set(s["failover_ms"]) >= {"p50", "max"}
    assert s["scenario"] == "quickstart" and s["seed"] == 0 and s["version"] == sim.__version__
    assert s["sim_duration_ms"] == 7_000.0  # duration 5 s + settle 2 s
    assert s["wall_time_s"] >= 0 and s["sim_events"] > 0
    counts = ["records_sent", "records_acked", "records_failed", "records_unknown", "records_lost", "acked_lost",
              "duplicates", "reordered", "records_consumed", "unclean_elections", "offline_partitions_at_end"]
    assert all(isinstance(s[k], int) and s[k] >= 0 for k in counts), {k: s[k] for k in counts}
    # the offered load, 20000 records/s for 5 s, Poisson: every record created (issue 11, item 14)
    assert 90_000 < s["records_produced"] < 110_000
    # every record has an outcome; those still waiting at the end are unknown
    assert s["records_acked"] + s["records_failed"] + s["records_unknown"] == s["records_produced"]
    # acks=all stalls from the crash on: the crashed broker stays in every ISR until its old session
    # expires (~11 s: its restart at 3 s is refused, DUPLICATE_BROKER_REGISTRATION), so what was not
    # sent by the end waits in the accumulator, as in Kafka
    assert 0 < s["records_sent"] < s["records_produced"]
    assert s["overrides"] == {"duration": "5s", "settle": "2s", "faults.0.at": "2s", "faults.0.restart_after": "1s"}
    assert s["throughput_rps"] == pytest.approx(s["records_acked"] / 5.0)
    assert s["unclean_elections"] == 0  # unclean.leader.election.enable is false
    assert isinstance(s["failovers"], list)
    assert "events-0" in [f["partition"] for f in s["failovers"]]  # the crashed leader's partition
    assert all(f["fault_ms"] == 2_000.0 for f in s["failovers"])
    p = s["produce_latency_ms"]
    assert 0 < p["p50"] <= p["p99"] <= p["p999"] <= p["max"]


def test_run_scenario_yaml_is_the_resolved_scenario_with_overrides(real_run):
    sc = Scenario.resolve(real_run.dir / "scenario.yaml")
    expected = load_scenario(QUICKSTART, [FAST[i + 1] for i in range(0, len(FAST), 2)])
    assert sc == expected.model_copy(update={"seed": 0})
    assert (sc.duration, sc.settle, sc.faults[0].at, sc.faults[0].restart_after) == (5_000.0, 2_000.0, 2_000.0,
                                                                                      1_000.0)
    text = (real_run.dir / "scenario.yaml").read_text()
    assert "linger.ms: 5" in text and "retries: 2147483647" in text  # every default written out
    assert text.startswith("# made with overrides (already applied below): --set duration=5s --set settle=2s "
                           "--set faults.0.at=2s --set faults.0.restart_after=1s\n")


def test_run_parquet_tables(real_run):
    s = json.loads((real_run.dir / "summary.json").read_text())
    batches = pd.read_parquet(real_run.dir / "batches.parquet")
    events = pd.read_parquet(real_run.dir / "events.parquet")
    ts = pd.read_parquet(real_run.dir / "timeseries.parquet")
    assert len(batches) == s["batches"] > 0
    assert batches["record_count"].sum() == s["records_produced"]  # every batch created, sent or not
    assert batches.loc[batches["sent_ms"] >= 0, "record_count"].sum() == s["records_sent"]
    assert {"time_ms", "kind"} <= set(events.columns) and len(events) > 0
    assert "second" in ts.columns and len(ts) == 7  # one row per simulated second


def test_run_directory_reads_back(real_run):
    res = read_results(real_run.dir)
    assert res.summary == json.loads((real_run.dir / "summary.json").read_text())
    assert res.seed == 0 and res.scenario.name == "quickstart"


def test_run_reports_legacy_acks_once_on_one_line(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(cli, "err_console", Console(stderr=True, width=40))  # narrow: no wrapping
    with deadline(60):
        rc, out, err = cli_run(capsys, "run", ACKS1, "--seed", "0", "--set", "duration=2s", "--set", "settle=1s",
                               "--set", "faults=[]", "--set", "producers.0.acks=2", "--out", tmp_path / "r")
    assert rc == 0, err
    warning_lines = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warning_lines) == 1, err  # reported once (not at load time and again by the run)
    assert "acks=2" in warning_lines[0] and "legacy" in warning_lines[0]
    assert "UserWarning" not in err
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["warnings"] != []


# --- run: the CLI around the simulator (a canned result, no simulation) -----------------------
@pytest.fixture
def fake_run(real_run, monkeypatch):
    """Make `kafkasim run` return the real run's results instantly (for the CLI's own behaviour)."""
    canned = read_results(real_run.dir)
    calls = []

    def run(sc, seed=None, *, overrides=None, progress=None):
        seed = sc.seed if seed is None else seed
        calls.append((sc, seed))
        return dataclasses.replace(canned, scenario=sc.model_copy(update={"seed": seed}), seed=seed,
                                   summary={**canned.summary, "seed": seed, "scenario": sc.name})

    monkeypatch.setattr(sim.runs.runner, "run", run)
    return calls


def test_run_default_out_dir_and_seed(capsys, monkeypatch, tmp_path, fake_run):
    monkeypatch.chdir(tmp_path)
    rc, out, err = cli_run(capsys, "run", QUICKSTART)
    assert rc == 0, err
    assert fake_run[-1][1] == 1  # the scenario's seed
    d = tmp_path / "results" / "quickstart" / "seed-1"
    assert json.loads((d / "summary.json").read_text())["seed"] == 1
    rc, out, err = cli_run(capsys, "run", QUICKSTART, "--seed", "7", "--set", "producers.0.instances=3")
    assert rc == 0, err
    assert fake_run[-1][1] == 7 and fake_run[-1][0].producers[0].instances == 3
    assert (tmp_path / "results" / "quickstart" / "seed-7-producers.0.instances=3" / "summary.json").exists()


def test_run_rerun_replaces_an_earlier_run(capsys, tmp_path, fake_run):
    out_dir = tmp_path / "r"
    assert cli_run(capsys, "run", QUICKSTART, "--seed", "3", "--out", out_dir)[0] == 0
    assert cli_run(capsys, "report", out_dir)[0] == 0  # kafkasim's own additions go with the run
    assert cli_run(capsys, "run", QUICKSTART, "--seed", "4", "--out", out_dir)[0] == 0
    assert sorted(p.name for p in out_dir.iterdir()) == sorted(RUN_FILES)
    assert json.loads((out_dir / "summary.json").read_text())["seed"] == 4
    assert Scenario.resolve(out_dir / "scenario.yaml").seed == 4
    assert siblings(out_dir) == []


def _tree(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): (p.read_bytes() if p.is_file() else b"<dir>") for p in sorted(d.rglob("*"))}


@pytest.mark.parametrize("case", ["working-dir", "results-dir", "run-with-a-user-file", "a-file"])
def test_run_out_never_replaces_what_kafkasim_did_not_write(capsys, tmp_path, monkeypatch, fake_run, case):
    """Issue 11, item 1: `--out "$PWD"` and `--out results/` deleted everything in them."""
    monkeypatch.chdir(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    if case == "working-dir":  # --out "$PWD": a directory with the user's files
        (work / "notes.md").write_text("my notes")
        (work / "src").mkdir()
        (work / "src" / "main.py").write_text("print()")
        target = work
    elif case == "results-dir":  # --out results/: README.md and earlier runs
        assert cli_run(capsys, "run", QUICKSTART, "--seed", "3", "--out", work / "quickstart" / "seed-3")[0] == 0
        (work / "README.md").write_text("what is in here")
        target = work
    elif case == "run-with-a-user-file":  # a run directory the user put a file into
        assert cli_run(capsys, "run", QUICKSTART, "--seed", "3", "--out", work)[0] == 0
        (work / "analysis-notes.txt").write_text("keep me")
        target = work
    else:
        target = work / "file.txt"
        target.write_text("a file")
    before = _tree(tmp_path)
    calls = len(fake_run)
    err = assert_one_line_error(*cli_run(capsys, "run", QUICKSTART, "--seed", "4", "--out", target))
    assert err.startswith(f"error: --out {target}: ")
    if case != "a-file":
        assert "not a kafkasim run directory" in err and "choose another path or a new child such as" in err
    assert _tree(tmp_path) == before  # untouched, nothing written next to it
    assert len(fake_run) == calls  # refused before running


def test_run_out_into_an_empty_directory_or_a_new_child(capsys, tmp_path, fake_run):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli_run(capsys, "run", QUICKSTART, "--out", empty)[0] == 0
    assert sorted(p.name for p in empty.iterdir()) == sorted(RUN_FILES)
    assert cli_run(capsys, "run", QUICKSTART, "--out", tmp_path / "new" / "child")[0] == 0
    assert (tmp_path / "new" / "child" / "summary.json").is_file()


def test_results_write_refuses_a_directory_that_is_not_a_run(tmp_path):
    from sim.runs.results import OutputError

    out = tmp_path / "mine"
    out.mkdir()
    (out / "data.csv").write_text("1,2")
    with pytest.raises(OutputError, match="not a kafkasim run directory"):
        tiny_results(1).write(out)
    assert sorted(p.name for p in out.iterdir()) == ["data.csv"] and siblings(out) == []


def test_runs_with_overrides_get_their_own_directories(capsys, monkeypatch, tmp_path, fake_run):
    """Issue 11, item 2: the README's acks=1 and acks=all runs wrote the same directory."""
    monkeypatch.chdir(tmp_path)
    assert cli_run(capsys, "run", ACKS1, "--seed", "3")[0] == 0
    assert cli_run(capsys, "run", ACKS1, "--seed", "3", "--set", "producers.0.acks=all")[0] == 0
    base = tmp_path / "results" / "leader-crash-acks1"
    assert sorted(p.name for p in base.iterdir()) == ["seed-3", "seed-3-producers.0.acks=all"]
    plain, acks_all = base / "seed-3", base / "seed-3-producers.0.acks=all"
    assert json.loads((plain / "summary.json").read_text())["overrides"] == {}
    assert json.loads((acks_all / "summary.json").read_text())["overrides"] == {"producers.0.acks": "all"}
    assert Scenario.resolve(plain / "scenario.yaml").producers[0].acks == 1
    text = (acks_all / "scenario.yaml").read_text()
    assert text.startswith("# made with overrides (already applied below): --set producers.0.acks=all\n")
    assert Scenario.resolve(acks_all / "scenario.yaml").producers[0].acks == -1  # still a valid scenario
    # many or unusual overrides: 8 hex digits of the sorted overrides, the same whatever their order
    rc, out, err = cli_run(capsys, "run", ACKS1, "--seed", "3", "--set", "faults=[]", "--set", "duration=5s")
    assert rc == 0, err
    again = cli_run(capsys, "run", ACKS1, "--seed", "3", "--set", "duration=5s", "--set", "faults=[]")
    assert again[0] == 0
    hashed = [p.name for p in base.iterdir() if p.name not in ("seed-3", "seed-3-producers.0.acks=all")]
    assert len(hashed) == 1 and re.fullmatch(r"seed-3-[0-9a-f]{8}", hashed[0])


def test_version_and_short_help(capsys):
    rc, out, err = cli_run(capsys, "--version")
    assert rc == 0 and out == f"kafkasim {sim.__version__}\n"
    rc, out, err = cli_run(capsys, "-h")
    assert rc == 0 and "Usage:" in out and "--version" in out
    rc, out, err = cli_run(capsys, "run", "-h")
    assert rc == 0 and "--out" in out


def test_run_failed_write_is_one_error_line_and_keeps_previous(capsys, tmp_path, monkeypatch, fake_run):
    out_dir = tmp_path / "r"
    assert cli_run(capsys, "run", QUICKSTART, "--seed", "3", "--out", out_dir)[0] == 0
    before = {p.name: p.read_bytes() for p in out_dir.iterdir()}

    def disk_full(self, *a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", disk_full)
    err = assert_one_line_error(*cli_run(capsys, "run", QUICKSTART, "--seed", "4", "--out", out_dir))
    assert err == f"error: --out {out_dir}: cannot write results (No space left on device)\n"
    assert {p.name: p.read_bytes() for p in out_dir.iterdir()} == before
    assert siblings(out_dir) == []


def test_run_out_under_a_file_is_one_error_line(capsys, tmp_path, fake_run):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    err = assert_one_line_error(*cli_run(capsys, "run", QUICKSTART, "--out", blocker / "run"))
    assert err.startswith(f"error: --out {blocker / 'run'}: cannot write there: {blocker} is a file")
    assert blocker.read_text() == "not a directory"
    assert fake_run == []  # refused before the run, not after it


@pytest.mark.parametrize("command", [
    ["explore", str(QUICKSTART), "--budget", "50"],
    ["sweep", str(ROOT / "scenarios" / "sweeps" / "smoke.yaml")],
])
def test_long_commands_check_out_is_writable_before_any_work(capsys, tmp_path, monkeypatch, command):
    """explore and sweep say at once that --out cannot be written (they used to find out after the work)."""
    import sim.runs.explore.search as search

    def no_work(*args, **kwargs):
        raise AssertionError("work started although --out cannot be written")

    monkeypatch.setattr(search, "generate", no_work)
    monkeypatch.setattr("sim.cli.sweep.run_sweep", no_work)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, out, err = cli_run(capsys, *command, "--out", blocker / "out")
    assert code == 2
    assert [line for line in err.splitlines() if line.startswith("error:")] == [
        f"error: --out {blocker / 'out'}: cannot write there: {blocker} is a file, not a directory"]
    assert "Traceback" not in err


def test_report_checks_out_before_rendering(capsys, tmp_path, real_run, monkeypatch):
    import analysis

    monkeypatch.setattr(analysis, "write_report", lambda *a, **k: pytest.fail("rendered before checking --out"))
    blocker = tmp_path / "file"
    blocker.write_text("x")
    err = assert_one_line_error(*cli_run(capsys, "report", real_run.dir, "--out", blocker / "r.html"))
    assert "cannot write there" in err


# --- Results.write: atomic replacement ---------------------------------------------------------
def tiny_results(tag: int) -> Results:
    df = pd.DataFrame({"tag": [tag] * 3, "x": [1.0, 2.0, 3.0]})
    return Results(load_scenario(QUICKSTART), tag, {"tag": tag}, df, df.copy(), df.copy())


def test_write_creates_run_directory(tmp_path):
    out = tmp_path / "a" / "b" / "run"
    assert tiny_results(1).write(out) == out
    assert sorted(p.name for p in out.iterdir()) == sorted(RUN_FILES)
    assert json.loads((out / "summary.json").read_text()) == {"tag": 1}
    assert pd.read_parquet(out / "events.parquet")["tag"].tolist() == [1, 1, 1]
    assert Scenario.resolve(out / "scenario.yaml") == load_scenario(QUICKSTART)
    assert siblings(out) == []


def test_write_replaces_existing_directory(tmp_path):
    out = tmp_path / "run"
    tiny_results(1).write(out)
    (out / "plots").mkdir()  # what `kafkasim plot` and `report` add to a run go with it
    (out / "plots" / "timeline.svg").write_text("<svg/>")
    (out / "report.html").write_text("<!DOCTYPE html>\n<html><head><title>kafkasim run report: x</title>")
    tiny_results(2).write(str(out))  # a str works too
    assert sorted(p.name for p in out.iterdir()) == sorted(RUN_FILES)
    assert json.loads((out / "summary.json").read_text()) == {"tag": 2}
    assert pd.read_parquet(out / "batches.parquet")["tag"].tolist() == [2, 2, 2]
    assert siblings(out) == []


@pytest.mark.parametrize("exc", [RuntimeError("parquet exploded"), OSError(28, "No space left on device"),
                                 KeyboardInterrupt()])
def test_failed_write_keeps_previous_directory_and_leaves_no_temporary(tmp_path, monkeypatch, exc):
    out = tmp_path / "run"
    tiny_results(1).write(out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    calls = []

    def boom(self, path, *a, **k):
        calls.append(path)
        Path(path).write_bytes(b"half a file")  # fail after writing something
        raise exc

    monkeypatch.setattr(pd.DataFrame, "to_parquet", boom)
    with pytest.raises(type(exc)):
        tiny_results(2).write(out)
    assert calls  # the failure really happened inside write()
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert siblings(out) == []


def test_failed_first_write_leaves_nothing(tmp_path, monkeypatch):
    out = tmp_path / "run"

    def boom(self, *a, **k):
        raise RuntimeError("no parquet today")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", boom)
    with pytest.raises(RuntimeError):
        tiny_results(1).write(out)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_failed_summary_write_keeps_previous(tmp_path, monkeypatch):
    out = tmp_path / "run"
    tiny_results(1).write(out)
    bad = tiny_results(2)
    bad.summary.extra["oops"] = object()  # not JSON serialisable: fails at the very last file
    with pytest.raises(TypeError):
        bad.write(out)
    assert json.loads((out / "summary.json").read_text()) == {"tag": 1}
    assert siblings(out) == []


# --- issue 11, items 10 and 11: guard rails, warnings once at the top ---------------------------
SHORT = ["--set", "duration=2s", "--set", "settle=1s", "--set", "faults=[]"]


@pytest.mark.parametrize("override", ["producers.0.rate=1e12/s", "producers.0.rate=1e10/s", "duration=1000000000s"])
@pytest.mark.parametrize("command", ["run", "validate"])
def test_absurd_loads_are_refused_before_anything_is_allocated(capsys, monkeypatch, tmp_path, override, command):
    monkeypatch.chdir(tmp_path)

    def never(*a, **k):
        raise AssertionError("the simulation must not start")

    monkeypatch.setattr(sim.runs.runner, "simulate", never)
    import time
    t0 = time.monotonic()
    err = assert_one_line_error(*cli_run(capsys, command, QUICKSTART, "--set", override))
    assert time.monotonic() - t0 < 10
    field = "duration" if override.startswith("duration") else "producers.0.rate"
    assert err.startswith(f"error: {field}: this run needs about ")
    assert "of memory this machine has: " in err
    assert ("shorten duration" in err) if field == "duration" else ("lower the producers' rate" in err)
    assert not (tmp_path / "results").exists()


def test_the_python_api_refuses_an_absurd_load_too():
    from sim.runs.runner import WorkTooLarge

    with pytest.raises(WorkTooLarge, match="memory this machine has"):
        sim.run(load_scenario(QUICKSTART, ["producers.0.rate=1e12/s"]))


def test_a_large_run_warns_once_at_the_top_and_records_it(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(sim.runs.runner, "WARN_WALL_S", 0.0)  # every run counts as long
    with deadline(60):
        rc, out, err = cli_run(capsys, "run", QUICKSTART, *SHORT, "--set", "topics.0.replication.factor=2",
                               "--set", "topics.0.min.insync.replicas=3", "--out", tmp_path / "r")
    assert rc == 0, err
    lines = err.splitlines()
    warnings_ = [i for i, line in enumerate(lines) if line.startswith("warning: ")]
    assert len(warnings_) == 2 and warnings_ == [0, 1], err  # once each, before anything else
    assert "topics.0.min.insync.replicas=3 exceeds replication.factor 2" in lines[0]
    assert "a long run: about" in lines[1]
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert [f"warning: {w}" for w in summary["warnings"]] == lines[:2]


def test_progress_lines_off_a_terminal(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(cli.RunProgress, "PROGRESS_INTERVAL_S", 0.0)
    with deadline(60):
        rc, out, err = cli_run(capsys, "run", QUICKSTART, "--seed", "0", *SHORT, "--out", tmp_path / "r")
    assert rc == 0, err
    progress = [line for line in err.splitlines() if line.startswith("progress: ")]
    assert len(progress) >= 3, err
    assert re.fullmatch(r"progress: quickstart seed 0: \d+s/3s simulated \(\d+%\), [\d.,]+ sim s/s, elapsed \S+, "
                        r"ETA \S+", progress[0]), progress[0]
    assert progress[-1].startswith("progress: quickstart seed 0: 3s/3s simulated (100%)")


def test_progress_off_a_terminal_is_quiet_for_a_short_run(capsys, tmp_path):
    with deadline(60):
        rc, out, err = cli_run(capsys, "run", QUICKSTART, "--seed", "0", *SHORT, "--out", tmp_path / "r")
    assert rc == 0, err
    assert len([line for line in err.splitlines() if line.startswith("progress: ")]) <= 2  # the last, and at most one more


def test_progress_on_a_terminal_shows_eta_and_simulated_rate(monkeypatch):
    console = Console(file=io.StringIO(), force_terminal=True, width=160)
    monkeypatch.setattr(cli, "err_console", console)
    progress = cli.RunProgress("quickstart seed 0", 10_000.0)
    with progress:
        progress(5_000.0, 10_000.0)
        shown = Console(file=io.StringIO(), width=160)
        shown.print(progress._bar.make_tasks_table(progress._bar.tasks))  # the bar's line as drawn
        line = shown.file.getvalue()
    assert "ETA" in line and "5s/10s simulated" in line and "sim s/s" in line, line
    assert "progress: " not in console.file.getvalue()  # no plain lines on a terminal


@pytest.mark.parametrize("command", ["run", "validate"])
def test_a_sweep_file_passed_to_run_says_so_in_one_line(capsys, tmp_path, command):
    smoke = ROOT / "scenarios" / "sweeps" / "smoke.yaml"
    err = assert_one_line_error(*cli_run(capsys, command, smoke))
    assert err == (f"error: {smoke}: is a sweep file (it names a base scenario and what to vary), not a scenario; "
                   f"run it with `kafkasim sweep {smoke}`\n")


def test_validate_dev_zero_ends_quickly_with_one_line(capsys):
    if not Path("/dev/zero").exists():
        pytest.skip("no /dev/zero on this system")
    err = assert_one_line_error(*cli_run(capsys, "validate", "/dev/zero"))
    assert err.startswith("error: /dev/zero: larger than 1024 KiB")


def test_duplicate_keys_are_one_error_line(capsys, tmp_path):
    f = tmp_path / "dup.yaml"
    f.write_text(QUICKSTART.read_text() + "duration: 5s\n")
    err = assert_one_line_error(*cli_run(capsys, "validate", f))
    assert err.startswith(f"error: {f}: duplicate key 'duration' at line ")


# --- issue 11, item 14: scenarios lists sweeps and benchmarks -----------------------------------
def test_scenarios_lists_scenarios_sweeps_and_benchmarks_grouped(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(cli, "out_console", Console(width=300))
    rc, out, err = cli_run(capsys, "scenarios")
    assert rc == 0, err
    heads = ["Scenarios (kafkasim run FILE)", "Sweeps (kafkasim sweep FILE)", "Benchmark scenarios"]
    positions = [out.index(h) for h in heads]
    assert positions == sorted(positions)
    scen, sweeps, bench = (out[positions[0]:positions[1]], out[positions[1]:positions[2]], out[positions[2]:])
    assert "scenarios/quickstart.yaml" in scen and "scenarios/sweeps/" not in scen
    assert "scenarios/sweeps/acks-rf.yaml" in sweeps and "scenarios/sweeps/smoke.yaml" in sweeps
    assert "scenarios/bench/steady.yaml" in bench and "scenarios/bench/soak.yaml" in bench


def _bundled_paths() -> list[str]:
    return sorted(str(f.relative_to(ROOT)) for pattern in ("*.yaml", "*/*.yaml")
                  for f in (ROOT / "scenarios").glob(pattern))


def test_scenarios_off_a_terminal_never_wraps_a_path(capsys, monkeypatch):
    """Off a terminal (a pipe, 80 columns): every path on one line, whole, so it can be copied back."""
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(cli, "out_console", Console(width=80, force_terminal=False))
    rc, out, err = cli_run(capsys, "scenarios")
    assert rc == 0, err
    words = {w.strip("│┃|") for line in out.splitlines() for w in line.split()}
    missing = [p for p in _bundled_paths() if p not in words]
    assert not missing, f"wrapped or missing: {missing[:5]}\n{out[:2000]}"


def test_scenarios_names_prints_one_path_per_line(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    rc, out, err = cli_run(capsys, "scenarios", "--names")
    assert rc == 0, err
    lines = out.splitlines()
    assert set(_bundled_paths()) <= set(lines)
    assert all(line.endswith(".yaml") and " " not in line for line in lines)
    assert lines.index("scenarios/quickstart.yaml") < lines.index("scenarios/sweeps/acks-rf.yaml")


# --- CI-friendly runs: --fail-on and --json --------------------------------------------------------
def test_run_fail_on_exits_1_when_a_condition_holds(capsys, tmp_path, fake_run):
    rc, out, err = cli_run(capsys, "run", QUICKSTART, "--out", tmp_path / "a", "--fail-on",
                           "acked_lost > 1e12, records_acked>0")
    assert rc == 1, err
    assert "fail-on: records_acked>0 (records_acked=" in err and "acked_lost" not in err.split("fail-on:")[1]
    assert (tmp_path / "a" / "summary.json").is_file()  # the run is kept: CI can upload it
    rc, out, err = cli_run(capsys, "run", QUICKSTART, "--out", tmp_path / "b", "--fail-on", "acked_lost>1e12")
    assert rc == 0 and "fail-on" not in err


def test_run_fail_on_missing_value_never_holds(capsys, tmp_path, fake_run):
    from sim.runs.conditions import parse_conditions, failing

    conditions = parse_conditions("failover_ms.max>=0 or unavailable_ms.p99<0")
    assert failing(conditions, {"failover_ms": {"max": None}, "unavailable_ms": {}}) == []
    assert failing(conditions, {"failover_ms": {"max": 12.5}}) == ["failover_ms.max>=0 (failover_ms.max=12.5)"]


@pytest.mark.parametrize("expr, fragment", [
    ("acked>0", "--fail-on: unknown summary key 'acked' (allowed: acked_lost,"),
    ("acked_lost>>0", "--fail-on: cannot read 'acked_lost>>0' (expected KEY OP NUMBER"),
    ("failover_ms.p42 > 1", "(allowed: failover_ms.max, failover_ms.p50, failover_ms.p99, failover_ms.p999)"),
    (" , ", "--fail-on: empty"),
])
def test_run_fail_on_errors_before_running(capsys, tmp_path, fake_run, expr, fragment):
    err = assert_one_line_error(*cli_run(capsys, "run", QUICKSTART, "--out", tmp_path / "x", "--fail-on", expr))
    assert fragment in err
    assert fake_run == [] and not (tmp_path / "x").exists()


def test_run_json_prints_the_summary(capsys, tmp_path, fake_run):
    rc, out, err = cli_run(capsys, "run", QUICKSTART, "--out", tmp_path / "j", "--json")
    assert rc == 0, err
    printed = json.loads(out)
    assert printed == json.loads((tmp_path / "j" / "summary.json").read_text())
    assert "records acked" not in out  # no table


def test_sigterm_of_a_run_says_so_and_keeps_nothing_half_written(tmp_path):
    """SIGTERM mid-run: one line on stderr, exit code 143, no run directory and no temporary left."""
    err_file = tmp_path / "err.txt"
    out = tmp_path / "results" / "run"
    with open(err_file, "w") as err:
        p = subprocess.Popen([sys.executable, "-m", "sim.cli", "run", str(QUICKSTART), "--out", str(out)],
                             stdout=subprocess.DEVNULL, stderr=err, cwd=tmp_path)
        try:
            deadline = time.monotonic() + 300
            while "progress:" not in err_file.read_text():  # the run is under way (a condition, not a time)
                assert p.poll() is None and time.monotonic() < deadline, err_file.read_text()
                time.sleep(0.05)
            p.send_signal(signal.SIGTERM)
            rc = p.wait(timeout=120)
        finally:
            p.kill()
            p.wait()
    text = err_file.read_text()
    assert rc == 143, text
    assert text.rstrip().splitlines()[-1].startswith("terminated (SIGTERM): stopped; results are written only when")
    assert "Traceback" not in text
    assert not out.exists()
    assert not out.parent.exists() or list(out.parent.iterdir()) == []  # no hidden temporary either


def test_two_commands_writing_one_out_at_once_are_refused_not_mixed(tmp_path, capsys):
    """A second kafkasim writing the same --out while the first still runs is refused in one line (exit
    2, nothing run, nothing written) instead of the two replacing each other's results; the lock goes
    with the command that held it."""
    from sim.runs.results import output_lock

    out = tmp_path / "busy"
    with output_lock(out):  # another kafkasim is writing there now
        rc = main(["run", str(QUICKSTART), "--seed", RUN_SEED, *FAST, "--out", str(out)])
        err = capsys.readouterr().err
        assert rc == 2 and not out.exists()
        assert f"--out {out}: another kafkasim (pid {os.getpid()}) is writing there now" in err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
        assert main(["sweep", str(ROOT / "scenarios" / "sweeps" / "smoke.yaml"), "--out", str(out)]) == 2
        assert "is writing there now" in capsys.readouterr().err
    assert main(["run", str(QUICKSTART), "--seed", RUN_SEED, *FAST, "--out", str(out)]) == 0
    assert (out / "summary.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["busy"]  # the lock file went with its holder
