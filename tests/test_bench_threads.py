"""The real-threads baseline (harness/bench_threads.py) must not race on its own state."""
import threading
import time

from harness import bench_threads
from harness.bench_threads import ThreadWorld


def test_threads_asking_for_a_lock_at_once_share_one_lock(monkeypatch):
    """Two threads taking the same lock name first, at the same moment, get one
    lock; with a lock each nothing is exclusive and the baseline reports its own
    race as a ring bug (blk: "used id is not a head")."""
    made = bench_threads._Lock.__init__

    def slow_init(self, world, name):
        time.sleep(0.01)            # widen the window between "absent" and "stored"
        made(self, world, name)
    monkeypatch.setattr(bench_threads._Lock, "__init__", slow_init)
    w = ThreadWorld({"scenario": "blk"})
    got = []
    threads = [threading.Thread(target=lambda: got.append(w.lock("blk"))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 2 and got[0] is got[1]


def test_a_waiting_thread_whose_condition_holds_is_not_quiescent():
    """On a busy machine a woken thread can stay descheduled past IDLE_S; judging
    the run idle then would report a lost interrupt the ring never had."""
    w = ThreadWorld({"scenario": "blk"})
    stop = threading.Event()
    t = threading.Thread(target=stop.wait)
    w._threads.append((t, False))
    t.start()
    try:
        ready = [True]
        w.blocked[t.ident] = ("wait-interrupt done", lambda: ready[0])
        assert not w._all_blocked()
        ready[0] = False
        assert w._all_blocked()
    finally:
        stop.set()
        t.join()


def test_a_thread_that_just_took_the_lock_is_not_stuck_on_it():
    """Between acquiring and leaving its waiter entry a thread holds the lock it
    waited for; "held" must not read as "stuck", or a descheduled thread there
    is judged a deadlock."""
    w = ThreadWorld({"scenario": "blk"})
    lk = w.lock("tx")
    seen = []

    class Entries(dict):
        def pop(self, k, d=None):       # the waiter leaves its entry: judge it now
            if k in self:
                reason, ready = self[k]
                seen.append((reason, lk._lock.locked(), ready()))
            return dict.pop(self, k, d)
    w.blocked = Entries()
    lk.acquire()                        # the main thread holds it first
    t = threading.Thread(target=lambda: (lk.acquire(), lk.release()))
    t.start()
    time.sleep(0.05)                    # the waiter fails at least one timed acquire
    lk.release()
    t.join()
    assert seen == [("lock 'tx'", True, True)]


def test_a_thread_woken_while_the_waits_are_read_is_not_quiescence(monkeypatch):
    """The irq handler leaves its wait and clears irq_pending while the run
    reads the waits: its entry was read, its condition is false again, so it
    looks stuck; the move it made must cancel the idle verdict."""
    w = ThreadWorld({"scenario": "blk"})
    stop = threading.Event()
    t = threading.Thread(target=stop.wait)
    w._threads.append((t, False))
    judged = []
    monkeypatch.setattr(bench_threads, "IDLE_S", 0.0)
    monkeypatch.setattr(bench_threads, "RUN_TIMEOUT_S", 0.2)   # it never settles here
    monkeypatch.setattr(w, "_judge_idle", lambda: judged.append(1))
    real = w._all_blocked

    def woken_meanwhile():
        w.blocked[t.ident] = ("interrupt", lambda: False)
        out = real()        # read while it still waited ...
        w.moved()           # ... and it woke before the verdict
        stop.set()
        return out
    monkeypatch.setattr(w, "_all_blocked", woken_meanwhile)
    try:
        w.run()
    finally:
        stop.set()
    assert judged == []


def test_the_end_checks_wait_for_the_daemons_to_settle(monkeypatch):
    """Every driver task returned, but the device thread is still between its
    used-ring store and counting the push: the end checks must wait for it to
    block again, or the baseline reports a stranded buffer the ring never had."""
    w = ThreadWorld({"scenario": "blk"})
    settled = threading.Event()
    checked = []

    def device():                       # mid-work until `settled`, then waits
        settled.wait()
        w.wait("wait-kick blk", lambda: False)
    w.task("dev", device, daemon=True)
    w.task("driver", lambda: None)
    monkeypatch.setattr(w, "_end_checks", lambda: checked.append(settled.is_set()))
    threading.Timer(0.05, settled.set).start()
    w.run()
    assert checked == [True]
