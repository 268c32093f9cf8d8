"""The C ring's own loads and stores as scheduling points and memory-model events.

    bridge_for(mem, cfg, tsan, side) -> AccessBridge | StoreReporter | None
    AccessBridge(mem)        on_access listener of a tsan-built side over a model memory
    StoreReporter(mem, regions, on_store)  the plain build: C's ring stores told
                             to the spec monitor
    .settle()                called at every hook and when the C call returns

Theory of operation (the -fsanitize=thread build, glue/vf_tsan.c):
* The compiler calls __tsan_readN/__tsan_writeN(p) BEFORE each load/store of
  the ring code; ours calls on_access(addr, n, is_write) for guest memory.
  The access itself happens in C right after the hook returns, and before
  the next hook: nothing else runs in between (greenlets are cooperative and
  the only way out of C into the scheduler is a hook).  That window is what
  makes a real store delayable:
* Store: the hook saves the bytes there.  At the next hook (or when the call
  returns) the bridge reads what C stored, puts the saved bytes back, and
  issues the store through the model memory: `mem.write16/32/64/write` - a
  scheduling point, the trace event, the spec monitor (watch_stores) and,
  under tso/relaxed, the storing task's store buffer.  So a C store is
  performed at that point, later than C executed it but before C's next
  access: program order is kept, and other tasks see it only when the model
  drains it.  A barrier hook settles first, so mb() drains it.
* Load: the hook takes a scheduling point through `mem.read16/32/64/read`,
  which returns what THIS task may see (its own buffered stores, or stale
  bytes under relaxed).  When that differs from memory, those bytes are put
  in memory for the one C load and the real bytes restored at the next hook;
  no other task runs in that window, so nobody else can see them.
* Hence: with the tsan build the memory model covers the C side exactly as
  it covers Python code.  With the plain build (`--driver linux`) the C
  side's accesses are invisible: its stores are visible at once (sequentially
  consistent) and only its barriers, notifies and API calls are points; the
  model then reorders the Python side only, which cannot create the store
  buffering a missing virtio_mb allows (both stores must be delayed).
* An exception at a point inside settle() (the scheduler abandoning the run)
  leaves memory as before the store; the C call is then unwound and the
  queue broken, so the lost store is never observed by the ring.
"""
from __future__ import annotations

import struct
import types

_PACK = {2: struct.Struct("<H"), 4: struct.Struct("<I"), 8: struct.Struct("<Q")}


class AccessBridge:
    """Routes one C side's guest-memory accesses through a memory model."""

    __slots__ = ("mem", "raw", "base", "_pending", "_rd", "_wr")

    def __init__(self, mem):
        self.mem = mem
        self.raw = mem.buf
        self.base = mem.base
        self._pending = None      # (is_write, offset, n, saved bytes)
        # Bound per width: the trace shows r16/w32... as for Python ring code.
        self._rd = {2: "read16", 4: "read32", 8: "read64"}
        self._wr = {2: "write16", 4: "write32", 8: "write64"}

    def __call__(self, addr: int, n: int, is_write: bool) -> None:
        if self._pending is not None:
            self.settle()
        off = addr - self.base
        raw = self.raw
        if is_write:
            self._pending = (True, off, n, bytes(raw[off:off + n]))
            return
        pk = _PACK.get(n)
        if pk is not None:
            # Looked up on the instance: watch_stores-style wrappers apply.
            seen = pk.pack(getattr(self.mem, self._rd[n])(addr))
        else:
            seen = bytes(self.mem.read(addr, n))
        real = bytes(raw[off:off + n])
        if seen != real:
            raw[off:off + n] = seen
            self._pending = (False, off, n, real)

    def settle(self) -> None:
        """Complete the access the last hook announced (see the module rules)."""
        p = self._pending
        if p is None:
            return
        self._pending = None
        is_write, off, n, saved = p
        raw = self.raw
        stored = bytes(raw[off:off + n])
        raw[off:off + n] = saved
        if not is_write or stored == saved and self.mem.sched.current is None:
            return
        pk = _PACK.get(n)
        if pk is not None:
            getattr(self.mem, self._wr[n])(self.base + off, pk.unpack(stored)[0])
        else:
            self.mem.write(self.base + off, stored)


