"""`sim.explore`: search random fault schedules for a property violation, shrink it, write it replayable.

The search: schedule i (sim/runs/explore/schedules.py) is drawn from the search seed and i; the
schedules are run over the base scenario with its seed, in parallel jobs (sim/runs/explore/forking.py,
through the sweep's executors); the property is judged on each. The counterexample is the violating
schedule with the lowest index, so one seed and budget give one counterexample with 1 worker or N.
It is shrunk (sim/runs/explore/shrink.py), replayed from scratch with `sim.run`, and written as a
scenario file that `kafkasim run` replays to the same violation.
"""

from __future__ import annotations

import copy
import json
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from sim.runs.contract import writable_problem, write_atomic
from sim.runs.explore.forking import Job, JobOutcome, Verdict, can_fork, run_job
from sim.runs.explore.properties import Property, parse_property
from sim.runs.explore.schedules import DEFAULT_KINDS, Space, describe_fault, generate, parse_kinds
from sim.runs.explore.shrink import Candidate, shrink
from sim.runs.sweep.executors import _check_executor_args, _executor, available_cores
from sim.scenario.schema import Scenario, ScenarioError, apply_overrides, validate_scenario
from sim.scenario.loading import load_raw, is_sweep_data
from sim.scenario.units import format_ms, parse_duration_ms

__all__ = ["explore", "ExploreReport", "ExploreError", "JobOutcome", "Counterexample", "EXPLORE_FILE"]

EXPLORE_FILE = "explore.json"
"""The file that marks a directory as a search's output (written last)."""
DEFAULT_BUDGET = 100


class ExploreError(ScenarioError):
    """Bad arguments to a search: one line naming the field and what it allows."""


@dataclass
class Counterexample:
    """A scenario (as data, its faults included) whose run violates the property."""

    data: dict
    violation: str
    schedule_index: int
    steps: list[str] = field(default_factory=list)
    """What shrinking changed, in order (empty: not shrunk)."""

    @property
    def faults(self) -> list[dict]:
        return self.data.get("faults", [])

    def to_yaml(self, header: str = "") -> str:
        return header + yaml.safe_dump(self.data, sort_keys=False, allow_unicode=True)


@dataclass
class ExploreReport:
    """What a search tried and found."""

    scenario: str
    seed: int
    property: str
    kinds: tuple[str, ...]
    max_faults: int
    window_ms: tuple[float, float]
    workers: int
    forked: bool
    tried: int
    violated: int
    unsettled: int
    """Schedules whose run ended before the cluster settled (acknowledged records not yet committed)."""
    errors: int
    wall_s: float
    search_s: float
    first_violation_s: float | None
    schedules: pd.DataFrame
    found: Counterexample | None = None
    """The violating schedule with the lowest index, as found."""
    counterexample: Counterexample | None = None
    """`found`, shrunk."""
    shrink_runs: int = 0
    shrink_s: float = 0.0
    shrink_exhausted: bool = False
    results: Any = None
    """The shrunk counterexample's run from scratch (sim.Results), whose summary shows the violation."""
    account: list[str] = field(default_factory=list)
    replayed: bool | None = None
    """Whether the replay from scratch violates the property too (it must)."""
    out: Path | None = None

    @property
    def rate_per_min(self) -> float:
        """Schedules run per minute of the search (shrinking and replay excluded)."""
        return self.tried / max(self.search_s, 1e-9) * 60.0

    def summary(self) -> dict:
        """The report as JSON-able data (explore.json)."""
        cx = self.counterexample
        return {
            "scenario": self.scenario, "seed": self.seed, "property": self.property, "faults": list(self.kinds),
            "max_faults": self.max_faults, "window": [format_ms(self.window_ms[0]), format_ms(self.window_ms[1])],
            "workers": self.workers, "forked": self.forked,
            "tried": self.tried, "violated": self.violated, "unsettled": self.unsettled, "errors": self.errors,
            "search_s": round(self.search_s, 3), "schedules_per_min": round(self.rate_per_min, 1),
            "first_violation_s": None if self.first_violation_s is None else round(self.first_violation_s, 3),
            "shrink_runs": self.shrink_runs, "shrink_s": round(self.shrink_s, 3),
            "shrink_exhausted": self.shrink_exhausted, "wall_s": round(self.wall_s, 3),
            "found": None if self.found is None else {"schedule": self.found.schedule_index,
                                                      "violation": self.found.violation,
                                                      "faults": self.found.faults},
            "counterexample": None if cx is None else {"violation": cx.violation, "faults": cx.faults,
                                                       "steps": cx.steps, "replayed": self.replayed},
            "account": self.account,
        }

    def text(self) -> str:
        """A few lines for a terminal or a notebook."""
        lines = [f"explore {self.scenario}: {self.tried} schedules tried ({self.rate_per_min:,.0f}/min on "
                 f"{self.workers} worker(s){', forked' if self.forked else ''}), {self.violated} violated "
                 f"{self.property}" + (f", {self.errors} failed" if self.errors else "")]
        if self.unsettled:
            lines.append(f"{self.unsettled} schedule(s) ended before the cluster settled (acknowledged records still "
                         f"above the high watermark): not counted as violations; a longer `settle` judges them")
        if self.errors:
            lines.append(f"{self.errors} schedule(s) failed (their errors are in schedules.csv): the search is "
                         f"incomplete, and a model error is a bug worth reporting")
        if self.found is None:
            lines.append(f"no violation of {self.property} found in {self.tried} schedules"
                         + (" among the schedules that ran" if self.errors else ""))
            return "\n".join(lines)
        lines.append(f"first counterexample: schedule {self.found.schedule_index} ({len(self.found.faults)} faults), "
                     f"found after {self.first_violation_s:.1f} s")
        cx = self.counterexample
        if cx is not None:
            lines.append(f"shrunk to {len(cx.faults)} fault(s) in {self.shrink_runs} runs ({self.shrink_s:.1f} s)"
                         + (" (shrink budget used up)" if self.shrink_exhausted else ""))
            if not self.replayed:
                lines.append("WARNING: replayed from scratch, the shrunk scenario did NOT violate the property: a forked "
                             "or shortened run differed from a full one (a bug worth reporting); found.yaml is the "
                             "schedule as found")
            lines += [f"  {s}" for s in self.account]
        return "\n".join(lines)


