"""One real run of a scenario: start the cluster, run Kafka's clients and the faults, read the logs, measure.

Timeline (as the simulator's, `sim.runs.runner`): time zero is when the first producer started
sending (its ``startup_complete``); producers produce for ``duration`` (``--max-messages`` = rate x
duration); faults start and end at their times; at ``duration`` every open fault heals (crashed
brokers restart, paused ones continue); the run settles (producers drain, the ISR refills, at most
:data:`MAX_SETTLE_S`); then every partition is read from the beginning (the final logs) and the
same checker and metrics as the simulator's measure the facts. Every process is killed and reaped
at the end, on error and on SIGINT/SIGTERM.

A real run is slower than the model's clients can be: a producer instance is one JVM, so the
offered rate is capped at :data:`MAX_RATE` records/s per instance and :data:`MAX_INSTANCES`
instances; :func:`real_scenario` returns the scenario as it is really run (the simulator side of
`kafkasim versus` runs that same scenario) and a warning naming each change.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import shutil
import signal
import socket
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from sim import __version__
from sim.measure.checker import batches_table, check
from sim.measure.metrics import events_table, failovers, produce_latency, e2e_latency, timeseries, \
    under_replicated_at_end
from sim.real.cluster import Poller, RealCluster, read_json_lines
from sim.real.faults import FaultDriver, FaultRecord, unsupported
from sim.real.kafka import KAFKA_VERSION, ensure_kafka
from sim.real.netfaults import CLIENTS, CONTROLLER_NODE, Firewall, peers_of
from sim.real.parse import ProducerLog, build_recorder, controller_log_events
from sim.real.processes import Processes, guard, wait_for
from sim.runs.contract import RunSummary, write_atomic
from sim.scenario.schema import Scenario, ScenarioError

__all__ = ["RealUnsupported", "real_scenario", "run_real", "MAX_RATE", "MAX_INSTANCES", "MAX_SETTLE_S", "RealRun"]

MAX_RATE = 2000.0
"""Records/s per producer instance the real side offers at most (a 2-core machine keeps up)."""
MAX_INSTANCES = 2
MAX_SETTLE_S = 20.0
WARMUP_S = 3.0
"""Each producer sends this long before time zero (records not counted): a fresh JVM's first
second or two of metadata, connections and JIT would otherwise count as produce latency."""
VERIFIABLE_PRODUCER = "org.apache.kafka.tools.VerifiableProducer"
VERIFIABLE_CONSUMER = "org.apache.kafka.tools.VerifiableConsumer"
POLL_INTERVAL_MS = 100

ProgressFn = Callable[[str], None]


class RealUnsupported(ScenarioError):
    """The real cluster cannot run this scenario as written (one line: the field and what is allowed)."""


def real_scenario(sc: Scenario) -> tuple[Scenario, list[str]]:
    """`sc` as the real cluster runs it (rates and instances capped), and a warning per change.

    Raises RealUnsupported for what cannot be real at all (`sim.real.faults.unsupported`).
    """
    why = unsupported(sc)
    if why:
        raise RealUnsupported(why)
    notes, producers = [], []
    for i, p in enumerate(sc.producers):
        upd = {}
        if p.rate > MAX_RATE:
            upd["rate"] = MAX_RATE
            notes.append(f"producers.{i}.rate: {p.rate:g}/s scaled down to {MAX_RATE:g}/s for the real cluster")
        if p.instances > MAX_INSTANCES:
            upd["instances"] = MAX_INSTANCES
            notes.append(f"producers.{i}.instances: {p.instances} scaled down to {MAX_INSTANCES} (one JVM each)")
        producers.append(p.model_copy(update=upd) if upd else p)
        if p.record_size > 16:
            notes.append(f"producers.{i}.record.size: VerifiableProducer's values are '<producer>.<sequence>' "
                         f"(a few bytes), not {int(p.record_size)} B")
    for i, c in enumerate(sc.consumers):
        if c.group_protocol == "none":
            notes.append(f"consumers.{i}.group.protocol: none (a fixed assignment) is not a Kafka protocol; "
                         f"VerifiableConsumer joins a classic group")
    if any(n.startswith("producers.") and ("rate" in n.split(":")[0] or "instances" in n.split(":")[0])
           for n in notes):
        sc = Scenario.resolve({**sc.declared(), "producers": [
            {**sc.declared()["producers"][i], **({"rate": f"{pp.rate:g}/s"} if pp.rate != p.rate else {}),
             **({"instances": pp.instances} if pp.instances != p.instances else {})}
            for i, (p, pp) in enumerate(zip(sc.producers, producers))]})
    return sc, notes


def _producer_config(p) -> dict[str, str]:
    """The scenario's producer settings as KafkaProducer configs (VerifiableProducer --producer.config)."""
    conf = {"acks": "all" if p.acks == -1 else str(p.acks), "linger.ms": p.linger_ms, "batch.size": int(p.batch_size),
            "enable.idempotence": p.enable_idempotence, "max.in.flight.requests.per.connection": p.max_in_flight,
            "retries": p.retries, "retry.backoff.ms": p.retry_backoff_ms, "request.timeout.ms": p.request_timeout_ms,
            "delivery.timeout.ms": p.delivery_timeout_ms, "reconnect.backoff.ms": p.reconnect_backoff_ms,
            "reconnect.backoff.max.ms": p.reconnect_backoff_max_ms}
    if p.retry_backoff_max_ms is not None:
        conf["retry.backoff.max.ms"] = p.retry_backoff_max_ms
    if p.partitioner == "round-robin":
        conf["partitioner.class"] = "org.apache.kafka.clients.producer.RoundRobinPartitioner"
    out = {}
    for k, v in conf.items():
        if v is None:
            continue
        if isinstance(v, bool):
            v = "true" if v else "false"
        elif isinstance(v, float) and v.is_integer():
            v = int(v)
        out[k] = str(v)
    return out


