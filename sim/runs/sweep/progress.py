"""Progress of a sweep on stderr: a rich bar on a terminal, a plain line every few seconds elsewhere."""

from __future__ import annotations


import math
import time





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


class _Progress:
    """Progress on stderr: a rich bar on a terminal, else a plain line every few seconds; off by default.

    The ETA comes from the durations of the runs completed so far (mean seconds per run x runs
    left / runs in parallel); before the first completes, from the scenarios' work estimate.
    """

    def __init__(self, enabled: bool, title: str):
        self.enabled, self.title = enabled, title
        self._progress = self._task = None
        self._console = None
        self.total = self.done = self.failed = 0
        self.parallel = 1
        self.estimate_s = 0.0
        self.durations: list[float] = []
        self._t0 = self._last_line = time.monotonic()

    def __enter__(self) -> "_Progress":
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._console = Console(stderr=True)
            if self._console.is_terminal:
                self._progress = Progress(
                    TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[failed]} failed"), TextColumn("ETA {task.fields[eta]}"),
                    TimeElapsedColumn(), console=self._console, transient=True)
                self._progress.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()

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
        self._t0 = self._last_line = time.monotonic()
        if self._progress is not None:
            self._task = self._progress.add_task(self.title, total=total, failed=0, eta=self._eta_text())

    def advance(self, failed: bool, wall_s: float | None = None) -> None:
        """One more run recorded (`wall_s`: how long it took where it ran)."""
        self.done += 1
        self.failed += int(failed)
        if wall_s is None:  # a custom executor: its share of the time since the start
            wall_s = (time.monotonic() - self._t0) * min(self.parallel, self.total) / self.done
        self.durations.append(wall_s)
        if self._task is not None:
            self._progress.update(self._task, advance=1, failed=self.failed, eta=self._eta_text())
        elif self._console is not None and self.total:
            now = time.monotonic()
            if now - self._last_line >= PROGRESS_INTERVAL_S or self.done == self.total:
                self._last_line = now
                rate = self.done / max(now - self._t0, 1e-9) * 60
                self.note(f"progress: {self.title}: {self.done}/{self.total} runs done ({self.failed} failed), "
                          f"{rate:,.1f} runs/min, elapsed {format_eta(now - self._t0)}, ETA {self._eta_text()}")

    def note(self, text: str) -> None:
        """A line on stderr (above the bar on a terminal)."""
        if self._progress is not None:
            self._progress.console.print(text, markup=False, highlight=False, soft_wrap=True)
        elif self._console is not None:
            self._console.print(text, markup=False, highlight=False, soft_wrap=True)
