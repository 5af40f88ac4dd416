"""Every command in README.md, run as written (issue 11, item 12).

The fenced ``bash`` blocks are split into commands and run in README order in a scratch directory
holding a copy of ``scenarios/``: ``.venv/bin/kafkasim ...`` in this process, with every
simulated run shortened to a few simulated seconds (and sweeps to their first seed), so the
whole README runs in well under a minute. The ``python`` blocks run there too, in order, and
the ``yaml`` sweep example is validated as a sweep file. A command this test does not know how to
run fails it: a new README command must be run here, or listed in SKIPPED with the reason.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
import shutil
import sys
from pathlib import Path

import pytest

import sim
import sim.cli.sweep
import sim.runs.runner
from sim.cli import main
from sim.scenario.schema import Scenario

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MANUAL = ROOT / "docs" / "manual.md"
"""The README is the front door; the manual holds the rest of the commands, run here after it."""

SKIPPED = {
    "python3 -m venv .venv": "creates the environment this test runs in (.ci/run runs exactly this)",
    ".venv/bin/pip install -q -e '.[test]'": "installs the package this test imports (.ci/run runs exactly this)",
    ".venv/bin/python -m pytest -n 2 -q": "the test suite itself (.ci/run runs exactly this)",
    ".venv/bin/pip install -e '.[notebook]'": "installs JupyterLab, which tests never install "
                                              "(test_notebook_extra checks the extra and this line)",
    ".venv/bin/jupyter lab notebooks/": "starts an interactive server (tests/test_notebook.py executes the notebook)",
    ".venv/bin/kafkasim real setup": "fetches Apache Kafka with Maven (.ci/run runs exactly this; "
                                     "tests/test_real_setup.py tests it)",
    ".venv/bin/kafkasim versus scenarios/real/leader-kill-acks1.yaml --seeds 5":
        "starts a real Kafka cluster five times (minutes); tests/test_real_smoke.py runs one through the comparison",
}
BENCH = ".venv/bin/python bench/bench.py"
"""Benchmarks take minutes: their flags are checked by bench.py's own parser; tests/test_bench_smoke.py runs them."""

MAX_DURATION_MS, MAX_SETTLE_MS, MAX_INSTANCES = 2_000.0, 1_000.0, 2
HEAL_FIELDS = ("restart_after", "heal", "duration")
"""The fields that say how long a fault lasts, by kind (crash: restart_after; partition: heal; pause: duration)."""


def readme_blocks() -> list[tuple[str, str]]:
    """(language, text) of every fenced block, in README order."""
    text = README.read_text() + "\n" + MANUAL.read_text()
    return re.findall(r"^```(\w+)\n(.*?)^```", text, flags=re.M | re.S)


def commands(block: str) -> list[str]:
    """The shell commands of a bash block: one per line (comments dropped), split at `&&`."""
    out = []
    for line in block.splitlines():
        words = shlex.split(line, comments=True)
        if not words:
            continue
        cmd: list[str] = []
        for w in words + ["&&"]:
            if w == "&&":
                out.append(shlex.join(cmd))
                cmd = []
            else:
                cmd.append(w)
    return out


def shorten(sc: Scenario) -> Scenario:
    """The same scenario over at most 2 simulated seconds (+1 s settle), faults scaled into it."""
    if sc.duration <= MAX_DURATION_MS and sc.settle <= MAX_SETTLE_MS and \
            all(p.instances <= MAX_INSTANCES for p in sc.producers):
        return sc
    f = min(1.0, MAX_DURATION_MS / sc.duration)
    over: dict = {"duration": f"{sc.duration * f}ms", "settle": f"{min(sc.settle, MAX_SETTLE_MS)}ms"}
    for i, fault in enumerate(sc.faults):
        over[f"faults.{i}.at"] = f"{fault.at * f}ms"
        for heal in HEAL_FIELDS:  # whichever field says how long this kind of fault lasts
            if getattr(fault, heal, None) is not None:
                over[f"faults.{i}.{heal}"] = f"{max(getattr(fault, heal) * f, 1.0)}ms"
    for i, p in enumerate(sc.producers):
        over[f"producers.{i}.instances"] = min(p.instances, MAX_INSTANCES)
    return Scenario.resolve(sc.model_dump(mode="json", by_alias=True), over).model_copy(update={"seed": sc.seed})


