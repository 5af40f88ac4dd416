"""Tables and figures from kafkasim results: run and sweep directories in, DataFrames and plots out.

Analysis reads the results contract only (``scenario.yaml``, ``summary.json`` and the parquet
tables of a run; ``sweep.yaml`` and ``sweep.parquet`` of a sweep), through `sim.runs.contract`,
and never imports the model, the runner or the sweep. Rendering is headless (matplotlib's Agg canvas, no pyplot)::

    import analysis
    sweep = analysis.load_sweep_results("results/sweeps/durability")
    analysis.loss_table(sweep)                       # mean loss rates over seeds with CIs
    fig = analysis.loss_map(sweep, "plots/loss-map")  # -> loss-map.png and loss-map.svg
    run = analysis.load_run("results/quickstart/seed-1")
    analysis.level_summary(run), analysis.latency_percentiles(run.batches)
    analysis.failover_timeline(run)
    analysis.write_report("results/quickstart/seed-1")  # -> report.html
"""

import importlib
import warnings

# `load` and `compare` are both submodules and functions: imported eagerly, so the names are the functions.
from analysis.load import ResultsError, Run, SweepResults, load, load_run, load_sweep_results
from analysis.compare import compare, compare_json, compare_latency, compare_name
from analysis.metrics import (down_intervals, failover_table, fault_intervals, isr_intervals, latency_percentiles,
                              leadership_intervals, level_metrics, level_summary, loss_tally, produce_latencies,
                              sent_per_second)
from analysis.tables import (aggregate, failover_samples, latency_ecdfs, latency_table, loss_table, runs_table,
                             throughput_table)
from sim.measure.stats import mean_ci, weighted_ecdf, weighted_percentiles

# Figures and the report load on first use (PEP 562): they import matplotlib, which takes about a
# second, so `import analysis` for tables and metrics (and `kafkasim compare` without a figure) stays quick.
_LAZY = {
    "plots": ("NothingToPlot", "counterexample_timeline", "failover_distribution", "failover_timeline",
              "latency_plot", "loss_map", "save_figure", "throughput_cost"),
    "report": ("figure_specs", "group_table", "write_plots", "write_report"),
}
_WHERE = {name: module for module, names in _LAZY.items() for name in names}
_DEPRECATED = {"Sweep": "SweepResults", "load_sweep": "load_sweep_results"}
"""Old names, renamed so they are not mistaken for `sim.load_sweep` (a sweep file) and `sim.runs.sweep.Sweep`."""


def __getattr__(name: str):
    if name in _DEPRECATED:
        new = _DEPRECATED[name]
        warnings.warn(f"analysis.{name} is renamed analysis.{new}", DeprecationWarning, stacklevel=2)
        return globals()[new]
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'analysis' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"analysis.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_WHERE))


__all__ = [
    # loading
    "load", "load_run", "load_sweep_results", "Run", "SweepResults", "ResultsError",
    # level metrics (time-weighted)
    "leadership_intervals", "isr_intervals", "fault_intervals", "down_intervals", "level_metrics", "level_summary",
    # tally metrics (per record / per failover)
    "produce_latencies", "latency_percentiles", "sent_per_second", "loss_tally", "failover_table",
    # across runs
    "runs_table", "aggregate", "group_table", "loss_table", "throughput_table", "latency_table", "latency_ecdfs", "failover_samples",
    "mean_ci", "weighted_percentiles", "weighted_ecdf",
    # two runs side by side
    "compare", "compare_json", "compare_latency", "compare_name",
    # figures and files
    "loss_map", "failover_timeline", "counterexample_timeline", "failover_distribution", "latency_plot",
    "throughput_cost", "save_figure",
    "NothingToPlot", "figure_specs", "write_plots", "write_report",
]
