"""`kafkasim history`: a run as a Jepsen history (Jepsen's Kafka workload shape, which Elle reads).

The EDN is read back with a small reader written here (maps, vectors, keywords, integers: all a
history uses), and checked against the run's summary: the acknowledged sends hold records_acked
records, and the acknowledged values no final poll read are exactly the summary's acked_lost.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

import sim
from analysis import load_run
from analysis.history import HistoryError, history_lines, history_ops
from sim.cli.app import app

SCEN = Path(__file__).resolve().parent.parent / "scenarios"
_TOKEN = re.compile(r"[\s,]*(?:([{}\[\]])|(:[A-Za-z_][\w\-?!]*)|(-?\d+))")


def read_edn(text: str):
    """Parse one EDN value of maps, vectors, keywords (as ':name' strings) and integers."""
    tokens = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        assert m and m.end() > pos, f"unexpected EDN at {pos}: {text[pos:pos + 30]!r}"
        tokens.append(m.group(1) or m.group(2) or int(m.group(3)))
        pos = m.end()
    it = iter(tokens)

    def value(tok):
        if tok == "[":
            out = []
            for t in it:
                if t == "]":
                    return out
                out.append(value(t))
            raise AssertionError("unclosed vector")
        if tok == "{":
            out, key = {}, None
            for t in it:
                if t == "}":
                    assert key is None, "a map with an odd number of forms"
                    return out
                if key is None:
                    key = value(t)
                else:
                    out[key if not isinstance(key, list) else tuple(key)] = value(t)
                    key = None
            raise AssertionError("unclosed map")
        return tok

    result = value(next(it))
    assert next(it, None) is None, "trailing forms"
    return result


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("h") / "run"
    sim.run(SCEN / "quickstart.yaml", overrides={"duration": "4s", "settle": "2s", "faults": [], "producers.0.rate": "2000/s"}).write(out)
    return out


@pytest.fixture(scope="module")
def lossy_run(tmp_path_factory):
    # lost fsyncs from 1 s, every broker loses power at 12 s: what the producer was told is durable is gone
    out = tmp_path_factory.mktemp("h") / "lossy"
    r = sim.run(SCEN / "faults" / "lost-fsync.yaml",
                overrides={"duration": "15s", "settle": "10s", "faults.1.at": "12s", "faults.1.restart_after": "2s"})
    r.write(out)
    return out


def _parsed(run_dir: Path, fmt: str = "edn") -> list[dict]:
    result = CliRunner().invoke(app, ["history", str(run_dir), "--format", fmt])
    assert result.exit_code == 0, result.output
    lines = [ln for ln in result.stdout.splitlines() if ln.strip()]
    return [read_edn(ln) for ln in lines] if fmt == "edn" else [json.loads(ln) for ln in lines]


def _check_shape(ops: list[dict]) -> None:
    assert [o[":index"] for o in ops] == list(range(len(ops)))
    times = [o[":time"] for o in ops]
    assert times == sorted(times)
    in_flight: dict[int, dict] = {}
    for o in ops:
        assert set(o) == {":index", ":time", ":type", ":process", ":f", ":value"}
        assert o[":f"] in (":send", ":poll")
        if o[":type"] == ":invoke":
            assert o[":process"] not in in_flight, "a process with two operations in flight"
            in_flight[o[":process"]] = o
        else:
            assert o[":type"] in (":ok", ":fail", ":info")
            inv = in_flight.pop(o[":process"])
            assert inv[":f"] == o[":f"] and len(inv[":value"]) == len(o[":value"])
            if o[":type"] == ":info":
                in_flight[o[":process"]] = {":f": None, ":value": []}  # retired: never invoked again
    assert all(v[":f"] is None for v in in_flight.values())


def _acked_and_read(ops: list[dict]) -> tuple[Counter, set]:
    acked, read = Counter(), set()
    for o in ops:
        if o[":type"] != ":ok":
            continue
        for mop in o[":value"]:
            if mop[0] == ":send":
                _, k, (offset, v) = mop
                acked[(k, v)] += 1
            else:
                for k, pairs in mop[1].items():
                    read.update((k, v) for _, v in pairs)
    return acked, read


def test_a_small_runs_history_parses_and_matches_its_summary(small_run):
    ops = _parsed(small_run)
    _check_shape(ops)
    summary = load_run(small_run).summary
    acked, read = _acked_and_read(ops)
    assert sum(acked.values()) == summary["records_acked"] > 5_000
    assert max(acked.values()) == 1  # a value names one record
    assert set(acked) == read and summary["acked_lost"] == 0
    # one final poll per partition, after every send
    polls = [o for o in ops if o[":f"] == ":poll"]
    assert len(polls) == 2 * 6 and min(o[":index"] for o in polls) > max(o[":index"] for o in ops if o[":f"] == ":send")
    # a partition's poll reads offsets in order, each once
    for o in polls[1::2]:
        ((_, reads),) = [mop for mop in o[":value"]]
        (pairs,) = reads.values()
        offsets = [off for off, _ in pairs]
        assert offsets == sorted(set(offsets))


def test_acknowledged_values_no_poll_read_are_the_summarys_acked_lost(lossy_run):
    ops = _parsed(lossy_run)
    _check_shape(ops)
    summary = load_run(lossy_run).summary
    acked, read = _acked_and_read(ops)
    lost = sum(1 for kv in acked if kv not in read)
    assert lost == summary["acked_lost"] > 1_000
    assert sum(acked.values()) == summary["records_acked"]


def test_jsonl_holds_the_same_operations(small_run):
    edn, js = _parsed(small_run), _parsed(small_run, "jsonl")
    assert len(edn) == len(js)
    for e, j in zip(edn[:50], js[:50]):
        assert j["type"] == e[":type"][1:] and j["time"] == e[":time"] and j["process"] == e[":process"]
        assert len(j["value"]) == len(e[":value"])


def test_a_history_over_the_limit_is_a_one_line_error(small_run, tmp_path):
    run = load_run(small_run)
    with pytest.raises(HistoryError, match=r"^--limit: the run has [\d,]+ records, over the limit of 100 "):
        history_ops(run, limit=100)
    result = CliRunner().invoke(app, ["history", str(small_run), "--limit", "100"])
    assert result.exit_code == 2 and result.stderr.startswith("error: --limit:") and result.stderr.count("\n") == 1
    for args, field in ((["--format", "xml"], "--format"), (["--limit", "0"], "--limit"),
                        (["--out", str(tmp_path)], "--out")):
        result = CliRunner().invoke(app, ["history", str(small_run), *args])
        assert result.exit_code == 2 and result.stderr.startswith(f"error: {field}"), result.stderr
    result = CliRunner().invoke(app, ["history", str(tmp_path / "nothing")])
    assert result.exit_code == 2 and result.stderr.startswith("error:")


def test_out_writes_the_file(small_run, tmp_path):
    out = tmp_path / "history.edn"
    result = CliRunner().invoke(app, ["history", str(small_run), "--out", str(out)])
    assert result.exit_code == 0 and "wrote" in result.stderr
    lines = out.read_text().splitlines()
    assert lines == list(history_lines(history_ops(load_run(small_run))))
