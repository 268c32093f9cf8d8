"""Figures for the README: round trips through the Linux driver, hook costs.

    python -m harness.linux.bench [--repeats 5] [--n 20000] [--runs 200]

Each figure is the median of `repeats` runs (the machine is shared: quote
medians).  A round trip is add_sgs (1 element) + kick + the reference
device's pop/push + get_buf.  Speed is for benchmarks, never for tests.
"""
from __future__ import annotations

import argparse
import statistics
import time

from vring.contract import build, setup_queue
from vring.features import F_VERSION_1
from vring.memory import GuestMemory
from vring.platform import Platform

from .driver import linux_memory


_DRIVERS = {"linux": "harness.linux.driver:make", "linux-tsan": "harness.linux.driver:make_tsan",
            "reference": "reference"}


def _round_trips(driver: str, n: int, listen: bool = False) -> tuple[float, float]:
    """(round trips/s, C accesses to guest memory per round trip)."""
    mem = linux_memory(1 << 18)
    plat = Platform()
    cfg = setup_queue(mem, 256, F_VERSION_1)
    drv = build(_DRIVERS[driver], "driver", mem, cfg, plat)
    seen = [0]
    if listen:
        def on_access(addr, size, is_write):
            seen[0] += 1
        drv.on_access = on_access
    dev = build("reference", "device", mem, cfg, plat)
    buf = mem.alloc(64)
    t0 = time.perf_counter()
    for i in range(n):
        drv.add_sgs([(buf, 64)], [], i)
        drv.kick()
        dev.push(dev.pop().head, 0)
        drv.get_buf()
    return n / (time.perf_counter() - t0), seen[0] / n


def _barrier_cost_ns(n: int) -> tuple[float, float, float]:
    """kick_prepare (exactly one virtio_mb) with the barrier hook, without it,
    and a bare ctypes call: (with - without) is the cost of one hook."""
    mem = linux_memory(1 << 16)
    cfg = setup_queue(mem, 8, F_VERSION_1)
    drv = build("harness.linux.driver:make", "driver", mem, cfg, Platform())
    lib = drv._lib

    def per_call(fn):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        return (time.perf_counter() - t0) / n * 1e9

    with_hook = per_call(drv.kick_prepare)
    lib.install_hooks(barrier=False)              # NULL: the glue skips the hook
    try:
        without = per_call(drv.kick_prepare)
    finally:
        lib.install_hooks()
    q = drv._q
    bare = per_call(lambda: lib.lib.vf_num_free(q))
    return with_hook, without, bare


def _points(driver: str, device: str, model: str, runs: int) -> tuple[float, float]:
    """(scheduling points/s, points per run) of `runs` random schedules of the
    net scenario: every point is one scheduler decision (Scheduler.steps)."""
    from harness.sched.random import RandomSource
    from harness.world import run_once
    params = {"scenario": "net", "driver": driver, "device": device, "memory_model": model}
    source = RandomSource(1)
    steps = 0
    t0 = time.perf_counter()
    for _ in range(runs):
        source.new_execution()
        steps += run_once(params, source, trace=False).steps
    return steps / (time.perf_counter() - t0), steps / runs


#: Instrumentation levels for the scheduling-point figure.
_LEVELS = (
    ("reference driver (Python: every access)", "reference", "reference"),
    ("linux: API calls + barriers + notify", "harness.linux.driver:make", "reference"),
    ("linux-tsan: + every C load/store", "harness.linux.driver:make_tsan", "reference"),
    ("linux-vringh device: API calls + barriers", "reference", "harness.linux.vringh:make"),
)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--runs", type=int, default=200, help="runs per scheduling-point figure")
    ap.add_argument("--only-points", action="store_true")
    a = ap.parse_args(argv)
    for model in ("sc", "tso"):
        for label, drv, dev in _LEVELS:
            runs = [_points(drv, dev, model, a.runs) for _ in range(a.repeats)]
            rate = statistics.median(r[0] for r in runs)
            print(f"scheduling points/s, net scenario, {model}, {label}: {rate:,.0f} "
                  f"({runs[0][1]:.0f} points/run)")
    if a.only_points:
        return 0
    med = lambda f: statistics.median(f() for _ in range(a.repeats))  # noqa: E731
    for label, driver, listen in (
            ("linux driver (API calls + barriers + notify hooks)", "linux", False),
            ("linux driver, tsan build, no access listener", "linux-tsan", False),
            ("linux driver, tsan build, Python listener on every access", "linux-tsan", True),
            ("reference driver (pure Python)", "reference", False)):
        runs = [_round_trips(driver, a.n, listen) for _ in range(a.repeats)]
        rate = statistics.median(r[0] for r in runs)
        extra = f"; {runs[0][1]:.0f} guest accesses/round trip" if listen else ""
        print(f"round trips/s, {label} + reference device: {rate:,.0f}{extra}")
    runs = [_barrier_cost_ns(a.n) for _ in range(a.repeats)]
    w, wo, bare = (statistics.median(r[k] for r in runs) for k in range(3))
    print(f"kick_prepare (one virtio_mb): {w:,.0f} ns with the barrier hook, "
          f"{wo:,.0f} ns without; one barrier hook = {w - wo:,.0f} ns; "
          f"bare ctypes call {bare:,.0f} ns")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
