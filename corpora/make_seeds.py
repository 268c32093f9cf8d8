#!/usr/bin/env python3
"""Generate the seed corpora of the fuzz targets, deterministically.

    python corpora/make_seeds.py    # rewrites corpora/desc_chain, used_ring, schedule

Rules: seeds are generated, never hand-edited (STYLE.md); the same script gives
the same bytes on every machine (no randomness, no clock).  Each seed is a
small *valid* case the fuzzer can break: direct, indirect and mixed chains,
IN_ORDER chains, EVENT_IDX, a full ring, queue size 1; and for used_ring, op
sequences of an honest device, IN_ORDER batches and a few classic lies.  Files
are named after what they hold; the script first removes its own old *.seed
files so a renamed seed does not linger.  Schedule seeds (fuzz/schedule.py):
every scenario under every memory model with a small shape, each run
sequentially (no schedule bytes), round-robin (a preempting byte at every
decision) and in bursts (eight decisions on, eight off).
"""
from __future__ import annotations

import sys
from pathlib import Path

from fuzz.common import (CFG_EVENT_IDX, CFG_IN_ORDER, CFG_INDIRECT, KIND_DATA,
                         KIND_TABLE, ChainInput, encode_chain)
from fuzz.used_ring import encode_ops
from vring.features import VRING_DESC_F_INDIRECT, VRING_DESC_F_NEXT, VRING_DESC_F_WRITE

NEXT, WRITE, INDIRECT = VRING_DESC_F_NEXT, VRING_DESC_F_WRITE, VRING_DESC_F_INDIRECT
LOG2 = {1: 0, 2: 1, 4: 2, 8: 3, 16: 4, 32: 5, 64: 6, 128: 7}


def buf(offset: int, ln: int, flags: int = 0, nxt: int = 0):
    """A data descriptor record: offset into the data region."""
    return (KIND_DATA, flags, nxt, offset, ln)


def table_ref(t: int, flags: int = INDIRECT):
    return (KIND_TABLE, flags, 0, t, 0)   # len 0: the table's exact length


def chain(size: int, descs, ring, *, avail=None, pops=None, features=0, tables=()) -> bytes:
    cfg = LOG2[size] | features
    avail = len(ring) if avail is None else avail
    pops = (max(1, avail) - 1) if pops is None else pops
    return encode_chain(ChainInput(cfg, pops, avail, list(ring), list(descs),
                                   [list(t) for t in tables]))


def desc_chain_seeds() -> dict[str, bytes]:
    rw = [buf(0, 64, NEXT, 1), buf(0x100, 32, NEXT, 2), buf(0x200, 512, WRITE)]
    table3 = [buf(0x400, 16, NEXT, 1), buf(0x500, 16, NEXT | WRITE, 2), buf(0x600, 256, WRITE)]
    seeds = {
        "empty-ring": chain(8, [], [], avail=0),
        "direct-one": chain(8, [buf(0, 64)], [0]),
        "direct-read-write": chain(8, rw, [0]),
        "direct-two-chains": chain(8, rw + [buf(0x300, 8, WRITE)], [0, 3]),
        "indirect": chain(8, [table_ref(0)], [0], features=CFG_INDIRECT, tables=[table3]),
        "indirect-write-flag-ignored": chain(8, [table_ref(0, INDIRECT | WRITE)], [0],
                                             features=CFG_INDIRECT, tables=[table3]),
        "mixed-direct-then-indirect": chain(
            8, [buf(0, 32, NEXT, 1), table_ref(1)], [0], features=CFG_INDIRECT,
            tables=[table3, [buf(0x700, 64, WRITE)]]),
        "in-order": chain(8, rw + [buf(0x300, 8, NEXT, 4), buf(0x380, 8, WRITE, 0)], [0, 3],
                          features=CFG_IN_ORDER),
        "in-order-wraps-to-0": chain(4, [buf(0x40, 8, WRITE), buf(0, 0), buf(0, 0),
                                         buf(0, 16, NEXT, 0)], [3], features=CFG_IN_ORDER),
        "in-order-indirect": chain(8, [table_ref(0)], [0], features=CFG_IN_ORDER | CFG_INDIRECT,
                                   tables=[table3]),
        "event-idx": chain(8, rw, [0], features=CFG_EVENT_IDX),
        "queue-size-1": chain(1, [buf(0, 8, WRITE)], [0]),
        "full-chain-8": chain(8, [buf(0x40 * i, 8, NEXT, i + 1) for i in range(7)]
                              + [buf(0x200, 8, WRITE)], [0]),
        "full-ring-16": chain(16, [buf(0x40 * i, 8, WRITE if i % 2 else 0) for i in range(16)],
                              list(range(16)), pops=7),
        "indirect-full-table-128": chain(
            128, [table_ref(0)], [0], features=CFG_INDIRECT,
            tables=[[buf(16 * i, 16, NEXT, i + 1) for i in range(127)] + [buf(0x900, 8, WRITE)]]),
    }
    return seeds


