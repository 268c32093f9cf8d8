"""Shared pieces of the fuzz targets: crash types, counted memory, plug-in
specs, and the desc_chain input format (decoder, encoder, materializer).

Rules:
* A target "crashes" by raising a `FuzzFinding` subclass (or letting any non-
  library exception escape, which it wraps in `UnexpectedException`).  Every
  finding's message is deterministic (no object ids, no addresses of Python
  objects) because it becomes the repro signature "Type: message".
* `CountingMemory` is reused across executions: `reset()` re-zeroes every byte
  written since the last reset (stores through it are tracked; direct stores
  into `buf` must call `mark`) and restores the allocator to its snapshot, so
  one execution never sees another's state (a replay in a fresh process gets
  the same bytes).
* Plug-in specs come from VRINGFUZZ_DRIVER / VRINGFUZZ_DEVICE (MODULE:CALLABLE,
  as `--driver/--device`, DESIGN.md "Plug-in contract"); default "reference".
* This module imports vring, so a target must import it inside its
  `atheris.instrument_imports()` block (FACTS.md: modules imported later are
  not instrumented); the targets do that themselves, before any vring import.
"""
from __future__ import annotations

import os
import struct as _struct
from itertools import chain as _chain

from vring.errors import BadAddress
from vring.features import F_EVENT_IDX, F_IN_ORDER, F_INDIRECT_DESC
from vring.memory import GuestMemory

_U16, _U32, _U64 = _struct.Struct("<H"), _struct.Struct("<I"), _struct.Struct("<Q")

ENV_DRIVER = "VRINGFUZZ_DRIVER"
ENV_DEVICE = "VRINGFUZZ_DEVICE"
ENV_INSTRUMENT = "VRINGFUZZ_INSTRUMENT"     # "1": instrument even when imported
ENV_NO_MUTATOR = "VRINGFUZZ_NO_MUTATOR"     # "1": plain libFuzzer byte mutations

# The memory every target uses: one region, 64 KiB above a NULL guard page.
MEM_BASE = 0x1000
MEM_SIZE = 0x10000
MEM_END = MEM_BASE + MEM_SIZE


# -- findings ---------------------------------------------------------------

class FuzzFinding(Exception):
    """An oracle of a fuzz target fired.  `oracle` names it in reports."""

    oracle = "fuzz"


class UnexpectedException(FuzzFinding):
    """An implementation raised something other than the library's own errors."""

    oracle = "fuzz:unexpected-exception"


class AccessBudgetExceeded(FuzzFinding):
    """One operation touched guest memory more often than its bound allows
    (an unbounded walk of guest-controlled `next`, STYLE.md "chain walks are
    bounded iterators")."""

    oracle = "fuzz:access-budget"


class EscapedBadAddress(FuzzFinding):
    """An out-of-memory access escaped as BadAddress instead of a spec violation."""

    oracle = "fuzz:bad-address"


class BadChain(FuzzFinding):
    """pop returned a chain that breaks a rule, or differs from the re-walk."""

    oracle = "fuzz:bad-chain"


class WrongVerdict(FuzzFinding):
    """pop rejected a valid chain, or accepted (or ignored) an invalid one."""

    oracle = "fuzz:wrong-verdict"


class HardeningViolation(FuzzFinding):
    """The driver trusted a malicious device (token twice, bad len, free list...)."""

    oracle = "fuzz:driver-hardening"


def unexpected(where: str, exc: BaseException) -> UnexpectedException:
    return UnexpectedException(f"{where} raised {type(exc).__name__}: {exc}")


# -- counted, reusable guest memory ----------------------------------------

