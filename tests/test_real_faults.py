"""The real-cluster fault driver on a recording stand-in for the cluster, what is refused, and process cleanup.

No Java needed: the driver's signals go to a fake target; the process registry is checked on
`sleep` processes.
"""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from sim.real.faults import CONTROLLER, FaultDriver, unsupported
from sim.real.processes import Processes, alive, wait_for
from sim.real.run import MAX_RATE, RealUnsupported, real_scenario
from sim.scenario.schema import Scenario


def scenario(faults, **over) -> Scenario:
    data = {"name": "t", "duration": "30s", "cluster": {"brokers": 3, "kafka.version": "4.0"},
            "topics": [{"name": "events", "partitions": 2, "replication.factor": 3}],
            "producers": [{"topic": "events", "rate": "1000/s", "acks": 1}], "faults": faults}
    data.update(over)
    return Scenario.resolve(data)


class FakeCluster:
    """Records every action with the clock's time; leaders/ISRs as a poller would report them."""

    def __init__(self, clock):
        self.clock, self.actions = clock, []
        self.state = {"events-0": {"leader": 1, "isr": [1, 2, 0], "replicas": [1, 2, 0]},
                      "events-1": {"leader": 2, "isr": [2, 0, 1], "replicas": [2, 0, 1]}}

    def signal_broker(self, b, sig):
        self.actions.append((self.clock(), "signal", b, signal.Signals(sig).name))

    def signal_controller(self, sig):
        self.actions.append((self.clock(), "signal", "controller", signal.Signals(sig).name))

    def restart(self, b):
        self.actions.append((self.clock(), "restart", b, ""))

    def wait_exit(self, b, timeout):
        self.actions.append((self.clock(), "wait_exit", b, ""))
        return True

    def cut(self, key, b, between, direction):
        self.actions.append((self.clock(), "cut", b, f"{','.join(between)} {direction}"))

    def heal(self, key):
        self.actions.append((self.clock(), "heal", key[1], ""))

    def leader(self, p):
        return self.state[p]["leader"]

    def isr(self, p):
        return self.state[p]["isr"]

    def replicas(self, p):
        return self.state[p]["replicas"]


def drive(sc: Scenario, until: float, step: float = 100.0):
    now = [0.0]
    cluster = FakeCluster(lambda: now[0])
    driver = FaultDriver(sc, cluster, lambda: now[0])
    while now[0] < until:
        driver.tick()
        now[0] += step
    driver.heal_all()
    return cluster.actions, driver.records


def test_crash_is_sigkill_then_restart_and_its_times_are_recorded():
    actions, records = drive(scenario([{"kind": "crash", "leader_of": "events-0", "at": "10s",
                                        "restart_after": "15s"}]), 30_000)
    assert actions == [(10_000.0, "signal", 1, "SIGKILL"), (25_000.0, "restart", 1, "")]
    (r,) = records
    assert (r.kind, r.broker, r.start_ms, r.end_ms, r.reason) == ("crash", 1, 10_000.0, 25_000.0, "scheduled")


def test_a_crash_without_restart_after_heals_at_duration():
    actions, records = drive(scenario([{"kind": "crash", "broker": 2, "at": "5s"}]), 30_000)
    assert actions[0] == (5_000.0, "signal", 2, "SIGKILL")
    assert actions[1] == (30_000.0, "restart", 2, "") and records[0].reason == "healed at duration"


def test_pause_is_sigstop_sigcont_and_controlled_shutdown_is_sigterm_then_restart():
    actions, _ = drive(scenario([
        {"kind": "pause", "leader_of": "events-1", "at": "2s", "duration": "5s"},
        {"kind": "controlled_shutdown", "broker": 0, "at": "10s", "restart_after": "4s"},
        {"kind": "pause", "controller": True, "at": "20s", "duration": "1s"}]), 30_000)
    assert actions == [(2_000.0, "signal", 2, "SIGSTOP"), (7_000.0, "signal", 2, "SIGCONT"),
                       (10_000.0, "signal", 0, "SIGTERM"), (14_000.0, "wait_exit", 0, ""), (14_000.0, "restart", 0, ""),
                       (20_000.0, "signal", "controller", "SIGSTOP"), (21_000.0, "signal", "controller", "SIGCONT")]


def test_a_partition_is_cut_then_healed():
    actions, records = drive(scenario([{"kind": "partition", "leader_of": "events-0", "between": ["peers", "controller"],
                                        "direction": "outbound", "at": "10s", "heal": "15s"}]), 30_000)
    assert actions == [(10_000.0, "cut", 1, "peers,controller outbound"), (25_000.0, "heal", 1, "")]
    assert (records[0].kind, records[0].start_ms, records[0].end_ms) == ("partition", 10_000.0, 25_000.0)


def test_follower_of_skips_brokers_already_down_and_a_dead_target_is_skipped():
    """follower_of: the first live ISR follower in replica order (as the simulator resolves it)."""
    actions, records = drive(scenario([
        {"kind": "crash", "follower_of": "events-0", "at": "1s", "restart_after": "20s"},
        {"kind": "crash", "follower_of": "events-0", "at": "2s", "restart_after": "20s"},
        {"kind": "crash", "broker": 2, "at": "3s"}]), 30_000)
    kills = [a for a in actions if a[3] == "SIGKILL"]
    assert kills == [(1_000.0, "signal", 2, "SIGKILL"), (2_000.0, "signal", 0, "SIGKILL")]
    skipped = [r for r in records if r.skipped]
    assert len(skipped) == 1 and skipped[0].index == 2 and skipped[0].reason == "no live broker"


