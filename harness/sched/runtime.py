"""The deterministic scheduler: tasks on greenlets, one choice per point.

Theory of operation:
* Every actor is a Task on its own greenlet.  A scheduling point
  (`point(kind, a, b)`) is taken BEFORE the operation it names; the runtime
  asks the source which enabled choice goes next and, if it is another task,
  switches straight to that task's greenlet (no trip through a central loop:
  a switch costs about a microsecond, DESIGN.md "Scheduler").
* A new task first runs up to its first point and parks there without a
  choice ("priming"), so every option the source sees is "let task X perform
  the operation it announced".  Two tasks of two points each therefore have
  exactly C(4,2) = 6 schedules, and the explorer knows each option's footprint.
* Choices are task ids and memory-model actions (add_pending): an action is a
  one-shot callable run by the scheduler, in the running task's context,
  when the source picks it (e.g. "this buffered store drains now").
* Points with a single enabled choice are not recorded, and not asked
  unless the source has `sees_forced = True` (explore, to stop redundant runs)
  or `per_point = True` (FuzzSource of the schedule target: asked at every
  point of a running task; the wake predicates then run only where it
  preempts, unless the run records its schedule: `record=False` skips that,
  and the outcome's schedule is empty).
* A trace event is recorded when its operation executes (when the point
  returns to its task), so events are in execution order:
  (step, task_id, kind, a, b, site), site = (code, lineno) of the first frame
  outside the scheduling plumbing (INTERNAL_FILES), resolved lazily to
  (filename, lineno, function) by RunOutcome.events.  trace=False skips it.
* run() returns a RunOutcome and never raises TaskFailed, Deadlock, StepLimit
  or a source's error (ReplayDivergence): they are the outcome's `error`.
  KeyboardInterrupt and SystemExit propagate.  At the end, finishers
  (at_finish: the memory model's final drain) run, then tasks still alive
  (daemons, or everything after a failure) are killed with GreenletExit in
  id order (resumed with _KILL, every switch of a task checks it); during
  that teardown points are no-ops and current is None.
* No global state: a Scheduler is one run; build a new one per run.
* A task runs on a worker greenlet (_serve).  Given a Workers pool (a fuzz
  target keeps one), a worker whose task ended or was killed parks in the
  pool and serves a task of a later run: starting a greenlet maps a fresh
  Python frame stack (an mmap and a munmap, ~12 us, per task and run).  A
  parked worker holds nothing of the run it served, not even its contextvars.
"""
from __future__ import annotations

import os
import sys
import threading
from dataclasses import dataclass, field
from typing import Callable

from greenlet import GreenletExit, getcurrent, greenlet

from .source import ACTION_BASE, Schedule

_DONE, _FAILED, _HALT = "done", "failed", "halt"
_ENDED = "ended"        # a task's greenlet to its parent: its result is in _ended
# Switched into a parked task at teardown: it raises GreenletExit where it
# parked (greenlet.throw() unwinds through C++ exceptions, ~40k instructions).
_KILL = "kill"
ABANDON = -1        # a source's answer meaning "this run is redundant, stop it"


def _internal_files() -> tuple[str, ...]:
    here = os.path.dirname(os.path.abspath(__file__))          # harness/sched
    harness = os.path.dirname(here)
    vring = os.path.join(os.path.dirname(harness), "vring")
    return (here + os.sep,
            os.path.join(harness, "memmodel.py"), os.path.join(harness, "platform.py"),
            os.path.join(harness, "lockdep.py"),
            os.path.join(vring, "memory.py"), os.path.join(vring, "platform.py"))


#: Files whose frames are plumbing, skipped when finding an event's site.
INTERNAL_FILES = _internal_files()


class SchedulerError(RuntimeError):
    """The scheduler was misused (run twice, block outside a task, ...)."""


