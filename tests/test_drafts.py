"""The seed's three drafts (vring/drafts), sequentially on the plain Platform.

Each draft delivers every buffer exactly once with intact bytes; draft I breaks
the completion order, draft II runs callbacks under its central lock (and
deadlocks with itself under NAPI), draft III is clean.
"""
import pytest
from hypothesis import given, strategies as st

from vring.drafts import (DRAFTS, Buffer, DraftConfig, Delivery, Workload, check_all,
                          completion_plan, data_intact, exactly_once, in_completion_order,
                          load, make_workload, run_sequential)
from vring.drafts import draft1, draft2, draft3
from vring.drafts.workload import IN, OUT
from vring.errors import InvalidRequest
from vring.features import F_EVENT_IDX, F_INDIRECT_DESC
from vring.memory import GuestMemory
from vring.platform import LockError, Platform


class RecordingPlatform(Platform):
    """A plain platform whose locks record the order they are taken in."""

    def __init__(self):
        super().__init__()
        self.held: list[str] = []
        self.edges: set[tuple[str, str]] = set()
        self._rec: dict[str, "RecordingPlatform._Lock"] = {}

    class _Lock:
        def __init__(self, plat, inner):
            self.plat, self.inner, self.name = plat, inner, inner.name

        def acquire(self, irqsave=False):
            self.inner.acquire(irqsave)
            self.plat.edges.update((h, self.name) for h in self.plat.held)
            self.plat.held.append(self.name)

        def release(self):
            self.inner.release()
            self.plat.held.remove(self.name)

        def __enter__(self):
            self.acquire()
            return self

        def __exit__(self, *exc):
            self.release()

    def lock(self, name):
        if name not in self._rec:
            self._rec[name] = self._Lock(self, super().lock(name))
        return self._rec[name]


def _by_direction(tokens, workload, way):
    d = {b.token: b.direction for b in workload.buffers}
    return [t for t in tokens if d[t] == way]


# --- every draft delivers -------------------------------------------------------------

