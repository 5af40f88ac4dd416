"""Tables and figures from kafkasim results: run and sweep directories in, DataFrames and plots out.

Analysis reads the results contract only (``scenario.yaml``, ``summary.json`` and the parquet
tables of a run; ``sweep.yaml`` and ``sweep.parquet`` of a sweep) and never imports the
simulator. Rendering is headless (matplotlib's Agg canvas, no pyplot)::

    import analysis
    sweep = analysis.load_sweep("results/sweeps/durability")
    analysis.loss_table(sweep)                       # mean loss rates over seeds with CIs
    fig = analysis.loss_map(sweep, "plots/loss-map")  # -> loss-map.png and loss-map.svg
    run = analysis.load_run("results/quickstart/seed-1")
    analysis.level_summary(run), analysis.latency_percentiles(run.batches)
    analysis.failover_timeline(run)
    analysis.write_report("results/quickstart/seed-1")  # -> report.html
"""

import importlib

# `load` is both a submodule and its main function: import it eagerly so the name is the function.
from analysis.load import ResultsError, Run, Sweep, load, load_run, load_sweep  # noqa: E402
# so is `compare`: eager too (it costs numpy and pandas only; matplotlib is imported when it draws).
from analysis.compare import compare, compare_latency, compare_name  # noqa: E402

# Names are loaded on first use (PEP 562), so `from sim.measure.stats import ...` (as sim.measure.metrics
# and sim.runs.sweep do) costs numpy only, not matplotlib and SciPy.
_SOURCES = {
    "metrics": ("down_intervals", "failover_table", "fault_intervals", "isr_intervals", "latency_percentiles", "leadership_intervals",
                "level_metrics", "level_summary", "loss_tally", "produce_latencies", "sent_per_second"),
    "plots": ("NothingToPlot", "failover_distribution", "failover_timeline", "latency_plot", "loss_map",
              "save_figure", "throughput_cost"),
    "report": ("figure_specs", "group_table", "write_plots", "write_report"),
    "sim.measure.stats": ("mean_ci", "weighted_ecdf", "weighted_percentiles"),
    "tables": ("aggregate", "failover_samples", "latency_ecdfs", "latency_table", "loss_table", "runs_table",
               "throughput_table"),
}
_WHERE = {name: module for module, names in _SOURCES.items() for name in names}


def __getattr__(name: str):
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'analysis' has no attribute {name!r}")
    value = getattr(importlib.import_module(module if "." in module else f"analysis.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_WHERE))


__all__ = [
    # loading
    "load", "load_run", "load_sweep", "Run", "Sweep", "ResultsError",
    # level metrics (time-weighted)
    "leadership_intervals", "isr_intervals", "fault_intervals", "down_intervals", "level_metrics", "level_summary",
    # tally metrics (per record / per failover)
    "produce_latencies", "latency_percentiles", "sent_per_second", "loss_tally", "failover_table",
    # across runs
    "runs_table", "aggregate", "group_table", "loss_table", "throughput_table", "latency_table", "latency_ecdfs", "failover_samples",
    "mean_ci", "weighted_percentiles", "weighted_ecdf",
    # two runs side by side
    "compare", "compare_latency", "compare_name",
    # figures and files
    "loss_map", "failover_timeline", "failover_distribution", "latency_plot", "throughput_cost", "save_figure",
    "NothingToPlot", "figure_specs", "write_plots", "write_report",
]
