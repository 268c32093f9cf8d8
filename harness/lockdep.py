"""A lockdep-style lock validator: lock classes, the order graph, irq usage.

Modelled on Linux lockdep (Documentation/locking/lockdep-design.rst), at the
level a virtqueue harness needs.  It is a pure checker: the platform tells it
every acquire and release (who, which lock, where, in which context) and it
reports rule violations.  It imports no scheduler and keeps no global state.

Rules (each a LockdepViolation subclass with .kind, .locks, .tasks, .sites):

* SelfDeadlock ("AA"): a task takes a lock class it already holds
  (lockdep-design "Multi-lock dependency rules": the same lock-class must not
  be acquired twice).
* LockOrderInversion ("ABBA"): taking B while holding A adds the edge A -> B
  to the order graph; an edge that closes a cycle is reported when it is
  added, even if the two orders happened at different times and nothing
  deadlocked in this run.  That is lockdep's point: one run proves the
  deadlock possible under another schedule.
* IrqUnsafeLock: a class that was taken in interrupt context (irq-safe) is
  also held in task context with interrupts enabled (irq-unsafe); an
  interrupt on that CPU while it is held spins on it forever
  (lockdep-design "Single-lock state rules": irq-safe and irq-unsafe are
  exclusive).  A class becomes irq-unsafe when it is acquired with
  interrupts on, or when a task re-enables interrupts while holding it
  (Linux marks held locks in mark_held_locks() on hardirqs_on).
* IrqLockInversion: an irq-safe class S is ordered before an irq-unsafe class
  U (S -> ... -> U in the graph).  One CPU holds U with interrupts on; another
  holds S (interrupts off) and waits for U; the first CPU's interrupt then
  waits for S (lockdep-design "Multi-lock dependency rules":
  <hardirq-safe> -> <hardirq-unsafe> is forbidden).  Checked whenever an edge
  or a usage state is new, the way lockdep's check_irq_usage() is.
* UnlockNotHeld: release of a class the task does not hold
  (lockdep's "bad unlock balance").

Theory of operation: a lock class is its name.  Each edge records the first
time it was seen: the task and BOTH call sites (where the held lock was
taken, where the new one was taken), so a report names every acquisition
that makes up the cycle.  Edges are added from every lock the task holds,
as lockdep's check_prevs_add does within one context.  Only a new edge can
close a new cycle, so a cycle is reported once.  Usage state keeps the first
site of each usage, so an irq report names both sides.  Dict insertion order
makes the search, and hence every report, deterministic.

A site is (filename, lineno, funcname); call_site() finds the caller's first
frame outside the harness's instrumentation (scenarios and bug-zoo modules
under harness/ count as user code).
"""
from __future__ import annotations

import functools
import os
import sys
from dataclasses import dataclass
from typing import NamedTuple

Site = tuple[str, int, str]

_HARNESS_DIR = os.path.dirname(os.path.abspath(__file__))
_ROOT_DIR = os.path.dirname(_HARNESS_DIR)
#: harness/ sub-packages whose frames are user code (what a report should name).
_USER_DIRS = tuple(os.path.join(_HARNESS_DIR, d) + os.sep for d in ("scenarios", "bugs"))
_INFRA_PREFIX = _HARNESS_DIR + os.sep


@functools.lru_cache(maxsize=None)      # a pure test on the few source files there are
def _is_infrastructure(filename: str) -> bool:
    return filename.startswith(_INFRA_PREFIX) and not filename.startswith(_USER_DIRS)


#: (id(code), instruction offset) -> (line number, code), a pure function:
#: f_lineno scans the code's line table from its start (~3.5k instructions)
#: on every read, and every lock operation reads one.  Keyed by id (a code
#: object hashes its whole bytecode); the entry keeps the code alive, so the
#: id cannot be reused.
_LINES: dict = {}


def _line(f) -> int:
    code = f.f_code
    key = (id(code), f.f_lasti)
    hit = _LINES.get(key)
    if hit is None:
        hit = _LINES[key] = (f.f_lineno, code)
    return hit[0]


def call_site(skip: int = 0) -> Site:
    """The first frame, from the caller of call_site (after `skip` more frames),
    that is not harness instrumentation: the line of ring or scenario code that
    took the lock.  A plain sys._getframe walk: no traceback objects."""
    f = sys._getframe(skip + 1)
    last = f
    while f is not None:
        code = f.f_code
        if not _is_infrastructure(code.co_filename):
            return (code.co_filename, _line(f), code.co_name)
        last = f
        f = f.f_back
    code = last.f_code
    return (code.co_filename, _line(last), code.co_name)


def format_site(site: Site | None) -> str:
    """'vring/split/driver.py:184 (kick)': relative to the project when inside it."""
    if site is None:
        return "?"
    filename, lineno, func = site
    path = os.path.abspath(filename)
    if path.startswith(_ROOT_DIR + os.sep):
        shown = os.path.relpath(path, _ROOT_DIR)
    else:
        shown = os.path.basename(filename)
    return f"{shown}:{lineno} ({func})"


