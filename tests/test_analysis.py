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
import re
import subprocess
import sys
import textwrap
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import analysis
import analysis.report
import sim
from analysis.load import RUN_FILES, ResultsError
from sim.measure.stats import ecdf_points, mean_ci, t_quantile, weighted_ecdf, weighted_percentiles
from sim.cli import main

ROOT = Path(__file__).resolve().parents[1]

# 18 runs of 10 simulated seconds: acks 0/1/all x (RF 2, min.insync 1) / (RF 3, min.insync 1) / (RF 3,
# min.insync 2) x seeds 1, 2: min.insync varies within RF 3, so a figure that pools over it is caught.
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
    "zip": [{"topics.0.replication.factor": [2, 3, 3], "topics.0.min.insync.replicas": [1, 1, 2]}],
    "seeds": [1, 2],
}
N_RUNS, N_CONFIGS = 18, 9


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("analysis") / "sweep"
    sim.sweep(SWEEP, out=out, workers=1)
    return out


@pytest.fixture(scope="module")
def study(sweep_dir) -> analysis.SweepResults:
    return analysis.load_sweep_results(sweep_dir)


@pytest.fixture(scope="module")
def run_dir(study) -> Path:
    """One run directory of the sweep: acks=1, RF 3, min.insync 2, seed 1 (the leader of events-0 crashes and
    fails over)."""
    t = study.table
    row = t[(t["producers.0.acks"] == "1") & (t["topics.0.replication.factor"] == 3)
            & (t["topics.0.min.insync.replicas"] == 2) & (t["seed"] == 1)]
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
    from sim.runs.results import RUN_FILES as SIM_RUN_FILES

    assert RUN_FILES == SIM_RUN_FILES


def test_analysis_reads_files_only_and_renders_headless(run_dir, tmp_path):
    """Loading and plotting never loads the model (nor simpy, nor pyplot): analysis reads the files."""
    code = textwrap.dedent(f"""
        import sys
        import analysis
        run = analysis.load_run({str(run_dir)!r})
        analysis.failover_timeline(run, {str(tmp_path / "timeline.png")!r})
        analysis.write_report({str(run_dir)!r}, {str(tmp_path / "r.html")!r})
        bad = sorted(m for m in sys.modules if m.startswith(("sim.model", "sim.runs.runner", "sim.runs.sweep", "simpy"))
                     or m == "matplotlib.pyplot")
        assert not bad, bad
        assert "sim.runs.contract" in sys.modules  # it reads through the results contract
    """)
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path)


def test_load_run_reads_every_table(run, run_dir):
    assert run.summary == json.loads((run_dir / "summary.json").read_text())
    assert run.scenario["name"] == run.summary["scenario"] == "quickstart"
    for table in ("batches", "events", "timeseries"):
        pd.testing.assert_frame_equal(getattr(run, table), pd.read_parquet(run_dir / f"{table}.parquet"))
    assert run.facts == {"acks": "1", "replication_factor": 3, "min_insync_replicas": 2, "partitions": 3,
                         "fault_kind": "crash"}


def test_load_detects_run_or_sweep(run_dir, sweep_dir):
    assert isinstance(analysis.load(run_dir), analysis.Run)
    assert isinstance(analysis.load(sweep_dir), analysis.SweepResults)


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
    assert list(t["run_id"]) == sorted(raw["run_id"]) and len(t) == N_RUNS
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
    copy = analysis.load_sweep_results(_fail_runs(study.path, tmp_path / "sweep", [first]))
    assert first in copy.failures and len(copy.ok) == N_RUNS - 1
    row = copy.table.set_index("run_id").loc[first]
    assert row["acks"] == study.table.set_index("run_id").loc[first, "acks"]  # from the swept column
    counts = analysis.loss_table(copy)["n"].tolist()
    assert sorted(counts) == [1] + [2] * (N_CONFIGS - 1)
    fig = analysis.loss_map(copy)
    assert "n = 1-2 seeds per row" in fig._suptitle.get_text()
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert any(t.endswith("n=1") or "n=1)" in t for t in texts), texts  # the row with one seed says so
    page = parse_report(analysis.write_report(copy.path, tmp_path / "r.html"))
    assert len(page.tables["runs"]) == N_RUNS + 1  # header + every run, failed ones included
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
    from sim.measure.metrics import weighted_percentiles as sim_percentiles

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
RAW_KEY = ("producers.", "topics.", "cluster.", "network.", "replication_factor", "min_insync_replicas")


def texts_of(fig) -> list:
    """Every Text the figure draws: titles, axes texts, legends, and the tick labels of ticks in view."""
    from matplotlib.text import Text

    fig.canvas.draw()
    tick_labels, drawn = set(), set()
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                tick_labels |= {id(tick.label1), id(tick.label2)}
            if ax.axison and axis.get_visible():
                drawn |= {id(lab) for tick in axis._update_ticks() for lab in (tick.label1, tick.label2)}
    out, seen = [], set()
    for t in fig.findobj(Text):
        if id(t) in seen or (id(t) in tick_labels and id(t) not in drawn):
            continue
        seen.add(id(t))
        if t.get_visible() and str(t.get_text()).strip():
            out.append(t)
    return out


