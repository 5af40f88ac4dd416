"""The sweep file: its schema, and its expansion into one validated run per combination and seed."""

from __future__ import annotations


import hashlib
import json
import math
import warnings
from dataclasses import dataclass
from itertools import product
from pathlib import Path
from typing import Any, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


from sim.scenario.schema import Scenario, ScenarioError, apply_overrides
from sim.scenario.loading import load_raw, is_scenario_data, is_sweep_data


MAX_RUNS = 100_000
"""The most runs one sweep may expand to (combinations x seeds): each is validated and held before any runs."""


SWEEP_NAME = r"^[A-Za-z0-9._-]+$"


class SweepError(ScenarioError):
    """A bad sweep file, key or value, phrased as one line per problem; nothing has run."""


# --- the sweep file ------------------------------------------------------------------------------
class SweepSpec(BaseModel):
    """A sweep file as written; :func:`load_sweep` resolves it into a :class:`Sweep`."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str | None = Field(None, pattern=SWEEP_NAME, description=(
        "sweep name (default: the file name); names results/sweeps/<name>/ and prefixes run ids"))
    description: str = Field("", description="what the sweep asks")
    scenario: str | dict[str, Any] = Field(..., description=(
        "base scenario: a path (relative to the sweep file) or an inline scenario mapping"))
    overrides: dict[str, Any] = Field(default_factory=dict, alias="set", description=(
        "dotted overrides applied to the base before the grid, like `kafkasim run --set`"))
    grid: dict[str, list[Any]] = Field(default_factory=dict, description=(
        "dotted scenario key -> list of values; every combination of the lists runs"))
    zip_groups: list[dict[str, list[Any]]] = Field(default_factory=list, alias="zip", description=(
        "groups of keys that vary together: equal-length lists, one run per position"))
    seeds: int | list[int] = Field(1, description="a count N (seeds 0..N-1) or a list of seeds")

    @model_validator(mode="before")
    @classmethod
    def _check_shape(cls, data: Any) -> Any:
        # Hand-written messages that name the dotted key; pydantic's union errors would not.
        if not isinstance(data, dict):
            raise ValueError(f"sweep: expected a mapping at the top level, got {type(data).__name__}")
        # an empty YAML section (`grid:` and nothing under it) means none
        data = {k: v for k, v in data.items() if not (k in ("set", "grid", "zip") and v is None)}
        if "scenario" in data and not isinstance(data["scenario"], (str, dict)):
            raise ValueError("scenario: must be a path to a scenario file or an inline scenario mapping")
        if not isinstance(data.get("set", {}), dict):
            raise ValueError("set: must be a mapping of dotted scenario keys to values")
        grid = data.get("grid", {})
        if not isinstance(grid, dict):
            raise ValueError("grid: must be a mapping of dotted scenario keys to lists of values")
        _check_axis("grid", grid)
        groups = data.get("zip", [])
        if not isinstance(groups, list):
            raise ValueError("zip: must be a list of groups, each a mapping of dotted keys to equal-length lists")
        for i, group in enumerate(groups):
            if not isinstance(group, dict) or not group:
                raise ValueError(f"zip.{i}: must be a non-empty mapping of dotted keys to equal-length lists")
            _check_axis(f"zip.{i}", group)
            lengths = {k: len(v) for k, v in group.items()}
            if len(set(lengths.values())) > 1:
                raise ValueError(f"zip.{i}: lists must have the same length ("
                                 + ", ".join(f"{k} has {n}" for k, n in lengths.items()) + ")")
        seeds = data.get("seeds", 1)
        if isinstance(seeds, list):
            bad = [s for s in seeds if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s <= 2**63 - 1]
            if not seeds or bad:
                raise ValueError("seeds: a list of seeds must be non-empty integers in 0..2**63-1"
                                 + (f", got {bad[0]!r}" if bad else ""))
            if len(set(seeds)) != len(seeds):
                raise ValueError("seeds: the list repeats a seed")
        elif isinstance(seeds, bool) or not isinstance(seeds, int) or not 1 <= seeds <= 1_000_000:
            raise ValueError(f"seeds: must be a count 1..1000000 (seeds 0..N-1) or a list of seeds, got {seeds!r}")
        return data


def _check_axis(section: str, axis: dict) -> None:
    for key, values in axis.items():
        if not isinstance(key, str) or not key:
            raise ValueError(f"{section}: keys must be dotted scenario keys such as producers.0.acks, got {key!r}")
        if not isinstance(values, list):
            raise ValueError(f"{section}.{key}: must be a list of values, e.g. [0, 1, all]")
        if not values:
            raise ValueError(f"{section}.{key}: must list at least one value")


@dataclass(frozen=True)
class SweepRun:
    """One run of a sweep: a parameter combination, a seed, and the scenario they resolve to."""

    run_id: str
    seed: int
    params: dict[str, Any]
    """Swept dotted key -> value as written in the sweep file."""
    scenario: Scenario
    """The fully resolved scenario, with ``seed`` set to this run's seed."""
    combination: int
    """Index of the parameter combination in expansion order (grid keys, then zip groups)."""
    checked: tuple[str, ...] | None = None
    """The run's scenario and work warnings, computed once per combination before the sweep runs
    (`sim.runs.runner.run(checked=...)`); None: the run computes them."""