def _base_data(scenario, overrides) -> tuple[dict, Scenario, int]:
    """The user's scenario as data (durations as written) and validated, without its faults; and how many
    faults (scheduled and random) it had."""
    if isinstance(scenario, Scenario):
        data = scenario.declared()
    else:
        data = load_raw(Path(scenario) if not isinstance(scenario, dict) else scenario)
        if not isinstance(scenario, dict) and is_sweep_data(data):
            raise ScenarioError(f"{scenario}: is a sweep file (it names a base scenario and what to vary), not a "
                                f"scenario; explore its base scenario ({data.get('scenario')}) instead")
    if overrides:
        data = apply_overrides(data, overrides)
    data = copy.deepcopy(data)
    replaced = len(data.get("faults") or []) + len(data.get("random_faults") or [])
    data["faults"] = []
    data["random_faults"] = []
    return data, validate_scenario(data), replaced


def base_scenario(scenario, overrides=None) -> tuple[Scenario, int]:
    """The validated base scenario of a search (its faults removed) and how many faults it had."""
    _, base, replaced = _base_data(scenario, overrides)
    return base, replaced


def _check(budget, time_limit, max_faults, max_concurrent) -> None:
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int) or budget < 1):
        raise ExploreError(f"budget: must be a whole number of schedules >= 1, got {budget!r}")
    if time_limit is not None and not (isinstance(time_limit, (int, float)) and time_limit > 0):
        raise ExploreError(f"time: must be a positive duration such as 10m or 90s, got {time_limit!r}")
    if isinstance(max_faults, bool) or not isinstance(max_faults, int) or max_faults < 1:
        raise ExploreError(f"max_faults: must be a whole number >= 1, got {max_faults!r}")
    if max_concurrent is not None and (isinstance(max_concurrent, bool) or not isinstance(max_concurrent, int)
                                       or max_concurrent < 1):
        raise ExploreError(f"max_concurrent: must be a whole number >= 1, got {max_concurrent!r}")


def _window(window, sc: Scenario) -> tuple[float, float] | None:
    if window is None:
        return None
    if isinstance(window, str):
        lo, sep, hi = window.partition("..")
        if not sep:
            raise ExploreError(f"window: expected START..END such as 5s..50s, got {window!r}")
        window = (lo, hi)
    try:
        lo, hi = (parse_duration_ms(w) for w in window)
    except (ValueError, TypeError) as e:
        raise ExploreError(f"window: {e}") from None
    if not 0 <= lo < hi <= sc.duration:
        raise ExploreError(f"window: must satisfy 0 <= start < end <= duration ({format_ms(sc.duration)}), "
                           f"got {format_ms(lo)}..{format_ms(hi)}")
    return lo, hi


