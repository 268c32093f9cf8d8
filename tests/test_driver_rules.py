"""The driver side against VIRTIO 1.2 2.7: notification suppression, callbacks,
indirect, IN_ORDER, QueueFull, teardown, and hardening against a bad device.

Hardening tests follow one shape: a device writes one bad used entry; get_buf
must raise that DeviceViolation leaf and mark the queue broken; after that it
never returns a token (even for a valid entry), add_sgs raises QueueBroken,
and the free list stays exactly what it was.
"""
from __future__ import annotations

import pytest

import vring
from vring import errors as E
from vring.features import (F_EVENT_IDX, F_IN_ORDER, F_INDIRECT_DESC, F_VERSION_1,
                            VRING_AVAIL_F_NO_INTERRUPT, VRING_USED_F_NO_NOTIFY, need_event)
from vring.layout import SplitLayout


class Q:
    """One queue, both reference sides, and helpers to move buffers."""

    def __init__(self, size=4, features=0):
        self.kicks = 0
        self.platform = vring.Platform(on_notify=self._kicked)
        self.drv, self.dev, self.mem, cfg = vring.open_queue(
            size, F_VERSION_1 | features, platform=self.platform)
        self.lay = SplitLayout(cfg.size, cfg.desc, cfg.avail, cfg.used)
        self.ring_bytes = self.mem.allocated()
        self.writable = {}

    def _kicked(self):
        self.kicks += 1

    def add(self, token, out=(), in_=(8,)):
        o = [(self.mem.alloc(max(n, 1)), n) for n in out]
        i = [(self.mem.alloc(max(n, 1)), n) for n in in_]
        self.drv.add_sgs(o, i, token)
        self.writable[token] = sum(in_)

    def serve(self, n=1, written=None):
        """Device pops n chains and pushes each back; returns their heads."""
        heads = []
        for _ in range(n):
            c = self.dev.pop()
            self.dev.push(c.head, c.writable_len if written is None else written)
            heads.append(c.head)
        return heads

    def reap(self):
        out = []
        while (r := self.drv.get_buf()) is not None:
            out.append(r)
        return out

    def r16(self, addr):
        return self.mem.read16(addr)

    def start_at(self, idx):
        """White-box: move both sides' ring indices to idx (reference ring only),
        to test u16 wrap without 65536 round trips."""
        for obj, names in ((self.drv, ("avail_idx_shadow", "last_used_idx")),
                           (self.dev, ("last_avail_idx", "used_idx", "signalled_used"))):
            for n in names:
                setattr(obj, n, idx)
        self.mem.write16(self.lay.avail_idx, idx)
        self.mem.write16(self.lay.used_idx, idx)


# --- used buffer notification suppression (2.7.7) ------------------------------------

def test_without_event_idx_disable_cb_sets_no_interrupt_and_the_device_stays_quiet():
    q = Q()
    q.drv.disable_cb()
    assert q.r16(q.lay.avail_flags) == VRING_AVAIL_F_NO_INTERRUPT
    q.add(1)
    q.serve()
    assert q.dev.needs_interrupt() is False


def test_without_event_idx_flags_0_means_the_device_must_interrupt():
    q = Q()
    q.add(1)
    q.serve()
    assert q.r16(q.lay.avail_flags) == 0 and q.dev.needs_interrupt() is True


def test_without_event_idx_the_device_ignores_used_event():
    q = Q()
    q.mem.write16(q.lay.used_event, 7)
    q.add(1)
    q.serve()
    assert q.dev.needs_interrupt() is True


def test_with_event_idx_the_driver_keeps_avail_flags_0():
    q = Q(features=F_EVENT_IDX)
    q.drv.disable_cb()
    assert q.r16(q.lay.avail_flags) == 0
    q.drv.enable_cb()
    q.drv.enable_cb_delayed()
    assert q.r16(q.lay.avail_flags) == 0


def test_with_event_idx_the_device_interrupts_exactly_when_idx_passes_used_event():
    q = Q(size=8, features=F_EVENT_IDX)
    for t in range(4):
        q.add(t)
    q.drv.disable_cb()
    q.mem.write16(q.lay.used_event, 2)   # "interrupt me after the entry at idx 2"
    got = []
    for _ in range(4):
        q.serve()
        got.append(q.dev.needs_interrupt())
    assert got == [False, False, True, False]


