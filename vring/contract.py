"""The plug-in contract: how any driver or device implementation is loaded.

    make(mem: GuestMemory, cfg: QueueConfig, platform: Platform) -> driver | device

`--driver MODULE:CALLABLE` and `--device MODULE:CALLABLE` name such a callable.
The reference sides are loaded through the very same door (names "reference").
The harness allocates and zeroes the three ring areas before calling make;
an implementation sees only their addresses.
"""
from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from itertools import repeat

from .errors import VirtioError
from .features import SUPPORTED, F_RING_PACKED
from .layout import (AVAIL_ALIGN, DESC_ALIGN, USED_ALIGN, avail_size,
                     check_queue_size, desc_table_size, used_size)
from .memory import GuestMemory

DRIVER_METHODS = ("add_sgs", "kick_prepare", "notify", "kick", "get_buf", "disable_cb",
                  "enable_cb", "enable_cb_prepare", "poll", "enable_cb_delayed",
                  "detach_unused_buf")
DEVICE_METHODS = ("pop", "push", "needs_interrupt", "enable_notify", "disable_notify")

#: Short names for built-in implementations.
BUILTIN = {
    "driver": {"reference": "vring.split.driver:make"},
    "device": {"reference": "vring.split.device:make"},
}


class PluginError(VirtioError):
    """A --driver/--device spec that cannot be loaded or lacks contract methods."""


@dataclass(frozen=True)
class QueueConfig:
    size: int
    features: int
    desc: int
    avail: int
    used: int


def setup_queue(mem: GuestMemory, size: int, features: int) -> QueueConfig:
    """Allocate and zero the three areas of a split ring (2.7 alignment table)."""
    check_queue_size(size)
    if features & F_RING_PACKED:
        raise PluginError("the packed ring (VIRTIO_F_RING_PACKED) is not implemented yet")
    desc = mem.alloc(desc_table_size(size), DESC_ALIGN)
    avail = mem.alloc(avail_size(size), AVAIL_ALIGN)
    used = mem.alloc(used_size(size), USED_ALIGN)
    return QueueConfig(size=size, features=features, desc=desc, avail=avail, used=used)


def resolve(spec: str, side: str):
    """Turn 'module:callable' (or a built-in short name) into the make callable."""
    if side not in BUILTIN:
        raise PluginError(f"unknown side {side!r}")
    target = BUILTIN[side].get(spec, spec)
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise PluginError(f"--{side} {spec!r}: expected MODULE:CALLABLE or one of "
                          f"{', '.join(sorted(BUILTIN[side]))}")
    # Already imported: what import_module would return, without its machinery
    # (every run resolves each side several times).
    module = sys.modules.get(module_name)
    if module is None:
        try:
            module = importlib.import_module(module_name)
        except ImportError as e:
            raise PluginError(f"--{side} {spec!r}: cannot import {module_name!r} ({e})") from None
    make = getattr(module, attr, None)
    if not callable(make):
        raise PluginError(f"--{side} {spec!r}: {module_name} has no callable {attr!r}")
    return make


def check_methods(obj, side: str, spec: str = "") -> None:
    names = DRIVER_METHODS if side == "driver" else DEVICE_METHODS
    try:                # the common case in C: every name there and callable
        if all(map(callable, map(getattr, repeat(obj), names))):
            return
    except AttributeError:
        pass
    missing = [m for m in names if not callable(getattr(obj, m, None))]
    if missing:
        raise PluginError(f"--{side} {spec or type(obj).__name__}: missing contract "
                          f"method(s) {', '.join(missing)}")


def build(spec: str, side: str, mem: GuestMemory, cfg: QueueConfig, platform):
    """Load and construct one side, checking it offers the contract methods."""
    obj = resolve(spec, side)(mem, cfg, platform)
    check_methods(obj, side, spec)
    return obj


__all__ = ["QueueConfig", "PluginError", "setup_queue", "resolve", "build",
           "check_methods", "BUILTIN", "DRIVER_METHODS", "DEVICE_METHODS", "SUPPORTED"]
