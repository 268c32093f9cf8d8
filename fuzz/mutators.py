"""A structure-aware libFuzzer custom mutator for the desc_chain input.

Rules:
* `custom_mutator(data, max_size, seed)` is what atheris calls.  It is a pure
  function of its arguments: all randomness comes from the seed (a hash of it
  picks the path, SplitMix(seed) drives an edit), so libFuzzer's own seed
  makes a campaign reproducible.
* 1 - BYTE_SHARE of the calls decode the input (fuzz/common.py: the decoder
  is total), apply ONE structural edit and re-encode; the rest hand the bytes
  to atheris.Mutate (cheap, and byte-level novelty is never lost).  The share
  trades speed for structure: see harness/bench_fuzz.compare_mutators.
* The edits are the ways real drivers get chains wrong (VIRTIO 1.2, 2.7.5,
  2.7.5.3): flip NEXT / WRITE / INDIRECT, retarget next, close a loop, grow or
  shrink a len, point a descriptor at an indirect table or nest one, move the
  avail idx, toggle a feature, resize the queue, make a chain IN_ORDER-
  sequential.  Most edits pick a descriptor on the chain that the first pop
  will walk, where an edit changes the outcome.
"""
from __future__ import annotations

import random

from fuzz.common import (CFG_EVENT_IDX, CFG_IN_ORDER, CFG_INDIRECT, KIND_DATA,
                         KIND_NEAR_END, KIND_RAW, KIND_TABLE, MAX_TABLE_ENTRIES,
                         MAX_TABLES, ChainInput, decode_chain, encode_chain,
                         map_index)
from vring.features import VRING_DESC_F_INDIRECT, VRING_DESC_F_NEXT, VRING_DESC_F_WRITE

BYTE_SHARE = 0.8   # share of calls left to libFuzzer's byte mutations: the structural
#                   edit costs ~50 us, so a larger share kept desc_chain under 10k execs/s
_M64 = (1 << 64) - 1


class SplitMix:
    """A tiny seeded PRNG (splitmix64) with the few random.Random methods the
    edits use.  random.Random(seed) costs ~15 us to seed, as much as an edit;
    this costs nothing to seed and gives the same stream for the same seed."""

    __slots__ = ("state",)

    def __init__(self, seed: int):
        self.state = seed & _M64

    def getrandbits(self, k: int) -> int:
        self.state = z = (self.state + 0x9E3779B97F4A7C15) & _M64
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
        return (z ^ (z >> 31)) >> (64 - k) if k else 0

    def random(self) -> float:
        return self.getrandbits(53) / (1 << 53)

    def randrange(self, n: int) -> int:
        return self.getrandbits(64) % n   # bias < 2^-48 for our n: irrelevant here

    def randint(self, a: int, b: int) -> int:
        return a + self.randrange(b - a + 1)

    def choice(self, seq):
        return seq[self.randrange(len(seq))]
LENS = (0, 1, 2, 15, 16, 17, 64, 512, 4095, 4096, 0x1FFF, 0xF0000000, 0xFFFFFFFF)


def chain_indices(inp: ChainInput, slot: int = 0) -> list[int]:
    """Indices of the direct descriptors the chain in avail slot `slot` visits."""
    size = inp.size
    i = map_index(inp.ring[slot % size], size)
    out: list[int] = []
    while i < size and i not in out:
        out.append(i)
        _, flags, nxt, _, _ = inp.descs[i]
        if not flags & VRING_DESC_F_NEXT or flags & VRING_DESC_F_INDIRECT:
            break
        i = map_index(nxt, size)
    return out


def _pick(inp: ChainInput, rng: random.Random) -> tuple[list, int, int]:
    """(records, index, limit): a record to edit, mostly one on the first chain."""
    on_chain = chain_indices(inp, rng.randrange(max(1, min(inp.avail, inp.size))))
    roll = rng.random()
    if on_chain and roll < 0.6:
        return inp.descs, rng.choice(on_chain), inp.size
    tables = [t for t in inp.tables if t]
    if tables and roll < 0.8:
        t = rng.choice(tables)
        return t, rng.randrange(len(t)), len(t)
    return inp.descs, rng.randrange(inp.size), inp.size


