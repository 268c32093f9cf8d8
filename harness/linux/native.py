"""The loaded ring library: ctypes prototypes and the hooks C calls back into.

One library per kernel version holds both kernel files: virtio_ring.c (the
driver, vf_* entry points) and vringh.c (the device, vfh_* entry points).

Rules:
* One library per (version, tsan) per process, loaded on first use; the hook
  table is installed into it once.  The hooks are the only way C reaches
  Python, and they hold no run state: each finds the API call in progress
  through a ContextVar (`CURRENT`), which greenlet keeps per greenlet, so a
  scheduler may switch tasks inside a hook while another task enters C.
  A call's `driver` is the Python side that made it, driver or device: the
  hooks use its `mem`, `platform`, `_barrier` and `on_access`.
* A hook never lets an exception escape into ctypes (which would print and
  swallow it): it stores the exception in the call and returns the call's
  address, and the glue longjmp()s back to the call's wrapper; the driver
  re-raises it once C has returned.
* Every barrier and notify hook first calls `driver.settle` (set when the
  side runs over a scheduled memory model, bridge.py): the tsan build's
  store in flight is issued, the plain build's ring stores are told to the
  spec monitor, before the barrier or notify that follows them.
"""
from __future__ import annotations

import ctypes
from contextvars import ContextVar
from ctypes import (CFUNCTYPE, POINTER, c_char_p, c_int, c_size_t, c_uint,
                    c_uint16, c_uint32, c_uint64, c_ulonglong, c_void_p)

from vring.errors import InvalidRequest

from .build import build

ABORTED = -1000
MB, RMB, WMB = 0, 1, 2
BUG, WARN = 0, 1

#: The API call in progress in this greenlet/context (a Call), or None.
CURRENT: ContextVar = ContextVar("vringfuzz_linux_call", default=None)

_BARRIER = CFUNCTYPE(c_size_t, c_int)
_BUGFN = CFUNCTYPE(c_size_t, c_int, c_char_p, c_char_p, c_int)
_REPORT = CFUNCTYPE(c_size_t, c_int, c_char_p)
_NOTIFY = CFUNCTYPE(c_size_t)
_GALLOC = CFUNCTYPE(c_size_t, c_size_t)
_GFREE = CFUNCTYPE(c_int, c_size_t)
_ACCESS = CFUNCTYPE(c_size_t, c_size_t, c_int, c_int)


class _Hooks(ctypes.Structure):
    _fields_ = [("barrier", _BARRIER), ("bug", _BUGFN), ("report", _REPORT),
                ("notify", _NOTIFY), ("galloc", _GALLOC), ("gfree", _GFREE),
                ("access", _ACCESS)]


def _abort(call, exc: BaseException) -> int:
    if call.exc is None:
        call.exc = exc
    return call.addr


def _settle(call) -> None:
    settle = call.driver.settle
    if settle is not None:
        settle()


def _on_barrier(kind: int) -> int:
    call = CURRENT.get()
    if call is None:
        return 0
    try:
        _settle(call)
        call.driver._barrier[kind]()
    except BaseException as e:          # noqa: BLE001 - must not cross into C
        return _abort(call, e)
    return 0


def _on_bug(kind: int, what: bytes, file: bytes, line: int) -> int:
    call = CURRENT.get()
    if call is None:
        return 0
    from .errors import KernelBug, KernelWarning
    cls = KernelBug if kind == BUG else KernelWarning
    err = cls(what.decode(errors="replace"), file.decode(errors="replace").rsplit("/", 1)[-1],
              line)
    if kind == BUG:
        return _abort(call, err)
    call.warnings.append(err)
    return 0


def _on_report(level: int, msg: bytes) -> int:
    call = CURRENT.get()
    if call is not None:
        call.reports.append((level, msg.decode(errors="replace").strip()))
    return 0


def _on_notify() -> int:
    call = CURRENT.get()
    if call is None:
        return 0
    try:
        _settle(call)
        call.driver.platform.notify_device()
    except BaseException as e:          # noqa: BLE001
        return _abort(call, e)
    return 0


def _on_galloc(size: int) -> int:
    call = CURRENT.get()
    if call is None:
        return 0
    try:
        return call.driver.mem.alloc(size, 16)
    except InvalidRequest:
        return 0                         # out of guest memory: Linux falls back to direct
    except BaseException as e:          # noqa: BLE001
        _abort(call, e)
        return 0


def _on_gfree(addr: int) -> int:
    call = CURRENT.get()
    if call is None:
        return 0
    mem = call.driver.mem
    if not mem.contains(addr, 1):
        return 0
    try:
        mem.free(addr)
    except BaseException as e:          # noqa: BLE001 - a bad free of guest memory
        call.exc = call.exc or e
    return 1                             # never hand guest memory to libc free()


def _on_access(addr: int, size: int, is_write: int) -> int:
    call = CURRENT.get()
    if call is None:
        return 0
    listener = call.driver.on_access
    if listener is None:
        return 0
    try:
        listener(addr, size, bool(is_write))
    except BaseException as e:          # noqa: BLE001
        return _abort(call, e)
    return 0


