"""The measurement layer: computes from the facts the model recorded, never from the model's objects.

`checker` gives every batch its outcome (acked, lost, ...), `invariants` checks protocol safety
properties, `metrics` computes latency, failover and level metrics, `stats` the estimators they use.
"""
