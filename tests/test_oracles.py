"""Each oracle fires on a tiny violating history and stays quiet on a clean one."""
from __future__ import annotations

import pytest

from vring import errors as E

import vring
from vring.errors import (AvailIdxDecremented, AvailIdxTooFarAhead, DeviceWroteDescriptor,
                          DeviceWroteReadable, DriverWroteDeviceOwned, UsedIdxRunsAhead)
from vring.layout import SplitLayout
from vring.memory import GuestMemory

from harness import oracles as o
from harness.lockdep import SelfDeadlock


# --- ledger --------------------------------------------------------------------

def test_exactly_once_accepts_each_token_back_once():
    led = o.Ledger("q")
    led.add(1, 8)
    led.add(2, 8)
    led.got(2, 8)
    led.got(1, 0)
    assert len(led) == 0 and led.returned == 2


def test_exactly_once_rejects_a_token_returned_twice():
    led = o.Ledger("q")
    led.add(1, 8)
    led.got(1, 4)
    with pytest.raises(o.ExactlyOnce, match="second time"):
        led.got(1, 4)


def test_exactly_once_rejects_a_token_never_added():
    with pytest.raises(o.ExactlyOnce, match="never added"):
        o.Ledger("q").got(7, 0)


def test_exactly_once_rejects_a_token_added_twice_while_in_flight():
    led = o.Ledger("q")
    led.add(1, 8)
    with pytest.raises(o.ExactlyOnce, match="still in flight"):
        led.add(1, 8)


def test_length_bound_rejects_written_len_beyond_writable():
    led = o.Ledger("q")
    led.add(1, 8)
    with pytest.raises(o.LengthBound):
        led.got(1, 9)


# --- data integrity --------------------------------------------------------------

def test_data_integrity_accepts_the_token_pattern():
    o.check_data(5, o.pattern(5, 16) + b"junk", 16)


def test_data_integrity_rejects_a_changed_byte():
    data = bytearray(o.pattern(5, 16))
    data[3] ^= 1
    with pytest.raises(o.DataIntegrity, match="byte 3"):
        o.check_data(5, bytes(data), 16)


def test_pattern_differs_between_tokens_and_is_deterministic():
    assert o.pattern(1, 8) != o.pattern(2, 8)
    assert o.pattern(1, 8) == o.pattern(1, 8)


# --- free count -----------------------------------------------------------------

def test_free_count_holds_when_every_descriptor_is_back():
    o.check_free_count(8, 8, outstanding=0)
    o.check_free_count(5, 8, outstanding=1)      # not at rest: not judged


def test_free_count_rejects_a_leak_at_rest():
    with pytest.raises(o.FreeCount):
        o.check_free_count(7, 8, outstanding=0)


# --- ordering -------------------------------------------------------------------

def test_ordering_accepts_delivery_in_completion_order():
    order = o.OrderingOracle("q")
    for t in (3, 1, 2):
        order.expect(t)
    for t in (3, 1, 2):
        order.observe(t)


def test_ordering_rejects_delivery_out_of_completion_order():
    order = o.OrderingOracle("q")
    order.expect(1)
    order.expect(2)
    with pytest.raises(o.Ordering, match="before 1"):
        order.observe(2)


# --- liveness -------------------------------------------------------------------

def test_liveness_clean_when_everything_came_back():
    o.check_liveness(o.Progress("q", added=3, popped=3, pushed=3, delivered=3))


def test_lost_kick_when_available_buffers_were_never_popped():
    with pytest.raises(o.LostKick):
        o.check_liveness(o.Progress("q", added=3, popped=2, pushed=2, delivered=2))


def test_lost_interrupt_when_used_buffers_were_never_seen():
    with pytest.raises(o.LostInterrupt):
        o.check_liveness(o.Progress("q", added=3, popped=3, pushed=3, delivered=1))


