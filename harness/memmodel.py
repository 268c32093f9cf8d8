"""Memory models for scheduled runs: sc, tso and relaxed guest memory.

Rules:
* Every access and barrier made by a task is a scheduling point taken
  BEFORE it: kinds "r16"/"r32"/"r64"/"read" (a = address, b = width for
  "read"; the trace's b is then patched to the value loaded),
  "w16"/"w32"/"w64"/"write" (b = the value or bytes stored), and
  "mb"/"wmb"/"rmb".  Accesses from outside any task (setup before run(),
  oracles after it) go straight to memory with no point.
* sc: every store is visible at once.
* tso (x86): a FIFO store buffer per task.  A load sees the task's own newest
  buffered bytes first, then memory.  mb() drains the task's buffer; wmb and
  rmb are no-ops.  Draining the oldest entry of a buffer is an Action the
  schedule source picks ("drain"), so when stores become visible is part of
  the schedule and replays.  Store buffering (SB) is allowed; message
  passing (MP) is not.
* relaxed (ARM/POWER-like; the reason virtio_wmb/rmb/mb exist): any buffered
  store may drain, except that stores to overlapping bytes drain in program
  order (coherence) and a wmb()/mb() is a fence: stores before it drain
  before stores after it.  When a store drains, every other live task gets
  a stale entry holding the bytes it replaced (an invalidation queue,
  McKenney's "Memory Barriers: a Hardware View"): that task keeps reading
  the old bytes until the scheduler drops the entry ("stale" action; per
  address in order) or the task runs rmb()/mb(), which drop all of its
  stale entries.  A task always sees its own latest store: its buffer
  overlays everything, and its own drain drops its stale entries there.
  One stale entry per (task, address, width) is kept: a second drained
  store to the same field does not queue another (a sound under-approximation).
* At the end of a run (Scheduler.at_finish) every buffer drains in program
  order, tasks in id order, and stale entries vanish: no store is lost and
  oracles read final memory.
* alloc()/free() and the allocator's zeroing are not instrumented.
"""
from __future__ import annotations

import struct

from vring.errors import BadAddress
from vring.memory import GuestMemory

from .sched.runtime import Action

MODELS = ("sc", "tso", "relaxed")

_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


class UnknownModel(ValueError):
    """A memory model name that is not one of MODELS."""


class ModelMemory(GuestMemory):
    """Sequentially consistent guest memory whose accesses are scheduling points."""

    model = "sc"

    def __init__(self, sched, size: int = 1 << 20, base: int = 0x1000, buffer=None):
        super().__init__(size, base, buffer)
        self.attach(sched)

    def attach(self, sched) -> None:
        """Bind to the run's scheduler (one memory model per run)."""
        self.sched = sched
        self._point = sched.point
        self._tv = sched.notes_values   # report loaded values (trace, state cache)
        sched.at_finish(self.flush)

    def flush(self) -> None:
        """Make every buffered store visible (end of run)."""

    # -- what a task would see, without a point (for block() predicates) ----------
    def visible(self, addr: int, n: int, task=None) -> bytes:
        """The bytes `task` (default: the running one) would load, taking no point.

        Wait predicates must use this, not raw memory: under relaxed a task
        can keep reading a stale value after memory changed, and a predicate
        on raw memory would wake it into a spin that PCT never breaks."""
        off = self._off(addr, n)
        return bytes(self.buf[off:off + n])

    def peek16(self, addr: int, task=None) -> int:
        return _U16.unpack(self.visible(addr, 2, task))[0]

    def peek32(self, addr: int, task=None) -> int:
        return _U32.unpack(self.visible(addr, 4, task))[0]

    # sc accessors: a point, then the plain access (kept inline: the hot path).
    def read16(self, addr):
        self._point("r16", addr)
        off = addr - self.base
        if off < 0 or off + 2 > self.size:
            raise BadAddress(addr, 2)
        v = _U16.unpack_from(self.buf, off)[0]
        if self._tv:
            self.sched.note_value(v)
        return v

    def read32(self, addr):
        self._point("r32", addr)
        off = addr - self.base
        if off < 0 or off + 4 > self.size:
            raise BadAddress(addr, 4)
        v = _U32.unpack_from(self.buf, off)[0]
        if self._tv:
            self.sched.note_value(v)
        return v

    def read64(self, addr):
        self._point("r64", addr)
        off = addr - self.base
        if off < 0 or off + 8 > self.size:
            raise BadAddress(addr, 8)
        v = _U64.unpack_from(self.buf, off)[0]
        if self._tv:
            self.sched.note_value(v)
        return v

    def write16(self, addr, value):
        self._point("w16", addr, value & 0xFFFF)
        GuestMemory.write16(self, addr, value)

    def write32(self, addr, value):
        self._point("w32", addr, value & 0xFFFFFFFF)
        GuestMemory.write32(self, addr, value)

    def write64(self, addr, value):
        self._point("w64", addr, value & 0xFFFFFFFFFFFFFFFF)
        GuestMemory.write64(self, addr, value)

    def read(self, addr, n):
        self._point("read", addr, n)
        v = GuestMemory.read(self, addr, n)
        if self._tv:
            self.sched.note_value(v)
        return v

    def write(self, addr, data):
        self._point("write", addr, bytes(data))
        GuestMemory.write(self, addr, data)

    def wmb(self):
        self._point("wmb")

    def rmb(self):
        self._point("rmb")

    def mb(self):
        self._point("mb")


