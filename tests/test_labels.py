"""Labels and numbers that mislead (issue 22): one throughput measure and name everywhere, compare
naming only what differs, `--json` on compare and sweep, and the wording of the figures."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest

import analysis
import sim
from analysis.report import run_summary_rows
from sim.cli import main
from sim.measure.batches import COMMITTED_RPS_LABEL

ROOT = Path(__file__).resolve().parents[1]
QUICK = {"duration": "2s", "settle": "1s", "faults": [], "producers.0.enable.idempotence": False,
         "producers.0.rate": "5000/s"}


def _run(out: Path, overrides: dict, scenario: str = "quickstart.yaml", seed: int = 1) -> Path:
    sc = sim.load_scenario(ROOT / "scenarios" / scenario, overrides=overrides)
    res = sim.run(sc, seed=seed)
    res.summary = dataclasses.replace(res.summary, overrides=dict(overrides))
    return res.write(out)


@pytest.fixture(scope="module")
def acks_runs(tmp_path_factory) -> dict[str, Path]:
    """acks=1 and acks=0 of one short fault-free scenario; a run overriding a key to its default value."""
    base = tmp_path_factory.mktemp("labels")
    return {
        "1": _run(base / "acks1", {**QUICK, "producers.0.acks": 1}),
        "0": _run(base / "acks0", {**QUICK, "producers.0.acks": 0}),
        # topics.0.partitions: 6 is quickstart's own value: set, but not a difference
        "1-same-partitions": _run(base / "acks1-p6", {**QUICK, "producers.0.acks": 1, "topics.0.partitions": 6}),
    }


@pytest.fixture(scope="module")
def acks0_sweep(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("labels-sweep") / "sweep"
    spec = tmp_path_factory.mktemp("labels-spec") / "acks0.yaml"
    spec.write_text(json.dumps({
        "name": "labels-acks0", "scenario": str(ROOT / "scenarios" / "quickstart.yaml"),
        # min.insync.replicas does not change acks=1's latency: its two ECDFs coincide
        "set": QUICK, "grid": {"producers.0.acks": [0, 1], "topics.0.min.insync.replicas": [1, 2]},
        "seeds": [1, 2]}))
    assert main(["sweep", str(spec), "--workers", "1", "--out", str(out)]) == 0
    return spec, out


# --- one throughput measure and one name ------------------------------------------------------------
def test_sweep_console_table_shows_the_committed_rate_of_acks0(acks0_sweep, capsys):
    """acks=0 is never acknowledged: the console table used to show its throughput as 0.0."""
    spec, out = acks0_sweep
    capsys.readouterr()
    assert main(["sweep", str(spec), "--out", str(out)]) == 0
    cap = capsys.readouterr()
    assert COMMITTED_RPS_LABEL in cap.out and "throughput" not in cap.out
    header = next(line for line in cap.out.splitlines() if "runs ok" in line)
    cells = [c.strip() for c in header.strip("┃│ ").split("┃")]
    col = cells.index(COMMITTED_RPS_LABEL)
    rows = [[c.strip() for c in line.strip("│ ").split("│")] for line in cap.out.splitlines() if line.startswith("│")]
    acks0 = next(r for r in rows if r[0] == "0")
    mean = float(acks0[col].split("±")[0].replace(",", ""))
    assert mean > 4000, acks0  # ~5,000 rec/s offered, all of it committed


def test_sweep_json_is_the_table_and_nothing_else_on_stdout(acks0_sweep, capsys):
    spec, out = acks0_sweep
    capsys.readouterr()
    assert main(["sweep", str(spec), "--out", str(out), "--json"]) == 0
    cap = capsys.readouterr()
    data = json.loads(cap.out)  # stdout is exactly one JSON document
    assert data["sweep"] == "labels-acks0"
    rows = {str(r["params"]["producers.0.acks"]): r for r in data["combinations"]
            if r["params"]["topics.0.min.insync.replicas"] == 1}
    assert len(data["combinations"]) == 4 and set(rows) == {"0", "1"}
    assert rows["0"]["runs"] == 2 and rows["0"]["runs_ok"] == 2
    committed = rows["0"]["metrics"]["committed_rps"]
    assert committed["label"] == COMMITTED_RPS_LABEL and committed["mean"] > 4000
    assert committed["low"] <= committed["mean"] <= committed["high"]
    assert rows["0"]["metrics"]["produce_latency_ms.p99"]["mean"] is None  # no acks, no latency: null, not NaN
    assert "wrote" in cap.err


def test_committed_rate_has_one_name_in_run_table_compare_and_report(acks_runs, tmp_path, capsys, monkeypatch):
    """The run table, compare and the report show the committed rate under one name; acks=0's is not 0."""
    monkeypatch.chdir(tmp_path)
    assert main(["run", str(ROOT / "scenarios" / "quickstart.yaml"), "--out", str(tmp_path / "r0"),
                 *[a for k, v in {**QUICK, "producers.0.acks": 0}.items() for a in ("--set", f"{k}={json.dumps(v)}")]
                 ]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if COMMITTED_RPS_LABEL in line)
    assert float(row.split("│")[-2].strip().replace(",", "")) > 4000
    assert "throughput" not in out

    frame = analysis.compare(acks_runs["1"], acks_runs["0"]).set_index("key")
    assert frame.loc["committed_rps", "b"] > 4000
    assert frame.loc["committed_rps"].name == "committed_rps"
    labels = analysis.compare(acks_runs["1"], acks_runs["0"])["key"]
    assert "throughput" not in " ".join(analysis.compare(acks_runs["1"], acks_runs["0"]).index)
    assert list(labels).index("committed_rps") < list(labels).index("throughput_rps")

    rows = {key: (label, value) for label, key, value in run_summary_rows(analysis.load_run(acks_runs["0"]))}
    assert rows["committed_rps"][0].startswith(COMMITTED_RPS_LABEL) and rows["committed_rps"][1] > 4000
    assert "throughput" not in " ".join(label for label, _ in rows.values())


