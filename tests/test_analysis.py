"""The analysis package on real small runs: tables recomputed from the facts, figures, CLI, HTML report.

Figures are checked by what they plot, not by pixels: the axes, series and labels they have, and
that every plotted number equals the one in the table the figure claims to show. The tables are
in turn checked against the run files (summary.json, sweep.parquet, the per-second series), which
the simulator computed independently.
"""

from __future__ import annotations

import base64
import json
import math
import subprocess
import sys
import textwrap
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import analysis
import sim
from analysis.load import RUN_FILES, ResultsError
from analysis.stats import ecdf_points, mean_ci, t_quantile, weighted_ecdf, weighted_percentiles
from sim.cli import main

ROOT = Path(__file__).resolve().parents[1]

# 12 runs of 10 simulated seconds: acks 0/1/all x (RF 2, min.insync 1) / (RF 3, min.insync 2) x seeds 1, 2.
# Fast failure detection so the crashed leader's partitions fail over well before it restarts.
SWEEP = {
    "name": "analysis-test",
    "scenario": str(ROOT / "scenarios" / "quickstart.yaml"),
    "set": {
        "duration": "6s", "settle": "4s", "faults.0.at": "2s", "faults.0.restart_after": "3s",
        "producers.0.enable.idempotence": None, "producers.0.rate": "20000/s", "topics.0.partitions": 3,
        "cluster.broker.heartbeat.interval.ms": 250, "cluster.broker.session.timeout.ms": 1500,
        # slow links keep batches in flight when the leader dies, so acks=0 visibly loses records
        "network.latency": {"dist": "lognormal", "median": "5ms", "sigma": 0.5},
    },
    "grid": {"producers.0.acks": [0, 1, "all"]},
    "zip": [{"topics.0.replication.factor": [2, 3], "topics.0.min.insync.replicas": [1, 2]}],
    "seeds": [1, 2],
}


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("analysis") / "sweep"
    sim.sweep(SWEEP, out=out, workers=1)
    return out


@pytest.fixture(scope="module")
def study(sweep_dir) -> analysis.Sweep:
    return analysis.load_sweep(sweep_dir)


@pytest.fixture(scope="module")
def run_dir(study) -> Path:
    """One run directory of the sweep: acks=1, RF 3, seed 1 (the leader of events-0 crashes and fails over)."""
    t = study.table
    row = t[(t["producers.0.acks"] == "1") & (t["topics.0.replication.factor"] == 3) & (t["seed"] == 1)]
    return study.run_dir(row["run_id"].iloc[0])


@pytest.fixture(scope="module")
def run(run_dir) -> analysis.Run:
    return analysis.load_run(run_dir)


def by_gid(container, gid: str):
    hits = [a for a in container if a.get_gid() == gid]
    assert len(hits) == 1, (gid, [a.get_gid() for a in container])
    return hits[0]


def axes_by_gid(fig, gid: str):
    return by_gid(fig.axes, gid)


def bar_heights(ax, gid: str) -> np.ndarray:
    bars = [p for p in ax.patches if p.get_gid() == gid]
    return np.array([b.get_height() for b in sorted(bars, key=lambda b: b.get_x())])


def errorbar_extents(ax, gid: str) -> tuple[np.ndarray, np.ndarray]:
    """(lows, highs) of the whiskers of an errorbar container, by x."""
    cont = [c for c in ax.containers if c.get_label() == f"_{gid}"]
    assert len(cont) == 1, gid
    segs = sorted(cont[0].lines[2][0].get_segments(), key=lambda s: s[0][0])
    return np.array([s[:, 1].min() for s in segs]), np.array([s[:, 1].max() for s in segs])


# --- loading ----------------------------------------------------------------------------------------
def test_run_files_are_the_simulators_contract():
    from sim.results import RUN_FILES as SIM_RUN_FILES

    assert RUN_FILES == SIM_RUN_FILES


def test_analysis_reads_files_only_and_renders_headless(run_dir, tmp_path):
    """Loading and plotting never imports the simulator (nor pyplot): analysis reads the files."""
    code = textwrap.dedent(f"""
        import sys
        import analysis
        run = analysis.load_run({str(run_dir)!r})
        analysis.failover_timeline(run, {str(tmp_path / "timeline.png")!r})
        analysis.write_report({str(run_dir)!r}, {str(tmp_path / "r.html")!r})
        bad = sorted(m for m in sys.modules if m == "sim" or m.startswith("sim.") or m == "matplotlib.pyplot")
        assert not bad, bad
    """)
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path)
    sources = "\n".join(p.read_text() for p in (ROOT / "analysis").glob("*.py"))
    assert "import sim" not in sources and "from sim" not in sources


