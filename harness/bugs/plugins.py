"""Plug-in factories for bugged sides: `harness.bugs.plugins:driver__<bug_name>`.

Resolved on attribute access (PEP 562), so every zoo entry is loadable by a
spec string, in this process or in a fuzzer's subprocess.
"""
from __future__ import annotations


def __getattr__(name: str):
    side, sep, bug_name = name.partition("__")
    if not sep or side not in ("driver", "device"):
        raise AttributeError(name)
    from . import ZOO
    bug = ZOO.get(bug_name.replace("_", "-"))
    if bug is None or bug.side != side or bug.make is None:
        raise AttributeError(name)
    return bug.make
