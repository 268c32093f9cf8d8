"""One scheduled run: memory model + scheduler + platform + ring sides + scenario.

Rules:
* `run_once(params, source) -> RunReport` builds everything fresh (no state
  survives between runs), so the same params and schedule give the same trace
  in any process.  Ring sides come through `vring.contract.build` from the
  plug-in specs in params ("driver", "device"): the reference ring has no
  private door.
* Each queue gets its own `QueuePlatform`: a kick or an interrupt goes through
  the run's HarnessPlatform (one scheduling point, one shared irq line, the
  run's locks and lockdep) and is also counted per queue, so a device waits
  for kicks on ITS queue and a lost kick on one queue is not hidden by
  traffic on another.
* Memory ordering of the hand-offs the memory model cannot see: world locks
  (BarrierLock) are ACQUIRE/RELEASE, modelled as mb() after acquire and
  before release; waking from World.wait and entering the interrupt handler
  run mb() (eventfd / MSI / napi_schedule imply full barriers).  Without
  them the relaxed model reports lost interrupts no real machine allows.
* params["points"] (memmodel.POINTS) says which choices the memory model
  offers; a run without it offers all of them, as every run did before it
  existed, so older repro files replay as recorded.  The schedule fuzz target
  sets "effective".
* Every store goes to every queue's SpecMonitor with the storing task's side
  ("driver" or "device", fixed when the task is spawned).
* How a run ends decides the verdict:
    - a task raised: the oracle it broke (finding_for), "crash" otherwise;
    - every task blocked: if all wait for work ("wait-kick", "wait-interrupt",
      the irq handler's "interrupt") and no interrupt is pending, that is
      quiescence: liveness names what is stranded (lost-kick /
      lost-interrupt), else the run is clean; a task waiting for a lock, or
      an interrupt pending but masked forever, is a "deadlock";
    - all non-daemon tasks returned: end checks (ledgers empty, free count).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field

from vring.contract import build, setup_queue
from vring.features import F_IN_ORDER, parse_features
from vring.layout import SplitLayout

from . import oracles
from .lockdep import Lockdep
from .memmodel import DEFAULT_POINTS, make_memory
from .nativemem import memory_for
from .platform import HarnessPlatform
from .result import Finding
from .scenarios import get as get_scenario
from .sched.replay import ReplayDivergence
from .sched.runtime import Abandoned, Deadlock, Scheduler, StepLimit, TaskFailed

#: Parameters every scenario accepts, with their defaults.
BASE_PARAMS = {"scenario": "net", "size": 8, "features": "", "memory_model": "sc",
               "driver": "reference", "device": "reference", "max_steps": 20000}

#: Block reasons that mean "waiting for work", not for a lock.
QUIESCENT = ("wait-kick", "wait-interrupt", "interrupt", "kick")


def resolve_params(params: dict) -> dict:
    """Base defaults, then the scenario's, then what the caller gave."""
    name = params.get("scenario", BASE_PARAMS["scenario"])
    out = dict(BASE_PARAMS)
    out.update(get_scenario(name).defaults)
    out.update(params)
    return out


class QueuePlatform:
    """A queue's view of the run's platform: per-queue kick and irq counters."""

    def __init__(self, world: "World", name: str):
        self.world = world
        self.base = world.platform
        self.name = name
        self.kicks = 0
        self.interrupts = 0

    def notify_device(self) -> None:
        self.base.notify_device()          # the scheduling point, then count
        self.kicks += 1

    def interrupt(self) -> None:
        self.base.interrupt()
        self.interrupts += 1

    def lock(self, name: str):
        return self.world.lock(name)

    def wait_kick(self, seen: int) -> int:
        """Device side: block until this queue got more than `seen` kicks."""
        self.world.wait(f"wait-kick {self.name}", lambda: self.kicks > seen)
        return self.kicks


class BarrierLock:
    """A platform lock that also orders memory: spin_lock is an ACQUIRE and
    spin_unlock a RELEASE (LKMM), so a task that takes the lock sees what the
    previous holder stored.  Modelled with mb() after acquire and before
    release (stronger than needed, never weaker)."""

    def __init__(self, lock, mem):
        self._lock = lock
        self._mem = mem
        self.name = lock.name

    def acquire(self, irqsave: bool = False) -> None:
        self._lock.acquire(irqsave)
        self._mem.mb()

    def release(self) -> None:
        self._mem.mb()
        self._lock.release()

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


class LockingPlatform:
    """The run's platform with BarrierLocks (for code given the platform itself,
    such as the drafts)."""

    def __init__(self, world: "World"):
        self._world = world

    def lock(self, name: str):
        return self._world.lock(name)

    def __getattr__(self, attr):
        return getattr(self._world.platform, attr)