def assert_no_overlapping_text(fig) -> None:
    """No two labels the figure draws overlap on the rendered canvas (ink boxes, 1 px tolerance)."""
    texts = texts_of(fig)
    renderer = fig.canvas.get_renderer()
    boxes = []
    for t in texts:
        bb = t.get_window_extent(renderer)
        if bb.width > 0 and bb.height > 0:
            boxes.append((t.get_text(), bb))
    clashes = []
    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            (ta, a), (tb, b) = boxes[i], boxes[j]
            if min(a.x1, b.x1) - max(a.x0, b.x0) > 1 and min(a.y1, b.y1) - max(a.y0, b.y0) > 1:
                clashes.append((ta, tb))
    assert not clashes, clashes[:10]


def row_labels(ax) -> list[str]:
    return [t.get_text() for t in ax.get_yticklabels()]


def config_rows(study) -> pd.DataFrame:
    """Every configuration of the test sweep, with its readable row label."""
    t = study.ok
    rows = t.groupby(["acks", "replication_factor", "min_insync_replicas"]).agg(
        n=("run_id", "size"), sent=("records_sent", "sum"), lost=("records_lost", "sum"),
        acked_lost=("acked_lost", "sum")).reset_index()
    rows["label"] = [f"acks={a}, RF {rf}, min.insync {m}" for a, rf, m in
                     zip(rows["acks"], rows["replication_factor"], rows["min_insync_replicas"])]
    return rows


def test_bounded_intervals():
    """Counts and rates never get an interval below 0 (or a share above 1), and a cut interval says so."""
    from sim.measure.stats import bounded_mean_ci

    mean, lo, hi, n, clipped = bounded_mean_ci([0.0, 0.0, 9.0])
    assert mean == 3.0 and lo == 0.0 and hi > 9.0 and n == 3 and clipped
    assert mean_ci([0.0, 0.0, 9.0])[1] < 0  # the plain t interval (sim.runs.sweep's) is unchanged
    assert bounded_mean_ci([0.2, 0.9, 1.0], upper=1.0)[2] == 1.0
    assert bounded_mean_ci([5.0, 6.0, 5.5, 5.2])[4] is False
    assert math.isnan(bounded_mean_ci([4.0])[1]) and bounded_mean_ci([4.0])[4] is False
    table = pd.DataFrame({"g": ["a"] * 3 + ["b"] * 3, "seed": [1, 2, 3] * 2,
                          "loss_rate": [0.0, 0.0, 0.9, 0.5, 0.5, 0.5], "count": [0, 0, 50, 10, 11, 12]})
    agg = analysis.aggregate(table, ["g"], ["loss_rate", "count"]).set_index("g")
    assert agg.loc["a", "loss_rate_low"] == 0.0 and agg.loc["a", "loss_rate_clipped"]
    assert agg.loc["a", "count_low"] == 0.0 and agg.loc["a", "count_clipped"]
    assert not agg.loc["b", "count_clipped"] and agg.loc["b", "count_low"] > 0


def test_every_interval_in_tables_respects_bounds(study):
    tables = [analysis.loss_table(study), analysis.throughput_table(study), analysis.latency_table(study),
              analysis.report.group_table(study)]
    for table in tables:
        lows = [c for c in table.columns if c.endswith("_low")]
        assert lows
        for c in lows:
            v = table[c].to_numpy(dtype=float)
            assert (v[~np.isnan(v)] >= 0).all(), c
        for c in [c for c in table.columns if c.endswith("rate_high")]:
            assert (table[c].dropna() <= 1).all(), c


def test_readable_labels():
    from analysis.tables import param_label, param_name

    assert param_label("topics.0.replication.factor", 1) == "RF 1"
    assert param_label("replication_factor", 3) == "RF 3"
    assert param_label("topics.0.min.insync.replicas", 2.0) == "min.insync 2"
    assert param_label("producers.0.acks", "all") == "acks=all" == param_label("acks", "all")
    assert param_label("producers.0.linger.ms", 5) == "linger.ms=5"
    assert param_name("cluster.broker.session.timeout.ms") == "broker.session.timeout.ms"
    assert param_name("producers.1.acks") == "producer 1 acks"