class CountingMemory(GuestMemory):
    """GuestMemory that counts accesses against a budget and can be reset.

    The counter is checked on every access: a walk that follows guest-made
    loops forever is stopped at the budget and reported, not hung.  `exceeded`
    stays set even if the implementation swallows the exception.
    """

    def __init__(self, size: int = MEM_SIZE, base: int = MEM_BASE, buffer=None):
        super().__init__(size, base, buffer)   # buffer: memory C can see (harness/nativemem)
        self.accesses = 0
        self.budget = 1 << 62
        self.exceeded = False
        self.bad_address = False
        self._zero = memoryview(bytes(size))   # sliced without a copy by reset
        self._lo, self._hi = 0, size     # the dirty range: all of it at first
        self._snap = (list(self._free), dict(self._allocs))

    def snapshot(self) -> None:
        """Remember the allocator state (after the ring areas are allocated)."""
        self._snap = (list(self._free), dict(self._allocs))

    def reset(self) -> None:
        """Zero every byte written since the last reset (by the code under test
        or through `mark`) and return the allocator to the snapshot."""
        lo, hi = self._lo, self._hi
        if hi > lo:
            self.buf[lo:hi] = self._zero[lo:hi]
        self._lo, self._hi = self.size, 0
        self._free = list(self._snap[0])
        self._allocs = dict(self._snap[1])
        self.accesses = 0
        self.budget = 1 << 62
        self.exceeded = False
        self.bad_address = False

    def mark(self, off: int, n: int) -> None:
        """Note a direct write into buf at offset off (so reset zeroes it)."""
        if off < self._lo:
            self._lo = off
        if off + n > self._hi:
            self._hi = off + n

    def limit(self, n: int) -> None:
        """Allow n more accesses from now on."""
        self.budget = self.accesses + n

    def _over(self) -> None:
        self.exceeded = True
        raise AccessBudgetExceeded(
            f"more than {self.budget} guest memory accesses in one operation")

    def _bad(self, addr: int, n: int) -> BadAddress:
        self.bad_address = True
        return BadAddress(addr, n)

    # The accessors repeat GuestMemory's bounds check and inline the counter
    # rather than calling helpers: they are the hot path of every execution.
    def read16(self, addr: int) -> int:
        self.accesses += 1
        if self.accesses > self.budget:
            self._over()
        off = addr - self.base
        if off < 0 or off + 2 > self.size:
            raise self._bad(addr, 2)
        return _U16.unpack_from(self.buf, off)[0]

    def read32(self, addr: int) -> int:
        self.accesses += 1
        if self.accesses > self.budget:
            self._over()
        off = addr - self.base
        if off < 0 or off + 4 > self.size:
            raise self._bad(addr, 4)
        return _U32.unpack_from(self.buf, off)[0]

    def read64(self, addr: int) -> int:
        self.accesses += 1
        if self.accesses > self.budget:
            self._over()
        off = addr - self.base
        if off < 0 or off + 8 > self.size:
            raise self._bad(addr, 8)
        return _U64.unpack_from(self.buf, off)[0]

    def read(self, addr: int, n: int) -> bytes:
        self.accesses += 1
        if self.accesses > self.budget:
            self._over()
        if n < 0 or addr < self.base or addr + n > self._end:
            raise self._bad(addr, n)
        return super().read(addr, n)

    def _store(self, addr: int, n: int) -> int:
        self.accesses += 1
        if self.accesses > self.budget:
            self._over()
        off = addr - self.base
        if off < 0 or off + n > self.size:
            raise self._bad(addr, n)
        if off < self._lo:
            self._lo = off
        if off + n > self._hi:
            self._hi = off + n
        return off

    def write16(self, addr: int, value: int) -> None:
        _U16.pack_into(self.buf, self._store(addr, 2), value & 0xFFFF)

    def write32(self, addr: int, value: int) -> None:
        _U32.pack_into(self.buf, self._store(addr, 4), value & 0xFFFFFFFF)

    def write64(self, addr: int, value: int) -> None:
        _U64.pack_into(self.buf, self._store(addr, 8), value & 0xFFFFFFFFFFFFFFFF)

    def write(self, addr: int, data: bytes) -> None:
        off = self._store(addr, len(data))
        self.buf[off:off + len(data)] = data


# -- plug-ins and instrumentation ------------------------------------------

def plugin_spec(side: str, given=None):
    """The implementation to fuzz: `given` (spec or make callable), else the env."""
    if given is not None:
        return given
    env = ENV_DRIVER if side == "driver" else ENV_DEVICE
    return os.environ.get(env) or "reference"


def resolve_make(side: str, spec):
    """A make(mem, cfg, platform) callable from a spec string or a callable."""
    if callable(spec):
        return spec
    from vring.contract import resolve
    return resolve(spec, side)


def fuzz_main(argv, test_one_input, custom_mutator=None) -> None:
    """Hand a target to atheris/libFuzzer (argv as libFuzzer expects it)."""
    import atheris
    kwargs = {}
    if custom_mutator is not None and os.environ.get(ENV_NO_MUTATOR) != "1":
        kwargs["custom_mutator"] = custom_mutator
    atheris.Setup(list(argv), test_one_input, **kwargs)
    atheris.Fuzz()