def test_load_run_reads_every_table(run, run_dir):
    assert run.summary == json.loads((run_dir / "summary.json").read_text())
    assert run.scenario["name"] == run.summary["scenario"] == "quickstart"
    for table in ("batches", "events", "timeseries"):
        pd.testing.assert_frame_equal(getattr(run, table), pd.read_parquet(run_dir / f"{table}.parquet"))
    assert run.facts == {"acks": "1", "replication_factor": 3, "min_insync_replicas": 2, "partitions": 3,
                         "fault_kind": "crash"}


def test_load_detects_run_or_sweep(run_dir, sweep_dir):
    assert isinstance(analysis.load(run_dir), analysis.Run)
    assert isinstance(analysis.load(sweep_dir), analysis.Sweep)


def test_load_errors_are_one_line(tmp_path, run_dir):
    cases = {tmp_path / "missing": "no such results directory", tmp_path: "not a run or sweep directory"}
    for path, fragment in cases.items():
        with pytest.raises(ResultsError, match=fragment):
            analysis.load(path)
    part = tmp_path / "partial"
    part.mkdir()
    (part / "summary.json").write_text("{}")
    with pytest.raises(ResultsError, match=r"missing scenario.yaml, batches.parquet"):
        analysis.load_run(part)
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in RUN_FILES:
        (broken / f).write_bytes((run_dir / f).read_bytes())
    (broken / "events.parquet").write_bytes(b"not parquet")
    with pytest.raises(ResultsError, match=r"events.parquet: cannot read") as e:
        analysis.load_run(broken)
    assert "\n" not in str(e.value)


def test_load_sweep_table_and_derived_columns(study, sweep_dir):
    t = study.table
    raw = pd.read_parquet(sweep_dir / "sweep.parquet")
    assert list(t["run_id"]) == sorted(raw["run_id"]) and len(t) == 12
    assert study.params == ["producers.0.acks", "topics.0.replication.factor", "topics.0.min.insync.replicas"]
    assert (t["acks"] == t["producers.0.acks"]).all()
    assert (t["replication_factor"] == t["topics.0.replication.factor"]).all()
    assert (t["min_insync_replicas"] == t["topics.0.min.insync.replicas"]).all()
    assert (t["fault_kind"] == "crash").all()
    np.testing.assert_allclose(t["loss_rate"], raw["records_lost"] / raw["records_sent"])
    np.testing.assert_allclose(t["acked_loss_rate"], raw["acked_lost"] / raw["records_sent"])


def _fail_runs(sweep_dir: Path, dest: Path, run_ids: list[str]) -> Path:
    """A copy of the sweep in which `run_ids` failed: status, error, no run directory, a failure file."""
    import shutil

    shutil.copytree(sweep_dir, dest)
    table = pd.read_parquet(dest / "sweep.parquet")
    hit = table["run_id"].isin(run_ids)
    table.loc[hit, "status"] = "failed"
    table.loc[hit, "error"] = "RuntimeError: boom"
    metrics = [c for c in table.columns if c in ("records_sent", "records_lost", "acked_lost", "throughput_rps")]
    table[metrics] = table[metrics].astype("float64")
    table.loc[hit, metrics] = np.nan
    table.to_parquet(dest / "sweep.parquet", index=False)
    for rid in run_ids:
        shutil.rmtree(dest / "runs" / rid)
        (dest / "failures" / f"{rid}.json").write_text(json.dumps({"run_id": rid, "error": "RuntimeError: boom"}))
    return dest


def test_failed_runs_are_left_out_and_listed(study, tmp_path):
    first = study.table["run_id"].iloc[0]
    copy = analysis.load_sweep(_fail_runs(study.path, tmp_path / "sweep", [first]))
    assert first in copy.failures and len(copy.ok) == 11
    row = copy.table.set_index("run_id").loc[first]
    assert row["acks"] == study.table.set_index("run_id").loc[first, "acks"]  # from the swept column
    counts = analysis.loss_table(copy)["n"].tolist()
    assert sorted(counts) == [1, 2, 2, 2, 2, 2]
    fig = analysis.loss_map(copy)
    assert "n = 1-2 seeds per bar" in fig._suptitle.get_text()
    page = parse_report(analysis.write_report(copy.path, tmp_path / "r.html"))
    assert len(page.tables["runs"]) == 13  # header + every run, failed ones included
    text = (tmp_path / "r.html").read_text()
    assert "Failed runs" in text and "RuntimeError: boom" in text