def test_sweep_report_runs_table_shows_the_committed_rate(acks0_sweep, tmp_path):
    _, out = acks0_sweep
    page = analysis.write_report(out, tmp_path / "report.html").read_text()
    assert COMMITTED_RPS_LABEL in page and "throughput (acked" not in page


# --- compare names only what differs -----------------------------------------------------------------
def test_compare_names_only_the_settings_that_differ(acks_runs):
    """A key set in one run to the value the other has anyway (or set alike in both) is not a difference."""
    la, lb = analysis.compare(acks_runs["1-same-partitions"], acks_runs["0"]).attrs["labels"]
    assert la == "quickstart seed 1 (producers.0.acks=1)", la
    assert lb == "quickstart seed 1 (producers.0.acks=0)", lb
    frame = analysis.compare(acks_runs["1-same-partitions"], acks_runs["0"])
    assert frame.attrs["differ"] == [("producers.0.acks", 1, 0)]
    assert ("duration", "2s") in frame.attrs["same"]


def test_compare_names_scenario_settings_that_differ(acks_runs, tmp_path):
    """Two scenario files: the label names the settings whose resolved values differ, not just the names."""
    other = _run(tmp_path / "lc", {**QUICK, "producers.0.instances": 1, "producers.0.acks": 1},
                 scenario="leader-crash-acks1.yaml")
    la, lb = analysis.compare(acks_runs["1"], other).attrs["labels"]
    assert la.startswith("quickstart seed 1 (") and "network.latency.median=0.5ms" in la, la
    assert lb.startswith("leader-crash-acks1 seed 1 (") and "network.latency.median=1ms" in lb, lb
    assert "producers.0.acks" not in la + lb and "duration" not in la + lb


