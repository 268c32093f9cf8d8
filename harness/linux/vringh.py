"""`--device linux-vringh`: the device contract mapped onto Linux's drivers/vhost/vringh.c.

    make(mem, cfg, platform) -> VringhDevice          (vring/contract.py), Linux 6.1
    make_612(mem, cfg, platform) -> VringhDevice      the same over Linux 6.12
    make_tsan(mem, cfg, platform) -> VringhDevice     tsan build: C accesses -> model
    VringhDevice(mem, cfg, platform, *, version="6.1", tsan=False)

Rules and theory of operation:
* The userspace flavour of vringh is driven (vringh_init_user,
  vringh_getdesc_user, vringh_complete_user, vringh_need_notify_user,
  vringh_notify_enable_user / _disable_user), as tools/virtio/vringh_test.c
  does: it is the flavour that range-checks every descriptor and indirect
  table address through a getrange() callback.  Ours (glue/vf_vringh.c)
  accepts exactly guest memory, so `mem` must be memory C can address
  (harness.linux.driver.linux_memory()), as for `--driver linux`.
* Contract mapping:
    pop()             vringh_getdesc_user -> Chain(head, readable, writable,
                      indirect); the iovecs are guest addresses (offset 0).
    push(head, len)   vringh_complete_user (used elem, virtio_wmb, used idx).
    needs_interrupt() vringh_need_notify_user (virtio_mb, then flags or
                      used_event against what was completed since last asked).
    enable_notify()   NOT vringh_notify_enable_user: vringh answers "still
                      empty", the contract asks "buffers arrived, pop again".
    disable_notify()  vringh_notify_disable_user.
* Barriers: vringh's virtio_rmb/wmb/mb land in mem.rmb()/wmb()/mb() (the
  asm/barrier.h overlay and the shared hook table, native.py): scheduling
  points and memory-model events, as in the driver.
* A chain vringh refuses raises a vring DriverViolation leaf chosen from
  vringh_bad()'s message (table _BAD_CHAIN) or from our getrange refusing an
  address (BufferOutOfMemory); any other refusal is VringhRejected.  The
  head is given back (vringh_abandon_user): the position does not move past
  a bad chain, as with the reference device.
* Where vringh is laxer than the reference device (it is the real code, so
  these are reported, not patched): it does not check avail idx running
  more than the queue size ahead, INDIRECT without the feature, INDIRECT
  together with NEXT (it follows `next` after the table), the total chain
  length across an indirect table, nor the 2^32-byte total; a zero-length
  indirect table is read anyway (one descriptor) and then reported as a
  "Descriptor loop".  vringh writes avail_event only in enable_notify,
  never in pop (vhost's convention): a device loop must re-arm with
  enable_notify before it waits, as the harness's scenarios do.
* An exception from a hook (a scheduler ending the run) abandons the C call
  half-way; the device is then `broken` and refuses further calls.
"""
from __future__ import annotations

import ctypes
import weakref

from vring.errors import (BufferOutOfMemory, DescriptorIndexOutOfRange, DescriptorLoop,
                          IndirectTableLength, InvalidRequest, NestedIndirect, QueueBroken,
                          ReadableAfterWritable)
from vring.features import F_EVENT_IDX, F_INDIRECT_DESC, F_VERSION_1
from vring.layout import SplitLayout, avail_size, desc_table_size, used_size
from vring.split.chain import Chain

from . import native
from .driver import real_base
from .errors import LinuxFeatureUnsupported, LinuxMemoryError, VringhRejected

#: Feature bits vringh.c implements (it has no IN_ORDER and no packed ring).
SUPPORTED = F_INDIRECT_DESC | F_EVENT_IDX | F_VERSION_1

#: vringh_bad() messages of __vringh_get_head / __vringh_iov / move_to_indirect
#: / range_check -> the DriverViolation leaf for the same rule.
_BAD_CHAIN = (
    ("Descriptor loop", DescriptorLoop),              # count > num: only a loop gets there
    ("Multilevel indirect", NestedIndirect),
    ("Strange indirect len", IndirectTableLength),    # len % 16 != 0
    ("Invalid indirect len", IndirectTableLength),    # the same check, worded so in 6.12.118
    ("after writable", ReadableAfterWritable),
    ("Chained index", DescriptorIndexOutOfRange),      # next >= table size
    ("is available", DescriptorIndexOutOfRange),       # head >= num
    ("Wrapping descriptor", BufferOutOfMemory),        # addr + len wraps 2^64
)

