#!/usr/bin/env python3
"""Fuzz target: a driver (VRINGFUZZ_DRIVER, default the reference) against a
malicious device.

The input is a config byte (queue size, features; as in fuzz/common.py) and a
list of operations: driver add_sgs of random chains, get_buf, kick and the
callback calls, and device stores between them: honest pushes, used elements
with arbitrary (id, len), and arbitrary used idx values.

Oracle: the hardening rules (VIRTIO 1.2 2.7.8; Linux BAD_RING, "id %u is not a
head!", 5.16 "validate used buffer length"):
* get_buf never returns a token twice, nor one that is not in flight, nor a
  written_len above the writable length of that token's buffer;
* a DeviceViolation leaf from get_buf leaves `broken` set; no other exception
  escapes; once broken, no token is ever returned and add_sgs refuses;
* the free list stays intact: num_free + descriptors in flight == size, and
  (when the driver exposes free_list()) no duplicates, none in flight.
"""
from __future__ import annotations

import os
import struct
import sys
from dataclasses import replace


from fuzz.instrument import instrumentation  # noqa: E402  (imports no vring)

with instrumentation(__name__ == "__main__", "VRINGFUZZ_DRIVER"):
    import vring.split.driver  # noqa: F401  (the reference, instrumented)
    from vring.contract import setup_queue
    from vring.errors import (DeviceViolation, InvalidRequest, QueueBroken,
                              QueueFull)
    from vring.features import VRING_DESC_F_INDIRECT, VRING_DESC_F_NEXT
    from vring.platform import Platform
    from harness.oracles import Ledger  # exactly-once / length-bound, shared with the engines
    from harness.nativemem import memory_for, plugin_features
    from fuzz.common import (DATA_BASE, MEM_BASE, MEM_SIZE, CountingMemory, FuzzFinding,
                             HardeningViolation, cfg_features, cfg_size,
                             plugin_spec, resolve_make, unexpected)
    if os.environ.get("VRINGFUZZ_DRIVER", "").count(":"):
        resolve_make("driver", os.environ["VRINGFUZZ_DRIVER"])  # import it now

OP_ADD, OP_ADD2, OP_GET, OP_USED, OP_USED_IDX, OP_PUSH, OP_MISC, OP_GET2 = range(8)
MAX_OPS = 256
USED_ARGS = struct.Struct("<BII")
U16 = struct.Struct("<H")
U32X2 = struct.Struct("<II")


# -- the op format (also used by corpora/make_seeds.py) -----------------------

