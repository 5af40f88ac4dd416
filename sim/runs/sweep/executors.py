"""Where runs execute: in this process, in a process pool, or on a Dask cluster."""

from __future__ import annotations


import logging
import os
import pickle
import shutil
import signal
import tempfile
import threading
import time
import traceback
import uuid
from collections import deque
from concurrent.futures import FIRST_COMPLETED, wait
from concurrent.futures.process import BrokenProcessPool  # loky's, and its TerminatedWorkerError, subclass it
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator



from sim.runs.results import Results
from sim.runs.runner import run as simulate_run
from sim.runs.sweep.spec import (SweepError, SweepRun)


WORKER_DIED = ("BrokenProcessPool: the worker process running this run died (killed or crashed), twice, "
               "the second time running it alone; resuming the sweep reruns it")


# --- executing runs ------------------------------------------------------------------------------
@dataclass
class RunOutcome:
    """What came back for one run: its results, or the error that stopped it."""

    run_id: str
    results: Results | None = None
    error: str | None = None
    wall_s: float | None = None
    """Seconds the run took where it ran (simulation and measurement): the sweep's ETA uses them."""


ExecuteFn = Callable[[SweepRun], RunOutcome]


def execute_run(run: SweepRun) -> RunOutcome:
    """Simulate one run wherever the executor placed it; an exception becomes a failed outcome."""
    t0 = time.perf_counter()
    try:
        return RunOutcome(run.run_id, results=simulate_run(run.scenario, seed=run.seed, checked=run.checked),
                          wall_s=time.perf_counter() - t0)
    except Exception as e:  # noqa: BLE001 - any model error fails this run, never the sweep
        return RunOutcome(run.run_id, error=describe_error(e), wall_s=time.perf_counter() - t0)


def describe_error(e: BaseException) -> str:
    """`Type: message (at file.py:line in function)`, naming the innermost frame that raised it outside
    installed packages: an error in a model process surfaces inside SimPy's `step`, which re-raises a copy
    whose cause is the original, so the cause's frames say where the model went wrong."""
    text = f"{type(e).__name__}: {e}"
    origin = e
    while origin.__cause__ is not None:
        origin = origin.__cause__
    frames = traceback.extract_tb(origin.__traceback__) or traceback.extract_tb(e.__traceback__)
    ours = [f for f in frames if "site-packages" not in f.filename and "dist-packages" not in f.filename] or frames
    if ours:
        f = ours[-1]
        text += f" (at {Path(f.filename).name}:{f.lineno} in {f.name})"
    return text


def _outcome_of(future, run: SweepRun) -> RunOutcome:
    """The outcome held by a finished future; an exception outside the run fails the run."""
    try:
        return future.result()
    except Exception as e:  # noqa: BLE001 - e.g. an unpicklable result, a Dask KilledWorker
        return RunOutcome(run.run_id, error=describe_error(e))


class SerialExecutor:
    """Runs one after another in this process (``workers=1``): no start-up cost, easy to debug."""

    def __init__(self, execute: ExecuteFn):
        self.execute = execute

    def __enter__(self) -> "SerialExecutor":
        return self

    def __exit__(self, *exc) -> None:
        return None

    def as_completed(self, runs: list[SweepRun]) -> Iterator[RunOutcome]:
        """Execute each run in turn."""
        for run in runs:
            try:
                outcome = self.execute(run)
            except Exception as e:  # noqa: BLE001 - only reachable with a custom `execute`
                outcome = RunOutcome(run.run_id, error=describe_error(e))
            yield outcome


