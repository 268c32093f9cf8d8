"""The scenario registry: name -> Scenario.

A scenario is a workload of tasks over one or more virtqueues, built inside a
harness.world.World.  Rules every scenario keeps:

* `build(world)` allocates its buffers, opens its queues (world.queue) and
  spawns its tasks (world.task); it must not touch guest memory through a
  task-less scheduling point after the run starts.
* Tasks that wait for work block with a reason starting "wait-kick" (device
  side) or "wait-interrupt" (driver side): that is how the world tells
  quiescence (check liveness) from a deadlock (a task waits for a lock).
* Driver-side tasks that own the workload are non-daemon and return when all
  their buffers came back; device tasks are daemons that loop forever.
* Payloads follow oracles.pattern keyed by the buffer's guest address, so each
  side can check what the other wrote without sharing Python state.
* Locks come from world.lock(name) (they order memory, see world.py); a
  Python flag that hands work to another task is set after a mem.mb().
* Parameters are plain JSON values with defaults in `defaults`; a run is fully
  determined by (scenario, params, schedule).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Callable


@dataclass(frozen=True)
class Scenario:
    name: str
    doc: str
    build: Callable          # build(world) -> None
    defaults: dict = field(default_factory=dict)


@functools.cache
def _registry() -> dict[str, Scenario]:
    """Built once: the scenario modules' SCENARIOS are constants (every run
    looks its scenario up, twice)."""
    from . import blk, drafts, net
    out: dict[str, Scenario] = {}
    for mod in (net, blk, drafts):
        for sc in mod.SCENARIOS:
            out[sc.name] = sc
    return out


def names() -> list[str]:
    return sorted(_registry())


def get(name: str) -> Scenario:
    reg = _registry()
    if name not in reg:
        from harness.errors import UsageError
        raise UsageError(f"unknown scenario {name!r} (known: {', '.join(sorted(reg))})")
    return reg[name]


__all__ = ["Scenario", "get", "names"]
