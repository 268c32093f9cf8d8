"""The real Linux virtio_ring.c behind the plug-in contract (harness/linux).

Parametrised over the kernel versions whose Debian package linux-source-X
is installed; skipped, with the reason, when none is (CI installs 6.1: see
the README).  The library is built once per version and cached
($VRINGFUZZ_CACHE or ~/.cache/vringfuzz).
"""
from __future__ import annotations

import ctypes

import pytest

from harness.linux import build as linux_build

VERSIONS = [v for v in linux_build.SUPPORTED_VERSIONS if linux_build.tarball(v).is_file()]
if not VERSIONS:
    pytest.skip("no linux-source-X package is installed (apt-get install linux-source-6.1)",
                allow_module_level=True)

from vring.contract import build, setup_queue  # noqa: E402
from vring.errors import (InvalidRequest, QueueBroken, QueueFull,  # noqa: E402
                          UsedIdNotHead, UsedIdOutOfRange)
from vring.features import (F_EVENT_IDX, F_IN_ORDER, F_INDIRECT_DESC,  # noqa: E402
                            F_VERSION_1)
from vring.memory import GuestMemory  # noqa: E402
from vring.platform import Platform  # noqa: E402

from harness.linux.driver import LinuxDriver, linux_memory  # noqa: E402
from harness.linux.errors import (KernelBug, KernelWarning,  # noqa: E402
                                  LinuxFeatureUnsupported, LinuxMemoryError,
                                  LinuxSourceMissing, NativeCrash)
from harness.linux.isolate import run_isolated  # noqa: E402

FEATURES = {"direct": F_VERSION_1, "indirect": F_VERSION_1 | F_INDIRECT_DESC,
            "event_idx": F_VERSION_1 | F_EVENT_IDX | F_INDIRECT_DESC}


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


def open_linux(version, size=8, features=F_VERSION_1, memory_class=GuestMemory,
               platform=None):
    mem = linux_memory(1 << 18, memory_class=memory_class)
    platform = platform or Platform()
    cfg = setup_queue(mem, size, features)
    drv = LinuxDriver(mem, cfg, platform, version=version)
    dev = build("reference", "device", mem, cfg, platform)
    return drv, dev, mem, platform


@pytest.fixture(scope="module", params=VERSIONS)
def version(request):
    linux_build.build(request.param)   # cached after the first build
    return request.param


@pytest.mark.parametrize("name", sorted(FEATURES))
def test_every_token_comes_back_once_with_the_bytes_the_device_wrote(version, name):
    drv, dev, mem, plat = open_linux(version, 8, FEATURES[name])
    out, inb = mem.alloc(32), mem.alloc(64)
    baseline = mem.allocated()
    mem.write(out, b"request!")
    for r in range(40):                 # 5 laps of an 8-slot ring
        drv.add_sgs([(out, 8), (out + 8, 8)], [(inb, 64)], ("tok", r))
        drv.kick()
        chain = dev.pop()
        assert chain.indirect == bool(FEATURES[name] & F_INDIRECT_DESC)
        assert [ln for _, ln in chain.readable] == [8, 8]
        assert mem.read(chain.readable[0][0], 8) == b"request!"
        mem.write(chain.writable[0][0], bytes([r]) * 5)
        dev.push(chain.head, 5)
        assert drv.get_buf() == (("tok", r), 5)
        assert mem.read(inb, 5) == bytes([r]) * 5
        assert drv.get_buf() is None
    assert drv.num_free == 8 and drv.in_flight() == 0 and not drv.broken
    assert sorted(drv.free_list()) == list(range(8))
    assert plat.notifies >= 1
    assert mem.allocated() == baseline     # every indirect table went back


def test_a_full_ring_raises_queue_full(version):
    drv, dev, mem, _ = open_linux(version, 4)
    buf = mem.alloc(16)
    for i in range(4):
        drv.add_sgs([(buf, 16)], [], i)
    with pytest.raises(QueueFull):
        drv.add_sgs([(buf, 16)], [], 99)
    with pytest.raises(InvalidRequest):
        drv.add_sgs([], [], 100)


def test_detach_unused_buf_returns_each_unused_token_once(version):
    drv, dev, mem, _ = open_linux(version, 8, FEATURES["indirect"])
    buf = mem.alloc(16)
    for i in range(3):
        drv.add_sgs([(buf, 8), (buf + 8, 8)], [], i)
    got = [drv.detach_unused_buf() for _ in range(4)]
    assert sorted(got[:3]) == [0, 1, 2] and got[3] is None
    assert drv.num_free == 8


def test_poll_sees_a_buffer_used_after_enable_cb_prepare(version):
    drv, dev, mem, _ = open_linux(version, 8, FEATURES["event_idx"])
    buf = mem.alloc(16)
    drv.add_sgs([], [(buf, 16)], "rx")
    drv.kick()
    drv.disable_cb()
    opaque = drv.enable_cb_prepare()
    assert drv.poll(opaque) is False
    dev.push(dev.pop().head, 16)
    assert drv.poll(opaque) is True
    assert drv.enable_cb() is False        # pending: poll again (draft III)
    assert drv.get_buf() == ("rx", 16)
    assert drv.enable_cb() is True


def _push_raw(mem, dev, head, length):
    """A malicious device: a used element with an arbitrary id."""
    lay = dev.layout
    elem = lay.used_ring(dev.used_idx & (dev.size - 1))
    mem.write32(elem, head)
    mem.write32(elem + 4, length)
    dev.used_idx = (dev.used_idx + 1) & 0xFFFF
    mem.write16(lay.used_idx, dev.used_idx)