# -- the descriptor-chain input format (desc_chain target, mutator, seeds) ---
#
#   header   cfg u8 | pops u8 | avail u16
#   ring     size x u16 raw head            (avail ring entries)
#   descs    size x record                  (the descriptor table)
#   tables   up to 4 x (count u8, count x record)   (indirect tables)
#   record   kind u8 | flags u8 | next u16 | value u32 | len u32   (12 bytes)
#
# cfg: size = 1 << (cfg & 7); bit 3 INDIRECT_DESC, bit 4 IN_ORDER, bit 5 EVENT_IDX.
# The decoder is total: missing bytes read as zero, extra bytes are ignored.
# Raw fields keep every value (so decode(encode(x)) == x); `materialize` maps
# them to guest values so that random bytes mostly land on interesting ones:
# a u16 below 0xF000 is taken modulo its range (in range), from 0xF000 up it
# is used as is (out of range); a len from 0xF0000000 up is used as is, any
# other is cut to 13 bits (buffers that mostly fit in memory).  An
# all-zero record stays an all-zero descriptor (addr 0: outside memory).

HEADER = _struct.Struct("<BBH")
RECORD = _struct.Struct("<BBHII")
DESC = _struct.Struct("<QIHH")
MAX_TABLES = 4
MAX_TABLE_ENTRIES = 255
TABLE_STRIDE = 16 * 256
TABLE_BASE = MEM_BASE + 0x1000            # above the rings of a 128-entry queue
DATA_BASE = TABLE_BASE + MAX_TABLES * TABLE_STRIDE
DATA_SIZE = MEM_END - DATA_BASE

CFG_INDIRECT, CFG_IN_ORDER, CFG_EVENT_IDX = 0x08, 0x10, 0x20
KIND_DATA, KIND_TABLE, KIND_RAW, KIND_NEAR_END = 0, 1, 2, 3
ZERO_RECORD = (0, 0, 0, 0, 0)


def cfg_size(cfg: int) -> int:
    return 1 << (cfg & 7)


def cfg_features(cfg: int) -> int:
    f = 0
    if cfg & CFG_INDIRECT:
        f |= F_INDIRECT_DESC
    if cfg & CFG_IN_ORDER:
        f |= F_IN_ORDER
    if cfg & CFG_EVENT_IDX:
        f |= F_EVENT_IDX
    return f


def cfg_pops(pops: int) -> int:
    return 1 + (pops & 7)


def map_avail_idx(raw: int, size: int) -> int:
    # size + 2 values cover every outcome: none, 1..size pending, too far ahead.
    return raw if raw >= 0xF000 else raw % (size + 2)


def map_index(raw: int, limit: int) -> int:
    return raw if raw >= 0xF000 else raw % limit


class ChainInput:
    """The decoded desc_chain input: raw fields, editable by the mutator."""

    __slots__ = ("cfg", "pops", "avail", "ring", "descs", "tables")

    def __init__(self, cfg=0, pops=0, avail=0, ring=None, descs=None, tables=None):
        self.cfg, self.pops, self.avail = cfg, pops, avail
        size = cfg_size(cfg)
        self.ring = list(ring or [])[:size] + [0] * max(0, size - len(ring or []))
        descs = [tuple(r) for r in (descs or [])][:size]
        self.descs = descs + [ZERO_RECORD] * (size - len(descs))
        self.tables = [[tuple(r) for r in t][:MAX_TABLE_ENTRIES] for t in (tables or [])][:MAX_TABLES]

    @property
    def size(self) -> int:
        return cfg_size(self.cfg)

    def resize(self) -> None:
        """Pad or cut ring and descs after cfg changed the queue size."""
        n = self.size
        self.ring = (self.ring + [0] * n)[:n]
        self.descs = (self.descs + [ZERO_RECORD] * n)[:n]

    def __eq__(self, other) -> bool:
        return isinstance(other, ChainInput) and all(
            getattr(self, k) == getattr(other, k) for k in self.__slots__)

    def __repr__(self) -> str:
        return (f"ChainInput(cfg={self.cfg:#x}, pops={self.pops}, avail={self.avail}, "
                f"ring={self.ring}, descs={self.descs}, tables={self.tables})")


