"""Bounded exhaustive exploration: stateless DFS, preemption bound, sleep sets, DPOR.

Theory of operation:
* Each execution re-runs the program from scratch (make_run builds a fresh
  world).  ExploreSource keeps the DFS stack: one node per decision of the
  current execution, holding the enabled options, the running task, the
  choice taken and what was already explored there.  On a node the current
  execution has not reached yet, it takes the non-preemptive default (keep
  running the current task, else the lowest option).  new_execution()
  backtracks to the deepest node with an untried alternative.
* Preemption bound (CHESS, Musuvathi & Qadeer, PLDI 2007): choosing anything
  but a still-enabled running task costs one preemption, memory-model actions
  included; alternatives that would exceed the bound are skipped (`bounded`).
  bound=None explores everything.
* Sleep sets (Godefroid 1996): after exploring t at node s, t sleeps in the
  later siblings' subtrees until a dependent operation runs; a sleeping
  option is never explored again (`pruned`), and an execution that reaches a
  node where every option sleeps is stopped as redundant (Abandoned,
  counted in `sleep_blocked`).  Dependence comes from the operations'
  footprints (independent() below); unknown kinds are dependent on
  everything, so the reduction stays sound for new instrumentation.
  With a preemption bound the combination is the usual best effort, not a
  completeness guarantee.
* DPOR (por=True or "dpor", the default; dpor.py): a decision explores only
  its backtrack set - the default choice plus what race detection adds
  (Flanagan & Godefroid 2005, with Coons et al. 2013's conservative points
  for the bound) - instead of every option.  por="sleep" is sleep sets
  alone, por=False the plain bounded DFS (for the benchmark's ratio).
  DPOR runs without sleep sets (see dpor.py and ExploreSource); it is
  checked against the plain search outcome for outcome in
  tests/test_sched_explore.py.
  Sleep sets alone with a bound are NOT complete (the same tests show it).
* Memory-model actions cost like tasks: one preemption, except where no
  task could run instead (`lazy_actions`, the default).  Without it a drain
  or stale drop chosen while no task runs is free, like the choice of the
  next task there; with it buffered stores stay buffered and stale values
  stay visible until the search spends a preemption on them (a deviation
  from the default schedule, as in delay bounding: Emmi, Qadeer &
  Rakamaric, POPL 2011).  Unbounded, the two spaces are the same.
* Stale drops are deferred (`defer_stale`, the default): dropping task T's
  stale value of X changes only what T's later reads of X return; it
  commutes with everything else (T's own store or barrier removes the entry
  either way).  So the drop is explored only where T is enabled and its
  next operation reads X; any earlier drop has an equivalent run that drops
  there instead, at the same preemption cost: one, with lazy_actions, at
  any decision where a task is enabled.  Where only actions are enabled a
  drop is free, so there nothing is deferred (and without lazy_actions,
  nowhere).
  Counted in `deferred`; tested against the search without it.
* Splitting (`split=(worker, workers, depth)`, explore_parallel.py): the
  search is cut at its first task decision at or below `depth`, the split
  node; the subtree under each of its choices belongs to one worker, by a
  CRC of the choices leading there.  Every worker explores the same part
  above the split node, fully (DPOR may not prune there: a race found in
  one worker's subtree must not be the only reason to try a choice that
  another worker's subtrees need), and only its own subtrees below it.  A
  run that ends above any split node is counted by worker 0 alone.
* Data choices (choose_int) are nodes whose values are all explored, at no
  preemption cost, with the sleep set carried through unchanged.
* Determinism is required: replaying a prefix must offer the same options
  (else ExploreDivergence).  Tasks must interact only through points.
"""
from __future__ import annotations

import time
import zlib
from dataclasses import dataclass

from .dpor import RaceTracker
from .runtime import ABANDON, Abandoned, RunOutcome
from .source import ACTION_BASE
from .statehash import state_digest

#: kind -> (width or None for "use b", is_write)
_MEM = {"r16": (2, False), "r32": (4, False), "r64": (8, False), "read": (None, False),
        "w16": (2, True), "w32": (4, True), "w64": (8, True), "write": (None, True),
        "drain": (8, True), "stale": (None, True)}   # drain: b is the value; 8 covers it
_LOCK = frozenset(("lock", "unlock", "trylock", "acquire", "release"))
_READ = frozenset(k for k, (_, w) in _MEM.items() if not w)
_LOCAL = frozenset(("yield",))


class ExploreDivergence(Exception):
    """Re-running a prefix offered different options: the program is not deterministic."""