@pytest.fixture
def short_runs(monkeypatch):
    """Every run and sweep started from here is shortened; sweeps keep their first seed."""
    sweep_module = sys.modules["sim.runs.sweep.orchestrate"]  # where run_sweep looks load_sweep up
    real_run, real_load_sweep = sim.runs.runner.run, sweep_module.load_sweep

    def run(scenario, seed=None, *, overrides=None, progress=None, prepare=None, checked=None):
        sc = sim.runs.runner._as_scenario(scenario, overrides)
        res = real_run(shorten(sc), seed=seed, progress=progress, prepare=prepare, checked=checked)
        res.summary = dataclasses.replace(res.summary, overrides=sim.runs.runner._recorded_overrides(overrides))
        return res

    def load_sweep(source):
        sw = real_load_sweep(source)
        seeds = sw.seeds[:1]
        runs = tuple(dataclasses.replace(r, scenario=shorten(r.scenario)) for r in sw.runs if r.seed in seeds)
        return dataclasses.replace(sw, seeds=seeds, runs=runs)

    # explore: the base scenario is shortened too (each schedule's run, the shrinking and the replay)
    import sim.runs.explore.search as explore_search

    real_base = explore_search._base_data

    def base_data(scenario, overrides):
        data, sc, replaced = real_base(scenario, overrides)
        short = shorten(sc)
        return {**data, "duration": f"{short.duration}ms", "settle": f"{short.settle}ms"}, short, replaced

    monkeypatch.setattr(explore_search, "_base_data", base_data)
    # validate-model: each case's first seed at full length, judged as usual (its quick cases run with
    # every seed in tests/test_validation.py); one run is run in this process
    import sim.runs.validation as validation

    real_case_runs = validation._runs
    monkeypatch.setattr(validation, "_runs", lambda cases, quick: [r for r in real_case_runs(cases, quick)
                                                                   if r.seed == 0])  # seeds are 0..N-1
    # sweeps and explore run in this process (one worker, as on a one-core machine): each process pool
    # would start and import everything again; the pools are tests/test_sweep.py's and test_explore.py's
    for module in ("sim.runs.sweep.executors", "sim.runs.sweep.orchestrate", "sim.runs.explore.search"):
        monkeypatch.setattr(sys.modules[module], "available_cores", lambda: 1)
    # sim.run first: sim loads it lazily from the runner, so patched after the runner it would
    # record (and "restore") the patched function, and every later test would run shortened
    monkeypatch.setattr(sim, "run", run)
    monkeypatch.setattr(sim.runs.runner, "run", run)
    monkeypatch.setattr(sweep_module, "load_sweep", load_sweep)
    monkeypatch.setattr(sim.cli.sweep, "load_sweep", load_sweep)


def readme_fault_scenario(text: str) -> Scenario:
    """The quickstart with the top-level sections of a README YAML fragment (mappings merged, lists replaced)."""
    import yaml

    data = yaml.safe_load((ROOT / "scenarios" / "quickstart.yaml").read_text())
    for key, value in yaml.safe_load(text).items():
        data[key] = {**data[key], **value} if isinstance(value, dict) and isinstance(data.get(key), dict) else value
    return Scenario.resolve(data)