def _set(records: list, k: int, **fields) -> None:
    kind, flags, nxt, value, ln = records[k]
    rec = dict(kind=kind, flags=flags, nxt=nxt, value=value, ln=ln)
    rec.update(fields)
    records[k] = (rec["kind"], rec["flags"] & 0xFF, rec["nxt"] & 0xFFFF,
                  rec["value"] & 0xFFFFFFFF, rec["ln"] & 0xFFFFFFFF)


def _flip(bit: int):
    def edit(inp, rng):
        records, k, _ = _pick(inp, rng)
        _set(records, k, flags=records[k][1] ^ bit)
    edit.__name__ = f"flip_{bit}"
    return edit


def retarget_next(inp, rng):
    records, k, limit = _pick(inp, rng)
    nxt = rng.choice((rng.randrange(limit), k + 1, 0, limit, 0xFFFF, k))
    _set(records, k, nxt=nxt, flags=records[k][1] | VRING_DESC_F_NEXT)


def close_loop(inp, rng):
    """Point the last descriptor of the first chain back at an earlier one."""
    on_chain = chain_indices(inp)
    if not on_chain:
        return retarget_next(inp, rng)
    last = on_chain[-1]
    _set(inp.descs, last, flags=(inp.descs[last][1] | VRING_DESC_F_NEXT)
         & ~VRING_DESC_F_INDIRECT, nxt=rng.choice(on_chain))


def resize_len(inp, rng):
    records, k, _ = _pick(inp, rng)
    ln = records[k][4]
    ln = rng.choice((ln * 2, ln // 2, ln + 1, ln - 1 if ln else 0, ln + 16,
                     rng.choice(LENS)))
    _set(records, k, ln=ln)


def retarget_addr(inp, rng):
    records, k, _ = _pick(inp, rng)
    kind = rng.choice((KIND_DATA, KIND_DATA, KIND_RAW, KIND_NEAR_END, KIND_RAW | 4))
    value = rng.choice((0, 1, 0x1000, 0xFFF, 0xFFFFFFFF, rng.getrandbits(32),
                        rng.getrandbits(12)))
    _set(records, k, kind=kind, value=value)


def _ensure_table(inp: ChainInput, rng: random.Random) -> int:
    """Index of an indirect table; builds a small valid one when none exists."""
    if inp.tables and rng.random() < 0.7:
        return rng.randrange(len(inp.tables))
    if len(inp.tables) >= MAX_TABLES:
        return rng.randrange(MAX_TABLES)
    n = rng.randint(1, 4)
    writable_from = rng.randint(0, n)
    table = []
    for i in range(n):
        flags = (VRING_DESC_F_NEXT if i < n - 1 else 0) | (
            VRING_DESC_F_WRITE if i >= writable_from else 0)
        table.append((KIND_DATA, flags, i + 1 if i < n - 1 else 0,
                      rng.getrandbits(15), rng.choice((16, 64, 512))))
    inp.tables.append(table)
    return len(inp.tables) - 1


def make_indirect(inp, rng):
    """Turn a descriptor into a pointer to an indirect table (len 0: exact)."""
    t = _ensure_table(inp, rng)
    records, k, _ = _pick(inp, rng)
    flags = rng.choice((VRING_DESC_F_INDIRECT, VRING_DESC_F_INDIRECT,
                        VRING_DESC_F_INDIRECT | VRING_DESC_F_WRITE,
                        VRING_DESC_F_INDIRECT | VRING_DESC_F_NEXT))
    _set(records, k, kind=KIND_TABLE, value=t, flags=flags,
         ln=rng.choice((0, 0, 0, 8, 16, 48, 0x1000)))
    if CFG_INDIRECT & ~inp.cfg and rng.random() < 0.8:
        inp.cfg |= CFG_INDIRECT


def nest_indirect(inp, rng):
    """Set INDIRECT on an entry of an indirect table (2.7.5.3.1 forbids it)."""
    t = _ensure_table(inp, rng)
    table = inp.tables[t]
    if not table:
        table.append((KIND_DATA, 0, 0, 0, 16))
    k = rng.randrange(len(table))
    _set(table, k, kind=KIND_TABLE, value=rng.randrange(MAX_TABLES),
         flags=VRING_DESC_F_INDIRECT, ln=0)