def test_with_event_idx_the_device_ignores_the_no_interrupt_flag():
    q = Q(features=F_EVENT_IDX)
    q.mem.write16(q.lay.avail_flags, VRING_AVAIL_F_NO_INTERRUPT)   # a driver's stray bit
    q.mem.write16(q.lay.used_event, 0)
    q.add(1)
    q.serve()
    assert q.dev.needs_interrupt() is True


def test_with_event_idx_get_buf_moves_used_event_only_while_callbacks_are_on():
    q = Q(features=F_EVENT_IDX)
    q.add(1), q.add(2)
    q.serve(2)
    q.drv.get_buf()
    assert q.r16(q.lay.used_event) == 1
    q.drv.disable_cb()
    parked = q.r16(q.lay.used_event)
    q.drv.get_buf()
    assert q.r16(q.lay.used_event) == parked


def test_need_event_is_right_across_u16_wrap():
    # new - event - 1 < new - old, all mod 2^16 (Linux vring_need_event).
    assert need_event(0xFFFF, 0x0001, 0xFFFE)       # event in [old, new) across wrap
    assert need_event(0x0000, 0x0001, 0xFFFF)
    assert not need_event(0x0001, 0x0001, 0xFFFE)   # event == new: not yet
    assert not need_event(0xFFFD, 0x0001, 0xFFFE)   # event before old
    assert need_event(0xFFFE, 0xFFFF, 0xFFFE)
    assert not need_event(5, 5, 5)                  # nothing moved


def test_interrupt_suppression_holds_across_used_idx_wrap():
    q = Q(size=4, features=F_EVENT_IDX)
    q.start_at(0xFFFE)
    for t in range(4):
        q.add(t)
    q.drv.disable_cb()
    q.mem.write16(q.lay.used_event, 0xFFFF)
    got = []
    for _ in range(3):
        q.serve()
        got.append(q.dev.needs_interrupt())
    assert got == [False, True, False]
    assert [t for t, _ in q.reap()] == [0, 1, 2]


def test_kick_suppression_holds_across_avail_idx_wrap():
    q = Q(size=4, features=F_EVENT_IDX)
    q.start_at(0xFFFE)
    q.mem.write16(q.lay.avail_event, 0x0000)   # "kick me when entry 0 appears"
    q.add(1)
    assert q.drv.kick_prepare() is False        # idx 0xFFFE -> 0xFFFF
    q.add(2)
    assert q.drv.kick_prepare() is False        # 0xFFFF -> 0x0000
    q.add(3)
    assert q.drv.kick_prepare() is True         # 0x0000 -> 0x0001 passes avail_event


# --- available buffer notification suppression (2.7.10) and kicks --------------------

def test_without_event_idx_the_driver_kicks_unless_the_device_set_no_notify():
    q = Q()
    q.add(1)
    assert q.drv.kick_prepare() is True
    q.dev.disable_notify()
    assert q.r16(q.lay.used_flags) == VRING_USED_F_NO_NOTIFY
    q.add(2)
    assert q.drv.kick_prepare() is False
    assert q.dev.enable_notify() is True        # buffer 2 arrived meanwhile: pop again
    q.add(3)
    assert q.drv.kick_prepare() is True


def test_with_event_idx_the_device_keeps_used_flags_0_and_uses_avail_event():
    q = Q(features=F_EVENT_IDX)
    q.dev.disable_notify()
    assert q.r16(q.lay.used_flags) == 0
    q.dev.enable_notify()
    assert q.r16(q.lay.used_flags) == 0 and q.r16(q.lay.avail_event) == 0


def test_with_event_idx_the_driver_kicks_only_when_idx_passes_avail_event():
    q = Q(size=8, features=F_EVENT_IDX)
    q.mem.write16(q.lay.avail_event, 2)
    results = []
    for t in range(4):
        q.add(t)
        results.append(q.drv.kick_prepare())
    assert results == [False, False, True, False]


def test_with_event_idx_the_driver_ignores_the_no_notify_flag():
    q = Q(features=F_EVENT_IDX)
    q.mem.write16(q.lay.used_flags, VRING_USED_F_NO_NOTIFY)
    q.add(1)
    assert q.drv.kick_prepare() is True


