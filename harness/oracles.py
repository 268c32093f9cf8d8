"""Oracles: pure predicates over what a run did, named for the property they hold.

Rules:
* An oracle never touches the scheduler or guest memory through a scheduling
  point: it is fed events (add, get_buf, push, store) and answers by raising.
  The stateful suite, the scheduler's world and the fuzz targets share them.
* A broken safety property raises an `OracleFailure` subclass whose `oracle`
  is the name reports use ("exactly-once", "length-bound", ...).  The passive
  spec monitor raises the matching `vring.errors` SpecViolation leaf instead;
  `finding_for(exc)` turns either, or any other exception, into a Finding
  ("spec:<rule>", "crash", ...).
* Liveness is judged only at quiescence (every task waits for work, nothing is
  pending): `check_liveness` names what is stranded.

Payload rule (data integrity): whoever fills a buffer writes `pattern(token, n)`;
whoever reads it checks the first written bytes with `check_data`.
"""
from __future__ import annotations

import functools
import struct
from collections import deque
from dataclasses import dataclass

from vring import errors
from vring.errors import (AvailIdxDecremented, AvailIdxTooFarAhead, DeviceWroteDescriptor,
                          DeviceWroteReadable, DriverWroteDeviceOwned, SpecViolation,
                          UsedIdxRunsAhead, UsedNotInOrder)
from vring.features import (VRING_DESC_F_INDIRECT, VRING_DESC_F_NEXT,
                            VRING_DESC_F_WRITE)
from vring.layout import DESC_SIZE, SplitLayout, avail_size, desc_table_size, used_size

from .lockdep import LockdepViolation
from .result import Finding


# --- failures ------------------------------------------------------------------

class OracleFailure(Exception):
    """A property of the run does not hold; `oracle` names the property."""

    oracle = "oracle"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class ExactlyOnce(OracleFailure):
    oracle = "exactly-once"


class LengthBound(OracleFailure):
    oracle = "length-bound"


class DataIntegrity(OracleFailure):
    oracle = "data-integrity"


class FreeCount(OracleFailure):
    oracle = "free-count"


class Ordering(OracleFailure):
    oracle = "ordering"


class LostInterrupt(OracleFailure):
    oracle = "lost-interrupt"


class LostKick(OracleFailure):
    oracle = "lost-kick"


class Stranded(OracleFailure):
    """Quiescent with a buffer popped by the device but never pushed back."""

    oracle = "stranded"


# The store-ownership rules of the passive monitor (leaves of vring.errors).
DeviceWroteAvail = errors.DeviceWroteAvailRing
DriverWroteUsed = errors.DriverWroteUsedRing
UsedIdxDecremented = errors.UsedIdxDecremented


def finding_for(exc: BaseException, *, oracle: str | None = None) -> Finding:
    """The Finding a failure reports: its oracle name and a one-line message.

    A failure raised while unwinding from another (a `finally: release()` that
    trips lockdep after the real report) names the original: the innermost
    known failure in the __context__ chain wins.
    """
    known = (OracleFailure, SpecViolation, LockdepViolation)
    chain, e = [], exc
    while e is not None and e not in chain and len(chain) < 16:
        chain.append(e)
        e = e.__context__
    exc = next((c for c in reversed(chain) if isinstance(c, known)), exc)
    if isinstance(exc, OracleFailure):
        return Finding(exc.oracle, exc.message)
    if isinstance(exc, SpecViolation):
        return Finding(f"spec:{exc.rule}", str(exc))
    if isinstance(exc, LockdepViolation):
        return Finding(f"lockdep:{exc.kind}", exc.message)
    name = oracle or getattr(exc, "oracle", None) or "crash"
    return Finding(name, f"{type(exc).__name__}: {exc}")


# --- token ledger: exactly once, after it was added, within its length ---------