_RECORDS: dict[int, _struct.Struct] = {}
_RING = tuple(_struct.Struct(f"<{1 << k}H") for k in range(8))   # per queue size


def _records_struct(count: int) -> _struct.Struct:
    st = _RECORDS.get(count)
    if st is None:
        st = _RECORDS[count] = _struct.Struct("<" + "BBHII" * count)
    return st


def _records(data: bytes, off: int, count: int) -> tuple[list, int]:
    """`count` records from data[off:], zero-padded; returns (records, new off)."""
    end = off + RECORD.size * count
    chunk = data[off:end]
    whole = len(chunk) - len(chunk) % RECORD.size
    records = list(RECORD.iter_unpack(chunk[:whole]))
    if whole < len(chunk):
        records.append(RECORD.unpack(chunk[whole:] + bytes(RECORD.size - len(chunk) + whole)))
    if len(records) < count:
        records += [ZERO_RECORD] * (count - len(records))   # the padding, unpacked
    return records, end


def _pack_records(records) -> bytes:
    return _records_struct(len(records)).pack(*_chain.from_iterable(records))


def decode_chain(data: bytes) -> ChainInput:
    """Total decoder: any bytes give a ChainInput."""
    head = data[:HEADER.size]
    cfg, pops, avail = HEADER.unpack(head + bytes(HEADER.size - len(head)))
    size = cfg_size(cfg)
    off = HEADER.size
    ring_bytes = data[off:off + 2 * size]
    ring_bytes += bytes(2 * size - len(ring_bytes))
    ring = list(_RING[cfg & 7].unpack(ring_bytes))
    off += 2 * size
    descs, off = _records(data, off, size)
    tables = []
    while off < len(data) and len(tables) < MAX_TABLES:
        count = data[off]
        table, off = _records(data, off + 1, count)
        tables.append(table)
    inp = ChainInput.__new__(ChainInput)
    inp.cfg, inp.pops, inp.avail, inp.ring, inp.descs, inp.tables = (
        cfg, pops, avail, ring, descs, tables)
    return inp


def encode_chain(inp: ChainInput) -> bytes:
    parts = [HEADER.pack(inp.cfg, inp.pops, inp.avail),
             _struct.pack(f"<{len(inp.ring)}H", *inp.ring)]
    parts.append(_pack_records(inp.descs))
    for table in inp.tables:
        parts.append(bytes([len(table)]))
        parts.append(_pack_records(table))
    return b"".join(parts)


def table_addr(t: int) -> int:
    return TABLE_BASE + t * TABLE_STRIDE


def record_to_desc(rec, limit: int, table_lens) -> tuple[int, int, int, int]:
    """Map a raw record to the (addr, len, flags, next) stored in guest memory."""
    kind, flags, nxt, value, ln = rec
    k = kind & 3
    if k == KIND_DATA:
        addr = DATA_BASE + value % DATA_SIZE
    elif k == KIND_TABLE:
        t = value % MAX_TABLES
        addr = TABLE_BASE + t * TABLE_STRIDE
        if ln == 0:
            ln = 16 * table_lens[t]
    elif k == KIND_RAW:
        addr = (kind >> 2) << 32 | value
    else:
        addr = MEM_END - (value & 0xFFF)
    if ln < 0xF0000000:
        ln &= 0x1FFF
    return addr, ln, flags, nxt if nxt >= 0xF000 else nxt % limit


def materialize(mem: CountingMemory, inp: ChainInput, desc: int, avail: int) -> None:
    """Write the driver's side of the input into freshly reset guest memory.

    The definition of the mapping: the target runs `load_chain`, which the
    tests check writes the same bytes as decode_chain + materialize.

    `desc` and `avail` are the guest addresses of the table and avail ring.
    The stores go straight to the buffer: they are the input, not accesses of
    the code under test.
    """
    buf = mem.buf
    size = len(inp.ring)
    mem.mark(desc - MEM_BASE, 16 * size)
    mem.mark(avail - MEM_BASE, 4 + 2 * size)
    if inp.tables:
        mem.mark(TABLE_BASE - MEM_BASE, TABLE_STRIDE * len(inp.tables))
    tables = inp.tables
    table_lens = [len(t) for t in tables] + [0] * (MAX_TABLES - len(tables))
    pack = DESC.pack_into
    off = desc - MEM_BASE
    for rec in inp.descs:
        if rec != ZERO_RECORD:
            pack(buf, off, *record_to_desc(rec, size, table_lens))
        off += 16
    for t, table in enumerate(tables):
        off = table_addr(t) - MEM_BASE
        n = len(table) or 1
        for rec in table:
            if rec != ZERO_RECORD:
                pack(buf, off, *record_to_desc(rec, n, table_lens))
            off += 16
    ring = [h if h >= 0xF000 else h % size for h in inp.ring]
    _struct.pack_into(f"<HH{size}H", buf, avail - MEM_BASE, 0,
                      map_avail_idx(inp.avail, size), *ring)