def test_one_kick_covers_a_batch_of_adds():
    q = Q(size=8, features=F_EVENT_IDX)
    q.mem.write16(q.lay.avail_event, 1)       # inside the batch 0..2
    q.add(1), q.add(2), q.add(3)
    assert q.drv.kick() is True and q.kicks == 1
    assert q.drv.kick_prepare() is False       # nothing added since


def test_kick_notifies_through_the_platform_only_when_needed():
    q = Q()
    q.dev.disable_notify()
    q.add(1)
    assert q.drv.kick() is True and q.kicks == 0
    q.dev.enable_notify()
    q.add(2)
    assert q.drv.kick() is True and q.kicks == 1


def test_popping_with_event_idx_publishes_avail_event():
    q = Q(features=F_EVENT_IDX)
    q.add(1), q.add(2)
    q.dev.pop()
    assert q.r16(q.lay.avail_event) == 1
    q.add(3)
    assert q.drv.kick_prepare() is True


# --- callbacks: enable_cb, enable_cb_prepare + poll, enable_cb_delayed ---------------

@pytest.mark.parametrize("features", [0, F_EVENT_IDX])
def test_enable_cb_returns_false_when_a_buffer_is_pending(features):
    q = Q(features=features)
    q.add(1)
    q.drv.disable_cb()
    q.serve()
    assert q.drv.enable_cb() is False
    assert q.reap() == [(1, 8)]
    assert q.drv.enable_cb() is True


@pytest.mark.parametrize("features", [0, F_EVENT_IDX])
def test_after_enable_cb_true_the_next_used_buffer_interrupts(features):
    q = Q(features=features)
    q.add(1)
    q.drv.disable_cb()
    assert q.drv.enable_cb() is True
    q.serve()
    assert q.dev.needs_interrupt() is True


@pytest.mark.parametrize("features", [0, F_EVENT_IDX])
def test_poll_sees_buffers_used_after_enable_cb_prepare(features):
    q = Q(features=features)
    q.add(1), q.add(2)
    q.drv.disable_cb()
    opaque = q.drv.enable_cb_prepare()
    assert q.drv.poll(opaque) is False
    q.serve()
    assert q.drv.poll(opaque) is True
    assert q.dev.needs_interrupt() is True


def test_enable_cb_delayed_asks_for_the_interrupt_at_three_quarters():
    q = Q(size=8, features=F_EVENT_IDX)
    for t in range(8):
        q.add(t)
    q.drv.disable_cb()
    assert q.drv.enable_cb_delayed() is True
    assert q.r16(q.lay.used_event) == 6          # last_used 0 + 8*3//4
    got = []
    for _ in range(8):
        q.serve()
        got.append(q.dev.needs_interrupt())
    assert got.index(True) == 6 and got.count(True) == 1


def test_enable_cb_delayed_returns_false_when_enough_is_already_used():
    q = Q(size=8, features=F_EVENT_IDX)
    for t in range(4):
        q.add(t)
    q.drv.disable_cb()
    q.serve(4)
    assert q.drv.enable_cb_delayed() is False


# --- indirect descriptors (2.7.5.3) ------------------------------------------------

def test_indirect_takes_one_descriptor_for_a_multi_element_buffer():
    q = Q(size=8, features=F_INDIRECT_DESC)
    q.add(1, out=(4, 4, 4), in_=(8, 8))
    assert q.drv.num_free == 7
    chain = q.dev.pop()
    assert chain.indirect and len(chain.readable) == 3 and len(chain.writable) == 2
    q.dev.push(chain.head, 16)
    assert q.reap() == [(1, 16)] and q.drv.num_free == 8


def test_single_element_buffers_stay_direct_with_indirect_negotiated():
    q = Q(size=4, features=F_INDIRECT_DESC)
    q.add(1, out=(4,), in_=())
    assert not q.dev.pop().indirect


def test_without_indirect_a_buffer_takes_one_descriptor_per_element():
    q = Q(size=8)
    q.add(1, out=(4, 4), in_=(8,))
    assert q.drv.num_free == 5 and not q.dev.pop().indirect