def _init_worker(parent_pid: int) -> None:
    """Pool worker initializer: Ctrl-C is the parent's to handle (it stops the workers), and a
    worker never outlives its parent.

    A parent killed with SIGKILL (or by the out-of-memory killer) cannot stop its pool, and loky's
    workers would run on as orphans, each holding a run's memory. A daemon thread in each worker
    watches the parent's pid and ends the worker at once when the parent is gone (reparenting
    changes ``getppid()``). Without workers loky's resource tracker sees its pipe close and ends too.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch_parent() -> None:
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch_parent, name="kafkasim-parent-watch", daemon=True).start()


def _execute_to_file(execute: ExecuteFn, run: SweepRun, path: str) -> None:
    """In a pool worker: execute `run` and leave its outcome, pickled, at `path`.

    The outcome (a run's Results, often megabytes) travels through a file and not through the
    pool's result pipe. A worker killed halfway through writing a pipe message leaves the pool's
    manager thread (CPython's and loky's alike) waiting for the rest of it for ever; killed halfway
    through writing this file it leaves only a temporary file, and the pipe carries a message of a
    few bytes, which the kernel writes whole (PIPE_BUF), so loky sees the worker die as usual.
    """
    try:
        outcome = execute(run)
    except Exception as e:  # noqa: BLE001 - only reachable with a custom `execute`; as in SerialExecutor
        outcome = RunOutcome(run.run_id, error=describe_error(e))
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        pickle.dump(outcome, f, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, path)


class PoolExecutor:
    """A loky process pool with at most `workers` runs in flight.

    loky starts each worker as a fresh interpreter (fork+exec: nothing of this process's state is
    inherited), notices a worker that dies (SIGKILL, out of memory, a crash in native code) and
    then fails every run in flight with ``TerminatedWorkerError``, a ``BrokenProcessPool``. Those
    runs are retried in a fresh pool one at a time, each alone, so a second death names its run
    exactly: that run is recorded as failed (:data:`WORKER_DIED`) and the others complete. Then the
    sweep goes on at full width. On Ctrl-C the workers are killed (``shutdown(kill_workers=True)``).
    Outcomes come back through files in a temporary directory (see :func:`_execute_to_file`).
    """

    def __init__(self, workers: int, execute: ExecuteFn):
        self.workers, self.execute = workers, execute
        self._generation = 0

    def __enter__(self) -> "PoolExecutor":
        self._spool = Path(tempfile.mkdtemp(prefix="kafkasim-outcomes-"))
        self._pool = self._start_pool()
        return self

    def __exit__(self, exc_type, *exc) -> None:
        try:
            if exc_type is None:
                self._pool.shutdown(wait=True)
            else:  # interrupted: do not wait for runs nobody will record (a second Ctrl-C cannot cut this short)
                with _sigint_flagged():
                    self._pool.shutdown(wait=True, kill_workers=True)
        finally:
            shutil.rmtree(self._spool, ignore_errors=True)

    def _start_pool(self):
        from loky import ProcessPoolExecutor
        from loky.backend.context import get_context

        # a pool of our own, not loky.get_reusable_executor(): that one outlives the sweep (its idle
        # workers would be orphans to `ps`, and would keep modules imported before an edit)
        self._generation += 1
        return ProcessPoolExecutor(self.workers, context=get_context("loky"), initializer=_init_worker,
                                   initargs=(os.getpid(),))

    def _restart_pool(self) -> None:
        self._pool.shutdown(wait=True, kill_workers=True)  # broken: its workers are being killed anyway
        self._pool = self._start_pool()

    def as_completed(self, runs: list[SweepRun]) -> Iterator[RunOutcome]:
        """Submit runs as workers free up; yield each outcome as it completes."""
        pending = deque(runs)
        suspects: deque[SweepRun] = deque()  # in flight when a worker died: rerun alone
        inflight: dict[Any, tuple[SweepRun, int, bool]] = {}  # future -> (run, pool generation, alone)
        with _sigint_flagged() as interrupted:
            yield from self._drive(pending, suspects, inflight, interrupted)

    def _drive(self, pending: deque, suspects: deque, inflight: dict, interrupted: threading.Event
               ) -> Iterator[RunOutcome]:
        while pending or suspects or inflight:
            if interrupted.is_set():
                # hand over the runs that finished before the interrupt, then raise it here, in our code
                for fut in [f for f in inflight if f.done() and not f.cancelled() and f.exception() is None]:
                    yield self._outcome(fut, inflight[fut][0])
                raise KeyboardInterrupt
            if suspects or any(alone for _, _, alone in inflight.values()):
                if suspects and not inflight:
                    self._submit(suspects, inflight, alone=True)
            else:
                while pending and len(inflight) < self.workers:
                    self._submit(pending, inflight, alone=False)
            if not inflight:
                continue
            done = set()
            while not done and not interrupted.is_set():  # short waits: Ctrl-C is noticed within 0.1 s
                done, _ = wait(inflight, timeout=0.1, return_when=FIRST_COMPLETED)
            lost = []
            for fut in done:
                entry = inflight.pop(fut)
                if isinstance(fut.exception(), BrokenProcessPool):
                    lost.append(entry)
                else:
                    yield self._outcome(fut, entry[0])
            if any(generation == self._generation for _, generation, _ in lost):
                # the current pool is broken and fails every run it holds, all at once
                for fut in wait([f for f, e in inflight.items() if e[1] == self._generation]).done:
                    entry = inflight.pop(fut)
                    if isinstance(fut.exception(), BrokenProcessPool):
                        lost.append(entry)
                    else:
                        yield self._outcome(fut, entry[0])
                self._restart_pool()
            for run, _, alone in sorted(lost, key=lambda e: e[0].run_id):
                if alone:  # it ran alone and its worker died again: this run is the cause
                    yield RunOutcome(run.run_id, error=WORKER_DIED)
                else:
                    suspects.append(run)

    def _submit(self, queue: deque, inflight: dict, alone: bool) -> None:
        run = queue.popleft()
        try:
            future = self._pool.submit(_execute_to_file, self.execute, run, str(self._path(run)))
        except BrokenProcessPool:  # a worker died while idle: retry on a fresh pool
            queue.appendleft(run)
            self._restart_pool()
        else:
            inflight[future] = (run, self._generation, alone)

    def _path(self, run: SweepRun) -> Path:
        return self._spool / f"{run.run_id}.pickle"

    def _outcome(self, future, run: SweepRun) -> RunOutcome:
        """The outcome a finished future left in its file (read once, then deleted)."""
        try:
            future.result()
            path = self._path(run)
            outcome = pickle.loads(path.read_bytes())
            path.unlink()
            return outcome
        except Exception as e:  # noqa: BLE001 - e.g. an unpicklable run, a full disk
            return RunOutcome(run.run_id, error=describe_error(e))


class DaskExecutor:
    """Runs as tasks on a Dask distributed cluster: a scheduler address, or ``"local"``.

    ``"local"`` starts a ``LocalCluster`` of `workers` single-threaded worker processes and closes
    it afterwards. With a remote scheduler the workers need kafkasim installed; results travel back
    to this process, so no shared filesystem is needed. Dask itself reschedules a task whose
    worker died (``distributed.scheduler.allowed-failures``); one that keeps killing workers ends
    as ``KilledWorker`` and is recorded as failed.
    """

    def __init__(self, address: str, workers: int, execute: ExecuteFn):
        self.address, self.workers, self.execute = address, workers, execute
        self._cluster = self._client = None

    def __enter__(self) -> "DaskExecutor":
        from dask.distributed import Client, LocalCluster

        if self.address == "local":
            # the scheduler always serves HTTP: a free port (":0") instead of fighting over 8787, no dashboard
            self._cluster = LocalCluster(n_workers=self.workers, threads_per_worker=1, processes=True,
                                         dashboard_address=":0", scheduler_kwargs={"dashboard": False},
                                         silence_logs=logging.ERROR)
            self._client = Client(self._cluster)
        else:
            try:
                self._client = Client(self.address, timeout="10s")
            except (OSError, TimeoutError, ValueError, TypeError) as e:
                raise SweepError(f"dask: cannot connect to a Dask scheduler at {self.address!r} "
                                 f"({type(e).__name__}: {e}); expected tcp://host:port or 'local'") from None
        return self

    def __exit__(self, *exc) -> None:
        if self._client is not None:
            self._client.close()
        if self._cluster is not None:
            self._cluster.close()

    def as_completed(self, runs: list[SweepRun]) -> Iterator[RunOutcome]:
        """Submit every run as a task; yield each outcome as its task finishes."""
        from dask.distributed import as_completed

        token = uuid.uuid4().hex[:8]  # keys unique to this sweep even on a shared scheduler
        futures = {self._client.submit(self.execute, run, key=f"kafkasim-{run.run_id}-{token}", pure=False): run
                   for run in runs}
        try:
            for fut in as_completed(list(futures)):
                run = futures.pop(fut)
                outcome = _outcome_of(fut, run)
                fut.release()
                yield outcome
        except KeyboardInterrupt:
            for fut, run in list(futures.items()):
                if fut.status == "finished":
                    yield _outcome_of(fut, run)
            raise


def available_cores() -> int:
    """Cores this process may use (CPU affinity and container limits included where the OS says)."""
    if hasattr(os, "process_cpu_count"):  # Python 3.13+
        return os.process_cpu_count() or 1
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def _check_executor_args(workers: Any, dask: Any) -> None:
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise SweepError(f"workers: must be a whole number >= 1, got {workers!r}")
    if dask is not None:
        if not isinstance(dask, str) or not dask.strip():
            raise SweepError("dask: expected a scheduler address such as tcp://host:port, or 'local'")
        if dask != "local" and workers is not None:
            raise SweepError("workers: applies to the local pool and to --dask local; a remote Dask "
                             "cluster runs on the workers it has")


def _executor(workers: int | None, dask: str | None, todo: int, execute: ExecuteFn):
    """The executor for `todo` runs: never more workers than runs, in-process for one."""
    n = max(1, min(workers or available_cores(), todo))
    if dask is not None:
        return DaskExecutor(dask, n, execute)
    return SerialExecutor(execute) if n == 1 else PoolExecutor(n, execute)


@contextmanager
def _sigint_flagged() -> Iterator[threading.Event]:
    """While the block runs, Ctrl-C only sets the event it yields (main thread only; elsewhere never set).

    The pool waits in short slices and checks the event, so the interrupt surfaces in our code and
    never inside concurrent.futures' locking: a KeyboardInterrupt raised while `wait()` holds the
    futures' locks can leave one held, and the executor's shutdown then hangs forever.
    """
    flag = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    previous = signal.signal(signal.SIGINT, lambda signum, frame: flag.set())
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.default_int_handler)


@contextmanager
def _sigint_deferred():
    """Hold Ctrl-C until the block ends, then hand it to the handler it was meant for.

    Under the pool that handler only sets the pool's flag, so the pool still yields every run
    that finished before it stops; elsewhere it raises KeyboardInterrupt as usual.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.default_int_handler)
    if caught:
        if callable(previous):
            previous(signal.SIGINT, None)  # the pool's flag, or default_int_handler (raises)
        elif previous != signal.SIG_IGN:
            raise KeyboardInterrupt