@pytest.mark.parametrize("bad_id, leaf", [(8 + 3, UsedIdOutOfRange), (1, UsedIdNotHead)])
def test_a_bad_used_id_breaks_the_queue_for_good(version, bad_id, leaf):
    drv, dev, mem, _ = open_linux(version, 8)
    buf = mem.alloc(64)
    # A 3-descriptor direct chain at 0,1,2: id 1 is in flight but not a head.
    drv.add_sgs([(buf, 8), (buf + 8, 8)], [(buf + 16, 8)], "t")
    drv.kick()
    dev.pop()
    _push_raw(mem, dev, bad_id, 0)
    with pytest.raises(leaf):
        drv.get_buf()
    assert drv.broken
    assert any("id" in msg for _, msg in drv.log)
    assert drv.get_buf() is None           # never a token after BAD_RING
    with pytest.raises(QueueBroken):
        drv.add_sgs([(buf, 8)], [], "u")


def test_barrier_hooks_reach_guest_memory_where_linux_places_them(version):
    drv, dev, mem, _ = open_linux(version, 8, FEATURES["direct"], memory_class=CountingMemory)
    buf = mem.alloc(16)

    def driver_barriers(op):
        before = dict(mem.barriers)
        result = op()
        return result, {k: mem.barriers[k] - before[k] for k in before}

    _, b = driver_barriers(lambda: drv.add_sgs([(buf, 16)], [], "t"))
    assert b == {"mb": 0, "rmb": 0, "wmb": 1}      # virtio_wmb before avail idx
    _, b = driver_barriers(drv.kick_prepare)
    assert b == {"mb": 1, "rmb": 0, "wmb": 0}      # virtio_mb (a72caae21803)
    dev.push(dev.pop().head, 0)
    got, b = driver_barriers(drv.get_buf)
    assert got == ("t", 0)
    assert b == {"mb": 1, "rmb": 1, "wmb": 0}      # virtio_rmb + virtio_store_mb


def test_a_scheduler_may_switch_tasks_inside_a_barrier(version):
    greenlet = pytest.importorskip("greenlet").greenlet
    order = []

    class YieldingMemory(GuestMemory):
        def wmb(self):
            order.append("driver at wmb")
            main.switch()                  # a scheduling point inside C
            order.append("driver resumed")

    drv, dev, mem, _ = open_linux(version, 8, memory_class=YieldingMemory)
    buf = mem.alloc(16)
    main = greenlet.getcurrent()
    task = greenlet(lambda: drv.add_sgs([(buf, 16)], [], "t"))
    task.switch()
    # The driver is parked inside virtqueue_add_sgs: avail idx not yet published.
    assert dev.pop() is None and drv.get_buf() is None
    order.append("other task ran")
    task.switch()
    assert task.dead
    assert order == ["driver at wmb", "other task ran", "driver resumed"]
    assert dev.pop().readable == ((buf, 16),)


def test_an_exception_in_a_hook_unwinds_the_c_call_and_breaks_the_queue(version):
    class Stop(Exception):
        pass

    def refuse():
        raise Stop("scheduler ended the run")

    drv, dev, mem, plat = open_linux(version, 8, platform=Platform(on_notify=refuse))
    drv.add_sgs([(mem.alloc(16), 16)], [], "t")
    with pytest.raises(Stop):
        drv.kick()
    assert drv.broken


def test_bug_on_raises_kernel_bug_and_the_process_lives_on(version):
    drv, *_ = open_linux(version, 8)
    with pytest.raises(KernelBug, match="BUG_ON"):
        drv._call(drv._c.vf_selftest, 0)
    assert drv.broken
    drv2, *_ = open_linux(version, 8)
    with pytest.raises(KernelWarning, match="WARN"):
        drv2._call(drv2._c.vf_selftest, 1)
    assert not drv2.broken


def test_a_segfault_in_a_worker_is_a_native_crash(version):
    with pytest.raises(NativeCrash, match="SIGSEGV"):
        run_isolated(ctypes.string_at, 0)
    assert run_isolated(lambda: open_linux(version, 8)[0].num_free) == 8


def test_features_linux_lacks_and_plain_memory_are_refused(version):
    mem = linux_memory(1 << 16)
    with pytest.raises(LinuxFeatureUnsupported):
        LinuxDriver(mem, setup_queue(mem, 8, F_VERSION_1 | F_IN_ORDER), Platform(),
                    version=version)
    plain = GuestMemory(1 << 16)
    with pytest.raises(LinuxMemoryError):
        LinuxDriver(plain, setup_queue(plain, 8, F_VERSION_1), Platform(), version=version)


def test_a_missing_package_is_one_line(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(linux_build, "tarball", lambda v: tmp_path / "absent.tar.xz")
    with pytest.raises(LinuxSourceMissing, match="apt-get install linux-source-6.1"):
        linux_build.build("6.1", cache_dir=tmp_path)
    assert linux_build.main_build(["--version", "6.1", "--cache-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "linux-source-6.1" in err


def test_the_tsan_build_reports_every_ring_store_of_add_sgs(version):
    linux_build.build(version, tsan=True)
    mem = linux_memory(1 << 16)
    cfg = setup_queue(mem, 8, F_VERSION_1)
    drv = LinuxDriver(mem, cfg, Platform(), version=version, tsan=True)
    buf = mem.alloc(16)
    writes = []
    drv.on_access = lambda addr, size, is_write: is_write and writes.append((addr, size))
    drv.add_sgs([(buf, 16)], [], "t")
    # desc[0] flags/addr/len/next, flags again (6.1 and 6.12 clear NEXT on
    # the last descriptor), avail ring[0], and last the avail idx that
    # publishes it.
    d = cfg.desc
    assert writes == [(d + 12, 2), (d, 8), (d + 8, 4), (d + 14, 2), (d + 12, 2),
                      (cfg.avail + 4, 2), (cfg.avail + 2, 2)]
