"""`--driver linux`: the plug-in contract mapped onto the real virtio_ring.c.

    make(mem, cfg, platform) -> LinuxDriver          (vring/contract.py)
    make_tsan(mem, cfg, platform) -> LinuxDriver     every C load/store -> on_access
    LinuxDriver(mem, cfg, platform, *, version="6.1", tsan=False, lib_path=None)
    linux_memory(size, memory_class=GuestMemory) -> GuestMemory over real memory

Rules and theory of operation:
* The ring lives where C can see it: `cfg.desc/avail/used` are addresses in
  `mem`, and Linux's DMA shim is the identity, so `mem` must be a GuestMemory
  whose addresses are this process's own (linux_memory()).  make() checks it.
* Indirect tables are allocated in `mem` (the kmalloc overlay sends them to
  mem.alloc), so any device, Python or C, reads them through guest memory.
* Scheduling points inside C: every barrier calls mem.mb()/rmb()/wmb()
  (virtio_mb/rmb/wmb/store_mb through the asm/barrier.h overlay) and every
  notify calls platform.notify_device().  The C code's own loads and stores
  bypass `mem` (they are plain memory accesses; see the tsan build for those).
* Over a scheduled memory model, a tsan build routes every C load and store
  through the model (bridge.py): points, trace, spec monitor, store buffers;
  the plain build's ring stores are told to the spec monitor at each hook.
* The factories declare `native_memory = True`: harness/nativemem.py then
  builds the run's memory over an mmap whose base is its real address.
* Device misbehaviour: BAD_RING's "id %u out of range" / "id %u is not a
  head!" mark the queue broken (kernel behaviour) and get_buf raises
  UsedIdOutOfRange / UsedIdNotHead, the leaves the reference driver raises.
* BUG()/BUG_ON() abandon the C call (longjmp), mark the queue broken and raise
  KernelBug; WARN_ON() raises KernelWarning after the call returns.  A real
  crash (SIGSEGV) is not catchable here: see isolate.py.
* Tokens: C sees a handle (1, 2, 3, ... in add order); the Python token is
  kept in a dict and handed back exactly once.
* Features: INDIRECT_DESC, EVENT_IDX, VERSION_1.  Linux 6.1 has no IN_ORDER
  and the split constructor refuses RING_PACKED: LinuxFeatureUnsupported.
"""
from __future__ import annotations

import ctypes
import mmap
import weakref

from vring.errors import (InvalidRequest, QueueBroken, QueueFull, UsedIdNotHead,
                          UsedIdOutOfRange)
from vring.features import F_EVENT_IDX, F_INDIRECT_DESC, F_VERSION_1
from vring.memory import GuestMemory

from . import native
from .errors import LinuxFeatureUnsupported, LinuxMemoryError

#: Feature bits virtio_ring.c (6.1) implements for a split ring.
SUPPORTED = F_INDIRECT_DESC | F_EVENT_IDX | F_VERSION_1

_ENOSPC, _EIO, _ENOMEM = 28, 5, 12

#: BAD_RING messages of virtqueue_get_buf_ctx_split -> DeviceViolation leaf.
_BAD_RING = (("out of range", UsedIdOutOfRange), ("is not a head", UsedIdNotHead))


def linux_memory(size: int = 1 << 20, memory_class=GuestMemory, **kwargs) -> GuestMemory:
    """A GuestMemory over anonymous mmap'ed memory whose base is its real address.

    `memory_class` lets a harness memory model (a GuestMemory subclass taking
    size/base/buffer) sit over the same real memory.
    """
    buf = mmap.mmap(-1, size)                      # page-aligned, zeroed
    base = ctypes.addressof(ctypes.c_char.from_buffer(buf))
    return memory_class(size, base=base, buffer=buf, **kwargs)


def real_base(mem) -> int | None:
    try:
        return ctypes.addressof(ctypes.c_char.from_buffer(mem.buf))
    except (TypeError, ValueError):
        return None