def test_indirect_tables_are_freed_when_the_buffer_comes_back():
    q = Q(size=4, features=F_INDIRECT_DESC)
    before = q.mem.allocated()
    q.drv.add_sgs([(q.mem.base, 4)], [(q.mem.base, 4)], "t")
    assert q.mem.allocated() > before
    q.serve()
    q.reap()
    assert q.mem.allocated() == before


# --- IN_ORDER (2.7.9) ------------------------------------------------------------

def test_in_order_descriptors_are_used_in_ring_order_and_wrap():
    q = Q(size=4, features=F_IN_ORDER)
    heads = []
    for round_ in range(3):
        q.add(round_, out=(4,), in_=(4, 4))
        c = q.dev.pop()
        heads.append(c.head)
        q.dev.push(c.head, 8)
        q.reap()
    assert heads == [0, 3, 2]      # 3 descriptors each: 0-2, 3-1 (wraps), 2-0


def test_in_order_batched_used_entry_returns_every_buffer_in_order():
    q = Q(size=8, features=F_IN_ORDER)
    for t in range(3):
        q.add(t, out=(2,), in_=(6,))
    chains = [q.dev.pop() for _ in range(3)]
    q.dev.push_batch([(c.head, 6) for c in chains[:2]] + [(chains[2].head, 3)])
    assert q.r16(q.lay.used_idx) == 3
    # One used element, at the slot of the first buffer, names the last one.
    assert q.mem.read32(q.lay.used_ring(0)) == chains[2].head
    assert q.reap() == [(0, 6), (1, 6), (2, 3)]   # skipped ones count as fully written
    assert q.drv.num_free == 8


def test_in_order_used_entries_one_by_one_also_work():
    q = Q(size=4, features=F_IN_ORDER)
    q.add(1), q.add(2)
    q.serve(2, written=5)
    assert q.reap() == [(1, 5), (2, 5)]


# --- QueueFull ------------------------------------------------------------------

def test_queue_full_when_too_few_descriptors_and_nothing_changes():
    q = Q(size=4)
    q.add(1, out=(4,), in_=(4,))
    idx, free, alloc = q.r16(q.lay.avail_idx), q.drv.num_free, q.mem.allocated()
    with pytest.raises(E.QueueFull):
        q.drv.add_sgs([(q.mem.base, 1)] * 2, [(q.mem.base, 1)], "x")
    assert (q.r16(q.lay.avail_idx), q.drv.num_free, q.mem.allocated()) == (idx, free, alloc)


def test_queue_full_with_indirect_frees_the_table_it_built():
    q = Q(size=2, features=F_INDIRECT_DESC)
    q.add(1, out=(4,), in_=())
    q.add(2, out=(4,), in_=())
    alloc = q.mem.allocated()
    with pytest.raises(E.QueueFull):
        q.drv.add_sgs([(q.mem.base, 1)], [(q.mem.base, 1)], "x")
    assert q.mem.allocated() == alloc


def test_a_full_queue_accepts_again_after_get_buf():
    q = Q(size=2)
    q.add(1, out=(4,), in_=(4,))
    with pytest.raises(E.QueueFull):
        q.add(2, out=(4,), in_=())
    q.serve()
    q.reap()
    q.add(2, out=(4,), in_=(4,))


# --- teardown: detach_unused_buf ----------------------------------------------------

@pytest.mark.parametrize("features", [0, F_INDIRECT_DESC, F_IN_ORDER])
def test_detach_unused_buf_returns_every_token_once_and_frees_everything(features):
    q = Q(size=8, features=features)
    for t in range(3):
        q.add(t, out=(4,), in_=(4,))
    q.serve(1)                             # used but never reaped: still the driver's
    tokens = []
    while (t := q.drv.detach_unused_buf()) is not None:
        tokens.append(t)
    assert sorted(tokens) == [0, 1, 2] and q.mem.allocated() == q.ring_bytes + 6 * 4
    assert q.drv.num_free == 8 and q.drv.detach_unused_buf() is None
    assert sorted(q.drv.free_list()) == list(range(8))


# --- hardening: a device that lies (2.7.8) --------------------------------------------