def test_all_runs_failed_still_reports(study, tmp_path):
    copy = _fail_runs(study.path, tmp_path / "sweep", list(study.table["run_id"]))
    assert analysis.write_plots(copy, tmp_path / "plots") == []
    page = parse_report(analysis.write_report(copy, tmp_path / "r.html"))
    assert page.images == [] and "Failed runs" in (tmp_path / "r.html").read_text()


# --- level metrics (time-weighted) -----------------------------------------------------------------
def test_level_metrics_agree_with_the_per_second_series(run):
    """URP/offline time-weighted from the events equal the simulator's per-second series, integrated."""
    lvl = analysis.level_summary(run)
    ts = run.timeseries
    width = np.diff(np.r_[ts["time_ms"].to_numpy(), run.end_ms])
    for key, col in (("mean_under_replicated_partitions", "under_replicated_partitions"),
                     ("mean_offline_partitions", "offline_partitions")):
        assert lvl[key] == pytest.approx((ts[col] * width).sum() / width.sum(), rel=1e-9, abs=1e-12)
    assert lvl["mean_under_replicated_partitions"] > 0  # the crash shrank ISRs
    per = analysis.level_metrics(run)
    assert list(per["partition"]) == ["events-0", "events-1", "events-2"]
    assert ((per["mean_isr_size"] >= 1) & (per["mean_isr_size"] <= 3)).all()
    assert (per["mean_isr_size"] < 3).any()


def test_leadership_intervals_tile_the_run_and_follow_the_events(run):
    lead = analysis.leadership_intervals(run)
    down = analysis.down_intervals(run)
    assert len(down) == 1
    crashed, t_crash, t_restart = int(down["broker"][0]), down["start_ms"][0], down["end_ms"][0]
    assert t_crash == 2000.0 and t_restart == 5000.0
    ev = run.events[run.events["kind"] == "leader_elected"]
    for name, g in lead.groupby("partition"):
        assert g["start_ms"].iloc[0] == 0.0 and g["end_ms"].iloc[-1] == run.end_ms
        np.testing.assert_array_equal(g["start_ms"].to_numpy()[1:], g["end_ms"].to_numpy()[:-1])  # no gaps
        for _, iv in g.iterrows():  # the leader is the last one elected at or before the interval start
            before = ev[(ev["partition"] == name) & (ev["time_ms"] <= iv["start_ms"])]
            assert iv["leader"] == before["broker"].iloc[-1]
    stalled = lead[lead["state"] == "leader down"]
    assert len(stalled) == len(analysis.failover_table(run)) >= 1  # every partition the crashed broker led
    assert (stalled["leader"] == crashed).all() and (stalled["start_ms"] == t_crash).all()
    failovers = analysis.failover_table(run).set_index("partition")
    for _, iv in stalled.iterrows():  # writes stall from the crash until the election
        assert iv["end_ms"] == failovers.loc[iv["partition"], "elected_ms"]


def test_isr_intervals_sizes_and_stale_members(run):
    isr = analysis.isr_intervals(run)
    down = analysis.down_intervals(run).iloc[0]
    assert set(isr["isr_size"]) == {2, 3}
    assert (isr["isr_size"] == isr["isr"].str.count(r"\d")).all()
    stale = isr[isr["members_down"] > 0]
    assert len(stale) == 3  # every partition: the crashed broker is in the ISR until it is fenced
    assert (stale["start_ms"] >= down["start_ms"]).all() and (stale["end_ms"] <= down["end_ms"]).all()


# --- tally metrics -----------------------------------------------------------------------------------
def test_tally_metrics_equal_the_summary(study):
    for r in study.runs():
        s = r.summary
        pct = analysis.latency_percentiles(r.batches)
        for key in ("p50", "p99", "p999"):
            want = s["produce_latency_ms"][key]
            assert (math.isnan(pct[key]) and want is None) or pct[key] == want
        tally = analysis.loss_tally(r.batches)
        for key in ("records_sent", "records_acked", "records_failed", "records_unknown", "acked_lost",
                    "records_lost"):
            assert tally[key] == s[key], key
    acks0 = [r for r in study.runs() if r.facts["acks"] == "0"]
    # acks=0: nothing is acknowledged, every record's fate is unknown to the client
    for r in acks0:
        t = analysis.loss_tally(r.batches)
        assert t["records_acked"] == 0 and t["records_unknown"] == t["records_sent"] > 0
    assert acks0


