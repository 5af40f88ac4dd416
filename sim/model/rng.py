"""Per-component random streams derived from one run seed.

The run owns all randomness: ``RandomStreams(seed).stream(scope)`` gives each component its
own ``numpy.random.Generator`` keyed by its dotted scope, so adding a consumer never shifts a
producer's arrivals or a fault's timing (common random numbers across scenarios).
"""

from __future__ import annotations

import zlib

import numpy as np

__all__ = ["RandomStreams"]


class RandomStreams:
    """Hands out one independent Generator per component scope."""

    def __init__(self, seed: int):
        self.seed = int(seed)
        self._issued: set[str] = set()

    def stream(self, scope: str) -> np.random.Generator:
        """The Generator for `scope`; each scope may be drawn once per run."""
        if scope in self._issued:
            raise ValueError(f"random stream {scope!r} was already issued for this run")
        self._issued.add(scope)
        key = zlib.crc32(scope.encode("utf-8"))
        return np.random.Generator(np.random.PCG64(np.random.SeedSequence(self.seed, spawn_key=(key,))))