SCMemory = ModelMemory


class _Entry:
    """One buffered store: bytes [addr, addr+n), shown as `value` in the trace."""

    __slots__ = ("addr", "n", "data", "value", "epoch", "action")

    def __init__(self, addr, n, data, value, epoch):
        self.addr, self.n, self.data, self.value, self.epoch = addr, n, data, value, epoch
        self.action = None


class _View:
    """What one task has not yet made visible, or not yet seen."""

    __slots__ = ("tid", "buf", "stale", "epoch")

    def __init__(self, tid):
        self.tid = tid
        self.buf: list[_Entry] = []     # own stores, program order
        self.stale: list[_Entry] = []   # old bytes still seen (relaxed only), arrival order
        self.epoch = 0                  # fences executed (relaxed)


def _overlaps(a, n, b, m) -> bool:
    return a < b + m and b < a + n


class TSOMemory(ModelMemory):
    """Per-task FIFO store buffers; the schedule decides when they drain."""

    model = "tso"
    relaxed = False

    def attach(self, sched) -> None:
        super().attach(sched)
        self._views: dict[int, _View] = {}

    # -- loads -----------------------------------------------------------------
    def _load(self, kind, addr, n, b=None):
        self._point(kind, addr, b)
        cur = self.sched.current
        return self._seen(addr, n, self._views.get(cur.id) if cur is not None else None)

    def _seen(self, addr, n, view):
        off = addr - self.base
        if off < 0 or off + n > self.size:
            raise BadAddress(addr, n)
        if view is None or not (view.buf or view.stale):
            return self.buf[off:off + n]
        data = bytearray(self.buf[off:off + n])
        # Oldest stale entry per byte wins: overlay newest first, oldest last.
        for e in reversed(view.stale):
            if _overlaps(e.addr, e.n, addr, n):
                _overlay(data, addr, e)
        for e in view.buf:              # own stores, newest on top
            if _overlaps(e.addr, e.n, addr, n):
                _overlay(data, addr, e)
        return data

    def visible(self, addr: int, n: int, task=None) -> bytes:
        if task is None:
            task = self.sched.current
        return bytes(self._seen(addr, n, self._views.get(task.id) if task is not None
                                else None))

    def read16(self, addr):
        v = _U16.unpack_from(self._load("r16", addr, 2))[0]
        if self._tv:
            self.sched.note_value(v)
        return v

    def read32(self, addr):
        v = _U32.unpack_from(self._load("r32", addr, 4))[0]
        if self._tv:
            self.sched.note_value(v)
        return v

    def read64(self, addr):
        v = _U64.unpack_from(self._load("r64", addr, 8))[0]
        if self._tv:
            self.sched.note_value(v)
        return v

    def read(self, addr, n):
        if n < 0:
            raise BadAddress(addr, n)
        v = bytes(self._load("read", addr, n, n))
        if self._tv:
            self.sched.note_value(v)
        return v

    # -- stores ----------------------------------------------------------------
    def _store(self, kind, addr, data: bytes, value):
        self._point(kind, addr, value)
        n = len(data)
        self._off(addr, n)              # BadAddress at the store, as on plain memory
        cur = self.sched.current
        if cur is None:
            off = addr - self.base
            self.buf[off:off + n] = data
            return
        view = self._view(cur.id)
        e = _Entry(addr, n, data, value, view.epoch)
        view.buf.append(e)
        self._offer_new(view, e)

    def write16(self, addr, value):
        value &= 0xFFFF
        self._store("w16", addr, _U16.pack(value), value)

    def write32(self, addr, value):
        value &= 0xFFFFFFFF
        self._store("w32", addr, _U32.pack(value), value)

    def write64(self, addr, value):
        value &= 0xFFFFFFFFFFFFFFFF
        self._store("w64", addr, _U64.pack(value), value)

    def write(self, addr, data):
        data = bytes(data)
        self._store("write", addr, data, data)

    # -- barriers --------------------------------------------------------------
    def mb(self):
        self._point("mb")
        cur = self.sched.current
        if cur is not None:
            view = self._views.get(cur.id)
            if view is not None:
                self._drain_all(view, record=True)
                self._drop_stale(view)

    def wmb(self):
        self._point("wmb")

    def rmb(self):
        self._point("rmb")

    # -- draining --------------------------------------------------------------
    def _view(self, tid) -> _View:
        view = self._views.get(tid)
        if view is None:
            view = self._views[tid] = _View(tid)
        return view

    def _offer(self, view: _View) -> None:
        """Make the drainable entries of view's buffer scheduler choices (TSO: the oldest)."""
        if view.buf and view.buf[0].action is None:
            self._add_drain(view, view.buf[0])

    def _offer_new(self, view: _View, e: _Entry) -> None:
        """_offer after appending e: every older entry is already offered if it
        can be (the invariant _offer keeps), so only e can become a choice."""
        if view.buf[0] is e:
            self._add_drain(view, e)

    def _add_drain(self, view, e) -> None:
        e.action = self.sched.add_pending(
            Action(view.tid, "drain", e.addr, e.value, lambda: self._drain(view, e)))

    def _drain(self, view: _View, e: _Entry) -> None:
        """Action: entry e of view's buffer reaches memory."""
        view.buf.remove(e)
        if e.action is not None:
            self.sched.remove_pending(e.action)
            e.action = None
        off = e.addr - self.base
        old = bytes(self.buf[off:off + e.n])
        self.buf[off:off + e.n] = e.data
        if self.relaxed:
            self._invalidate(view, e, old)
        self._offer(view)

    def _drain_all(self, view: _View, record: bool) -> None:
        while view.buf:
            e = view.buf[0]
            if record:
                self.sched.record("drain", e.addr, e.value)
            self._drain(view, e)

    def _drop_stale(self, view: _View) -> None:
        for e in view.stale:
            if e.action is not None:
                self.sched.remove_pending(e.action)
        view.stale.clear()

    def _invalidate(self, view, e, old) -> None:
        """Relaxed only; TSO has no stale values."""

    def flush(self) -> None:
        cur, self.sched.current = self.sched.current, None
        try:
            for tid in sorted(self._views):
                view = self._views[tid]
                self._drain_all(view, record=False)
            for tid in sorted(self._views):
                self._drop_stale(self._views[tid])
        finally:
            self.sched.current = cur

    def pending_stores(self) -> int:
        """Stores still buffered, all tasks (for tests and oracles)."""
        return sum(len(v.buf) for v in self._views.values())