class TaskFailed(Exception):
    """A task raised: wraps the exception and keeps the task's name."""

    def __init__(self, task_name: str, task_id: int, error: BaseException):
        super().__init__(f"task {task_name!r} raised {type(error).__name__}: {error}")
        self.task_name = task_name
        self.task_id = task_id
        self.error = error
        self.__cause__ = error


class Deadlock(Exception):
    """Every live task is blocked; .blocked = {task_name: reason}."""

    def __init__(self, blocked: dict[str, str]):
        super().__init__("deadlock: " + ", ".join(f"{k} waits for {v}"
                                                  for k, v in blocked.items()))
        self.blocked = blocked


class StepLimit(Exception):
    """More than max_steps operations: a livelock guard."""

    def __init__(self, steps: int):
        super().__init__(f"step limit {steps} exceeded (livelock?)")
        self.steps = steps


class Abandoned(Exception):
    """The source stopped the run as redundant (explore: every option asleep)."""


class Task:
    """One actor.  irq_context is set by the platform for interrupt handlers."""

    __slots__ = ("id", "name", "done", "blocked_on", "daemon", "irq_context", "fresh",
                 "next_op", "_ready", "_g", "_fn", "_args", "__dict__")

    def __init__(self, tid: int, name: str, daemon: bool, fn, args):
        self.id = tid
        self.name = name
        self.done = False
        self.blocked_on: str | None = None
        self.daemon = daemon
        self.irq_context = False
        self.fresh = True           # not yet parked at its first point
        self.next_op = None         # (kind, a, b) it will perform when chosen
        self._ready = None
        self._fn = fn
        self._args = args
        self._g = None

    def __repr__(self) -> str:
        state = "done" if self.done else (f"blocked on {self.blocked_on}" if self.blocked_on
                                          else "runnable")
        return f"<Task {self.id} {self.name!r} {state}>"


class Action:
    """A memory-model choice: `run()` (by default `fn()`) runs once if the
    source picks `id`.

    owner is the task id the action belongs to (for the trace); (kind, a, b)
    is what it does, for the trace and the explorer's footprints.  A memory
    model may subclass it and override run() (one object per buffered store,
    no closure).
    """

    __slots__ = ("id", "owner", "kind", "a", "b", "fn")

    def __init__(self, owner: int, kind: str, a, b, fn: Callable[[], None] | None = None):
        self.id = -1
        self.owner = owner
        self.kind = kind
        self.a = a
        self.b = b
        self.fn = fn

    def run(self) -> None:
        self.fn()


class Workers:
    """Parked task greenlets of one thread, kept for the next runs (see the
    module rules); pass the same Workers to every Scheduler of a loop."""

    def __init__(self, keep: int = 32):
        self.keep = keep
        self._idle: list = []
        self._thread = threading.get_ident()    # greenlets switch within their thread

    def take(self):
        """A parked worker, or None."""
        if self._idle and threading.get_ident() == self._thread:
            g = self._idle.pop()
            g.gr_context = None         # the next task starts in an empty context
            return g
        return None

    def put(self, g) -> None:
        if (not g.dead and len(self._idle) < self.keep
                and threading.get_ident() == self._thread):
            self._idle.append(g)


def _serve(job):
    """A task greenlet's body: job = [body, task, park].  body(task) leaves
    its result on the scheduler; tell the parent it ended, as a returning
    greenlet would.  With park, wait there for the next job (Workers),
    holding no reference to this one (the job list is emptied: the greenlet's
    start arguments keep it)."""
    while True:
        body, t, park = job
        job.clear()
        job = None
        try:
            body(t)
        except GreenletExit:            # killed at the end of its run
            pass
        body = t = None
        if not park:
            return _ENDED
        job = getcurrent().parent.switch(_ENDED)


_SERVE_CODE = _serve.__code__


def resolve_site(site):
    """(code, lineno) -> (filename, lineno, function); None stays None."""
    if site is None:
        return None
    code, line = site
    return (code.co_filename, line, code.co_qualname)


