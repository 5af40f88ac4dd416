"""Every process the harness starts, in its own process group, and the guarantee that none outlives it.

A :class:`Processes` registry starts JVMs with ``start_new_session`` (each its own process group,
so a signal reaches the JVM and nothing else) and kills and reaps all of them in
:meth:`Processes.close`: at the end of a run, on an exception, on SIGINT/SIGTERM (the handlers
installed by :func:`guard`) and at interpreter exit (atexit). Killing is by process group id, never
by name.
"""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator

__all__ = ["Proc", "Processes", "guard", "alive"]

_LIVE: "set[Processes]" = set()
_LOCK = threading.Lock()


def alive(pid: int) -> bool:
    """Whether a process with this pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


class Proc:
    """One started process: its Popen, its log file, its name."""

    def __init__(self, name: str, popen: subprocess.Popen, log: Path, out: IO | None):
        self.name, self.popen, self.log, self._out = name, popen, log, out

    @property
    def pid(self) -> int:
        return self.popen.pid

    def signal(self, sig: int) -> None:
        """Send `sig` to the process group (the JVM and any child of it)."""
        try:
            os.killpg(self.popen.pid, sig)
        except ProcessLookupError:
            pass

    def running(self) -> bool:
        return self.popen.poll() is None

    def wait(self, timeout: float) -> bool:
        """Wait up to `timeout` s for it to exit; True if it did."""
        try:
            self.popen.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            return False

    def kill(self) -> None:
        """SIGKILL the group (a stopped process dies too) and reap it."""
        self.signal(signal.SIGKILL)
        try:
            self.popen.wait(10)
        except subprocess.TimeoutExpired:
            pass
        if self._out is not None:
            self._out.close()
            self._out = None


class Processes:
    """The processes of one run; `close()` kills and reaps every one (idempotent)."""

    def __init__(self) -> None:
        self.procs: list[Proc] = []
        self.pids: list[int] = []  # every pid ever started (tests check none survives)
        with _LOCK:
            _LIVE.add(self)

    def start(self, name: str, argv: list[str], log: Path, cwd: Path | None = None, stdout_pipe: bool = False,
              gid: int | None = None) -> Proc:
        """Start `argv` in a new process group; stderr (and stdout unless piped) go to `log`.

        `gid`: the group id it runs with (root only; sim.real.netfaults tells processes apart by it)."""
        log.parent.mkdir(parents=True, exist_ok=True)
        out = open(log, "ab")
        more = {"group": gid, "extra_groups": []} if gid is not None and os.geteuid() == 0 else {}
        popen = subprocess.Popen(argv, stdout=subprocess.PIPE if stdout_pipe else out, stderr=out,
                                 stdin=subprocess.DEVNULL, cwd=cwd, start_new_session=True, **more)
        proc = Proc(name, popen, log, out)
        self.procs.append(proc)
        self.pids.append(popen.pid)
        return proc

    def close(self) -> None:
        """Kill and reap every process (SIGCONT first is unnecessary: SIGKILL ends a stopped process)."""
        for p in reversed(self.procs):
            p.kill()
        self.procs.clear()
        with _LOCK:
            _LIVE.discard(self)


def _close_all() -> None:
    with _LOCK:
        live = list(_LIVE)
    for ps in live:
        ps.close()


atexit.register(_close_all)


class Interrupted(KeyboardInterrupt):
    """SIGTERM (or SIGINT) arrived during a real run."""


@contextmanager
def guard() -> Iterator[None]:
    """While inside, SIGINT and SIGTERM raise :class:`Interrupted` in the main thread so that every
    `finally` runs (processes killed, firewall rules removed); the old handlers come back after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Interrupted(f"signal {signum}")

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def wait_for(cond, timeout: float, interval: float = 0.1) -> bool:
    """Poll `cond()` until true or `timeout` s pass."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(interval)
    return bool(cond())
