"""What every `kafkasim` command shares: the two consoles and the one-line error and warning.

Bad input ends with `error: ...` on one line naming the field, exit code 2, no traceback.
"""

from __future__ import annotations

import typer
from rich.console import Console

from sim.scenario.schema import printable

__all__ = ["out_console", "err_console", "fail", "warn"]

out_console = Console()
err_console = Console(stderr=True)


def fail(message: str) -> None:
    for line in str(message).split("\n") or [""]:
        err_console.print(f"error: {printable(line)}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(code=2)


def warn(message: str) -> None:
    """One `warning: ...` line on stderr."""
    err_console.print(f"warning: {printable(str(message))}", markup=False, highlight=False, soft_wrap=True)