def resolve_events(raw: list) -> list:
    """Raw trace events with their sites resolved (memoised per site)."""
    memo: dict = {}
    out = []
    for step, tid, kind, a, b, site in raw:
        if site is not None:
            r = memo.get(site)
            if r is None:
                r = memo[site] = resolve_site(site)
            site = r
        out.append((step, tid, kind, a, b, site))
    return out


@dataclass
class RunOutcome:
    error: BaseException | None     # TaskFailed / Deadlock / StepLimit / Abandoned / None
    steps: int
    schedule: Schedule
    raw_events: list = field(default_factory=list, repr=False)
    task_names: dict = field(default_factory=dict)   # task id -> name
    _resolved: list | None = field(default=None, repr=False, compare=False)

    @property
    def events(self) -> list:
        """The trace: (step, task_id, kind, a, b, (file, line, function) | None)."""
        if self._resolved is None:
            self._resolved = resolve_events(self.raw_events)
        return self._resolved


class Scheduler:
    """One deterministic run of cooperating tasks under a schedule source."""

    def __init__(self, source, *, max_steps: int = 200_000, trace: bool = True,
                 workers: Workers | None = None, record: bool = True):
        self.source = source
        self.workers = workers
        self.max_steps = max_steps
        self.trace = trace
        # Without it the outcome's schedule is empty; a per-point source then
        # skips the wake predicates at points where it does not preempt.
        self.recording = record
        self.tasks: list[Task] = []
        self.current: Task | None = None
        self.steps = 0
        self.events: list = []               # raw trace events
        self._choices: list[int] = []
        self._choose = source.choose
        self._choose_int = source.choose_int
        self._want_ops = bool(getattr(source, "wants_ops", False))
        # Sources that prune (explore's sleep sets) also see forced points.
        self._single = bool(getattr(source, "sees_forced", False))
        # Optional fast path (FuzzSource, source.py): quick(current, first_action)
        # answers a running task's decision without the options when they do
        # not matter to the answer, so blocked tasks' ready() need not run.
        self._quick = None if self._single else getattr(source, "quick", None)
        # A per-point source (FuzzSource(per_point=True)) is asked at every
        # point of a running task, whatever the options (_at_point).
        self._every = self._quick is not None and bool(getattr(source, "per_point", False))
        self._choice = self._at_point if self._every else self._choice_at
        self._opts: tuple | None = ()         # cached: unblocked tasks, then pending actions
        self._topts: tuple | None = ()        # cached: unblocked live task ids
        self._alive: list[Task] = []
        self._blocked: list[Task] = []      # tasks parked in block(), their ready() re-checked
        self._nblocked = 0
        self._pending: dict[int, Action] = {}
        self._next_action = ACTION_BASE
        self._live = 0                        # non-daemon tasks not done
        self._error: BaseException | None = None
        self._main = None
        self._state = 0                       # 0 built, 1 running, 2 finished
        self._finishers: list[Callable[[], None]] = []
        self._skip: dict = {}                 # code object -> is plumbing
        self._ended = None                    # the result of the task that just ended
        #: Objects whose state a stateful search digests besides the tasks
        #: (statehash.py); the world sets itself here.
        self.roots: tuple = ()
        # Per task, a hash chain of its operations and the values its loads
        # returned (point, note_value), for sources that cache states
        # (`wants_values` with `wants_ops`: explore's state cache).
        self._values: dict | None = {} if getattr(source, "wants_values", False) else None
        #: Does the memory model report loaded values (note_value)?
        self.notes_values = trace or self._values is not None
        bind = getattr(source, "bind", None)
        if bind is not None:
            bind(self)

    # -- building ----------------------------------------------------------------
    def spawn(self, name: str, fn, *args, daemon: bool = False) -> Task:
        """A new task running fn(*args); before or during run()."""
        if self._state == 2:
            raise SchedulerError("spawn() after the run finished")
        t = Task(len(self.tasks), name, daemon, fn, args)
        self.tasks.append(t)
        self._alive.append(t)
        self._opts = self._topts = None
        if not daemon:
            self._live += 1
        if self._state == 1:
            self._prime(t)
        return t

    def mark_plumbing(self, *fns) -> None:
        """Treat these functions (or code objects) as plumbing when finding an
        event's site, like INTERNAL_FILES (e.g. wrappers a harness installs)."""
        for fn in fns:
            self._skip[getattr(fn, "__code__", fn)] = True

    def at_finish(self, fn: Callable[[], None]) -> None:
        """Call fn() when the run ends, before abandoned tasks are killed."""
        self._finishers.append(fn)

    # -- memory-model actions ------------------------------------------------------
    def add_pending(self, action: Action) -> Action:
        """Make `action` a choice; its id is assigned here (deterministically)."""
        action.id = aid = self._next_action
        self._next_action += 1
        self._pending[aid] = action
        if self._opts is not None:
            self._opts += (aid,)        # ids only grow: the options stay sorted
        return action

    def remove_pending(self, action: Action) -> None:
        if self._pending.pop(action.id, None) is not None:
            self._opts = None

    def action(self, aid: int) -> Action:
        """The pending memory-model action `aid` (explore reads its owner)."""
        return self._pending[aid]

    def op_of(self, cid: int):
        """The (kind, a, b) that choosing `cid` performs (explore's footprints).

        Tasks' ops are tracked only for sources with `wants_ops = True`."""
        if cid >= ACTION_BASE:
            act = self._pending[cid]
            return (act.kind, act.a, act.b)
        return self.tasks[cid].next_op

    # -- running -----------------------------------------------------------------
    def run(self) -> RunOutcome:
        if self._state:
            raise SchedulerError("a Scheduler runs once; build a new one per run")
        self._main = getcurrent()
        self._state = 1
        try:
            for t in list(self.tasks):
                if self._error is not None:
                    break
                if t.fresh and not t.done:
                    self._prime(t)
            while self._error is None and self._live > 0:
                c = self._pick_idle()
                if c is None:
                    break
                t = self.tasks[c]
                self.current = t
                r = t._g.switch()
                self.current = None
                if r is _ENDED:
                    self._finished()
        finally:
            self._close()
        return RunOutcome(self._error, self.steps,
                          Schedule(choices=tuple(self._choices) if self.recording else ()),
                          self.events, {t.id: t.name for t in self.tasks})

    def point(self, kind: str, a=None, b=None) -> None:
        """A scheduling point before operation (kind, a, b) of the running task."""
        cur = self.current
        if cur is None:
            return
        if self._want_ops:
            cur.next_op = (kind, a, b)
            vals = self._values
            if vals is not None:
                vals[cur.id] = hash((vals.get(cur.id), kind, a, b))
        if cur.fresh:
            cur.fresh = False
            if cur._g.parent.switch() is _KILL:     # parked; resumed when chosen
                raise GreenletExit
        else:
            cid = cur.id
            opts = self._opts
            quick = self._quick
            if self._every:
                # _at_point's common case, inline: the byte says go on.
                if opts is None:
                    opts = self._base()
                k = len(self._topts)
                c = quick(cid, opts[k] if len(opts) > k else None)
                if c is None or self.recording:
                    c = self._after_quick(cid, c, opts)
            elif quick is not None and opts is not None and len(opts) > 1:
                # _choice_at's common case, inline (one frame less per point).
                k = len(self._topts)
                c = quick(cid, opts[k] if len(opts) > k else None)
                if c is None:           # _ask, inline: in a task, with several options
                    try:
                        c = self._choose(self._options() if self._nblocked else opts, cid)
                    except Exception as e:
                        self._halt(e)
                self._choices.append(c)
            else:
                c = self._choice(cid)
            if c != cid:                    # most points go on at once
                self._decide(cur, c)
        self.steps = s = self.steps + 1
        if s > self.max_steps:
            self._halt(StepLimit(self.max_steps))
        if self.trace:
            self.events.append((s, cur.id, kind, a, b, self._site()))

    def yield_(self) -> None:
        self.point("yield")

    def block(self, reason: str, ready: Callable[[], bool]) -> None:
        """Park the running task until ready() is true (ready must not take points)."""
        cur = self.current
        if cur is None:
            if self._state == 2:
                raise GreenletExit      # teardown: nothing can wake us
            raise SchedulerError("block() outside a task")
        if cur.fresh:
            self.point("block", reason)
        if ready():
            return
        cur.blocked_on = reason
        cur._ready = ready
        self._blocked.append(cur)
        self._nblocked += 1
        self._opts = self._topts = None
        if self._want_ops:
            # Not in the history chain (_values): whether a wait blocked depends on
            # the interleaving, and counting it split equal states (tripled draft
            # III's at bound 1); the frames show where the task waits.
            cur.next_op = ("block", reason, None)
        self._record(cur.id, "block", reason, None, self._site())
        cid = cur.id
        while True:
            opts = self._options()
            if not opts:
                self._halt(Deadlock(self._blocked_map()))
            if len(opts) == 1 and not self._single:
                c = opts[0]
            else:
                c = self._ask(opts, cid if cid in opts else None)
            if c == cid:
                break
            if c >= ACTION_BASE:
                self._run_action(c)
                continue
            if c < 0:
                self._halt(Abandoned())
            nxt = self.tasks[c]
            self.current = nxt
            if nxt._g.switch() is _KILL:
                raise GreenletExit
            break                       # chosen again: ready() was true
        cur.blocked_on = None
        cur._ready = None
        self._blocked.remove(cur)
        self._nblocked -= 1
        self._opts = self._topts = None
        self._record(cid, "wake", reason, None, self._site())

    def choose_int(self, n: int) -> int:
        """A recorded data choice in range(n) (0 without asking when n <= 1)."""
        if n <= 1:
            return 0
        try:
            v = self._choose_int(n)
        except Exception as e:          # e.g. ReplayDivergence
            if self.current is None:
                raise
            self._halt(e)
        self._choices.append(v)
        return v

    def record(self, kind: str, a=None, b=None) -> None:
        """A trace event without a scheduling choice (e.g. a drain inside mb())."""
        cur = self.current
        if cur is not None:
            self._record(cur.id, kind, a, b, None)

    def note_value(self, value) -> None:
        """A load of the running task returned `value`: set b of its last trace
        event, and extend its chain of observed values (state caching)."""
        cur = self.current
        if cur is None:
            return
        vals = self._values
        if vals is not None:
            vals[cur.id] = hash((vals.get(cur.id), value))
        if self.trace and self.events:
            s, t, k, a, _, site = self.events[-1]
            self.events[-1] = (s, t, k, a, value, site)

    def observed(self, tid: int):
        """The hash chain of task `tid`'s operations and loaded values, or None."""
        vals = self._values
        return None if vals is None else vals.get(tid)

    # -- internals ---------------------------------------------------------------
    def _body(self, t: Task) -> None:
        try:
            t._fn(*t._args)
        except Exception as e:
            self._ended = (_FAILED, t, e)
            return
        self._ended = (_DONE, t)

    def _prime(self, t: Task) -> None:
        """Run a new task up to its first point, then come back here."""
        workers = self.workers
        g = workers.take() if workers is not None else None
        if g is None:
            g = greenlet(_serve)
        t._g = g
        prev = self.current
        g.parent = getcurrent()
        self.current = t
        r = g.switch([self._body, t, workers is not None])
        if r is _KILL:                  # the new task halted the run: we are torn down
            raise GreenletExit
        self.current = prev
        if r is _ENDED:
            self._finished()
        else:
            g.parent = self._main
        if self._error is not None and prev is not None:
            self._halt()

    def _finished(self) -> None:
        r, self._ended = self._ended, None
        t = r[1]
        self._release(t)
        t.done = True
        t.next_op = None
        self._alive.remove(t)
        self._opts = self._topts = None
        if not t.daemon:
            self._live -= 1
        if r[0] == _FAILED and self._error is None:
            self._error = TaskFailed(t.name, t.id, r[2])

    def _options(self) -> tuple:
        """Enabled choices, sorted: runnable tasks, then pending actions.

        Unblocked tasks and actions are cached; blocked tasks' ready() is
        evaluated on every call (any operation may have made it true)."""
        base = self._opts
        if base is None:
            base = self._base()
        if not self._nblocked:
            return base
        woken = ()
        for t in self._blocked:         # a loop, not a comprehension: no extra frame
            if t._ready():
                woken += (t.id,)
        if not woken:
            return base
        return tuple(sorted(base + woken))

    def _choice_at(self, cid: int) -> int:
        """The choice at a decision of the running task cid, recorded; cid
        unrecorded when it is the only option (unless the source sees forced
        points).

        With a quick() source the options are computed only as far as the
        answer needs: the blocked tasks' ready() up to the first that is true
        (is there a second option?), and all of them only when quick() defers
        to choose().  Evaluating a ready() has no effect, so the options and
        every answer are those of _options() + choose()."""
        opts = self._opts
        if opts is None:
            opts = self._base()
        quick = self._quick
        if quick is None:
            if self._nblocked:
                opts = self._options()
            if len(opts) > 1 or self._single:
                return self._ask(opts, cid)
            return cid
        if len(opts) > 1:
            k = len(self._topts)        # opts: the task ids, then the pending actions
            c = quick(cid, opts[k] if len(opts) > k else None)
            if c is None:
                return self._ask(self._options() if self._nblocked else opts, cid)
        else:
            # Only cid runs unless a blocked task woke: find the first that did.
            blocked = self._blocked
            for t in blocked:           # no enumerate: this loop runs at most points
                if t._ready():
                    break
            else:
                return cid
            c = quick(cid, None)        # the one option is cid: no action pending
            if c is None:
                woken = [t.id]
                for u in blocked[blocked.index(t) + 1:]:
                    if u._ready():
                        woken.append(u.id)
                return self._ask(tuple(sorted(opts + tuple(woken))), cid)
        self._choices.append(c)
        return c

    def _at_point(self, cid: int) -> int:
        """A per-point source's choice at a point of the running task cid.

        The source sees the point whatever the options: it answers from its
        input alone unless it preempts (quick() returns None), and only then
        are the blocked tasks' ready() evaluated.  What is recorded is the
        same as elsewhere, the answers at points with more than one option,
        so finding those needs ready() too: with `recording` off it is skipped,
        and a run that must be replayed is run again with it on."""
        opts = self._opts
        if opts is None:
            opts = self._base()
        k = len(self._topts)
        return self._after_quick(cid, self._quick(cid, opts[k] if len(opts) > k else None),
                                 opts)

    def _after_quick(self, cid: int, c, opts: tuple) -> int:
        """_at_point once quick() answered c (None: the byte preempts)."""
        if c is None:
            full = self._options() if self._nblocked else opts
            try:
                c = self._choose(full, cid)
            except Exception as e:
                self._halt(e)
        elif not self.recording:
            return c
        else:
            full = self._options() if self._nblocked else opts
        if len(full) > 1 and self.recording:
            self._choices.append(c)
        return c

    def _base(self) -> tuple:
        """Unblocked tasks then pending actions (dict order is id order), cached."""
        tasks = self._topts
        if tasks is None:
            tasks = self._topts = tuple([t.id for t in self._alive if t._ready is None])
        base = tasks + tuple(self._pending) if self._pending else tasks
        self._opts = base
        return base

    def _ask(self, opts, current):
        try:
            c = self._choose(opts, current)
        except Exception as e:
            if getcurrent() is self._main:
                self._error = e
                return None
            self._halt(e)
        if len(opts) > 1:               # forced points are never recorded
            self._choices.append(c)
        return c

    def _decide(self, cur: Task, first: int) -> None:
        """Who performs cur's next operation: cur, or another task (switched
        to; cur resumes when chosen again); actions chosen meanwhile run here.
        first: the choice already made at this decision (point())."""
        cid = cur.id
        c = first
        while True:
            if c is None:
                c = self._choice(cid)
            if c == cid:
                return
            if c >= ACTION_BASE:
                self._run_action(c)
                c = None
                continue
            if c < 0:
                self._halt(Abandoned())
            t = self.tasks[c]
            self.current = t
            if t._g.switch() is _KILL:
                raise GreenletExit
            return

    def _pick_idle(self):
        """Choose who runs when no task is running (start, after a task ended)."""
        while True:
            opts = self._options()
            if not opts:
                self._error = Deadlock(self._blocked_map())
                return None
            c = opts[0] if len(opts) == 1 and not self._single else self._ask(opts, None)
            if c is None:
                return None
            if c < 0:
                self._error = Abandoned()
                return None
            if c < ACTION_BASE:
                return c
            self._run_action(c)
            if self._error is not None:
                return None

    def _run_action(self, aid: int) -> None:
        act = self._pending.pop(aid)
        self._opts = None
        self.steps = s = self.steps + 1         # _record, inline
        if s > self.max_steps:
            self._over_limit()
        if self.trace:
            self.events.append((s, act.owner, act.kind, act.a, act.b, None))
        act.run()

    def _record(self, tid, kind, a, b, site) -> None:
        self.steps = s = self.steps + 1
        if s > self.max_steps:
            self._over_limit()
        if self.trace:
            self.events.append((s, tid, kind, a, b, site))

    def _over_limit(self) -> None:
        """A step past max_steps: a task halts the run; the main greenlet
        records the error and the run stops after this step."""
        if getcurrent() is self._main:
            if self._error is None:
                self._error = StepLimit(self.max_steps)
        else:
            self._halt(StepLimit(self.max_steps))

    def _site(self):
        """(code, lineno) of the first frame outside the plumbing, or None."""
        if not self.trace:
            return None
        f = sys._getframe(2)
        skip = self._skip
        last = None
        while f is not None:
            code = f.f_code
            if code is _SERVE_CODE:     # a task's outermost frame is _body's
                break
            s = skip.get(code)
            if s is None:
                s = skip[code] = code.co_filename.startswith(INTERNAL_FILES)
            if not s:
                return (code, f.f_lineno)
            last = f
            f = f.f_back
        return (last.f_code, last.f_lineno) if last is not None else None

    def _blocked_map(self) -> dict[str, str]:
        return {t.name: t.blocked_on or "nothing (not runnable)"
                for t in self._alive if t.blocked_on is not None or not t.daemon}

    def _halt(self, error: BaseException | None = None):
        """Stop the run from inside a task; the task never resumes."""
        if error is not None and self._error is None:
            self._error = error
        self._main.switch(_HALT)
        raise GreenletExit

    def _close(self) -> None:
        self.current = None
        self._state = 2
        try:
            for fn in self._finishers:
                fn()
        finally:
            self._kill()

    def _kill(self) -> None:
        main = getcurrent()
        for t in self.tasks:
            g = t._g
            if g is not None and g:             # started and not finished
                g.parent = main
                try:
                    g.switch(_KILL)
                except Exception:               # task code turned the exit into an error
                    pass
            self._release(t)

    def _release(self, t: Task) -> None:
        """t's worker is free: back to the pool (or it has ended)."""
        g, t._g = t._g, None
        if self.workers is not None and g is not None:
            self.workers.put(g)