def _holds_back(act) -> bool:
    """Does a younger stale entry of act's task overlap act's bytes?  Stale
    entries of one address drop in arrival order (memmodel.py), so that entry
    can go only after act: deferring act to a read of act's own bytes would
    keep the younger one visible at a read of the rest of its bytes (a 32-bit
    entry behind a 16-bit one, read at its upper half).  Conservative: any
    such entry counts, whatever T reads next."""
    view = getattr(act, "view", None)
    if view is None:
        return False
    stale = view.stale              # a pending drop's entry is in its view
    a, end = act.a, act.a + act.b
    return any(o.a < end and a < o.a + o.n for o in stale[stale.index(act) + 1:])


def _width(w, b) -> int:
    if w is not None:
        return w
    if isinstance(b, (bytes, bytearray)):
        return len(b)
    return b if isinstance(b, int) and b > 0 else 1 << 62


def independent(op1, op2) -> bool:
    """Do two operations commute?  Different addresses or both reads; locks
    with different names; yields with anything.  Unknown kinds: never."""
    if op1 is None or op2 is None:
        return False
    k1, a1, b1 = op1
    k2, a2, b2 = op2
    if k1 in _LOCAL or k2 in _LOCAL:
        return True
    m1 = _MEM.get(k1)
    m2 = _MEM.get(k2)
    if m1 is not None and m2 is not None:
        if not (m1[1] or m2[1]):
            return True
        if not isinstance(a1, int) or not isinstance(a2, int):
            return False
        return a1 + _width(m1[0], b1) <= a2 or a2 + _width(m2[0], b2) <= a1
    if k1 in _LOCK and k2 in _LOCK:
        return a1 != a2
    if (m1 is not None and k2 in _LOCK) or (m2 is not None and k1 in _LOCK):
        return True
    return False


class _Node:
    __slots__ = ("options", "current", "chosen", "explored", "tried", "sleep", "ops",
                 "pre", "data", "backtrack", "mark", "lazy", "skip", "split")

    def __init__(self, options, current, pre, data, lazy=False):
        self.options = options
        self.lazy = lazy
        self.current = current
        self.pre = pre              # preemptions spent above this node
        self.data = data
        self.chosen = None
        self.explored: list = []    # options explored from here, in order
        self.tried: set = set()     # explored or skipped
        self.sleep: dict = {}       # option -> op, asleep at this node
        self.ops: dict = {}
        self.backtrack: set | None = None   # DPOR: what to explore here (None: all)
        self.mark = None                    # DPOR: the race tracker's state here
        self.skip = ()                      # deferred stale drops: never explored here
        self.split = False                  # the split node (see split=)

    def cost(self, c) -> int:
        if self.data or c == self.current:
            return 0
        if self.current is not None:
            return 1
        # No task running: any task is free (CHESS); an action costs one when a
        # task could run instead (`lazy`: buffers drain late by default).
        return int(self.lazy and c >= ACTION_BASE and self.options[0] < ACTION_BASE)


