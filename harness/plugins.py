"""Short names for the implementations the harness ships beside the reference.

vring.contract knows only its own reference sides; targets that live in the
harness (the Linux kernel's ring) are named here, so vring never names harness.
"""
from __future__ import annotations

import os

from vring.contract import resolve

HARNESS_BUILTIN = {
    "driver": {"linux": "harness.linux.driver:make",
               "linux-tsan": "harness.linux.driver:make_tsan"},
    "device": {"linux-vringh": "harness.linux.vringh:make",
               "linux-vringh-tsan": "harness.linux.vringh:make_tsan"},
}


def expand(spec: str, side: str) -> str:
    """'linux' -> 'harness.linux.driver:make'; 'linux:LIB.so' -> that library
    (a build of `vringfuzz linux build --patch`); anything else unchanged."""
    if side == "driver" and spec.startswith(("linux:", "linux-tsan:")):
        return "harness.linux.lib:" + os.path.abspath(spec.split(":", 1)[1])
    return HARNESS_BUILTIN.get(side, {}).get(spec, spec)


def check(spec: str, side: str) -> str:
    """Expand and load a spec now, so a bad one is a usage error before any run."""
    full = expand(spec, side)
    resolve(full, side)
    return full
