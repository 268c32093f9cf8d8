"""Race tracking for dynamic partial-order reduction (DPOR) under a preemption bound.

Rules (the explorer in explore.py calls this once per decision):
* Algorithm: Flanagan & Godefroid, "Dynamic partial-order reduction for
  model checking software", POPL 2005 (Fig. 4): at every state s of the
  current execution, for every enabled choice p, find the LAST executed
  event i that is dependent with p's next operation and does not happen
  before p; add p to the backtrack set of the state before i, or every
  choice enabled there when p was not - or, as FG05 allows, one process
  enabled there whose later event happens before p's.  No sleep sets:
  with a bound they drop schedules whose only equivalent lies beyond it
  (SB under tso at bound 0 lost two outcomes), and unbounded, with this
  backtracking, they lost one of 18 outcomes of a 3-task program
  (tests/test_sched_explore.py, UNBOUNDED_LOSS).
* Preemption bound: FG05 alone is unsound with a bound (Coons, Musuvathi &
  McKinley, "Bounded partial-order reduction", OOPSLA 2013): the reversal
  at pre(i) may cost a preemption the bound forbids while a cheaper
  schedule reaches the same order.  Their conservative fix is applied: p
  is also added at the state where the process of event i last got the
  CPU (the start of its run of consecutive events), a non-preemptive
  switch point.
* Choices are "processes": task ids, and memory-model action ids (a
  buffered store draining, a stale value dropped).  An action is a
  one-shot process created by the event that ran just before it first
  appears among the options (its creator happens before it).  Action ids
  are assigned in execution order, so within one prefix they are stable.
* Memory-model actions are also choices whose order decides the final
  state, and the end-of-run flush (memmodel.flush) drains what is left
  in a fixed order outside any decision.  So a decision where any action
  is enabled is expanded fully (backtrack = every option, still subject
  to the bound and sleep sets); DPOR prunes only where every store buffer
  is empty and no stale value is pending - sc always, tso/relaxed between
  barriers.  A sound over-approximation, tested against the plain search.
* Dependence comes from footprints (see footprint()): reads and writes of
  2-byte granules (writes: stores, drains, stale drops), lock operations
  by lock name (a wake-up from a lock wait takes the lock), nothing for
  yields, and "global" (dependent with everything) for anything else:
  barriers, other wake-ups, notify, interrupt, unknown kinds.  Tasks share
  plain Python state too (scenario flags, counters) between points; it is
  ordered only by the global points beside it and by locks, as the sleep
  sets already assumed.  Over-approximating dependence keeps DPOR sound.
* Happens-before is kept as one int bitset per event (bit j = event j
  happens before or is it), joined along program order, creation and the
  last dependent events, looked up through per-granule indices.
* Backtracking rewinds the tracker (an undo log) to the decision whose
  choice changes; the replayed prefix costs nothing and adds nothing (its
  races were recorded when it first ran).  The first new decision checks
  every option in full, later ones only against the newest event, except
  options whose next operation changed and global ones.
"""
from __future__ import annotations

from .source import ACTION_BASE

_R, _W, _L, _G, _N = 0, 1, 2, 3, 4
_MISSING = object()     # undo: the key was absent
_POP = object()         # undo: pop the list's last item
_NONE = (_N, ())
_GLOBAL = (_G, ())
_READS = {"r16": 2, "r32": 4, "r64": 8, "read": None}
_WRITES = {"w16": 2, "w32": 4, "w64": 8, "write": None}
_LOCKS = frozenset(("lock", "unlock", "trylock", "acquire", "release"))


def _granules(addr, n) -> tuple:
    if not isinstance(addr, int) or not isinstance(n, int) or n <= 0 or n > 1 << 16:
        return None
    return tuple(range(addr >> 1, ((addr + n - 1) >> 1) + 1))


def dependent(f1, f2) -> bool:
    """Do two footprints conflict?"""
    c1, k1 = f1
    c2, k2 = f2
    if c1 == _N or c2 == _N:
        return False
    if c1 == _G or c2 == _G:
        return True
    if c1 == _L or c2 == _L:
        return c1 == c2 and k1 == k2
    if c1 == _R and c2 == _R:
        return False
    if len(k1) == 1 or len(k2) == 1:
        return (k1[0] in k2) if len(k1) == 1 else (k2[0] in k1)
    return not set(k1).isdisjoint(k2)