@pytest.mark.parametrize("fault,field", [
    ({"kind": "power_loss", "broker": 0, "at": "1s"}, "faults.0.kind: power_loss"),
    ({"kind": "disk_loss", "broker": 0, "at": "1s"}, "faults.0.kind: disk_loss"),
    ({"kind": "slow_disk", "broker": 0, "at": "1s", "duration": "1s", "latency": "10ms"}, "faults.0.kind: slow_disk"),
])
def test_kinds_that_cannot_be_real_are_refused_in_one_line(fault, field):
    try:
        sc = scenario([fault])
    except Exception:  # a spec this test writes wrongly must not pass silently
        pytest.fail(f"bad test scenario {fault}")
    why = unsupported(sc)
    assert why is not None and why.startswith(field) and "\n" not in why
    with pytest.raises(RealUnsupported):
        real_scenario(sc)


def test_another_kafka_version_is_refused():
    sc = scenario([], cluster={"brokers": 3, "kafka.version": "3.9"})
    assert unsupported(sc).startswith("cluster.kafka.version")


def test_rates_are_scaled_down_with_a_note():
    sc = scenario([], producers=[{"topic": "events", "rate": "20000/s", "instances": 10, "acks": 1}])
    real, notes = real_scenario(sc)
    assert real.producers[0].rate == MAX_RATE and real.producers[0].instances == 2
    assert any("rate" in n for n in notes) and any("instances" in n for n in notes)


def _sleeper(ps: Processes, tmp_path, name: str):
    return ps.start(name, [sys.executable, "-c", "import time; time.sleep(600)"], tmp_path / f"{name}.log")


def test_close_kills_and_reaps_every_process_even_stopped_ones(tmp_path):
    ps = Processes()
    a, b = _sleeper(ps, tmp_path, "a"), _sleeper(ps, tmp_path, "b")
    b.signal(signal.SIGSTOP)
    assert alive(a.pid) and alive(b.pid)
    ps.close()
    assert not alive(a.pid) and not alive(b.pid)


def test_an_exception_midway_leaves_nothing_running(tmp_path):
    ps = Processes()
    with pytest.raises(RuntimeError):
        try:
            _sleeper(ps, tmp_path, "a")
            raise RuntimeError("boom")
        finally:
            ps.close()
    assert ps.pids and not any(alive(p) for p in ps.pids)


def test_sigterm_to_the_harness_kills_its_children(tmp_path):
    """A harness process that gets SIGTERM (guard()) runs its finally and leaves no child behind."""
    code = (
        "import sys, time, pathlib\n"
        "from sim.real.processes import Processes, guard\n"
        "ps = Processes()\n"
        "with guard():\n"
        "    try:\n"
        f"        p = ps.start('s', [sys.executable, '-c', 'import time; time.sleep(600)'], pathlib.Path({str(tmp_path)!r}) / 's.log')\n"
        "        print(p.pid, flush=True)\n"
        "        time.sleep(600)\n"
        "    finally:\n"
        "        ps.close()\n")
    harness = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    child = int(harness.stdout.readline())
    assert alive(child)
    harness.send_signal(signal.SIGTERM)
    harness.wait(30)
    assert wait_for(lambda: not alive(child), 30)


def _firewall_or_skip():
    from sim.real.netfaults import available

    why = available()
    if why:
        pytest.skip(why)


def test_firewall_rules_cut_one_way_by_process_group_and_are_all_removed(tmp_path):
    """A real connection: broker 1's group cannot send to broker 0's listener after an outbound cut;
    broker 2 still can; after close() no rule of the run is left."""
    import os
    import socket

    from sim.real.netfaults import Firewall, node_gid, peers_of

    _firewall_or_skip()
    srv = socket.socket()
    srv.bind(("127.0.0.10", 0))
    srv.listen()
    port = srv.getsockname()[1]
    fw = Firewall([0, 1, 2, "controller", "clients"], lambda n: {0: "127.0.0.10", 1: "127.0.0.11",
                                                                   2: "127.0.0.12"}.get(n))
    try:
        fw.cut("k", 1, peers_of(1, ["peers"], 3), "outbound")
        probe = (f"import socket\nc=socket.socket();c.settimeout(1.5)\ntry:\n c.connect(('127.0.0.10',{port}))"
                 f";print('through')\nexcept OSError:\n print('dropped')\n")
        out = {b: subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, group=node_gid(b),
                                 extra_groups=[], timeout=30).stdout.strip() for b in (1, 2)}
        assert out == {1: "dropped", 2: "through"}
        rules = subprocess.run(["iptables", "-S"], capture_output=True, text=True).stdout
        assert f"KSIM{os.getpid()}" in rules
    finally:
        fw.close()
        srv.close()
    for table in ([], ["-t", "mangle"]):
        rules = subprocess.run(["iptables", *table, "-S"], capture_output=True, text=True).stdout
        assert f"KSIM{os.getpid()}" not in rules