class _Target:
    """The fault driver's view of the real cluster (sim.real.faults.Target)."""

    def __init__(self, cluster: RealCluster, poller: Poller, firewall: Firewall | None = None):
        self.cluster, self.poller, self.firewall = cluster, poller, firewall

    def cut(self, key, b: int, between: list[str], direction: str) -> None:
        self.firewall.cut(key, b, peers_of(b, between, self.cluster.n), direction)

    def heal(self, key) -> None:
        self.firewall.heal(key)

    def signal_broker(self, b: int, sig: int) -> None:
        p = self.cluster.brokers[b]
        if p is not None:
            p.signal(sig)

    def signal_controller(self, sig: int) -> None:
        if self.cluster.controller is not None:
            self.cluster.controller.signal(sig)

    def restart(self, b: int) -> None:
        self.cluster.restart_broker(b)

    def wait_exit(self, b: int, timeout: float) -> bool:
        p = self.cluster.brokers[b]
        return p is None or p.wait(timeout)

    def _state(self, partition: str) -> dict:
        return self.poller.current(partition) or {"leader": -1, "isr": [], "replicas": []}

    def leader(self, partition: str) -> int:
        return int(self._state(partition)["leader"])

    def isr(self, partition: str) -> list[int]:
        return list(self._state(partition)["isr"])

    def replicas(self, partition: str) -> list[int]:
        return list(self._state(partition)["replicas"])


class RealRun:
    """What one real run produced (the same tables as a simulator run) and where its logs are."""

    def __init__(self, scenario: Scenario, summary: RunSummary, batches, events, ts, work: Path | None):
        self.scenario, self.summary, self.batches, self.events, self.timeseries = scenario, summary, batches, events, ts
        self.work = work

    def write(self, out: Path) -> Path:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)

        def files(d: Path) -> None:
            d.mkdir()
            (d / "scenario.yaml").write_text(self.scenario.to_yaml())
            self.batches.to_parquet(d / "batches.parquet", index=False)
            self.events.to_parquet(d / "events.parquet", index=False)
            self.timeseries.to_parquet(d / "timeseries.parquet", index=False)
            (d / "summary.json").write_text(self.summary.to_json())

        write_atomic(out, files)
        return out


