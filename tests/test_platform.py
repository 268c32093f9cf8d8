"""The scheduled Platform (harness/platform.py): kicks, the irq line, locks.

Until harness/sched/runtime.py lands these tests drive the platform with
FakeScheduler below: the same API (current, spawn, point, block, run), greenlet
tasks, and a deterministic choice at every point (round robin by default, or
a scripted list of task names).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from greenlet import greenlet

from harness.lockdep import IrqUnsafeLock, Lockdep, LockOrderInversion, SelfDeadlock
from harness.platform import HarnessLockError, HarnessPlatform


# --- a tiny stand-in for harness.sched.runtime.Scheduler ----------------------------

class Deadlock(Exception):
    def __init__(self, blocked):
        super().__init__(f"deadlock: {blocked}")
        self.blocked = blocked


class TaskFailed(Exception):
    def __init__(self, task, error):
        super().__init__(f"{task.name}: {error!r}")
        self.task = task
        self.error = error


class StepLimit(Exception):
    pass


@dataclass
class RunOutcome:
    error: Exception | None
    points: list = field(default_factory=list)


class Task:
    def __init__(self, sched, tid, name, fn, args, daemon):
        self.id, self.name, self.daemon = tid, name, daemon
        self.done = False
        self.irq_context = False
        self.ready = None           # a predicate while blocked
        self.reason = None
        self.error = None
        self.glet = greenlet(self._main, parent=sched.hub)
        self._fn, self._args = fn, args

    def _main(self):
        try:
            self._fn(*self._args)
        except BaseException as e:  # noqa: BLE001 - reported as TaskFailed
            self.error = e
        self.done = True


class FakeScheduler:
    def __init__(self, script=(), max_steps=10_000):
        self.hub = greenlet.getcurrent()
        self.tasks: list[Task] = []
        self.current: Task | None = None
        self.script = list(script)      # task names to pick first, then round robin
        self.max_steps = max_steps
        self.points: list[tuple] = []
        self._last = -1

    def spawn(self, name, fn, *args, daemon=False):
        t = Task(self, len(self.tasks), name, fn, args, daemon)
        self.tasks.append(t)
        return t

    def point(self, kind, a=None, b=None):
        self.points.append((self.current.name, kind, a))
        self.hub.switch()

    def block(self, reason, ready):
        me = self.current
        me.ready, me.reason = ready, reason
        self.hub.switch()
        me.ready = me.reason = None

    def _runnable(self):
        return [t for t in self.tasks if not t.done and (t.ready is None or t.ready())]

    def _pick(self, runnable):
        while self.script:
            name = self.script.pop(0)
            for t in runnable:
                if t.name == name:
                    return t
        later = [t for t in runnable if t.id > self._last]
        return (later or runnable)[0]

    def run(self):
        for _ in range(self.max_steps):
            if all(t.done or t.daemon for t in self.tasks):
                return RunOutcome(None, self.points)
            runnable = self._runnable()
            if not runnable:
                return RunOutcome(Deadlock({t.name: t.reason for t in self.tasks
                                            if not t.done}), self.points)
            t = self._pick(runnable)
            self._last = t.id
            self.current = t
            t.glet.switch()
            self.current = None
            if t.error is not None:
                return RunOutcome(TaskFailed(t, t.error), self.points)
        return RunOutcome(StepLimit(), self.points)


def make(script=(), raise_on_report=True):
    sched = FakeScheduler(script)
    return sched, HarnessPlatform(sched, Lockdep(raise_on_report=raise_on_report))


# --- locks and lockdep ------------------------------------------------------------

def test_a_real_ABBA_deadlock_is_explained_with_both_locks_and_tasks():
    sched, plat = make(raise_on_report=False)

    def xmit():
        with plat.lock("tx"):
            with plat.lock("vq"):
                pass

    def reap():
        with plat.lock("vq"):
            with plat.lock("tx"):
                pass

    sched.spawn("xmit", xmit)
    sched.spawn("reap", reap)
    out = sched.run()                    # round robin: each takes its first lock
    assert isinstance(out.error, Deadlock)
    assert set(out.error.blocked) == {"xmit", "reap"}
    text = plat.explain_deadlock(out.error)
    first = text.splitlines()[0]
    assert first == ("deadlock: xmit waits for 'vq' held by reap, "
                     "reap waits for 'tx' held by xmit")
    assert "xmit holds 'tx' since tests/test_platform.py:" in text
    assert "reap holds 'vq' since tests/test_platform.py:" in text
    assert [type(r) for r in plat.lockdep.reports] == [LockOrderInversion]


def test_ABBA_is_reported_by_lockdep_in_a_run_that_does_not_deadlock():
    sched, plat = make(script=["xmit"] * 6)   # xmit runs to the end first

    def xmit():
        with plat.lock("tx"):
            with plat.lock("vq"):
                pass

    def reap():
        with plat.lock("vq"):
            with plat.lock("tx"):
                pass

    sched.spawn("xmit", xmit)
    sched.spawn("reap", reap)
    out = sched.run()
    assert isinstance(out.error, TaskFailed)
    assert isinstance(out.error.error, LockOrderInversion)
    assert out.error.task.name == "reap"
    assert "taken by xmit at tests/test_platform.py:" in str(out.error.error)


def test_a_clean_nested_order_in_two_tasks_is_not_reported():
    sched, plat = make()

    def worker():
        for _ in range(2):
            with plat.lock("A"):
                with plat.lock("B"):
                    pass

    sched.spawn("w1", worker)
    sched.spawn("w2", worker)
    out = sched.run()
    assert out.error is None
    assert plat.lockdep.reports == []
    assert ("w2", "lock", "A") in out.points    # the tasks did contend


def test_taking_a_held_lock_again_in_a_task_is_AA():
    sched, plat = make()

    def twice():
        lk = plat.lock("tx")
        lk.acquire()
        lk.acquire()

    sched.spawn("xmit", twice)
    out = sched.run()
    assert isinstance(out.error.error, SelfDeadlock)


def test_an_unreported_AA_hangs_and_is_explained():
    sched, plat = make(raise_on_report=False)

    def twice():
        lk = plat.lock("tx")
        lk.acquire()
        lk.acquire()

    sched.spawn("xmit", twice)
    out = sched.run()
    assert isinstance(out.error, Deadlock)
    assert plat.explain_deadlock(out.error).splitlines()[0] == \
        "deadlock: xmit waits for 'tx' held by xmit"


def test_lock_operations_are_scheduling_points():
    sched, plat = make()

    def body():
        with plat.lock("A"):
            plat.notify_device()
            plat.interrupt()

    sched.spawn("t", body)
    assert sched.run().error is None
    assert sched.points == [("t", "lock", "A"), ("t", "notify", None),
                            ("t", "interrupt", None), ("t", "unlock", "A")]


def test_releasing_a_lock_held_by_another_task_is_refused():
    sched, plat = make(raise_on_report=False)
    sched.spawn("owner", lambda: plat.lock("A").acquire())
    sched.spawn("thief", lambda: plat.lock("A").release())
    out = sched.run()
    assert isinstance(out.error.error, HarnessLockError)


# --- the irq line -----------------------------------------------------------------

def irq_scenario(irqsave):
    """xmit holds 'vq' and raises an interrupt whose handler takes 'vq'."""
    sched, plat = make()
    log = []

    def callback():
        with plat.lock("vq"):
            log.append("cb")

    def xmit():
        lk = plat.lock("vq")
        lk.acquire(irqsave=irqsave)
        plat.interrupt()
        lk.release()
        sched.block("callback", lambda: log)   # end once the handler has run

    plat.start_irq_handler(callback)
    sched.spawn("xmit", xmit)
    return sched.run(), plat, log


def test_a_lock_of_the_irq_handler_held_with_irqs_on_is_irq_unsafe():
    out, plat, log = irq_scenario(irqsave=False)
    assert isinstance(out.error, TaskFailed)
    assert isinstance(out.error.error, IrqUnsafeLock)
    assert out.error.error.tasks == ("irq", "xmit")


def test_a_lock_of_the_irq_handler_taken_with_irqsave_is_not_reported():
    out, plat, log = irq_scenario(irqsave=True)
    assert out.error is None
    assert plat.lockdep.reports == []
    assert log == ["cb"] and plat.interrupts_delivered == 1


def test_disabled_interrupts_delay_the_handler():
    sched, plat = make()
    log = []

    def body():
        plat.local_irq_save()
        plat.interrupt()
        for _ in range(3):
            plat.notify_device()     # points: the handler could run here
        log.append("restore")
        plat.local_irq_restore()
        plat.notify_device()

    plat.start_irq_handler(lambda: log.append("cb"))
    sched.spawn("t", body)
    assert sched.run().error is None
    assert log == ["restore", "cb"]


def test_interrupts_raised_before_the_handler_runs_coalesce():
    sched, plat = make()
    calls = []

    def body():
        plat.local_irq_save()
        for _ in range(3):
            plat.interrupt()
        plat.local_irq_restore()
        plat.notify_device()

    plat.start_irq_handler(lambda: calls.append(1))
    sched.spawn("t", body)
    assert sched.run().error is None
    assert plat.counters() == {"kicks": 1, "interrupts_raised": 3,
                               "interrupts_delivered": 1}
    assert calls == [1]


def test_a_pending_interrupt_masked_forever_is_explained():
    sched, plat = make()

    def body():
        plat.local_irq_save()
        plat.interrupt()
        plat.wait_kick(0)            # nobody kicks: stuck with irqs off

    plat.start_irq_handler(lambda: None)
    sched.spawn("t", body)
    out = sched.run()
    assert isinstance(out.error, Deadlock)
    text = plat.explain_deadlock(out.error)
    assert "irq has an interrupt pending but interrupts are disabled by t at " \
           "tests/test_platform.py:" in text


# --- kicks and the context outside tasks --------------------------------------------

def test_wait_kick_blocks_until_a_kick_arrives():
    sched, plat = make()
    seen = []
    sched.spawn("dev", lambda: seen.append(plat.wait_kick(0)))
    sched.spawn("drv", plat.notify_device)
    assert sched.run().error is None
    assert seen == [1] and plat.notifies == 1


def test_outside_any_task_nothing_blocks_or_yields():
    sched, plat = make()
    with plat.lock("A"):
        plat.notify_device()
        plat.interrupt()
    plat.local_irq_save()
    plat.local_irq_restore()
    assert plat.wait_kick(5) == 1
    assert sched.points == [] and plat.interrupts == 1 and plat.irq_pending


def test_a_lock_held_by_a_task_cannot_be_taken_outside_tasks():
    sched, plat = make()
    sched.spawn("owner", lambda: plat.lock("A").acquire())
    assert sched.run().error is None
    with pytest.raises(HarnessLockError, match="owner holds it"):
        plat.lock("A").acquire()