def test_compare_json(acks_runs, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main(["compare", str(acks_runs["1"]), str(acks_runs["0"]), "--json"]) == 0
    cap = capsys.readouterr()
    data = json.loads(cap.out)
    assert data["a"]["path"] == str(acks_runs["1"]) and data["b"]["label"].endswith("(producers.0.acks=0)")
    assert data["settings_that_differ"] == [{"key": "producers.0.acks", "a": 1, "b": 0}]
    metrics = {m["key"]: m for m in data["metrics"]}
    assert metrics["committed_rps"]["b"] > 4000
    assert metrics["produce_latency_ms.p50"]["b"] is None  # acks=0: no latency, null in JSON
    assert metrics["records_sent"]["difference"] == metrics["records_sent"]["b"] - metrics["records_sent"]["a"]
    assert "wrote" in cap.err and "latency.png" in cap.err


# --- figure wording ------------------------------------------------------------------------------------
def _texts(fig) -> str:
    out = [t.get_text() for t in fig.findobj(lambda o: hasattr(o, "get_text"))]
    for leg in [*fig.legends, *[ax.get_legend() for ax in fig.axes if ax.get_legend()]]:
        out += [t.get_text() for t in leg.get_texts()] + [leg.get_title().get_text()]
    return "\n".join(out)


def test_run_latency_figure_speaks_of_one_run(acks_runs):
    """One run has no seeds to pool or average over: the figure used to say "seeds pooled", "mean over seeds"."""
    fig = analysis.latency_plot(analysis.load_run(acks_runs["1"]))
    text = _texts(fig)
    assert "seed" not in text.replace("quickstart seed 1", ""), text
    assert "acknowledged records" in text


def test_coinciding_sweep_latency_lines_stay_visible(acks0_sweep):
    """Two configurations with the same latency: each line carries its own marks at its own heights, and the
    legend says which line it coincides with (they used to hide each other)."""
    _, out = acks0_sweep
    fig = analysis.latency_plot(analysis.load_sweep_results(out))
    ax = next(a for a in fig.axes if a.get_gid() == "latency:ecdf:acks=1")
    lines = [ln for ln in ax.get_lines() if str(ln.get_gid()).startswith("ecdf:")]
    assert len(lines) == 2
    heights = []
    for ln in lines:
        assert ln.get_marker() not in (None, "", "None") and ln.get_markevery() is not None
        y = np.asarray(ln.get_ydata())[ln.get_markevery()]
        heights.append(set(np.round(y, 3)))
    assert heights[0] and heights[1] and not heights[0] & heights[1]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("coincides with min.insync 1" in t for t in legend), legend


def _two_failovers_run(tmp_path, **extra) -> analysis.Run:
    over = {"duration": "8s", "settle": "4s", "faults.0.at": "2s", "faults.0.restart_after": "3s",
            "cluster.broker.session.timeout.ms": 1500, "cluster.broker.heartbeat.interval.ms": 250,
            "producers.0.rate": "5000/s", **extra}
    return analysis.load_run(_run(tmp_path / "two", over))


def test_failover_distribution_with_two_failovers_shows_two_points(tmp_path):
    """The leader of two partitions crashes: two failovers at one instant used to be an ECDF drawn as a
    vertical line; now a point each, stacked."""
    run = _two_failovers_run(tmp_path)
    assert len(run.summary.failovers) == 2
    fig = analysis.failover_distribution(run)
    for col in ("election_ms", "unavailable_ms"):
        ax = next(a for a in fig.axes if a.get_gid() == f"failover:{col}")
        pts = [ln for ln in ax.get_lines() if str(ln.get_gid()).startswith(f"points:{col}:")]
        xy = {(round(float(x), 6), round(float(y), 6)) for ln in pts for x, y in zip(ln.get_xdata(), ln.get_ydata())}
        assert len(xy) == 2, xy  # two distinct points
        want = sorted(f[col] / 1000.0 for f in run.summary.failovers)
        assert sorted(x for x, _ in xy) == pytest.approx(want)


def test_rf1_failover_is_the_same_leader_back(tmp_path):
    """RF 1: the crashed broker is elected again when it returns; it used to be labelled a new leader."""
    run = _two_failovers_run(tmp_path, **{"topics.0.replication.factor": 1, "topics.0.min.insync.replicas": 1,
                                          "producers.0.acks": 1, "producers.0.enable.idempotence": False})
    assert run.summary.failovers and all(f["new_leader"] == f["broker"] for f in run.summary.failovers)
    text = _texts(analysis.failover_distribution(run))
    assert "same broker back as leader" in text
    assert "fault to new leader elected" not in text and "a new leader elected" not in text


def test_timeline_names_each_fault_on_its_own_bar(tmp_path):
    """Two short faults side by side: the first one's label used to run across both bars and the second
    had none. Each bar now carries its label, or a numbered tag whose text is in the legend."""
    over = {"duration": "12s", "settle": "3s", "producers.0.rate": "5000/s",
            "faults": [{"kind": "crash", "broker": 0, "at": "3s", "restart_after": "400ms"},
                       {"kind": "pause", "broker": 1, "at": "3.5s", "duration": "400ms"},
                       {"kind": "crash", "broker": 2, "at": "8s", "restart_after": "3s"}]}
    run = analysis.load_run(_run(tmp_path / "faults", over))
    fig = analysis.failover_timeline(run)
    ax = next(a for a in fig.axes if a.get_gid() == "timeline:lanes")
    bars = {str(c.get_gid())[len("fault:"):]: c for c in ax.collections if str(c.get_gid()).startswith("fault:")}
    assert len(bars) == 3
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    named = {}
    for t in ax.texts:
        gid = str(t.get_gid())
        for kind in ("label:fault:", "tag:fault:"):
            if gid.startswith(kind):
                key = gid[len(kind):]
                x0, x1 = (p[0] for p in bars[key].get_paths()[0].get_extents().get_points())
                assert x0 <= t.get_position()[0] <= x1, (key, t.get_text())  # on its own bar
                text = t.get_text()
                if kind == "tag:fault:":  # the tag's text is in the legend
                    text = next(e.split(": ", 1)[1] for e in legend if e.startswith(f"fault {t.get_text()}: "))
                named[key] = text
    assert sorted(named.values()) == ["crash: broker 0", "crash: broker 2", "pause: broker 1"], named


def test_sweep_report_says_the_description_is_the_base_scenarios(acks0_sweep, tmp_path):
    """The sweep changes what the base's description speaks of (acks=all there): the page says whose
    description it is and what the sweep varies."""
    from analysis.report import _descriptions

    _, out = acks0_sweep
    texts = _descriptions(analysis.load_sweep_results(out))
    assert any(t.startswith("The base scenario quickstart's own description") and "acks=all" in t for t in texts)
    assert any("This sweep varies acks (0, 1), min.insync (1, 2)" in t for t in texts), texts


def test_latency_columns_use_one_unit():
    """A column of latencies mixed "9,931 ms" and "10.1 s": now one unit per column (the larger one's)."""
    from analysis.plots.style import ms_formatter

    fmt = ms_formatter([9_931.0, 10_100.0, 44.0])
    assert [fmt(v) for v in (9_931.0, 10_100.0, 44.0)] == ["9.9 s", "10.1 s", "0.044 s"]
    fmt = ms_formatter([9_931.0, 44.0, 5.4])
    assert [fmt(v) for v in (9_931.0, 44.0, 5.4)] == ["9,931 ms", "44 ms", "5.4 ms"]
