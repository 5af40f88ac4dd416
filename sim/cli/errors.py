"""What every `kafkasim` command shares: the two consoles and the one-line error and warning.

Bad input ends with `error: ...` on one line naming the field, exit code 2, no traceback.
"""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from sim.scenario.errors import printable

__all__ = ["out_console", "err_console", "fail", "warn", "PlainTable", "interruption"]

out_console = Console()
err_console = Console(stderr=True)


def fail(message: str) -> None:
    for line in str(message).split("\n") or [""]:
        err_console.print(f"error: {printable(line)}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(code=2)


def warn(message: str) -> None:
    """One `warning: ...` line on stderr."""
    err_console.print(f"warning: {printable(str(message))}", markup=False, highlight=False, soft_wrap=True)


class PlainTable(Table):
    """A rich Table whose title, headings and cells are plain text, never Rich markup.

    Run labels, paths and override values are user text: `[path]` or `[bold` in them must print as
    written (a plain `Table` parses them as markup and dies with `MarkupError`).
    """

    def __init__(self, *headers, title: str | None = None, **kwargs) -> None:
        super().__init__(*headers, title=None if title is None else Text(str(title)), **kwargs)

    def add_column(self, header="", *args, **kwargs) -> None:
        super().add_column(Text(header) if isinstance(header, str) else header, *args, **kwargs)

    def add_row(self, *cells, **kwargs) -> None:
        super().add_row(*(Text(c) if isinstance(c, str) else c for c in cells), **kwargs)


interruption: dict = {"signal": None, "explained": False}
"""The signal that stopped the command ("SIGINT", "SIGTERM" or None), and whether the command already
said what it kept (a sweep does); `main` says it otherwise, once."""


def check_file_out(option: str, target) -> None:
    """Refuse, in one line and before any work, a file output (`--out FILE`, `--hdr FILE`) that is a
    directory or could not be written."""
    from sim.runs.contract import writable_problem

    if target.is_dir():
        fail(f"{option} {target}: is a directory (allowed: a file path)")
    problem = writable_problem(target)
    if problem:
        fail(f"{option} {target}: {problem}")