def run_real(scenario: Scenario, repetition: int = 0, progress: ProgressFn = lambda s: None,
             keep_work: bool = False, after_start: Callable[[Processes], None] | None = None) -> RealRun:
    """Run `scenario` (already made real-friendly by :func:`real_scenario`) once on a real cluster.

    `after_start(procs)` is a hook for tests (it runs once the cluster is up, e.g. to raise). The
    JVMs' data and logs are in a temporary directory, removed at the end unless `keep_work` or the
    run failed (the error names it).
    """
    sc = scenario
    why = unsupported(sc)
    if why:
        raise RealUnsupported(why)
    ensure_kafka(progress)
    work = Path(tempfile.mkdtemp(prefix=f"kafkasim-real-{sc.name}-"))
    procs = Processes()
    driver: FaultDriver | None = None
    firewall: Firewall | None = None
    ok = False
    wall0 = time.perf_counter()
    try:
        with guard():
            cluster = RealCluster(sc, work, procs, progress)
            if any(f.kind == "partition" for f in sc.faults):
                # connection marks must be in place before any process connects
                firewall = Firewall([*range(sc.cluster.brokers), CONTROLLER_NODE, CLIENTS], cluster.address)
            progress(f"starting 1 KRaft controller and {sc.cluster.brokers} brokers (Kafka {KAFKA_VERSION}) in {work}")
            cluster.start()
            if after_start is not None:
                after_start(procs)
            progress("creating topics, waiting for full ISRs")
            cluster.create_topics()
            poller = Poller(cluster, POLL_INTERVAL_MS)
            names = sc.partition_names()
            if not poller.wait_all(names, 60):
                raise RuntimeError(f"the metadata poller saw no state for every partition (see {work}/clients)")
            consumers, consumer_names = [], [name for _, _, name in sc.consumer_instances()]
            for ci, c in enumerate(sc.consumers):
                for i in range(c.instances):
                    out = work / "clients" / f"consumer-{ci}-{i}.jsonl"
                    args = ["--bootstrap-server", cluster.bootstrap, "--topic", c.topic, "--group-id", c.group,
                            "--verbose", "--reset-policy", c.auto_offset_reset, "--session-timeout",
                            str(int(c.session_timeout_ms))]
                    if c.enable_auto_commit:
                        args.append("--enable-autocommit")
                    consumers.append((cluster.client(f"consumer-{ci}-{i}", VERIFIABLE_CONSUMER, *args, out=out), out))
            if consumers:
                progress(f"starting {len(consumers)} VerifiableConsumer(s)")
                wait_for(lambda: all(any(d.get("name") == "partitions_assigned" and d.get("partitions")
                                         for d in read_json_lines(o)) for _, o in consumers), 60, 0.5)
            producers = []
            producer_names = [name for _, name in sc.producer_instances()]
            k = 0
            for p in sc.producers:
                for i in range(p.instances):
                    conf = work / "clients" / f"producer-{k}.properties"
                    conf.write_text("".join(f"{a}={b}\n" for a, b in _producer_config(p).items()))
                    out = work / "clients" / f"producer-{k}.jsonl"
                    n = int(round(p.rate * ((sc.duration - p.start) / 1000.0 + WARMUP_S)))
                    args = ["--bootstrap-server", cluster.bootstrap, "--topic", p.topic, "--max-messages", str(n),
                            "--throughput", str(int(p.rate)), "--acks", str(p.acks), "--producer.config", str(conf),
                            "--value-prefix", str(k)]
                    if p.keys is not None:
                        args += ["--repeating-keys", str(int(min(p.keys, 2**31 - 1)))]
                    name = producer_names[k]
                    producers.append((cluster.client(name, VERIFIABLE_PRODUCER, *args, out=out), out, k, name, p))
                    k += 1
            progress(f"producing for {sc.duration / 1000:.0f} s with {len(producers)} VerifiableProducer(s)")

            def started(out):
                return next((float(d["timestamp"]) for d in read_json_lines(out) if d.get("name") == "startup_complete"),
                            None)
            if not wait_for(lambda: all(started(o) is not None for _, o, *_ in producers), 90, 0.1):
                raise RuntimeError(f"a VerifiableProducer did not start (see {work}/clients)")
            t0 = min(started(o) for _, o, *_ in producers) + WARMUP_S * 1000.0
            clock = lambda: time.time() * 1000.0 - t0  # noqa: E731
            driver = FaultDriver(sc, _Target(cluster, poller, firewall), clock)
            progress("warming up the producers" if clock() < 0 else "producing")
            while clock() < sc.duration:
                driver.tick()
                nxt = driver.next_due()
                wait = min(sc.duration, nxt if nxt is not None else sc.duration) - clock()
                time.sleep(max(0.005, min(wait / 1000.0, 0.2)))
            driver.heal_all()
            progress("faults healed; settling")
            settle_end = time.monotonic() + min(sc.settle / 1000.0, MAX_SETTLE_S)
            for proc, *_ in producers:
                proc.wait(max(0.0, settle_end - time.monotonic()))

            def full() -> bool:
                for t in sc.topics:
                    for pp in range(t.partitions):
                        s = poller.current(f"{t.name}-{pp}")
                        if not s or s["leader"] < 0 or len(s["isr"]) < t.replication_factor:
                            return False
                return True
            wait_for(full, max(5.0, settle_end - time.monotonic()), 0.2)
            for proc, *_ in producers:
                if proc.running():
                    proc.signal(signal.SIGTERM)
            for proc, *_ in producers:
                if not proc.wait(15):
                    proc.kill()
            for proc, _ in consumers:
                proc.signal(signal.SIGTERM)
            for proc, _ in consumers:
                if not proc.wait(15):
                    proc.kill()
            progress("reading every partition from the beginning")
            dump_proc = cluster.admin("dump", "dump", cluster.bootstrap, "60000", *[t.name for t in sc.topics],
                                      log=work / "clients" / "dump.log")
            dump_lines = []
            for raw in dump_proc.popen.stdout:
                line = raw.decode("utf-8", "replace").strip()
                if line.startswith("{"):
                    dump_lines.append(json.loads(line))
            dump_proc.wait(30)
            if not any(d.get("name") == "dump_complete" for d in dump_lines):
                raise RuntimeError(f"the final read of the logs did not complete (see {work}/clients/dump.log)")
            poller.stop()
            log = work / "controller" / "server.log"
            facts = controller_log_events(log.read_text(errors="replace")) if log.exists() else []
            (work / "clients" / "controller-events.jsonl").write_text("".join(json.dumps(d) + "\n" for d in facts))
            (work / "clients" / "dump.jsonl").write_text("".join(json.dumps(d) + "\n" for d in dump_lines))
            (work / "run.json").write_text(json.dumps({
                "t0": t0, "names": names, "consumers": consumer_names,
                "producers": [{"index": k, "name": name, "rate": p.rate, "skip": int(round(p.rate * WARMUP_S))}
                              for _, out, k, name, p in producers],
                "faults": [dataclasses.asdict(f) for f in driver.records]}, indent=1))
            wall = time.perf_counter() - wall0
            result = remeasure(sc, work, repetition, wall)
            ok = True
            return RealRun(sc, result[0], *result[1:], None if not keep_work else work)
    finally:
        try:
            if driver is not None:
                driver.heal_all("run ended")  # a stopped JVM would otherwise wait for its SIGCONT
        except Exception:
            pass
        procs.close()
        if firewall is not None:
            firewall.close()
        if ok and not keep_work:
            shutil.rmtree(work, ignore_errors=True)
        elif not ok:
            progress(f"the real run's logs are in {work}")