class RaceTracker:
    """Happens-before and race detection along the current execution.

    State changes are undo-logged, so backtracking to a decision rewinds to
    its mark() instead of re-deriving the replayed prefix's clocks."""

    def __init__(self):
        self.races = 0                  # over all executions
        self.n = 0
        self.clock: list[int] = []      # per event: bitset of events before it, and itself
        self.proc: list[int] = []       # per event: the choice that ran it
        self.node: list = []            # per event: the decision node it was chosen at
        self.fps: list = []             # per event: its footprint
        self.pclock: dict[int, int] = {}
        self.seen: dict[int, bool] = {}
        self.last_w: dict[int, int] = {}
        self.reads: dict[int, list[int]] = {}
        self.last_lock: dict = {}
        self.last_g = -1
        self.checked: dict = {}         # choice -> footprint checked in full
        self.full = True                # next new decision: check every option in full
        self.widths: dict = {}          # (task, addr) -> widest store there (drain widths)
        self._undo: list = []

    def _set(self, d: dict, k, v) -> None:
        self._undo.append((d, k, d.get(k, _MISSING)))
        d[k] = v

    def mark(self) -> tuple:
        return (len(self._undo), self.n)

    def rewind(self, mark: tuple) -> None:
        """Back to the state at mark (taken at a decision of the current prefix)."""
        u, n = mark
        undo = self._undo
        while len(undo) > u:
            d, k, old = undo.pop()
            if old is _POP:
                d.pop()
            elif old is _MISSING:
                d.pop(k, None)
            else:
                d[k] = old
        del self.clock[n:], self.proc[n:], self.node[n:], self.fps[n:]
        self.n = n
        self.full = True

    # -- footprints ------------------------------------------------------------------
    def footprint(self, cid: int, op, sched) -> tuple:
        """(class, keys) of choosing cid, whose operation is op = (kind, a, b)."""
        if op is None:
            return _GLOBAL
        kind, a, b = op
        w = _READS.get(kind, 0)
        if w != 0:
            g = _granules(a, w if w is not None else b)
            return (_R, g) if g is not None else _GLOBAL
        w = _WRITES.get(kind, 0)
        if w != 0:
            if w is None:
                w = len(b) if isinstance(b, (bytes, bytearray)) else None
            g = _granules(a, w)
            return (_W, g) if g is not None else _GLOBAL
        if kind == "drain":
            if isinstance(b, (bytes, bytearray)):
                w = len(b)
            else:
                # The action shows the value, not the width: the widest store
                # its task made there (8 if unknown) covers it.
                w = self.widths.get((_owner(sched, cid), a), 8)
            g = _granules(a, w)
            return (_W, g) if g is not None else _GLOBAL
        if kind == "stale":
            g = _granules(a, b)
            return (_W, g) if g is not None else _GLOBAL
        if kind in _LOCKS:
            return (_L, f"lock {a!r}")
        if kind == "block" and isinstance(a, str) and a.startswith("lock "):
            # Woken from a lock wait: the wake-up takes the lock (platform.py).
            return (_L, a)
        if kind == "yield":
            return _NONE
        # Barriers stay global even with nothing buffered: scenarios order
        # their plain Python state (world.state, napi flags) by the mb() beside
        # it (net.py "__napi_schedule's test_and_set_bit"), and that state is
        # touched between points, invisible to footprints.
        return _GLOBAL

    # -- per decision ------------------------------------------------------------------
    def observe(self, node, fresh: bool, sched) -> dict | None:
        """Called at a decision before its choice: note new choices and, when
        fresh, run the race checks.  Returns the options' footprints (fresh only)."""
        options = node.options
        last = self.n - 1
        seen = self.seen
        for p in options:
            if p not in seen:
                self._set(seen, p, True)
                if last >= 0:
                    self._set(self.pclock, p, self.clock[last])
        if not fresh:
            self.full = True
            return None
        ops = node.ops
        fps = {p: self.footprint(p, ops.get(p), sched) for p in options}
        full = self.full
        self.full = False
        checked = self.checked
        for p in options:
            f = fps[p]
            if full or checked.get(p) != f:
                if checked.get(p) != f:
                    self._set(checked, p, f)
                self._check_full(p, f)
            elif last >= 0:
                pc = self.pclock.get(p, 0)
                if (self.proc[last] != p and not (pc >> last) & 1
                        and dependent(f, self.fps[last])):
                    self._race(last, p)
        return fps

    def record(self, node, c: int, op, sched, f=None) -> None:
        """Event number n: choice c ran operation op (footprint f if known)."""
        if f is None:
            f = self.footprint(c, op, sched)
        n = self.n
        clock = self.clock
        cls, keys = f
        st = self._set
        if cls == _G:
            cl = (1 << (n + 1)) - 1
            st(self.__dict__, "last_g", n)
        else:
            cl = self.pclock.get(c, 0) | (1 << n)
            if cls != _N:
                if self.last_g >= 0:
                    cl |= clock[self.last_g]
                if cls == _L:
                    j = self.last_lock.get(keys)
                    if j is not None:
                        cl |= clock[j]
                    st(self.last_lock, keys, n)
                else:
                    last_w, reads = self.last_w, self.reads
                    for g in keys:
                        j = last_w.get(g)
                        if j is not None:
                            cl |= clock[j]
                        if cls == _W:
                            for r in reads.get(g, ()):
                                cl |= clock[r]
                    if cls == _W:
                        for g in keys:
                            st(last_w, g, n)
                            if g in reads:
                                st(reads, g, [])
                        if c < ACTION_BASE and op is not None:
                            k = (c, op[1])
                            w = len(keys) * 2
                            if self.widths.get(k, 0) < w:
                                st(self.widths, k, w)
                    else:
                        undo = self._undo
                        for g in keys:
                            lst = reads.get(g)
                            if lst is None:
                                st(reads, g, [n])
                            else:
                                lst.append(n)
                                undo.append((lst, None, _POP))
        clock.append(cl)
        self.proc.append(c)
        self.node.append(node)
        self.fps.append(f)
        st(self.pclock, c, cl)
        if c in self.checked:
            st(self.checked, c, None)
        self.n = n + 1

    # -- races -------------------------------------------------------------------------
    def _check_full(self, p: int, f) -> None:
        cls, keys = f
        if cls == _N:
            return
        pc = self.pclock.get(p, 0)
        proc = self.proc
        if cls == _G:
            fps = self.fps
            for i in range(self.n - 1, -1, -1):
                if proc[i] != p and not (pc >> i) & 1 and fps[i][0] != _N:
                    self._race(i, p)
                    return
            return
        cands = []
        if self.last_g >= 0:
            cands.append(self.last_g)
        if cls == _L:
            j = self.last_lock.get(keys)
            if j is not None:
                cands.append(j)
        else:
            for g in keys:
                j = self.last_w.get(g)
                if j is not None:
                    cands.append(j)
                if cls == _W:
                    cands.extend(self.reads.get(g, ()))
        best = -1
        for i in cands:
            if i > best and proc[i] != p and not (pc >> i) & 1:
                best = i
        if best >= 0:
            self._race(best, p)

    def _race(self, i: int, p: int) -> None:
        self.races += 1
        self._add(i, p)
        # Coons et al. 2013: also where the process of event i got the CPU.
        q = self.proc[i]
        j = i
        proc = self.proc
        while j > 0 and proc[j - 1] == q:
            j -= 1
        if j != i:
            self._add(j, p)

    def _add(self, i: int, p: int) -> None:
        """FG05's backtrack update at pre(event i) for a race with p's next op."""
        node = self.node[i]
        bt = node.backtrack
        options = node.options
        if p in options:
            bt.add(p)
            return
        # p was not enabled there: a process enabled there whose later event
        # happens before p's next op leads towards it (FG05, Fig. 4: "E").
        pc = self.pclock.get(p, 0)
        proc = self.proc
        first = None
        for j in range(i + 1, self.n):
            if (pc >> j) & 1:
                q = proc[j]
                if q in options:
                    if q in bt:
                        return
                    if first is None:
                        first = q
        if first is not None:
            bt.add(first)
        else:
            bt.update(options)


def _owner(sched, aid: int):
    """The task a pending action belongs to (its drain's width is that task's store)."""
    act = getattr(sched, "_pending", {}).get(aid)
    return act.owner if act is not None else None
