"""The device's validation of what the driver exposes (VIRTIO 1.2, 2.7.4-2.7.6).

One test per DriverViolation leaf that `pop` raises: a hand-written driver puts
a malformed chain into guest memory, pop must raise that leaf (the side is the
driver, the section is cited) and must not move past the bad chain.  The leaves
the harness's passive store monitor raises are listed in MONITOR_RULES and
tested with the monitor (tests/test_oracles.py).
"""
from __future__ import annotations

import mmap

import pytest

import vring
from vring import errors as E
from vring.features import (F_IN_ORDER, F_INDIRECT_DESC, F_VERSION_1,
                            VRING_DESC_F_INDIRECT as IND, VRING_DESC_F_NEXT as NEXT,
                            VRING_DESC_F_WRITE as WRITE)
from vring.layout import SplitLayout

MONITOR_RULES = {"avail-idx-monotonic", "driver-no-owned-write", "driver-no-used-write",
                 "avail-flags-zero-with-event-idx"}


class RawDriver:
    """A driver written by hand: descriptors and avail entries go straight to memory."""

    def __init__(self, size=4, features=F_VERSION_1, mem=None):
        _, self.dev, self.mem, cfg = vring.open_queue(size, features, mem=mem)
        self.lay = SplitLayout(cfg.size, cfg.desc, cfg.avail, cfg.used)
        self.idx = 0
        self.buf = self.mem.alloc(256)

    def desc(self, i, addr=None, ln=8, flags=0, nxt=0, table=None):
        d = (table + 16 * i) if table is not None else self.lay.desc_at(i)
        self.mem.write64(d, self.buf if addr is None else addr)
        self.mem.write32(d + 8, ln)
        self.mem.write16(d + 12, flags)
        self.mem.write16(d + 14, nxt)

    def table(self, n):
        return self.mem.alloc(16 * n)

    def expose(self, head=0):
        self.mem.write16(self.lay.avail_ring(self.idx % self.lay.size), head)
        self.idx = (self.idx + 1) & 0xFFFF
        self.mem.write16(self.lay.avail_idx, self.idx)


def assert_pop_raises(drv, leaf):
    with pytest.raises(leaf) as info:
        drv.dev.pop()
    err = info.value
    assert isinstance(err, E.DriverViolation) and err.side == "driver"
    assert err.section.startswith("2.7") and err.rule in E.RULES
    # The device does not move past a bad chain: the next pop sees it again.
    with pytest.raises(leaf):
        drv.dev.pop()
    return err


def test_a_valid_chain_pops():
    drv = RawDriver()
    drv.desc(0, ln=4, flags=NEXT, nxt=1)
    drv.desc(1, addr=drv.buf + 8, ln=6, flags=WRITE)
    drv.expose(0)
    chain = drv.dev.pop()
    assert chain.readable == ((drv.buf, 4),) and chain.writable == ((drv.buf + 8, 6),)
    assert drv.dev.pop() is None


def test_chain_loop_is_a_driver_violation():
    drv = RawDriver()
    drv.desc(0, flags=NEXT, nxt=1)
    drv.desc(1, flags=NEXT, nxt=0)
    drv.expose(0)
    assert_pop_raises(drv, E.DescriptorLoop)


def test_self_loop_is_a_driver_violation():
    drv = RawDriver()
    drv.desc(2, flags=NEXT, nxt=2)
    drv.expose(2)
    assert_pop_raises(drv, E.DescriptorLoop)


def test_loop_inside_an_indirect_table_is_a_driver_violation():
    drv = RawDriver(features=F_VERSION_1 | F_INDIRECT_DESC)
    t = drv.table(3)
    drv.desc(0, t, flags=NEXT, nxt=1, table=t)
    drv.desc(1, flags=NEXT, nxt=0, table=t)
    drv.desc(0, addr=t, ln=48, flags=IND)
    drv.expose(0)
    assert_pop_raises(drv, E.DescriptorLoop)


def test_head_index_out_of_range_is_a_driver_violation():
    drv = RawDriver(size=4)
    drv.expose(4)
    assert_pop_raises(drv, E.DescriptorIndexOutOfRange)


def test_next_index_out_of_range_is_a_driver_violation():
    drv = RawDriver(size=4)
    drv.desc(0, flags=NEXT, nxt=4)
    drv.expose(0)
    assert_pop_raises(drv, E.DescriptorIndexOutOfRange)


def test_next_beyond_the_indirect_table_is_a_driver_violation():
    drv = RawDriver(features=F_VERSION_1 | F_INDIRECT_DESC)
    t = drv.table(2)
    drv.desc(0, flags=NEXT, nxt=2, table=t)
    drv.desc(0, addr=t, ln=32, flags=IND)
    drv.expose(0)
    assert_pop_raises(drv, E.DescriptorIndexOutOfRange)