def test_stranded_when_a_popped_buffer_never_came_back():
    with pytest.raises(o.Stranded):
        o.check_liveness(o.Progress("q", added=3, popped=3, pushed=2, delivered=2))


# --- findings -------------------------------------------------------------------

def test_finding_names_oracle_spec_rule_lockdep_kind_and_crash():
    assert o.finding_for(o.LostKick("x")).oracle == "lost-kick"
    assert o.finding_for(DeviceWroteDescriptor("x")).oracle == "spec:device-no-desc-write"
    assert o.finding_for(SelfDeadlock("AA")).oracle == "lockdep:AA"
    assert o.finding_for(KeyError("k")).oracle == "crash"


# --- the passive spec monitor ---------------------------------------------------

class _Watched(GuestMemory):
    """Plain memory that reports every store to a monitor, with the current side."""

    def __init__(self):
        super().__init__(1 << 16)
        self.monitor = None
        self.side = "driver"

    def _tell(self, addr, data, width=None):
        if self.monitor is not None:
            self.monitor.store(self.side, addr, data, width)

    def write16(self, addr, v):
        self._tell(addr, v, 2)
        super().write16(addr, v)

    def write32(self, addr, v):
        self._tell(addr, v, 4)
        super().write32(addr, v)

    def write64(self, addr, v):
        self._tell(addr, v, 8)
        super().write64(addr, v)

    def write(self, addr, data):
        self._tell(addr, bytes(data))
        super().write(addr, data)


def _watched_ring(size=4, features=0):
    mem = _Watched()
    drv, dev, mem, cfg = vring.open_queue(size, features, mem=mem)
    lay = SplitLayout(cfg.size, cfg.desc, cfg.avail, cfg.used)
    mem.monitor = o.SpecMonitor(lay, in_order=bool(features & vring.features.F_IN_ORDER))
    return drv, dev, mem, lay


@pytest.mark.parametrize("feat", ["", "indirect", "event_idx", "in_order"])
def test_spec_monitor_quiet_on_the_reference_ring(feat):
    drv, dev, mem, lay = _watched_ring(4, vring.features.parse_features(feat))
    for rnd in range(6):            # enough rounds to wrap the 4-slot ring
        bufs = []
        for k in range(2):
            out, inn = mem.alloc(8), mem.alloc(8)
            mem.write(out, o.pattern(rnd * 2 + k, 8))
            drv.add_sgs([(out, 8)], [(inn, 8)], rnd * 2 + k)
            bufs.append(inn)
        drv.kick()
        mem.side = "device"
        while (chain := dev.pop()) is not None:
            n = chain.write_all(mem, o.pattern(chain.head, chain.writable_len))
            dev.push(chain.head, n)
        dev.needs_interrupt()
        mem.side = "driver"
        while drv.get_buf() is not None:
            pass
    assert mem.monitor.owned_heads() == []


def _in_order_ring_with_two_popped():
    drv, dev, mem, lay = _watched_ring(4, vring.features.parse_features("in_order"))
    for token in (1, 2):
        drv.add_sgs([], [(mem.alloc(8), 8)], token)
    mem.side = "device"
    return drv, dev, mem, dev.pop(), dev.pop()


def test_in_order_a_batch_of_used_buffers_is_in_order():
    """2.7.9: one element naming the batch's last chain, used idx moved by two."""
    drv, dev, mem, first, second = _in_order_ring_with_two_popped()
    dev.push_batch([(first.head, 8), (second.head, 8)])
    assert mem.monitor.owned_heads() == []


def test_in_order_the_later_buffer_used_first_is_a_device_violation():
    drv, dev, mem, first, second = _in_order_ring_with_two_popped()
    with pytest.raises(E.UsedNotInOrder) as err:
        dev.push(second.head, 8)        # used idx moves by one, naming the second chain
    assert err.value.section.startswith("2.7.9")