class StoreReporter:
    """The plain build's stores, told to the run's store listener (spec monitor).

    Without the tsan build C's stores are invisible; but C runs without a
    scheduling point between two hooks, so at each hook (and when the call
    returns) the areas this side writes - desc table and avail ring for a
    driver, used ring for a device - are compared with a shadow copy, and
    every changed field goes to the listener world.watch_stores installed
    (store_listener(mem)) with the running task, hence the right side, before
    any other task runs.  Memory is not touched and no point is taken: the
    plain build's stores stay sequentially consistent.  Indirect tables are
    not diffed (they live in allocations, not at fixed places).

    `enter()`, before each C call under tso/relaxed: C's stores are
    immediate, so they would overtake the calling task's own buffered
    stores (the payload a device wrote before vringh publishes used idx);
    the task's buffer is drained first (mem.mb(), a point).  Stronger than
    hardware, never weaker: the plain build cannot show a reordering that
    involves its own stores - the tsan build can.
    """

    __slots__ = ("mem", "raw", "regions", "on_store")

    def __init__(self, mem, regions, on_store):
        self.mem = mem
        self.raw = mem.buf
        self.on_store = on_store
        # [offset, field widths, shadow bytes]
        self.regions = []
        for addr, widths in regions:
            off = addr - mem.base
            self.regions.append([off, widths, bytes(self.raw[off:off + sum(widths)])])

    def enter(self) -> None:
        pending = getattr(self.mem, "pending_stores", None)
        if pending is not None and pending():
            self.mem.mb()

    def settle(self) -> None:
        raw = self.raw
        for region in self.regions:
            off, widths, shadow = region
            now = bytes(raw[off:off + len(shadow)])
            if now == shadow:
                continue
            region[2] = now
            cur = self.mem.sched.current
            tid = cur.id if cur is not None else None
            pos = 0
            for w in widths:
                if now[pos:pos + w] != shadow[pos:pos + w]:
                    self.on_store(tid, self.mem.base + off + pos,
                                  int.from_bytes(now[pos:pos + w], "little"), w)
                pos += w


def driver_regions(cfg):
    """(address, field widths) of what a split-ring driver stores (2.7.5, 2.7.6)."""
    return [(cfg.desc, (8, 4, 2, 2) * cfg.size), (cfg.avail, (2,) * (3 + cfg.size))]


def device_regions(cfg):
    """(address, field widths) of what a split-ring device stores (2.7.8)."""
    return [(cfg.used, (2, 2) + (4, 4) * cfg.size + (2,))]


def store_listener(mem):
    """The on_store(task_id, addr, data, width) that harness.world.watch_stores
    set on mem, or None."""
    return getattr(mem, "store_listener", None)


def bridge_for(mem, cfg=None, tsan: bool = True, side: str = "driver"):
    """What routes a C side's accesses into a scheduled memory model `mem`:
    an AccessBridge (tsan build) or a StoreReporter (plain build); None when
    `mem` is not a memory model or nothing listens to its stores."""
    from harness.memmodel import ModelMemory
    if not isinstance(mem, ModelMemory):
        return None
    _mark_plumbing(mem.sched)
    if tsan:
        return AccessBridge(mem)
    listener = store_listener(mem)
    if listener is None:
        return None
    regions = driver_regions(cfg) if side == "driver" else device_regions(cfg)
    return StoreReporter(mem, regions, listener)


def _mark_plumbing(sched) -> None:
    """Trace sites name the API call (LinuxDriver.get_buf, VringhDevice.pop...),
    not the hooks and the bridge between it and the access."""
    from . import driver, native, vringh
    sched.mark_plumbing(AccessBridge.__call__, AccessBridge.settle, StoreReporter.settle,
                        StoreReporter.enter, native._settle, native._on_access, native._on_barrier,
                        native._on_notify, driver.LinuxDriver._call,
                        vringh.VringhDevice._call,
                        *_lambdas(driver.LinuxDriver.__init__),
                        *_lambdas(vringh.VringhDevice.__init__))


def _lambdas(fn):
    """The code objects of the lambdas defined in fn (the barrier trampolines)."""
    return [c for c in fn.__code__.co_consts
            if isinstance(c, types.CodeType) and c.co_name == "<lambda>"]
