"""Memory models: the classic litmus tests, and a lost kick on the real ring.

Each litmus test explores every schedule (no preemption bound) and collects
the outcomes it can reach.
"""
import pytest

from harness.memmodel import make_memory
from harness.sched import RandomSource, Scheduler, explore
from vring import Platform, setup_queue
from vring.features import VRING_USED_F_NO_NOTIFY, need_event
from vring.split.device import SplitDevice
from vring.split.driver import SplitDriver

X, Y = 0x1000, 0x1040


def _reachable(model, spawn, result):
    """Every outcome `result(r)` over all schedules of the tasks `spawn` makes."""
    seen = set()

    def make_run(src):
        s = Scheduler(src, trace=False)
        m = make_memory(model, s, size=4096)
        r = {}
        spawn(s, m, r)
        out = s.run()
        if out.error is None:
            seen.add(result(r))
        return out
    rep = explore(make_run, preemption_bound=None, por=True)
    assert rep.exhausted and rep.failure is None
    return seen


def _sb(fence):
    def spawn(s, m, r):
        def t(me, mine, other):
            m.write32(mine, 1)
            if fence:
                m.mb()
            r[me] = m.read32(other)
        s.spawn("t0", t, 0, X, Y)
        s.spawn("t1", t, 1, Y, X)
    return spawn


def _mp(wmb, rmb):
    def spawn(s, m, r):
        def writer():
            m.write32(X, 1)             # data
            if wmb:
                m.wmb()
            m.write32(Y, 1)             # flag
        def reader():
            r["flag"] = m.read32(Y)
            if rmb:
                m.rmb()
            r["data"] = m.read32(X)
        s.spawn("writer", writer)
        s.spawn("reader", reader)
    return spawn


SB = lambda r: (r[0], r[1])                         # noqa: E731
MP_BAD = (1, 0)                                     # flag seen, data old


@pytest.mark.parametrize("model", ["tso", "relaxed"])
def test_SB_both_threads_read_zero_is_reachable_without_mb(model):
    assert (0, 0) in _reachable(model, _sb(False), SB)


@pytest.mark.parametrize("model", ["tso", "relaxed"])
def test_SB_with_mb_in_both_threads_forbids_both_zero(model):
    seen = _reachable(model, _sb(True), SB)
    assert (0, 0) not in seen and {(0, 1), (1, 0), (1, 1)} <= seen


def test_SB_is_never_reachable_under_sc():
    assert (0, 0) not in _reachable("sc", _sb(False), SB)


def test_MP_flag_seen_data_old_is_reachable_under_relaxed():
    assert MP_BAD in _reachable("relaxed", _mp(False, False), lambda r: (r["flag"], r["data"]))


@pytest.mark.parametrize("model", ["sc", "tso"])
def test_MP_is_not_reachable_under_sc_or_tso(model):
    assert MP_BAD not in _reachable(model, _mp(False, False), lambda r: (r["flag"], r["data"]))


def test_MP_with_wmb_and_rmb_is_forbidden_under_relaxed():
    seen = _reachable("relaxed", _mp(True, True), lambda r: (r["flag"], r["data"]))
    assert MP_BAD not in seen and (1, 1) in seen


@pytest.mark.parametrize("wmb,rmb", [(True, False), (False, True)])
def test_MP_with_only_one_barrier_is_still_reachable_under_relaxed(wmb, rmb):
    assert MP_BAD in _reachable("relaxed", _mp(wmb, rmb), lambda r: (r["flag"], r["data"]))


@pytest.mark.parametrize("model", ["tso", "relaxed"])
def test_a_task_always_sees_its_own_latest_store(model):
    def spawn(s, m, r):
        def t():
            m.write16(X, 1)
            m.write16(X, 2)
            r["own"] = m.read16(X)
        s.spawn("t", t)
        s.spawn("other", lambda: m.write16(X, 9))
    assert {own for own in _reachable(model, spawn, lambda r: r["own"])} <= {2, 9}


@pytest.mark.parametrize("model", ["sc", "tso", "relaxed"])
def test_buffered_stores_drain_at_the_end_of_the_run(model):
    s = Scheduler(RandomSource(0))
    m = make_memory(model, s, size=4096)
    m.write32(Y, 5)                         # outside any task: straight to memory
    assert m.read32(Y) == 5 and s.steps == 0
    s.spawn("t", lambda: [m.write32(X + 4 * i, i + 1) for i in range(4)])
    out = s.run()
    assert out.error is None
    assert [m.read32(X + 4 * i) for i in range(4)] == [1, 2, 3, 4]


# -- the real ring: kick_prepare without its mb() -------------------------------------

class NoMbDriver(SplitDriver):
    """The reference driver with the mb() of kick_prepare deleted (the shape
    Linux fixed in a72caae21803); the rest is inherited unchanged."""

    def kick_prepare(self):
        new = self.avail_idx_shadow
        old = (new - self.num_added) & 0xFFFF
        self.num_added = 0
        if self.event:
            return need_event(self.mem.read16(self._avail_event), new, old)
        return not (self.mem.read16(self.layout.used_flags) & VRING_USED_F_NO_NOTIFY)


class LostKick(Exception):
    """A buffer is available, the device went to sleep, and nobody kicked it."""


def _kick_run(model, driver_cls):
    def make_run(src):
        s = Scheduler(src)
        mem = make_memory(model, s, size=1 << 14)
        plat = Platform()
        cfg = setup_queue(mem, 4, 0)
        drv, dev = driver_cls(mem, cfg, plat), SplitDevice(mem, cfg, plat)
        buf = mem.alloc(64)
        dev.disable_notify()                # the device is busy polling: no kicks
        seen = {}

        def driver():
            drv.add_sgs([(buf, 16)], [], "req")
            drv.kick()

        def device():
            seen["more"] = dev.enable_notify()      # about to sleep: the re-check
        s.spawn("driver", driver)
        s.spawn("device", device)
        out = s.run()
        if out.error is None and plat.notifies == 0 and not seen["more"]:
            out.error = LostKick("buffer available, device asleep, no kick")
        return out
    return make_run


def test_kick_prepare_without_mb_misses_a_kick_against_enable_notify_under_tso():
    rep = explore(_kick_run("tso", NoMbDriver), preemption_bound=2)
    assert isinstance(rep.failure.error, LostKick)


def test_kick_prepare_with_mb_never_misses_the_kick_under_tso():
    rep = explore(_kick_run("tso", SplitDriver), preemption_bound=2)
    assert rep.exhausted and rep.failure is None


def test_kick_prepare_without_mb_cannot_miss_under_sc():
    rep = explore(_kick_run("sc", NoMbDriver), preemption_bound=None)
    assert rep.exhausted and rep.failure is None