def test_in_order_a_used_id_the_device_does_not_own_is_a_device_violation():
    drv, dev, mem, first, second = _in_order_ring_with_two_popped()
    with pytest.raises(E.UsedNotInOrder):
        dev.push(3, 8)


def test_device_wrote_descriptor():
    drv, dev, mem, lay = _watched_ring()
    with pytest.raises(DeviceWroteDescriptor):
        mem.monitor.store("device", lay.desc_at(1) + 8, 0, 4)


def test_device_wrote_avail_ring():
    drv, dev, mem, lay = _watched_ring()
    with pytest.raises(o.DeviceWroteAvail):
        mem.monitor.store("device", lay.avail_idx, 1, 2)


def test_driver_wrote_used_ring():
    drv, dev, mem, lay = _watched_ring()
    with pytest.raises(o.DriverWroteUsed):
        mem.monitor.store("driver", lay.used_ring(0), 0, 4)


def test_device_wrote_readable_buffer():
    drv, dev, mem, lay = _watched_ring()
    out, inn = mem.alloc(8), mem.alloc(8)
    drv.add_sgs([(out, 8)], [(inn, 8)], 1)
    mem.monitor.store("device", inn, b"ok")          # writable: allowed
    with pytest.raises(DeviceWroteReadable):
        mem.monitor.store("device", out + 4, b"no")


def test_device_wrote_indirect_table():
    drv, dev, mem, lay = _watched_ring(4, vring.features.parse_features("indirect"))
    out, inn = mem.alloc(8), mem.alloc(8)
    drv.add_sgs([(out, 8)], [(inn, 8)], 1)
    table = drv._state[0].indirect
    with pytest.raises(DeviceWroteDescriptor):
        mem.monitor.store("device", table + 8, 0, 4)


def test_driver_wrote_device_owned_descriptor():
    drv, dev, mem, lay = _watched_ring()
    drv.add_sgs([(mem.alloc(8), 8)], [], 1)
    with pytest.raises(DriverWroteDeviceOwned):
        mem.monitor.store("driver", lay.desc_at(0) + 8, 1, 4)


def test_driver_wrote_device_owned_indirect_table():
    drv, dev, mem, lay = _watched_ring(4, vring.features.parse_features("indirect"))
    drv.add_sgs([(mem.alloc(8), 8)], [(mem.alloc(8), 8)], 1)
    table = drv._state[0].indirect
    with pytest.raises(DriverWroteDeviceOwned):
        mem.monitor.store("driver", table + 8, 1, 4)


def test_avail_idx_decremented():
    drv, dev, mem, lay = _watched_ring()
    drv.add_sgs([(mem.alloc(8), 8)], [], 1)
    with pytest.raises(AvailIdxDecremented):
        mem.monitor.store("driver", lay.avail_idx, 0xFFFF, 2)


def test_avail_idx_moves_at_most_the_queue_size():
    drv, dev, mem, lay = _watched_ring(4)
    with pytest.raises(AvailIdxTooFarAhead):
        mem.monitor.store("driver", lay.avail_idx, 5, 2)


def test_used_idx_decremented():
    drv, dev, mem, lay = _watched_ring()
    drv.add_sgs([(mem.alloc(8), 8)], [], 1)
    mem.side = "device"
    dev.push(dev.pop().head, 0)
    with pytest.raises(o.UsedIdxDecremented):
        mem.monitor.store("device", lay.used_idx, 0, 2)


def test_used_idx_cannot_pass_avail_idx():
    drv, dev, mem, lay = _watched_ring()
    drv.add_sgs([(mem.alloc(8), 8)], [], 1)
    with pytest.raises(UsedIdxRunsAhead):
        mem.monitor.store("device", lay.used_idx, 2, 2)


def test_finding_names_the_original_failure_not_one_raised_while_unwinding():
    try:
        try:
            raise o.LostKick("first")
        finally:
            raise KeyError("while unwinding")
    except KeyError as e:
        assert o.finding_for(e).oracle == "lost-kick"
