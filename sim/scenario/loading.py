"""Reading scenario and sweep files: YAML that rejects repeated keys, size caps, dotted overrides.

`load_raw` turns a path (or a dict) into raw data, every problem a one-line `ScenarioError`;
`set_dotted` applies one ``--set dotted.key=value`` to raw data, guided by the Scenario tree.
Validation into a `Scenario` is `sim.scenario.schema` (`Scenario.resolve`).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from sim.scenario.cluster import LATENCY_PARAMS, RENAMED_CLUSTER_KEYS, LatencyDist
from sim.scenario.errors import ScenarioError, fields_at, model_at, printable
from sim.scenario.faults import FAULT_KINDS

__all__ = ["MAX_FILE_BYTES", "DuplicateKeyError", "UniqueKeyLoader", "load_yaml", "read_text_capped", "load_raw",
           "is_sweep_data", "is_scenario_data", "parse_override", "set_dotted"]


MAX_FILE_BYTES = 1024 * 1024
"""The largest scenario or sweep file read (1 MiB): real ones are a few KB."""


class DuplicateKeyError(yaml.YAMLError):
    """A mapping repeats a key: YAML would silently keep the last value."""

    def __init__(self, key: Any, mark, first):
        super().__init__(f"duplicate key {key!r}")
        self.key, self.mark, self.first = key, mark, first


class UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader that rejects a key repeated in one mapping (merge keys `<<` may still be overridden)."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.setdefault(key, key_node.start_mark)
                except TypeError:  # unhashable: the base constructor reports it
                    continue
                if first is not key_node.start_mark:
                    raise DuplicateKeyError(key, key_node.start_mark, first)
        return super().construct_mapping(node, deep)


def load_yaml(text: str) -> Any:
    """Parse YAML like yaml.safe_load, but a repeated key is an error (DuplicateKeyError)."""
    return yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass


def read_text_capped(path: Path, limit: int = MAX_FILE_BYTES) -> bytes:
    """At most `limit` bytes of a file; a larger file (or an endless one, /dev/zero) is a ScenarioError."""
    with open(path, "rb") as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise ScenarioError(f"{path}: larger than {limit // 1024} KiB, which no kafkasim YAML file needs "
                            f"(they are a few KB): is this the right file?")
    return data


def load_raw(source: str | Path | dict) -> dict:
    if isinstance(source, dict):
        return copy.deepcopy(source)
    path = Path(source)
    if path.is_dir():
        raise ScenarioError(f"{path}: is a directory, expected a scenario YAML file")
    try:
        text = read_text_capped(path)
    except FileNotFoundError:
        raise ScenarioError(f"{path}: no such scenario file") from None
    except IsADirectoryError:
        raise ScenarioError(f"{path}: is a directory, expected a scenario YAML file") from None
    except OSError as e:
        raise ScenarioError(f"{path}: cannot read ({e.strerror})") from None
    try:
        data = load_yaml(text.decode("utf-8"))
    except UnicodeDecodeError:
        raise ScenarioError(f"{path}: not a text file (invalid UTF-8)") from None
    except DuplicateKeyError as e:
        raise ScenarioError(f"{path}: duplicate key {printable(str(e.key))!r} at line {e.mark.line + 1} (first at line "
                            f"{e.first.line + 1}); YAML would silently keep only the last value: keep one") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ScenarioError(f"{path}: invalid YAML{where}: {problem}") from None
    if data is None:
        raise ScenarioError(f"{path}: empty scenario file")
    if not isinstance(data, dict):
        raise ScenarioError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data



def is_sweep_data(data: Any) -> bool:
    """Whether raw YAML data is a sweep file (a base `scenario` and what to vary) rather than a scenario."""
    return isinstance(data, dict) and "scenario" in data and "topics" not in data


def is_scenario_data(data: Any) -> bool:
    """Whether raw YAML data is a scenario file (it has topics and names no base scenario)."""
    return isinstance(data, dict) and "topics" in data and "scenario" not in data


# --- overrides ---------------------------------------------------------------------------------
def parse_override(text: str) -> tuple[str, Any]:
    """Parse one `dotted.key=value`; the value is a YAML literal, falling back to a string."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ScenarioError(f"--set {text!r}: expected dotted.key=value, e.g. producers.0.acks=1")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key, value



def _known_keys(root: type[BaseModel], path: list, node: Any = None) -> list[str]:
    if len(path) == 2 and path[0] in FAULT_KINDS and isinstance(path[1], int):
        # a fault entry: the keys of its kind's spec class (a kindless fault is a crash)
        kind = node.get("kind", "crash") if isinstance(node, dict) else "crash"
        cls = FAULT_KINDS[path[0]].get(kind)
        return [f.alias or n for n, f in cls.model_fields.items()] if cls is not None else []
    return fields_at(root, tuple(p for p in path))


def set_dotted(data: dict, dotted: str, value: Any, root: type[BaseModel]) -> None:
    """Set one dotted-key override in raw data of `root` (the Scenario), whose tree guides the path.

    Keys may themselves contain dots (``producers.0.linger.ms``): at each level the longest
    run of path segments that names an existing or known key wins.
    """
    segs = dotted.split(".")
    node: Any = data
    path: list = []
    i = 0
    while i < len(segs):
        if isinstance(node, list):
            seg = segs[i]
            if not seg.isdigit() or int(seg) >= len(node):
                raise ScenarioError(f"--set {dotted}: {'.'.join(map(str, path)) or 'scenario'} has "
                                    f"{len(node)} entries; {seg!r} is not an index (allowed: 0..{len(node) - 1})")
            idx = int(seg)
            if i == len(segs) - 1:
                node[idx] = value
                return
            node, path, i = node[idx], path + [idx], i + 1
            continue
        if not isinstance(node, dict):
            raise ScenarioError(f"--set {dotted}: {'.'.join(map(str, path))} is a value, not a section")
        known = set(node) | set(_known_keys(root, path, node))
        old_names = set(RENAMED_CLUSTER_KEYS) if path == ["cluster"] else set()  # accepted, not listed
        for j in range(len(segs), i, -1):
            key = ".".join(segs[i:j])
            if key in known or key in old_names:
                break
        else:
            allowed = sorted(known)
            raise ScenarioError(f"--set {dotted}: unknown key {segs[i]!r} under "
                                f"{'.'.join(map(str, path)) or 'scenario'}"
                                + (f" (allowed: {', '.join(allowed)})" if allowed else ""))
        if j == len(segs):
            if key == "dist" and value != node.get("dist") and model_at(root, tuple(path)) is LatencyDist:
                # switching the latency family drops the old family's parameters (a --set cannot
                # remove keys, and LatencyDist rejects parameters its family does not take)
                for k in [k for k in node if k != "dist" and k not in LATENCY_PARAMS.get(value, ())]:
                    del node[k]
            node[key] = value
            return
        if key not in node or node[key] is None:
            node[key] = {}
        node, path, i = node[key], path + [key], j
