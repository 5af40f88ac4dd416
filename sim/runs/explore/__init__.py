"""Fault-schedule search: find a sequence of faults that breaks a property, and shrink it (`kafkasim explore`).

Modules: `schedules` (random schedules over a scenario), `properties` (what each run must satisfy),
`forking` (running schedules over one shared fault-free prefix), `shrink` (minimising a violating
schedule), `account` (its plain-language story), `search` (the orchestration, `sim.explore`).
"""

from sim.runs.explore.search import Counterexample, ExploreError, ExploreReport, explore

__all__ = ["explore", "ExploreReport", "ExploreError", "Counterexample"]
