"""kafkasim: a discrete-event simulator of Apache Kafka clusters for fault and durability studies.

Notebook API::

    import sim
    scenario = sim.load_scenario("scenarios/leader-crash-acks1.yaml", overrides={"producers.0.acks": "all"})
    results = sim.run(scenario, seed=1)
    results.summary["acked_lost"], results.batches, results.events, results.timeseries
    results.write("results/quickstart/seed-1")
    frame = sim.sweep("scenarios/sweeps/acks-rf.yaml")  # one row per run, every core
    report = sim.explore("scenarios/quickstart.yaml", budget=100)  # search fault schedules for data loss
    import analysis  # figures: sim never imports analysis, so the explore timeline is passed in
    report = sim.explore("scenarios/quickstart.yaml", budget=100, out="results/explore/q",
                         figure=analysis.counterexample_timeline)  # also its failover timeline, timeline.png

Layers (docs/architecture.md): `sim.scenario` (what the user declares) <- `sim.model` (the
simulated cluster) <- `sim.measure` (metrics and checks from the model's facts) <- `sim.runs`
(runs, sweeps, the results contract) <- `sim.cli`. The API names below load on first use, so a
reader of results (`analysis`, which imports `sim.runs.contract`) never loads the model. Nothing here
imports `analysis` (it sits above `sim.runs`): figures are passed in, as `sim.explore`'s `figure`.
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
    "explore": "sim.runs.explore", "ExploreReport": "sim.runs.explore",
}

__all__ = [*_API, "__version__"]


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
