"""Validation against published Kafka results (issue 14): the quick cases run here with their
tolerances, and the committed docs/validation.md is checked to be the command's current output.
The full set runs with `pytest -m validation`.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from analysis.validation import case_section, validation_markdown
from sim.cli import main
from sim.runs.validation import CASES, V9_EXTRA, V9_LATENCY_VARIANT, V9_PUBLISHED, cases_named, judge_v1, judge_v12, \
    judge_v14, judge_v5, judge_v7, judge_v9, judge_zero_loss, validate_model

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "docs" / "validation.md"


# The quick cases take a minute or two: the tests that read their table share one xdist worker
# (`--dist loadgroup` in pyproject.toml), so the module fixture runs them once per suite, not once per worker.
QUICK = pytest.mark.xdist_group("validation-quick")


@pytest.fixture(scope="module")
def quick_table():
    return validate_model(quick=True, workers=2)


@QUICK
def test_the_quick_cases_reproduce_their_published_figures(quick_table):
    assert set(quick_table["case"]) == {c.id for c in CASES if c.quick}
    for _, r in quick_table.iterrows():
        assert r["passed"] is True or r["passed"] == True, (  # noqa: E712
            f"{r['case']} ({r['title']}): published {r['published']!r}; simulated {r['simulated']!r}; "
            f"tolerance {r['tolerance']!r}")


@QUICK
def test_the_committed_report_is_current_for_the_quick_cases(quick_table):
    """docs/validation.md is `kafkasim validate-model --out docs/validation.md`'s output: the quick
    cases use the full set's seeds, so their sections must match it word for word."""
    text = REPORT.read_text(encoding="utf-8")
    for _, r in quick_table.iterrows():
        assert case_section(r) in text, (f"docs/validation.md is stale for {r['case']}: rerun "
                                         f"`kafkasim validate-model --out docs/validation.md`")


def test_every_validation_scenario_belongs_to_a_case():
    used = {v.scenario for c in CASES for v in c.variants}
    assert {p.name for p in (ROOT / "scenarios" / "validation").glob("*.yaml")} == used


def test_every_case_of_the_reference_is_listed_and_the_missing_ones_say_what_is_missing():
    ids = [c.id for c in CASES]
    assert ids == ["V1", "V2", "V5", "V7", "V9", "V12", "V14"]
    for c in CASES:
        assert (c.missing is None) == bool(c.variants), c.id
        for v in c.variants:
            text = (ROOT / "scenarios" / "validation" / v.scenario).read_text()
            assert text.startswith((f"# {c.id}:", f"# {c.id},")), f"{v.scenario} must open with the case it reproduces"
            assert "published" in text.lower(), f"{v.scenario} must quote the published figure"


def _runs(**cols):
    return pd.DataFrame(cols)