class Ledger:
    """Tokens in flight on one queue, fed by add_sgs and get_buf events."""

    def __init__(self, name: str = "queue"):
        self.name = name
        self._out: dict = {}          # token -> writable bytes, in add order
        self._done: set = set()
        self.added = 0
        self.returned = 0

    def add(self, token, writable_len: int) -> None:
        if token in self._out:
            raise ExactlyOnce(f"{self.name}: token {token!r} added while still in flight")
        self._out[token] = writable_len
        self._done.discard(token)
        self.added += 1

    def got(self, token, written_len: int) -> None:
        """A get_buf result: the token must be in flight, the length in bounds."""
        if token not in self._out:
            how = "a second time" if token in self._done else "but was never added"
            raise ExactlyOnce(f"{self.name}: get_buf returned token {token!r} {how}")
        writable = self._out.pop(token)
        self._done.add(token)
        self.returned += 1
        if not 0 <= written_len <= writable:
            # The rule the device broke: used-len-bound (2.7.8.2, UsedLenTooLarge).
            raise LengthBound(f"{self.name}: token {token!r} written_len {written_len} "
                              f"> {writable} writable bytes (used-len-bound, 2.7.8.2)")

    def outstanding(self) -> list:
        return list(self._out)

    def none_outstanding(self, tokens: set) -> bool:
        """No token of `tokens` is in flight (a wait predicate: no copy)."""
        return self._out.keys().isdisjoint(tokens)

    def __len__(self) -> int:
        return len(self._out)


# --- data integrity ------------------------------------------------------------

@functools.lru_cache(maxsize=4096)     # pure; scenarios ask for the same buffers' bytes
def pattern(token: int, n: int) -> bytes:
    """The deterministic bytes a buffer for `token` carries (no hash(), no RNG)."""
    t = int(token) & 0xFFFFFFFF
    return bytes(((t * 131 + i * 29 + (t >> 8) + 1) & 0xFF) for i in range(n))


def check_data(token: int, data: bytes, written_len: int, what: str = "buffer") -> None:
    """The first written_len bytes read back must be the token's pattern."""
    want = pattern(token, written_len)
    got = bytes(data[:written_len])
    if got != want:
        at = next(i for i in range(written_len) if i >= len(got) or got[i] != want[i])
        raise DataIntegrity(f"{what} of token {token!r}: byte {at} of {written_len} "
                            f"differs from what was written")


# --- free count ----------------------------------------------------------------

def check_free_count(num_free: int, size: int, outstanding: int = 0, name: str = "queue") -> None:
    """With nothing in flight, every descriptor is back on the free list."""
    if outstanding == 0 and num_free != size:
        raise FreeCount(f"{name}: num_free {num_free} != queue size {size} with no buffer "
                        f"in flight (descriptors leaked or freed twice)")


# --- ordering ------------------------------------------------------------------

class OrderingOracle:
    """Delivery must follow an expected order: `expect` feeds it, `observe` checks.

    IN_ORDER (2.7.9) feeds expect from add order; the drafts feed it from the
    device's completion order (the seed's draft I broke exactly this).
    """

    def __init__(self, name: str = "queue"):
        self.name = name
        self._want: deque = deque()

    def expect(self, token) -> None:
        self._want.append(token)

    def observe(self, token) -> None:
        if token not in self._want:
            return  # not ours to judge: the ledger reports unknown tokens
        first = self._want[0]
        self._want.remove(token)
        if token != first:
            raise Ordering(f"{self.name}: delivered token {token!r} before {first!r}, "
                           f"which completed earlier")


# --- liveness at quiescence ----------------------------------------------------

@dataclass
class Progress:
    """Counts one queue's scenario keeps: the driver's and the device's view."""

    name: str
    added: int = 0       # add_sgs succeeded
    popped: int = 0      # device pop returned a chain
    pushed: int = 0      # device push
    delivered: int = 0   # get_buf returned a token


def check_liveness(p: Progress) -> None:
    """At quiescence nothing may be stranded (call only when every task waits).

    Available but never popped while the device waits for a kick: lost kick.
    Used but never seen while the driver waits for an interrupt: lost interrupt.
    """
    unpopped = p.added - p.popped
    unseen = p.pushed - p.delivered
    if unpopped > 0:
        raise LostKick(f"{p.name}: {unpopped} buffer(s) available but never popped while "
                       f"the device waits for a kick")
    if unseen > 0:
        raise LostInterrupt(f"{p.name}: {unseen} buffer(s) used by the device but never "
                            f"seen while the driver waits for an interrupt")
    if p.popped != p.pushed:
        raise Stranded(f"{p.name}: {p.popped - p.pushed} buffer(s) popped but never "
                       f"returned at quiescence")


