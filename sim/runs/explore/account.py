"""A plain-language account of a counterexample run, from its events and batches tables.

"leader B1 cut off from everything at 12.000 s; ISR of events-0 shrank to {B1} at 42.010 s; B1 lost
power at 43.000 s; ...": the faults, and what the cluster did about the partitions that lost
data (leader elections, ISR changes, truncations, lost log tails), in time order, then the loss.
"""

from __future__ import annotations

import pandas as pd

__all__ = ["account"]

_FAULT_VERB = {
    "crash": "crashed (SIGKILL)", "controlled_shutdown": "was shut down (SIGTERM)", "partition": "was cut off",
    "degrade": "got a degraded network", "pause": "was paused", "power_loss": "lost power",
    "disk_loss": "lost its disk", "slow_disk": "got a slow disk", "controller_outage": "lost its quorum",
    "producer_crash": "crashed", "consumer_crash": "crashed", "consumer_pause": "was paused",
}
_END_VERB = {"crash": "restarted", "controlled_shutdown": "restarted", "partition": "was reconnected",
             "degrade": "got its normal network back", "pause": "resumed", "power_loss": "got power back and restarted",
             "disk_loss": "restarted on an empty disk", "slow_disk": "got its normal disk back",
             "controller_outage": "regained its quorum", "producer_crash": "restarted", "consumer_crash": "restarted",
             "consumer_pause": "resumed"}


def _isr_verb(before: tuple, after: tuple) -> str:
    return "shrank" if len(after) < len(before) else "grew" if len(after) > len(before) else "changed"


_STORY = {
    "leader_elected": lambda r, n: f"B{int(r['broker'])} elected leader of {n} (epoch {int(r['value'])})",
    "unclean_election": lambda r, n: f"B{int(r['broker'])} elected leader of {n} UNCLEANLY (it was not in the ISR)",
    "partition_offline": lambda r, n: f"{n} went offline (no eligible leader)",
    "isr_change": lambda r, n: f"ISR of {n} {_isr_verb(tuple(r['isr_before']), tuple(r['isr']))} to {_isr(r['isr'])}",
    "truncation": lambda r, n: f"B{int(r['broker'])} truncated {n}, removing {int(r['removed']):,} records",
    "log_lost_tail": lambda r, n: f"B{int(r['broker'])} lost the unflushed tail of {n}: {r['detail']}",
    "broker_fenced": lambda r, n: f"the controller fenced B{int(r['broker'])}",
    "broker_unfenced": lambda r, n: f"the controller unfenced B{int(r['broker'])}",
}
"""How each model event of a partition that lost data (or of a broker) is told; the others are left out."""


def _who(row, led: dict[int, list[str]] | None = None) -> str:
    """The fault's target as a reader wants it: 'B2 (leader of events-0)'."""
    if row["fault"] == "controller_outage" or (row["broker"] < 0 and row["target"] == "controller"):
        return "the controller"
    if row["broker"] < 0:
        return row["target"]
    b = int(row["broker"])
    roles = []
    if str(row["target"]).startswith("follower_of "):
        roles.append(f"a follower of {row['target'].split(' ', 1)[1]}")  # what the fault aimed at
    parts = (led or {}).get(b, [])
    if parts:
        roles.append(f"leader of {', '.join(parts[:3])}{', ...' if len(parts) > 3 else ''}")
    return f"B{b} ({'; '.join(roles)})" if roles else f"B{b}"


def _leaders_at(events: pd.DataFrame, t: float, names) -> dict[int, list[str]]:
    """Broker -> the partitions it led at time `t` (the last election at or before it)."""
    lead = events[(events["kind"] == "leader_elected") & (events["time_ms"] <= t)]
    last = lead.groupby("partition_index")["broker"].last()
    out: dict[int, list[str]] = {}
    for p, b in last.items():
        out.setdefault(int(b), []).append(names(int(p)))
    return out


def _isr(isr) -> str:
    return "{" + ", ".join(f"B{b}" for b in isr) + "}"


def _t(ms: float) -> str:
    return f"{ms / 1000:.3f} s"


def account(events: pd.DataFrame, batches: pd.DataFrame, faults: list[dict], violation: str | None,
            partition_names: list[str] | None = None, limit: int = 40) -> list[str]:
    """The story of a run in time order, one line per step; the partitions that lost data get the detail."""
    lost = batches[(batches["outcome"] == "acked") & (batches["copies_in_log"] == 0)]
    hit = set(lost["partition_index"].astype(int)) if len(lost) else set()
    names = partition_names or []
    name = lambda p: names[p] if 0 <= p < len(names) else f"partition {p}"  # noqa: E731
    lines: list[tuple[float, str]] = []
    for _, r in events.iterrows():
        kind, t = r["kind"], float(r["time_ms"])
        p = int(r["partition_index"])
        if t <= 0:
            continue  # the initial elections and ISRs
        if kind == "fault_start":
            detail = ""
            spec = faults[int(r["fault_index"])] if 0 <= int(r["fault_index"]) < len(faults) else {}
            if r["fault"] in ("partition", "degrade") and spec:
                between = ", ".join(spec.get("between", ["all"]))
                direction = spec.get("direction", "both")
                detail = f" from {between}" + ("" if direction == "both" else f" ({direction} only)")
            lines.append((t, f"{_who(r, _leaders_at(events, t, name))} {_FAULT_VERB.get(r['fault'], r['fault'])}{detail}"))
        elif kind == "fault_end" and r["reason"] != "heal":
            lines.append((t, f"{_who(r)} {_END_VERB.get(r['fault'], 'recovered')}"))
        elif kind == "fault_end":
            lines.append((t, f"{_who(r)} {_END_VERB.get(r['fault'], 'recovered')} (the faults heal at `duration`)"))
        elif kind == "fault_skipped":
            lines.append((t, f"a {r['fault']} of {r['target']} was skipped ({r['reason']})"))
        elif (p in hit or p < 0) and kind in _STORY:
            if kind == "leader_elected" and r["reason"] == "unclean":
                continue  # told by its unclean_election
            lines.append((t, _STORY[kind](r, name(p))))
    out = [f"at {_t(t)}: {text}" for t, text in lines]
    if len(out) > limit:
        out = out[:limit - 1] + [f"... and {len(out) - limit + 1} more events (events.parquet has them all)"]
    if violation:
        by_part = lost.groupby("partition_index", observed=True)["record_count"].sum() if len(lost) else {}
        where = ", ".join(f"{name(int(p))}: {int(n):,}" for p, n in getattr(by_part, "items", lambda: [])())
        out.append(f"result: {violation}" + (f" ({where})" if where else ""))
        if len(lost):
            out.append(f"the lost records arrived at the producer between {_t(lost['first_arrival_ms'].min())} and "
                       f"{_t(lost['last_arrival_ms'].max())} and were acknowledged between "
                       f"{_t(lost['acked_ms'].min())} and {_t(lost['acked_ms'].max())}")
    return out
