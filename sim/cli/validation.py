"""`kafkasim validate-model`: run the validation cases, print published against simulated, write the report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from sim import __version__
from sim.cli.errors import PlainTable, err_console, fail as _fail, out_console
from sim.runs.validation import cases_named, validate_model

__all__ = ["validate_model_cli"]

REPORT_HEADER = "# Validation against published Kafka results"
DEFAULT_OUT = Path("results") / "validation" / "validation.md"


def _check_out(out: Path) -> None:
    """Replace only an earlier validation report, never another file."""
    if out.is_dir():
        _fail(f"--out {out}: is a directory; give the report's file name, e.g. {out / 'validation.md'}")
    if out.exists():
        try:
            first = out.read_text(encoding="utf-8").split("\n", 1)[0]
        except (OSError, UnicodeDecodeError):
            first = ""
        if first != REPORT_HEADER:
            _fail(f"--out {out}: exists and is not a validation report; kafkasim replaces only its own reports")


def validate_model_cli(
    quick: Annotated[bool, typer.Option("--quick", help="Only the quick cases (those the test suite runs), "
                                                        "with the same seeds as the full set.")] = False,
    case: Annotated[Optional[list[str]], typer.Option(
        "--case", metavar="ID", help="Run only this case (V1, V2, ...; repeatable).")] = None,
    out: Annotated[Path, typer.Option(
        "--out", help="Where to write the markdown report (the committed one is docs/validation.md). "
                      "Replaces only an earlier report.")] = DEFAULT_OUT,
    workers: Annotated[Optional[int], typer.Option(
        "--workers", min=1, help="Runs in parallel (default: one per core; 1 runs in this process).")] = None,
) -> None:
    """Reproduce published Kafka results: run each validation case over its seeds and compare.

    Cases follow section 4 of the Kafka reference (V1 acks=1 loss, V2 acks=all safety, V5
    min.insync.replicas, V12 power loss, ...); a case whose mechanism the model lacks is reported as
    not reproduced. Exit code 1 if a reproduced case falls outside its tolerance.
    """
    try:
        cases = cases_named(case)
    except ValueError as e:
        _fail(str(e).replace("case:", "--case:", 1))
    _check_out(out)
    table = validate_model(cases, quick=quick, workers=workers, progress=True)
    if table.empty:
        _fail("--quick: none of the chosen cases is in the quick subset")
    from analysis.validation import RESULT_WORDS, write_validation_report

    shown = PlainTable(title="validation against published results", show_lines=True)
    for col in ("case", "published", "simulated", "result"):
        shown.add_column(col, overflow="fold")
    for _, r in table.iterrows():
        passed = None if r["passed"] is None else bool(r["passed"])
        shown.add_row(r["case"], r["published"], r["simulated"], RESULT_WORDS[passed].strip("*"))
    out_console.print(shown)
    args = (["--quick"] if quick else []) + [f"--case {c}" for c in (case or [])]
    command = " ".join(["kafkasim validate-model", *args, f"--out {out}"])
    try:
        write_validation_report(table, out, version=__version__, command=command)
    except OSError as e:
        _fail(f"--out {out}: cannot write the report ({e.strerror or e})")
    err_console.print(f"wrote {out}", markup=False, highlight=False)
    if (table["passed"] == False).any():  # noqa: E712 - True, False or None
        raise typer.Exit(code=1)
