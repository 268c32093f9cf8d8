"""The real Linux vringh.c (host side) behind the device contract (harness/linux/vringh.py).

Parametrised over the kernel versions whose Debian package linux-source-X is
installed; skipped, with the reason, when none is (CI installs 6.1: see the
README).  The library is built once per version and cached.
"""
from __future__ import annotations

import pytest

from harness.linux import build as linux_build

VERSIONS = [v for v in linux_build.SUPPORTED_VERSIONS if linux_build.tarball(v).is_file()]
if not VERSIONS:
    pytest.skip("no linux-source-X package is installed (apt-get install linux-source-6.1)",
                allow_module_level=True)

from vring.contract import build, setup_queue  # noqa: E402
from vring.errors import (BufferOutOfMemory, DescriptorIndexOutOfRange,  # noqa: E402
                          DescriptorLoop, DriverViolation, IndirectTableLength,
                          NestedIndirect, QueueBroken, ReadableAfterWritable)
from vring.features import (F_EVENT_IDX, F_IN_ORDER, F_INDIRECT_DESC,  # noqa: E402
                            F_VERSION_1, VRING_DESC_F_INDIRECT, VRING_DESC_F_NEXT,
                            VRING_DESC_F_WRITE)
from vring.memory import GuestMemory  # noqa: E402
from vring.platform import Platform  # noqa: E402

from harness.linux.driver import LinuxDriver, linux_memory  # noqa: E402
from harness.linux.errors import (LinuxFeatureUnsupported, LinuxMemoryError,  # noqa: E402
                                  VringhRejected)
from harness.linux.vringh import VringhDevice, chain_violation  # noqa: E402
from harness.plugins import check as check_plugin  # noqa: E402

FEATURES = {"direct": F_VERSION_1, "indirect": F_VERSION_1 | F_INDIRECT_DESC,
            "event_idx": F_VERSION_1 | F_EVENT_IDX | F_INDIRECT_DESC}


@pytest.fixture(scope="module", params=VERSIONS)
def version(request):
    linux_build.build(request.param)         # cached after the first build
    return request.param