def test_the_judges_fail_on_the_wrong_outcome():
    # V1: no loss, or a loss far beyond one fetch round, is not the published behaviour
    assert not judge_v1(_runs(loss_ms=[0.0, 0.0], acked_lost=[0, 0], fetch_round_ms=[3.0, 3.0])).passed
    assert not judge_v1(_runs(loss_ms=[40.0, 50.0], acked_lost=[4000, 5000], fetch_round_ms=[3.0, 3.0])).passed
    assert judge_v1(_runs(loss_ms=[2.0, 3.0], acked_lost=[200, 300], fetch_round_ms=[3.0, 3.0])).passed
    # V2: one lost record in one seed fails it
    assert not judge_zero_loss(_runs(acked_lost=[0, 1, 0])).passed
    # V5: an acknowledgement under min ISR, or no HW stall, fails it
    ok = dict(variant=["acks=all", "acks=all", "acks=1", "acks=1"], acked_below_min_isr=[0, 0, 900, 910],
              hw_stalls=[1, 1, 0, 0], acked_share=[0.0, 0.0, 0.99, 1.0])
    assert judge_v5(_runs(**ok)).passed
    assert not judge_v5(_runs(**{**ok, "acked_below_min_isr": [5, 0, 900, 910]})).passed
    assert not judge_v5(_runs(**{**ok, "hw_stalls": [0, 1, 0, 0]})).passed
    assert not judge_v5(_runs(**{**ok, "acked_share": [0.0, 0.0, 0.2, 0.3]})).passed
    # V12: flushed or crash-only runs that lose records fail it
    v12 = dict(variant=["default flush", "flush.messages=1", "process crash"], acked_lost=[60000, 0, 0],
               loss_ms=[30000.0, 0.0, 0.0])
    assert judge_v12(_runs(**v12)).passed
    assert not judge_v12(_runs(**{**v12, "acked_lost": [60000, 10, 0]})).passed
    assert not judge_v12(_runs(**{**v12, "acked_lost": [0, 0, 0], "loss_ms": [0.0, 0.0, 0.0]})).passed
    # V7: elections beyond detection at Rao's 5 s and 25 s pass; KRaft-like ~0 s, or 4x, fail
    v7 = dict(variant=["broker leading 1,000 partitions", "the controller's broker"], last_back_s=[21.5, 43.0],
              fenced_after_s=[16.5, 38.0], session_timeout_s=[18.0, 18.0])
    assert judge_v7(_runs(**v7)).passed
    assert not judge_v7(_runs(**{**v7, "last_back_s": [16.6, 43.0]})).passed
    assert not judge_v7(_runs(**{**v7, "last_back_s": [21.5, 18.0 + 101.0]})).passed
    # V9: Kreps's rates pass; acks=all costing nothing (no replication round trip) fails
    rates = {**V9_PUBLISHED, **V9_EXTRA}
    v9 = dict(variant=list(rates), throughput=[float(v) for v in rates.values()])
    assert judge_v9(_runs(**v9)).passed
    assert not judge_v9(_runs(**{**v9, "throughput": [float(v) if k != "RF 3, acks=all" else 800_000.0
                                                        for k, v in rates.items()]})).passed
    # V9 consumer rows: three consumers bound by one NIC (1.15M, a third of the rate) fail; a backlog that
    # ran out inside the measuring window fails; the lone consumer is reported, whatever it reads
    assert not judge_v9(_runs(**{**v9, "throughput": [float(v) if k != "3 consumers" else 1_150_000.0
                                                        for k, v in rates.items()]})).passed
    drained = [0 if k == "3 consumers" else 1 for k in rates]
    assert not judge_v9(_runs(**v9, backlog_left=drained)).passed
    assert judge_v9(_runs(**v9, backlog_left=[1] * len(rates))).passed
    lone = judge_v9(_runs(**{**v9, "throughput": [float(v) if k != "1 consumer" else 2_000_000.0
                                                  for k, v in rates.items()]}))
    assert lone.passed and "1 consumer 2,000.0k rec/s" in lone.simulated and "outside tolerance" in lone.simulated
    # the end-to-end latency is reported next to Kreps's 2 / 3 / 14 ms, not judged
    lat = _runs(variant=[*rates, V9_LATENCY_VARIANT], throughput=[*map(float, rates.values()), 500.0],
                e2e_p50_ms=[math.nan] * len(rates) + [0.6], e2e_p99_ms=[math.nan] * len(rates) + [1.0],
                **{"e2e_p99.9_ms": [math.nan] * len(rates) + [40.0]})
    v = judge_v9(lat)
    assert v.passed and "end-to-end latency p50/p99/p99.9 0.60 / 1.00 / 40.00 ms vs 2 / 3 / 14 ms" in v.simulated
    # V14: loss with HW truncation and none with leader epochs; no loss either way fails
    v14 = dict(variant=["high_watermark", "leader_epoch"], acked_lost=[7550, 0], hw_truncations=[1, 0])
    assert judge_v14(_runs(**v14)).passed
    assert not judge_v14(_runs(**{**v14, "acked_lost": [0, 0]})).passed
    assert not judge_v14(_runs(**{**v14, "acked_lost": [7550, 3]})).passed


def test_the_report_counts_passes_failures_and_gaps():
    rows = pd.DataFrame([
        {"case": "V1", "title": "t1", "source": "s", "published": "p|q", "simulated": "x", "tolerance": "t",
         "passed": True, "seeds": 3, "missing": "", "command": "kafkasim validate-model --case V1",
         "scenarios": "scenarios/validation/a.yaml"},
        {"case": "V2", "title": "t2", "source": "s", "published": "p", "simulated": "y", "tolerance": "t",
         "passed": False, "seeds": 3, "missing": "", "command": "c", "scenarios": "scenarios/validation/b.yaml"},
        {"case": "V7", "title": "t7", "source": "s", "published": "p", "simulated": "not reproduced", "tolerance": "t",
         "passed": None, "seeds": 0, "missing": "the ZooKeeper mode", "command": "c", "scenarios": "", "gaps": ""}])
    rows["gaps"] = ["", "the latency rows are not run", ""]
    md = validation_markdown(rows, version="9.9", command="kafkasim validate-model")
    assert "**1 of 3 cases reproduced within tolerance; 1 outside it; 1 not reproduced" in md
    assert "| V1 | p\\|q | x | t | pass |" in md  # a pipe in a cell does not break the table
    assert "| V2 | p | y | t | **FAIL** |" in md
    assert "- V7: the model lacks the ZooKeeper mode." in md
    assert "- V2: the latency rows are not run." in md


