"""`kafkasim real setup` (idempotent, one-line errors) and the real commands' refusals. No Java needed."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from sim.cli.app import main as cli_main
from sim.real import kafka


@pytest.fixture()
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("KAFKASIM_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _fake_mvn(calls: list):
    def run(cmd, **kw):
        calls.append(cmd)
        out = next(a.split("=", 1)[1] for a in cmd if a.startswith("-DoutputDirectory="))
        Path(out).mkdir(parents=True)
        (Path(out) / f"kafka_2.13-{kafka.KAFKA_VERSION}.jar").write_bytes(b"jar")
        (Path(out) / f"kafka-tools-{kafka.KAFKA_VERSION}.jar").write_bytes(b"jar")
        return subprocess.CompletedProcess(cmd, 0, "", "")
    return run


def test_setup_fetches_once_and_a_second_call_does_nothing(cache, monkeypatch):
    calls: list = []
    monkeypatch.setattr(kafka.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(kafka.subprocess, "run", _fake_mvn(calls))
    said: list[str] = []
    libs = kafka.ensure_kafka(said.append)
    assert libs == cache / f"kafka-{kafka.KAFKA_VERSION}" / "libs" and kafka.is_ready()
    assert len(calls) == 1 and calls[0][0] == "mvn" and "dependency:copy-dependencies" in calls[0]
    assert any("fetching" in s for s in said)
    kafka.ensure_kafka(said.append)
    assert len(calls) == 1  # nothing ran the second time
    assert "ready" in said[-1]


def test_setup_without_maven_is_one_line(cache, monkeypatch, capsys):
    monkeypatch.setattr(kafka.shutil, "which", lambda name: None)
    assert cli_main(["real", "setup"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "java and mvn" in err[0]


def test_a_failed_fetch_is_one_line_and_leaves_no_complete_cache(cache, monkeypatch):
    monkeypatch.setattr(kafka.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(kafka.subprocess, "run", lambda cmd, **kw: subprocess.CompletedProcess(
        cmd, 1, "[ERROR] Failed to execute goal: Could not resolve dependencies\n[ERROR] more", ""))
    with pytest.raises(kafka.RealSetupError, match="Could not resolve dependencies") as e:
        kafka.ensure_kafka()
    assert "\n" not in str(e.value) and not kafka.is_ready()


def _ready(cache: Path, monkeypatch) -> None:
    libs = cache / f"kafka-{kafka.KAFKA_VERSION}" / "libs"
    libs.mkdir(parents=True)
    (libs / f"kafka_2.13-{kafka.KAFKA_VERSION}.jar").write_bytes(b"jar")
    (libs.parent / ".complete").write_text("ok")
    monkeypatch.setattr(kafka.shutil, "which", lambda name: f"/usr/bin/{name}")


@pytest.mark.parametrize("change,field", [
    ({"cluster": {"brokers": 3, "kafka.version": "3.9"}}, "cluster.kafka.version"),
    ({"faults": [{"kind": "power_loss", "broker": 0, "at": "1s"}]}, "faults.0.kind: power_loss"),
])
def test_real_refuses_what_cannot_be_real_in_one_line(tmp_path, cache, monkeypatch, capsys, change, field):
    _ready(cache, monkeypatch)
    data = yaml.safe_load((Path(__file__).parent.parent / "scenarios" / "real" / "leader-kill-acks1.yaml").read_text())
    data.update(change)
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data))
    for cmd in (["real", str(path)], ["versus", str(path), "--seeds", "1"]):
        assert cli_main(cmd) == 2
        err = [ln for ln in capsys.readouterr().err.strip().splitlines() if ln.startswith("error:")]
        assert len(err) == 1 and field in err[0]


def test_versus_needs_a_scenario_or_all(cache, monkeypatch, capsys):
    _ready(cache, monkeypatch)
    assert cli_main(["versus"]) == 2
    assert "give a SCENARIO or --all" in capsys.readouterr().err


CALIBRATION = sorted((Path(__file__).parent.parent / "scenarios" / "real").glob("*.yaml"))


def test_the_calibration_set_has_the_cases_of_the_issue():
    assert {p.stem for p in CALIBRATION} == {
        "leader-kill-acks1", "leader-kill-acksall", "follower-kill", "leader-pause-5s", "leader-pause-15s",
        "leader-controlled-shutdown", "leader-kill-restart-3s", "leader-cut-one-way", "leader-cut-two-way",
        "unclean-election"}


@pytest.mark.parametrize("path", CALIBRATION, ids=lambda p: p.stem)
def test_calibration_scenarios_run_on_the_simulator(path):
    """Each is a valid simulator scenario for the version the real cluster runs, and simulates cleanly."""
    import sim
    from sim.scenario.schema import Scenario

    sc = Scenario.resolve(path)
    assert sc.cluster.kafka_version == kafka.MODEL_VERSION and sc.faults
    r = sim.run(sc, 0)
    assert r.summary.invariant_violations == 0 and r.summary.records_acked > 0
    assert r.events["kind"].eq("fault_start").sum() >= 1