@dataclass(frozen=True)
class Sweep:
    """A validated, expanded sweep: every run is known (and valid) before any runs."""

    name: str
    description: str
    base: dict
    """The raw base scenario with the sweep's ``set`` applied; combinations are applied to it."""
    grid: dict[str, list]
    zip_groups: list[dict[str, list]]
    seeds: tuple[int, ...]
    runs: tuple[SweepRun, ...]

    @property
    def params(self) -> list[str]:
        """The swept dotted keys, in sweep.parquet column order (grid, then zip groups)."""
        return [*self.grid, *(k for g in self.zip_groups for k in g)]

    @property
    def combinations(self) -> int:
        """Number of parameter combinations (runs = combinations x seeds)."""
        return len(self.runs) // len(self.seeds)

    def to_yaml(self) -> str:
        """The resolved sweep file: running it again gives the same runs and run ids."""
        spec = {"name": self.name, "description": self.description, "scenario": self.base,
                "grid": self.grid, "zip": self.zip_groups, "seeds": list(self.seeds)}
        return yaml.safe_dump(spec, sort_keys=False, allow_unicode=True)


SweepLike = Union[Sweep, SweepSpec, str, Path, dict]


def load_sweep(source: SweepLike) -> Sweep:
    """Read, validate and expand a sweep (a path, a mapping or a SweepSpec) into its runs.

    A relative base-scenario path is relative to the sweep file, or to the working directory
    when the sweep is a mapping.
    """
    if isinstance(source, Sweep):
        return source
    default_name, base_dir = None, Path.cwd()
    if isinstance(source, SweepSpec):
        spec = source
    else:
        if isinstance(source, (str, Path)):
            path = Path(source)
            try:
                data = load_raw(path)
            except ScenarioError as e:  # same loader as scenario files; say what kind of file it is
                raise SweepError(str(e).replace("scenario YAML file", "sweep YAML file")
                                 .replace("scenario file", "sweep file")) from None
            default_name, base_dir = path.stem, path.parent
            if is_scenario_data(data):
                raise SweepError(f"{path}: is a scenario file, not a sweep; run it with `kafkasim run {path}`, "
                                 f"or name it in a sweep file (scenario: {path.name})")
        else:
            data = source
        try:
            spec = SweepSpec.model_validate(data)
        except ValidationError as e:
            raise SweepError(_format_spec_errors(e)) from None
    return _expand(spec, default_name, base_dir, Path(source) if isinstance(source, (str, Path)) else None)


def _format_spec_errors(err: ValidationError) -> str:
    """pydantic errors of a sweep file as `field: problem (allowed: ...)`, one line each."""
    allowed = ", ".join(f.alias or n for n, f in SweepSpec.model_fields.items())
    lines = []
    for e in err.errors(include_url=False):
        loc = ".".join(str(x) for x in e["loc"])
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = f"unknown key (allowed: {allowed})"
        elif e["type"] == "missing" and loc == "scenario":
            msg = "required: a path to the base scenario or an inline scenario"
        elif e["type"] == "string_pattern_mismatch":
            msg = "must be letters, digits, '.', '_' or '-' (it names a directory and prefixes run ids)"
        lines.append(msg if not loc else f"{loc}: {msg}")
    return "\n".join(dict.fromkeys(lines))