def test_failover_table_is_the_summarys(run):
    fo = analysis.failover_table(run)
    assert fo.to_dict("records") == run.summary["failovers"]
    assert len(fo) >= 1 and (fo["partition"] == "events-0").any()  # the fault targets the leader of events-0


# --- statistics ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("df, q", [(1, 12.706), (2, 4.303), (4, 2.776), (9, 2.262), (29, 2.045), (120, 1.980)])
def test_t_quantile(df, q):
    assert t_quantile(0.95, df) == pytest.approx(q, abs=5e-4)


def test_mean_ci():
    mean, lo, hi, n = mean_ci([1.0, 2.0, 3.0, float("nan")])
    assert (mean, n) == (2.0, 3)
    assert hi - mean == pytest.approx(4.303 / math.sqrt(3), abs=1e-3) and mean - lo == pytest.approx(hi - mean)
    assert math.isnan(mean_ci([5.0])[1]) and mean_ci([])[3] == 0


def test_weighted_percentiles_match_the_simulator():
    from sim.metrics import weighted_percentiles as sim_percentiles

    rng = np.random.default_rng(3)
    v, w = rng.exponential(10, 500), rng.integers(1, 50, 500)
    qs = [0, 1, 50, 99, 99.9, 100]
    assert weighted_percentiles(v, w, qs) == sim_percentiles(v, w.astype(float), qs)


def test_ecdf_thinning_keeps_exact_points_and_the_tail():
    rng = np.random.default_rng(5)
    x, y = weighted_ecdf(rng.lognormal(2, 1, 20_000), rng.integers(1, 20, 20_000))
    tx, ty = ecdf_points(x, y, 1000)
    assert len(tx) <= 1100 and ty[-1] == 1.0 and tx[-1] == x[-1]
    np.testing.assert_array_equal(ty, y[np.searchsorted(x, tx)])  # every kept point is on the ECDF
    assert (ty >= 0.99).sum() == min((y >= 0.99).sum(), 500)  # the tail is kept whole (up to half the points)


# --- figures -------------------------------------------------------------------------------------------------
def test_loss_map(study):
    table = analysis.loss_table(study)
    # the table is the mean over seeds of each run's rate, straight from sweep.parquet
    raw = study.table
    for _, g in table.iterrows():
        rows = raw[(raw["acks"] == g["acks"]) & (raw["replication_factor"] == g["replication_factor"])]
        assert g["n"] == len(rows) == 2
        assert g["loss_rate_mean"] == pytest.approx((rows["records_lost"] / rows["records_sent"]).mean())
        assert g["acked_loss_rate_mean"] == pytest.approx((rows["acked_lost"] / rows["records_sent"]).mean())
    fig = analysis.loss_map(study)
    assert len(fig.axes) == 4  # (message, acknowledged) x min.insync 1, 2; one fault kind
    assert "n = 2 seeds per bar" in fig._suptitle.get_text() and "95% CI" in fig._suptitle.get_text()
    for _, g in table.iterrows():
        m, rf = g["min_insync_replicas"], g["replication_factor"]
        for metric, ylabel in (("loss_rate", "records_lost / records_sent (%)"),
                               ("acked_loss_rate", "acked_lost / records_sent (%)")):
            ax = axes_by_gid(fig, f"loss:{metric}:min.insync={m}:fault=crash")
            assert ax.get_ylabel() == ylabel
            assert [t.get_text() for t in ax.get_xticklabels()] == ["acks=0", "acks=1", "acks=all"]
            sub = table[(table["min_insync_replicas"] == m) & (table["replication_factor"] == rf)]
            np.testing.assert_allclose(bar_heights(ax, f"bars:{metric}:RF={rf}"), 100 * sub[f"{metric}_mean"])
            lows, highs = errorbar_extents(ax, f"ci:{metric}:RF={rf}")
            np.testing.assert_allclose(lows, 100 * sub[f"{metric}_low"])
            np.testing.assert_allclose(highs, 100 * sub[f"{metric}_high"])
    # acks=0 shows its loss: the first bar (acks=0) of every message-loss panel is above zero
    for m in (1, 2):
        rf = {1: 2, 2: 3}[m]
        ax = axes_by_gid(fig, f"loss:loss_rate:min.insync={m}:fault=crash")
        assert bar_heights(ax, f"bars:loss_rate:RF={rf}")[0] > 0
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["RF=2", "RF=3"]