def test_cli_errors_are_one_line_with_exit_2(tmp_path, capsys):
    assert main(["validate-model", "--case", "V99"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --case: unknown validation case 'V99'") and "\n" not in err
    other = tmp_path / "notes.md"
    other.write_text("my notes\n")
    assert main(["validate-model", "--case", "V2", "--out", str(other)]) == 2
    assert "is not a validation report" in capsys.readouterr().err
    assert other.read_text() == "my notes\n"  # never overwritten


@QUICK
def test_the_cli_writes_the_report_and_exits_1_when_a_case_fails(tmp_path, capsys, monkeypatch, quick_table):
    """The command's wiring, on the quick cases' real table (already computed above): the report is
    written, replaced on a second run, and a case outside its tolerance makes the exit code 1."""
    import sim.cli.validation as cli

    table = quick_table.copy()
    monkeypatch.setattr(cli, "validate_model", lambda cases, **kw: table[table["case"].isin([c.id for c in cases])])
    out = tmp_path / "v.md"
    assert main(["validate-model", "--case", "V2", "--out", str(out)]) == 0
    text = out.read_text()
    assert text.startswith("# Validation against published Kafka results")
    assert "### V2: acks=all with min.insync=2 survives a single hard leader crash" in text
    assert "V2" in capsys.readouterr().out
    table.loc[table["case"] == "V2", "passed"] = False
    assert main(["validate-model", "--case", "V2", "--out", str(out)]) == 1
    assert "| V2 |" in out.read_text() and "**FAIL**" in out.read_text()


def test_cases_named_finds_cases_case_insensitively():
    assert [c.id for c in cases_named(["v12", "V1"])] == ["V12", "V1"]
    assert len(cases_named(None)) == len(CASES)


@pytest.mark.validation
def test_the_full_validation_set():
    table = validate_model(workers=2)
    bad = table[table["passed"] == False]  # noqa: E712
    assert bad.empty, "\n".join(f"{r['case']}: published {r['published']}; simulated {r['simulated']}"
                                for _, r in bad.iterrows())


def test_a_case_with_rows_gets_a_figure_of_published_against_simulated(tmp_path):
    from matplotlib.image import imread

    from analysis.validation import write_validation_report

    row = {"case": "V9", "title": "throughput", "source": "s", "published": "p", "simulated": "x", "tolerance": "t",
           "passed": True, "seeds": 2, "missing": "", "command": "c", "scenarios": "", "gaps": "",
           "points": {"RF 1": (821.6, 833.3), "RF 3, acks=all": (421.8, 464.4)}, "unit": "thousand records/s"}
    out = write_validation_report(pd.DataFrame([row]), tmp_path / "validation.md", version="9.9", command="c")
    assert "![V9: published against simulated](validation/V9.png)" in out.read_text()
    img = imread(tmp_path / "validation" / "V9.png")
    assert img.shape[0] > 100 and img.shape[1] > 400


def test_the_report_cites_public_sources_not_a_file_outside_the_repository():
    """The report cited `../shared/kafka-reference.md`, which is not in the repository: it names each
    case's public sources (Kafka's documentation, KIPs, source files, the articles) instead."""
    from sim.runs.validation import PUBLIC_SOURCES

    assert set(PUBLIC_SOURCES) == {c.id for c in CASES}
    assert all(url.startswith("https://") for urls in PUBLIC_SOURCES.values() for url in urls)
    rows = pd.DataFrame([{"case": "V2", "title": "t", "source": "s", "published": "p", "simulated": "x",
                          "tolerance": "t", "passed": True, "seeds": 1, "missing": "", "command": "c",
                          "scenarios": "", "gaps": "", "sources": PUBLIC_SOURCES["V2"]}])
    md = validation_markdown(rows, version="9.9", command="c")
    committed = REPORT.read_text(encoding="utf-8")
    for text in (md, committed):
        assert "kafka-reference" not in text and "../shared" not in text
    assert all(url in md for url in PUBLIC_SOURCES["V2"]) and PUBLIC_SOURCES["V1"][0] not in md
    assert all(url in committed for urls in PUBLIC_SOURCES.values() for url in urls)