class LinuxDriver:
    """Linux's virtqueue API (drivers/virtio/virtio_ring.c) behind the contract."""

    def __init__(self, mem, cfg, platform, *, version: str = "6.1", tsan: bool = False,
                 lib_path=None):
        if cfg.features & ~SUPPORTED:
            raise LinuxFeatureUnsupported(
                f"features {cfg.features & ~SUPPORTED:#x} not implemented by Linux "
                f"{version} virtio_ring.c (supported: INDIRECT_DESC, EVENT_IDX, VERSION_1)")
        if real_base(mem) != mem.base:
            raise LinuxMemoryError("--driver linux needs guest memory C can address: "
                                   "build it with harness.linux.driver.linux_memory()")
        self.mem = mem
        self.platform = platform
        self.size = cfg.size
        self.features = cfg.features
        self.version = version
        self.on_access = None            # tsan builds: callable(addr, size, is_write)
        self.enter = None                # the plain build's: drain before C stores
        self.settle = None               # the bridge's: finish the access in flight
        self._lib = native.load_path(lib_path) if lib_path else native.load(version, tsan)
        from .bridge import bridge_for
        bridge = bridge_for(mem, cfg, self._lib.tsan, side="driver")
        if bridge is not None:
            self.settle = bridge.settle
            self.enter = getattr(bridge, "enter", None)
            if self._lib.tsan:
                self.on_access = bridge
        self._c = self._lib.lib
        self._pool: list[native.Call] = []
        self._tokens: dict[int, object] = {}
        self._writable: dict[int, int] = {}
        self._next_handle = 1
        self._warnings: list = []        # WARN_ON()s of the current API call
        self.log: list[tuple[int, str]] = []   # every dev_err/dev_warn line, in order
        # Bound barrier methods by kind (native.MB/RMB/WMB): looked up per call so
        # that a memory model swapped in later is honoured.
        self._barrier = (lambda: self.mem.mb(), lambda: self.mem.rmb(),
                         lambda: self.mem.wmb())
        out = ctypes.c_void_p()
        # VERSION_1 always: the ring is little-endian as in the reference (2.7).
        rc, _ = self._call(self._c.vf_open, ctypes.byref(out), cfg.size,
                        cfg.features | F_VERSION_1, cfg.desc, cfg.avail, cfg.used, q=False)
        if rc < 0 or not out.value:
            raise InvalidRequest(f"vring_new_virtqueue failed ({rc}) for size {cfg.size}")
        self._q = out.value
        if self._lib.tsan:
            self._c.vf_tsan_watch(mem.base, mem.base + mem.size)
        self._finalizer = weakref.finalize(self, _close, self._lib, self._q, mem.base)

    # -- the one door into C -------------------------------------------------
    def _call(self, fn, *args, q=True, defer=False):
        rc, exc, reports, warnings = native.invoke(self, fn, *args, q=q)
        if rc == native.ABORTED:
            # C was abandoned mid-way: its state may be half-updated, so the
            # queue is dead for good (as after a kernel BUG).
            self._c.vf_break(self._q) if q else None
            raise exc
        if exc is not None:
            raise exc
        if warnings:
            self._warnings.extend(warnings)
            if not defer:
                self._raise_warnings()
        return rc, reports

    def _raise_warnings(self) -> None:
        """Raise a WARN_ON() seen by the call that just finished its bookkeeping."""
        warned, self._warnings = self._warnings, []
        raise warned[0]

    # -- adding buffers -------------------------------------------------------
    def add_sgs(self, out, in_, token) -> None:
        if token is None:
            raise InvalidRequest("token must not be None (None means 'no buffer')")
        total = len(out) + len(in_)
        if total == 0:
            raise InvalidRequest("add_sgs needs at least one element")
        # Callers' duties in Linux (BUG_ON/WARN_ON there); checked here so that
        # the contract's InvalidRequest comes out, as from the reference ring.
        if total > self.size:
            raise InvalidRequest(f"{total} elements exceed the queue size {self.size}")
        if self.broken:
            raise QueueBroken("add_sgs on a broken queue")
        sgs = list(out) + list(in_)
        addrs = (ctypes.c_uint64 * total)(*(a for a, _ in sgs))
        lens = (ctypes.c_uint32 * total)(*(n for _, n in sgs))
        handle = self._next_handle
        # Registered first: C owns the handle as soon as add_sgs succeeded, even
        # if a hook raised afterwards.
        self._tokens[handle] = token
        self._next_handle = handle + 1
        # On an abort (exception in a hook) the token stays registered: C may
        # hold the handle, and the queue is broken from then on.
        rc, _ = self._call(self._c.vf_add_sgs, len(out), len(in_), addrs, lens, handle,
                           defer=True)
        if rc < 0:
            del self._tokens[handle]
        else:
            self._writable[handle] = sum(n for _, n in in_)
        if self._warnings:
            self._raise_warnings()
        if rc == -_ENOSPC:
            raise QueueFull(f"{total} elements, {self.num_free} descriptors free")
        if rc == -_EIO:
            raise QueueBroken("add_sgs on a broken queue")
        if rc < 0:
            raise InvalidRequest(f"virtqueue_add_sgs returned {rc}")

    # -- notifying the device -------------------------------------------------
    def kick_prepare(self) -> bool:
        return bool(self._call(self._c.vf_kick_prepare)[0])

    def notify(self) -> bool:
        return bool(self._call(self._c.vf_notify_device)[0])

    def kick(self) -> bool:
        return bool(self._call(self._c.vf_kick)[0])

    # -- taking buffers back --------------------------------------------------
    def get_buf(self):
        data, length = ctypes.c_size_t(), ctypes.c_uint()
        _, reports = self._call(self._c.vf_get_buf, ctypes.byref(data), ctypes.byref(length),
                                defer=True)
        handle = data.value
        if not handle:
            for level, msg in reports:
                for needle, leaf in _BAD_RING:
                    if needle in msg:
                        raise leaf(f"Linux BAD_RING: {msg}")
            return None
        token = self._tokens.pop(handle)
        self._writable.pop(handle, None)
        if self._warnings:
            self._raise_warnings()
        return token, length.value

    # -- callbacks ------------------------------------------------------------
    def disable_cb(self) -> None:
        self._call(self._c.vf_disable_cb)

    def enable_cb(self) -> bool:
        return bool(self._call(self._c.vf_enable_cb)[0])

    def enable_cb_prepare(self) -> int:
        opaque = ctypes.c_uint()
        self._call(self._c.vf_enable_cb_prepare, ctypes.byref(opaque))
        return opaque.value

    def poll(self, opaque) -> bool:
        return bool(self._call(self._c.vf_poll, opaque)[0])

    def enable_cb_delayed(self) -> bool:
        return bool(self._call(self._c.vf_enable_cb_delayed)[0])

    # -- teardown -------------------------------------------------------------
    def detach_unused_buf(self):
        data = ctypes.c_size_t()
        self._call(self._c.vf_detach_unused_buf, ctypes.byref(data), defer=True)
        token = self._tokens.pop(data.value, None) if data.value else None
        self._writable.pop(data.value, None)
        if self._warnings:
            self._raise_warnings()
        return token

    def close(self) -> None:
        """Free the C queue now (also done when the driver is collected)."""
        self._finalizer()

    # -- state ----------------------------------------------------------------
    @property
    def num_free(self) -> int:
        return self._c.vf_num_free(self._q)

    @property
    def broken(self) -> bool:
        return bool(self._call(self._c.vf_is_broken)[0])

    def in_flight(self) -> int:
        return len(self._tokens)

    def free_list(self) -> list[int]:
        out = (ctypes.c_uint16 * self.size)()
        n = self._c.vf_free_list(self._q, out, self.size)
        return list(out[:n])