def test_throughput_cost(study):
    table = analysis.throughput_table(study)
    raw = study.table
    fig = analysis.throughput_cost(study)
    assert len(fig.axes) == 2
    for _, g in table.iterrows():
        rows = raw[(raw["acks"] == g["acks"]) & (raw["replication_factor"] == g["replication_factor"])]
        assert g["throughput_rps_mean"] == pytest.approx(rows["throughput_rps"].mean())
        assert g["sent_rps_mean"] == pytest.approx((rows["records_sent"] / 6.0).mean())
    for m, rf in ((1, 2), (2, 3)):
        ax = axes_by_gid(fig, f"throughput:min.insync={m}:fault=crash")
        assert ax.get_ylabel() == "acknowledged records / s"
        sub = table[table["replication_factor"] == rf]
        np.testing.assert_allclose(bar_heights(ax, f"bars:throughput_rps:RF={rf}"), sub["throughput_rps_mean"])
        np.testing.assert_allclose(by_gid(ax.lines, f"sent:RF={rf}").get_ydata(), sub["sent_rps_mean"])
        assert bar_heights(ax, f"bars:throughput_rps:RF={rf}")[0] == 0  # acks=0 acknowledges nothing


def test_latency_plot(study):
    fig = analysis.latency_plot(study)
    ax_e, ax_p = axes_by_gid(fig, "latency:ecdf"), axes_by_gid(fig, "latency:percentiles")
    ecdfs = analysis.latency_ecdfs(study)
    assert len(ax_e.lines) - 2 == 4  # acks 1 and all x RF 2 and 3 (acks=0 has no latency), plus 2 guides
    for _, g in ecdfs.iterrows():
        if g["acks"] == "0":
            assert g["records"] == 0 and len(g["x"]) == 0
            continue
        line = by_gid(ax_e.lines, f"ecdf:acks={g['acks']}:RF={g['replication_factor']}")
        np.testing.assert_array_equal(line.get_xdata(), g["x"])
        np.testing.assert_array_equal(line.get_ydata(), g["y"])
        assert line.get_ydata()[-1] == 1.0
        # the ECDF crosses 0.5 at the pooled median of the group's records
        runs = [study.run(r) for r in study.ok[(study.ok["acks"] == g["acks"])
                                               & (study.ok["replication_factor"] == g["replication_factor"])]["run_id"]]
        lat = pd.concat([analysis.produce_latencies(r.batches) for r in runs])
        assert g["records"] == lat["records"].sum() == sum(r.summary["records_acked"] for r in runs)
        median = weighted_percentiles(lat["latency_ms"], lat["records"], [50])[0]
        assert g["x"][np.searchsorted(g["y"], 0.5)] == median
    assert ax_e.get_xscale() == "log" and ax_e.get_ylabel() == "fraction of acknowledged records"
    table = analysis.latency_table(study)
    for rf in (2, 3):
        sub = table[(table["replication_factor"] == rf) & (table["acks"] != "0")]
        rows = study.table[(study.table["replication_factor"] == rf) & (study.table["acks"] != "0")]
        np.testing.assert_allclose(sub["produce_latency_ms.p99_mean"],
                                   rows.groupby("acks")["produce_latency_ms.p99"].mean().sort_index())
        np.testing.assert_allclose(by_gid(ax_p.lines, f"p99:RF={rf}").get_ydata(), sub["produce_latency_ms.p99_mean"])
        np.testing.assert_allclose(by_gid(ax_p.lines, f"p50:RF={rf}").get_ydata(), sub["produce_latency_ms.p50_mean"])
        np.testing.assert_allclose(by_gid(ax_p.lines, f"p999:RF={rf}").get_ydata(),
                                   sub["produce_latency_ms.p999_mean"])
    assert [t.get_text() for t in ax_p.get_xticklabels()] == ["acks=0", "acks=1", "acks=all"]
    assert any("no acks" in t.get_text() for t in ax_p.texts)


