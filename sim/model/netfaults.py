"""Which links a network fault touches, and the degradation it applies (docs/faults/net.md).

A link fault (``partition``, ``degrade``) names its targets (a broker, a partition's leader, a set
of brokers, a rack or a zone) and the kinds of endpoint they lose or degrade their links to:
``peers`` (brokers outside the target set), ``controller``, ``clients`` (producers and consumers)
or ``all``. Endpoints inside the target set, or in the zone a zone fault targets, keep their links:
a zone partition cuts the zone off from the rest, not from itself. ``direction`` picks the links:
``both``, ``outbound`` (target -> them: the target cannot reach them, they still reach it) or
``inbound`` (them -> target).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sim.model.distributions import make_latency
from sim.model.network import Degradation

if TYPE_CHECKING:
    import numpy as np

__all__ = ["fault_links", "make_degradation"]


def fault_links(spec, targets: list[int], brokers: list, controller, network) -> dict[int, list[tuple]]:
    """Target broker id -> the (src, dst) links the fault applies to while that broker is under it."""
    between = set(spec.between)
    if "all" in between:
        between = {"peers", "controller", "clients"}
    inside = set(targets)
    zone = getattr(spec, "zone", None)
    others = []
    if "peers" in between:
        others += [b for b in brokers if b.broker_id not in inside]
    if "controller" in between and controller is not None:
        others.append(controller)
    if "clients" in between:
        servers = {id(b) for b in brokers} | {id(controller)}
        others += [ep for ep in network.endpoints if id(ep) not in servers]
    if zone is not None:  # a zone fault separates the zone from the others, not the zone from itself
        others = [ep for ep in others if getattr(ep, "zone", None) != zone]
    links = {}
    for t in targets:
        b = brokers[t]
        out = [(b, o) for o in others] if spec.direction in ("both", "outbound") else []
        inb = [(o, b) for o in others] if spec.direction in ("both", "inbound") else []
        links[t] = out + inb
    return links


def make_degradation(spec, rng: "np.random.Generator | None") -> Degradation:
    """The Degradation of a `degrade` fault spec (its latency draws from the link-fault stream)."""
    latency = None
    if spec.latency is not None:
        if rng is None:
            raise ValueError("a degrade fault with latency needs the injector's net_rng")
        latency = make_latency(spec.latency, rng)
    return Degradation(latency, spec.loss, spec.rto_min, spec.rto_max, spec.retries)
