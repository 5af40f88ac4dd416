"""The `kafkasim` command line: a thin typer layer over the Python API (`sim.run`, `sim.sweep`, `analysis`).

`app` builds the typer application and registers every command; each command group lives in its
own module (`sweep`, `analysis`); `errors` holds what they share (consoles, one-line errors).
"""

from sim.cli.app import main  # `sim.cli.app` stays the module (its typer object is `sim.cli.app.app`)

__all__ = ["main"]
