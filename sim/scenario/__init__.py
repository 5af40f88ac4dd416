"""The scenario layer: what a user declares (YAML, overrides, Kafka properties files), validated.

`schema` is the pydantic model of a scenario file (`Scenario`), its parts live by concept beside
it: `cluster` (brokers, network, hardware, topics), `clients` (producers, consumers), `faults`
(fault specs, operator actions, random fault processes), `types` (field types), `checks` (the
cross-field rules, one function each), `loading` (YAML, overrides) and `errors` (`ScenarioError`,
one-line errors). `units` parses durations, sizes and rates; `versions` holds the defaults that
change with `kafka.version`; `kafka_config` maps Kafka's own properties files onto a scenario.
Nothing here knows about the model.
"""

from sim.scenario.schema import Scenario, ScenarioError, load_scenario

__all__ = ["Scenario", "ScenarioError", "load_scenario"]
