#!/usr/bin/env python3
"""Fuzz target: a device's `pop` over adversarial driver memory.

The input (format in fuzz/common.py) decodes into a queue size, feature bits
(INDIRECT_DESC, IN_ORDER, EVENT_IDX), an avail idx and ring, a descriptor table
and up to four indirect tables.  The device (VRINGFUZZ_DEVICE=MODULE:CALLABLE,
default the reference) then pops up to eight times.

Contract of every pop (VIRTIO 1.2, 2.7.5, 2.7.5.3, 2.7.6, 2.7.4.2), checked
against an independent re-walk of guest memory written here:
* None exactly when avail idx equals the device position;
* a Chain exactly when the chain is valid, equal to the re-walk's: head, the
  readable buffers then the writable ones, all inside memory, at most
  queue-size descriptors, at most 2^32 bytes, no INDIRECT unless negotiated;
* a DriverViolation leaf exactly when some rule is broken (including an avail
  idx more than the queue size ahead); the device stops there.
Anything else crashes: another exception, a BadAddress escaping, or more than
4 * size + 16 guest memory accesses in one pop (an unbounded walk).
"""
from __future__ import annotations

import os
import struct
import sys
from dataclasses import replace


from fuzz.instrument import instrumentation  # noqa: E402  (imports no vring)

# Coverage of the device's pop and chain walk; the rest of vring is plumbing
# here (CountingMemory overrides the accessors; errors, layout: no branches).
UNDER_TEST = ("vring.split.device", "vring.split.chain")

with instrumentation(__name__ == "__main__", "VRINGFUZZ_DEVICE", under_test=UNDER_TEST):
    import vring.split.device  # noqa: F401  (the reference, instrumented)
    from vring.contract import setup_queue
    from vring.errors import BadAddress, DriverViolation
    from vring.features import (F_IN_ORDER, F_INDIRECT_DESC, VRING_DESC_F_INDIRECT,
                                VRING_DESC_F_NEXT, VRING_DESC_F_WRITE)
    from vring.platform import Platform
    from fuzz.common import (DESC, MEM_BASE, MEM_END, AccessBudgetExceeded, BadChain,
                             CountingMemory, EscapedBadAddress, FuzzFinding,
                             WrongVerdict, cfg_features, cfg_pops, cfg_size,
                             load_chain, map_avail_idx, plugin_spec,
                             resolve_make, unexpected)
    if os.environ.get("VRINGFUZZ_DEVICE", "").count(":"):
        resolve_make("device", os.environ["VRINGFUZZ_DEVICE"])  # import it now

MAX_CHAIN_BYTES = 1 << 32
U16 = struct.Struct("<H")


def access_budget(size: int) -> int:
    """Guest accesses one pop may make: 4 per descriptor (size + the indirect
    one + the one that breaks a rule), avail idx, ring entry, avail_event."""
    return 4 * size + 16


def rewalk(buf, desc: int, size: int, head: int, features: int):
    """Independent re-walk of the chain at `head`, straight from the bytes.

    Returns ("ok", readable, writable, indirect) or ("bad", reason).  Written
    apart from vring/split/chain.py on purpose: it reads the bytes, not
    GuestMemory, bounds the walk by length alone, and checks the placement
    rules (in memory, readable before writable) after the walk.
    """
    if head >= size:
        return ("bad", f"head {head} out of range")
    indirect_ok = bool(features & F_INDIRECT_DESC)
    in_order = bool(features & F_IN_ORDER)
    bufs: list[tuple[int, int, bool]] = []
    table, limit, nested, via_indirect = desc, size, False, False
    i = head
    while True:
        # No visited set: a loop makes the chain longer than the queue, which
        # is the bound this walk checks at every step (2.7.5: loops are
        # forbidden because the chain length is bounded).
        if i >= limit:
            return ("bad", f"index {i} out of range")
        off = table + 16 * i - MEM_BASE
        addr, ln, flags, nxt = DESC.unpack_from(buf, off)
        if flags & VRING_DESC_F_INDIRECT:
            # 2.7.5.3.1: negotiated, not nested, not with NEXT, whole entries.
            if nested or not indirect_ok or flags & VRING_DESC_F_NEXT:
                return ("bad", f"INDIRECT not allowed at {i}")
            if ln == 0 or ln % 16 or addr < MEM_BASE or addr + ln > MEM_END:
                return ("bad", f"indirect table {addr:#x}+{ln}")
            table, limit, nested, via_indirect = addr, ln // 16, True, True
            i = 0
            continue
        bufs.append((addr, ln, bool(flags & VRING_DESC_F_WRITE)))
        if len(bufs) > size:
            return ("bad", "chain longer than the queue (or a loop)")
        if not flags & VRING_DESC_F_NEXT:
            break
        if in_order and nxt != i + 1 and not (not nested and nxt == 0 and i + 1 == size):
            return ("bad", f"IN_ORDER next {nxt} after {i}")
        i = nxt
    if sum(ln for _, ln, _ in bufs) > MAX_CHAIN_BYTES:
        return ("bad", "chain longer than 2^32 bytes")
    for addr, ln, _ in bufs:
        if addr < MEM_BASE or addr + ln > MEM_END:
            return ("bad", f"buffer {addr:#x}+{ln} outside memory")
    wrote = False
    for _, _, w in bufs:
        if wrote and not w:
            return ("bad", "readable after writable")  # 2.7.4.2
        wrote = wrote or w
    readable = tuple((a, ln) for a, ln, w in bufs if not w)
    writable = tuple((a, ln) for a, ln, w in bufs if w)
    return ("ok", readable, writable, via_indirect)