def _time_limit(t) -> float | None:
    """Seconds of wall time, from 600, '10m' or '90s'."""
    if t is None:
        return None
    if isinstance(t, str):
        try:
            return parse_duration_ms(t) / 1000.0
        except ValueError as e:
            raise ExploreError(f"time: {e}") from None
    return t


class _Search:
    """One search: its seed, property and executor, shared by the search and the shrinking."""

    def __init__(self, seed: int, prop: Property, workers: int | None, dask: str | None, fork: bool,
                 early_stop: bool = True):
        self.seed, self.prop, self.early_stop = seed, prop, early_stop
        self.workers, self.dask = workers, dask
        self.fork = fork and dask is None and can_fork()
        self.width = max(1, workers or available_cores()) if dask is None or dask == "local" else max(1, workers or 1)
        self.executor = None  # set by explore: one for the whole search

    def jobs(self, base: Scenario, schedules: list[tuple[int, list[dict]]], tag: str) -> list[Job]:
        """One job per worker, each a share of the schedules in order of first fault (dealt round-robin, so
        the jobs take about as long): a job simulates one fault-free prefix and forks each of its schedules."""
        order = sorted(schedules, key=lambda s: (min((parse_duration_ms(f["at"]) for f in s[1]), default=0.0), s[0]))
        n = max(1, min(self.width, len(order)))
        return [Job(f"{tag}-{k}", base, self.seed, order[k::n], self.prop, fork=self.fork,
                    early_stop=self.early_stop) for k in range(n) if order[k::n]]

    def execute(self, jobs: list[Job], on_verdict, bar: "_ExploreProgress | None" = None) -> None:
        """Run the jobs; `on_verdict` gets every verdict. With a `bar`, progress comes from the jobs' progress
        files while they run (a local pool shares this machine's files; a remote Dask worker reports per job)."""
        import shutil
        import tempfile
        import threading

        spool = Path(tempfile.mkdtemp(prefix="kafkasim-explore-")) if bar is not None else None
        local = self.dask is None or self.dask == "local"
        for job in jobs:
            job.progress_path = str(spool / f"{job.run_id}.progress") if spool is not None and local else None
        finished: set[str] = set()
        stop = threading.Event()

        def poll() -> None:
            while not stop.wait(0.5):
                bar.running("".join(_read(Path(j.progress_path)) for j in jobs
                                    if j.progress_path and j.run_id not in finished))

        watcher = threading.Thread(target=poll, daemon=True) if spool is not None else None
        if watcher is not None:
            watcher.start()
        try:
            for outcome in self.executor.as_completed(jobs):
                job = next(j for j in jobs if j.run_id == outcome.run_id)
                finished.add(job.run_id)
                verdicts = getattr(outcome, "verdicts", None) or [
                    Verdict(i, error=outcome.error or "the job returned nothing") for i, _ in job.schedules]
                for v in verdicts:
                    on_verdict(v)
        finally:
            if watcher is not None:
                stop.set()
                watcher.join()
                bar.running("")
                shutil.rmtree(spool, ignore_errors=True)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def explore(scenario, *, seed: int | None = None, budget: int | None = None, time_limit=None,
            faults=DEFAULT_KINDS, max_faults: int = 3, property: str = "no-acked-loss",  # noqa: A002
            window=None, max_concurrent: int | None = None, workers: int | None = None, dask: str | None = None,
            out: str | Path | None = None, shrink_budget: int = 150, fork: bool = True, early_stop: bool = True,
            overrides=None, progress: bool = False, log=None, figure=None) -> ExploreReport:
    """Search fault schedules over `scenario` for a violation of `property`; shrink and replay the first found.

    `budget` schedules (default 100), or as many as fit in `time_limit` (seconds, or '10m'); faults
    of the kinds in `faults` ('crash,partition,...'), 1..`max_faults` per schedule, starting within
    `window` ('5s..50s'; default the middle 80% of the produce period), at most `max_concurrent` in
    effect at once. The scenario's own faults are replaced by each schedule's. `seed` (default the
    scenario's) is the seed of every run and of the schedules. Writes the search to `out` when given.

    `fork`: share each job's fault-free prefix (sim/runs/explore/forking.py); `early_stop`: for
    no-acked-loss, end a run once its faults are over and the cluster has settled (its loss is final
    then). Neither changes a verdict; both only save time. The counterexample is always replayed in
    full, from scratch. `figure(run_dir, path, note)` draws the counterexample's failover timeline
    into `out` (`kafkasim explore` passes `analysis.counterexample_timeline`; this layer does not import
    analysis).
    """
    t_start = time.perf_counter()
    limit = _time_limit(time_limit)
    _check(budget, limit, max_faults, max_concurrent)
    if budget is None and limit is None:
        budget = DEFAULT_BUDGET
    try:
        _check_executor_args(workers, dask)
    except ScenarioError as e:
        raise ExploreError(str(e)) from None
    prop = parse_property(property)
    kinds = parse_kinds(faults)
    data, base, _ = _base_data(scenario, overrides)
    seed = base.seed if seed is None else int(seed)
    data["seed"] = seed
    base = base.model_copy(update={"seed": seed})
    space = Space.of(base, kinds, max_faults, _window(window, base), max_concurrent)
    if out is not None:
        _check_out(Path(out))
    name = base.name
    if prop.stops_early and base.settle < base.cluster.replica_socket_timeout_ms:
        # a follower whose fetch a partition dropped waits replica.socket.timeout.ms before it fetches again,
        # in the ISR meanwhile: its leader's high watermark waits too, and a run may end with it still waiting
        (log or (lambda text: None))(
            f"note: settle {format_ms(base.settle)} is shorter than replica.socket.timeout.ms "
            f"{format_ms(base.cluster.replica_socket_timeout_ms)}: a run whose follower lost a fetch may end with "
            f"acknowledged records not yet committed (reported as unsettled, not judged); --set settle="
            f"{format_ms(base.cluster.replica_socket_timeout_ms + 10_000)} judges them")
    say = log or (lambda text: None)

    rows: list[dict] = []
    first_violation_s = None
    verdicts: dict[int, Verdict] = {}
    all_schedules: dict[int, list[dict]] = {}
    with _ExploreProgress(progress, f"explore {name}") as bar, ExitStack() as stack:
        search = _Search(seed, prop, workers, dask, fork, early_stop)
        # one pool for the search and the shrinking: a pool's fresh workers take a second or two to start
        search.executor = stack.enter_context(_executor(workers, dask, search.width, run_job))
        t0 = time.perf_counter()
        next_index = 0
        total = budget if budget is not None else 0
        bar.start(total)

        def on_verdict(v: Verdict) -> None:
            nonlocal first_violation_s
            verdicts[v.index] = v
            if v.violated and first_violation_s is None:
                first_violation_s = time.perf_counter() - t0
            bar.advance(v.violated, v.error is not None)

        while True:
            if budget is not None:
                batch = budget - next_index
            else:
                elapsed = time.perf_counter() - t0
                if elapsed >= limit:
                    break
                # a round is a barrier and each of its jobs simulates a prefix: after the first round, size the
                # next to fill the time left at the rate seen so far (a round may overrun the limit a little)
                batch = max(4 * search.width, 16)
                if next_index:
                    batch = max(batch, int(next_index / elapsed * (limit - elapsed)))
            if batch <= 0:
                break
            schedules = [(i, generate(space, seed, i)) for i in range(next_index, next_index + batch)]
            all_schedules.update(schedules)
            next_index += batch
            if budget is None:
                bar.grow(batch)
            search.execute(search.jobs(base, schedules, f"s{next_index}"), on_verdict, bar)
            if budget is not None:
                break
        search_s = time.perf_counter() - t0
        if bar.first_violation_s is not None and first_violation_s is not None:
            first_violation_s = min(first_violation_s, bar.first_violation_s)
        for i in sorted(verdicts):
            v = verdicts[i]
            rows.append({"schedule": i, "faults": json.dumps(all_schedules[i]), "n_faults": len(all_schedules[i]),
                         "first_at_ms": min(parse_duration_ms(f["at"]) for f in all_schedules[i]),
                         "violated": v.violated, "violation": v.violation or "", "unsettled": v.unsettled or "",
                         "error": v.error or "",
                         **{k: v.counts.get(k) for k in ("acked_lost", "acked_pending", "records_lost", "duplicates", "reordered")},
                         "availability": v.availability, "forked_at_ms": v.forked_at_ms, "wall_s": v.wall_s})
        table = pd.DataFrame(rows)
        violators = [i for i in sorted(verdicts) if verdicts[i].violated]
        report = ExploreReport(name, seed, prop.name, kinds, max_faults, space.window, search.width, search.fork,
                               tried=len(verdicts), violated=len(violators),
                               unsettled=sum(v.unsettled is not None for v in verdicts.values()),
                               errors=sum(v.error is not None for v in verdicts.values()), wall_s=0.0,
                               search_s=search_s, first_violation_s=first_violation_s, schedules=table)
        bar.done_line()
        if violators:
            i = violators[0]
            found_data = _named(dict(copy.deepcopy(data), faults=all_schedules[i]), prop, "found",
                                f"Schedule {i} of a kafkasim explore search, before shrinking,")
            report.found = Counterexample(found_data, verdicts[i].violation, i)
            say(f"schedule {i} violates {prop.name}: {verdicts[i].violation}; shrinking ...")
            t1 = time.perf_counter()
            shrunk = shrink(found_data, lambda cands: _run_candidates(search, cands), budget=shrink_budget,
                            on_step=lambda step: say(f"  kept: {step}"))
            report.shrink_s, report.shrink_runs, report.shrink_exhausted = (time.perf_counter() - t1, shrunk.runs,
                                                                           shrunk.exhausted)
            _replay(report, shrunk.data, shrunk.steps, prop, i)
    report.wall_s = time.perf_counter() - t_start
    if out is not None:
        report.out = _write(report, Path(out), figure)
    return report


