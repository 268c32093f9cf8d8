"""Short names for the implementations the harness ships beside the reference.

vring.contract knows only its own reference sides; targets that live in the
harness (the Linux kernel's ring) are named here, so vring never names harness.
"""
from __future__ import annotations

from vring.contract import resolve

HARNESS_BUILTIN = {
    "driver": {"linux": "harness.linux.driver:make",
               "linux-tsan": "harness.linux.driver:make_tsan"},
    "device": {"linux-vringh": "harness.linux.vringh:make"},
}


def expand(spec: str, side: str) -> str:
    """'linux' -> 'harness.linux.driver:make'; anything else unchanged."""
    return HARNESS_BUILTIN.get(side, {}).get(spec, spec)


def check(spec: str, side: str) -> str:
    """Expand and load a spec now, so a bad one is a usage error before any run."""
    full = expand(spec, side)
    resolve(full, side)
    return full
