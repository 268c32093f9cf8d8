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
* Which choices a run offers is the run parameter "points" (POINTS):
    - "all" (the default, and every repro file made before it existed): a
      point before every access and barrier, and each stale entry's drop a
      choice of its own, offered as soon as the entry exists;
    - "effective": only choices that can change what some task observes.
      A fence that does nothing in the model is no point (sc: mb, wmb, rmb;
      tso: wmb, rmb, and mb with nothing buffered): a preemption before a
      no-op reaches exactly the states one before the next operation does.
      Under relaxed a stale entry is decided at the load that would read it
      (`sched.choose_int(2)` per entry: 0 drops it, as the "all" tail does,
      1 keeps it), because only that task's loads can tell whether it was
      dropped; a dropped entry is a "stale" trace event, not a point.  The
      outcomes reachable are those of "all" (tests/test_memmodel_points.py
      checks it on random programs, exhaustively).
* alloc()/free() and the allocator's zeroing are not instrumented.
* `store_listener(task_id, addr, data, width)`, when set (harness.world's
  spec monitors), hears every store right after it is issued (its point
  taken, before it drains), in the storing task's program order: data is the
  int stored (width 2/4/8) or the bytes (width None); task_id is None
  outside any task.
"""
from __future__ import annotations

import struct

from vring.errors import BadAddress
from vring.memory import GuestMemory

from .sched.runtime import Action

MODELS = ("sc", "tso", "relaxed")
POINTS = ("all", "effective")
#: The choices of a run whose params name none: every repro made before
#: "points" existed, and every engine but the schedule fuzz target.
DEFAULT_POINTS = "all"

_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


class UnknownModel(ValueError):
    """A memory model name that is not one of MODELS (or a "points" value not
    one of POINTS)."""


class ModelMemory(GuestMemory):
    """Sequentially consistent guest memory whose accesses are scheduling points."""

    model = "sc"
    store_listener = None           # see the module rules

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
        off = addr - self.base
        if off < 0 or off + n > self.size:
            raise BadAddress(addr, n)
        return bytes(self.buf[off:off + n])

    def peek16(self, addr: int, task=None) -> int:
        return _U16.unpack(self.visible(addr, 2, task))[0]

    def peek32(self, addr: int, task=None) -> int:
        return _U32.unpack(self.visible(addr, 4, task))[0]

    # sc accessors: a point, then the plain access, kept inline: the hot path,
    # and GuestMemory's own accessors are instrumented code under libFuzzer.
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
        value &= 0xFFFF
        self._point("w16", addr, value)
        off = addr - self.base
        if off < 0 or off + 2 > self.size:
            raise BadAddress(addr, 2)
        _U16.pack_into(self.buf, off, value)
        listener = self.store_listener
        if listener is not None:
            cur = self.sched.current
            listener(cur.id if cur is not None else None, addr, value, 2)

    def write32(self, addr, value):
        value &= 0xFFFFFFFF
        self._point("w32", addr, value)
        off = addr - self.base
        if off < 0 or off + 4 > self.size:
            raise BadAddress(addr, 4)
        _U32.pack_into(self.buf, off, value)
        listener = self.store_listener
        if listener is not None:
            cur = self.sched.current
            listener(cur.id if cur is not None else None, addr, value, 4)

    def write64(self, addr, value):
        value &= 0xFFFFFFFFFFFFFFFF
        self._point("w64", addr, value)
        off = addr - self.base
        if off < 0 or off + 8 > self.size:
            raise BadAddress(addr, 8)
        _U64.pack_into(self.buf, off, value)
        listener = self.store_listener
        if listener is not None:
            cur = self.sched.current
            listener(cur.id if cur is not None else None, addr, value, 8)

    def read(self, addr, n):
        self._point("read", addr, n)
        off = addr - self.base
        if n < 0 or off < 0 or off + n > self.size:
            raise BadAddress(addr, n)
        v = bytes(self.buf[off:off + n])
        if self._tv:
            self.sched.note_value(v)
        return v

    def write(self, addr, data):
        data = bytes(data)
        self._point("write", addr, data)
        n = len(data)
        off = addr - self.base
        if off < 0 or off + n > self.size:
            raise BadAddress(addr, n)
        self.buf[off:off + n] = data
        listener = self.store_listener
        if listener is not None:
            cur = self.sched.current
            listener(cur.id if cur is not None else None, addr, data, None)

    def wmb(self):
        self._point("wmb")

    def rmb(self):
        self._point("rmb")

    def mb(self):
        self._point("mb")


SCMemory = ModelMemory


class _Entry(Action):
    """Bytes [a, a + n) of one task's view, and the scheduler choice that
    retires them (the entry is its own Action: no closure per store).

    A _Store is a buffered store (b: the value stored, for the trace) that
    reaches memory when run ("drain"); a _Stale holds old bytes the task still
    sees (b = n) until run drops them ("stale").  id is -1 until the entry is
    offered (add_pending) and again once it ran, so an entry still in a view
    is a pending choice exactly when its id >= 0.
    """

    __slots__ = ("n", "data", "epoch", "view")


class _Store(_Entry):
    __slots__ = ()

    def __init__(self, view, addr, n, data, value):
        # Every slot set here, not in a shared __init__: one frame per store.
        self.id = -1
        self.owner = view.tid
        self.kind = "drain"
        self.a = addr
        self.b = value
        self.fn = None
        self.n = n
        self.data = data
        self.epoch = view.epoch
        self.view = view

    def run(self) -> None:
        self.id = -1                # the scheduler took it off its choices
        view = self.view
        view.mem._drain(view, self)


class _Stale(_Entry):
    __slots__ = ()

    def __init__(self, view, addr, n, old):
        self.id = -1
        self.owner = view.tid
        self.kind = "stale"
        self.a = addr
        self.b = n
        self.fn = None
        self.n = n
        self.data = old
        self.epoch = 0
        self.view = view

    def run(self) -> None:
        """view stops seeing the old bytes (chosen by the scheduler, which
        took it off its choices; or drop())."""
        self.id = -1
        stale = self.view.stale
        i = stale.index(self)
        del stale[i]
        # Per address in arrival order: only younger entries overlapping it
        # were held back by it (every other entry's choice is unchanged).
        a, end = self.a, self.a + self.n
        for k in range(i, len(stale)):
            o = stale[k]
            if o.id < 0 and o.a < end and a < o.a + o.n and _clear(stale, k, o):
                self.view.mem.sched.add_pending(o)

    def drop(self) -> None:
        """Remove it without the scheduler choosing it (cleanup)."""
        if self.id >= 0:
            self.view.mem.sched.remove_pending(self)
        self.run()


class _Seen:
    """A stale entry of the lazy model (points="effective"): bytes [a, a + n)
    as they were before a drain.  Never a choice (id stays -1), so one object
    serves every task the drain left it to."""

    __slots__ = ("a", "n", "data")
    id = -1

    def __init__(self, a, n, data):
        self.a = a
        self.n = n
        self.data = data


class _View:
    """What one task has not yet made visible, or not yet seen."""

    __slots__ = ("tid", "mem", "buf", "stale", "keys", "epoch")

    def __init__(self, tid, mem):
        self.tid = tid
        self.mem = mem
        self.buf: list[_Store] = []     # own stores, program order
        self.stale: list[_Stale] = []   # old bytes still seen (relaxed only), arrival order
        self.keys: set = set()          # the lazy model's (a, n) of each stale entry
        self.epoch = 0                  # fences executed (relaxed)


class TSOMemory(ModelMemory):
    """Per-task FIFO store buffers; the schedule decides when they drain."""

    model = "tso"
    relaxed = False

    def attach(self, sched) -> None:
        super().attach(sched)
        self._views: dict[int, _View] = {}

    # -- loads (a point, then what the loading task sees; inline: the hot path) --

    def _seen(self, addr, n, view, stale=True):
        off = addr - self.base
        if off < 0 or off + n > self.size:
            raise BadAddress(addr, n)
        if view is None or not (view.buf or (stale and view.stale)):
            return self.buf[off:off + n]
        data = bytearray(self.buf[off:off + n])
        end = addr + n
        # Oldest stale entry per byte wins: overlay newest first, oldest last.
        for e in reversed(view.stale if stale else ()):
            if e.a < end and addr < e.a + e.n:
                _overlay(data, addr, e)
        for e in view.buf:              # own stores, newest on top
            if e.a < end and addr < e.a + e.n:
                _overlay(data, addr, e)
        return data

    #: What a load of the running task reads, its view not empty (the lazy
    #: relaxed model decides its stale entries first).
    _load = _seen

    def visible(self, addr: int, n: int, task=None) -> bytes:
        if task is None:
            task = self.sched.current
        return bytes(self._seen(addr, n, self._views.get(task.id) if task is not None
                                else None))

    def read16(self, addr):
        self._point("r16", addr)
        cur = self.sched.current
        view = self._views.get(cur.id) if cur is not None else None
        if view is None or not (view.buf or view.stale):
            off = addr - self.base      # _seen's common case, inline: memory itself
            if off < 0 or off + 2 > self.size:
                raise BadAddress(addr, 2)
            v = _U16.unpack_from(self.buf, off)[0]
        else:
            v = _U16.unpack_from(self._load(addr, 2, view))[0]
        if self._tv:
            self.sched.note_value(v)
        return v

    def read32(self, addr):
        self._point("r32", addr)
        cur = self.sched.current
        view = self._views.get(cur.id) if cur is not None else None
        if view is None or not (view.buf or view.stale):
            off = addr - self.base      # _seen's common case, inline: memory itself
            if off < 0 or off + 4 > self.size:
                raise BadAddress(addr, 4)
            v = _U32.unpack_from(self.buf, off)[0]
        else:
            v = _U32.unpack_from(self._load(addr, 4, view))[0]
        if self._tv:
            self.sched.note_value(v)
        return v

    def read64(self, addr):
        self._point("r64", addr)
        cur = self.sched.current
        view = self._views.get(cur.id) if cur is not None else None
        if view is None or not (view.buf or view.stale):
            off = addr - self.base      # _seen's common case, inline: memory itself
            if off < 0 or off + 8 > self.size:
                raise BadAddress(addr, 8)
            v = _U64.unpack_from(self.buf, off)[0]
        else:
            v = _U64.unpack_from(self._load(addr, 8, view))[0]
        if self._tv:
            self.sched.note_value(v)
        return v

    def read(self, addr, n):
        if n < 0:
            raise BadAddress(addr, n)
        self._point("read", addr, n)
        cur = self.sched.current
        v = bytes(self._load(addr, n, self._views.get(cur.id) if cur is not None else None))
        if self._tv:
            self.sched.note_value(v)
        return v

    # -- stores ----------------------------------------------------------------
    def _store(self, kind, addr, data: bytes, value, width):
        self._point(kind, addr, value)
        n = len(data)
        off = addr - self.base
        if off < 0 or off + n > self.size:
            raise BadAddress(addr, n)   # at the store, as on plain memory
        cur = self.sched.current
        if cur is None:
            self.buf[off:off + n] = data
        else:
            view = self._views.get(cur.id)
            if view is None:
                view = self._view(cur.id)
            e = _Store(view, addr, n, data, value)
            view.buf.append(e)
            if self.relaxed:
                self._offer_new(view, e)
            elif view.buf[0] is e:      # TSO: only the oldest store drains
                self.sched.add_pending(e)
        listener = self.store_listener
        if listener is not None:
            listener(cur.id if cur is not None else None, addr, value, width)

    def write16(self, addr, value):
        value &= 0xFFFF
        self._store("w16", addr, _U16.pack(value), value, 2)

    def write32(self, addr, value):
        value &= 0xFFFFFFFF
        self._store("w32", addr, _U32.pack(value), value, 4)

    def write64(self, addr, value):
        value &= 0xFFFFFFFFFFFFFFFF
        self._store("w64", addr, _U64.pack(value), value, 8)

    def write(self, addr, data):
        data = bytes(data)
        self._store("write", addr, data, data, None)

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
            view = self._views[tid] = _View(tid, self)
        return view

    def _offer(self, view: _View) -> None:
        """Make the drainable entries of view's buffer scheduler choices (TSO: the oldest)."""
        if view.buf and view.buf[0].id < 0:
            self.sched.add_pending(view.buf[0])

    def _drain(self, view: _View, e: _Store) -> None:
        """Entry e of view's buffer reaches memory (its action, or a barrier)."""
        buf = view.buf
        if buf[0] is e:
            del buf[0]
        else:
            buf.remove(e)
        if e.id >= 0:
            self.sched.remove_pending(e)
            e.id = -1
        off = e.a - self.base
        if self.relaxed:
            old = bytes(self.buf[off:off + e.n])
            self.buf[off:off + e.n] = e.data
            self._invalidate(view, e, old)
        else:
            self.buf[off:off + e.n] = e.data
        self._offer(view)

    def _drain_all(self, view: _View, record: bool) -> None:
        while view.buf:
            e = view.buf[0]
            if record:
                self.sched.record("drain", e.a, e.b)
            self._drain(view, e)

    def _drop_stale(self, view: _View) -> None:
        for e in view.stale:
            if e.id >= 0:
                self.sched.remove_pending(e)
                e.id = -1
        view.stale.clear()
        view.keys.clear()

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
        # Drainable: in the first epoch, with no older store to overlapping bytes.
        buf = view.buf
        if not buf:
            return
        first_epoch = buf[0].epoch
        for i, e in enumerate(buf):
            if e.epoch != first_epoch:
                break
            if e.id < 0 and _clear(buf, i, e):
                self.sched.add_pending(e)

    def _offer_new(self, view: _View, e: _Store) -> None:
        # _offer's rule for e alone: in the first epoch, no older overlapping store.
        buf = view.buf
        if e.epoch != buf[0].epoch:
            return
        a, n = e.a, e.n
        for o in buf:
            if o is e:
                self.sched.add_pending(e)
                return
            if o.a < a + n and a < o.a + o.n:
                return

    def _supersede(self, view: _View, a: int, end: int) -> None:
        """Our own older stale bytes in [a, end) are superseded by our own store."""
        if view.stale:
            for s in [s for s in view.stale if s.a < end and a < s.a + s.n]:
                s.drop()

    def _others(self, tid: int) -> list:
        """The views of every live task but tid (made on first use), in id order."""
        views = self._views
        return [views.get(t.id) or self._view(t.id) for t in self.sched.tasks
                if t.id != tid and not t.done]

    def _invalidate(self, view: _View, e: _Store, old: bytes) -> None:
        a, n = e.a, e.n
        end = a + n
        self._supersede(view, a, end)
        for other in self._others(view.tid):
            stale = other.stale
            free = True             # no older stale entry overlaps it: a choice now
            for o in stale:
                oa = o.a
                if oa == a and o.n == n:
                    break           # one stale entry per (task, address, width)
                if free and oa < end and a < oa + o.n:
                    free = False
            else:
                s = _Stale(other, a, n, old)
                stale.append(s)
                if free:
                    self.sched.add_pending(s)