def test_loss_map(study):
    table = analysis.loss_table(study)
    # the table is the mean over seeds of each run's rate, straight from sweep.parquet, one row per configuration
    raw = study.table
    assert len(table) == N_CONFIGS
    for _, g in table.iterrows():
        rows = raw[(raw["acks"] == g["acks"]) & (raw["replication_factor"] == g["replication_factor"])
                   & (raw["min_insync_replicas"] == g["min_insync_replicas"])]
        assert g["n"] == len(rows) == 2
        assert g["loss_rate_mean"] == pytest.approx((rows["records_lost"] / rows["records_sent"]).mean())
        assert g["acked_loss_rate_mean"] == pytest.approx((rows["acked_lost"] / rows["records_sent"]).mean())
        assert g["records_sent_total"] == rows["records_sent"].sum()
    fig = analysis.loss_map(study)
    title = fig._suptitle.get_text()
    assert "n = 2 seeds per row" in title and "95% Student t interval" in title and "cut at 0" in title
    want = config_rows(study)
    for metric, count in (("loss_rate", "lost"), ("acked_loss_rate", "acked_lost")):
        ax = axes_by_gid(fig, f"loss:{metric}:fault=crash")
        text_ax = axes_by_gid(fig, f"text:loss:{metric}:fault=crash")
        assert ax.get_xscale() == "log"  # 0.0004% is as visible as 40%
        labels = row_labels(axes_by_gid(fig, "loss:loss_rate:fault=crash"))  # rows share the y axis, labelled once
        assert labels == want["label"].tolist()  # one readable row per configuration, acks in durability order
        lo, hi = ax.get_xlim()
        texts = {t.get_gid(): t.get_text() for t in ax.texts + text_ax.texts}
        for _, r in want.iterrows():
            g = table[(table["acks"] == r["acks"]) & (table["replication_factor"] == r["replication_factor"])
                      & (table["min_insync_replicas"] == r["min_insync_replicas"])].iloc[0]
            mean = 100 * g[f"{metric}_mean"]
            if metric == "acked_loss_rate" and r["acks"] == "0":
                assert texts[f"noack:{metric}:{r['label']}"] == "nothing acknowledged (acks=0)"
            elif mean == 0:  # nothing lost: said in words, with the records it is out of
                assert texts[f"zero:{metric}:{r['label']}"] == f"0 of {analysis.plots.style.fmt_count(r['sent'])} lost"
            else:
                point = by_gid(ax.lines, f"point:{metric}:{r['label']}")
                assert point.get_xdata()[0] == pytest.approx(mean) and lo < mean < hi
                assert point.get_ydata()[0] == labels.index(r["label"])
                assert f"({analysis.plots.style.fmt_count(r[count])} of " in texts[f"value:{metric}:{r['label']}"]
                ci = by_gid(ax.lines, f"ci:{metric}:{r['label']}")
                x0, x1 = ci.get_xdata()
                assert x1 == pytest.approx(100 * g[f"{metric}_high"])
                if g[f"{metric}_low"] > 0:
                    assert x0 == pytest.approx(100 * g[f"{metric}_low"])
                else:  # cut at 0: runs to the left edge, marked
                    assert x0 == lo and g[f"{metric}_clipped"]
                    by_gid(ax.lines, f"cut:{metric}:{r['label']}")
    # acks=0 shows its loss: some message-loss row of acks=0 has a point
    assert any((ln.get_gid() or "").startswith("point:loss_rate:acks=0") for ln in fig.axes[0].lines)
    # colour-blind safe, distinct colours per acks mode; a readable legend
    colours = list(analysis.plots.ACKS_COLORS.values())
    assert len(set(colours)) == 3 and set(colours) <= set(analysis.plots.OKABE_ITO.values())
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend[:3] == ["acks=0", "acks=1", "acks=all"] and "interval cut at 0 (runs on to 0)" in legend
    assert not [t for t in texts_of(fig) if t.get_text().startswith(RAW_KEY)]
    assert_no_overlapping_text(fig)


def test_loss_map_nothing_lost_and_a_tiny_loss(study, tmp_path):
    """A loss of 0.0004% is drawn inside the log axis; configurations that lost nothing say "0 of N"."""
    import shutil

    dest = tmp_path / "sweep"
    shutil.copytree(study.path, dest)
    table = pd.read_parquet(dest / "sweep.parquet")
    table["records_lost"] = 0
    table["acked_lost"] = 0
    tiny = table.index[(table["producers.0.acks"] == "1") & (table["topics.0.replication.factor"] == 2)]
    one = tiny[table.loc[tiny, "seed"] == 1]  # one record of ~120,000 in one of two seeds: about 0.0004%
    table.loc[one, "acked_lost"] = 1
    table.loc[one, "records_lost"] = 1
    table.to_parquet(dest / "sweep.parquet", index=False)
    sweep = analysis.load_sweep_results(dest)
    fig = analysis.loss_map(sweep)
    ax = axes_by_gid(fig, "loss:acked_loss_rate:fault=crash")
    point = by_gid(ax.lines, "point:acked_loss_rate:acks=1, RF 2, min.insync 1")
    x = point.get_xdata()[0]
    rate = sweep.table.loc[sweep.table["run_id"].isin(table.loc[tiny, "run_id"]), "acked_loss_rate"].mean()
    assert x == pytest.approx(100 * rate) and 1e-4 < x < 1e-3 and ax.get_xlim()[0] < x < ax.get_xlim()[1]
    zeros = [t.get_text() for t in ax.texts if (t.get_gid() or "").startswith("zero:")]
    assert len(zeros) == N_CONFIGS - 1 - 3  # all but the tiny row and the three acks=0 rows
    assert all(z.startswith("0 of ") and z.endswith(" lost") for z in zeros)


def test_throughput_cost(study):
    table = analysis.throughput_table(study)
    raw = study.table
    fig = analysis.throughput_cost(study)
    ax, lax = axes_by_gid(fig, "throughput:rps"), axes_by_gid(fig, "throughput:latency")
    want = config_rows(study)
    assert row_labels(ax) == want["label"].tolist()
    rows = analysis.plots.forest.config_rows(table)[0]
    for _, g in rows.iterrows():
        sel = raw[(raw["acks"] == g["acks"]) & (raw["replication_factor"] == g["replication_factor"])
                  & (raw["min_insync_replicas"] == g["min_insync_replicas"])]
        runs = [study.run(r) for r in sel["run_id"]]
        committed = [int(r.batches.loc[r.batches["copies_in_log"] > 0, "record_count"].sum()) for r in runs]
        offered = [int(r.batches["record_count"].sum()) for r in runs]
        assert g["committed_rps_mean"] == pytest.approx(np.mean(committed) / 6.0)
        assert g["offered_rps_mean"] == pytest.approx(np.mean(offered) / 6.0)
        assert g["throughput_rps_mean"] == pytest.approx(sel["throughput_rps"].mean())
        if g["acks"] == "0":  # acks=0 is told nothing, but what it wrote is committed
            assert g["throughput_rps_mean"] == 0 and g["committed_rps_mean"] > 0.9 * g["offered_rps_mean"]
    bars = sorted([p for p in ax.patches if p.get_gid() == "bars:committed_rps"], key=lambda b: b.get_y())
    np.testing.assert_allclose([b.get_width() for b in bars], rows["committed_rps_mean"])
    np.testing.assert_allclose(by_gid(ax.lines, "offered_rps").get_xdata(), rows["offered_rps_mean"])
    acked = by_gid(ax.lines, "acked_rps")
    assert len(acked.get_xdata()) == (rows["acks"] != "0").sum()  # no acknowledged mark where nothing is acked
    # the latency cost, per configuration
    for _, g in rows[rows["acks"] != "0"].iterrows():
        assert by_gid(lax.lines, f"p99:{g['label']}").get_xdata()[0] == pytest.approx(g["produce_latency_ms.p99_mean"])
        assert by_gid(lax.lines, f"p50:{g['label']}").get_xdata()[0] == pytest.approx(g["produce_latency_ms.p50_mean"])
    assert lax.get_xscale() == "log"
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "offered (records produced)" in legend and "acknowledged" in legend
    assert_no_overlapping_text(fig)