# --- reports --------------------------------------------------------------------

class LockdepViolation(Exception):
    """A locking rule was broken.  .kind names the rule; .locks, .tasks and
    .sites list what the one-line message names."""

    kind = "lockdep"

    def __init__(self, message: str, *, locks: tuple[str, ...] = (),
                 tasks: tuple[str, ...] = (), sites: tuple[Site, ...] = ()):
        super().__init__(message)
        self.message = message
        self.locks = locks
        self.tasks = tasks
        self.sites = sites


class SelfDeadlock(LockdepViolation):
    """AA: a task takes a lock class it already holds."""

    kind = "AA"


class LockOrderInversion(LockdepViolation):
    """ABBA (or a longer cycle): the order graph has a cycle."""

    kind = "ABBA"


class IrqUnsafeLock(LockdepViolation):
    """A lock used in interrupt context is also held with interrupts enabled."""

    kind = "irq-unsafe"


class IrqLockInversion(LockdepViolation):
    """An irq-safe lock class is ordered before an irq-unsafe one."""

    kind = "irq-safe->irq-unsafe"


class UnlockNotHeld(LockdepViolation):
    """A task released a lock class it does not hold."""

    kind = "unlock-not-held"


@dataclass(frozen=True)
class Edge:
    """A -> B: `task` took `after` at after_site while holding `before`
    (taken at before_site).  The first occurrence is kept."""

    before: str
    after: str
    task: str
    before_site: Site
    after_site: Site

    def describe(self) -> str:
        return (f"{self.before!r} -> {self.after!r} taken by {self.task} at "
                f"{format_site(self.after_site)} holding {self.before!r} from "
                f"{format_site(self.before_site)}")


@dataclass(frozen=True)
class Usage:
    """The first acquisition that gave a class one of its usage states."""

    task: str
    site: Site


class _Held(NamedTuple):        # one per acquire: a tuple is the cheapest record
    lock: str
    site: Site