def encode_ops(cfg: int, ops) -> bytes:
    """ops: ("add", out_lens, in_lens) | ("get",) | ("used", mode, id, len) |
    ("used_idx", mode, value) | ("push", mode) | ("misc", which).  Lens are
    multiples of 8 in 8..2048."""
    out = bytearray([cfg])
    for op in ops:
        name = op[0]
        if name == "add":
            o, i = op[1], op[2]
            out += bytes([OP_ADD, len(o) | len(i) << 2])
            out += bytes(ln // 8 - 1 for ln in list(o) + list(i))
        elif name == "get":
            out.append(OP_GET)
        elif name == "used":
            out.append(OP_USED)
            out += USED_ARGS.pack(op[1], op[2], op[3])
        elif name == "used_idx":
            out += bytes([OP_USED_IDX, op[1]]) + U16.pack(op[2])
        elif name == "push":
            out += bytes([OP_PUSH, op[1]])
        elif name == "misc":
            out += bytes([OP_MISC, op[1]])
        else:
            raise ValueError(f"unknown op {name!r}")
    return bytes(out)


class _Bytes:
    """A total reader: past the end every byte reads as zero."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk if len(chunk) == n else chunk + bytes(n - len(chunk))

    def byte(self) -> int:
        p = self.pos
        self.pos = p + 1
        return self.data[p] if p < len(self.data) else 0

    @property
    def more(self) -> bool:
        return self.pos < len(self.data)


class UsedRingTarget:
    """One fuzz target instance: reusable guest memory per queue size."""

    def __init__(self, driver=None):
        self.spec = plugin_spec("driver", driver)
        self.make = resolve_make("driver", self.spec)
        self.features = plugin_features(self.spec, None)   # e.g. no IN_ORDER in Linux 6.1
        self._rings: dict = {}   # size or (size, features) -> (memory, QueueConfig)

    def _ring(self, size: int, features: int):
        """Reset memory for a queue of `size` and its QueueConfig (cached)."""
        ring = self._rings.get((size, features))
        if ring is None:
            mem, base = self._rings.get(size) or (
                memory_for(self.spec, None, size=MEM_SIZE, factory=CountingMemory), None)
            if base is None:
                base = setup_queue(mem, size, 0)
                mem.snapshot()
                self._rings[size] = (mem, base)
            ring = self._rings[(size, features)] = (mem, replace(base, features=features))
        ring[0].reset()
        return ring

    def __call__(self, data: bytes) -> None:
        rd = _Bytes(data)
        cfg_byte = rd.byte()
        size = cfg_size(cfg_byte)
        mem, cfg = self._ring(size, cfg_features(cfg_byte) & self.features)
        try:
            drv = self.make(mem, cfg, Platform())
        except FuzzFinding:
            raise
        except Exception as e:  # noqa: BLE001
            raise unexpected("make", e) from e
        _Run(drv, mem, cfg).run(rd)


class _Run:
    """The malicious device and the oracle's model of one execution."""

    def __init__(self, drv, mem, cfg):
        self.drv, self.mem, self.buf = drv, mem, mem.buf
        self.size, self.mask = cfg.size, cfg.size - 1
        self.avail_off = cfg.avail - mem.base     # mem.base: MEM_BASE, or the real
        self.used_off = cfg.used - mem.base       # address of native memory
        self.desc_off = cfg.desc - mem.base
        self.data_base = mem.base + (DATA_BASE - MEM_BASE)
        # This device stores straight into the buffer: let reset() zero the rings.
        mem.mark(self.desc_off, self.used_off + 6 + 8 * cfg.size - self.desc_off)
        self.inflight: dict[int, tuple[int, int, tuple[int, ...]]] = {}  # token: head, wlen, descs
        self.ledger = Ledger("used_ring")
        self.busy: set[int] = set()   # descriptors of the buffers in flight
        self.next_token = 1
        self.dev_used = 0          # the next used idx this device publishes
        self.dev_avail = 0         # the next avail slot the honest device takes
        self.last_head = 0

    def run(self, rd: _Bytes) -> None:
        ops = 0
        while rd.more and ops < MAX_OPS:
            ops += 1
            op = rd.byte() & 7
            # The free list is re-checked after every driver call; device
            # stores do not run driver code, so they need no check.
            if op in (OP_ADD, OP_ADD2):
                shape = rd.byte()
                n_out, n_in = shape & 3, (shape >> 2) & 3
                if not n_out + n_in:
                    n_in = 1
                lens = [(b + 1) * 8 for b in rd.take(n_out + n_in)]
                self.add(lens[:n_out], lens[n_out:])
                self.check_free_list()
            elif op in (OP_GET, OP_GET2):
                self.get()
                self.check_free_list()
            elif op == OP_USED:
                self.used(*USED_ARGS.unpack(rd.take(USED_ARGS.size)))
            elif op == OP_USED_IDX:
                mode = rd.byte()
                self.used_idx(mode, U16.unpack(rd.take(2))[0])
            elif op == OP_PUSH:
                self.push(rd.byte())
            else:
                self.misc(rd.byte())
                self.check_free_list(full=False)

    # -- driver calls --------------------------------------------------------
    def add(self, out_lens, in_lens) -> None:
        drv, token = self.drv, self.next_token
        self.next_token += 1
        out = [(self.data_base + 0x100 * k, ln) for k, ln in enumerate(out_lens)]
        in_ = [(self.data_base + 0x4000 + 0x100 * k, ln) for k, ln in enumerate(in_lens)]
        broken = drv.broken
        try:
            drv.add_sgs(out, in_, token)
        except QueueBroken:
            if not broken:
                raise HardeningViolation("add_sgs raised QueueBroken on a queue not broken")
            return
        except QueueFull:
            return
        except InvalidRequest as e:
            if len(out) + len(in_) <= self.size:
                raise unexpected("add_sgs", e) from e
            return
        except FuzzFinding:
            raise
        except Exception as e:  # noqa: BLE001
            raise unexpected("add_sgs", e) from e
        if broken:
            raise HardeningViolation("add_sgs accepted a buffer on a broken queue")
        avail_idx = U16.unpack_from(self.buf, self.avail_off + 2)[0]
        head = U16.unpack_from(self.buf, self.avail_off + 4 + 2 * ((avail_idx - 1) & self.mask))[0]
        descs = self.chain_of(head)
        if not self.busy.isdisjoint(descs):
            raise HardeningViolation(
                f"add_sgs reused descriptor(s) {sorted(self.busy.intersection(descs))} in flight")
        self.ledger.add(token, sum(in_lens))
        self.inflight[token] = (head, sum(in_lens), descs)
        self.busy.update(descs)

    def chain_of(self, head: int) -> tuple[int, ...]:
        """The descriptor indices the driver just wrote for the chain at head."""
        out, i = [], head
        while i < self.size and i not in out:
            out.append(i)
            flags, nxt = U16.unpack_from(self.buf, self.desc_off + 16 * i + 12)[0], \
                U16.unpack_from(self.buf, self.desc_off + 16 * i + 14)[0]
            if not flags & VRING_DESC_F_NEXT or flags & VRING_DESC_F_INDIRECT:
                break
            i = nxt
        return tuple(out)

    def get(self) -> None:
        drv = self.drv
        broken = drv.broken
        try:
            got = drv.get_buf()
        except DeviceViolation as e:
            if type(e) is DeviceViolation:
                raise unexpected("get_buf", e) from e  # a leaf must say which rule
            if not drv.broken:
                raise HardeningViolation(
                    f"get_buf raised {type(e).__name__} but the queue is not broken") from e
            return
        except FuzzFinding:
            raise
        except Exception as e:  # noqa: BLE001
            raise unexpected("get_buf", e) from e
        if got is None:
            return
        token, written = got
        if broken:
            raise HardeningViolation(f"get_buf returned token {token} after the queue broke")
        self.ledger.got(token, written)  # in flight, once, written_len <= writable
        head, _, descs = self.inflight.pop(token)
        self.busy.difference_update(descs)
        self.last_head = head

    def misc(self, which: int) -> None:
        drv = self.drv
        try:
            k = which % 5
            if k == 0:
                drv.kick()
            elif k == 1:
                drv.disable_cb()
            elif k == 2:
                drv.enable_cb()
            elif k == 3:
                drv.enable_cb_delayed()
            else:
                drv.poll(drv.enable_cb_prepare())
        except FuzzFinding:
            raise
        except Exception as e:  # noqa: BLE001
            raise unexpected(("kick", "disable_cb", "enable_cb", "enable_cb_delayed",
                              "poll")[which % 5], e) from e

    # -- device stores ----------------------------------------------------------
    def _publish(self, head: int, ln: int, bump: bool) -> None:
        U32X2.pack_into(self.buf, self.used_off + 4 + 8 * (self.dev_used & self.mask),
                        head & 0xFFFFFFFF, ln & 0xFFFFFFFF)
        if bump:
            self.dev_used = (self.dev_used + 1) & 0xFFFF
            U16.pack_into(self.buf, self.used_off + 2, self.dev_used)

    def _writable(self, head: int) -> int | None:
        for h, wlen, _ in self.inflight.values():
            if h == head:
                return wlen
        return None

    def used(self, mode: int, a: int, b: int) -> None:
        """A used element with a chosen (id, len); bit 4 also publishes it."""
        k = mode & 3
        if k == 0 and self.inflight:
            heads = [st[0] for _, st in sorted(self.inflight.items())]
            head = heads[a % len(heads)]
        elif k == 1:
            head = a
        elif k == 2:
            head = self.last_head
        else:
            head = a % self.size
        wlen = self._writable(head)
        k = (mode >> 2) & 3
        if wlen is None or k == 1:
            ln = b
        elif k == 0:
            ln = wlen
        elif k == 2:
            ln = wlen + 1 + b % 3
        else:
            ln = b % (wlen + 1)
        self._publish(head, ln, bool(mode & 0x10))

    def used_idx(self, mode: int, value: int) -> None:
        """Store an arbitrary used idx: raw, or a step of -1..3 from ours."""
        if mode & 1:
            self.dev_used = value
        else:
            self.dev_used = (self.dev_used + value % 5 - 1) & 0xFFFF
        U16.pack_into(self.buf, self.used_off + 2, self.dev_used)

    def push(self, mode: int) -> None:
        """An honest device: take the next avail head, return it used."""
        avail_idx = U16.unpack_from(self.buf, self.avail_off + 2)[0]
        if avail_idx == self.dev_avail:
            return
        head = U16.unpack_from(self.buf, self.avail_off + 4 + 2 * (self.dev_avail & self.mask))[0]
        self.dev_avail = (self.dev_avail + 1) & 0xFFFF
        wlen = self._writable(head) or 0
        self._publish(head, (wlen, 0, wlen // 2, wlen)[mode & 3], True)

    # -- invariants -------------------------------------------------------------
    def check_free_list(self, full: bool = True) -> None:
        """num_free + in flight == size; with `full`, the list itself (no
        duplicates, nothing in flight, all in range)."""
        drv, size = self.drv, self.size
        busy = self.busy
        if drv.num_free + len(busy) != size:
            raise HardeningViolation(
                f"num_free {drv.num_free} + {len(busy)} descriptors in flight != size {size}")
        free_list = getattr(drv, "free_list", None)
        if free_list is None or not full:
            return
        free = free_list()
        if not free:
            return
        free_set = set(free)
        if len(free) != drv.num_free or len(free_set) != len(free):
            raise HardeningViolation(f"free list {free} has duplicates or != num_free")
        if min(free) < 0 or max(free) >= size or not free_set.isdisjoint(busy):
            raise HardeningViolation(f"free list {free} holds descriptors in flight "
                                     f"{sorted(free_set.intersection(busy))} or out of range")


_target: UsedRingTarget | None = None


def TestOneInput(data: bytes) -> None:  # noqa: N802  (the atheris/OSS-Fuzz name)
    global _target
    if _target is None:
        _target = UsedRingTarget()
    _target(data)


def main(argv=None) -> None:
    from fuzz.common import fuzz_main
    fuzz_main(sys.argv if argv is None else argv, TestOneInput)


if __name__ == "__main__":
    main()
