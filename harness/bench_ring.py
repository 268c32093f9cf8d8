"""`vringfuzz bench ring`: round trips per second through the reference ring.

One round trip = add_sgs, kick, pop, push, needs_interrupt, get_buf on plain
GuestMemory (no scheduler).  Each configuration is timed in `repeats` slices
and the median is reported, all configurations in the same run so their ratios
are comparable.  Rates are per CPU second of this process (time.process_time),
so other load on a shared machine slows them less than wall time would; the
clock measures the benchmark only and never feeds a replay.
"""
from __future__ import annotations

import statistics
import time

from vring import open_queue
from vring.features import F_EVENT_IDX, F_INDIRECT_DESC

CONFIGS = [
    ("1 elem, direct", 1, 0),
    ("1 elem, event_idx", 1, F_EVENT_IDX),
    ("4 elems, direct", 4, 0),
    ("4 elems, indirect", 4, F_INDIRECT_DESC),
]


def _round_trips(n_elems: int, features: int, seconds: float) -> float:
    drv, dev, mem, _ = open_queue(256, features)
    bufs = [(mem.alloc(64), 64) for _ in range(n_elems)]
    out, in_ = bufs[: (n_elems + 1) // 2], bufs[(n_elems + 1) // 2:]
    if not in_:
        out, in_ = [], bufs
    add, kick, pop, push = drv.add_sgs, drv.kick, dev.pop, dev.push
    needs, get = dev.needs_interrupt, drv.get_buf
    count = 0
    t0 = time.process_time()
    end = t0 + seconds
    while True:
        for _ in range(200):
            add(out, in_, 1)
            kick()
            c = pop()
            push(c.head, 0)
            needs()
            get()
        count += 200
        if time.process_time() >= end:
            break
    return count / (time.process_time() - t0)


def bench_ring(seconds: float = 1.0, repeats: int = 5) -> list[dict]:
    rows = []
    for name, n, feats in CONFIGS:
        rates = [_round_trips(n, feats, seconds / repeats) for _ in range(repeats)]
        rows.append({"config": name, "median_round_trips_per_s": statistics.median(rates),
                     "min": min(rates), "max": max(rates), "repeats": repeats})
    return rows


def format_rows(rows: list[dict]) -> str:
    lines = [f"{'configuration':<22}{'median rt/s':>14}{'min':>12}{'max':>12}   (per CPU second)"]
    for r in rows:
        lines.append(f"{r['config']:<22}{r['median_round_trips_per_s']:>14,.0f}"
                     f"{r['min']:>12,.0f}{r['max']:>12,.0f}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(format_rows(bench_ring()))