@pytest.mark.parametrize("name", DRAFTS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_each_draft_delivers_every_buffer_exactly_once_with_intact_bytes(name, seed):
    wl = make_workload(16, seed)
    out = run_sequential(load(name), wl, completion_order="fifo")
    assert exactly_once(wl, out.delivered) is None
    assert data_intact(wl, out.delivered, out.received) is None
    assert sorted(out.order) == [b.token for b in wl.buffers]
    assert out.violations == []


@pytest.mark.parametrize("name", DRAFTS)
def test_each_draft_gives_back_all_buffer_memory(name):
    wl = make_workload(12, 5)
    mem = GuestMemory(1 << 16)
    run_sequential(load(name), wl, completion_order="lifo", mem=mem)
    fresh = GuestMemory(1 << 16)
    load(name).make(fresh, Platform(), DraftConfig())
    assert mem.allocated() == fresh.allocated()


@given(seed=st.integers(0, 2**16), n=st.integers(1, 24), slots=st.sampled_from([2, 4, 8]),
       budget=st.integers(1, 5), order=st.sampled_from(["fifo", "lifo", "latency"]))
def test_drafts_two_and_three_keep_every_check_under_any_completion_order(
        seed, n, slots, budget, order):
    wl = make_workload(n, seed)
    cfg = DraftConfig(slots=slots, budget=budget)
    for draft in (draft2, draft3):
        assert run_sequential(draft, wl, completion_order=order, cfg=cfg).violations == []
    out = run_sequential(draft1, wl, completion_order=order, cfg=cfg)
    assert exactly_once(wl, out.delivered) is None
    assert data_intact(wl, out.delivered, out.received) is None


# --- draft I: delivery is not in order --------------------------------------------------

@pytest.mark.parametrize("order", ["lifo", "latency"])
def test_draft1_delivers_in_slot_order_not_completion_order(order):
    wl = make_workload(8, 3, directions=(IN,))
    out = run_sequential(draft1, wl, completion_order=order)
    assert out.order == [1, 2, 3, 4, 5, 6, 7, 8]         # the slot scan
    assert out.completed != out.order
    v = in_completion_order(wl, out.completed, out.delivered)
    assert v is not None and v.oracle == "ordering"
    assert [x.oracle for x in out.violations] == ["ordering"]


def test_draft1_is_in_order_when_the_device_is():
    wl = make_workload(8, 3, directions=(IN,))
    assert run_sequential(draft1, wl, completion_order="fifo").violations == []


# --- draft II: callbacks under the central lock -----------------------------------------

@pytest.mark.parametrize("napi", [False, True])
def test_draft2_delivers_in_completion_order(napi):
    wl = make_workload(12, 4)
    out = run_sequential(draft2, wl, completion_order="lifo", cfg=DraftConfig(napi=napi))
    assert out.violations == []
    for way in (IN, OUT):
        assert _by_direction(out.order, wl, way) == _by_direction(out.completed, wl, way)


def _draft2_with_probe(napi):
    platform = Platform()
    q = draft2.make(GuestMemory(1 << 16), platform, DraftConfig(napi=napi))
    seen = []
    for attr in ("tx_done", "rx_done"):
        orig = getattr(q, attr)

        def probe(token, length, orig=orig, attr=attr):
            seen.append((attr, platform.lock("virtio").held))
            orig(token, length)
        setattr(q, attr, probe)
    return platform, q, seen


def test_draft2_callbacks_run_with_the_central_lock_held():
    platform, q, seen = _draft2_with_probe(napi=False)
    wl = make_workload(6, 0)
    for b in wl.buffers:
        assert q.submit(b)
    q.device_fetch()
    for b in wl.buffers:
        q.device_complete(b.token, b.payload if b.direction == IN else b"")
    assert not platform.lock("virtio").held
    q.interrupt()
    assert {a for a, _ in seen} == {"tx_done", "rx_done"}
    assert all(held for _, held in seen)
    assert not platform.lock("virtio").held


def test_draft2_takes_tx_and_virtio_locks_in_both_orders():
    """xmit: tx -> virtio; the output callback: virtio -> tx (lockdep's ABBA)."""
    platform = RecordingPlatform()
    wl = make_workload(6, 0, directions=(OUT,))
    run_sequential(draft2, wl, platform=platform)
    assert ("tx", "virtio") in platform.edges
    assert ("virtio", "tx") in platform.edges


def test_draft2_output_interrupt_during_napi_poll_self_deadlocks():
    """The poll holds the central lock with interrupts on; a TX completion
    interrupt runs the output callback dispatch, which takes it again."""
    platform = Platform()
    q = draft2.make(GuestMemory(1 << 16), platform, DraftConfig(napi=True))
    platform.on_interrupt = q.interrupt          # a CPU with interrupts enabled
    rx = Buffer(1, IN, 16, b"packet", 1)
    tx = Buffer(2, OUT, 4, b"ack!", 1)
    assert q.submit(rx) and q.submit(tx)
    q.device_fetch()
    q.device_complete(1, rx.payload)             # rx interrupt: NAPI scheduled
    assert q.napi_scheduled and not q.virtio.incb_enabled
    # The host finishes the TX buffer when the poll notifies it (lguest's
    # Launcher ran while the guest waited in the notify hypercall).
    platform.on_notify = lambda: q.device_complete(2)
    with pytest.raises(LockError, match="virtio"):
        q.napi_poll(4)


def test_draft3_same_sequence_is_clean():
    platform = Platform()
    q = draft3.make(GuestMemory(1 << 16), platform, DraftConfig())
    platform.on_interrupt = q.interrupt
    rx = Buffer(1, IN, 16, b"packet", 1)
    tx = Buffer(2, OUT, 4, b"ack!", 1)
    assert q.submit(rx) and q.submit(tx)
    q.device_fetch()
    q.device_complete(1, rx.payload)
    assert q.napi_scheduled
    platform.on_notify = lambda: q.device_complete(2) if 2 in q.device_pending() else None
    assert q.napi_poll(4) == 1
    q.device_complete(2)
    while q.tx_scheduled:
        q.tx_complete()
    assert [d.token for d in q.delivered] == [1, 2]


# --- draft III: the pull model ----------------------------------------------------------

@pytest.mark.parametrize("order", ["lifo", "latency", [5, 3, 1, 7, 2, 8, 4, 6]])
@pytest.mark.parametrize("features", [0, F_INDIRECT_DESC | F_EVENT_IDX])
def test_draft3_delivers_in_completion_order(order, features):
    wl = make_workload(8, 6)
    out = run_sequential(draft3, wl, completion_order=order,
                         cfg=DraftConfig(features=features, budget=2))
    assert out.violations == []
    for way in (IN, OUT):
        assert _by_direction(out.order, wl, way) == _by_direction(out.completed, wl, way)


def test_draft3_nests_no_locks_and_takes_none_in_the_interrupt():
    platform = RecordingPlatform()
    run_sequential(draft3, make_workload(16, 2), completion_order="lifo", platform=platform)
    assert platform.edges == set()
    q = draft3.make(GuestMemory(1 << 16), platform, DraftConfig())
    for name in draft3.LOCKS:
        with platform.lock(name):
            q.interrupt()       # a LockError if a callback took the lock


def test_draft3_napi_poll_polls_again_when_buffers_arrive_during_enable():
    """enable_cb's re-check: a buffer used after the last get_buf, before the
    callback is back on, is delivered by the same poll."""
    platform = Platform()
    q = draft3.make(GuestMemory(1 << 16), platform, DraftConfig())
    a, b = Buffer(1, IN, 8, b"first", 1), Buffer(2, IN, 8, b"second", 1)
    assert q.submit(a) and q.submit(b)
    q.device_fetch()
    q.device_complete(1, a.payload)
    q.interrupt()
    prepare = q.rx.enable_cb_prepare

    def late_prepare():
        opaque = prepare()
        if 2 in q.device_pending():
            q.device_complete(2, b.payload)     # lands between prepare and poll
        return opaque
    q.rx.enable_cb_prepare = late_prepare
    q.napi_poll(8)
    assert [d.token for d in q.delivered] == [1, 2]
    assert not q.napi_scheduled


def test_draft3_budget_keeps_napi_scheduled():
    platform = Platform()
    q = draft3.make(GuestMemory(1 << 16), platform, DraftConfig())
    bufs = [Buffer(t, IN, 4, b"abcd", 1) for t in (1, 2, 3)]
    for buf in bufs:
        assert q.submit(buf)
    q.device_fetch()
    for buf in bufs:
        q.device_complete(buf.token, buf.payload)
    irqs = platform.interrupts
    q.interrupt()
    # The callback turned rx callbacks off: more used buffers raise no interrupt.
    extra = Buffer(4, IN, 4, b"efgh", 1)
    assert q.submit(extra)
    q.device_fetch()
    q.device_complete(4, extra.payload)
    assert platform.interrupts == irqs
    assert q.napi_poll(2) == 2 and q.napi_scheduled
    assert q.napi_poll(2) == 2 and q.napi_scheduled
    assert q.napi_poll(2) == 0 and not q.napi_scheduled


# --- the workload and the checks ---------------------------------------------------------

def test_workload_is_a_function_of_its_seed():
    assert make_workload(10, 7) == make_workload(10, 7)
    assert make_workload(10, 7) != make_workload(10, 8)
    wl = make_workload(50, 1)
    assert all(len(b.payload) <= b.size for b in wl.buffers)
    assert all(b.size == len(b.payload) for b in wl.buffers if b.direction == OUT)
    with pytest.raises(InvalidRequest):
        make_workload(0)


def test_completion_plan_orders():
    wl = Workload(0, tuple(Buffer(t, IN, 1, b"x", lat) for t, lat in
                           [(1, 30), (2, 10), (3, 20), (4, 10)]))
    pending = (1, 2, 3, 4)
    assert completion_plan(pending, "fifo", wl) == [1, 2, 3, 4]
    assert completion_plan(pending, "lifo", wl) == [4, 3, 2, 1]
    assert completion_plan(pending, "latency", wl) == [2, 4, 3, 1]
    assert completion_plan(pending, [3, 1], wl) == [3, 1, 2, 4]
    with pytest.raises(InvalidRequest):
        completion_plan(pending, "random", wl)


_WL = Workload(0, (Buffer(1, IN, 4, b"ab", 1), Buffer(2, OUT, 2, b"cd", 1),
                   Buffer(3, IN, 4, b"ef", 1)))
_GOOD = [Delivery(1, IN, 2, b"ab"), Delivery(2, OUT, 0, b""), Delivery(3, IN, 2, b"ef")]
_RECEIVED = {2: b"cd"}


def test_checks_pass_a_clean_history():
    assert check_all(_WL, [1, 2, 3], _GOOD, _RECEIVED) == []


@pytest.mark.parametrize("delivered", [
    _GOOD + [_GOOD[0]],                                 # twice
    _GOOD[:2],                                          # one never delivered
    _GOOD + [Delivery(9, IN, 0, b"")],                  # never submitted
])
def test_exactly_once_catches_duplicates_losses_and_strangers(delivered):
    v = exactly_once(_WL, delivered)
    assert v is not None and v.oracle == "exactly-once"


def test_exactly_once_allows_a_prefix_before_quiescence():
    assert exactly_once(_WL, _GOOD[:2], complete=False) is None


def test_data_intact_catches_wrong_input_bytes_and_wrong_device_reads():
    bad_in = [Delivery(1, IN, 2, b"xx")] + _GOOD[1:]
    assert data_intact(_WL, bad_in, _RECEIVED).oracle == "data-integrity"
    short = [Delivery(1, IN, 1, b"a")] + _GOOD[1:]
    assert data_intact(_WL, short, _RECEIVED).oracle == "data-integrity"
    assert data_intact(_WL, _GOOD, {2: b"zz"}).oracle == "data-integrity"


def test_in_completion_order_catches_a_swap_within_a_direction_only():
    assert in_completion_order(_WL, [3, 2, 1], _GOOD).oracle == "ordering"
    # Across directions there is no order to keep.
    assert in_completion_order(_WL, [2, 1, 3], _GOOD) is None


def test_load_names_the_three_drafts_only():
    assert [load(n).__name__ for n in DRAFTS] == [f"vring.drafts.{n}" for n in DRAFTS]
    with pytest.raises(InvalidRequest):
        load("draft4")
