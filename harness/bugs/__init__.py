"""The bug zoo (`vringfuzz bugs`, `--bug NAME`): see catalog.py for the entries.

`get(name)` returns a Bug or raises UsageError naming the known ones;
`driver_spec(bug)` / `device_spec(bug)` give the plug-in specs that load the
faulty side, so every engine switches a bug in through the plug-in contract.
"""
from __future__ import annotations

from harness.errors import UsageError

from .catalog import BUGS, Bug

ZOO: dict[str, Bug] = {b.name: b for b in BUGS}
CLASSES = ("barrier", "notification", "callback", "locking", "validation", "hardening",
           "in-order")


def get(name: str) -> Bug:
    bug = ZOO.get(name)
    if bug is None:
        raise UsageError(f"unknown bug {name!r}; `vringfuzz bugs` lists the "
                         f"{len(ZOO)} known ones")
    return bug


def driver_spec(bug: Bug | None, default: str = "reference") -> str:
    if bug is not None and bug.side == "driver":
        return f"harness.bugs.plugins:driver__{bug.name.replace('-', '_')}"
    return default


def device_spec(bug: Bug | None, default: str = "reference") -> str:
    if bug is not None and bug.side == "device":
        return f"harness.bugs.plugins:device__{bug.name.replace('-', '_')}"
    return default


def describe_all() -> str:
    lines = []
    for klass in CLASSES:
        group = [b for b in BUGS if b.klass == klass]
        lines.append(f"{klass} ({len(group)})")
        for b in group:
            needs = ", ".join(b.features + ((b.memory_model,) if b.memory_model != "sc" else ()))
            lines.append(f"  {b.name:<34} {b.side:<8} {needs}")
            lines.append(f"      {b.mechanism}")
            lines.append(f"      rule: {b.rule}")
            if b.history:
                lines.append(f"      history: {b.history}")
    lines.append(f"{len(BUGS)} bugs")
    return "\n".join(lines)


__all__ = ["Bug", "BUGS", "ZOO", "get", "driver_spec", "device_spec", "describe_all"]