class ExploreSource:
    """The DFS as a schedule source; drive it with explore()."""

    def __init__(self, *, preemption_bound: int | None = 2, por: bool | str = True,
                 lazy_actions: bool = True, defer_stale: bool = True,
                 split: tuple[int, int, int] | None = None, state_cache: bool = False):
        if state_cache and por:
            raise ValueError("state_cache: only with por=False (a cached state prunes "
                             "its whole subtree; DPOR's backtrack sets assume it ran)")
        if por not in (True, False, "dpor", "sleep"):
            raise ValueError(f"por={por!r}: expected True/'dpor', 'sleep' or False")
        if split is not None and not (0 <= split[0] < split[1] and split[2] >= 0):
            raise ValueError(f"split={split!r}: expected (worker, workers, depth) with "
                             "0 <= worker < workers and depth >= 0")
        self.split = split
        self.preemption_bound = preemption_bound
        self.lazy_actions = lazy_actions
        self.por = bool(por)
        self.dpor = por is True or por == "dpor"
        # Deferring is cost-preserving only where a drop costs one anyway: with
        # lazy actions, at decisions where some task is enabled.
        self.defer_stale = defer_stale and lazy_actions
        # Next ops: footprints (por), next reads (defer_stale), op chains (state_cache).
        self.wants_ops = self.por or self.defer_stale or state_cache
        self.sees_forced = self.por
        self.tracker = RaceTracker() if self.dpor else None
        # Sleep sets assume any order of commuting steps can be explored; a
        # bound forbids some (tests/test_sched_explore.py: SB under tso at
        # bound 0).  Unbounded, this DPOR's backtracking combined with them
        # lost an outcome too (UNBOUNDED_LOSS in the tests), so DPOR runs
        # without sleep sets; por="sleep" is sleep sets alone.
        self.sleep_sets = self.por and not self.dpor
        # State caching (statehash.py): digest -> the most preemptions left
        # with which that state was explored.
        self.state_cache = state_cache
        self.wants_values = state_cache
        self.visited: dict[bytes, int] = {}
        self.cached = 0
        self.pruned = 0
        self.bounded = 0
        self.deferred = 0
        self.exhausted = False
        self._stack: list[_Node] = []
        self._depth = 0
        self._started = False
        self._sched = None
        self._redo = -1

    def bind(self, sched) -> None:
        self._sched = sched

    def new_execution(self) -> bool:
        if not self._started:
            self._started = True
        elif not self._backtrack():
            self.exhausted = True
            return False
        self._depth = 0
        self._redo = len(self._stack) - 1       # the decision whose choice changed
        if self.tracker is not None and self._stack:
            self.tracker.rewind(self._stack[-1].mark)
        return True

    def _backtrack(self) -> bool:
        stack, bound = self._stack, self.preemption_bound
        while stack:
            node = stack[-1]
            bt = node.backtrack
            for alt in node.options:
                if alt in node.tried or (bt is not None and alt not in bt):
                    continue
                node.tried.add(alt)
                if alt in node.skip:
                    self.deferred += 1
                    continue
                if alt in node.sleep:
                    self.pruned += 1
                    continue
                if bound is not None and node.pre + node.cost(alt) > bound:
                    self.bounded += 1
                    continue
                node.chosen = alt
                node.explored.append(alt)
                return True
            stack.pop()
        return False

    def shared_run(self) -> bool:
        """The last run ended above every split node (only worker 0 counts it)."""
        if self.split is None:
            return False
        depth = self.split[2]
        for node in self._stack[depth:self._depth]:
            if node.split:
                return False
            if not node.data:
                break
        return True

    def _split_here(self, d: int) -> bool:
        """Is a new task decision at depth d the split node?"""
        sp = self.split
        if sp is None or d < sp[2]:
            return False
        return all(n.data for n in self._stack[sp[2]:d])

    def _owned(self, node: _Node) -> list:
        """The split node's options that belong to this worker."""
        worker, workers, _ = self.split
        path = ",".join(str(n.chosen) for n in self._stack)
        return [o for o in node.options
                if zlib.crc32(f"{path},{o}".encode()) % workers == worker]

    def _new_node(self, options, current, data) -> _Node:
        stack = self._stack
        parent = stack[-1] if stack else None
        pre = parent.pre + parent.cost(parent.chosen) if parent else 0
        node = _Node(options, current, pre, data, self.lazy_actions)
        if self.sleep_sets and parent is not None:
            if parent.data:
                node.sleep = dict(parent.sleep)
            else:
                t_op = parent.ops.get(parent.chosen)
                cand = dict(parent.sleep)
                for u in parent.explored:
                    if u != parent.chosen:
                        cand[u] = parent.ops.get(u)
                node.sleep = {u: op for u, op in cand.items() if independent(op, t_op)}
        return node

    def choose(self, options, current):
        if not self._started:
            self.new_execution()
        d = self._depth
        self._depth = d + 1
        options = tuple(options)
        if d < len(self._stack):
            node = self._stack[d]
            if node.data or node.options != options:
                raise ExploreDivergence(f"decision {d}: options {list(options)}, "
                                        f"first run had {list(node.options)}")
            tr = self.tracker
            if tr is not None and d == self._redo:
                # Rewound to this decision's mark: its new choice is the next event.
                tr.observe(node, False, self._sched)
                c = node.chosen
                tr.record(node, c, node.ops.get(c), self._sched)
            return node.chosen
        node = self._new_node(options, current, False)
        if self.state_cache:
            key = state_digest(self._sched)
            left = (1 << 30) if self.preemption_bound is None else (
                self.preemption_bound - node.pre)
            if self.visited.get(key, -1) >= left:
                self.cached += 1
                return ABANDON      # explored before with at least as many preemptions left
            self.visited[key] = left
        if self.defer_stale and options[-1] >= ACTION_BASE and options[0] < ACTION_BASE:
            node.skip = self._deferrable(options)
        above = self.split is not None and d < self.split[2]
        if self._split_here(d):
            node.split = True
            owned = set(self._owned(node))
            node.tried = {o for o in options if o not in owned}   # other workers'
        fps = None
        if self.por:
            op_of = self._sched.op_of
            node.ops = {o: op_of(o) for o in options}
            tr = self.tracker
            if tr is not None:
                node.mark = tr.mark()
                fps = tr.observe(node, True, self._sched)
                # A pending memory-model action, or above or at the split
                # node: expand fully (dpor.py, rules; split= above).
                full = options[-1] >= ACTION_BASE or above or node.split
                node.backtrack = set(options) if full else set()
        sleep = node.sleep
        awake = [o for o in options if o not in sleep]
        if not awake:
            return ABANDON
        bound = self.preemption_bound
        if node.split:
            # Our first subtree here: the first affordable choice we own.
            c = next((o for o in ((current,) if current in awake else ()) + tuple(awake)
                      if o not in node.tried and o not in node.skip
                      and (bound is None or node.pre + node.cost(o) <= bound)), None)
            if c is None:
                return ABANDON      # nothing of ours here: other workers cover it
        elif current is not None and current not in sleep:
            c = current
        elif current is not None and bound is not None and node.pre + 1 > bound:
            return ABANDON          # current asleep, no preemption left: all covered
        else:
            skip = node.skip
            c = next((o for o in awake if o not in skip), awake[0])
            if bound is not None and node.pre + node.cost(c) > bound:
                return ABANDON      # only actions awake, none affordable: all covered
        node.chosen = c
        node.explored.append(c)
        node.tried.add(c)
        self._stack.append(node)
        if fps is not None:
            node.backtrack.add(c)
            self.tracker.record(node, c, node.ops.get(c), self._sched, fps[c])
        return c

    def _deferrable(self, options) -> frozenset:
        """The stale drops among options whose owner is not about to read them."""
        sched = self._sched
        out = []
        for o in reversed(options):
            if o < ACTION_BASE:
                break
            act = sched.action(o)
            if act.kind != "stale":
                continue
            t = act.owner
            op = sched.op_of(t) if t in options else None
            if op is not None and op[0] in _READ and isinstance(op[1], int):
                w = _width(_MEM[op[0]][0], op[2])
                if op[1] < act.a + act.b and act.a < op[1] + w:
                    continue            # T reads X next: the drop matters here
                if _holds_back(act):
                    continue            # a younger entry T may read waits for it
            out.append(o)
        return frozenset(out)

    def choose_int(self, n: int) -> int:
        if not self._started:
            self.new_execution()
        d = self._depth
        self._depth = d + 1
        options = tuple(range(n))
        if d < len(self._stack):
            node = self._stack[d]
            if not node.data or node.options != options:
                raise ExploreDivergence(f"decision {d}: a data choice of {n} values "
                                        "where the first run had a different decision")
            return node.chosen
        node = self._new_node(options, None, True)
        if self.tracker is not None:
            node.mark = self.tracker.mark()
        node.chosen = 0
        node.explored.append(0)
        node.tried.add(0)
        self._stack.append(node)
        return 0