def grow_table(inp, rng):
    t = _ensure_table(inp, rng)
    table = inp.tables[t]
    if table and rng.random() < 0.3:
        del table[rng.randrange(len(table)):]
        return
    extra = rng.choice((1, 2, inp.size, inp.size + 1 - len(table)))
    for _ in range(max(1, extra)):
        if len(table) >= MAX_TABLE_ENTRIES:
            break
        if table:
            kind, flags, _, value, ln = table[-1]
            table[-1] = (kind, flags | VRING_DESC_F_NEXT, len(table), value, ln)
        table.append((KIND_DATA, VRING_DESC_F_WRITE, 0, rng.getrandbits(15), 8))


def move_avail(inp, rng):
    a, n = inp.avail, inp.size
    inp.avail = rng.choice((a + 1, a - 1 if a else 0, 0, 1, n, n + 1, 0xFFFF,
                            0xF000 + n + 1, rng.randrange(n + 2))) & 0xFFFF


def set_head(inp, rng):
    slot = rng.randrange(inp.size)
    inp.ring[slot] = rng.choice((rng.randrange(inp.size), inp.size, 0xFFFF,
                                 inp.ring[slot - 1] + 1)) & 0xFFFF


def toggle_feature(inp, rng):
    inp.cfg ^= rng.choice((CFG_INDIRECT, CFG_IN_ORDER, CFG_EVENT_IDX))


def resize_queue(inp, rng):
    log2 = inp.cfg & 7
    inp.cfg = (inp.cfg & ~7) | rng.choice(((log2 + 1) & 7, (log2 - 1) & 7, rng.randrange(8)))
    inp.resize()


def make_sequential(inp, rng):
    """Chain descriptors k, k+1, ... (IN_ORDER's rule, 2.7.5) from a head."""
    size = inp.size
    k = rng.randrange(size)
    n = rng.randint(1, min(size, 4))
    for j in range(n):
        i = (k + j) % size
        kind, flags, _, value, ln = inp.descs[i]
        flags &= ~(VRING_DESC_F_NEXT | VRING_DESC_F_INDIRECT)
        if j < n - 1:
            flags |= VRING_DESC_F_NEXT
        inp.descs[i] = (kind & ~3 if kind & 3 == KIND_TABLE else kind, flags,
                        (i + 1) % size, value, ln or 16)
    inp.ring[rng.randrange(size)] = k
    inp.avail = max(inp.avail, 1) if inp.avail < 0xF000 else 1


def more_pops(inp, rng):
    inp.pops = rng.randrange(256)
    if inp.avail < 0xF000:
        inp.avail = rng.randrange(inp.size + 1)


EDITS = (_flip(VRING_DESC_F_NEXT), _flip(VRING_DESC_F_WRITE), _flip(VRING_DESC_F_INDIRECT),
         retarget_next, close_loop, resize_len, retarget_addr, make_indirect,
         nest_indirect, grow_table, move_avail, set_head, toggle_feature,
         resize_queue, make_sequential, more_pops)


def structural_mutate(data: bytes, rng: random.Random) -> bytes:
    """Decode, apply one structural edit, re-encode."""
    inp = decode_chain(data)
    rng.choice(EDITS)(inp, rng)
    return encode_chain(inp)


def bytes_path(seed: int, share: float) -> bool:
    """Does this call go to libFuzzer's byte mutations (`share` of the seeds)?
    A multiplicative hash of the seed: building a PRNG and drawing from it
    cost ~10k instructions, on every call."""
    return (seed * 0x9E3779B97F4A7C15 & _M64) >> 48 < share * 0x10000


def custom_mutator(data: bytes, max_size: int, seed: int, byte_mutate=None) -> bytes:
    """The atheris custom_mutator entry point.

    byte_mutate(data, max_size) defaults to atheris.Mutate, which only works
    inside a running atheris.Fuzz() (tests pass their own).
    """
    if bytes_path(seed, BYTE_SHARE):
        if byte_mutate is None:
            import atheris  # already loaded whenever libFuzzer calls us
            byte_mutate = atheris.Mutate
        return byte_mutate(data, max_size)
    return structural_mutate(data, SplitMix(seed))[:max_size]