def used_ring_seeds() -> dict[str, bytes]:
    add1 = ("add", [64], [128])
    honest = [add1, ("push", 0), ("get",)]
    return {
        "honest-one": encode_ops(LOG2[8], honest),
        "honest-many": encode_ops(LOG2[8], [add1, ("add", [16, 16], []), ("add", [], [8, 8, 8]),
                                            ("push", 0), ("push", 2), ("get",), ("push", 1),
                                            ("get",), ("get",), ("misc", 2)]),
        "honest-indirect": encode_ops(LOG2[8] | CFG_INDIRECT, [
            ("add", [16, 32], [64, 8]), ("add", [8], []), ("push", 0), ("push", 0),
            ("get",), ("get",), ("misc", 0)]),
        "in-order-batch": encode_ops(LOG2[8] | CFG_IN_ORDER, [
            add1, add1, add1, ("used", 0x10, 2, 0), ("used_idx", 0, 3), ("get",), ("get",),
            ("get",)]),
        "event-idx-callbacks": encode_ops(LOG2[8] | CFG_EVENT_IDX, [
            ("misc", 1), add1, ("misc", 0), ("push", 0), ("misc", 3), ("get",), ("misc", 4)]),
        "fill-queue-2": encode_ops(LOG2[2], [add1, add1, add1, ("push", 0), ("get",), add1]),
        "lie-id-out-of-range": encode_ops(LOG2[8], [add1, ("used", 0x11, 9, 0), ("get",)]),
        "lie-len-too-large": encode_ops(LOG2[8], [add1, ("used", 0x18, 0, 0), ("get",)]),
        "lie-same-id-twice": encode_ops(LOG2[8], [add1, add1, ("push", 0), ("get",),
                                                  ("used", 0x12, 0, 0), ("get",), ("get",)]),
        "lie-used-idx-ahead": encode_ops(LOG2[8], [add1, ("used_idx", 0, 3), ("get",), add1]),
    }


def schedule_seeds() -> dict[str, bytes]:
    from fuzz.schedule import MODELS, SCENARIOS
    from harness.sched.fuzzsource import PREEMPT
    shapes = {"sequential": b"",
              "round-robin": bytes(PREEMPT + (k % 5) for k in range(256)),
              "bursts": bytes(PREEMPT + 1 if (k // 8) % 2 else 0 for k in range(256))}
    seeds = {}
    for s, scenario in enumerate(SCENARIOS):
        for m, model in enumerate(MODELS):
            # size 4, budget 1, one submitter; 2 rx packets, 1 tx buffer, 1 request,
            # 3 draft buffers (fuzz/schedule.py, "Input format").
            header = bytes([s, m, 1, 0x11])
            for shape, tail in shapes.items():
                seeds[f"{scenario}-{model}-{shape}"] = header + tail
    return seeds


def write(folder: Path, seeds: dict[str, bytes]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.seed"):
        old.unlink()
    for name, data in sorted(seeds.items()):
        (folder / f"{name}.seed").write_bytes(data)


def main(argv=None) -> int:
    root = Path(__file__).resolve().parent
    write(root / "desc_chain", desc_chain_seeds())
    write(root / "used_ring", used_ring_seeds())
    write(root / "schedule", schedule_seeds())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