def test_failover_distribution(study):
    samples = analysis.failover_samples(study, by="acks")
    assert len(samples) == sum(len(r.summary["failovers"]) for r in study.runs()) >= 12
    fig = analysis.failover_distribution(study, by="acks")
    for col in ("election_ms", "unavailable_ms"):
        ax = axes_by_gid(fig, f"failover:{col}")
        assert ax.get_xlabel() == "seconds after the fault"
        for acks in ("1", "all"):
            v = samples.loc[samples["group"] == acks, col].to_numpy(dtype=float)
            line = by_gid(ax.lines, f"ecdf:{col}:{acks}")
            np.testing.assert_allclose(line.get_xdata()[1:], np.sort(v) / 1000.0)
            np.testing.assert_allclose(line.get_ydata()[1:], np.arange(1, len(v) + 1) / len(v))
    legend = [t.get_text() for t in axes_by_gid(fig, "failover:unavailable_ms").get_legend().get_texts()]
    n0 = int((samples["group"] == "0").sum())
    assert f"acks=0: {n0} failovers, 4 runs" in legend  # acks=0 producers find the new leader too
    assert analysis.tables.default_failover_group(study) == "topics.0.replication.factor"


def test_failover_timeline(run):
    fig = analysis.failover_timeline(run)
    ts = run.timeseries
    ax_tp = axes_by_gid(fig, "timeline:throughput")
    np.testing.assert_array_equal(ax_tp.lines[1].get_xdata(), ts["time_ms"] / 1000.0)
    np.testing.assert_array_equal(by_gid(ax_tp.lines, "records_acked").get_ydata(), ts["records_acked"])
    np.testing.assert_array_equal(by_gid(ax_tp.lines, "records_failed").get_ydata(), ts["records_failed"])
    sent = by_gid(ax_tp.lines, "records_sent").get_ydata()
    assert sent.sum() == run.summary["records_sent"]
    ax_lat = axes_by_gid(fig, "timeline:latency")
    np.testing.assert_array_equal(by_gid(ax_lat.lines, "latency_p99_ms").get_ydata(), ts["latency_p99_ms"])
    assert ax_lat.get_yscale() == "log"
    ax_lvl = axes_by_gid(fig, "timeline:levels")
    np.testing.assert_array_equal(by_gid(ax_lvl.lines, "under_replicated_partitions").get_ydata(),
                                  ts["under_replicated_partitions"])
    ax_ln = axes_by_gid(fig, "timeline:lanes")
    assert [t.get_text() for t in ax_ln.get_yticklabels()] == ["events-2", "events-1", "events-0"]
    lead = analysis.leadership_intervals(run)
    for name, g in lead.groupby("partition"):
        coll = by_gid(ax_ln.collections, f"leader:{name}")
        spans = sorted((p.vertices[:, 0].min(), p.vertices[:, 0].max()) for p in coll.get_paths())
        np.testing.assert_allclose(spans, np.c_[g["start_ms"], g["end_ms"]] / 1000.0)
    # fault windows shaded on every panel, leader-down periods hatched, elections marked
    down = analysis.down_intervals(run).iloc[0]
    for ax in (ax_tp, ax_lat, ax_lvl, ax_ln):
        shade = by_gid(ax.patches, f"down:broker{down['broker']}")
        x0, x1 = shade.get_x(), shade.get_x() + shade.get_width()
        assert (x0, x1) == pytest.approx((down["start_ms"] / 1000.0, down["end_ms"] / 1000.0))
    for _, fo in analysis.failover_table(run).iterrows():
        by_gid(ax_ln.collections, f"down:{fo['partition']}")
        mark = by_gid(ax_ln.lines, f"election:{fo['partition']}")
        assert mark.get_xdata()[0] == fo["elected_ms"] / 1000.0
    marks = [m for m in ax_ln.lines if (m.get_gid() or "").startswith("truncation:")]
    removed = run.events[run.events["kind"] == "truncation"]["detail"].str.extract(r"removed=(\d+)", expand=False)
    assert sum(len(m.get_xdata()) for m in marks) == int((removed.astype(int) > 0).sum())
    legend = [t.get_text() for t in ax_ln.get_legend().get_texts()]
    assert "leader down, not yet fenced (writes stall)" in legend and "offline (no leader)" in legend
    assert "acks=1, RF=3, min.insync.replicas=2" in fig._suptitle.get_text()