def test_latency_plot(study):
    fig = analysis.latency_plot(study)
    ecdfs = analysis.latency_ecdfs(study)
    # nothing swept is pooled: one ECDF per acks x RF x min.insync
    assert len(ecdfs) == N_CONFIGS
    assert set(ecdfs.attrs["by"]) == {"acks", "replication_factor", "min_insync_replicas", "fault_kind"}
    for acks in ("1", "all"):
        ax = axes_by_gid(fig, f"latency:ecdf:acks={acks}")
        lines = [ln for ln in ax.lines if (ln.get_gid() or "").startswith("ecdf:")]
        assert len(lines) == 3  # one line per (RF, min.insync) value
        assert sorted(ln.get_label().split(" (")[0] for ln in lines) == [
            "RF 2, min.insync 1", "RF 3, min.insync 1", "RF 3, min.insync 2"]
        assert all("(n = 2 seeds, " in ln.get_label() for ln in lines)
        styles = {(ln.get_color(), ln.get_linestyle()) for ln in lines}
        assert len(styles) == 3  # lines that coincide still show both
        for _, g in ecdfs[ecdfs["acks"] == acks].iterrows():
            rest = f"RF {g['replication_factor']}, min.insync {g['min_insync_replicas']}"
            line = by_gid(ax.lines, f"ecdf:acks={acks}:{rest}")
            np.testing.assert_array_equal(line.get_xdata(), g["x"])
            np.testing.assert_array_equal(line.get_ydata(), g["y"])
            ok = study.ok
            ids = ok[(ok["acks"] == acks) & (ok["replication_factor"] == g["replication_factor"])
                     & (ok["min_insync_replicas"] == g["min_insync_replicas"])]["run_id"]
            runs = [study.run(r) for r in ids]
            assert len(runs) == 2
            lat = pd.concat([analysis.produce_latencies(r.batches) for r in runs])
            assert g["records"] == lat["records"].sum() == sum(r.summary["records_acked"] for r in runs)
            median = weighted_percentiles(lat["latency_ms"], lat["records"], [50])[0]
            assert g["x"][np.searchsorted(g["y"], 0.5)] == median
        assert ax.get_xscale() == "log"
    assert not [a for a in fig.axes if a.get_gid() == "latency:ecdf:acks=0"]  # acks=0: no latency, said in the title
    pax = axes_by_gid(fig, "latency:percentiles")
    table = analysis.latency_table(study)
    rows = analysis.plots.forest.config_rows(table)[0]
    assert row_labels(pax) == config_rows(study)["label"].tolist()
    for _, g in rows[rows["acks"] != "0"].iterrows():
        for key in ("p50", "p99", "p999"):
            assert by_gid(pax.lines, f"{key}:{g['label']}").get_xdata()[0] == pytest.approx(
                g[f"produce_latency_ms.{key}_mean"])
    # no line joins p50 to p99: every drawn segment is the p99 interval, and says so
    for ln in pax.lines:
        if len(ln.get_xdata()) > 1 and ln.get_gid() != "separator":  # separators between acks modes span the axis
            assert (ln.get_gid() or "").startswith("ci:p99:"), ln.get_gid()
    legend = [t.get_text() for t in fig.subfigs[1].legends[0].get_texts()]
    assert legend[:3] == ["p50 of each run, mean over seeds", "p99 of each run, mean over seeds",
                          "p99.9 of each run, mean over seeds"]
    assert "95% t interval of the p99 mean over seeds" in legend
    assert not [t for t in texts_of(fig) if t.get_text().startswith(RAW_KEY)]
    assert_no_overlapping_text(fig)


def test_latency_plot_of_one_run_has_no_interval(run):
    fig = analysis.latency_plot(run)
    pax = axes_by_gid(fig, "latency:percentiles")
    assert not [ln for ln in pax.lines if (ln.get_gid() or "").startswith("ci:")]
    legend = [t.get_text() for t in fig.subfigs[1].legends[0].get_texts()]
    # one run: its percentiles, no interval, and no words about seeds (issue 22)
    assert legend == ["p50", "p99", "p99.9"]
    assert fig.subfigs[1]._suptitle.get_text() == "Percentiles of the run"


