"""`vringfuzz bench threads`: PCT versus uncontrolled real threads, time to detect.

The status quo a Python user would write: the same scenario (harness/scenarios)
on `threading.Thread`s, `sys.setswitchinterval` as low as it goes, plain
sequentially consistent guest memory (`vring.GuestMemory`: barriers are
no-ops and the GIL makes every access atomic), no lockdep, no irq masking, and
a run judged the way a stress test judges it:

* a task raised: the oracle it broke (`oracles.finding_for`);
* every driver task returned and every daemon waits for work: the end
  checks (free count, liveness);
* nothing moved for IDLE_S while every live task waits for work: liveness
  names what is stranded (lost kick / lost interrupt), else clean; a task
  stuck on a lock that long is a "deadlock";
* RUN_TIMEOUT_S passed: "hang".

Rules: threads are not replayable, so a thread run has no schedule and its
seed only labels the repeat; timing is wall clock by nature (this is a
benchmark, never a test).  `ThreadWorld` duck-types the parts of
harness.world.World a scenario uses, and reuses its Queue (ring sides through
the plug-in contract, the same oracles), so the ring code is the same code.
`bench_threads(seeds, budget) -> (data, text)` runs both engines on the
planted bugs of THREAD_BUGS; `threads_check(bug, budget)` is the per-bug
baseline harness/bench_bugs.py calls.
"""
from __future__ import annotations

import statistics
import sys
import threading
import time

from vring.memory import GuestMemory

from . import oracles
from .result import Finding
from .world import Queue, resolve_params

RUN_TIMEOUT_S = 3.0
IDLE_S = 0.05
#: One missing barrier (needs TSO: x86 already shows it) and one callback race.
THREAD_BUGS = ("kick-prepare-wmb-not-mb", "napi-schedule-before-disable-cb")


class _Stop(BaseException):
    """Unwinds a thread when its run is over (not an Exception: never a finding)."""


class _Current:
    __slots__ = ("id",)

    def __init__(self, ident):
        self.id = ident


class _Sched:
    """What scenarios read of the scheduler: the current task's id."""

    @property
    def current(self):
        return _Current(threading.get_ident())


class _Lock:
    """A plain lock; irqsave means nothing to real threads (no irq masking)."""

    def __init__(self, world: "ThreadWorld", name: str):
        self.world, self.name = world, name
        self._lock = threading.Lock()
        self.owner = None       # set after acquire, cleared before release

    def acquire(self, irqsave: bool = False) -> None:
        w = self.world
        me = threading.get_ident()
        # A waiter is stuck only while someone else visibly holds the lock: a
        # thread that has just acquired it (owner not yet set) must not look
        # blocked to the idle judgement, or the baseline calls its own
        # descheduling a deadlock or a stranded buffer.
        while not self._lock.acquire(timeout=0.01):
            w.blocked[me] = (f"lock {self.name!r}",
                             lambda: self.owner is None or self.owner == me)
            if w.stop:
                raise _Stop()
        self.owner = me
        w.blocked.pop(me, None)
        w.moved()

    def release(self) -> None:
        self.owner = None
        self._lock.release()
        self.world.moved()

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


class _Platform:
    def __init__(self, world: "ThreadWorld"):
        self.world = world
        self.irq_pending = False
        self.kicks = 0

    def notify_device(self) -> None:
        self.kicks += 1
        self.world.moved()

    def interrupt(self) -> None:
        self.irq_pending = True
        self.world.moved()

    def lock(self, name: str):
        return self.world.lock(name)