def _run_candidates(search: _Search, candidates: list[Candidate]) -> list[bool | None]:
    """Run shrink candidates in parallel: those with one base scenario share a job (and a prefix)."""
    by_base: dict[str, tuple[Scenario, list[tuple[int, list[dict]]]]] = {}
    for k, c in enumerate(candidates):
        rest = dict(c.data, faults=[])
        key = json.dumps(rest, sort_keys=True, default=str)
        try:
            if key not in by_base:
                by_base[key] = (validate_scenario(rest), [])
        except ScenarioError:
            continue
        by_base[key][1].append((k, c.faults))
    jobs = [j for n, (sc, scheds) in enumerate(by_base.values()) for j in search.jobs(sc, scheds, f"c{n}")]
    result: dict[int, bool | None] = {}
    search.execute(jobs, lambda v: result.__setitem__(v.index, None if v.error else v.violated))
    return [result.get(k) for k in range(len(candidates))]


def _replay(report: ExploreReport, data: dict, steps: list[str], prop: Property, index: int) -> None:
    """Run the shrunk counterexample from scratch as `kafkasim run` would, and tell its story."""
    from sim.runs.explore.account import account
    from sim.runs.explore.forking import judge
    from sim.runs.runner import run

    data = _named(data, prop, "counterexample", "A counterexample kafkasim explore found")
    sc = validate_scenario(data)
    recorders = []
    results = run(sc, seed=sc.seed, prepare=lambda cluster: recorders.append(cluster.recorder))
    violation, _, _ = judge(sc, recorders[0], prop)
    report.results = results
    report.replayed = violation is not None
    report.counterexample = Counterexample(data, violation or "(the replay did not violate the property)", index, steps)
    report.account = account(results.events, results.batches, data.get("faults", []), violation,
                             sc.partition_names())


