"""Recovery after a network partition of a follower, by cut length (issue 21, "Messages on a cut link").

A follower of a one-partition topic (RF 3, min.insync.replicas 2, acks=all, 1,000 records/s) is cut
from its peers (both ways) at 15 s for 1, 5, 30 and 120 s. For each cut the table gives the produce
latency (p50 and max) of the batches sent from the cut until 10 s after the heal, when the ISR lost
the follower and when it was full again (seconds after the heal), and acknowledged records lost::

    python bench/cut_recovery.py            # this checkout's model
    python bench/cut_recovery.py 2 30       # only these cut lengths (seconds)
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CUTS_S = (1, 5, 30, 120)


def measure(cut_s: float, seed: int = 1) -> dict:
    import sim
    at = 15_000.0
    heal = at + cut_s * 1000.0
    overrides = {
        "duration": f"{int(15 + cut_s + 60)}s", "settle": "30s",
        "topics.0.partitions": 1, "producers.0.instances": 1, "producers.0.rate": "1000/s",
        "producers.0.acks": "all", "consumers": [],
        "faults": [{"kind": "partition", "follower_of": "events-0", "between": ["peers"], "at": "15s",
                    "heal": f"{cut_s}s"}],
    }
    res = sim.run(ROOT / "scenarios/faults/partition.yaml", seed=seed, overrides=overrides)
    b = res.batches
    b = b[(b["outcome"] == "acked") & (b["sent_ms"] >= at) & (b["sent_ms"] < heal + 10_000)]
    lat = b["acked_ms"] - b["sent_ms"]
    ev = res.events
    isr = ev[(ev["kind"] == "isr_change") & (ev["time_ms"] > at)]
    shrunk = isr[isr["value"] < 3]
    full = isr[(isr["value"] == 3) & (isr["time_ms"] > (shrunk["time_ms"].min() if len(shrunk) else at))]
    return {
        "cut_s": cut_s, "p50_ms": lat.median(), "max_ms": lat.max(),
        "isr_shrunk_s": (shrunk["time_ms"].min() - heal) / 1000.0 if len(shrunk) else None,
        "isr_full_s": (full["time_ms"].min() - heal) / 1000.0 if len(shrunk) and len(full) else None,
        "acked_lost": res.summary["acked_lost"], "violations": res.summary["invariant_violations"],
    }


def main(argv: list[str]) -> int:
    cuts = [float(a) for a in argv] or CUTS_S
    print(f"{'cut s':>6} {'p50 ms':>8} {'max ms':>8} {'ISR shrunk (s after heal)':>26} {'ISR full (s after heal)':>24} "
          f"{'acked_lost':>10}")
    for cut in cuts:
        r = measure(cut)
        fmt = lambda v: "-" if v is None else f"{v:.1f}"  # noqa: E731
        print(f"{r['cut_s']:>6g} {r['p50_ms']:>8.0f} {r['max_ms']:>8.0f} {fmt(r['isr_shrunk_s']):>26} "
              f"{fmt(r['isr_full_s']):>24} {r['acked_lost']:>10}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