class CountingMemory(GuestMemory):
    """Guest memory that counts the barriers it is asked for."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.barriers = {"mb": 0, "rmb": 0, "wmb": 0}

    def mb(self):
        self.barriers["mb"] += 1

    def rmb(self):
        self.barriers["rmb"] += 1

    def wmb(self):
        self.barriers["wmb"] += 1


def open_pair(version, size=8, features=F_VERSION_1, driver="reference",
              memory_class=GuestMemory, platform=None):
    mem = linux_memory(1 << 18, memory_class=memory_class)
    platform = platform or Platform()
    cfg = setup_queue(mem, size, features)
    if driver == "linux":
        drv = LinuxDriver(mem, cfg, platform, version=version)
    else:
        drv = build(driver, "driver", mem, cfg, platform)
    dev = VringhDevice(mem, cfg, platform, version=version)
    return drv, dev, mem, cfg


# -- round trips ------------------------------------------------------------

@pytest.mark.parametrize("driver", ["reference", "linux"])
@pytest.mark.parametrize("name", sorted(FEATURES))
def test_every_token_comes_back_once_with_the_bytes_vringh_saw(version, driver, name):
    drv, dev, mem, _ = open_pair(version, 8, FEATURES[name], driver)
    out, inb = mem.alloc(32), mem.alloc(64)
    mem.write(out, b"request!")
    for r in range(40):                      # 5 laps of an 8-slot ring: idx wrap of slots
        drv.add_sgs([(out, 8), (out + 8, 8)], [(inb, 64)], ("tok", r))
        drv.kick()
        chain = dev.pop()
        assert chain.indirect == bool(FEATURES[name] & F_INDIRECT_DESC)
        assert chain.readable == ((out, 8), (out + 8, 8))
        assert chain.writable == ((inb, 64),)
        assert chain.read_all(mem)[:8] == b"request!"
        chain.write_all(mem, bytes([r]) * 5)
        dev.push(chain.head, 5)
        assert dev.needs_interrupt() is True     # nobody suppressed interrupts
        assert drv.get_buf() == (("tok", r), 5)
        assert mem.read(inb, 5) == bytes([r]) * 5
        assert dev.pop() is None and drv.get_buf() is None
    assert dev.last_avail_idx == 40 and dev.used_idx == 40
    assert dev.log == []


def test_a_chain_longer_than_the_iovec_arrays_comes_back_whole(version):
    mem = linux_memory(1 << 16)
    cfg = setup_queue(mem, 8, FEATURES["indirect"])
    dev = VringhDevice(mem, cfg, Platform(), version=version)
    buf, table = mem.alloc(8 * 40), mem.alloc(16 * 40)
    parts = [(buf + 8 * k, 8) for k in range(40)]   # one 40-entry indirect table
    for k, (addr, ln) in enumerate(parts):
        flags = (VRING_DESC_F_WRITE if k >= 30 else 0) | (VRING_DESC_F_NEXT if k < 39 else 0)
        _desc(mem, cfg, k, addr, ln, flags, k + 1, table=table)
    _desc(mem, cfg, 0, table, 16 * 40, VRING_DESC_F_INDIRECT)
    _publish(mem, cfg, 0)
    chain = dev.pop()
    assert chain.readable == tuple(parts[:30]) and chain.writable == tuple(parts[30:])
    assert chain.indirect


# -- notifications ----------------------------------------------------------

def test_used_event_decides_the_interrupt_with_event_idx(version):
    drv, dev, mem, cfg = open_pair(version, 8, FEATURES["event_idx"])
    buf = mem.alloc(16)
    for t in range(3):
        drv.add_sgs([(buf, 16)], [], t)
    drv.disable_cb()                          # event idx: used_event stays behind
    heads = [dev.pop().head for _ in range(3)]
    mem.write16(dev.layout.used_event, 1)     # interrupt once used idx passes 1
    dev.push(heads[0], 0)
    assert dev.needs_interrupt() is False     # used idx 1: event 1 not crossed yet
    dev.push(heads[1], 0)
    assert dev.needs_interrupt() is True      # 1 -> 2 crosses used_event 1
    dev.push(heads[2], 0)
    assert dev.needs_interrupt() is False


def test_no_interrupt_flag_suppresses_without_event_idx(version):
    drv, dev, mem, _ = open_pair(version, 8, FEATURES["direct"])
    buf = mem.alloc(16)
    drv.add_sgs([(buf, 16)], [], "t")
    drv.disable_cb()                          # VRING_AVAIL_F_NO_INTERRUPT
    dev.push(dev.pop().head, 0)
    assert dev.needs_interrupt() is False


@pytest.mark.parametrize("name", ["direct", "event_idx"])
def test_enable_notify_says_whether_buffers_arrived(version, name):
    drv, dev, mem, _ = open_pair(version, 8, FEATURES[name])
    buf = mem.alloc(16)
    dev.disable_notify()
    assert dev.enable_notify() is False       # empty: the device may sleep
    dev.disable_notify()
    drv.add_sgs([(buf, 16)], [], "t")
    assert dev.enable_notify() is True        # arrived meanwhile: pop again
    assert drv.kick_prepare() is True         # re-armed: the driver kicks
    assert dev.pop().readable == ((buf, 16),)


def test_disable_notify_stops_kicks_without_event_idx(version):
    drv, dev, mem, _ = open_pair(version, 8, FEATURES["direct"])
    dev.disable_notify()                      # VRING_USED_F_NO_NOTIFY
    drv.add_sgs([(mem.alloc(16), 16)], [], "t")
    assert drv.kick_prepare() is False


# -- barriers ---------------------------------------------------------------

def test_barrier_hooks_reach_guest_memory_where_vringh_places_them(version):
    drv, dev, mem, _ = open_pair(version, 8, FEATURES["direct"], memory_class=CountingMemory)
    buf = mem.alloc(16)

    def barriers(op):
        before = dict(mem.barriers)
        result = op()
        return result, {k: mem.barriers[k] - before[k] for k in before}

    assert barriers(dev.pop) == (None, {"mb": 0, "rmb": 0, "wmb": 0})
    drv.add_sgs([(buf, 16)], [], "t")
    chain, b = barriers(dev.pop)
    assert b == {"mb": 0, "rmb": 1, "wmb": 0}       # virtio_rmb after avail idx
    _, b = barriers(lambda: dev.push(chain.head, 0))
    assert b == {"mb": 0, "rmb": 0, "wmb": 1}       # virtio_wmb before used idx
    _, b = barriers(dev.needs_interrupt)
    assert b == {"mb": 1, "rmb": 0, "wmb": 0}       # virtio_mb: store used idx, load flags
    _, b = barriers(dev.enable_notify)
    assert b == {"mb": 1, "rmb": 0, "wmb": 0}       # virtio_mb: store flags, load avail idx


def test_a_scheduler_may_switch_tasks_inside_a_vringh_barrier(version):
    greenlet = pytest.importorskip("greenlet").greenlet
    order = []

    class YieldingMemory(GuestMemory):
        armed = False

        def wmb(self):
            if self.armed:
                order.append("device at wmb")
                main.switch()              # a scheduling point inside vringh.c
                order.append("device resumed")

    drv, dev, mem, _ = open_pair(version, 8, memory_class=YieldingMemory)
    buf = mem.alloc(16)
    drv.add_sgs([], [(buf, 16)], "t")
    main = greenlet.getcurrent()
    chain = dev.pop()
    mem.armed = True
    task = greenlet(lambda: dev.push(chain.head, 3))
    task.switch()
    # vringh is parked in __vringh_complete: used element written, used idx not.
    assert drv.get_buf() is None
    order.append("driver ran")
    task.switch()
    assert task.dead
    assert order == ["device at wmb", "driver ran", "device resumed"]
    assert drv.get_buf() == ("t", 3)


def test_an_exception_in_a_hook_abandons_the_call_and_breaks_the_device(version):
    class Stop(Exception):
        pass

    class StoppingMemory(GuestMemory):
        armed = False

        def rmb(self):
            if self.armed:
                raise Stop("scheduler ended the run")

    drv, dev, mem, _ = open_pair(version, 8, memory_class=StoppingMemory)
    drv.add_sgs([(mem.alloc(16), 16)], [], "t")
    mem.armed = True
    with pytest.raises(Stop):
        dev.pop()
    assert dev.broken
    with pytest.raises(QueueBroken):
        dev.pop()


# -- malformed chains from a raw descriptor table ---------------------------

def _desc(mem, cfg, i, addr, length, flags=0, nxt=0, table=None):
    d = (cfg.desc if table is None else table) + 16 * i
    mem.write64(d, addr)
    mem.write32(d + 8, length)
    mem.write16(d + 12, flags)
    mem.write16(d + 14, nxt)


def _publish(mem, cfg, head, k=0):
    """Make `head` available as the k-th buffer (a driver without checks)."""
    mem.write16(cfg.avail + 4 + 2 * (k % cfg.size), head)
    mem.write16(cfg.avail + 2, k + 1)


def _loop(mem, cfg, buf):
    _desc(mem, cfg, 0, buf, 8, VRING_DESC_F_NEXT, 1)
    _desc(mem, cfg, 1, buf, 8, VRING_DESC_F_NEXT, 0)
    return 0


def _head_out_of_range(mem, cfg, buf):
    return cfg.size + 3


def _next_out_of_range(mem, cfg, buf):
    _desc(mem, cfg, 0, buf, 8, VRING_DESC_F_NEXT, cfg.size)
    return 0


def _readable_after_writable(mem, cfg, buf):
    _desc(mem, cfg, 0, buf, 8, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1)
    _desc(mem, cfg, 1, buf, 8)
    return 0


def _nested_indirect(mem, cfg, buf):
    table = mem.alloc(32)
    _desc(mem, cfg, 0, buf, 8, VRING_DESC_F_NEXT, 1, table=table)
    _desc(mem, cfg, 1, table, 32, VRING_DESC_F_INDIRECT, table=table)
    _desc(mem, cfg, 0, table, 32, VRING_DESC_F_INDIRECT)
    return 0


def _indirect_length(mem, cfg, buf):
    table = mem.alloc(32)
    _desc(mem, cfg, 0, table, 24, VRING_DESC_F_INDIRECT)
    return 0


def _buffer_outside_memory(mem, cfg, buf):
    _desc(mem, cfg, 0, mem.base + mem.size - 4, 16)    # straddles the end
    return 0


def _indirect_table_outside_memory(mem, cfg, buf):
    _desc(mem, cfg, 0, 0x10, 32, VRING_DESC_F_INDIRECT)
    return 0


MALFORMED = {
    "loop": (_loop, DescriptorLoop),
    "head-out-of-range": (_head_out_of_range, DescriptorIndexOutOfRange),
    "next-out-of-range": (_next_out_of_range, DescriptorIndexOutOfRange),
    "readable-after-writable": (_readable_after_writable, ReadableAfterWritable),
    "nested-indirect": (_nested_indirect, NestedIndirect),
    "indirect-table-length": (_indirect_length, IndirectTableLength),
    "buffer-outside-memory": (_buffer_outside_memory, BufferOutOfMemory),
    "indirect-table-outside-memory": (_indirect_table_outside_memory, BufferOutOfMemory),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_chain_raises_its_driver_violation_leaf(version, case):
    build_chain, leaf = MALFORMED[case]
    mem = linux_memory(1 << 16)
    cfg = setup_queue(mem, 8, FEATURES["indirect"])
    dev = VringhDevice(mem, cfg, Platform(), version=version)
    _publish(mem, cfg, build_chain(mem, cfg, mem.alloc(64)))
    with pytest.raises(leaf):
        dev.pop()
    # vringh's own words were heard (or our getrange refused the address).
    assert dev.log or leaf is BufferOutOfMemory
    # The head was given back: the position did not move past the bad chain.
    assert dev.last_avail_idx == 0
    with pytest.raises(leaf):
        dev.pop()


def test_a_refusal_no_leaf_names_is_vringh_rejected_with_its_errno():
    err = chain_violation(-71, ["Unexpected readable desc"], False, 0)
    assert isinstance(err, VringhRejected) and isinstance(err, DriverViolation)
    assert err.errno == 71 and "EPROTO" in str(err)


# -- loading ------------------------------------------------------------------

def test_the_short_name_loads_the_vringh_device():
    assert check_plugin("linux-vringh", "device") == "harness.linux.vringh:make"
    assert check_plugin("harness.linux.vringh:make_612", "device")


def test_features_vringh_lacks_and_plain_memory_are_refused(version):
    mem = linux_memory(1 << 16)
    with pytest.raises(LinuxFeatureUnsupported):
        VringhDevice(mem, setup_queue(mem, 8, F_VERSION_1 | F_IN_ORDER), Platform(),
                     version=version)
    plain = GuestMemory(1 << 16)
    with pytest.raises(LinuxMemoryError):
        VringhDevice(plain, setup_queue(plain, 8, F_VERSION_1), Platform(), version=version)
