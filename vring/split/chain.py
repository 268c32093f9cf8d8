"""Walking a descriptor chain as a device must: trusting nothing.

The walk follows guest-controlled `next` fields, so every step is bounded: a
direct chain may visit each table entry at most once and an indirect table at
most len/16 entries; the whole chain may hold at most queue-size descriptors
(2.7.5.3.1).  Each broken rule raises its own DriverViolation leaf.  Layout
(2.7.5.3.2, device requirements): zero or more direct descriptors, optionally
ended by one descriptor that points at an indirect table.
"""
from __future__ import annotations

from typing import NamedTuple

from ..errors import (BufferOutOfMemory, ChainTooLarge, ChainTooLong,
                      DescriptorIndexOutOfRange, DescriptorLoop,
                      IndirectNotNegotiated, IndirectTableLength,
                      IndirectWithNext, InOrderNextNotSequential,
                      NestedIndirect, ReadableAfterWritable)
from ..features import (VRING_DESC_F_INDIRECT, VRING_DESC_F_NEXT,
                        VRING_DESC_F_WRITE)
from ..layout import DESC_SIZE

MAX_CHAIN_BYTES = 1 << 32  # 2.7.5.2: no chain longer than 2^32 bytes in total


class Chain(NamedTuple):
    """One buffer as the device sees it (a NamedTuple: cheap to build per pop)."""

    head: int
    readable: tuple[tuple[int, int], ...]
    writable: tuple[tuple[int, int], ...]
    indirect: bool = False

    @property
    def readable_len(self) -> int:
        return sum(ln for _, ln in self.readable)

    @property
    def writable_len(self) -> int:
        return sum(ln for _, ln in self.writable)

    def read_all(self, mem) -> bytes:
        """Concatenate the device-readable part."""
        return b"".join(mem.read(a, ln) for a, ln in self.readable)

    def write_all(self, mem, data: bytes) -> int:
        """Scatter data over the device-writable part; returns bytes written."""
        done = 0
        for addr, ln in self.writable:
            if done >= len(data):
                break
            piece = data[done:done + ln]
            mem.write(addr, piece)
            done += len(piece)
        return done


def _out_of_range(limit: int) -> int:
    """A mask of every index from `limit` up.  Indices are le16, so bits past
    2^16 are never tested: capped, a huge (lenient) table length stays cheap."""
    return -1 << min(limit, 1 << 16)


def walk_chain(mem, desc_table: int, size: int, head: int, *, indirect_ok: bool,
               in_order: bool = False, lenient: frozenset = frozenset()) -> Chain:
    """Validate and collect the chain that starts at `head`.

    `lenient` names rules (errors.RULES keys) this walk does not enforce: the
    bug zoo uses it to re-create devices that shipped without a check.  Each
    guard tests the violation first, so the set costs nothing on valid chains.
    """
    if head >= size and "desc-index-range" not in lenient:
        raise DescriptorIndexOutOfRange(f"head {head} >= queue size {size}")
    readable: list[tuple[int, int]] = []
    writable: list[tuple[int, int]] = []
    total = 0
    count = 0
    seen = 0  # bitmask of visited table entries: loop detection in O(1) per step
    i = head
    table, limit, nested = desc_table, size, False
    beyond = _out_of_range(limit)
    used_indirect = False
    while True:
        bit = 1 << i
        # One test on the common path (a fuzzer's instrumentation pays for
        # each): out of range or visited.  The two rules are told apart here.
        if (seen | beyond) & bit:
            if i >= limit and "desc-index-range" not in lenient:
                where = "indirect table" if nested else "descriptor table"
                raise DescriptorIndexOutOfRange(f"next {i} >= {limit} entries of the {where}")
            if seen & bit and "chain-loop" not in lenient:
                raise DescriptorLoop(f"descriptor {i} visited twice from head {head}")
        seen |= bit
        d = table + i * DESC_SIZE
        addr = mem.read64(d)
        ln = mem.read32(d + 8)
        flags = mem.read16(d + 12)
        nxt = mem.read16(d + 14)
        if flags & VRING_DESC_F_INDIRECT:
            if nested and "indirect-not-nested" not in lenient:
                raise NestedIndirect(f"entry {i} of the indirect table of head {head}")
            if not indirect_ok and "indirect-feature" not in lenient:
                raise IndirectNotNegotiated(f"descriptor {i}")
            if flags & VRING_DESC_F_NEXT and "indirect-no-next" not in lenient:
                raise IndirectWithNext(f"descriptor {i}")
            if (ln == 0 or ln % DESC_SIZE) and "indirect-table-length" not in lenient:
                raise IndirectTableLength(f"descriptor {i}: len {ln}")
            if not mem.contains(addr, ln) and "buffer-in-memory" not in lenient:
                raise BufferOutOfMemory(f"indirect table {addr:#x}+{ln} of descriptor {i}")
            # 2.7.5.3.2: the device ignores WRITE on the descriptor that points
            # at a table.  Switch to walking the table from its entry 0.
            table, limit, nested, seen, i = addr, ln // DESC_SIZE, True, 0, 0
            beyond = _out_of_range(limit)
            used_indirect = True
            continue
        count += 1
        if count > size and "chain-length" not in lenient:
            raise ChainTooLong(f"head {head}: more than {size} descriptors")
        total += ln
        if total > MAX_CHAIN_BYTES and "chain-total-length" not in lenient:
            raise ChainTooLarge(f"head {head}: {total} bytes")
        if not mem.contains(addr, ln) and "buffer-in-memory" not in lenient:
            raise BufferOutOfMemory(f"buffer {addr:#x}+{ln} of descriptor {i}")
        if flags & VRING_DESC_F_WRITE:
            writable.append((addr, ln))
        elif writable and "writable-after-readable" not in lenient:
            raise ReadableAfterWritable(f"head {head}: descriptor {i}")
        else:
            readable.append((addr, ln))
        if not flags & VRING_DESC_F_NEXT:
            break
        if in_order and nxt != (i + 1) % limit and "in-order-next" not in lenient:
            raise InOrderNextNotSequential(f"descriptor {i}: next {nxt}")
        i = nxt
    return Chain(head, tuple(readable), tuple(writable), used_indirect)
