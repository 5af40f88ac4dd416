"""The figures: each function returns a matplotlib Figure and saves it when given a path.

Figures are built with the object-oriented API on an Agg canvas (no pyplot, no global figure
state, no display needed), so they render the same in tests, the CLI and notebooks.

Sweep figures list configurations as rows (a forest plot): one row per combination of every
parameter that varies (acks, replication factor, min.insync.replicas, fault kind, and any other
swept key), labelled in words ("acks=all, RF 3, min.insync 2"); only seeds, the replications,
are ever pooled. Points are means over seeds; whiskers the Student t 95% interval over seeds
cut at what the quantity can be (never below 0), marked with a "<" where it was cut; every
figure says n. Colours are the Okabe-Ito palette, safe for colour-blind readers.

- `loss_map`: message-loss and acknowledged-loss rate per configuration on a log scale, with
  "0 of N" written where nothing was lost;
- `throughput_cost`: offered, committed and acknowledged records per second, and the latency
  each configuration pays;
- `latency_plot`: record-weighted produce latency ECDF, one panel per acks mode and one line
  per configuration, and p50 / p99 / p99.9 per configuration;
- `failover_distribution`: ECDF of failover times (fault to election, fault to first
  acknowledged write) across runs and partitions, one line per configuration;
- `failover_timeline`: one run over time: offered, sent, acknowledged and failed records per
  second, lost records by arrival second, p50/p99 produce latency, under-replicated/offline
  partitions, broker downtime shaded, and one Gantt lane per partition showing its leader,
  ISR size, leader-down and offline periods.

Every plotted number comes from a table function in `analysis.tables` / `analysis.metrics`,
so a figure can be checked against its table.

The modules: `style` (the public style kit: palette, figure creation and saving, number formatters,
shared with `analysis.compare`), `forest` (configuration rows), `sweep` (`loss_map`,
`throughput_cost`), `distributions` (`latency_plot`, `failover_distribution`, for a run or a sweep)
and `timeline` (`failover_timeline`, one function per panel, and `counterexample_timeline`).
"""

from analysis.plots.distributions import failover_distribution, latency_plot
from analysis.plots.style import ACKS_COLORS, BROKER_COLORS, DPI, OKABE_ITO, PALETTE, NothingToPlot, save_figure
from analysis.plots.sweep import loss_map, throughput_cost
from analysis.plots.timeline import counterexample_timeline, failover_timeline

__all__ = [
    "NothingToPlot", "save_figure", "loss_map", "failover_timeline", "failover_distribution", "latency_plot",
    "throughput_cost", "counterexample_timeline", "ACKS_COLORS", "BROKER_COLORS", "PALETTE", "OKABE_ITO", "DPI",
]