_ZERO_DESC = bytes(DESC.size)
# The memo maps chunks of 8 records: a byte mutation re-maps one chunk, not
# a whole table.  Bounded: 1 << 14 entries of at most 224 bytes.
_CHUNK = 8 * RECORD.size
MEMO_MAX = 1 << 14


def load_chain(mem: CountingMemory, data: bytes, desc: int, avail: int,
               memo: dict | None = None) -> tuple[int, int, int]:
    """decode_chain + materialize in one pass over the bytes; returns the
    header (cfg, pops, avail).  The tests check it writes the same memory.

    The target's hot path: no ChainInput is built; records past the end of
    the input (zero once decoded, so left as reset made them) are not
    visited; and `memo` (the caller's, reused across inputs) maps the raw
    bytes of the ring and of each chunk of records, with what their mapping
    depends on (limit, table lengths), to the guest bytes: a mutant shares
    most of them with its parent, so most chunks are one lookup.
    """
    if memo is None:
        memo = {}
    elif len(memo) > MEMO_MAX:
        memo.clear()
    n = len(data)
    size = cfg_size(data[0] if n else 0)
    descs = HEADER.size + 2 * size
    end = descs + RECORD.size * size
    # Zero bytes up to the last descriptor and one record more: a record cut
    # by the end of the input reads zero-padded, as the decoder pads it.
    data = bytes(data) + bytes(max(end - n, 0) + RECORD.size)
    cfg, pops, raw_avail = HEADER.unpack_from(data)
    tables: list[tuple[int, int]] = []        # (offset of entry 0, count)
    off = end
    while off < n and len(tables) < MAX_TABLES:
        tables.append((off + 1, data[off]))
        off += 1 + RECORD.size * data[off]
    table_lens = tuple(count for _, count in tables) + (0,) * (MAX_TABLES - len(tables))
    mem.mark(desc - MEM_BASE, 16 * size)
    mem.mark(avail - MEM_BASE, 4 + 2 * size)
    if tables:
        mem.mark(TABLE_BASE - MEM_BASE, TABLE_STRIDE * len(tables))
    buf = mem.buf
    regions = [(descs, size, desc - MEM_BASE)]      # (start, count = limit, dst)
    regions += [(start, count, table_addr(t) - MEM_BASE) for t, (start, count) in enumerate(tables)]
    for start, count, dst in regions:
        stop = min(start + RECORD.size * count, n)
        if stop <= start:
            continue
        stop += -(stop - start) % RECORD.size     # whole records
        out = []
        for lo in range(start, stop, _CHUNK):
            key = (data[lo:min(lo + _CHUNK, stop)], count, table_lens)
            chunk = memo.get(key)
            if chunk is None:
                chunk = memo[key] = b"".join([
                    _ZERO_DESC if rec == ZERO_RECORD
                    else DESC.pack(*record_to_desc(rec, count, table_lens))
                    for rec in RECORD.iter_unpack(key[0])])
            out.append(chunk)
        out = b"".join(out)
        buf[dst:dst + len(out)] = out
    raw_ring = data[HEADER.size:descs]      # its length says the queue size
    ring = memo.get(raw_ring)
    if ring is None:
        heads = _RING[cfg & 7].unpack(raw_ring)
        ring = memo[raw_ring] = _RING[cfg & 7].pack(
            *[h if h >= 0xF000 else h % size for h in heads])
    _U16.pack_into(buf, avail + 2 - MEM_BASE, map_avail_idx(raw_avail, size))
    buf[avail + 4 - MEM_BASE:avail + 4 - MEM_BASE + len(ring)] = ring
    return cfg, pops, raw_avail