class Queue:
    """One virtqueue of the run with its oracles; scenario tasks use its helpers."""

    def __init__(self, world: "World", name: str, size: int, features: int):
        self.world = world
        self.name = name
        mem = world.mem
        self.cfg = cfg = setup_queue(mem, size, features)
        self.size = size
        self.layout = _layout(cfg.size, cfg.desc, cfg.avail, cfg.used)
        self.platform = QueuePlatform(world, name)
        p = world.params
        self.drv = build(p["driver"], "driver", mem, cfg, self.platform)
        self.dev = build(p["device"], "device", mem, cfg, self.platform)
        self.in_order = bool(features & F_IN_ORDER)
        self.ledger = oracles.Ledger(name)
        self.progress = oracles.Progress(name)
        self.order = oracles.OrderingOracle(name)
        self.monitor = oracles.SpecMonitor(self.layout, in_order=self.in_order)
        self._token_at: dict[int, object] = {}   # first buffer address -> token

    # driver side
    def add(self, out, in_, token) -> None:
        """add_sgs plus bookkeeping; QueueFull propagates to the caller."""
        self.drv.add_sgs(out, in_, token)
        self.ledger.add(token, sum(ln for _, ln in in_))
        self.progress.added += 1
        self._token_at[(out or in_)[0][0]] = token
        if self.in_order:
            self.order.expect(token)     # 2.7.9: used in the order made available

    def get(self):
        """get_buf plus the exactly-once, length and ordering oracles."""
        got = self.drv.get_buf()
        if got is not None:
            token, written = got
            self.ledger.got(token, written)
            self.order.observe(token)
            self.progress.delivered += 1
        return got

    # device side
    def pop(self):
        chain = self.dev.pop()
        if chain is not None:
            self.progress.popped += 1
        return chain

    def push(self, chain, written: int) -> None:
        if not self.in_order:
            # Without IN_ORDER, delivery must follow the used ring: the order
            # this (single) device task completed buffers in.
            first = (chain.readable or chain.writable)[0][0]
            if first in self._token_at:
                self.order.expect(self._token_at[first])
        self.dev.push(chain.head, written)
        self.progress.pushed += 1
        if self.dev.needs_interrupt():
            self.platform.interrupt()


@dataclass
class RunReport:
    """What one run did and what, if anything, it found."""

    params: dict
    finding: Finding | None
    steps: int = 0
    schedule: object = None
    events: list = field(default_factory=list)
    task_names: dict = field(default_factory=dict)
    layouts: dict = field(default_factory=dict)
    counters: dict = field(default_factory=dict)
    failing_step: int | None = None
    error: BaseException | None = None    # the scheduler's raw outcome error, if any

    @property
    def found(self) -> bool:
        return self.finding is not None

    @property
    def layout(self):
        """Names ring fields of every queue, for timeline.render_text/render_svg."""
        from .timeline import RingNamer
        return RingNamer(self.layouts)


class World:
    """Everything one run needs; scenarios build on it (see scenarios/__init__)."""

    def __init__(self, params: dict, sched, mem, platform: HarnessPlatform):
        self.params = params
        self.sched = sched
        self.mem = mem
        self.platform = platform
        self.queues: dict[str, Queue] = {}
        self._monitors: list = []         # every queue's SpecMonitor (on_store)
        self.side: dict = {}              # task id -> "driver" | "device"
        self.task_names: dict = {}        # task id -> name
        self._irq_callbacks: list = []
        self._locks: dict[str, BarrierLock] = {}
        self.state: dict = {}             # scenario-private, per run
        self.end_checks: list = []        # scenario checks at the end / quiescence

    def queue(self, name: str, size: int | None = None, features: int | None = None) -> Queue:
        p = self.params
        feats = _features(p["features"]) if features is None else features
        q = Queue(self, name, size or p["size"], feats)
        self.queues[name] = q
        self._monitors.append(q.monitor)
        return q

    def task(self, name: str, fn, *args, side: str = "driver", daemon: bool = False):
        t = self.sched.spawn(name, fn, *args, daemon=daemon)
        self.side[t.id] = side
        self.task_names[t.id] = name
        return t

    def on_interrupt(self, callback) -> None:
        """Run callback in interrupt context on every delivered interrupt (one
        shared line: each callback must cope with spurious calls, 2.7.10)."""
        if not self._irq_callbacks:
            t = self.platform.start_irq_handler(self._irq)
            self.side[t.id] = "driver"
            self.task_names[t.id] = "irq"
        self._irq_callbacks.append(callback)

    def lock(self, name: str) -> BarrierLock:
        lk = self._locks.get(name)
        if lk is None:
            lk = self._locks[name] = BarrierLock(self.platform.lock(name), self.mem)
        return lk

    def _irq(self) -> None:
        # Taking an interrupt orders memory for the handler (MSI after the used
        # idx store by PCI ordering; eventfd wake-ups imply full barriers).
        self.mem.mb()
        for cb in self._irq_callbacks:
            cb()

    def wait(self, reason: str, ready) -> None:
        """Block the current task until ready(); reason says what it waits for."""
        if not ready():
            self.sched.block(reason, ready)
            # The wake-up (eventfd, napi_schedule's test_and_set_bit) is a full
            # barrier: the woken task sees what its waker stored before it.
            self.mem.mb()

    def buffer(self, size: int) -> int:
        return self.mem.alloc(size, 16)

    # store events from the memory model
    def on_store(self, task_id, addr: int, data, width: int | None = None) -> None:
        side = self.side.get(task_id, "driver")
        for m in self._monitors:
            m.store(side, addr, data, width)