class Lockdep:
    """The validator for one run.  Create one per run; it holds no globals."""

    def __init__(self, *, raise_on_report: bool = True):
        self.raise_on_report = raise_on_report
        self.reports: list[LockdepViolation] = []
        #: order graph: before -> {after: Edge}, insertion ordered.
        self.graph: dict[str, dict[str, Edge]] = {}
        self.used_in_irq: dict[str, Usage] = {}      # irq-safe classes
        self.enabled_irqs: dict[str, Usage] = {}     # irq-unsafe classes
        self._held: dict[object, list[_Held]] = {}
        self._irq_reported: set[str] = set()
        self._irq_dep_reported: set[tuple[str, str]] = set()

    # -- queries ------------------------------------------------------------------

    def held(self, task_id) -> list[str]:
        """The classes `task_id` holds, oldest first."""
        return [h.lock for h in self._held.get(task_id, ())]

    def held_sites(self, task_id) -> list[tuple[str, Site]]:
        return [(h.lock, h.site) for h in self._held.get(task_id, ())]

    # -- events -------------------------------------------------------------------

    def acquire(self, task_id, task_name: str, lock_name: str, site: Site, *,
                irq_context: bool, irqs_disabled: bool) -> None:
        """`task_name` is about to take `lock_name` at `site`.

        Called before the lock is actually taken (as lock_acquire() is in
        Linux), so an AA is reported instead of hanging.  When a report is
        raised the lock is not recorded as held."""
        stack = self._held.setdefault(task_id, [])
        found: list[LockdepViolation] = []
        for h in stack:
            if h.lock == lock_name:
                found.append(SelfDeadlock(
                    f"AA: {task_name} takes {lock_name!r} at {format_site(site)} while "
                    f"already holding it since {format_site(h.site)}",
                    locks=(lock_name,), tasks=(task_name,), sites=(h.site, site)))
                break
        changed = False
        for h in stack:
            if h.lock != lock_name and lock_name not in self.graph.get(h.lock, ()):
                changed = True
                cycle = self._add_edge(Edge(h.lock, lock_name, task_name, h.site, site))
                if cycle is not None:
                    found.append(cycle)
        usage = self.used_in_irq if irq_context else (
            None if irqs_disabled else self.enabled_irqs)
        if usage is not None and lock_name not in usage:
            changed = True
            usage[lock_name] = Usage(task_name, site)
        irq = self._check_irq_usage(lock_name)
        if irq is not None:
            found.append(irq)
        if changed:
            found.extend(self._irq_inversions())
        self.reports.extend(found)
        if found and self.raise_on_report:
            raise found[0]
        stack.append(_Held(lock_name, site))

    def release(self, task_id, lock_name: str, site: Site, task_name: str = "") -> None:
        """`lock_name` is released at `site` (the most recent hold of the class)."""
        stack = self._held.get(task_id, [])
        for i in range(len(stack) - 1, -1, -1):
            if stack[i].lock == lock_name:
                del stack[i]
                return
        report = UnlockNotHeld(
            f"unlock-not-held: {task_name or task_id} releases {lock_name!r} at "
            f"{format_site(site)} without holding it",
            locks=(lock_name,), tasks=(task_name or str(task_id),), sites=(site,))
        self.reports.append(report)
        if self.raise_on_report:
            raise report

    def irqs_enabled(self, task_id, task_name: str, site: Site) -> None:
        """A task in task context re-enabled interrupts at `site`: every lock it
        still holds is now held with interrupts on (irq-unsafe)."""
        found = []
        changed = False
        for h in self._held.get(task_id, ()):
            if h.lock not in self.enabled_irqs:
                changed = True
                self.enabled_irqs[h.lock] = Usage(task_name, site)
            irq = self._check_irq_usage(h.lock)
            if irq is not None:
                found.append(irq)
        if changed:
            found.extend(self._irq_inversions())
        self.reports.extend(found)
        if found and self.raise_on_report:
            raise found[0]

    def forget_task(self, task_id) -> None:
        """Drop a finished task's (empty) held stack."""
        self._held.pop(task_id, None)

    # -- rules --------------------------------------------------------------------

    def _add_edge(self, edge: Edge) -> LockOrderInversion | None:
        """Record a NEW edge; the cycle it closes, if any.  Known orders are not
        re-added (acquire checks): they were validated when first seen."""
        out = self.graph.setdefault(edge.before, {})
        path = self._paths_from(edge.after).get(edge.before)
        out[edge.after] = edge
        if path is None:
            return None
        edges = [edge] + path
        locks = tuple(e.before for e in edges)
        tasks = tuple(dict.fromkeys(e.task for e in edges))
        sites = tuple(s for e in edges for s in (e.before_site, e.after_site))
        label = "ABBA" if len(edges) == 2 else f"lock order cycle of {len(edges)}"
        return LockOrderInversion(f"{label}: " + ", ".join(e.describe() for e in edges),
                                  locks=locks, tasks=tasks, sites=sites)

    def _paths_from(self, src: str) -> dict[str, list[Edge]]:
        """Every class reachable from src, with the edges of a shortest path
        (breadth first, in insertion order: deterministic)."""
        paths: dict[str, list[Edge]] = {src: []}
        frontier = [src]
        while frontier:
            nxt = []
            for node in frontier:
                for after, e in self.graph.get(node, {}).items():
                    if after not in paths:
                        paths[after] = paths[node] + [e]
                        nxt.append(after)
            frontier = nxt
        return paths

    def _irq_inversions(self) -> list[IrqLockInversion]:
        """Pairs irq-safe S -> ... -> irq-unsafe U not reported yet.  Runs only
        when an edge or a usage is new (first-time events), so its cost is
        paid once per lock order, not per acquisition."""
        found = []
        for s, safe in self.used_in_irq.items():
            for u, path in self._paths_from(s).items():
                unsafe = self.enabled_irqs.get(u)
                if u == s or unsafe is None or (s, u) in self._irq_dep_reported:
                    continue
                self._irq_dep_reported.add((s, u))
                sites = (safe.site, unsafe.site) + tuple(
                    x for e in path for x in (e.before_site, e.after_site))
                found.append(IrqLockInversion(
                    f"irq-safe->irq-unsafe: {s!r} is taken in interrupt context by "
                    f"{safe.task} at {format_site(safe.site)}, {u!r} is held with "
                    f"interrupts enabled by {unsafe.task} at {format_site(unsafe.site)}, "
                    f"and " + ", ".join(e.describe() for e in path),
                    locks=(s, u), tasks=tuple(dict.fromkeys(
                        [safe.task, unsafe.task] + [e.task for e in path])),
                    sites=sites))
        return found

    def _check_irq_usage(self, lock_name: str) -> IrqUnsafeLock | None:
        safe = self.used_in_irq.get(lock_name)
        unsafe = self.enabled_irqs.get(lock_name)
        if safe is None or unsafe is None or lock_name in self._irq_reported:
            return None
        self._irq_reported.add(lock_name)
        return IrqUnsafeLock(
            f"irq-unsafe: {lock_name!r} taken in interrupt context by {safe.task} at "
            f"{format_site(safe.site)}, and held with interrupts enabled by "
            f"{unsafe.task} at {format_site(unsafe.site)}: an interrupt there spins "
            f"on it forever",
            locks=(lock_name,), tasks=(safe.task, unsafe.task),
            sites=(safe.site, unsafe.site))


__all__ = ["Lockdep", "LockdepViolation", "SelfDeadlock", "LockOrderInversion",
           "IrqUnsafeLock", "IrqLockInversion", "UnlockNotHeld", "Edge", "Usage", "Site",
           "call_site", "format_site"]
