"""FuzzSource: every scheduling and store-drain choice decoded from fuzzer bytes.

Rules:
* One byte per decision (DESIGN.md "Scheduler": fuzz), so a libFuzzer
  mutation of one byte changes one decision and leaves the rest of the
  schedule in place (locality is what lets coverage guidance climb).
* A byte below PREEMPT (0x80) means "no preemption": the running task goes
  on.  A byte from PREEMPT up picks `options[(b - PREEMPT) % len(options)]`,
  which may be the running task, another task, or a memory-model action (a
  buffered store draining, ACTION_BASE ids).  With no task running (the run
  starts, or a task ended) every byte picks by the same modulo rule.
* When the bytes run out the source keeps deciding, deterministically: the
  oldest pending memory-model action first (stores become visible
  eventually, as on every real machine: without this a task that spins on a
  value another task left in its store buffer livelocks the run), then no
  preemption, else the next task after the last one chosen, round robin
  (not simply the lowest: two tasks that wake each other would starve the
  device forever).  So a short input is a complete, replayable schedule and
  an empty one is a sequential run.
* `choose_int(n)` is `b % n` of the next byte (0 once exhausted).
* per_point=True (the schedule target with points="effective"): the
  runtime asks at EVERY point of a running task, so a byte is read there
  even when the running task is the only option (the byte then changes
  nothing).  Whether another task could run is asked only when the byte
  preempts: the blocked tasks' wake-up predicates, about three calls a step,
  run at the few points that need them, and a byte's position in the input
  no longer depends on them.  Without it (default) a byte is read only at a
  point with more than one option, as in every repro made before.
* `new_execution()` rewinds: the same bytes give the same schedule every
  time, in any process (no hash order, no clock, no random module).
* `decisions` counts the choices asked of this execution (the runtime asks
  only at points with more than one enabled option).
"""
from __future__ import annotations

from .source import ACTION_BASE

#: Bytes from here up preempt; below it the running task continues.
PREEMPT = 0x80


class FuzzSource:
    __slots__ = ("data", "pos", "decisions", "last", "_end", "per_point")

    def __init__(self, data: bytes = b"", per_point: bool = False):
        self.per_point = per_point
        self.data = bytes(data)
        self._end = len(self.data)    # asked at every decision
        self.pos = 0
        self.decisions = 0
        self.last = -1            # the last task chosen (round robin once exhausted)

    def new_execution(self) -> bool:
        self.pos = 0
        self.decisions = 0
        self.last = -1
        return True

    @property
    def exhausted(self) -> bool:
        return self.pos >= len(self.data)

    def quick(self, current: int, first_action: int | None) -> int | None:
        """The runtime's fast path at a decision of the running task: what
        choose() would answer when the option list does not matter to it (a
        byte below PREEMPT keeps the running task; out of bytes, the oldest
        pending action drains, else the running task goes on), the decision
        counted and its byte consumed; None leaves the byte to choose()."""
        pos = self.pos
        if pos < self._end:
            if self.data[pos] < PREEMPT:
                self.pos = pos + 1
                self.decisions += 1
                return current
            return None
        self.decisions += 1
        return current if first_action is None else first_action

    def choose(self, options, current):
        self.decisions += 1
        pos = self.pos
        if pos >= self._end:
            # Out of bytes: drain (fairness), no preemption, else the lowest option.
            last = options[-1]
            if last >= ACTION_BASE:
                for c in options:
                    if c >= ACTION_BASE:
                        return c
            if current is not None and current in options:
                return current
            return self._next_task(options)
        self.pos = pos + 1
        b = self.data[pos]
        if b < PREEMPT and current is not None and current in options:
            return current
        c = options[(b & (PREEMPT - 1)) % len(options)]
        if c < ACTION_BASE:
            self.last = c
        return c

    def _next_task(self, options) -> int:
        """Round robin: the first task option after the last task chosen."""
        last = self.last
        first = options[0]
        for c in options:
            if c >= ACTION_BASE:
                break
            if c > last:
                first = c
                break
        if first < ACTION_BASE:
            self.last = first
        return first

    def choose_int(self, n: int) -> int:
        pos = self.pos
        if pos >= len(self.data):
            return 0
        self.pos = pos + 1
        return self.data[pos] % n
