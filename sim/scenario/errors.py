"""Scenario errors: `ScenarioError` and pydantic's errors rendered one line each.

Every problem with a scenario, an override or a sweep file becomes one line,
`field.path: message (allowed: ...)`, which the CLI prints with exit code 2 (no traceback).
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ValidationError

from sim.scenario.faults import FAULT_KINDS, RandomFault, ScheduledFault

__all__ = ["ScenarioError", "printable", "format_errors", "fields_at", "model_at"]


class ScenarioError(ValueError):
    """A scenario, override or sweep problem, already phrased as one line per problem."""


def printable(text: str) -> str:
    """Escape control characters (a key like "\\r" must not break a one-line error)."""
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")


def format_errors(err: ValidationError, root: type[BaseModel]) -> str:
    """Render pydantic errors of validating `root` as `field.path: message (allowed: ...)`, one per line."""
    lines = []
    for e in err.errors(include_url=False):
        raw = tuple(e["loc"])
        parts = _without_kind_tags(raw)
        msg = e["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        if e["type"] in ("union_tag_invalid", "union_tag_not_found"):  # a fault's kind
            if e["type"] == "union_tag_invalid" or isinstance(e.get("input"), dict):
                parts = (*parts, "kind")
                tags = e.get("ctx", {}).get("expected_tags") or _kind_tags(raw)
                msg = f"must be one of {tags}"
            else:
                msg = f"must be a mapping with a kind (allowed kinds: {_kind_tags(raw)})"
        loc = ".".join(str(x) for x in parts if not str(x).startswith("function-"))
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
            parent = fields_at(root, raw[:-1])
            if parent:
                msg += f" (allowed: {', '.join(parent)})"
        elif e["type"] == "literal_error":
            msg = msg.replace("Input should be", "must be one of")
        loc, msg = printable(loc), printable(msg)
        if not loc and re.match(r"^[A-Za-z_][\w.]*: ", msg):
            lines.append(msg)  # a cross-field check that already names its field
        else:
            lines.append(f"{loc or 'scenario'}: {msg}")
    # one line per distinct problem, most specific first
    return "\n".join(dict.fromkeys(lines))


def fields_at(root: type[BaseModel], loc: tuple) -> list[str]:
    """The allowed keys of the model found at `loc` in the tree of `root` (the Scenario)."""
    model = model_at(root, loc)
    return [f.alias or n for n, f in model.model_fields.items()] if model is not None else []


def _without_kind_tags(loc: tuple) -> tuple:
    """`loc` without the kind tag pydantic puts after a fault's index (faults.0.crash.at -> faults.0.at)."""
    return tuple(x for i, x in enumerate(loc) if not _is_kind_tag(loc, i))


def _is_kind_tag(loc: tuple, i: int) -> bool:
    return (i >= 2 and isinstance(loc[i - 1], int) and loc[i - 2] in FAULT_KINDS
            and loc[i] in FAULT_KINDS[loc[i - 2]])


def _kind_tags(loc: tuple) -> str:
    """The allowed kinds of the fault list `loc` is in, quoted as pydantic lists choices."""
    kinds = next((FAULT_KINDS[x] for x in loc if x in FAULT_KINDS), {})
    return ", ".join(f"'{k}'" for k in kinds)


def model_at(root: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """The model class found at `loc` in the tree of `root`, the Scenario (None for plain values and unknown paths).

    A fault's kind tag in `loc` (faults.0.crash) selects that kind's spec class.
    """
    model: Any = root
    for i, part in enumerate(loc):
        if isinstance(part, int):
            continue
        if _is_kind_tag(loc, i):
            model = FAULT_KINDS[loc[i - 2]][part]
            continue
        if model is root and part in FAULT_KINDS:  # a union of kinds: the base until the kind tag
            model = ScheduledFault if part == "faults" else RandomFault
            continue
        field = None
        for name, f in model.model_fields.items():
            if part in (name, f.alias):
                field = f
                break
        if field is None:
            return None
        ann = field.annotation
        args = getattr(ann, "__args__", ()) or ()
        candidates = [ann, *args, *[a for x in args for a in getattr(x, "__args__", ())]]
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if model is None:
            return None
    return model
