"""`kafkasim compare RUN_A RUN_B` and `analysis.compare` (issue 11, item 14)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pandas as pd
import pytest

import analysis
import sim
from sim.cli import main

ROOT = Path(__file__).resolve().parents[1]
SHORT = {"duration": "3s", "settle": "2s", "faults.0.at": "1s"}
ACKS1 = {"producers.0.acks": 1, "producers.0.enable.idempotence": False}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("compare")
    out = []
    for name, over in (("acks-all", SHORT), ("acks-1", {**SHORT, **ACKS1})):
        sc = sim.load_scenario(ROOT / "scenarios" / "quickstart.yaml", overrides=over)
        res = sim.run(sc, seed=1)
        res.summary = dataclasses.replace(res.summary, overrides={k: v for k, v in over.items()})
        out.append(res.write(base / name))
    return out[0], out[1]


def test_compare_frame(runs):
    a, b = runs
    frame = analysis.compare(a, b)
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == ["key", "a", "b", "difference", "relative"]
    keys = set(frame["key"])
    for k in ("records_produced", "records_sent", "records_acked", "records_lost", "acked_lost", "records_unknown",
              "duplicates", "throughput_rps", "produce_latency_ms.p50", "produce_latency_ms.p99",
              "produce_latency_ms.p999", "e2e_latency_ms.p50", "e2e_latency_ms.p99", "failover_ms.p50",
              "failover_ms.max", "unavailable_ms.p50", "unavailable_ms.max", "invariant_violations"):
        assert k in keys, k
    sa, sb = (analysis.load_run(p, tables=False).summary for p in runs)
    row = frame.set_index("key").loc["produce_latency_ms.p50"]
    assert row["a"] == pytest.approx(sa["produce_latency_ms"]["p50"])
    assert row["b"] == pytest.approx(sb["produce_latency_ms"]["p50"])
    assert row["difference"] == pytest.approx(row["b"] - row["a"])
    # acks=1 acknowledges on the leader's append: its median is far below acks=all's
    assert row["difference"] < 0
    acked = frame.set_index("key").loc["records_acked"]
    assert acked["a"] == sa["records_acked"] and acked["b"] == sb["records_acked"]
    # what tells the runs apart, with the value the other run resolved to
    la, lb = frame.attrs["labels"]
    assert "producers.0.acks=all" in la and "producers.0.acks=1" in lb
    assert "enable.idempotence=true" in la and "enable.idempotence=false" in lb


def test_compare_missing_values_are_nan(runs, tmp_path):
    a, _ = runs
    frame = analysis.compare(a, a)
    assert (frame["difference"].fillna(0) == 0).all()
    # a summary without failovers (no fault happened) has no failover row values
    import json
    import shutil
    c = tmp_path / "c"
    shutil.copytree(a, c)
    s = json.loads((c / "summary.json").read_text())
    s["failover_ms"] = {"p50": None, "max": None}
    (c / "summary.json").write_text(json.dumps(s))
    row = analysis.compare(a, c).set_index("key").loc["failover_ms.p50"]
    assert math.isnan(row["b"]) and math.isnan(row["difference"])


def test_compare_cli_table_and_figure(runs, tmp_path, monkeypatch, capsys):
    a, b = runs
    monkeypatch.chdir(tmp_path)
    assert main(["compare", str(a), str(b)]) == 0
    cap = capsys.readouterr()
    for text in ("records produced", "acked_lost", "duplicates", "committed (rec/s)", "p99.9", "end-to-end latency p99",
                 "unavailable", "invariant violations", "B - A"):
        assert text in cap.out, text
    out = tmp_path / "results" / "compare" / analysis.compare_name(a, b)
    assert {p.name for p in out.iterdir()} == {"latency.png", "latency.svg"}
    assert (out / "latency.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"wrote {out.relative_to(tmp_path) / 'latency.png'}" in cap.err
    # again: an earlier figure directory is replaced, nothing else is there
    assert main(["compare", str(a), str(b)]) == 0
    assert {p.name for p in out.iterdir()} == {"latency.png", "latency.svg"}
    # --out elsewhere
    assert main(["compare", str(a), str(b), "--out", str(tmp_path / "figs")]) == 0
    assert (tmp_path / "figs" / "latency.svg").is_file()


def test_compare_figure_overlays_both_runs(runs):
    fig = analysis.compare_latency(*runs)
    ax = fig.axes[0]
    gids = {line.get_gid() for line in ax.get_lines()}
    assert {"ecdf:A", "ecdf:B", "percentiles:A", "percentiles:B"} <= gids
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(t.startswith("A: ") for t in legend) and any(t.startswith("B: ") for t in legend)


def test_compare_errors_are_one_line_exit_2(runs, tmp_path, monkeypatch, capsys):
    a, b = runs
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    (tmp_path / "sweep").mkdir()
    (tmp_path / "sweep" / "sweep.yaml").write_text("name: x\n")
    cases = [
        (["compare", str(a), "nonexistent"], "RUN_B nonexistent: no such run directory"),
        (["compare", str(tmp_path / "mine"), str(b)], "not a kafkasim run directory"),
        (["compare", str(a), str(tmp_path / "sweep")], "a sweep directory, not a run"),
        (["compare", str(a), str(b), "--out", str(tmp_path / "mine")], "not empty and not a directory of kafkasim"),
        (["compare", str(a), str(b), "--out", str(tmp_path / "mine" / "notes.txt")], "not a directory"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err, err
        assert len(err.strip().splitlines()) == 1, err
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    assert not (tmp_path / "results").exists()


# --- the rest of item 14: the notebook extra, README wording, shell completion -------------------
def test_notebook_extra_and_readme_line():
    import tomllib
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(d.startswith("jupyterlab") for d in extras["notebook"])
    assert not any(d.startswith("jupyterlab") for d in extras["test"])  # tests never install it
    readme = ((ROOT / "README.md").read_text() + (ROOT / "docs" / "manual.md").read_text())
    assert ".venv/bin/pip install -e '.[notebook]' && .venv/bin/jupyter lab notebooks/" in readme
    assert (ROOT / "notebooks" / "durability-study.ipynb").is_file()


@pytest.mark.parametrize("term, explained", [
    ("Jepsen-style", "as the Jepsen test suite does"),
    ("settle", "extra simulated time with no"),
    ("purgatory", "where a Kafka broker parks a request it cannot answer yet"),
])
def test_readme_explains_terms_where_first_used(term, explained):
    """The explanation sits within a few lines of the term's first use, not somewhere later."""
    text = " ".join(((ROOT / "README.md").read_text() + (ROOT / "docs" / "manual.md").read_text()).split())
    first = text.find(term)
    assert first >= 0
    assert explained in text[first:first + 400], f"{term!r} is not explained where it is first used"