_ERRNO_NAMES = {5: "EIO", 12: "ENOMEM", 14: "EFAULT", 22: "EINVAL", 40: "ELOOP", 71: "EPROTO"}


class _Pop(ctypes.Structure):
    """struct vfh_pop (glue/vf_vringh.c)."""

    _fields_ = [("head", ctypes.c_uint32), ("n_read", ctypes.c_uint32),
                ("n_write", ctypes.c_uint32), ("indirect", ctypes.c_int32),
                ("oob", ctypes.c_int32), ("oob_addr", ctypes.c_uint64)]


def chain_violation(rc: int, messages: list[str], oob: bool, oob_addr: int):
    """The DriverViolation for a chain vringh refused with `rc` (< 0)."""
    text = "; ".join(messages) or "no message"
    if oob:
        # Our getrange() refused it: a descriptor or indirect table (partly)
        # outside guest memory (2.7.5).
        return BufferOutOfMemory(f"Linux vringh: address {oob_addr:#x} outside guest memory")
    for needle, leaf in _BAD_CHAIN:
        if any(needle in m for m in messages):
            return leaf(f"Linux vringh: {text}")
    return VringhRejected(f"vringh_getdesc_user: -{_ERRNO_NAMES.get(-rc, -rc)} ({text})", -rc)