def test_failover_distribution(study):
    samples = analysis.failover_samples(study, by="acks")
    assert len(samples) == sum(len(r.summary["failovers"]) for r in study.runs()) >= 18
    fig = analysis.failover_distribution(study, by="acks")
    for col in ("election_ms", "unavailable_ms"):
        ax = axes_by_gid(fig, f"failover:{col}")
        assert ax.get_xlabel() == "seconds after the fault"
        for acks in ("1", "all"):
            v = samples.loc[samples["group"] == f"acks={acks}", col].to_numpy(dtype=float)
            line = by_gid(ax.lines, f"ecdf:{col}:acks={acks}")
            np.testing.assert_allclose(line.get_xdata()[1:], np.sort(v) / 1000.0)
            np.testing.assert_allclose(line.get_ydata()[1:], np.arange(1, len(v) + 1) / len(v))
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    n0 = int((samples["group"] == "acks=0").sum())
    assert f"acks=0: n = {n0} failovers in 6 runs (2 seeds)" in legend  # acks=0 producers find the new leader too
    assert "pooled over RF (2, 3), min.insync (1, 2)" in fig._suptitle.get_text()


def test_failover_distribution_default_groups_are_readable(study):
    assert analysis.tables.default_failover_group(study) == ["replication_factor", "min_insync_replicas"]
    fig = analysis.failover_distribution(study)
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert [t.split(":")[0] for t in legend] == ["RF 2, min.insync 1", "RF 3, min.insync 1", "RF 3, min.insync 2"]
    assert all(": n = " in t and " failovers in 6 runs (2 seeds)" in t for t in legend), legend
    assert not [t for t in texts_of(fig) if any(k in t.get_text() for k in ("topics.", "producers.", "_"))]
    assert "pooled over acks (0, 1, all)" in fig._suptitle.get_text()
    assert_no_overlapping_text(fig)


