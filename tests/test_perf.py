"""`kafkasim perf`: perf-test and OpenMessaging Benchmark numbers, and the HdrHistogram / OMB exports,
which must read back with the summary's percentiles within the histogram's precision."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

import sim
from analysis import load_run
from analysis.perf import omb_result, perf_numbers, perf_test_line, read_hdr_log, write_hdr_log
from analysis.tables import perf_table
from sim.cli.app import app
from sim.scenario.schema import Scenario

# ProducerPerformance.Stats.printTotal (Kafka trunk 2024-10-25)
PERF_TEST = re.compile(r"^\d+ records sent, \d+\.\d records/sec \(\d+\.\d\d MB/sec\), \d+\.\d\d ms avg latency, "
                       r"\d+\.\d\d ms max latency, \d+ ms 50th, \d+ ms 95th, \d+ ms 99th, \d+ ms 99\.9th\.$")


def _scenario(**cluster) -> Scenario:
    """One RF-3 partition, acks=all at 2,000 records/s of 200 B for 10 s; the leader crashes at 4 s."""
    return Scenario.resolve({
        "name": "perf", "duration": "10s", "settle": "5s", "seed": 2,
        "cluster": {"brokers": 3, **cluster},
        "network": {"latency": {"dist": "lognormal", "median": "1ms", "sigma": 0.5}},
        "topics": [{"name": "t", "partitions": 2, "replication.factor": 3, "min.insync.replicas": 2}],
        "producers": [{"topic": "t", "rate": "2000/s", "record.size": "200B", "acks": "all"}],
        "consumers": [{"group.id": "g", "topic": "t"}],
        "faults": [{"kind": "crash", "leader_of": "t-0", "at": "4s", "restart_after": "3s"}],
    })


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    d = tmp_path_factory.mktemp("perf") / "run"
    sim.run(_scenario()).write(d)
    return load_run(d)


def _close(hdr_ms: float, exact_ms: float) -> bool:
    """Equal within an HdrHistogram of 3 significant digits (a bucket is at most 1/1024 of its value
    wide) over whole microseconds."""
    return abs(hdr_ms - exact_ms) <= exact_ms / 1024 + 0.001


def _exact_percentiles(run, qs):
    """The summary's percentile definition over the run's acknowledged records (a batch's records at
    its mid arrival), at the ranks `qs`."""
    from sim.measure.stats import weighted_percentiles

    b = run.batches[run.batches.outcome == "acked"]
    latency = b.acked_ms - (b.first_arrival_ms + b.last_arrival_ms) / 2
    return weighted_percentiles(latency.to_numpy(), b.record_count.to_numpy(), qs)


def test_perf_numbers_are_the_summarys(run):
    n, s = perf_numbers(run), run.summary
    assert n["records"] == s.records_acked
    assert n["records_per_sec"] == pytest.approx(s.throughput_rps)
    assert n["mb_per_sec"] == pytest.approx(s.throughput_rps * 200 / 2**20)
    lat = s.produce_latency_ms
    assert (n["p50_ms"], n["p99_ms"], n["p999_ms"], n["max_ms"]) == (lat["p50"], lat["p99"], lat["p999"], lat["max"])
    assert n["p50_ms"] <= n["p95_ms"] <= n["p99_ms"] <= n["p999_ms"] <= n["p9999_ms"] <= n["max_ms"]
    assert n["p50_ms"] < n["avg_ms"] < n["p99_ms"]  # the failover's tail pulls the mean up
    assert PERF_TEST.match(perf_test_line(n)), perf_test_line(n)
    assert not n["hardware"]
    row = perf_table(run).iloc[0]
    assert row["records"] == n["records"] and row["p9999_ms"] == n["p9999_ms"]


def test_the_hdr_log_reads_back_with_the_summarys_percentiles(run, tmp_path):
    path = write_hdr_log(run, tmp_path / "latency.hlog")
    text = path.read_text()
    assert "protocol-only" in text and '"StartTimestamp","Interval_Length"' in text
    intervals = [line for line in text.splitlines() if line and line[0].isdigit()]
    assert len(intervals) == 15  # one per simulated second, the failover's empty ones too
    assert sum(line.split(",")[2] == "0.000000" for line in intervals) >= 2
    h = read_hdr_log(path)
    s = run.summary
    assert h.get_total_count() == s.records_acked
    n = perf_numbers(run)
    for q, exact in ((50, s.produce_latency_ms["p50"]), (99, s.produce_latency_ms["p99"]),
                     (99.9, s.produce_latency_ms["p999"]), (95, n["p95_ms"])):
        # HdrHistogram rounds the rank (q% of the count + 0.5): where q% falls between two batches'
        # latencies it may name the neighbour, so it must lie between the exact percentiles of one
        # record less and one record more, within its precision
        low, high = _exact_percentiles(run, [q - 100.0 / s.records_acked, q + 100.0 / s.records_acked])
        got = h.get_value_at_percentile(q) / 1000.0
        assert low <= exact <= high and (_close(got, low) or _close(got, high) or low <= got <= high), (q, got, exact)
    assert _close(h.get_mean_value() / 1000.0, n["avg_ms"])


def test_the_omb_json_has_its_fields_and_the_summarys_percentiles(run):
    r = json.loads(json.dumps(omb_result(run)))
    s = run.summary
    for key, q in (("aggregatedPublishLatency50pct", "p50"), ("aggregatedPublishLatency99pct", "p99"),
                   ("aggregatedPublishLatency999pct", "p999")):
        assert _close(r[key], s.produce_latency_ms[q]), key
    assert len(r["publishRate"]) == 1  # 10 s of producing: one OMB window
    assert r["publishRate"][0] * 10 == pytest.approx(s.records_acked, abs=1)
    for key in ("publishLatency50pct", "publishLatency9999pct", "publishLatencyMax", "endToEndLatency99pct",
                "aggregatedEndToEndLatency50pct", "aggregatedPublishLatencyQuantiles", "backlog", "consumeRate"):
        assert key in r
    assert r["messageSize"] == 200 and r["partitions"] == 2


def test_the_cli_prints_perf_test_and_omb_lines_and_says_latency_is_protocol_only(run, tmp_path):
    res = CliRunner().invoke(app, ["perf", str(run.path), "--hdr", str(tmp_path / "a.hlog"),
                                   "--omb", str(tmp_path / "a.json")])
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert any(PERF_TEST.match(line.removeprefix("perf-test: ")) for line in lines)
    assert any(line.startswith("OMB:       ----- Aggregated Pub Latency (ms) avg: ") for line in lines)
    assert "note: latency is protocol-only: no CPU, disk or GC cost" in res.stdout
    assert (tmp_path / "a.hlog").is_file() and (tmp_path / "a.json").is_file()
    out = CliRunner().invoke(app, ["perf", str(run.path), "--json"])
    assert json.loads(out.stdout)["records"] == run.summary.records_acked


def test_with_the_hardware_model_the_note_says_so(tmp_path):
    sc = Scenario.resolve({**_scenario().model_dump(by_alias=True, exclude_none=True), "duration": "2s",
                           "settle": "1s", "faults": [], "cluster": {"brokers": 3, "hardware": "kreps-2014"}})
    sim.run(sc).write(tmp_path / "hw")
    res = CliRunner().invoke(app, ["perf", str(tmp_path / "hw")])
    assert res.exit_code == 0, res.output
    assert "protocol-only" not in res.stdout and "hardware model" in res.stdout


def test_bad_paths_are_one_line_errors(run, tmp_path):
    res = CliRunner().invoke(app, ["perf", str(tmp_path / "nothing")])
    assert res.exit_code == 2 and len(res.stderr.strip().splitlines()) == 1 and "error:" in res.stderr
    res = CliRunner().invoke(app, ["perf", str(run.path), "--hdr", str(tmp_path)])
    assert res.exit_code == 2 and res.stderr.startswith("error: --hdr") and "Traceback" not in res.output
