"""`kafkasim sweep`: run a sweep file on every core (or a Dask cluster), then print mean ± 95% CI.

A thin shell over :func:`sim.runs.sweep.run_sweep`: bad sweep files, keys, values and flags end in
one-line `error: ...` messages with exit code 2 before anything runs; warnings print once, before
anything runs; Ctrl-C exits 130 keeping every finished run (running the sweep again runs only the
rest; `--force` reruns everything); a sweep in which some runs failed exits 1 after writing
everything.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import pandas as pd
import typer

from sim.cli.errors import PlainTable, err_console, fail as _fail, interruption, out_console, warn as _warn
from rich.console import Console
from rich.measure import Measurement

from sim.runs.results import OutputError, check_output, output_lock
from sim.measure.batches import COMMITTED_RPS_LABEL, committed_rps
from sim.runs.sweep import AGGREGATE_METRICS, Sweep, SweepError, SweepInterrupted, aggregate, load_sweep, run_sweep

__all__ = ["sweep_cli", "aggregate_table", "aggregate_json", "with_committed_rps", "CONSOLE_METRICS"]

CONSOLE_METRICS = dict((("committed_rps", COMMITTED_RPS_LABEL) if k == "throughput_rps" else (k, v))
                       for k, v in AGGREGATE_METRICS.items())
"""The console table's (and --json's) metrics: the sweep's aggregate with the committed rate, not the
acknowledged one, as throughput (the report and figures use the same measure and name)."""

SweepArg = Annotated[Path, typer.Argument(help="Sweep YAML file (see scenarios/sweeps/).", show_default=False)]
WorkersOption = Annotated[Optional[int], typer.Option(
    "--workers", min=1, help="Runs in parallel (default: one per core; 1 runs in this process). "
                             "With --dask local: the number of Dask workers.")]
DaskOption = Annotated[Optional[str], typer.Option(
    "--dask", metavar="ADDRESS", help="Run on a Dask distributed scheduler (tcp://host:port), "
                                      "or 'local' to start a LocalCluster.")]
OutOption = Annotated[Optional[Path], typer.Option(
    "--out", help="Sweep directory (default: results/sweeps/<sweep name>/).")]
ResumeOption = Annotated[bool, typer.Option(
    "--resume", help="Keep the complete runs already in the sweep directory and run only the rest "
                     "(the default; the flag is kept for old scripts).")]
ForceOption = Annotated[bool, typer.Option(
    "--force", help="Run every run again, even those already complete in the sweep directory.")]


def sweep_cli(sweep_file: SweepArg, workers: WorkersOption = None, dask: DaskOption = None,
              out: OutOption = None, resume: ResumeOption = False, force: ForceOption = False,
              json_: Annotated[bool, typer.Option(
                  "--json", help="Print the table as JSON on stdout (per combination: swept values, runs, and "
                                 "each metric's mean and 95% CI) instead of the table.")] = False) -> None:
    """Run every parameter combination x seed of a sweep file; print mean and 95% CI per combination.

    Runs already complete in the sweep directory are kept (never rerun unless --force).
    """

    if resume and force:
        _fail("--resume and --force: choose one (--resume keeps finished runs, --force reruns them)")
    sw = None
    try:
        sw = load_sweep(sweep_file)
        check_output(out or Path("results") / "sweeps" / sw.name, "sweep", option="--out")
        with output_lock(out or Path("results") / "sweeps" / sw.name):  # no other kafkasim writes there meanwhile
            report = run_sweep(sw, workers=workers, dask=dask, out=out, force=force, progress=True, notes=_warn)
    except (SweepError, OutputError) as e:
        _fail(str(e))
    except SweepInterrupted as e:
        err_console.print(f"interrupted: {e}", markup=False, highlight=False, soft_wrap=True)
        interruption["explained"] = True  # said what was kept: `main` adds nothing but the exit code
        raise typer.Exit(code=130) from None
    except OSError as e:
        where = out or (Path("results") / "sweeps" / sw.name if sw is not None else sweep_file)
        _fail(f"--out {where}: cannot write results ({e.strerror or e})")
    agg = aggregate(with_committed_rps(report.frame, report.out_dir), sw, metrics=list(CONSOLE_METRICS))
    if json_:  # the table as JSON on stdout, nothing else there (progress and notes are on stderr)
        typer.echo(json.dumps(aggregate_json(agg, sw), indent=2))
    else:
        _print_table(aggregate_table(agg, sw))
    err_console.print(f"wrote {report.out_dir}/sweep.parquet: {len(report.frame)} runs, {report.ran} run now, "
                      f"{report.skipped} kept, {report.failed} failed", markup=False, highlight=False, soft_wrap=True)
    if report.failed:
        err_console.print(f"failed runs: {report.out_dir / 'failures'}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(code=1)


def _print_table(table: PlainTable) -> None:
    if out_console.is_terminal:
        out_console.print(table)
    else:  # a file or pipe gets the table at its natural width, not wrapped at 80 columns
        width = Measurement.get(out_console, out_console.options.update_width(1000), table).maximum
        Console(file=out_console.file, width=width).print(table)


def with_committed_rps(frame: pd.DataFrame, out_dir: Path) -> pd.DataFrame:
    """`frame` (sweep.parquet's rows) with ``committed_rps`` of every finished run, from its batches.

    The one throughput measure of every table and figure (`sim.measure.batches.committed_rps`): the
    acknowledged rate is 0 under acks=0, although what those producers wrote is in the log.
    """
    from sim.runs.contract import read_run

    values = []
    for rid, status, produce_ms in zip(frame["run_id"], frame["status"],
                                       frame.get("produce_duration_ms", pd.Series([None] * len(frame)))):
        if status != "ok":
            values.append(math.nan)
            continue
        run = read_run(Path(out_dir) / "runs" / str(rid), tables=False)
        values.append(committed_rps(run.read_batches(["record_count", "copies_in_log"]),
                                    None if pd.isna(produce_ms) else float(produce_ms)))
    return frame.assign(committed_rps=pd.Series(values, index=frame.index, dtype="float64"))


def _json_number(v):
    return None if v is None or (isinstance(v, float) and not math.isfinite(v)) or pd.isna(v) else \
        (int(v) if isinstance(v, (int, np.integer)) else float(v))


def aggregate_json(agg: pd.DataFrame, sw: Sweep) -> dict:
    """The console table as data: per combination its swept values, runs, and per metric mean and 95% CI."""
    rows = []
    for _, row in agg.iterrows():
        params = {k: (row[k].item() if hasattr(row[k], "item") else row[k]) for k in sw.params}
        metrics = {m: {"label": CONSOLE_METRICS[m], **{x: _json_number(row[f"{m}_{x}"]) for x in ("mean", "low", "high")},
                       "n": int(row[f"{m}_n"])} for m in CONSOLE_METRICS}
        rows.append({"params": params, "runs": int(row["n"]), "runs_ok": int(row["ok"]), "metrics": metrics})
    return {"sweep": sw.name, "confidence": 0.95, "combinations": rows}


def aggregate_table(agg, sw: Sweep) -> PlainTable:
    """The aggregate as a rich table: one row per combination, `mean ± CI` per metric."""
    t = PlainTable(title=f"{sw.name}: mean ± 95% CI over seeds", show_header=True, header_style="bold")
    for heading in _param_headings(sw.params):
        t.add_column(heading, overflow="fold")
    t.add_column("runs ok", justify="right", no_wrap=True)
    for heading in CONSOLE_METRICS.values():
        t.add_column(heading, justify="right", no_wrap=True)
    for _, row in agg.iterrows():
        cells = [str(row[k]) for k in sw.params]
        cells.append(f"{row['ok']}/{row['n']}")
        cells += [_mean_ci(row[f"{m}_mean"], row[f"{m}_high"] - row[f"{m}_mean"]) for m in CONSOLE_METRICS]
        t.add_row(*cells)
    return t


def _param_headings(keys: list[str]) -> list[str]:
    """Column headings: the Kafka config name alone (`acks`) where that is unambiguous."""
    def short(key: str) -> str:
        segs = key.split(".")
        digits = [i for i, s in enumerate(segs) if s.isdigit()]
        return ".".join(segs[digits[-1] + 1:]) if digits and digits[-1] < len(segs) - 1 else key
    shorts = [short(k) for k in keys]
    return [s if shorts.count(s) == 1 else k for s, k in zip(shorts, keys)]


def _mean_ci(mean: float, half: float) -> str:
    if mean is None or math.isnan(mean):
        return "-"
    text = _num(mean)
    return text if half is None or math.isnan(half) else f"{text} ± {_num(half)}"


def _num(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:,.1f}"