def test_readme_compare_command_and_election_key():
    readme = ((ROOT / "README.md").read_text() + (ROOT / "docs" / "manual.md").read_text())
    assert ".venv/bin/kafkasim compare results/" in readme
    assert "`cluster.election_cost`" not in readme and "controller.election.cost.ms" in readme


def test_shell_completion_is_offered(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "--install-completion" in out and "--show-completion" in out


def test_compare_a_run_with_itself_prints_labels_as_written(runs, tmp_path, monkeypatch, capsys):
    """Same label twice: the label gets a `[path]` suffix, which Rich used to read as markup (MarkupError)."""
    a, _ = runs
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "60")  # a narrow terminal (or a long path): the label never wraps
    assert main(["compare", str(a), str(a), "--out", str(tmp_path / "self")]) == 0
    cap = capsys.readouterr()
    title = next(line for line in cap.out.splitlines() if line.startswith("A:"))
    assert "[" in title and str(a.name) in title and title.rstrip().endswith("]"), title
    assert "acked_lost" in cap.out


def test_lost_rows_cannot_be_added_up_by_mistake(runs):
    """records_lost includes acked_lost: the table shows the unacknowledged part apart and says so."""
    a, b = runs
    frame = analysis.compare(a, b).set_index("key")
    for col in ("a", "b"):
        assert frame.loc["unacked_lost", col] == frame.loc["records_lost", col] - frame.loc["acked_lost", col]
    label = frame.index.to_series()
    records_lost_label = analysis.compare(a, b).reset_index().set_index("key").loc["records_lost", "metric"]
    assert "the two above" in records_lost_label
    assert list(label).index("unacked_lost") < list(label).index("records_lost")