def test_chain_longer_than_the_queue_size_is_a_driver_violation():
    # 2.7.5.3.1: counting indirect entries, no more than Queue Size descriptors.
    drv = RawDriver(size=4, features=F_VERSION_1 | F_INDIRECT_DESC)
    t = drv.table(5)
    for i in range(5):
        drv.desc(i, ln=1, flags=NEXT if i < 4 else 0, nxt=i + 1, table=t)
    drv.desc(0, addr=t, ln=80, flags=IND)
    drv.expose(0)
    assert_pop_raises(drv, E.ChainTooLong)


def test_chain_of_exactly_the_queue_size_is_legal():
    drv = RawDriver(size=4, features=F_VERSION_1 | F_INDIRECT_DESC)
    t = drv.table(4)
    for i in range(4):
        drv.desc(i, ln=1, flags=NEXT if i < 3 else 0, nxt=i + 1, table=t)
    drv.desc(0, addr=t, ln=64, flags=IND)
    drv.expose(0)
    assert len(drv.dev.pop().readable) == 4


def test_indirect_with_next_is_a_driver_violation():
    drv = RawDriver(features=F_VERSION_1 | F_INDIRECT_DESC)
    t = drv.table(1)
    drv.desc(0, table=t)
    drv.desc(0, addr=t, ln=16, flags=IND | NEXT, nxt=1)
    drv.desc(1)
    drv.expose(0)
    assert_pop_raises(drv, E.IndirectWithNext)


def test_nested_indirect_is_a_driver_violation():
    drv = RawDriver(features=F_VERSION_1 | F_INDIRECT_DESC)
    inner, outer = drv.table(1), drv.table(1)
    drv.desc(0, table=inner)
    drv.desc(0, addr=inner, ln=16, flags=IND, table=outer)
    drv.desc(0, addr=outer, ln=16, flags=IND)
    drv.expose(0)
    assert_pop_raises(drv, E.NestedIndirect)


def test_indirect_without_the_feature_is_a_driver_violation():
    drv = RawDriver(features=F_VERSION_1)
    t = drv.table(1)
    drv.desc(0, table=t)
    drv.desc(0, addr=t, ln=16, flags=IND)
    drv.expose(0)
    assert_pop_raises(drv, E.IndirectNotNegotiated)


@pytest.mark.parametrize("ln", [0, 8, 24, 17])
def test_indirect_table_length_not_a_multiple_of_16_is_a_driver_violation(ln):
    drv = RawDriver(features=F_VERSION_1 | F_INDIRECT_DESC)
    t = drv.table(2)
    drv.desc(0, table=t)
    drv.desc(0, addr=t, ln=ln, flags=IND)
    drv.expose(0)
    assert_pop_raises(drv, E.IndirectTableLength)


def test_readable_after_writable_is_a_driver_violation():
    # 2.7.4.2: device-writable elements follow every device-readable one.
    drv = RawDriver()
    drv.desc(0, flags=WRITE | NEXT, nxt=1)
    drv.desc(1, flags=0)
    drv.expose(0)
    assert_pop_raises(drv, E.ReadableAfterWritable)


def test_readable_after_writable_inside_an_indirect_table_is_a_driver_violation():
    drv = RawDriver(features=F_VERSION_1 | F_INDIRECT_DESC)
    t = drv.table(2)
    drv.desc(0, flags=WRITE | NEXT, nxt=1, table=t)
    drv.desc(1, flags=0, table=t)
    drv.desc(0, addr=t, ln=32, flags=IND)
    drv.expose(0)
    assert_pop_raises(drv, E.ReadableAfterWritable)


@pytest.fixture(scope="module")
def big_memory():
    """Guest memory over 4 GiB (sparse anonymous mmap) so 2^32-byte chains fit."""
    size = (1 << 32) + (1 << 16)
    try:
        buf = mmap.mmap(-1, size)
    except (OSError, OverflowError, ValueError) as e:
        pytest.skip(f"cannot map {size} bytes: {e}")
    return buf    # not closed here: a failing test's traceback may still view it


def test_chain_over_2_to_the_32_bytes_is_a_driver_violation(big_memory):
    mem = vring.GuestMemory(size=len(big_memory), base=0x1000, buffer=big_memory)
    drv = RawDriver(mem=mem)
    drv.desc(0, addr=mem.base, ln=0xFFFFFFFF, flags=NEXT, nxt=1)
    drv.desc(1, addr=mem.base, ln=2)
    drv.expose(0)
    assert_pop_raises(drv, E.ChainTooLarge)