class VringhDevice:
    """Linux's host-side ring helpers (drivers/vhost/vringh.c) behind the contract."""

    def __init__(self, mem, cfg, platform, *, version: str = "6.1", tsan: bool = False):
        if cfg.features & ~SUPPORTED:
            raise LinuxFeatureUnsupported(
                f"features {cfg.features & ~SUPPORTED:#x} not implemented by Linux "
                f"{version} vringh.c (supported: INDIRECT_DESC, EVENT_IDX, VERSION_1)")
        if real_base(mem) != mem.base:
            raise LinuxMemoryError("--device linux-vringh needs guest memory C can address: "
                                   "build it with harness.linux.driver.linux_memory()")
        for what, addr, n in (("desc", cfg.desc, desc_table_size(cfg.size)),
                              ("avail", cfg.avail, avail_size(cfg.size)),
                              ("used", cfg.used, used_size(cfg.size))):
            # vringh touches the ring areas without a range check (they are
            # the host's own mapping in vhost): they must lie in guest memory.
            if not mem.contains(addr, n):
                raise InvalidRequest(f"{what} area {addr:#x}+{n} is outside guest memory")
        self.mem = mem
        self.platform = platform
        self.size = cfg.size
        self.features = cfg.features
        self.version = version
        self.layout = SplitLayout(cfg.size, cfg.desc, cfg.avail, cfg.used)
        self.on_access = None            # tsan builds: callable(addr, size, is_write)
        self.enter = None                # the plain build's: drain before C stores
        self.settle = None               # see native.py / bridge.py
        self.broken = False              # a hook abandoned a C call half-way
        self.log: list[tuple[int, str]] = []   # every vringh_bad() line, in order
        self._lib = native.load(version, tsan)
        self._c = self._lib.lib
        from .bridge import bridge_for
        bridge = bridge_for(mem, cfg, self._lib.tsan, side="device")
        if bridge is not None:
            self.settle = bridge.settle
            self.enter = getattr(bridge, "enter", None)
            if self._lib.tsan:
                self.on_access = bridge
        self._pool: list[native.Call] = []
        # Looked up per call, so a memory model swapped in later is honoured.
        self._barrier = (lambda: self.mem.mb(), lambda: self.mem.rmb(),
                         lambda: self.mem.wmb())
        out = ctypes.c_void_p()
        # VERSION_1 always: the ring is little-endian, as in the reference (2.7).
        rc, _ = self._call(self._c.vfh_open, ctypes.byref(out), cfg.size,
                           cfg.features | F_VERSION_1, cfg.desc, cfg.avail, cfg.used,
                           mem.base, mem.base + mem.size, q=False)
        if rc < 0 or not out.value:
            raise InvalidRequest(f"vringh_init_user failed ({rc}) for size {cfg.size}")
        self._q = out.value
        if self._lib.tsan:
            self._c.vf_tsan_watch(mem.base, mem.base + mem.size)
        self._pop = _Pop()
        self._pop_addr = ctypes.addressof(self._pop)
        self._grow(max(16, cfg.size))
        self._finalizer = weakref.finalize(self, _close, self._lib, self._q,
                                           mem.base if self._lib.tsan else None)

    def _grow(self, cap: int) -> None:
        """Room for `cap` readable and `cap` writable iovecs per pop."""
        self._cap = cap
        self._addrs = (ctypes.c_uint64 * (2 * cap))()
        self._lens = (ctypes.c_uint32 * (2 * cap))()
        self._addrs_addr = ctypes.addressof(self._addrs)
        self._lens_addr = ctypes.addressof(self._lens)

    # -- the one door into C -------------------------------------------------
    def _call(self, fn, *args, q=True):
        if self.broken:
            raise QueueBroken("the vringh device was abandoned in the middle of a call")
        rc, exc, reports, warnings = native.invoke(self, fn, *args, q=q)
        if rc == native.ABORTED:
            # vringh's positions may be half-updated (e.g. used entry written,
            # used idx not): the device is dead, as after a kernel BUG.
            self.broken = True
            raise exc
        if exc is not None:
            raise exc
        if warnings:
            raise warnings[0]
        return rc, reports

    # -- taking buffers -------------------------------------------------------
    def pop(self) -> Chain | None:
        """The next available chain as vringh validated it; None when empty."""
        rc, reports = self._call(self._c.vfh_getdesc, self._pop_addr, self._addrs_addr,
                                 self._lens_addr, self._cap)
        p = self._pop
        if rc == 1:
            nr, nw, cap = p.n_read, p.n_write, self._cap
            if nr > cap or nw > cap:              # a long (indirect) chain
                self._grow(max(nr, nw))
                cap = self._cap
                self._c.vfh_iovecs(self._q, self._addrs_addr, self._lens_addr, cap)
            addrs, lens = self._addrs, self._lens
            return Chain(p.head, tuple(zip(addrs[:nr], lens[:nr])),
                         tuple(zip(addrs[cap:cap + nw], lens[cap:cap + nw])),
                         bool(p.indirect))
        if rc == 0:
            return None
        raise chain_violation(rc, [m for _, m in reports], bool(p.oob), p.oob_addr)

    # -- returning buffers ----------------------------------------------------
    def push(self, head: int, written_len: int) -> None:
        """vringh_complete_user: used element, virtio_wmb, used idx."""
        rc, _ = self._call(self._c.vfh_complete, head, written_len)
        if rc < 0:
            raise InvalidRequest(f"vringh_complete_user returned {rc}")

    def needs_interrupt(self) -> bool:
        rc, _ = self._call(self._c.vfh_need_notify)
        if rc < 0:
            raise InvalidRequest(f"vringh_need_notify_user returned {rc}")
        return bool(rc)

    # -- notification suppression --------------------------------------------
    def disable_notify(self) -> None:
        self._call(self._c.vfh_notify_disable)

    def enable_notify(self) -> bool:
        """True when buffers arrived meanwhile (vringh returns the opposite)."""
        return not self._call(self._c.vfh_notify_enable)[0]

    # -- state (plain reads of vringh's struct: no hooks fire) -----------------
    def _state(self) -> tuple[int, int, int]:
        out = (ctypes.c_uint32 * 3)()
        self._c.vfh_state(self._q, ctypes.addressof(out))
        return out[0], out[1], out[2]

    @property
    def last_avail_idx(self) -> int:
        return self._state()[0]

    @property
    def used_idx(self) -> int:
        """The next used idx to publish (last_used_idx + completed)."""
        _, last_used, completed = self._state()
        return (last_used + completed) & 0xFFFF

    def close(self) -> None:
        """Free the C side now (also done when the device is collected)."""
        self._finalizer()


def _close(lib, q, watched=None) -> None:
    if watched is not None:
        lib.lib.vf_tsan_unwatch(watched)
    call = ctypes.create_string_buffer(lib.call_size)
    lib.lib.vfh_close(ctypes.addressof(call), q)


def make(mem, cfg, platform) -> VringhDevice:
    """Plug-in contract entry point (`--device linux-vringh`), Linux 6.1."""
    return VringhDevice(mem, cfg, platform)


def make_612(mem, cfg, platform) -> VringhDevice:
    """The same over Linux 6.12 (`--device harness.linux.vringh:make_612`)."""
    return VringhDevice(mem, cfg, platform, version="6.12")


def make_tsan(mem, cfg, platform) -> VringhDevice:
    """The -fsanitize=thread build (`--device linux-vringh-tsan`): over a memory
    model every load/store of vringh.c is a point and a model event (bridge.py)."""
    return VringhDevice(mem, cfg, platform, tsan=True)


# harness/nativemem.py: vringh reads guest addresses as pointers.
for _f in (make, make_612, make_tsan):
    _f.native_memory = True
    _f.features = SUPPORTED