# --- the passive spec monitor --------------------------------------------------

_LE = {1: struct.Struct("<B"), 2: struct.Struct("<H"), 4: struct.Struct("<I"),
       8: struct.Struct("<Q")}
_DESC = struct.Struct("<QIHH")      # a descriptor: addr, len, flags, next (2.7.5)

_PAGE_SHIFT = 12
_PAGE = 1 << _PAGE_SHIFT
_PAGE_MASK = _PAGE - 1


class _Exposed:
    __slots__ = ("descs", "tables", "readable")

    def __init__(self, descs, tables, readable):
        self.descs = descs          # indices into the ring's descriptor table
        self.tables = tables        # (addr, len) of indirect tables
        self.readable = readable    # (addr, len) of device-readable buffers


class SpecMonitor:
    """Checks every store against the ownership rules of 2.7, passively.

    Fed `store(side, addr, data)` in each side's program order, where side is
    "driver" or "device" and data is an int with its width or bytes.  It keeps a
    shadow of the stored bytes (it never reads guest memory, so it adds no
    scheduling point and sees the storer's view even under TSO/relaxed) and
    tracks which chains the device owns: from the driver's avail idx store that
    exposes them until the device's used idx store that returns them.
    """

    def __init__(self, layout: SplitLayout, *, in_order: bool = False):
        self.lay = layout
        self.in_order = in_order
        self._shadow: dict[int, bytearray] = {}   # page number -> its bytes
        self.avail_idx = 0
        self.used_idx = 0
        self._owned: dict[int, _Exposed] = {}   # head -> what the device owns
        self._order: deque[int] = deque()        # heads in exposure order
        self._owned_desc: set[int] = set()
        # The ring areas as (lo, hi, name), and the two idx fields: computed
        # once, since every store of the run is checked against them.
        n = layout.size
        desc_end = layout.desc + desc_table_size(n)
        avail_end = layout.avail + avail_size(n)
        used_end = layout.used + used_size(n)
        self._areas = ((layout.desc, desc_end, "desc"), (layout.avail, avail_end, "avail"),
                       (layout.used, used_end, "used"))
        # Their hull: a store with neither end in it (a payload) is in no area.
        self._lo = min(layout.desc, layout.avail, layout.used)
        self._hi = max(desc_end, avail_end, used_end)
        self._avail_idx_at = layout.avail_idx
        self._used_idx_at = layout.used_idx

    # shadow memory: sparse 4 KiB pages of bytes, created on first store
    # (was a dict entry per byte; with the bounds cached above, a store costs
    # ~1.4 us instead of ~1.9 us on the fuzz targets' store streams).
    def _put(self, addr: int, data: bytes) -> None:
        pages = self._shadow
        n = len(data)
        off = addr & _PAGE_MASK
        if off + n <= _PAGE:
            page = pages.get(addr >> _PAGE_SHIFT)
            if page is None:
                page = pages[addr >> _PAGE_SHIFT] = bytearray(_PAGE)
            page[off:off + n] = data
            return
        for i in range(n):             # a store across a page boundary
            self._put(addr + i, data[i:i + 1])

    def _get(self, addr: int, n: int) -> int:
        pages = self._shadow
        off = addr & _PAGE_MASK
        if off + n <= _PAGE:
            page = pages.get(addr >> _PAGE_SHIFT)
            return 0 if page is None else _LE[n].unpack_from(page, off)[0]
        return sum(self._get(addr + i, 1) << (8 * i) for i in range(n))

    def _desc(self, addr: int) -> tuple:
        """(addr, len, flags, next) of the descriptor at addr, in one read."""
        off = addr & _PAGE_MASK
        if off + DESC_SIZE <= _PAGE:
            page = self._shadow.get(addr >> _PAGE_SHIFT)
            return (0, 0, 0, 0) if page is None else _DESC.unpack_from(page, off)
        return (self._get(addr, 8), self._get(addr + 8, 4), self._get(addr + 12, 2),
                self._get(addr + 14, 2))

    def store(self, side: str, addr: int, data, width: int | None = None) -> None:
        """One store; data is bytes, or an int of `width` bytes."""
        if width is not None and type(data) is int:
            # Kept an int (no bytes object per store): the shadow packs it,
            # the idx rules read it as it is.
            value = data & ((1 << (8 * width)) - 1)
            n = width
            if n not in _LE:
                data, value = value.to_bytes(n, "little"), None
        else:
            value = None
            n = len(data)
        lo, hi, last = self._lo, self._hi, addr + n - 1
        region = None
        if lo <= addr < hi or lo <= last < hi:
            # The ring area holding the first byte, else the last (as
            # SplitLayout.region), with the bounds computed once.
            for a_lo, a_hi, name in self._areas:
                if a_lo <= addr < a_hi:
                    region = name
                    break
            else:
                for a_lo, a_hi, name in self._areas:
                    if a_lo <= last < a_hi:
                        region = name
                        break
        # Outside the ring areas only what the device owns constrains a store.
        if region is not None or self._owned:
            if side == "device":
                self._device_store(addr, n, data, value, region)
            else:
                self._driver_store(addr, n, data, value, region)
        page = self._shadow.get(addr >> _PAGE_SHIFT)
        off = addr & _PAGE_MASK
        if page is not None and off + n <= _PAGE:
            if value is None:               # _put's common case, inline
                page[off:off + n] = data
            else:
                _LE[n].pack_into(page, off, value)
        else:
            self._put(addr, data if value is None else value.to_bytes(n, "little"))
        if n == 2:
            if side == "driver" and addr == self._avail_idx_at:
                self._expose(value if value is not None else int.from_bytes(data, "little"))
            elif side == "device" and addr == self._used_idx_at:
                self._retire(value if value is not None else int.from_bytes(data, "little"))

    def _device_store(self, addr: int, n: int, data, value, region: str | None) -> None:
        if region == "desc":
            raise DeviceWroteDescriptor(f"store of {n} bytes at {self.lay.field_name(addr)}")
        if region == "avail":
            raise DeviceWroteAvail(f"store of {n} bytes at {self.lay.field_name(addr)}")
        if region == "used" and addr == self.lay.used_idx and n == 2:
            new = value if value is not None else int.from_bytes(data, "little")
            step = (new - self.used_idx) & 0xFFFF
            if step >= 0x8000:
                raise UsedIdxDecremented(f"used idx {self.used_idx} -> {new}")
            if step > (self.avail_idx - self.used_idx) & 0xFFFF:
                raise UsedIdxRunsAhead(f"used idx {self.used_idx} -> {new}, avail idx "
                                       f"{self.avail_idx}")
        end = addr + n          # (overlap tests inline: every store, every owned buffer)
        for ex in self._owned.values():
            for a, ln in ex.tables:
                if addr < a + ln and a < end:
                    raise DeviceWroteDescriptor(f"store at {addr:#x} into the indirect "
                                                f"table at {a:#x}")
            for a, ln in ex.readable:
                if addr < a + ln and a < end:
                    raise DeviceWroteReadable(f"store at {addr:#x} into the device-readable "
                                              f"buffer {a:#x}+{ln}")

    def _driver_store(self, addr: int, n: int, data, value, region: str | None) -> None:
        if region == "used":
            raise DriverWroteUsed(f"store of {n} bytes at {self.lay.field_name(addr)}")
        if region == "desc":
            first = (addr - self.lay.desc) // DESC_SIZE
            last = (addr + n - 1 - self.lay.desc) // DESC_SIZE
            for i in range(first, last + 1):
                if i in self._owned_desc:
                    raise DriverWroteDeviceOwned(f"store at {self.lay.field_name(addr)} "
                                                 f"while the device owns descriptor {i}")
        elif region == "avail" and addr == self.lay.avail_idx and n == 2:
            new = value if value is not None else int.from_bytes(data, "little")
            step = (new - self.avail_idx) & 0xFFFF
            if step >= 0x8000:
                raise AvailIdxDecremented(f"avail idx {self.avail_idx} -> {new}")
            if (new - self.used_idx) & 0xFFFF > self.lay.size:
                raise AvailIdxTooFarAhead(f"avail idx {new} is more than {self.lay.size} "
                                          f"ahead of used idx {self.used_idx}")
        else:
            end = addr + n
            for ex in self._owned.values():
                for a, ln in ex.tables:
                    if addr < a + ln and a < end:
                        raise DriverWroteDeviceOwned(f"store at {addr:#x} into the indirect "
                                                     f"table {a:#x} the device owns")

    def _expose(self, new: int) -> None:
        """The driver published avail idx `new`: the chains it covers are the device's."""
        lay, size = self.lay, self.lay.size
        idx = self.avail_idx
        while idx != new:
            head = self._get(lay.avail_ring(idx & (size - 1)), 2)
            ex = self._walk(head)
            if head not in self._owned:
                self._owned[head] = ex
                self._order.append(head)
                self._owned_desc.update(ex.descs)
            idx = (idx + 1) & 0xFFFF
        self.avail_idx = new

    def _walk(self, head: int) -> _Exposed:
        """Follow the shadow chain, bounded by the queue size (2.7.5.3.1)."""
        lay, size = self.lay, self.lay.size
        descs, tables, readable = [], [], []
        i = head
        for _ in range(size):
            if i >= size or i in descs:
                break
            descs.append(i)
            addr, ln, flags, nxt = self._desc(lay.desc_at(i))
            if flags & VRING_DESC_F_INDIRECT:
                tables.append((addr, ln))
                for k in range(min(ln // DESC_SIZE, size)):
                    e_addr, e_len, e_flags, _ = self._desc(addr + k * DESC_SIZE)
                    if not e_flags & VRING_DESC_F_WRITE:
                        readable.append((e_addr, e_len))
                break
            if not flags & VRING_DESC_F_WRITE:
                readable.append((addr, ln))
            if not flags & VRING_DESC_F_NEXT:
                break
            i = nxt
        return _Exposed(descs, tables, readable)

    def _retire(self, new: int) -> None:
        """The device published used idx `new`: the chains it covers go back."""
        lay, size = self.lay, self.lay.size
        idx = self.used_idx
        if self.in_order:
            self._retire_in_order(idx, (new - idx) & 0xFFFF)
            self.used_idx = new
            return
        while idx != new:
            head = self._get(lay.used_ring(idx & (size - 1)), 4)
            ex = self._owned.pop(head, None)
            if ex is not None:
                self._order.remove(head)
                self._owned_desc.difference_update(ex.descs)
            idx = (idx + 1) & 0xFFFF
        self.used_idx = new

    def _retire_in_order(self, idx: int, steps: int) -> None:
        """2.7.9: chains come back in the order they were exposed.  One used
        element may stand for a batch: written at the batch's first slot, it
        names the batch's last chain, and used idx moves by the batch's size
        (vring/split/device.py push_batch), so the batch must fit in the move."""
        lay, size = self.lay, self.lay.size
        while steps:
            slot = idx & (size - 1)
            head = self._get(lay.used_ring(slot), 4)
            if head not in self._owned:
                raise UsedNotInOrder(f"used.ring[{slot}].id {head} is not a chain the device "
                                     f"owns (in order: {list(self._order)})")
            k = self._order.index(head) + 1
            if k > steps:
                raise UsedNotInOrder(f"used.ring[{slot}].id {head} closes a batch of {k} "
                                     f"buffer(s) but used idx moved by {steps}: an earlier "
                                     f"buffer would come back after a later one")
            for _ in range(k):
                ex = self._owned.pop(self._order.popleft())
                self._owned_desc.difference_update(ex.descs)
            idx = (idx + k) & 0xFFFF
            steps -= k

    def owned_heads(self) -> list[int]:
        return list(self._order)


def _overlap(a: int, n: int, b: int, m: int) -> bool:
    return a < b + m and b < a + n