class Library:
    """One loaded ring library with its prototypes and installed hooks."""

    def __init__(self, path):
        self.path = str(path)
        lib = self.lib = ctypes.CDLL(self.path)
        q, c = c_void_p, c_void_p
        proto = {
            "vf_open": (c_int, [c, POINTER(c_void_p), c_uint, c_ulonglong, c_void_p,
                                c_void_p, c_void_p]),
            "vf_close": (c_int, [c, q]),
            "vf_add_sgs": (c_int, [c, q, c_uint, c_uint, POINTER(c_uint64),
                                   POINTER(c_uint32), c_size_t]),
            "vf_kick_prepare": (c_int, [c, q]), "vf_notify_device": (c_int, [c, q]),
            "vf_kick": (c_int, [c, q]), "vf_enable_cb": (c_int, [c, q]),
            "vf_enable_cb_delayed": (c_int, [c, q]), "vf_is_broken": (c_int, [c, q]),
            "vf_disable_cb": (c_int, [c, q]),
            "vf_enable_cb_prepare": (c_int, [c, q, POINTER(c_uint)]),
            "vf_poll": (c_int, [c, q, c_uint]),
            "vf_get_buf": (c_int, [c, q, POINTER(c_size_t), POINTER(c_uint)]),
            "vf_detach_unused_buf": (c_int, [c, q, POINTER(c_size_t)]),
            "vf_num_free": (c_uint, [q]), "vf_break": (None, [q]),
            "vf_free_list": (c_uint, [q, POINTER(c_uint16), c_uint]),
            "vf_call_size": (c_size_t, []),
            "vf_selftest": (c_int, [c, q, c_int]),
            "vf_set_hooks": (None, [c_void_p]),
            # drivers/vhost/vringh.c (glue/vf_vringh.c); pointers as c_void_p
            # so that callers may pass precomputed addresses (the pop path).
            "vfh_open": (c_int, [c, POINTER(c_void_p), c_uint, c_ulonglong, c_void_p,
                                 c_void_p, c_void_p, c_size_t, c_size_t]),
            "vfh_close": (c_int, [c, q]),
            "vfh_getdesc": (c_int, [c, q, c_void_p, c_void_p, c_void_p, c_uint]),
            "vfh_iovecs": (None, [q, c_void_p, c_void_p, c_uint]),
            "vfh_complete": (c_int, [c, q, c_uint, c_uint]),
            "vfh_need_notify": (c_int, [c, q]),
            "vfh_notify_enable": (c_int, [c, q]),
            "vfh_notify_disable": (c_int, [c, q]),
            "vfh_state": (None, [q, c_void_p]),
        }
        for name, (res, args) in proto.items():
            fn = getattr(lib, name)
            fn.restype, fn.argtypes = res, args
        self.call_size = lib.vf_call_size()
        self.tsan = hasattr(lib, "vf_tsan_watch")
        if self.tsan:
            lib.vf_tsan_watch.restype = None
            lib.vf_tsan_watch.argtypes = [c_size_t, c_size_t]
            lib.vf_tsan_unwatch.restype = None
            lib.vf_tsan_unwatch.argtypes = [c_size_t]
        # Keep the CFUNCTYPE objects alive as long as the library.
        self._callbacks = dict(
            barrier=_BARRIER(_on_barrier), bug=_BUGFN(_on_bug), report=_REPORT(_on_report),
            notify=_NOTIFY(_on_notify), galloc=_GALLOC(_on_galloc), gfree=_GFREE(_on_gfree),
            access=_ACCESS(_on_access))
        self.install_hooks()

    def install_hooks(self, barrier: bool = True) -> None:
        """(Re)install the hook table; barrier=False leaves the barrier hook NULL
        (for measuring what a hook costs, bench.py)."""
        cbs = dict(self._callbacks)
        if not barrier:
            cbs["barrier"] = _BARRIER()
        self._hooks = _Hooks(**cbs)
        self.lib.vf_set_hooks(ctypes.byref(self._hooks))


_LOADED: dict = {}


def load(version: str = "6.1", tsan: bool = False) -> Library:
    """Build (cached) and load the library once per process."""
    key = (version, tsan)
    lib = _LOADED.get(key)
    if lib is None:
        lib = _LOADED[key] = Library(build(version, tsan=tsan))
    return lib


def load_path(path) -> Library:
    """Load a library built elsewhere (`vringfuzz linux build --patch ...`), once
    per process and path; whether it is a tsan build is read from its symbols."""
    import os
    key = os.path.realpath(str(path))
    lib = _LOADED.get(key)
    if lib is None:
        if not os.path.isfile(key):
            from .errors import LinuxBuildError
            raise LinuxBuildError(f"{path}: no such ring library (build one with "
                                  f"`vringfuzz linux build --patch FILE.diff`)")
        lib = _LOADED[key] = Library(key)
    return lib


class Call:
    """One API call in flight: its jmp_buf (C side), findings and exception."""

    __slots__ = ("driver", "buf", "addr", "exc", "reports", "warnings")

    def __init__(self, side, size: int):
        self.driver = side
        self.buf = ctypes.create_string_buffer(size)
        self.addr = ctypes.addressof(self.buf)
        self.exc = None
        self.reports: list[tuple[int, str]] = []
        self.warnings: list = []


def invoke(side, fn, *args, q=True):
    """Run one C entry point for a driver or device object: the one door into C.

    `side` has `_pool` (reusable Call records), `_lib`, `_q` (the C queue),
    `enter`/`settle` (the access bridge's hooks, or None) and `log`.  Returns
    (rc, exc, reports, warnings); the caller decides what an abort means for
    its own state.
    """
    pool = side._pool
    if side.enter is not None:
        side.enter()
    call = pool.pop() if pool else Call(side, side._lib.call_size)
    token = CURRENT.set(call)
    try:
        rc = fn(call.addr, side._q, *args) if q else fn(call.addr, *args)
    finally:
        CURRENT.reset(token)
        if side.settle is not None:
            side.settle()            # the last access of the call (bridge.py)
    exc, reports, warnings = call.exc, call.reports, call.warnings
    if exc is not None or reports or warnings:
        call.exc, call.reports, call.warnings = None, [], []
    pool.append(call)
    if reports:
        side.log.extend(reports)
    return rc, exc, reports, warnings