class EffectiveSCMemory(ModelMemory):
    """sc with points="effective": no fence does anything, so none is a point."""

    def wmb(self):
        pass

    def rmb(self):
        pass

    def mb(self):
        pass


class EffectiveTSOMemory(TSOMemory):
    """tso with points="effective": only an mb with stores to drain is a point."""

    def wmb(self):
        pass

    def rmb(self):
        pass

    def mb(self):
        cur = self.sched.current
        if cur is not None:
            view = self._views.get(cur.id)
            # Only this task's stores fill its buffer: empty now, empty at the point.
            if view is not None and view.buf:
                self._point("mb")
                self._drain_all(view, record=True)


class EffectiveRelaxedMemory(RelaxedMemory):
    """relaxed with points="effective": a stale entry is decided by the load
    that would read it, not offered as a choice of its own."""

    def _invalidate(self, view: _View, e: _Store, old: bytes) -> None:
        # RelaxedMemory's, less the offering: nothing is a choice until a load,
        # so one set lookup per task replaces the walk over its entries (which
        # grow here: only loads and fences retire them).
        a, n = e.a, e.n
        self._supersede(view, a, a + n)
        key = (a, n)
        seen = _Seen(a, n, old)
        for other in self._others(view.tid):
            if key not in other.keys:           # one stale entry per (task, address, width)
                other.keys.add(key)
                other.stale.append(seen)

    def _supersede(self, view: _View, a: int, end: int) -> None:
        stale = view.stale
        if stale:
            keep = [s for s in stale if not (s.a < end and a < s.a + s.n)]
            if len(keep) < len(stale):
                view.stale = keep
                view.keys = {(s.a, s.n) for s in keep}

    def _load(self, addr, n, view):
        if view is not None and view.stale:
            self._settle(view, addr, n)
        return self._seen(addr, n, view)

    def _settle(self, view: _View, addr: int, n: int) -> None:
        """Decide, oldest first, each stale entry the load at [addr, addr+n)
        reads, and the older ones they wait behind (per address in arrival
        order): keep it (1) or drop it (0).  An entry with an older one over
        its bytes left cannot go first.  So every set of drops the eager
        model could have made by now is one sequence of choices here."""
        stale = view.stale
        # Newest to oldest: an entry matters if the load reads it or a younger
        # entry that matters overlaps it.
        want = []
        lo, hi = addr, addr + n
        for e in reversed(stale):
            ea, eend = e.a, e.a + e.n
            if (ea < hi and lo < eend) or any(
                    ea < w.a + w.n and w.a < eend for w in want):
                want.append(e)
        sched = self.sched
        for e in reversed(want):
            i = stale.index(e)
            if _clear(stale, i, e) and sched.choose_int(2) == 0:
                del stale[i]
                view.keys.discard((e.a, e.n))
                sched.record("stale", e.a, e.n)

    def visible(self, addr: int, n: int, task=None) -> bytes:
        # A wait predicate cannot make the load's choice: it sees past the
        # stale entries (any of them may be dropped by then), or a task
        # waiting on one would wait forever.
        if task is None:
            task = self.sched.current
        view = self._views.get(task.id) if task is not None else None
        return bytes(self._seen(addr, n, view, stale=False))