def _named(data: dict, prop: Property, suffix: str, what: str) -> dict:
    """`data` renamed <name>-<suffix>, with a description that says what its faults are (not the base's)."""
    data = dict(data)
    base = str(data.get("name", "scenario")).removesuffix("-counterexample").removesuffix("-found")
    data["name"] = f"{base}-{suffix}"
    data["description"] = (f"{what} for {prop.name} over {base}: "
                           + "; ".join(describe_fault(f, length=True) for f in data.get("faults", [])) + ".")
    return data


class _ExploreProgress:
    """Schedules tried, violations found and the rate, on stderr (a rich bar on a terminal)."""

    def __init__(self, enabled: bool, title: str):
        self.enabled, self.title = enabled, title
        self.total = self.done = self.violated = self.failed = 0
        self._display = self._task = None
        self._marks = ""
        self.first_violation_s: float | None = None
        self._t0 = time.monotonic()

    def __enter__(self):
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

            from sim.runs.sweep.progress import ProgressDisplay

            self._display = ProgressDisplay(
                Console(stderr=True), TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[violated]} violated"), TextColumn("{task.fields[rate]}/min"),
                TimeElapsedColumn())
            self._display.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._display is not None:
            self._display.__exit__(*exc)

    def start(self, total: int) -> None:
        self.total, self._t0 = total, time.monotonic()
        if self._display is not None:
            self._task = self._display.add_task(self.title, total=total or None, violated=0, rate="0")

    def grow(self, n: int) -> None:
        self.total += n
        if self._task is not None:
            self._display.bar.update(self._task, total=self.total)

    def advance(self, violated: bool, failed: bool) -> None:
        """A verdict came back (its job finished)."""
        self.done += 1
        self.violated += int(violated)
        self.failed += int(failed)
        self._show()

    def running(self, marks: str) -> None:
        """What the jobs still running have finished so far (their progress files' marks)."""
        self._marks = marks
        if marks and "v" in marks and self.first_violation_s is None:
            self.first_violation_s = time.monotonic() - self._t0
        self._show()

    def _counts(self) -> tuple[int, int, int]:
        m = self._marks
        return self.done + len(m), self.violated + m.count("v"), self.failed + m.count("e")

    def _show(self) -> None:
        if self._task is not None:
            done, violated, _ = self._counts()
            self._display.update(self._task, self._line, 5.0, False, completed=done, violated=violated,
                                 rate=self._rate())

    def _rate(self) -> str:
        return f"{self._counts()[0] / max(time.monotonic() - self._t0, 1e-9) * 60:,.0f}"

    def _line(self) -> str:
        done, violated, failed = self._counts()
        return (f"progress: {self.title}: {done}/{self.total} schedules, {violated} violated"
                + (f", {failed} failed" if failed else "") + f", {self._rate()} schedules/min")

    def done_line(self) -> None:
        if self._display is not None and not self._display.tty:
            self._display.note(self._line())