class RelaxedMemory(TSOMemory):
    """Out-of-order drains within fences, and stale reads until rmb/mb."""

    model = "relaxed"
    relaxed = True

    def wmb(self):
        self._point("wmb")
        cur = self.sched.current
        if cur is not None:
            self._view(cur.id).epoch += 1       # later stores drain after earlier ones

    def rmb(self):
        self._point("rmb")
        cur = self.sched.current
        if cur is not None:
            view = self._views.get(cur.id)
            if view is not None:
                self._drop_stale(view)

    def mb(self):
        super().mb()
        cur = self.sched.current
        if cur is not None:
            self._view(cur.id).epoch += 1

    def _offer(self, view: _View) -> None:
        buf = view.buf
        if not buf:
            return
        first_epoch = buf[0].epoch
        for i, e in enumerate(buf):
            if e.epoch != first_epoch:
                break
            if e.action is None and not any(_overlaps(o.addr, o.n, e.addr, e.n)
                                            for o in buf[:i]):
                self._add_drain(view, e)

    def _offer_new(self, view: _View, e: _Entry) -> None:
        # _offer's rule for e alone: in the first epoch, no older overlapping store.
        buf = view.buf
        if e.epoch != buf[0].epoch:
            return
        a, n = e.addr, e.n
        for o in buf:
            if o is e:
                self._add_drain(view, e)
                return
            if o.addr < a + n and a < o.addr + o.n:
                return

    def _invalidate(self, view: _View, e: _Entry, old: bytes) -> None:
        # Our own older stale bytes there are superseded by our own store.
        mine = [s for s in view.stale if _overlaps(s.addr, s.n, e.addr, e.n)]
        for s in mine:
            self._remove_stale(view, s)
        for t in self.sched.tasks:
            if t.id == view.tid or t.done:
                continue
            other = self._view(t.id)
            if any(s.addr == e.addr and s.n == e.n for s in other.stale):
                continue
            s = _Entry(e.addr, e.n, old, _shown(old), 0)
            other.stale.append(s)
            # As _offer_stale, for the one new entry: a choice unless an older
            # stale entry overlaps it (per address in arrival order).
            if not any(o.addr < s.addr + s.n and s.addr < o.addr + o.n
                       for o in other.stale[:-1]):
                self._add_stale(other, s)

    def _offer_stale(self, view: _View) -> None:
        st = view.stale
        for i, s in enumerate(st):
            if s.action is None and not any(_overlaps(o.addr, o.n, s.addr, s.n)
                                            for o in st[:i]):
                self._add_stale(view, s)

    def _add_stale(self, view: _View, s: _Entry) -> None:
        s.action = self.sched.add_pending(
            Action(view.tid, "stale", s.addr, s.n, lambda: self._remove_stale(view, s)))

    def _remove_stale(self, view: _View, s: _Entry) -> None:
        """Action (or cleanup): view stops seeing the old bytes of s."""
        view.stale.remove(s)
        if s.action is not None:
            self.sched.remove_pending(s.action)
            s.action = None
        self._offer_stale(view)


def _overlay(data: bytearray, addr: int, e: _Entry) -> None:
    lo = max(addr, e.addr)
    hi = min(addr + len(data), e.addr + e.n)
    data[lo - addr:hi - addr] = e.data[lo - e.addr:hi - e.addr]


def _shown(old: bytes):
    if len(old) in (2, 4, 8):
        return int.from_bytes(old, "little")
    return old


_CLASSES = {"sc": ModelMemory, "tso": TSOMemory, "relaxed": RelaxedMemory}


def make_memory(model: str, sched, size: int = 1 << 20, base: int = 0x1000,
                buffer=None) -> ModelMemory:
    """The guest memory of one scheduled run under the named model."""
    cls = _CLASSES.get(model)
    if cls is None:
        raise UnknownModel(f"memory model {model!r}: expected one of {', '.join(MODELS)}")
    return cls(sched, size, base, buffer)
