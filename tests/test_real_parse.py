"""The real cluster's recorded outputs (tests/data/real/) through the parser, the checker and the metrics.

The fixture is an excerpt of a real run of scenarios/real/leader-kill-acks1.yaml on Kafka 4.0.1:
VerifiableProducer's JSON lines (the end of its warm-up, the first counted records, and records
around the failover), KafkasimAdmin's poller lines (leader and ISR changes) and its dump of the
final logs. No Java needed.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from sim.real.parse import FAILED, UNKNOWN, ProducerLog, outcome_of_error, parse_value
from sim.real.run import remeasure
from sim.runs.contract import RunSummary
from sim.scenario.schema import Scenario

DATA = Path(__file__).parent / "data" / "real" / "acks1-kill"


@pytest.fixture()
def run_dir(tmp_path) -> Path:
    d = tmp_path / "acks1-kill"
    shutil.copytree(DATA, d)
    return d


def _lines(path: Path) -> list[dict]:
    return [json.loads(ln) for ln in path.read_text().splitlines() if ln.startswith("{")]


def _measure(d: Path):
    return remeasure(Scenario.resolve(d / "scenario.yaml"), d)


def _expected(d: Path):
    """Counted (post warm-up) acknowledgements and the values in the final log, straight from the files."""
    meta = json.loads((d / "run.json").read_text())
    skip = meta["producers"][0]["skip"]
    acked = {x["value"] for x in _lines(d / "clients" / "producer-0.jsonl")
             if x["name"] == "producer_send_success" and int(x["value"].split(".")[1]) >= skip}
    logged = [x["value"] for x in _lines(d / "clients" / "dump.jsonl") if x["name"] == "record"]
    return acked, logged


def test_parse_value_and_errors():
    assert parse_value("0.123") == (0, 123)
    assert parse_value("12.0") == (12, 0)
    assert parse_value(None) is None and parse_value("hello") is None and parse_value("1.x") is None
    assert outcome_of_error("class org.apache.kafka.common.errors.TimeoutException") == UNKNOWN
    assert outcome_of_error("class org.apache.kafka.common.errors.NetworkException") == UNKNOWN
    assert outcome_of_error("class org.apache.kafka.common.errors.NotLeaderOrFollowerException") == FAILED
    assert outcome_of_error("class org.apache.kafka.common.errors.NotEnoughReplicasException") == FAILED


def test_producer_log_start_is_estimated_from_acks():
    """startup_complete is printed some ms after VerifiableProducer's throttler starts: the start is the
    earliest ack - sequence/throughput when that is earlier (a record never goes out before its turn)."""
    lines = [{"timestamp": 1000, "name": "startup_complete"},
             {"timestamp": 1005, "name": "producer_send_success", "value": "0.10", "topic": "t", "partition": 0,
              "offset": 0},
             {"timestamp": 1100, "name": "producer_send_error", "value": "0.11", "exception": "x"}]
    p = ProducerLog(0, "p", 1000.0, lines, skip=5)
    assert p.startup_ms == 995.0  # 1005 - 10 records at 1000/s
    assert p.records == 7  # sequences 5..11


def test_recorded_run_goes_through_the_checker(run_dir):
    summary, batches, events, ts = _measure(run_dir)
    assert isinstance(summary, RunSummary)
    acked, logged = _expected(run_dir)
    assert summary.records_acked == len(acked) > 300
    assert summary.acked_lost == len(acked - set(logged)) == 0
    assert summary.duplicates == 0 and summary.reordered == 0
    assert summary.extra["source"] == "real" and summary.extra["kafka_version"] == "4.0.1"
    # the records between the excerpts have no line: the producer never answered, so unknown
    assert summary.records_unknown == summary.records_produced - summary.records_acked - summary.records_failed
    assert len(batches) == summary.records_produced and (batches["record_count"] == 1).all()
    lat = batches.loc[batches["outcome"] == "acked", "acked_ms"] - batches.loc[batches["outcome"] == "acked",
                                                                            "first_arrival_ms"]
    assert (lat >= 0).all()  # time zero is estimated from the acks: no record is acked before it arrived
    # the fault as it really happened, and the failover from the poller's leader change
    starts = events[events["kind"] == "fault_start"]
    assert len(starts) == 1 and starts["fault"].iloc[0] == "crash" and bool(starts["takes_down"].iloc[0])
    assert (events["kind"] == "fault_end").sum() == 1
    (fo,) = summary.failovers
    assert fo["partition"] == "events-0" and fo["broker"] == 1 and fo["new_leader"] == 2
    assert 8000 < fo["election_ms"] < 9100  # broker.session.timeout.ms 9 s, minus the last heartbeat's age
    assert fo["unavailable_ms"] >= fo["election_ms"]
    assert summary.leader_elections == 1 and summary.isr_shrinks >= 1


def test_a_record_missing_from_the_log_is_acked_lost(run_dir):
    acked, _ = _expected(run_dir)
    victim = sorted(acked)[0]
    dump = run_dir / "clients" / "dump.jsonl"
    kept = [ln for ln in dump.read_text().splitlines() if f'"value": "{victim}"' not in ln
            and f'"value":"{victim}"' not in ln]
    before = _measure(run_dir)[0]
    dump.write_text("\n".join(kept) + "\n")
    summary = _measure(run_dir)[0]
    assert summary.acked_lost == 1 and summary.records_lost == before.records_lost + 1


def test_a_second_copy_in_the_log_is_a_duplicate_and_an_error_is_failed(run_dir):
    dump = run_dir / "clients" / "dump.jsonl"
    lines = dump.read_text().splitlines()
    first = next(json.loads(ln) for ln in lines if '"record"' in ln and ln.find('"events-1"') > 0)
    copy = {**first, "offset": 10**9}
    dump.write_text("\n".join(lines + [json.dumps(copy)]) + "\n")
    prod = run_dir / "clients" / "producer-0.jsonl"
    plines = prod.read_text().splitlines()
    last = json.loads(plines[-1])
    seq = int(last["value"].split(".")[1]) + 1
    err = {"timestamp": last["timestamp"] + 5, "name": "producer_send_error", "key": None, "value": f"0.{seq}",
           "topic": "events", "exception": "class org.apache.kafka.common.errors.NotEnoughReplicasException",
           "message": "x"}
    prod.write_text("\n".join(plines + [json.dumps(err)]) + "\n")
    summary = _measure(run_dir)[0]
    assert summary.duplicates == 1
    assert summary.records_failed == 1 and summary.failed_but_present == 0


def test_unclean_elections_come_from_the_controller_log():
    """The controller's own line (recorded from a real run of scenarios/real/unclean-election.yaml): the
    poller missed the ISR shrink to [1] while no broker answered, so only the log knows it was unclean."""
    import time

    from sim.model.recorder import Recorder
    from sim.real.parse import partition_events, unclean_from_controller_log

    (u,) = unclean_from_controller_log((DATA.parent / "controller.log").read_text())
    assert (u["partition"], u["leader"], u["isr_before"]) == ("events-0", 0, [1])
    assert u["timestamp"] == time.mktime(time.strptime("2026-12-07 21:48:15", "%Y-%m-%d %H:%M:%S")) * 1000 + 648
    poller = [{"timestamp": u["timestamp"] - 60_000, "name": "partition_state", "partition": "events-0", "leader": 1,
               "isr": [1, 2, 0]},
              {"timestamp": u["timestamp"] - 30_000, "name": "partition_state", "partition": "events-0", "leader": 1,
               "isr": [1, 0]},
              {"timestamp": u["timestamp"] + 50, "name": "partition_state", "partition": "events-0", "leader": 0,
               "isr": [0]}]
    t0 = u["timestamp"] - 40_000
    for unclean, expected in ((None, 0), ([u], 1)):  # the poller alone sees 0 in the last ISR it saw
        rec = Recorder(["events-0"])
        partition_events(rec, poller, t0, ["events-0"], unclean)
        ev = rec.arrays("events")
        kinds = list(ev["kind"])
        assert kinds.count("unclean_election") == expected
    assert ev["time_ms"][kinds.index("unclean_election")] == 40_000


def test_fencings_come_from_the_controller_log():
    from sim.model.recorder import Recorder
    from sim.real.parse import controller_log_events, partition_events

    facts = controller_log_events((DATA.parent / "controller.log").read_text())
    fences = [d for d in facts if d["name"] == "broker_fenced"]
    assert [(d["broker"], d["epoch"]) for d in fences] == [(2, 12), (0, 14)]
    rec = Recorder(["events-0"])
    partition_events(rec, [], fences[0]["timestamp"] - 5000, ["events-0"], facts)
    ev = rec.arrays("events")
    k = list(ev["kind"]).index("broker_fenced")
    assert ev["broker"][k] == 2 and ev["value"][k] == 12 and ev["time_ms"][k] == 5000


def test_elections_and_isr_changes_come_from_the_controller_log_when_it_has_them():
    """The controller's DEBUG partition-change lines (recorded from a real run of the smoke scenario: the
    leader, broker 2, SIGKILLed; broker 0 missed heartbeats on the loaded machine) are the source of the
    leader and ISR events, with Kafka's own leader epochs; the poller is then not used."""
    from sim.model.recorder import Recorder
    from sim.real.parse import controller_log_events, partition_events

    facts = controller_log_events((DATA.parent / "controller-elections.log").read_text())
    created = next(d for d in facts if d["name"] == "partition_created")
    assert (created["leader"], created["isr"], created["leader_epoch"]) == (2, [2, 0, 1], 0)
    changes = [d for d in facts if d["name"] == "partition_change"]
    assert [d.get("isr") for d in changes] == [[2, 1], [1], [1, 0], [1, 0, 2]]
    assert [(d.get("leader_before"), d.get("leader"), d.get("leader_epoch")) for d in changes][1] == (2, 1, 1)
    t0 = created["timestamp"] + 10_000
    rec = Recorder(["events-0"])
    poller = [{"timestamp": t0 + 99_000, "name": "partition_state", "partition": "events-0", "leader": 0, "isr": [0]}]
    timeline = partition_events(rec, poller, t0, ["events-0"], facts)
    ev = rec.arrays("events")
    rows = [(k, b, v) for k, b, v in zip(ev["kind"], ev["broker"], ev["value"]) if k == "leader_elected"]
    assert rows == [("leader_elected", 2, 0), ("leader_elected", 1, 1)]  # the poller's leader 0 is not used
    elected = ev["time_ms"][list(ev["kind"]).index("leader_elected", 1)]
    assert elected == changes[1]["timestamp"] - t0
    assert timeline.at("events-0", elected + 1) == (1, 1) and timeline.at("events-0", elected - 1) == (2, 0)
    assert list(ev["kind"]).count("isr_change") == 5 and list(ev["kind"]).count("broker_fenced") == 2
