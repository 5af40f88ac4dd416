"""Progress on stderr, of a sweep or of one run: a rich bar on a terminal, a plain line every few seconds elsewhere."""

from __future__ import annotations


import math
import time
from typing import Callable





PROGRESS_INTERVAL_S = 5.0
"""Off a terminal (a pipe, a log file, CI), a plain progress line at most this often."""


def format_eta(seconds: float | None) -> str:
    """Seconds as a short ETA: '45s', '12m05s', '3h20m'; '?' when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class ProgressDisplay:
    """Progress on stderr: a rich bar on `console` if it is a terminal, else a plain line at most
    every `interval` seconds (for `| tee`, nohup, CI logs), and always the last one.

    What the bar's `columns` show and what a plain line says is the caller's: a single run
    (`kafkasim run`) counts simulated seconds, a sweep counts runs.
    """

    def __init__(self, console, *columns):
        from rich.progress import Progress

        self.console = console
        self.tty = console.is_terminal
        self.bar = Progress(*columns, console=console, transient=True, disable=not self.tty)
        self._last_line = time.monotonic()

    def __enter__(self) -> "ProgressDisplay":
        self.bar.start()  # does nothing off a terminal (disabled)
        return self

    def __exit__(self, *exc) -> None:
        self.bar.stop()

    def add_task(self, description: str, total: float, **fields):
        """A bar for `total` units of work; the interval of plain lines starts now."""
        self._last_line = time.monotonic()
        return self.bar.add_task(description, total=total, **fields)

    def update(self, task, line: Callable[[], str], interval: float, last: bool, **fields) -> None:
        """Update the bar (`fields`), or print `line()` off a terminal if `interval` has passed or it is the `last`."""
        self.bar.update(task, **fields)
        if not self.tty:
            now = time.monotonic()
            if now - self._last_line >= interval or last:
                self._last_line = now
                self.note(line())

    def note(self, text: str) -> None:
        """A line on stderr (above the bar on a terminal)."""
        self.console.print(text, markup=False, highlight=False, soft_wrap=True)


class _Progress:
    """A sweep's progress on stderr (a :class:`ProgressDisplay` counting runs); off by default.

    The ETA comes from the durations of the runs completed so far (mean seconds per run x runs
    left / runs in parallel); before the first completes, from the scenarios' work estimate.
    """

    def __init__(self, enabled: bool, title: str):
        self.enabled, self.title = enabled, title
        self._display: ProgressDisplay | None = None
        self._task = None
        self.total = self.done = self.failed = 0
        self.parallel = 1
        self.estimate_s = 0.0
        self.durations: list[float] = []
        self._t0 = time.monotonic()

    def __enter__(self) -> "_Progress":
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

            self._display = ProgressDisplay(
                Console(stderr=True), TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[failed]} failed"), TextColumn("ETA {task.fields[eta]}"), TimeElapsedColumn())
            self._display.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._display is not None:
            self._display.__exit__(*exc)

    def eta(self) -> float | None:
        """Seconds left: from completed-run durations, else the work estimate."""
        left = self.total - self.done
        if left <= 0:
            return 0.0
        width = max(1, min(self.parallel, left))
        if self.durations:
            per_run = sum(self.durations) / len(self.durations)
            return per_run * left / width
        if self.estimate_s > 0:
            return self.estimate_s * left / max(self.total, 1) / width - (time.monotonic() - self._t0)
        return None

    def _eta_text(self) -> str:
        text = format_eta(self.eta())
        return text if self.durations or text == "?" else f"~{text}"

    def start(self, total: int, parallel: int = 1, estimate_s: float = 0.0) -> None:
        """Show progress for `total` runs to execute, `parallel` at a time, estimated at `estimate_s` in all."""
        self.total, self.parallel, self.estimate_s = total, parallel, estimate_s
        self._t0 = time.monotonic()
        if self._display is not None:
            self._task = self._display.add_task(self.title, total=total, failed=0, eta=self._eta_text())

    def advance(self, failed: bool, wall_s: float | None = None) -> None:
        """One more run recorded (`wall_s`: how long it took where it ran)."""
        self.done += 1
        self.failed += int(failed)
        if wall_s is None:  # a custom executor: its share of the time since the start
            wall_s = (time.monotonic() - self._t0) * min(self.parallel, self.total) / self.done
        self.durations.append(wall_s)
        if self._task is not None and self.total:
            self._display.update(self._task, self._line, PROGRESS_INTERVAL_S, self.done == self.total,
                                 advance=1, failed=self.failed, eta=self._eta_text())

    def _line(self) -> str:
        elapsed = time.monotonic() - self._t0
        rate = self.done / max(elapsed, 1e-9) * 60
        return (f"progress: {self.title}: {self.done}/{self.total} runs done ({self.failed} failed), "
                f"{rate:,.1f} runs/min, elapsed {format_eta(elapsed)}, ETA {self._eta_text()}")

    def note(self, text: str) -> None:
        """A line on stderr (above the bar on a terminal)."""
        if self._display is not None:
            self._display.note(text)
