"""A worker that dies, or hangs, halfway through sending its result: run by test_sweep_reliability.

CPython's pool manager thread waits for the rest of a half-sent result for ever, and so would the
sweep and the interpreter's exit. The worker writes a message header promising 1 MB, 1 kB of it,
and then either SIGKILLs itself (`died`) or sleeps (`interrupted`: the coordinator gets Ctrl-C).

    python tests/pool_faults.py died|interrupted MARKER_DIR
"""

from __future__ import annotations

import os
import signal
import struct
import sys
import threading
import time
from pathlib import Path

from sim.runs.sweep import PoolExecutor, RunOutcome


class Run:
    def __init__(self, run_id: str, marker: str):
        self.run_id, self.marker = run_id, marker


def _half_send() -> None:
    """Write the start of a result message on this worker's result pipe."""
    frame = sys._getframe(2)  # concurrent.futures.process._process_worker, which called execute
    writer = frame.f_locals["result_queue"]._writer
    os.write(writer.fileno(), struct.pack("!i", 1_000_000) + b"x" * 1000)


def died(run: Run) -> RunOutcome:
    marker = Path(run.marker)
    if not marker.exists():  # first attempt only: the retry, alone on a fresh pool, succeeds
        marker.touch()
        _half_send()
        os.kill(os.getpid(), signal.SIGKILL)
    return RunOutcome(run.run_id)


def interrupted(run: Run) -> RunOutcome:
    Path(run.marker).touch()
    _half_send()
    time.sleep(120)
    return RunOutcome(run.run_id)


def main() -> None:
    mode, marker = sys.argv[1], str(Path(sys.argv[2]) / "marker")
    execute = {"died": died, "interrupted": interrupted}[mode]
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