def remeasure(sc: Scenario, work: Path, repetition: int = 0, wall: float = 0.0):
    """Measure a real run from what it left in its work directory: run.json (time zero, the
    producers, the faults as they happened) and the clients' JSON lines (clients/*.jsonl). Tests
    measure recorded runs (tests/data/real/) through this."""
    meta = json.loads((work / "run.json").read_text())
    clients = work / "clients"
    plogs = [ProducerLog(p["index"], p["name"], p["rate"], read_json_lines(clients / f"producer-{p['index']}.jsonl"),
                         skip=p["skip"]) for p in meta["producers"]]
    clogs = [read_json_lines(f) for f in sorted(clients.glob("consumer-*.jsonl"))]
    faults = [FaultRecord(**f) for f in meta["faults"]]
    unclean_file = clients / "controller-events.jsonl"
    unclean = read_json_lines(unclean_file) if unclean_file.exists() else None
    return measure(sc, repetition, meta["names"], plogs, clogs, read_json_lines(clients / "poller.jsonl"),
                   read_json_lines(clients / "dump.jsonl"), faults, meta["t0"], wall, meta["consumers"], unclean)


def measure(sc: Scenario, repetition: int, names, plogs, clogs, poller_lines, dump_lines, faults, t0: float,
            wall: float, consumer_names=None, unclean=None):
    """The simulator's checker and metrics over a real run's facts (sim.runs.runner._measure's summary)."""
    starts = [p.startup_ms + p.skip * 1000.0 / p.throughput for p in plogs if p.startup_ms is not None]
    if starts and min(starts) < t0:
        # time zero is the first counted record's arrival, as estimated from the acknowledgements
        # (ProducerLog.startup_ms): a few ms before the runtime's estimate; the faults move with it
        shift = t0 - min(starts)
        t0 = min(starts)
        faults = [dataclasses.replace(f, start_ms=f.start_ms + shift,
                                      end_ms=None if f.end_ms is None else f.end_ms + shift) for f in faults]
    rec = build_recorder(names, plogs, clogs, poller_lines, dump_lines, faults, t0, consumer_names, unclean)
    batches = batches_table(rec)
    events = events_table(rec)
    counts = check(rec, batches)
    replication = {i: t.replication_factor for i, t in enumerate(t for t in sc.topics for _ in range(t.partitions))}
    acks_zero = bool(sc.producers) and all(p.acks == 0 for p in sc.producers)
    fo = failovers(rec, events, batches, acks_zero)
    min_isr = dict(enumerate(t.min_insync_replicas or sc.cluster.min_insync_replicas
                             for t in sc.topics for _ in range(t.partitions)))
    ts = timeseries(batches, events, replication, sc.duration + sc.settle, min_isr)
    elect = [f["election_ms"] for f in fo if f["election_ms"] is not None]
    unavail = [f["unavailable_ms"] for f in fo if f["unavailable_ms"] is not None]
    isr = events[events["kind"] == "isr_change"].sort_values(["partition_index", "time_ms"], kind="stable")
    prev = isr.groupby("partition_index", sort=False)["value"].shift(1)
    offline_end = 0
    lead = events[events["kind"].isin(["leader_elected", "partition_offline"])].sort_values("time_ms", kind="stable")
    if len(lead):
        offline_end = int((lead.groupby("partition_index")["kind"].last() == "partition_offline").sum())
    summary = RunSummary(
        scenario=sc.name, seed=repetition, overrides={}, version=__version__,
        sim_duration_ms=float(sc.duration + sc.settle), produce_duration_ms=float(sc.duration),
        wall_time_s=round(wall, 2), sim_events=0, messages_sent={}, messages_dropped={},
        **counts,
        batches=int(len(batches)),
        throughput_rps=counts["records_acked"] / (sc.duration / 1000.0),
        produce_latency_ms=produce_latency(batches), e2e_latency_ms=e2e_latency(batches),
        failovers=fo,
        failover_ms={"p50": float(np.median(elect)) if elect else None, "max": max(elect) if elect else None},
        unavailable_ms={"p50": float(np.median(unavail)) if unavail else None, "max": max(unavail) if unavail else None},
        unclean_elections=int((events["kind"] == "unclean_election").sum()),
        leader_elections=int(((events["kind"] == "leader_elected") & (events["time_ms"] > 0)).sum()),
        isr_shrinks=int((prev.notna() & (isr["value"] < prev)).sum()),
        isr_expands=int((prev.notna() & (isr["value"] > prev)).sum()),
        truncations=0,
        offline_partitions_at_end=offline_end,
        under_replicated_partitions_at_end=under_replicated_at_end(events, replication),
        warnings=[],  # invariants: not checked (they read replica-internal facts a real run cannot see)
        extra={"source": "real", "kafka_version": KAFKA_VERSION, "host": socket.gethostname(),
               "platform": platform.platform(), "repetition": repetition,
               "metadata_poll_ms": POLL_INTERVAL_MS,
               "elections_from": "controller log" if any(d.get("name") == "partition_created" for d in unclean or ())
               else f"metadata poller ({POLL_INTERVAL_MS} ms)",
               "faults_real": [{"index": f.index, "kind": f.kind, "broker": f.broker, "start_ms": round(f.start_ms, 1),
                                "end_ms": None if f.end_ms is None else round(f.end_ms, 1), "skipped": f.skipped}
                               for f in faults]},
    )
    return summary, batches, events, ts