def watch_stores(mem, on_store) -> None:
    """Route every store of `mem` (a memory model) to on_store(task_id, addr,
    data, width) after it is issued (its scheduling point taken), in the
    storing task's program order (memmodel.py, store_listener).  Native
    bridges that report C stores read the same attribute."""
    mem.store_listener = on_store


#: parse_features is pure; every run (and queue) parses the same few strings.
_features = functools.lru_cache(maxsize=64)(parse_features)
#: A SplitLayout is a frozen value, and runs of one shape place rings alike.
_layout = functools.lru_cache(maxsize=256)(SplitLayout)


#: The world's own wrappers: trace sites name the scenario or ring code instead.
_PLUMBING = (BarrierLock.acquire, BarrierLock.release, BarrierLock.__enter__,
             BarrierLock.__exit__, World.wait, World._irq, QueuePlatform.wait_kick,
             QueuePlatform.notify_device, QueuePlatform.interrupt)


def _memory_size(p: dict) -> int:
    return max(1 << 16, 1 << (64 * int(p["size"])).bit_length())


def run_once(params: dict, source, *, trace: bool = True, workers=None,
             record: bool = True) -> RunReport:
    """Build and run one schedule of a scenario; return what it found.
    `workers`: a sched.runtime.Workers the caller keeps across its runs;
    record=False: the report's schedule is empty (Scheduler's `record`)."""
    p = resolve_params(params)
    sched = Scheduler(source, max_steps=p["max_steps"], trace=trace, workers=workers,
                      record=record)
    # Guest memory sized to the run (a fresh 1 MiB zero-fill per run cost more
    # than the run itself): room for the rings and the scenario's buffers.
    # Over memory C can address when a side needs it (harness/nativemem.py).
    points = p.get("points", DEFAULT_POINTS)
    mem = memory_for(p["driver"], p["device"], size=_memory_size(p),
                     factory=lambda **kw: make_memory(p["memory_model"], sched,
                                                      points=points, **kw))
    platform = HarnessPlatform(sched, Lockdep())
    world = World(p, sched, mem, platform)
    sched.roots = (world,)
    watch_stores(mem, world.on_store)
    if trace:                   # plumbing only matters to trace sites
        sched.mark_plumbing(*_PLUMBING)
    get_scenario(p["scenario"]).build(world)
    outcome = sched.run()
    err = outcome.error
    failing_task = None
    if isinstance(err, TaskFailed) and isinstance(err.error, ReplayDivergence):
        err = err.error
    if err is None:
        finding = _end_checks(world)
    elif isinstance(err, (Abandoned, ReplayDivergence)):
        # Not a verdict on the ring: explore stopped a redundant run, or a
        # replayed schedule does not fit; the caller reads report.error.
        finding = None
    elif isinstance(err, Deadlock):
        finding = _judge_blocked(world, err)
    elif isinstance(err, StepLimit):
        finding = Finding("step-limit", f"no end after {outcome.steps} steps (livelock?)")
    elif isinstance(err, TaskFailed):
        failing_task = err.task_id
        finding = oracles.finding_for(err.error)
    else:
        finding = oracles.finding_for(err)
    events = outcome.events if trace else []
    names = dict(outcome.task_names)
    names.update(world.task_names)
    return RunReport(params=p, finding=finding, steps=outcome.steps, schedule=outcome.schedule,
                     events=events, task_names=names,
                     layouts={n: q.layout for n, q in world.queues.items()},
                     counters=platform.counters(),
                     failing_step=_failing_step(events, failing_task) if finding else None,
                     error=err)


def _failing_step(events, task_id) -> int | None:
    """The failing task's last step (the operation that broke the rule), else the last."""
    for ev in reversed(events):
        if task_id is None or ev[1] == task_id:
            return ev[0]
    return None


def _end_checks(world: World) -> Finding | None:
    try:
        for q in world.queues.values():
            oracles.check_liveness(q.progress)
            oracles.check_free_count(q.drv.num_free, q.size, len(q.ledger), q.name)
        for check in world.end_checks:
            check()
    except oracles.OracleFailure as e:
        return oracles.finding_for(e)
    return None


def _judge_blocked(world: World, deadlock) -> Finding | None:
    blocked = dict(getattr(deadlock, "blocked", {}) or {})
    waiting_for_work = all(str(r).startswith(QUIESCENT) for r in blocked.values())
    if not waiting_for_work or world.platform.irq_pending:
        return Finding("deadlock", world.platform.explain_deadlock(deadlock))
    # Quiescence: nothing can move.  Whatever is stranded names the bug.
    found = _end_checks(world)
    if found is not None:
        return found
    return Finding("deadlock", "quiescent with nothing stranded, yet tasks wait: "
                   + "; ".join(f"{t}: {r}" for t, r in blocked.items()))


__all__ = ["run_once", "resolve_params", "RunReport", "World", "Queue", "QueuePlatform",
           "BASE_PARAMS"]