class ThreadWorld:
    """A scenario's world on real threads (see the module rules)."""

    def __init__(self, params: dict):
        self.params = params
        self.mem = GuestMemory(1 << 20, 0x1000)
        self.sched = _Sched()
        self.platform = _Platform(self)
        self.queues: dict[str, Queue] = {}
        self.state: dict = {}
        self.end_checks: list = []
        self.task_names: dict = {}
        self.side: dict = {}
        self.blocked: dict = {}          # thread ident -> (what it waits for, ready())
        self.stop = False
        self.errors: list = []
        self.last_move = time.monotonic()
        self._threads: list = []
        self._locks: dict[str, _Lock] = {}
        self._locks_lock = threading.Lock()
        self._irq_callbacks: list = []

    def moved(self) -> None:
        self.last_move = time.monotonic()

    # the World surface scenarios use
    def queue(self, name: str, size: int | None = None, features: int | None = None) -> Queue:
        from vring.features import parse_features
        p = self.params
        q = Queue(self, name, size or p["size"],
                  parse_features(p["features"]) if features is None else features)
        self.queues[name] = q
        return q

    def task(self, name: str, fn, *args, side: str = "driver", daemon: bool = False):
        def body():
            try:
                fn(*args)
            except _Stop:
                pass
            except BaseException as e:  # noqa: BLE001  (the run's verdict)
                self.errors.append(e)
                self.stop = True
            finally:
                self.moved()
        t = threading.Thread(target=body, name=name, daemon=True)
        self._threads.append((t, daemon))
        self.side[name] = side
        return t

    def on_interrupt(self, callback) -> None:
        if not self._irq_callbacks:
            self.task("irq", self._irq, daemon=True)
        self._irq_callbacks.append(callback)

    def _irq(self) -> None:
        while True:
            self.wait("interrupt", lambda: self.platform.irq_pending)
            self.platform.irq_pending = False
            for cb in self._irq_callbacks:
                cb()

    def lock(self, name: str) -> _Lock:
        # Made under a lock: two threads asking first at once must not each get
        # their own (then nothing is mutually exclusive, and the baseline
        # reports its own race as a ring bug).
        with self._locks_lock:
            lk = self._locks.get(name)
            if lk is None:
                lk = self._locks[name] = _Lock(self, name)
            return lk

    def wait(self, reason: str, ready) -> None:
        me = threading.get_ident()
        while not ready():
            self.blocked[me] = (reason, ready)
            if self.stop:
                raise _Stop()
            time.sleep(0.0002)
        self.blocked.pop(me, None)
        self.moved()

    def buffer(self, size: int) -> int:
        return self.mem.alloc(size, 16)

    # running
    def run(self) -> Finding | None:
        for t, _ in self._threads:
            self.task_names[t.ident] = t.name
        for t, _ in self._threads:
            t.start()
            self.task_names[t.ident] = t.name
        start = time.monotonic()
        verdict = None
        while True:
            time.sleep(0.002)
            if self.errors:
                verdict = oracles.finding_for(self.errors[0])
                break
            workers = [t for t, daemon in self._threads if not daemon]
            mark = self.last_move
            if all(not t.is_alive() for t in workers):
                # Let the daemons settle first: a driver can see its buffer back
                # (used idx, the ledger) while the device or irq thread has not
                # yet counted it, and on real threads nothing makes the ring
                # operation and its bookkeeping one step.
                if self._all_blocked() and self.last_move == mark:
                    verdict = self._end_checks()
                    break
            # Judge idle only if nothing moved while the waits were read: a thread
            # woken in between (its entry still read, its condition already used
            # up, e.g. the irq handler clearing irq_pending) would look stuck.
            elif (time.monotonic() - mark > IDLE_S and self._all_blocked()
                    and self.last_move == mark):
                verdict = self._judge_idle()
                break
            if time.monotonic() - start > RUN_TIMEOUT_S:
                verdict = Finding("hang", f"no end after {RUN_TIMEOUT_S}s")
                break
        self.stop = True
        for t, _ in self._threads:
            t.join(1.0)
        return verdict

    def _all_blocked(self) -> bool:
        live = [t for t, _ in self._threads if t.is_alive()]
        waits = dict(self.blocked)
        # A thread marked waiting whose condition already holds was only slow to
        # run (descheduled on a busy machine): that is not quiescence.
        return (all(t.ident in waits and not waits[t.ident][1]() for t in live)
                and not self.platform.irq_pending)

    def _judge_idle(self) -> Finding | None:
        locks = [r for r, _ in self.blocked.values() if str(r).startswith("lock")]
        if locks:
            return Finding("deadlock", f"threads stuck on {', '.join(sorted(set(locks)))}")
        return self._end_checks()

    def _end_checks(self) -> Finding | None:
        try:
            for q in self.queues.values():
                oracles.check_liveness(q.progress)
                oracles.check_free_count(q.drv.num_free, q.size, len(q.ledger), q.name)
            for check in self.end_checks:
                check()
        except oracles.OracleFailure as e:
            return oracles.finding_for(e)
        return None