def _close(lib, q, base: int) -> None:
    if lib.tsan:
        lib.lib.vf_tsan_unwatch(base)
    call = ctypes.create_string_buffer(lib.call_size)
    lib.lib.vf_close(ctypes.addressof(call), q)


def make(mem, cfg, platform) -> LinuxDriver:
    """Plug-in contract entry point (`--driver harness.linux.driver:make`)."""
    return LinuxDriver(mem, cfg, platform)


def make_tsan(mem, cfg, platform) -> LinuxDriver:
    """The same over the -fsanitize=thread build: set `driver.on_access` to see
    every load/store the ring code makes in guest memory."""
    return LinuxDriver(mem, cfg, platform, tsan=True)


def make_612(mem, cfg, platform) -> LinuxDriver:
    """Linux 6.12's virtio_ring.c (`--driver harness.linux.driver:make_612`)."""
    return LinuxDriver(mem, cfg, platform, version="6.12")


def make_612_tsan(mem, cfg, platform) -> LinuxDriver:
    return LinuxDriver(mem, cfg, platform, version="6.12", tsan=True)


# harness/nativemem.py: these sides hand guest addresses to C.
for _f in (make, make_tsan, make_612, make_612_tsan):
    _f.native_memory = True
    _f.features = SUPPORTED