def test_failover_timeline(run):
    fig = analysis.failover_timeline(run)
    ts = run.timeseries
    ax_tp = axes_by_gid(fig, "timeline:throughput")
    np.testing.assert_array_equal(by_gid(ax_tp.lines, "records_acked").get_xdata(), ts["time_ms"] / 1000.0)
    np.testing.assert_array_equal(by_gid(ax_tp.lines, "records_acked").get_ydata(), ts["records_acked"])
    np.testing.assert_array_equal(by_gid(ax_tp.lines, "records_failed").get_ydata(), ts["records_failed"])
    sent = by_gid(ax_tp.lines, "records_sent")
    assert sent.get_ydata().sum() == run.summary["records_sent"]
    # the offered load: records produced per second of arrival, not wire sends
    offered = by_gid(ax_tp.lines, "records_offered")
    assert offered.get_ydata().sum() == pytest.approx(run.batches["record_count"].sum())
    first = run.batches.groupby(run.batches["first_arrival_ms"] // 1000)["record_count"].sum()
    assert offered.get_ydata()[0] == pytest.approx(first.iloc[0], rel=0.01)
    # neither line hides the other: distinct colours, and sent is dashed on top of acknowledged
    acked = by_gid(ax_tp.lines, "records_acked")
    assert len({offered.get_color(), sent.get_color(), acked.get_color()}) == 3
    assert sent.get_linestyle() != "-" and sent.get_zorder() > acked.get_zorder() > offered.get_zorder()
    assert offered.get_linewidth() > acked.get_linewidth()
    legend = [t.get_text() for t in ax_tp.get_legend().get_texts()]
    assert "offered: records produced / s (arrivals)" in legend and "sent / s (first send on the wire)" in legend
    ax_lat = axes_by_gid(fig, "timeline:latency")
    np.testing.assert_array_equal(by_gid(ax_lat.lines, "latency_p99_ms").get_ydata(), ts["latency_p99_ms"])
    assert ax_lat.get_yscale() == "log"
    ax_lvl = axes_by_gid(fig, "timeline:levels")
    np.testing.assert_array_equal(by_gid(ax_lvl.lines, "under_replicated_partitions").get_ydata(),
                                  ts["under_replicated_partitions"])
    ticks = [t for t in ax_lvl.get_yticks() if ax_lvl.get_ylim()[0] <= t <= ax_lvl.get_ylim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks)  # whole partitions
    ax_ln = axes_by_gid(fig, "timeline:lanes")
    assert [t.get_text() for t in ax_ln.get_yticklabels()] == ["events-2", "events-1", "events-0", "faults"]
    # the fault lane: one bar per fault of any kind, labelled with its kind and target
    faults = analysis.fault_intervals(run)
    assert len(faults) == 1 and faults["fault"][0] == "crash"
    bar = by_gid(ax_ln.collections, f"fault:{faults['fault_source'][0]}.{faults['fault_index'][0]}")
    (path,) = bar.get_paths()
    assert (path.vertices[:, 0].min(), path.vertices[:, 0].max()) == pytest.approx(
        (faults["start_ms"][0] / 1000.0, faults["end_ms"][0] / 1000.0))
    lead = analysis.leadership_intervals(run)
    for name, g in lead.groupby("partition"):
        coll = by_gid(ax_ln.collections, f"leader:{name}")
        spans = sorted((p.vertices[:, 0].min(), p.vertices[:, 0].max()) for p in coll.get_paths())
        np.testing.assert_allclose(spans, np.c_[g["start_ms"], g["end_ms"]] / 1000.0)
    # fault windows shaded on every panel, leader-down periods hatched, elections marked
    down = analysis.down_intervals(run).iloc[0]
    for ax in (ax_tp, ax_lat, ax_lvl, ax_ln, axes_by_gid(fig, "timeline:lost")):
        shade = by_gid(ax.patches, f"down:broker{down['broker']}")
        x0, x1 = shade.get_x(), shade.get_x() + shade.get_width()
        assert (x0, x1) == pytest.approx((down["start_ms"] / 1000.0, down["end_ms"] / 1000.0))
    for _, fo in analysis.failover_table(run).iterrows():
        by_gid(ax_ln.collections, f"down:{fo['partition']}")
        mark = by_gid(ax_ln.lines, f"election:{fo['partition']}")
        assert mark.get_xdata()[0] == fo["elected_ms"] / 1000.0
    marks = [m for m in ax_ln.lines if (m.get_gid() or "").startswith("truncation:")]
    removed = run.events.loc[run.events["kind"] == "truncation", "removed"]
    assert sum(len(m.get_xdata()) for m in marks) == int((removed > 0).sum())
    handles = {t.get_text(): h for t, h in zip(ax_ln.get_legend().get_texts(), ax_ln.get_legend().legend_handles)}
    assert "leader down or cut off,\nnot yet fenced" in handles
    offline, below = handles["offline (no leader)"], handles["ISR < min.insync.replicas"]
    assert offline.get_facecolor() != below.get_facecolor()  # two states, two colours
    assert "acks=1, RF 3, min.insync 2" in fig._suptitle.get_text()
    assert_no_overlapping_text(fig)
    # every legend sits outside its panel, right of the data
    fig.canvas.draw()
    for ax in fig.axes:
        if ax.get_legend() is not None:
            assert ax.get_legend().get_window_extent().x0 >= ax.get_window_extent().x1


def test_failover_timeline_marks_lost_records(study):
    """The timeline of the run a sweep report picks (most acknowledged loss) draws what was lost, by arrival."""
    rid = analysis.report.representative_run(study)
    row = study.ok.set_index("run_id").loc[rid]
    assert row["acked_lost"] == study.ok["acked_lost"].max()
    for run_id in {rid, study.ok.sort_values("records_lost")["run_id"].iloc[-1]}:
        run = study.run(run_id)
        fig = analysis.failover_timeline(run, note="chosen")
        ax = axes_by_gid(fig, "timeline:lost")
        acked = sum(p.get_height() for p in ax.patches if p.get_gid() == "lost:acked")
        unknown = sum(p.get_height() for p in ax.patches if p.get_gid() == "lost:unknown")
        assert acked == pytest.approx(run.summary["acked_lost"])
        assert unknown == pytest.approx(run.summary["records_lost"] - run.summary["acked_lost"])
        if run.summary["records_lost"]:
            rug = [ln for ln in ax.lines if (ln.get_gid() or "").startswith("rug:")]
            assert sum(len(ln.get_xdata()) for ln in rug) == len(analysis.tables.lost_records(run))
        else:
            assert by_gid(ax.texts, "lost:none").get_text().startswith("no record lost: 0 of ")
        assert "chosen" in fig._suptitle.get_text()
        assert_no_overlapping_text(fig)


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
    """Images, tables (cells with their data-* attributes), <pre> blocks and the attributes of elements by id."""

    def __init__(self):
        super().__init__()
        self.images: list[dict] = []
        self.ids: dict[str, dict] = {}
        self.external: list[str] = []
        self.tables: dict[str, list[dict]] = {}
        self.pre: dict[str, str] = {}
        self._table = self._row = self._pre = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids[a["id"]] = {"tag": tag, **a}
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
    text = _body_text(out)
    assert text.index("The base scenario quickstart's own description") < text.index("3 brokers") \
        < text.index("This sweep varies acks (0, 1, all), RF (2, 3), min.insync (1, 2)") \
        < text.index("Model invariants: 0 violations in") \
        < text.index("Summary by configuration") < text.index("Figures")
    page = parse_report(out)
    assert not page.external
    assert_png_images(page.images, 5)  # loss map, latency, throughput, failover distribution, one timeline
    raw = pd.read_parquet(study.path / "sweep.parquet").set_index("run_id")
    runs = page.tables["runs"][1:]
    assert [r["_attrs"]["data-row"] for r in runs] == list(raw.index)
    for r in runs:
        cells = {c["data-key"]: c["data-value"] for c in r["cells"]}
        want = raw.loc[r["_attrs"]["data-row"]]
        assert float(cells["committed_rps"]) > 0  # the one throughput measure (issue 22)
        for key in ("seed", "records_sent", "records_lost", "acked_lost", "produce_latency_ms.p99"):
            assert same(cells[key], None if pd.isna(want[key]) else want[key]), key
    groups = analysis.report.group_table(study).set_index(["acks", "replication_factor", "min_insync_replicas"])
    rows = page.tables["groups"][1:]
    assert len(rows) == len(groups) == N_CONFIGS
    for r in rows:
        cells = {c["data-key"]: c for c in r["cells"]}
        g = groups.loc[(cells["acks"]["data-value"], int(cells["replication_factor"]["data-value"]),
                        int(cells["min_insync_replicas"]["data-value"]))]
        assert same(cells["n"]["data-value"], g["n"])
        for m in ("loss_rate", "acked_loss_rate", "throughput_rps", "committed_rps"):
            assert same(cells[m]["data-value"], g[f"{m}_mean"])
            assert same(cells[m]["data-low"], g[f"{m}_low"]) and same(cells[m]["data-high"], g[f"{m}_high"])
            assert cells[m]["data-clipped"] == str(bool(g[f"{m}_clipped"])).lower()
    assert page.pre["sweep-spec"] == (study.path / "sweep.yaml").read_text()
    assert "name: quickstart" in page.pre["scenario"]


def _body_text(path: Path) -> str:
    """The report's visible text in document order (tags stripped)."""
    class Text(HTMLParser):
        def __init__(self):
            super().__init__()
            self.parts, self._skip = [], 0

        def handle_starttag(self, tag, attrs):
            self._skip += tag in ("style", "script", "title")

        def handle_endtag(self, tag):
            self._skip -= tag in ("style", "script", "title")

        def handle_data(self, data):
            if not self._skip:
                self.parts.append(data)

    t = Text()
    t.feed(path.read_text(encoding="utf-8"))
    return " ".join(" ".join(t.parts).split())


def test_report_run_shows_description_checks_and_warnings_first(run_dir, run, tmp_path):
    import shutil

    page = analysis.write_report(run_dir, tmp_path / "clean.html")
    text = _body_text(page)
    description = " ".join(run.scenario["description"].split())
    assert text.index(description) < text.index("Summary") < text.index("Figures")
    assert "Model invariants: 0 violations (every invariant held)." in text and "Warnings: none." in text
    assert text.index("Model invariants") < text.index("Summary")
    # a run with warnings and invariant violations says so at the top, with the examples
    dirty = tmp_path / "dirty"
    shutil.copytree(run_dir, dirty)
    summary = json.loads((dirty / "summary.json").read_text())
    summary.update(warnings=["min.insync.replicas 3 > replication.factor 2: every acks=all write fails"],
                   invariant_violations=3, invariant_examples=["one leader per epoch: epoch 4 has leaders 0 and 2"])
    (dirty / "summary.json").write_text(json.dumps(summary))
    checks = tmp_path / "checks.html"
    # the page without its figures (drawn and placed by the whole page above)
    checks.write_text(analysis.report._render(analysis.load_run(dirty), figures=False))
    text = _body_text(checks)
    assert "Model invariants: 3 violations." in text and "epoch 4 has leaders 0 and 2" in text
    assert "Warnings (1): min.insync.replicas 3 > replication.factor 2: every acks=all write fails" in text
    assert text.index("Model invariants: 3 violations.") < text.index("Warnings (1)") < text.index("Summary")
    check = parse_report(checks).ids["invariant-violations"]
    assert (check["class"], check["data-value"]) == ("check bad", "3")
    # older results without the check say so instead of claiming it held
    del summary["invariant_violations"]
    (dirty / "summary.json").write_text(json.dumps(summary))
    checks.write_text(analysis.report._render(analysis.load_run(dirty), figures=False))
    assert "Model invariants: not recorded" in _body_text(checks)


SCRIPT = "<script>alert('x')</script>"


def _assert_escaped(page: Path, shown: list[str]) -> None:
    """No markup of the user's strings reached the page: each shows as text, none as an element."""
    html_text = page.read_text(encoding="utf-8")
    assert "<script" not in html_text.lower() and "<i>" not in html_text
    assert "&lt;script&gt;" in html_text and not parse_report(page).external
    text = _body_text(page)
    for s in shown:
        assert s in text, s


def test_report_escapes_user_strings_of_a_run(run_dir, tmp_path):
    """A scenario's name and description are shown as written, as text: the template engine escapes them."""
    import shutil

    import yaml

    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    scenario = yaml.safe_load((copy / "scenario.yaml").read_text())
    scenario.update(name=f"<i>quick</i>{SCRIPT}", description=f'Crash {SCRIPT} & "quotes" <i>here</i>')
    (copy / "scenario.yaml").write_text(yaml.safe_dump(scenario, sort_keys=False))
    summary = json.loads((copy / "summary.json").read_text())
    summary.update(scenario=scenario["name"], warnings=[f"warned {SCRIPT}"], invariant_violations=1,
                   invariant_examples=[f"example <i>{SCRIPT}</i>"])
    (copy / "summary.json").write_text(json.dumps(summary))
    page = tmp_path / "run.html"
    page.write_text(analysis.report._render(analysis.load_run(copy), figures=False), encoding="utf-8")
    _assert_escaped(page, [f"kafkasim run report: <i>quick</i>{SCRIPT} seed", scenario["description"],
                           f"warned {SCRIPT}", f"example <i>{SCRIPT}</i>"])
    assert parse_report(page).pre["scenario"] == (copy / "scenario.yaml").read_text()


def test_report_escapes_user_strings_of_a_sweep(study, tmp_path):
    """A sweep's name and description, swept parameter values, warnings and errors are escaped too."""
    import shutil

    import yaml

    copy = tmp_path / "sweep"
    shutil.copytree(study.path, copy)
    spec = yaml.safe_load((copy / "sweep.yaml").read_text())
    key = "producers.0.client.id"
    spec.update(name=f"<i>s</i>{SCRIPT}", description=f"Sweep {SCRIPT} & <i>co</i>")
    spec["grid"][key] = [SCRIPT, "<i>two</i>"]
    (copy / "sweep.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    table = pd.read_parquet(copy / "sweep.parquet")
    table[key] = np.where(table["seed"] == 1, SCRIPT, "<i>two</i>")
    table.loc[0, "status"], table.loc[0, "error"] = "failed", f"RuntimeError: {SCRIPT}"
    table.to_parquet(copy / "sweep.parquet", index=False)
    shutil.rmtree(copy / "runs" / table.loc[0, "run_id"])
    rid = table.loc[1, "run_id"]
    summary = json.loads((copy / "runs" / rid / "summary.json").read_text())
    summary.update(warnings=[f"warned {SCRIPT}"])
    (copy / "runs" / rid / "summary.json").write_text(json.dumps(summary))
    page = tmp_path / "sweep.html"
    page.write_text(analysis.report._render(analysis.load_sweep_results(copy), figures=False), encoding="utf-8")
    _assert_escaped(page, [f"kafkasim sweep report: <i>s</i>{SCRIPT}", spec["description"], f"warned {SCRIPT}",
                           f"RuntimeError: {SCRIPT}", f"{key} (client.id)"])
    parsed = parse_report(page)
    shown = {c["data-value"] for r in parsed.tables["runs"][1:] for c in r["cells"] if c["data-key"] == key}
    assert shown == {SCRIPT, "<i>two</i>"}  # the swept values, as data and as text
    assert {c["data-value"] for r in parsed.tables["groups"][1:] for c in r["cells"]
            if c["data-key"] == key} == {SCRIPT, "<i>two</i>"}
    assert parsed.pre["sweep-spec"] == (copy / "sweep.yaml").read_text()


def test_report_templates_ship_with_the_package():
    """Every template file matches the package-data globs of pyproject.toml, so `pip install .` includes it."""
    import fnmatch
    import tomllib

    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["analysis"]
    files = [p.relative_to(ROOT / "analysis").as_posix() for p in (ROOT / "analysis" / "templates").rglob("*")
             if p.is_file()]
    assert files and all(any(fnmatch.fnmatch(f, g) for g in globs) for f in files), (files, globs)


def test_report_sweep_description_checks_and_columns_once(study, tmp_path):
    import shutil

    copy = tmp_path / "sweep"
    shutil.copytree(study.path, copy)
    import yaml

    spec = yaml.safe_load((copy / "sweep.yaml").read_text())
    spec["description"] = "Acks against replication under a leader crash."
    (copy / "sweep.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    rid = study.ok["run_id"].iloc[3]
    summary = json.loads((copy / "runs" / rid / "summary.json").read_text())
    summary.update(warnings=["a warning of one run"], invariant_violations=1, invariant_examples=["HW went back"])
    (copy / "runs" / rid / "summary.json").write_text(json.dumps(summary))
    # the parts of the page without its figures (test_report_sweep renders a whole page and checks the order)
    sweep = analysis.load_sweep_results(copy)
    page = tmp_path / "parts.html"
    page.write_text(analysis.report._render(sweep, figures=False))
    text = _body_text(page)
    assert text.index("Acks against replication under a leader crash.") < text.index("Summary by configuration")
    assert f"Model invariants: 1 violation in 1 of {N_RUNS} runs." in text and "HW went back" in text
    assert f"a warning of one run (1 run: {rid})" in text
    parsed = parse_report(page)
    html_text = page.read_text()
    heads = re.findall(r'<table id="runs".*?<thead><tr>(.*?)</tr>', html_text, re.S)[0]
    keys = re.findall(r'data-key="([^"]+)"', heads)
    labels = re.findall(r">([^<]+)</th>", heads)
    assert len(keys) == len(set(keys)) and len(labels) == len(set(labels)), labels
    assert not [k for k in keys if k.startswith(("producers.", "topics."))]  # each swept parameter once, by name
    assert {"acks", "RF", "min.insync"} <= set(labels)
    assert "Same in every run: fault: crash." in text
    group_heads = re.findall(r">([^<]+)</th>", re.findall(r'<table id="groups".*?<thead>(.*?)</thead>', html_text,
                                                          re.S)[0])
    assert group_heads[:4] == ["acks", "RF", "min.insync", "seeds (runs)"]
    assert len(parsed.tables["groups"]) == N_CONFIGS + 1


def test_overlapping_faults_on_one_broker_pair_their_own_start_and_end_and_the_label_names_the_fault(tmp_path):
    """A partition inside a slow disk on the same broker: two fault rows, each with its own end (the
    pairing was by broker only, so the partition's end closed the slow disk); the shading above
    the timeline says the broker was cut off, not down."""
    overrides = {"duration": "12s", "settle": "2s",
                 "faults": [{"kind": "slow_disk", "broker": 2, "at": "2s", "latency": "1ms", "duration": "8s"},
                            {"kind": "partition", "broker": 2, "between": ["peers"], "at": "4s", "heal": "2s"}]}
    res = sim.run(Path(__file__).resolve().parent.parent / "scenarios/quickstart.yaml", seed=1, overrides=overrides)
    res.write(tmp_path / "run")
    run = analysis.load_run(tmp_path / "run")
    f = analysis.fault_intervals(run).set_index("fault")
    assert (f.loc["slow_disk", "start_ms"], f.loc["slow_disk", "end_ms"]) == (2000.0, 10000.0)
    assert (f.loc["partition", "start_ms"], f.loc["partition", "end_ms"]) == (4000.0, 6000.0)
    fig = analysis.failover_timeline(run)
    labels = [t.get_text() for t in fig.axes[0].texts if (t.get_gid() or "").startswith("label:down:")]
    assert labels == ["broker 2 cut off"]


def test_brokers_down_together_share_one_label_above_the_timeline(tmp_path):
    """A power cut of two brokers: one label "brokers 0, 1 powered off", not two printed on each other."""
    overrides = {"duration": "8s", "settle": "2s",
                 "faults": [{"kind": "power_loss", "brokers": [0, 1], "at": "2s", "restart_after": "2s"}]}
    res = sim.run(Path(__file__).resolve().parent.parent / "scenarios/quickstart.yaml", seed=1, overrides=overrides)
    res.write(tmp_path / "run")
    fig = analysis.failover_timeline(analysis.load_run(tmp_path / "run"))
    labels = [t.get_text() for t in fig.axes[0].texts if (t.get_gid() or "").startswith("label:down:")]
    assert labels == ["brokers 0, 1 powered off"]
    assert_no_overlapping_text(fig)