def test_chain_of_exactly_2_to_the_32_bytes_is_legal(big_memory):
    mem = vring.GuestMemory(size=len(big_memory), base=0x1000, buffer=big_memory)
    drv = RawDriver(mem=mem)
    drv.desc(0, addr=mem.base, ln=0xFFFFFFFF, flags=NEXT, nxt=1)
    drv.desc(1, addr=mem.base, ln=1)
    drv.expose(0)
    assert drv.dev.pop().readable_len == 1 << 32


@pytest.mark.parametrize("addr", [0, 0x10, 1 << 40])
def test_buffer_outside_guest_memory_is_a_driver_violation(addr):
    drv = RawDriver()
    drv.desc(0, addr=addr, ln=8)
    drv.expose(0)
    assert_pop_raises(drv, E.BufferOutOfMemory)


def test_buffer_running_off_the_end_of_memory_is_a_driver_violation():
    drv = RawDriver()
    end = drv.mem.base + drv.mem.size
    drv.desc(0, addr=end - 4, ln=8)
    drv.expose(0)
    assert_pop_raises(drv, E.BufferOutOfMemory)


def test_indirect_table_outside_guest_memory_is_a_driver_violation():
    drv = RawDriver(features=F_VERSION_1 | F_INDIRECT_DESC)
    drv.desc(0, addr=1 << 40, ln=32, flags=IND)
    drv.expose(0)
    assert_pop_raises(drv, E.BufferOutOfMemory)


def test_avail_idx_more_than_the_queue_size_ahead_is_a_driver_violation():
    drv = RawDriver(size=4)
    drv.desc(0)
    drv.mem.write16(drv.lay.avail_idx, 5)
    assert_pop_raises(drv, E.AvailIdxTooFarAhead)


def test_avail_idx_going_back_is_a_driver_violation():
    drv = RawDriver(size=4)
    drv.desc(0)
    drv.expose(0)
    drv.dev.pop()
    drv.mem.write16(drv.lay.avail_idx, 0)         # 0 - 1 = 0xFFFF ahead
    assert_pop_raises(drv, E.AvailIdxTooFarAhead)


def test_avail_idx_exactly_the_queue_size_ahead_is_legal():
    drv = RawDriver(size=4)
    for i in range(4):
        drv.desc(i)
        drv.expose(i)
    assert [drv.dev.pop().head for _ in range(4)] == [0, 1, 2, 3]


def test_in_order_next_not_sequential_is_a_driver_violation():
    # 2.7.5.2: with IN_ORDER, next is x+1 (0 after the last table entry).
    drv = RawDriver(size=4, features=F_VERSION_1 | F_IN_ORDER)
    drv.desc(0, flags=NEXT, nxt=2)
    drv.desc(2)
    drv.expose(0)
    assert_pop_raises(drv, E.InOrderNextNotSequential)


def test_in_order_chain_may_wrap_from_the_last_descriptor_to_0():
    drv = RawDriver(size=4, features=F_VERSION_1 | F_IN_ORDER)
    drv.desc(3, flags=NEXT, nxt=0)
    drv.desc(0, addr=drv.buf + 8, flags=WRITE)
    drv.expose(3)
    assert drv.dev.pop().writable == ((drv.buf + 8, 8),)


def test_device_ignores_write_on_the_descriptor_that_points_at_a_table():
    # 2.7.5.3.2: "MUST ignore the write-only flag ... that refers to an indirect table".
    drv = RawDriver(features=F_VERSION_1 | F_INDIRECT_DESC)
    t = drv.table(2)
    drv.desc(0, ln=4, flags=NEXT, nxt=1, table=t)
    drv.desc(1, ln=4, flags=WRITE, table=t)
    drv.desc(0, addr=t, ln=32, flags=IND | WRITE)
    drv.expose(0)
    chain = drv.dev.pop()
    assert (len(chain.readable), len(chain.writable), chain.indirect) == (1, 1, True)


def test_device_handles_direct_descriptors_followed_by_an_indirect_one():
    # 2.7.5.3.2: zero or more chained descriptors, then one indirect descriptor.
    drv = RawDriver(features=F_VERSION_1 | F_INDIRECT_DESC)
    t = drv.table(1)
    drv.desc(0, ln=4, flags=WRITE, table=t)
    drv.desc(0, ln=2, flags=NEXT, nxt=1)
    drv.desc(1, addr=t, ln=16, flags=IND)
    drv.expose(0)
    chain = drv.dev.pop()
    assert chain.readable == ((drv.buf, 2),) and chain.writable == ((drv.buf, 4),)


def test_every_driver_violation_leaf_has_a_test_here_or_in_the_monitor():
    import sys
    source = open(sys.modules[__name__].__file__).read()
    leaves = {cls for cls in E.RULES.values() if issubclass(cls, E.DriverViolation)}
    untested = {cls.__name__ for cls in leaves
                if f"E.{cls.__name__})" not in source and cls.rule not in MONITOR_RULES}
    assert not untested