def _expand(spec: SweepSpec, default_name: str | None, base_dir: Path, source: Path | None = None) -> Sweep:
    """Resolve the base, check every key, validate every combination, then list the runs (`source`: the
    sweep file, if it is one)."""
    if isinstance(spec.scenario, dict):
        base = spec.scenario
    else:
        base_path = Path(spec.scenario)
        base_path = base_path if base_path.is_absolute() else base_dir / base_path
        try:
            base = load_raw(base_path)
        except ScenarioError as e:
            raise SweepError(f"scenario: {e}") from None
        if is_sweep_data(base):  # read as a scenario, it would fail on the first swept key
            itself = source is not None and base_path.resolve() == source.resolve()
            raise SweepError(f"scenario: {spec.scenario} is a sweep file, not a scenario"
                             f"{' (this sweep file itself)' if itself else ''}; "
                             "name the scenario file the sweep varies")
    sections = {**{k: "set" for k in spec.overrides}, **{k: "grid" for k in spec.grid}}
    for i, group in enumerate(spec.zip_groups):
        for key in group:
            if key in sections:
                raise SweepError(f"zip.{i}.{key}: already set in {sections[key]} (a key may appear once)")
            sections[key] = f"zip.{i}"
    for key in spec.grid:
        if key in spec.overrides:
            raise SweepError(f"set.{key}: also swept in grid (a key may appear once)")
    for key, where in sections.items():
        if key == "seed":
            raise SweepError(f"{where}.seed: use `seeds` to vary the seed")
        for other in sections:
            if other.startswith(key + "."):
                raise SweepError(f"{sections[other]}.{other}: overlaps {where}.{key} (sweep one or the other)")
    try:
        base = apply_overrides(base, spec.overrides)
    except ScenarioError as e:
        raise SweepError(f"set.{str(e).removeprefix('--set ')}") from None
    swept = {**spec.grid, **{k: v for g in spec.zip_groups for k, v in g.items()}}
    for key, values in swept.items():  # a bad key is reported once, not once per combination
        try:
            apply_overrides(base, {key: values[0]})
        except ScenarioError as e:
            raise SweepError(f"{sections[key]}.{str(e).removeprefix('--set ')}") from None

    n_seeds = spec.seeds if isinstance(spec.seeds, int) else len(spec.seeds)
    n_combos = math.prod(len(v) for v in spec.grid.values()) * math.prod(
        len(next(iter(g.values()))) for g in spec.zip_groups)
    if n_combos * n_seeds > MAX_RUNS:
        raise SweepError(f"seeds: {n_seeds:,} seeds x {n_combos:,} combinations = {n_combos * n_seeds:,} runs, more "
                         f"than the {MAX_RUNS:,} one sweep may have (use fewer seeds or values, or split the sweep)")
    axes = [[{key: v} for v in values] for key, values in spec.grid.items()]
    axes += [[{k: vs[i] for k, vs in g.items()} for i in range(len(next(iter(g.values()))))]
             for g in spec.zip_groups]
    combos = [{k: v for part in parts for k, v in part.items()} for parts in product(*axes)]
    scenarios = [_resolve_combination(base, combo, sections) for combo in combos]

    name = spec.name or default_name or scenarios[0].name
    seeds = tuple(range(spec.seeds)) if isinstance(spec.seeds, int) else tuple(spec.seeds)
    digests: dict[str, dict] = {}
    runs = []
    for index, (combo, sc) in enumerate(zip(combos, scenarios)):
        digest = params_digest(combo)
        if digests.setdefault(digest, combo) != combo:  # 32 bits: ~1e-4 odds at 1000 combinations
            raise SweepError(f"grid: combinations {digests[digest]} and {combo} share run-id hash {digest} "
                             "(a one-in-four-billion coincidence); write one of their values differently, "
                             "e.g. 1.0 for 1")
        for seed in seeds:
            runs.append(SweepRun(f"{name}-{digest}-s{seed:04d}", seed, combo,
                                 sc.model_copy(update={"seed": seed}), index))
    return Sweep(name, spec.description, base, dict(spec.grid), [dict(g) for g in spec.zip_groups], seeds,
                 tuple(runs))


def _resolve_combination(base: dict, combo: dict, sections: dict[str, str]) -> Scenario:
    # e.g. legacy acks=2: printed once per combination by the caller, and each run reports it in its
    # summary. Recorded, not ignored: validate_scenario's own simplefilter("always") would override an
    # "ignore" filter, and the raw warning would print with a source line.
    with warnings.catch_warnings(record=True):
        try:
            return Scenario.resolve(base, combo)
        except ScenarioError as e:
            first = str(e).splitlines()[0].removeprefix("--set ")
    field = first.partition(": ")[0]
    if field in combo and field in sections:
        raise SweepError(f"{sections[field]}.{first}")
    if not combo:
        raise SweepError(first if first.startswith("scenario: ") else f"scenario: {first}")
    # a cross-field problem: name the combination that caused it
    raise SweepError(f"{first.removeprefix('scenario: ')} "
                     f"(with {', '.join(f'{k}={_as_text(v)}' for k, v in combo.items())})")


def params_digest(params: dict[str, Any]) -> str:
    """8 hex digits of SHA-256 over the sorted parameter items: stable across processes and runs."""
    text = json.dumps(sorted(params.items()), separators=(",", ":"), sort_keys=True, default=str,
                      ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def _as_text(v: Any) -> str:
    """A parameter value as text: strings as they are, everything else as JSON (0, true, 1.5)."""
    return v if isinstance(v, str) else json.dumps(v, sort_keys=True, default=str)