def check_chain(chain, head: int, expect) -> None:
    """The returned chain is the one in the ring and equals the re-walk (which
    only says "ok" for a chain that keeps every rule)."""
    readable, writable = tuple(chain.readable), tuple(chain.writable)
    if chain.head != head:
        raise BadChain(f"pop returned head {chain.head}, the ring holds {head}")
    for addr, ln in readable + writable:
        if ln < 0 or addr < MEM_BASE or addr + ln > MEM_END:
            raise BadChain(f"buffer {addr:#x}+{ln} outside guest memory")
    if (readable, writable) != (expect[1], expect[2]):
        raise BadChain(f"head {head}: pop gave readable {list(readable)} writable "
                       f"{list(writable)}, the re-walk {list(expect[1])} {list(expect[2])}")


class DescChainTarget:
    """One fuzz target instance: reusable guest memory per queue size."""

    def __init__(self, device=None):
        self.make = resolve_make("device", plugin_spec("device", device))
        self.platform = Platform()
        self._rings: dict = {}   # size or (size, features) -> (memory, QueueConfig)
        self._memo: dict = {}     # load_chain: raw areas -> guest bytes (bounded)

    def _ring(self, size: int, features: int):
        """Reset memory for a queue of `size` and its QueueConfig (cached)."""
        ring = self._rings.get((size, features))
        if ring is None:
            mem, base = self._rings.get(size) or (CountingMemory(), None)
            if base is None:
                base = setup_queue(mem, size, 0)
                mem.snapshot()
                self._rings[size] = (mem, base)
            ring = self._rings[(size, features)] = (mem, replace(base, features=features))
        ring[0].reset()
        return ring

    def __call__(self, data: bytes) -> None:
        head_cfg = data[0] if data else 0
        size = cfg_size(head_cfg)
        features = cfg_features(head_cfg)
        mem, cfg = self._ring(size, features)
        _, pops, raw_avail = load_chain(mem, data, cfg.desc, cfg.avail, self._memo)
        avail_idx = map_avail_idx(raw_avail, size)
        try:
            dev = self.make(mem, cfg, self.platform)
        except FuzzFinding:
            raise
        except Exception as e:  # noqa: BLE001  (anything else is the finding)
            raise unexpected("make", e) from e
        pos = 0
        for _ in range(cfg_pops(pops)):
            pending = (avail_idx - pos) & 0xFFFF
            head = None
            if pending == 0:
                expect = ("none",)
            elif pending > size:
                expect = ("bad", f"avail idx {avail_idx} is {pending} ahead of {pos}")
            else:
                head = U16.unpack_from(mem.buf, cfg.avail + 4 + 2 * (pos % size) - MEM_BASE)[0]
                expect = rewalk(mem.buf, cfg.desc, size, head, features)
            if judge_pop(dev.pop, mem, expect, head, pos, access_budget(size)) is None:
                return
            pos += 1


def judge_pop(pop, mem, expect, head, pos: int, budget: int):
    """Call a device's pop under an access budget and judge it by the re-walk.

    The oracle of this target, shared with the malicious-driver state machine
    (harness/stateful_driver.py): pop returns None only with nothing pending,
    rejects exactly the chains the re-walk calls bad (with a rule's leaf, never
    the bare DriverViolation), accepts the others as the re-walk sees them, and
    stops within the budget.  Returns the accepted chain, or None.
    """
    mem.limit(budget)
    try:
        chain = pop()
    except FuzzFinding:
        raise
    except DriverViolation as e:
        if type(e) is DriverViolation:
            raise unexpected("pop", e) from e  # a leaf must say which rule
        if expect[0] != "bad":
            raise WrongVerdict(f"pop rejected a valid chain at avail slot {pos}: "
                               f"{type(e).__name__}: {e}") from e
        return None
    except BadAddress as e:
        raise EscapedBadAddress(f"pop let BadAddress escape: {e}") from e
    except Exception as e:  # noqa: BLE001  (anything else is the finding)
        raise unexpected("pop", e) from e
    finally:
        mem.limit(1 << 62)
    if mem.exceeded:
        raise AccessBudgetExceeded(f"pop swallowed the access budget stop ({budget} accesses)")
    if chain is None:
        if expect[0] != "none":
            raise WrongVerdict(f"pop returned None with buffers pending ({expect[0]})")
        return None
    if expect[0] == "none":
        raise WrongVerdict(f"pop returned a chain with nothing pending (slot {pos})")
    if expect[0] == "bad":
        raise WrongVerdict(f"pop accepted an invalid chain at slot {pos}: {expect[1]}")
    check_chain(chain, head, expect)
    return chain


_target: DescChainTarget | None = None


def TestOneInput(data: bytes) -> None:  # noqa: N802  (the atheris/OSS-Fuzz name)
    global _target
    if _target is None:
        _target = DescChainTarget()
    _target(data)


def main(argv=None) -> None:
    from fuzz.common import fuzz_main
    from fuzz.mutators import custom_mutator
    fuzz_main(sys.argv if argv is None else argv, TestOneInput, custom_mutator)


if __name__ == "__main__":
    main()
