"""Collect every invariant violation of the runs made inside a block (the summary keeps only 5 examples)."""

from __future__ import annotations

import contextlib
from unittest import mock


@contextlib.contextmanager
def all_violations():
    """Collect every invariant violation of the runs made inside (the summary keeps only 5 examples)."""
    import sim.runs.runner

    found: list[str] = []
    real = sim.runs.runner.check_invariants_by_rule

    def keep(recorder):
        out = real(recorder)
        found.extend(v for vs in out.values() for v in vs)
        return out

    with mock.patch.object(sim.runs.runner, "check_invariants_by_rule", keep):
        yield found