@dataclass
class ExploreReport:
    executions: int = 0             # runs made (including sleep-blocked ones)
    pruned: int = 0                 # alternatives skipped because asleep
    bounded: int = 0                # alternatives skipped by the preemption bound
    deferred: int = 0               # stale drops left for the owner's next read
    sleep_blocked: int = 0          # runs stopped as redundant (every option asleep)
    races: int = 0                  # DPOR: races found (backtrack points added)
    shared: int = 0                 # split: runs worker 0 counts instead
    cached: int = 0                 # state cache: runs stopped at a state explored before
    states: int = 0                 # state cache: distinct states visited
    exhausted: bool = False         # the whole (bounded) space was covered
    failure: RunOutcome | None = None

    @property
    def complete(self) -> int:
        """Runs that went to the end (not stopped as redundant), counted once."""
        return self.executions - self.sleep_blocked - self.shared

    @property
    def found(self) -> bool:
        return self.failure is not None


def explore(make_run, *, preemption_bound: int | None = 2, por: bool | str = True,
            max_executions: int | None = None, deadline: float | None = None,
            lazy_actions: bool = True, defer_stale: bool = True,
            split: tuple[int, int, int] | None = None, stop=None,
            state_cache: bool = False) -> ExploreReport:
    """Run make_run(source) -> RunOutcome over every schedule within the bound.

    Stops at the first outcome with an error (returned as .failure, with its
    schedule) or when the space is exhausted.  `deadline` is an absolute
    time.monotonic() value; it only bounds the search, never steers it, and
    so does `stop()` (True: stop now), which a parallel search uses.
    split: this worker's share of the search (see the module docstring).
    """
    src = ExploreSource(preemption_bound=preemption_bound, por=por,
                        lazy_actions=lazy_actions, defer_stale=defer_stale, split=split,
                        state_cache=state_cache)
    rep = ExploreReport()
    while True:
        if max_executions is not None and rep.executions >= max_executions:
            break
        if deadline is not None and time.monotonic() >= deadline:
            break
        if stop is not None and stop():
            break
        if not src.new_execution():
            rep.exhausted = True
            break
        out = make_run(src)
        rep.executions += 1
        if isinstance(out.error, Abandoned):
            rep.sleep_blocked += 1
            continue
        if out.error is not None:
            rep.failure = out
            break
        if split is not None and split[0] != 0 and src.shared_run():
            rep.shared += 1         # worker 0 counts it
    rep.pruned = src.pruned
    rep.bounded = src.bounded
    rep.deferred = src.deferred
    rep.cached = src.cached
    rep.states = len(src.visited)
    rep.races = src.tracker.races if src.tracker is not None else 0
    return rep
