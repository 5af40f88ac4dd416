"""kafkasim: a discrete-event simulator of Apache Kafka clusters for fault and durability studies.

Notebook API::

    import sim
    scenario = sim.load_scenario("scenarios/leader-crash-acks1.yaml", overrides={"producers.0.acks": "all"})
    results = sim.run(scenario, seed=1)
    results.summary["acked_lost"], results.batches, results.events, results.timeseries
    results.write("results/quickstart/seed-1")
    frame = sim.sweep("scenarios/sweeps/acks-rf.yaml")  # one row per run, every core
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("kafkasim")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.1.0"

from .results import Results, read_results  # noqa: E402
from .runner import run  # noqa: E402
from .scenario import Scenario, ScenarioError, load_scenario  # noqa: E402
from .sweep import SweepError, load_sweep, sweep  # noqa: E402  (shadows the sim.sweep module attribute)

__all__ = ["run", "load_scenario", "Scenario", "ScenarioError", "Results", "read_results", "sweep", "load_sweep",
           "SweepError", "__version__"]