def threads_run_once(params: dict) -> Finding | None:
    """One uncontrolled run of a scenario on real threads."""
    from .scenarios import get as get_scenario
    p = resolve_params(params)
    w = ThreadWorld(p)
    get_scenario(p["scenario"]).build(w)
    return w.run()


def threads_check(params: dict, budget: float) -> dict:
    """Repeat uncontrolled runs until a finding or the budget is spent."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)      # as low as CPython goes: switch as often as it can
    start = time.monotonic()
    runs, found = 0, None
    try:
        while time.monotonic() - start < budget:
            runs += 1
            found = threads_run_once(params)
            if found is not None:
                break
    finally:
        sys.setswitchinterval(old)
    return {"found": found is not None, "oracle": found.oracle if found else None,
            "message": found.message if found else None, "runs": runs,
            "seconds": round(time.monotonic() - start, 3)}


def _pct(bug: str, seed: int, budget: float) -> dict:
    from .bench_bugs import run_engine
    return run_engine("pct", bug, seed, budget)


def bench_threads(seeds: int = 3, budget: float = 20.0):
    """PCT and real threads on each bug of THREAD_BUGS, seeds 0..seeds-1."""
    from . import bugs
    from .engines.scheduled import params_for
    from types import SimpleNamespace
    data = {"budget": budget, "seeds": seeds, "bugs": {}}
    for name in THREAD_BUGS:
        params = params_for(SimpleNamespace(bug=name))
        params["memory_model"] = "sc"    # threads run on plain memory; recorded as such
        rows = {"pct": [_pct(name, s, budget) for s in range(seeds)],
                "threads": [threads_check(params, budget) for _ in range(seeds)]}
        data["bugs"][name] = {"memory_model_pct": bugs.get(name).memory_model, **rows}
    return data, format_threads(data)


def summarize(runs: list[dict]) -> dict:
    hit = [r["seconds"] for r in runs if r["found"]]
    return {"detected": f"{len(hit)}/{len(runs)}",
            "median_s": round(statistics.median(hit), 3) if hit else None,
            "worst_s": round(max(hit), 3) if hit else None,
            "runs": sum(r["runs"] for r in runs),
            "oracles": sorted({r["oracle"] for r in runs if r["oracle"]})}


def format_threads(data) -> str:
    if isinstance(data, tuple):          # (data, text) from bench_threads
        return data[1]
    lines = [f"budget {data['budget']}s per run, seeds 0..{data['seeds'] - 1}",
             f"{'bug':<34} {'engine':<8} {'detected':>8} {'median s':>9} {'worst s':>8} "
             f"{'runs':>7}  oracle"]
    for name, rows in data["bugs"].items():
        for eng in ("pct", "threads"):
            s = summarize(rows[eng])
            lines.append(f"{name:<34} {eng:<8} {s['detected']:>8} {_fmt(s['median_s']):>9} "
                         f"{_fmt(s['worst_s']):>8} {s['runs']:>7}  {', '.join(s['oracles'])}")
    return "\n".join(lines)


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.2f}"


__all__ = ["ThreadWorld", "threads_run_once", "threads_check", "bench_threads",
           "format_threads", "summarize"]
