"""A worker that dies, or hangs, halfway through sending its result: run by test_sweep_reliability.

A run's outcome is pickled after a 1 MB payload, and pickling then either SIGKILLs the worker
(`died`: the first attempt only; the retry, alone on a fresh pool, succeeds) or stalls it
(`interrupted`: the coordinator gets Ctrl-C and must stop the pool and exit). Killed halfway
through a message on a pipe, a process pool's manager thread would wait for the rest for ever.
In `interrupted` mode the worker's pid is written to MARKER_DIR/worker.pid so the test can check
that it did not outlive the pool.

    python tests/pool_faults.py died|interrupted MARKER_DIR
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim.runs.sweep import PoolExecutor, RunOutcome


class Run:
    def __init__(self, run_id: str, marker: str):
        self.run_id, self.marker = run_id, marker


class Stop:
    """Pickled after the payload: the result is half sent when this kills or stalls the worker."""

    def __init__(self, how: str):
        self.how = how

    def __reduce__(self):
        if self.how == "die":
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(120)
        return (str, ())


@dataclass
class HalfSent(RunOutcome):
    payload: bytes = b"x" * 1_000_000
    stop: Any = None


def died(run: Run) -> RunOutcome:
    marker = Path(run.marker)
    if not marker.exists():  # first attempt only: the retry, alone on a fresh pool, succeeds
        marker.touch()
        return HalfSent(run.run_id, stop=Stop("die"))
    return RunOutcome(run.run_id)


def interrupted(run: Run) -> RunOutcome:
    (Path(run.marker).parent / "worker.pid").write_text(str(os.getpid()))
    Path(run.marker).touch()
    return HalfSent(run.run_id, stop=Stop("stall"))


def main() -> None:
    mode, marker = sys.argv[1], str(Path(sys.argv[2]) / "marker")
    import pool_faults  # by its module name, not __main__: the worker unpickles HalfSent by name

    execute = {"died": pool_faults.died, "interrupted": pool_faults.interrupted}[mode]
    if mode == "interrupted":
        def interrupt_once_half_sent():
            while not Path(marker).exists():
                time.sleep(0.02)
            time.sleep(0.3)
            os.kill(os.getpid(), signal.SIGINT)
        threading.Thread(target=interrupt_once_half_sent, daemon=True).start()
    try:
        with PoolExecutor(1, execute) as pool:
            for outcome in pool.as_completed([Run("r1", marker)]):
                print(f"outcome {outcome.run_id} error={outcome.error}", flush=True)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
    print("exited", flush=True)


if __name__ == "__main__":
    main()
