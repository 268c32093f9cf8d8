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
* When the bytes run out the source keeps deciding, deterministically: no
  preemption, else the lowest option (options are sorted: tasks first).  So
  a short input is a complete, replayable schedule and an empty one is the
  sequential run.
* `choose_int(n)` is `b % n` of the next byte (0 once exhausted).
* `new_execution()` rewinds: the same bytes give the same schedule every
  time, in any process (no hash order, no clock, no random module).
* `decisions` counts the choices asked of this execution (the runtime asks
  only at points with more than one enabled option).
"""
from __future__ import annotations

#: Bytes from here up preempt; below it the running task continues.
PREEMPT = 0x80


class FuzzSource:
    __slots__ = ("data", "pos", "decisions")

    def __init__(self, data: bytes = b""):
        self.data = bytes(data)
        self.pos = 0
        self.decisions = 0

    def new_execution(self) -> bool:
        self.pos = 0
        self.decisions = 0
        return True

    @property
    def exhausted(self) -> bool:
        return self.pos >= len(self.data)

    def choose(self, options, current):
        self.decisions += 1
        pos = self.pos
        if pos >= len(self.data):
            # Out of bytes: no preemption, else the lowest option.
            if current is not None and current in options:
                return current
            return options[0]
        self.pos = pos + 1
        b = self.data[pos]
        if b < PREEMPT and current is not None and current in options:
            return current
        return options[(b & (PREEMPT - 1)) % len(options)]

    def choose_int(self, n: int) -> int:
        pos = self.pos
        if pos >= len(self.data):
            return 0
        self.pos = pos + 1
        return self.data[pos] % n
