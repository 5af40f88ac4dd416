"""The scenario layer: what a user declares (YAML, overrides, Kafka properties files), validated.

`schema` is the pydantic model of a scenario file; `units` parses durations, sizes and rates;
`versions` holds the defaults that change with `kafka.version`; `kafka_config` maps Kafka's own
properties files onto a scenario. Nothing here knows about the model.
"""

from sim.scenario.schema import Scenario, ScenarioError, load_scenario

__all__ = ["Scenario", "ScenarioError", "load_scenario"]