def bad_used(q, id_, ln, used_idx=None):
    q.mem.write32(q.lay.used_ring(q.drv.last_used_idx % q.lay.size), id_)
    q.mem.write32(q.lay.used_ring(q.drv.last_used_idx % q.lay.size) + 4, ln)
    q.mem.write16(q.lay.used_idx, (q.drv.last_used_idx + 1) & 0xFFFF
                  if used_idx is None else used_idx)


def assert_broken_for_good(q, leaf, free_before):
    with pytest.raises(leaf) as info:
        q.drv.get_buf()
    assert info.value.side == "device" and q.drv.broken
    assert q.drv.get_buf() is None
    # Even a valid used entry now: a broken queue never hands out a token.
    q.serve(1)
    assert q.drv.get_buf() is None
    fl = q.drv.free_list()
    assert fl == free_before and len(set(fl)) == len(fl) == q.drv.num_free
    with pytest.raises(E.QueueBroken):
        q.add("late")
    assert q.drv.kick() is False


@pytest.mark.parametrize("features", [0, F_IN_ORDER])
def test_used_id_out_of_range_breaks_the_queue(features):
    q = Q(size=4, features=features)
    q.add(1), q.add(2)
    free = q.drv.free_list()
    bad_used(q, id_=4, ln=0)
    assert_broken_for_good(q, E.UsedIdOutOfRange, free)


@pytest.mark.parametrize("features", [0, F_IN_ORDER])
def test_used_id_that_is_not_a_head_breaks_the_queue(features):
    q = Q(size=8, features=features)
    q.add(1, out=(4,), in_=(4,))            # descriptors 0 (head) and 1
    free = q.drv.free_list()
    bad_used(q, id_=1, ln=0)                # the middle of a chain
    assert_broken_for_good(q, E.UsedIdNotHead, free)


def test_used_id_of_a_free_descriptor_breaks_the_queue():
    q = Q(size=8)
    q.add(1, out=(4,), in_=())
    free = q.drv.free_list()
    bad_used(q, id_=5, ln=0)
    assert_broken_for_good(q, E.UsedIdNotHead, free)


def test_a_head_used_twice_is_not_returned_twice():
    q = Q(size=4)
    q.add(1), q.add(2)
    c = q.dev.pop()
    q.dev.push(c.head, 0)
    q.dev.push(c.head, 0)                   # the device returns head 0 twice
    assert q.drv.get_buf() == (1, 0)
    free = q.drv.free_list()
    with pytest.raises(E.UsedIdNotHead):
        q.drv.get_buf()
    assert q.drv.broken and q.drv.get_buf() is None and q.drv.free_list() == free


@pytest.mark.parametrize("features", [0, F_IN_ORDER])
@pytest.mark.parametrize("jump", [2, 0xFFFF, 0x8000])
def test_used_idx_running_ahead_breaks_the_queue(features, jump):
    q = Q(size=4, features=features)
    q.add(1)
    free = q.drv.free_list()
    bad_used(q, id_=0, ln=0, used_idx=jump)   # one in flight, idx moved by `jump`
    assert_broken_for_good(q, E.UsedIdxRunsAhead, free)


@pytest.mark.parametrize("features", [0, F_IN_ORDER, F_INDIRECT_DESC])
def test_used_len_beyond_the_writable_part_breaks_the_queue(features):
    q = Q(size=4, features=features)
    q.add(1, out=(4,), in_=(8, 8))
    free = q.drv.free_list()
    bad_used(q, id_=0, ln=17)
    assert_broken_for_good(q, E.UsedLenTooLarge, free)


def test_used_len_exactly_the_writable_part_is_legal():
    q = Q(size=4)
    q.add(1, out=(4,), in_=(8, 8))
    bad_used(q, id_=0, ln=16)
    assert q.drv.get_buf() == (1, 16) and not q.drv.broken


def test_a_device_only_buffer_with_len_0_is_legal_and_len_1_is_not():
    q = Q(size=4)
    q.add(1, out=(4,), in_=())
    q.add(2, out=(4,), in_=())
    bad_used(q, id_=0, ln=0)
    assert q.drv.get_buf() == (1, 0)
    bad_used(q, id_=1, ln=1)
    with pytest.raises(E.UsedLenTooLarge):
        q.drv.get_buf()