def run_bench_flags(args: list[str], monkeypatch) -> None:
    """bench.py's parser accepts `args` (the benchmark itself is not run)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("readme_bench", ROOT / "bench" / "bench.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)

    class Parsed(Exception):
        pass

    def stop(*a, **k):
        raise Parsed

    monkeypatch.setattr(bench, "measure", stop)
    monkeypatch.setattr(bench, "memory_profile", stop)
    with pytest.raises(Parsed):
        bench.main(args)


@pytest.mark.heavy
def test_every_readme_command_runs_as_written(tmp_path, monkeypatch, capsys, short_runs):
    shutil.copytree(ROOT / "scenarios", tmp_path / "scenarios")
    monkeypatch.chdir(tmp_path)
    done: list[str] = []
    for lang, text in readme_blocks():
        if lang == "bash":
            for cmd in commands(text):
                words = shlex.split(cmd)
                if cmd in SKIPPED:
                    continue
                if cmd.startswith(BENCH):
                    run_bench_flags(words[2:], monkeypatch)
                elif words[0] == ".venv/bin/kafkasim":
                    if words[1] == "describe" and "--at" in words:  # runs here are shortened to a few seconds
                        words[words.index("--at") + 1] = "1s"
                    rc = main(words[1:])
                    cap = capsys.readouterr()
                    # explore exits 1 when it found a violation (the README says so)
                    # and so does a run whose --fail-on condition holds (the README says so too)
                    ok = (0, 1) if words[1] == "explore" or "--fail-on" in words else (0,)
                    assert rc in ok, f"README command failed: {cmd}\n{cap.err[-3000:]}"
                    assert "Traceback" not in cap.err
                else:
                    pytest.fail(f"README command this test cannot run: {cmd!r} (run it here or add it to SKIPPED)")
                done.append(cmd)
        elif lang == "python":
            try:
                exec(compile(text, "README.md", "exec"), {"__name__": "readme"})
            except Exception as e:  # noqa: BLE001 - report which snippet failed
                pytest.fail(f"README python block failed: {type(e).__name__}: {e}\n{text}")
            done.append(text.splitlines()[0])
        elif lang == "yaml" and "grid:" in text:  # the sweep file example
            f = tmp_path / "scenarios" / "sweeps" / "readme-example.yaml"
            f.write_text(text)
            assert len(sim.load_sweep(f).runs) == 150  # every combination and seed validated
            done.append("yaml")
        elif lang == "yaml":  # the faults example: the quickstart with these sections, validated and run
            sc = readme_fault_scenario(text)
            assert sc.faults and sc.random_faults
            res = sim.run(sc, seed=1)
            started = res.events[res.events.kind == "fault_start"]
            assert set(started.fault) == {f.kind for f in sc.faults}, started[["fault", "target"]]
            assert res.summary.invariant_violations == 0
            done.append("yaml faults")
    # what the README says the commands wrote
    assert (tmp_path / "results" / "quickstart" / "seed-1" / "summary.json").is_file()
    assert sorted(p.name for p in (tmp_path / "results" / "leader-crash-acks1").iterdir()) == \
        ["seed-1", "seed-1-producers.0.acks=all"]
    assert (tmp_path / "results" / "quickstart" / "seed-1" / "report.html").is_file()
    assert (tmp_path / "results" / "my-study" / "seed-3" / "summary.json").is_file()
    assert (tmp_path / "results" / "sweeps" / "acks-rf" / "sweep.parquet").is_file()
    assert any((tmp_path / "figures").glob("*.png"))
    assert len([d for d in done if d.startswith(".venv/bin/kafkasim")]) >= 15
    # the fault commands: the power loss with and without fsync, the shorter partition
    assert sorted(p.name for p in (tmp_path / "results" / "power-loss").iterdir()) == \
        ["seed-1", "seed-1-topics.0.flush.messages=1"]
    assert (tmp_path / "results" / "partition" / "seed-1-faults.0.heal=10s" / "summary.json").is_file()
    assert "yaml faults" in done
    # the explore command: its search's directory
    assert json.loads((tmp_path / "results" / "explore" / "acks1" / "explore.json").read_text())["tried"] == 40
    # `kafkasim compare` of the two leader-crash-acks1 runs
    (compared,) = (tmp_path / "results" / "compare").iterdir()
    assert sorted(p.name for p in compared.iterdir()) == ["latency.png", "latency.svg"]


def test_the_readme_blocks_are_found():
    langs = [lang for lang, _ in readme_blocks()]
    assert langs.count("bash") >= 5 and langs.count("python") >= 3 and langs.count("yaml") >= 2
    every = [c for lang, text in readme_blocks() if lang == "bash" for c in commands(text)]
    assert set(SKIPPED) <= set(every), "a SKIPPED command is no longer in the README: drop it"
