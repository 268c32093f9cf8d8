"""What guest memory a run needs: the one place that decides it.

    needs_native(driver_spec, device_spec) -> bool
    plugin_features(driver_spec, device_spec) -> int   feature bits both sides implement
    memory_for(driver_spec, device_spec, *, size, factory=GuestMemory, **kw) -> memory
    native_buffer(size) -> (mmap, real base address)
    isolated(opts, engine, fn) -> EngineResult   a native check in a forked worker

Rules:
* A plug-in factory that hands guest addresses to C code (the Linux driver
  and vringh device: DMA is identity-mapped in tools/virtio, so a descriptor
  address IS a pointer) declares `make.native_memory = True`.  Nothing here
  names Linux: any C-backed plug-in declares the same attribute.
* A factory may also declare `make.features`, the feature bits it
  implements (Linux 6.1 has no IN_ORDER); engines that draw features (the
  stateful machines) mask them with plugin_features(), so a draw is never
  refused by the plug-in.
* When either side declares native_memory, the memory is built over an anonymous mmap
  (page-aligned, zero-filled) whose `base` is the buffer's own address in
  this process; otherwise it is the ordinary kind (a bytearray at the
  default base), so pure-Python runs keep their small, stable addresses.
* `factory(size=, base=, buffer=, **kw)` builds the memory: GuestMemory, a
  memory-model class, or a closure over make_memory(model, sched, ...).  The
  memory keeps the mmap alive (its memoryview exports it); nothing is closed
  by hand, so C can never see the pages unmapped under a live queue.
* Addresses of a native run differ from process to process (ASLR); a replay
  depends only on the schedule and params, never on an address value, and
  the trace shows ring fields by name (timeline's RingNamer), not by address.
* Crashes (issue 6: "a crash must become a finding, not kill the campaign"):
  an engine wraps its whole check in `isolated()`.  When a side is native,
  the check runs in a fork (harness.linux.isolate.run_isolated); a SIGSEGV
  or abort() in C, or a worker alive long past the budget (a livelock in C),
  comes back as a "crash" finding naming the signal and the seed.  The seed
  is drawn in the parent before the fork when the user gave none, so the
  message always holds the `--seed N` that re-runs the same sequence of
  schedules (random, PCT and explore draw every choice from it).  What is
  not there: the crashing run's own schedule (it died with the worker), so
  no repro file is written; re-running with the seed, or replaying under gdb,
  is the way in.  Pure-Python checks run in-process, as before.
"""
from __future__ import annotations

import ctypes
import mmap
import os
import time

from vring.contract import PluginError, resolve
from vring.memory import GuestMemory

from .plugins import expand


def _factory(spec, side: str):
    if not spec:
        return None
    if callable(spec):                 # a make callable given directly
        return spec
    try:
        return resolve(expand(spec, side), side)
    except PluginError:
        return None              # the run's own build() reports a bad spec


def needs_native(driver_spec: str | None, device_spec: str | None) -> bool:
    """True when either side's factory declares `native_memory = True`."""
    return any(getattr(_factory(spec, side), "native_memory", False)
               for spec, side in ((driver_spec, "driver"), (device_spec, "device")))


def plugin_features(driver_spec: str | None, device_spec: str | None) -> int:
    """The feature bits both sides declare (all bits when neither declares)."""
    mask = ~0
    for spec, side in ((driver_spec, "driver"), (device_spec, "device")):
        declared = getattr(_factory(spec, side), "features", None)
        if isinstance(declared, int):
            mask &= declared
    return mask


def native_buffer(size: int):
    """An anonymous mapping of `size` bytes and its real address."""
    buf = mmap.mmap(-1, size)                      # page-aligned, zeroed
    return buf, ctypes.addressof(ctypes.c_char.from_buffer(buf))


def memory_for(driver_spec: str | None, device_spec: str | None, *, size: int,
               factory=GuestMemory, **kw):
    """The guest memory a run of these two sides needs (see the rules above)."""
    if needs_native(driver_spec, device_spec):
        buf, base = native_buffer(size)
        return factory(size=size, base=base, buffer=buf, **kw)
    return factory(size=size, **kw)


#: A worker still running this long after its budget is killed (a C livelock).
GRACE_SECONDS = 120.0


def isolated(opts, engine: str, fn):
    """fn() (an engine's check) in a forked worker when a side is native."""
    if not needs_native(getattr(opts, "driver", None), getattr(opts, "device", None)):
        return fn()
    from .linux.errors import NativeCrash
    from .linux.isolate import run_isolated
    from .result import EngineResult
    if hasattr(opts, "seed") and opts.seed is None:
        opts.seed = int.from_bytes(os.urandom(4), "little")
    budget = float(getattr(opts, "time", None) or 60.0)
    start = time.monotonic()
    try:
        return run_isolated(fn, timeout=3 * budget + GRACE_SECONDS)
    except NativeCrash as e:
        seed = getattr(opts, "seed", None)
        again = " ".join(f"--{k.replace('_', '-')} {getattr(opts, k)}"
                         for k in ("engine", "scenario", "driver", "device", "memory_model",
                                   "seed")
                         if getattr(opts, k, None) is not None)
        return EngineResult(
            engine=engine, found=True, oracle="crash", seconds=round(time.monotonic() - start, 3),
            message=f"{e} (C code of {opts.driver} / {opts.device}); the same schedules "
                    f"again: vringfuzz check {again}",
            extra={"seed": seed, "signal": e.signal, "native_crash": True})


__all__ = ["needs_native", "plugin_features", "memory_for", "native_buffer", "isolated",
           "GRACE_SECONDS"]
