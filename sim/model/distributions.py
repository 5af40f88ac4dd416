"""Latency distributions as small value objects: validated once, sampled in vectorised chunks."""

from __future__ import annotations

import numpy as np

__all__ = ["Distribution", "make_latency"]


class Distribution:
    """A non-negative distribution of milliseconds, sampled from a buffered chunk for speed."""

    chunk = 4096

    def __init__(self, kind: str, rng: np.random.Generator, **params: float):
        self.kind, self.params, self.rng = kind, params, rng
        self._draws = iter(())  # the current chunk's draws, as Python floats

    def _refill(self) -> None:
        p, n, r = self.params, self.chunk, self.rng
        if self.kind == "constant":
            self._draws = iter([p["value"]] * n)
            return
        if self.kind == "uniform":
            buf = r.uniform(p["low"], p["high"], n)
        elif self.kind == "normal":
            buf = np.maximum(r.normal(p["mean"], p["std"], n), 0.0)
        elif self.kind == "lognormal":
            buf = p["median"] * np.exp(r.normal(0.0, p["sigma"], n))
        else:
            buf = r.exponential(p["mean"], n)
        self._draws = iter(buf.tolist())

    def sample(self) -> float:
        """One draw in ms."""
        # one draw per network message: an iterator step is the cheapest way to hand it out
        try:
            return next(self._draws)
        except StopIteration:
            self._refill()
            return next(self._draws)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v:g}" for k, v in self.params.items())
        return f"{self.kind.capitalize()}({args})"


def make_latency(spec, rng: np.random.Generator) -> Distribution:
    """Build a Distribution from a scenario `LatencyDist`."""
    params = {k: float(getattr(spec, k)) for k in type(spec).model_fields
              if k != "dist" and getattr(spec, k) is not None}
    return Distribution(spec.dist, rng, **params)
