"""`kafkasim plot` and `kafkasim report`: figures and an HTML page from a run or sweep directory.

Thin shells over :func:`analysis.write_plots` and :func:`analysis.write_report`. A missing or
invalid results directory ends in a one-line `error: ...` with exit code 2; the files written
are listed on stderr. `--out` never overwrites what kafkasim did not write: a figure directory
may hold only figures, a report path only an earlier report (sim.results.check_output).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

__all__ = ["plot_cli", "report_cli"]

ResultsArg = Annotated[Path, typer.Argument(
    help="A run directory (kafkasim run) or a sweep directory (kafkasim sweep).", show_default=False)]


def plot_cli(results_dir: ResultsArg,
             out: Annotated[Optional[Path], typer.Option(
                 "--out", help="Directory for the figures (default: RESULTS_DIR/plots/).")] = None) -> None:
    """Write the figures that apply to a run or a sweep, as PNG and SVG."""
    # imported here: sim.cli imports this module while it is itself still loading
    from analysis import ResultsError, write_plots

    from .cli import _fail, err_console
    from .results import OutputError, check_output
    from .sweep import sweep_dir_note

    try:
        check_output(out or Path(results_dir) / "plots", "plots", option="--out")
        written = write_plots(results_dir, out)
    except (ResultsError, OutputError) as e:
        _fail(str(e))
    except OSError as e:
        _fail(f"--out {out or Path(results_dir) / 'plots'}: cannot write figures ({e.strerror or e})")
    note = sweep_dir_note(results_dir)
    if note:
        err_console.print(note, markup=False, highlight=False, soft_wrap=True)
    for path in written:
        err_console.print(f"wrote {path}", markup=False, highlight=False, soft_wrap=True)
    if not written:
        err_console.print("no figure applies to these results", markup=False, highlight=False)


def report_cli(results_dir: ResultsArg,
               out: Annotated[Optional[Path], typer.Option(
                   "--out", help="The HTML file (default: RESULTS_DIR/report.html).")] = None) -> None:
    """Write one self-contained HTML page: summary tables, figures and the resolved scenario."""
    from analysis import ResultsError, write_report

    from .cli import _fail, err_console
    from .results import OutputError, check_output
    from .sweep import sweep_dir_note

    try:
        check_output(out or Path(results_dir) / "report.html", "report", option="--out")
        path = write_report(results_dir, out)
    except (ResultsError, OutputError) as e:
        _fail(str(e))
    except OSError as e:
        _fail(f"--out {out or Path(results_dir) / 'report.html'}: cannot write the report ({e.strerror or e})")
    note = sweep_dir_note(results_dir)
    if note:
        err_console.print(note, markup=False, highlight=False, soft_wrap=True)
    err_console.print(f"wrote {path}", markup=False, highlight=False, soft_wrap=True)
