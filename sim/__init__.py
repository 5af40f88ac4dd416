"""kafkasim: a discrete-event simulator of Apache Kafka clusters for fault and durability studies.

Notebook API::

    import sim
    scenario = sim.load_scenario("scenarios/leader-crash-acks1.yaml", overrides={"producers.0.acks": "all"})
    results = sim.run(scenario, seed=1)
    results.summary["acked_lost"], results.batches, results.events, results.timeseries
    results.write("results/quickstart/seed-1")
    frame = sim.sweep("scenarios/sweeps/acks-rf.yaml")  # one row per run, every core
    report = sim.explore("scenarios/quickstart.yaml", budget=100)  # search fault schedules for data loss

Layers (docs/architecture.md): `sim.scenario` (what the user declares) <- `sim.model` (the
simulated cluster) <- `sim.measure` (metrics and checks from the model's facts) <- `sim.runs`
(runs, sweeps, the results contract) <- `sim.cli`. The API names below load on first use, so a
reader of results (`analysis`, which imports `sim.runs.contract`) never loads the model.
"""

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("kafkasim")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.1.0"

_API = {
    "run": "sim.runs.runner", "Results": "sim.runs.results", "read_results": "sim.runs.results",
    "load_scenario": "sim.scenario.schema", "Scenario": "sim.scenario.schema", "ScenarioError": "sim.scenario.schema",
    "sweep": "sim.runs.sweep", "load_sweep": "sim.runs.sweep", "SweepError": "sim.runs.sweep",
    "ExploreReport": "sim.runs.explore",
}

__all__ = [*_API, "explore", "__version__"]


def explore(scenario, **kwargs):
    """Search fault schedules over `scenario` for a property violation, shrink and replay the first found.

    `sim.runs.explore.explore` (its docstring lists the arguments), which with `out` also writes the
    counterexample's failover timeline (analysis.plots.failover_timeline) as timeline.png.
    """
    kwargs.setdefault("figure", _timeline)
    return import_module("sim.runs.explore").explore(scenario, **kwargs)  # loaded on first use, as the API names


def _timeline(run_dir, path, note: str) -> None:
    """The counterexample's failover timeline (analysis draws it; the sim.runs layer cannot import analysis),
    zoomed onto its faults and what followed them (elections, ISR changes, truncations) when they are short."""
    run = import_module("sim.runs.contract").read_run(run_dir)
    ev = run.events
    faults = ev[ev["kind"].isin(["fault_start", "fault_end"])]
    window = None
    if len(faults):
        first = float(faults["time_ms"].min())
        after = ev[(ev["time_ms"] >= first) & ev["kind"].isin(
            ["fault_end", "leader_elected", "unclean_election", "isr_change", "truncation", "log_lost_tail"])]
        last = float(after["time_ms"].max())
        lo, hi = max(0.0, first / 1000.0 - 2.0), min(run.end_ms, last + 3000.0) / 1000.0
        if hi - lo < 0.7 * run.end_ms / 1000.0:
            window = (lo, hi)
    import_module("analysis.plots").failover_timeline(run, path, note=note, window=window)


def __getattr__(name: str):
    """The API's names, imported from their modules on first use (PEP 562)."""
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'sim' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_API))