def _clear(entries: list, i: int, e: _Entry) -> bool:
    """No entry before index i overlaps e."""
    a, end = e.a, e.a + e.n
    for k in range(i):
        o = entries[k]
        if o.a < end and a < o.a + o.n:
            return False
    return True


def _overlay(data: bytearray, addr: int, e: _Entry) -> None:
    lo = max(addr, e.a)
    hi = min(addr + len(data), e.a + e.n)
    data[lo - addr:hi - addr] = e.data[lo - e.a:hi - e.a]


_CLASSES = {("sc", "all"): ModelMemory, ("tso", "all"): TSOMemory,
            ("relaxed", "all"): RelaxedMemory, ("sc", "effective"): EffectiveSCMemory,
            ("tso", "effective"): EffectiveTSOMemory,
            ("relaxed", "effective"): EffectiveRelaxedMemory}


def check_points(points) -> str:
    """`points` if it is one of POINTS, else UnknownModel saying so."""
    if points not in POINTS:
        raise UnknownModel(f"points {points!r}: expected one of {', '.join(POINTS)}")
    return points


def make_memory(model: str, sched, size: int = 1 << 20, base: int = 0x1000,
                buffer=None, points: str = DEFAULT_POINTS) -> ModelMemory:
    """The guest memory of one scheduled run under the named model, offering
    the choices `points` names (see the module rules)."""
    if model not in MODELS:
        raise UnknownModel(f"memory model {model!r}: expected one of {', '.join(MODELS)}")
    return _CLASSES[model, check_points(points)](sched, size, base, buffer)