# --- output ------------------------------------------------------------------------------------
def _check_out(out: Path) -> None:
    """A search writes into a new or empty directory, or replaces an earlier search's; nothing else."""
    problem = writable_problem(out)
    if problem is not None:
        raise ExploreError(f"--out {out}: cannot write there: {problem}")
    if not out.exists():
        return
    if not out.is_dir():
        raise ExploreError(f"--out {out}: exists and is not a directory; choose another path")
    entries = sorted(out.iterdir())
    if entries and not (out / EXPLORE_FILE).is_file():
        shown = ", ".join(e.name for e in entries[:3]) + (", ..." if len(entries) > 3 else "")
        raise ExploreError(f"--out {out}: not empty and not a kafkasim explore directory (it holds {shown}); "
                           f"kafkasim never deletes what it did not write: choose another path")


def _write(report: ExploreReport, out: Path, figure=None) -> Path:
    """The search's directory: explore.json, schedules.csv and, with a violation, the counterexample."""
    _check_out(out)
    out.parent.mkdir(parents=True, exist_ok=True)

    def write(d: Path) -> None:
        d.mkdir()
        report.schedules.to_csv(d / "schedules.csv", index=False)
        if report.found is not None:
            (d / "found.yaml").write_text(report.found.to_yaml(
                f"# schedule {report.found.schedule_index} of a kafkasim explore search, before shrinking: "
                f"{report.found.violation}\n# replay: kafkasim run {out / 'found.yaml'}\n"))
        cx = report.counterexample
        if cx is not None:
            header = (f"# the minimal counterexample for {report.property} found by kafkasim explore "
                      f"(schedule {cx.schedule_index}, shrunk in {len(cx.steps)} steps)\n"
                      f"# {cx.violation}\n# replay: kafkasim run {out / 'counterexample.yaml'}\n")
            (d / "counterexample.yaml").write_text(cx.to_yaml(header))
            (d / "account.md").write_text(_account_markdown(report))
            report.results.write(d / "counterexample")
            if figure is not None:
                figure(d / "counterexample", d / "timeline.png", f"kafkasim explore: {cx.violation}")
        (d / EXPLORE_FILE).write_text(json.dumps(report.summary(), indent=2, default=str) + "\n")

    write_atomic(out, write)
    return out


def _account_markdown(report: ExploreReport) -> str:
    cx = report.counterexample
    lines = [f"# Counterexample: {report.property} violated", "",
             f"Scenario `{report.scenario}`, seed {report.seed}: {cx.violation}.", "",
             "## What happened", ""] + [f"- {s}" for s in report.account]
    lines += ["", "## How it was found", "",
              f"- {report.tried} schedules tried ({report.rate_per_min:,.0f}/min), {report.violated} violated; "
              f"the first is schedule {cx.schedule_index}.",
              f"- Shrunk in {report.shrink_runs} runs from {len(report.found.faults)} to {len(cx.faults)} fault(s):"]
    lines += [f"  - {s}" for s in cx.steps] or ["  - (nothing could be removed)"]
    lines += ["", "Replay it: `kafkasim run counterexample.yaml` (the run directory `counterexample/` is that run).", ""]
    return "\n".join(lines)
