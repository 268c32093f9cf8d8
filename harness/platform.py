"""The Platform a scheduled run gives ring code: kicks, one irq line, locks.

HarnessPlatform has the method names of vring.platform.Platform, so a ring
(or a plug-in) that keeps to notify_device() / interrupt() / lock(name) is
instrumented without knowing it (DESIGN.md "Locks and lockdep").

Rules:

* Every kick, interrupt and lock operation done by a task is a scheduling
  point, taken BEFORE the operation so that every interleaving of the
  operation itself is reachable (local_irq_save/restore are not points):
  notify_device() is ("notify",), interrupt() is ("interrupt",), lock
  acquire is ("lock", name) and release is ("unlock", name).
* Outside any task (sched.current is None: setup code and oracles) every
  method works without points and never blocks; a lock that a task holds
  cannot be taken from there (HarnessLockError: nothing could release it).
* Kicks are counted; a device task waits for one with wait_kick(seen).
* The interrupt model is one virtual CPU's irq line.  interrupt() marks it
  pending.  The handler task (start_irq_handler) is a daemon that waits until
  an interrupt is pending AND no task has interrupts disabled, then clears
  the pending flag and runs the driver's callback with irq_context = True.
  Several interrupt() calls before the handler runs deliver ONE callback:
  MSI-X and INTx coalesce the same way (a pending bit, not a queue), which is
  why virtio drivers must poll get_buf() until it returns None.
  The handler runs as its own task, interleaved with the others, rather than
  stopping the task it interrupts: that finds more orders, and the irq-unsafe
  rule of lockdep reports the deadlock a real CPU would have.
* Interrupts are disabled per task by local_irq_save() (until the matching
  local_irq_restore()) or by lock.acquire(irqsave=True) (until release), as
  spin_lock_irqsave does.  Disabling nests; any task with it disabled masks
  the line.
* Every lock operation goes to the run's Lockdep (harness/lockdep.py) with
  the caller's site, irq_context and whether interrupts were off, before the
  lock is taken, so AA and ABBA are reported instead of hanging.
* explain_deadlock() turns the scheduler's Deadlock into who holds which lock
  since where, and who waits for what.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

from vring.platform import LockError, Platform

from .lockdep import Lockdep, Site, call_site, format_site

MAIN = "main"           # the name of the context outside every task


class HarnessLockError(LockError):
    """A harness lock was misused: released by a task that does not hold it, or
    taken outside any task while a task holds it."""


class Hold(NamedTuple):
    """Who holds a lock, since where, and whether it disabled interrupts
    (immutable; a tuple: one is made at every acquire)."""

    task_id: Any
    task_name: str
    site: Site
    irqsave: bool


class HarnessLock:
    """An instrumented lock (the vring.platform.Lock protocol)."""

    __slots__ = ("name", "platform", "holder")

    def __init__(self, name: str, platform: "HarnessPlatform"):
        self.name = name
        self.platform = platform
        self.holder: Hold | None = None

    def acquire(self, irqsave: bool = False) -> None:
        p = self.platform
        task = p.sched.current
        site = call_site()
        if task is not None:
            p.sched.point("lock", self.name)
        tid, tname, irq_ctx = p._who(task)
        p.lockdep.acquire(tid, tname, self.name, site, irq_context=irq_ctx,
                          irqs_disabled=irqsave or irq_ctx or p._irqs_off(tid))
        if irqsave:
            # spin_lock_irqsave: interrupts go off before spinning on the lock.
            p._irq_disable(tid, tname, site)
        while self.holder is not None:
            if task is None:
                raise HarnessLockError(
                    f"lock {self.name!r} taken outside any task at {format_site(site)} "
                    f"while {self.holder.task_name} holds it since "
                    f"{format_site(self.holder.site)}")
            # Kept if block() never returns, so explain_deadlock can name it.
            p._waiting[tid] = (tname, self.name, site)
            p.sched.block(f"lock {self.name!r}", self._free)
            del p._waiting[tid]
        self.holder = Hold(tid, tname, site, irqsave)

    def _free(self) -> bool:
        return self.holder is None

    def release(self) -> None:
        p = self.platform
        task = p.sched.current
        site = call_site()
        if task is not None:
            p.sched.point("unlock", self.name)
        tid, tname, irq_ctx = p._who(task)
        p.lockdep.release(tid, self.name, site, tname)
        hold = self.holder
        if hold is None or hold.task_id != tid:
            owner = f"held by {hold.task_name}" if hold is not None else "free"
            raise HarnessLockError(f"{tname} releases {self.name!r} at {format_site(site)} "
                                   f"but it is {owner}")
        self.holder = None
        if hold.irqsave:
            # spin_unlock_irqrestore: unlock first, then interrupts back on.
            p._irq_enable(tid, tname, irq_ctx, site)

    def __enter__(self) -> "HarnessLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def __repr__(self) -> str:
        who = self.holder.task_name if self.holder else "free"
        return f"<HarnessLock {self.name!r} {who}>"


class HarnessPlatform(Platform):
    """The platform of one scheduled run (create one per run).

    Counters for the liveness oracles: kicks, interrupts_raised,
    interrupts_delivered; irq_pending says an interrupt awaits its handler.
    """

    def __init__(self, sched, lockdep: Lockdep | None = None):
        # Platform's on_notify/on_interrupt hooks are not used: device and
        # handler tasks wait on the counters instead of being called.
        self.on_notify = self.on_interrupt = None
        self.sched = sched
        self.lockdep = lockdep if lockdep is not None else Lockdep()
        self.kicks = 0
        self.interrupts_raised = 0
        self.interrupts_delivered = 0
        self.irq_pending = False
        self._locks: dict[str, HarnessLock] = {}
        # task id -> its disables, never empty (the entry goes with the last one)
        self._irq_off: dict[Any, list[tuple[str, Site]]] = {}
        self._waiting: dict[Any, tuple[str, str, Site]] = {}    # task id -> (name, lock, site)
        self._handlers: list[Any] = []

    # -- the plain Platform's counter names ----------------------------------------

    @property
    def notifies(self) -> int:
        return self.kicks

    @property
    def interrupts(self) -> int:
        return self.interrupts_raised

    def counters(self) -> dict[str, int]:
        return {"kicks": self.kicks, "interrupts_raised": self.interrupts_raised,
                "interrupts_delivered": self.interrupts_delivered}

    # -- who is calling --------------------------------------------------------------

    @staticmethod
    def _who(task) -> tuple[Any, str, bool]:
        if task is None:
            return None, MAIN, False
        return task.id, task.name, bool(getattr(task, "irq_context", False))

    # -- kicks (driver -> device) --------------------------------------------------

    def notify_device(self) -> None:
        if self.sched.current is not None:
            self.sched.point("notify")
        self.kicks += 1

    def wait_kick(self, seen: int) -> int:
        """Block until more than `seen` kicks were sent; return the count.
        Outside a task it does not block: it returns the count as it is."""
        if self.kicks <= seen and self.sched.current is not None:
            self.sched.block(f"kick after #{seen}", lambda: self.kicks > seen)
        return self.kicks

    # -- the irq line (device -> driver) -------------------------------------------

    def interrupt(self) -> None:
        if self.sched.current is not None:
            self.sched.point("interrupt")
        self.interrupts_raised += 1
        self.irq_pending = True          # a pending bit: coalesces (see module doc)

    def irqs_masked(self) -> bool:
        """Does any task (or the main context) have interrupts disabled?"""
        return bool(self._irq_off)      # entries are dropped when they empty

    def _irq_deliverable(self) -> bool:
        # The irq handler's wake-up predicate, evaluated at most points: inline.
        return self.irq_pending and not self._irq_off

    def start_irq_handler(self, callback: Callable[[], Any], name: str = "irq"):
        """Spawn the daemon task that runs callback() once per delivered
        interrupt, in interrupt context.  Returns the scheduler's Task."""
        task = self.sched.spawn(name, self._irq_loop, callback, daemon=True)
        self._handlers.append(task)
        return task

    def _irq_loop(self, callback: Callable[[], Any]) -> None:
        me = self.sched.current
        me.irq_context = True
        while True:
            while not self._irq_deliverable():
                self.sched.block("interrupt", self._irq_deliverable)
            self.irq_pending = False
            self.interrupts_delivered += 1
            callback()

    def local_irq_save(self) -> None:
        """Disable interrupts for the calling task (nests)."""
        tid, tname, _ = self._who(self.sched.current)
        self._irq_disable(tid, tname, call_site())

    def local_irq_restore(self) -> None:
        """Undo the matching local_irq_save()."""
        tid, tname, irq_ctx = self._who(self.sched.current)
        self._irq_enable(tid, tname, irq_ctx, call_site())

    def _irqs_off(self, tid) -> bool:
        return bool(self._irq_off.get(tid))

    def _irq_disable(self, tid, tname: str, site: Site) -> None:
        self._irq_off.setdefault(tid, []).append((tname, site))

    def _irq_enable(self, tid, tname: str, irq_ctx: bool, site: Site) -> None:
        stack = self._irq_off.get(tid)
        if not stack:
            raise HarnessLockError(f"{tname} enables interrupts at {format_site(site)} "
                                   f"without having disabled them")
        stack.pop()
        if not stack:
            del self._irq_off[tid]
            if not irq_ctx:
                # Locks still held are now held with interrupts on (irq-unsafe).
                self.lockdep.irqs_enabled(tid, tname, site)

    # -- locks ------------------------------------------------------------------------

    def lock(self, name: str) -> HarnessLock:
        lk = self._locks.get(name)
        if lk is None:
            lk = self._locks[name] = HarnessLock(name, self)
        return lk

    # -- deadlock explanation ------------------------------------------------------

    def explain_deadlock(self, deadlock) -> str:
        """Who holds which lock since where, what each blocked task waits for,
        and the wait-for cycle if there is one.  `deadlock` is the scheduler's
        Deadlock (its .blocked maps task name -> reason)."""
        blocked: dict[str, str] = dict(getattr(deadlock, "blocked", {}) or {})
        waits_by_name = {w[0]: (tid, w) for tid, w in self._waiting.items()}
        lines: list[str] = []
        cycle = self._wait_cycle()
        if cycle:
            lines.append("deadlock: " + ", ".join(
                f"{t} waits for {lk!r} held by {h}" for t, lk, h in cycle))
        else:
            lines.append(f"deadlock: {len(blocked)} task(s) blocked, no lock cycle")
        for tname, reason in blocked.items():
            if tname in waits_by_name:
                _, (_, lk, site) = waits_by_name[tname]
                hold = self._locks[lk].holder
                holder = (f"held by {hold.task_name} since {format_site(hold.site)}"
                          if hold else "free")
                lines.append(f"  {tname} waits for {lk!r} at {format_site(site)}, {holder}")
            elif reason == "interrupt" and self.irq_pending and self.irqs_masked():
                offs = "; ".join(f"{s[-1][0]} at {format_site(s[-1][1])}"
                                 for s in self._irq_off.values())
                lines.append(f"  {tname} has an interrupt pending but interrupts are "
                             f"disabled by {offs}")
            else:
                lines.append(f"  {tname} waits: {reason}")
        for lk in self._locks.values():
            if lk.holder is not None:
                lines.append(f"  {lk.holder.task_name} holds {lk.name!r} since "
                             f"{format_site(lk.holder.site)}")
        return "\n".join(lines)

    def _wait_cycle(self) -> list[tuple[str, str, str]]:
        """task -> lock -> holding task ... until a task repeats: the wait-for cycle."""
        for start in self._waiting:
            path: list[tuple[Any, str, str, str]] = []
            tid = start
            while tid in self._waiting and tid not in [p[0] for p in path]:
                tname, lk, _ = self._waiting[tid]
                hold = self._locks[lk].holder
                if hold is None:
                    break
                path.append((tid, tname, lk, hold.task_name))
                tid = hold.task_id
            ids = [p[0] for p in path]
            if tid in ids:
                return [(t, lk, h) for _, t, lk, h in path[ids.index(tid):]]
        return []


__all__ = ["HarnessPlatform", "HarnessLock", "HarnessLockError", "Hold", "MAIN"]