def test_save_figure_png_and_svg(run, tmp_path):
    fig = analysis.failover_distribution(run, tmp_path / "fo")
    assert fig.axes
    assert (tmp_path / "fo.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<svg" in (tmp_path / "fo.svg").read_text()[:500]
    analysis.latency_plot(run, tmp_path / "lat.png")
    assert (tmp_path / "lat.png").is_file() and not (tmp_path / "lat.svg").exists()


def test_nothing_to_plot(tmp_path, run_dir):
    quiet = tmp_path / "quiet"
    quiet.mkdir()
    for f in RUN_FILES:
        (quiet / f).write_bytes((run_dir / f).read_bytes())
    summary = json.loads((quiet / "summary.json").read_text())
    summary["failovers"] = []
    (quiet / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(analysis.NothingToPlot):
        analysis.failover_distribution(analysis.load_run(quiet))
    names = {p.name for p in analysis.write_plots(quiet, tmp_path / "plots")}
    assert names == {"timeline.png", "timeline.svg", "latency.png", "latency.svg"}


# --- CLI ----------------------------------------------------------------------------------------------------
def cli(capsys, *args) -> tuple[int, str, str]:
    rc = main([str(a) for a in args])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def test_plot_cli_run(capsys, run_dir, tmp_path):
    rc, out, err = cli(capsys, "plot", run_dir, "--out", tmp_path / "p")
    assert rc == 0, err
    names = sorted(p.name for p in (tmp_path / "p").iterdir())
    assert names == sorted(f"{n}.{e}" for n in ("timeline", "latency", "failover-distribution") for e in ("png", "svg"))
    assert err.count("wrote ") == 6


def test_plot_cli_sweep_default_out(capsys, study, tmp_path):
    sweep_copy = tmp_path / "sweep"
    import shutil

    shutil.copytree(study.path, sweep_copy)
    rc, out, err = cli(capsys, "plot", sweep_copy)
    assert rc == 0, err
    stems = {p.stem for p in (sweep_copy / "plots").glob("*.png")}
    timeline = analysis.report.representative_run(study)
    assert stems == {"loss-map", "latency", "throughput-cost", "failover-distribution", f"timeline-{timeline}"}
    assert {p.stem for p in (sweep_copy / "plots").glob("*.svg")} == stems
    assert study.run(timeline).facts["acks"] != "0"  # a timeline with acknowledgements to show


@pytest.mark.parametrize("command", ["plot", "report"])
def test_cli_bad_results_dir_is_one_line(capsys, tmp_path, command):
    part = tmp_path / "partial"
    part.mkdir()
    (part / "summary.json").write_text("{}")
    cases = [(tmp_path / "nope", f"error: {tmp_path / 'nope'}: no such results directory\n"),
             (tmp_path, f"error: {tmp_path}: not a run or sweep directory (expected summary.json or sweep.parquet)\n"),
             (part, f"error: {part}: not a complete run directory (missing ")]
    for path, message in cases:
        rc, out, err = cli(capsys, command, path)
        assert rc == 2 and out == "" and err.startswith(message) and err.count("\n") == 1, err


def test_cli_unwritable_out_is_one_line(capsys, run_dir, tmp_path):
    afile = tmp_path / "file"
    afile.write_text("x")
    rc, out, err = cli(capsys, "plot", run_dir, "--out", afile)
    assert rc == 2 and err.startswith(f"error: --out {afile}: cannot write figures") and err.count("\n") == 1
    rc, out, err = cli(capsys, "report", run_dir, "--out", tmp_path)
    assert rc == 2 and err.startswith(f"error: --out {tmp_path}: cannot write the report") and err.count("\n") == 1


# --- HTML report -------------------------------------------------------------------------------------------------
class ReportParser(HTMLParser):
    """Images, tables (cells with their data-* attributes) and <pre> blocks of a report."""

    def __init__(self):
        super().__init__()
        self.images: list[dict] = []
        self.external: list[str] = []
        self.tables: dict[str, list[dict]] = {}
        self.pre: dict[str, str] = {}
        self._table = self._row = self._pre = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.images.append(a)
        if tag in ("script", "link", "iframe") or (a.get("src") or a.get("href") or "").startswith(("http", "//")):
            self.external.append(tag)
        if tag == "table":
            self._table = self.tables.setdefault(a.get("id"), [])
        elif tag == "tr" and self._table is not None:
            self._row = {"_attrs": a, "cells": []}
            self._table.append(self._row)
        elif tag == "td" and self._row is not None:
            self._row["cells"].append(a)
        elif tag == "pre":
            self._pre = a.get("id")
            self.pre[self._pre] = ""

    def handle_endtag(self, tag):
        if tag == "table":
            self._table = None
        elif tag == "pre":
            self._pre = None

    def handle_data(self, data):
        if self._pre is not None:
            self.pre[self._pre] += data


def parse_report(path: Path) -> ReportParser:
    p = ReportParser()
    p.feed(path.read_text(encoding="utf-8"))
    return p


def assert_png_images(images: list[dict], n: int) -> None:
    assert len(images) == n
    for img in images:
        prefix = "data:image/png;base64,"
        assert img["src"].startswith(prefix) and img["alt"]
        assert base64.b64decode(img["src"][len(prefix):])[:8] == b"\x89PNG\r\n\x1a\n"


def same(value: str, want) -> bool:
    if want is None:
        return value == ""
    return float(value) == float(want)


def test_report_run(capsys, run_dir, run, tmp_path):
    out = tmp_path / "run.html"
    rc, _, err = cli(capsys, "report", run_dir, "--out", out)
    assert rc == 0 and err == f"wrote {out}\n"
    page = parse_report(out)
    assert not page.external  # opens from disk: no script, stylesheet or remote resource
    assert_png_images(page.images, 3)  # timeline, latency, failover distribution
    rows = {r["_attrs"]["data-key"]: r["cells"][0]["data-value"] for r in page.tables["summary"]}
    for key in ("records_sent", "records_acked", "records_failed", "records_unknown", "records_lost", "acked_lost",
                "duplicates", "throughput_rps", "leader_elections"):
        assert same(rows[key], run.summary[key]), key
    for key in ("p50", "p99", "p999", "max"):
        assert same(rows[f"produce_latency_ms.{key}"], run.summary["produce_latency_ms"][key])
    assert same(rows["loss_rate"], run.summary["records_lost"] / run.summary["records_sent"])
    failovers = page.tables["failovers"][1:]  # after the header row
    assert len(failovers) == len(run.summary["failovers"])
    for row, fo in zip(failovers, run.summary["failovers"]):
        cells = {c["data-key"]: c["data-value"] for c in row["cells"]}
        assert same(cells["election_ms"], fo["election_ms"]) and cells["partition"] == fo["partition"]
    levels = {r["_attrs"]["data-key"]: r["cells"][0]["data-value"] for r in page.tables["levels"]}
    assert same(levels["mean_under_replicated_partitions"],
                analysis.level_summary(run)["mean_under_replicated_partitions"])
    assert page.pre["scenario"] == (run_dir / "scenario.yaml").read_text()


def test_report_sweep(study, tmp_path):
    out = analysis.write_report(study.path, tmp_path / "sweep.html")
    page = parse_report(out)
    assert not page.external
    assert_png_images(page.images, 5)  # loss map, latency, throughput, failover distribution, one timeline
    raw = pd.read_parquet(study.path / "sweep.parquet").set_index("run_id")
    runs = page.tables["runs"][1:]
    assert [r["_attrs"]["data-row"] for r in runs] == list(raw.index)
    for r in runs:
        cells = {c["data-key"]: c["data-value"] for c in r["cells"]}
        want = raw.loc[r["_attrs"]["data-row"]]
        for key in ("seed", "records_sent", "records_lost", "acked_lost", "throughput_rps", "produce_latency_ms.p99"):
            assert same(cells[key], None if pd.isna(want[key]) else want[key]), key
    groups = analysis.report.group_table(study)
    rows = page.tables["groups"][1:]
    assert len(rows) == len(groups) == 6
    for r, (_, g) in zip(rows, groups.iterrows()):
        cells = {c["data-key"]: c for c in r["cells"]}
        assert cells["acks"]["data-value"] == g["acks"] and same(cells["n"]["data-value"], g["n"])
        for m in ("loss_rate", "acked_loss_rate", "throughput_rps"):
            assert same(cells[m]["data-value"], g[f"{m}_mean"])
            assert same(cells[m]["data-low"], g[f"{m}_low"]) and same(cells[m]["data-high"], g[f"{m}_high"])
    assert page.pre["sweep-spec"] == (study.path / "sweep.yaml").read_text()
    assert "name: quickstart" in page.pre["scenario"]
