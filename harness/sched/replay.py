"""ReplaySource: re-run a recorded Schedule choice by choice.

Rules:
* strict (the default, for `vringfuzz replay`): the recording must match the
  run exactly.  A recorded choice that is not enabled, a data choice out of
  range, or running past the end of the recording raises ReplayDivergence,
  which the scheduler returns as the run's error.
* lenient (strict=False, for the minimiser): a choice that cannot be followed
  falls back to "no preemption": the running task if it is enabled, else the
  lowest enabled option (0 for a data choice).  Each fallback is counted in
  `divergences`, so a shrinker can try deleting choices and keep whatever
  still fails.
"""
from __future__ import annotations

from .source import Schedule


class ReplayDivergence(Exception):
    """The run asked for a choice the recording cannot give."""


class ReplaySource:
    def __init__(self, schedule: Schedule, *, strict: bool = True):
        self.schedule = schedule
        self.strict = strict
        self._choices = schedule.choices
        self.pos = 0
        self.divergences = 0

    def new_execution(self) -> bool:
        self.pos = 0
        self.divergences = 0
        return True

    def _next(self):
        if self.pos >= len(self._choices):
            return None
        c = self._choices[self.pos]
        self.pos += 1
        return c

    def choose(self, options, current):
        at = self.pos
        c = self._next()
        if c is not None and c in options:
            return c
        if self.strict:
            why = "the recording ended" if c is None else f"recorded {c} is not enabled"
            raise ReplayDivergence(f"choice #{at}: {why}; enabled {list(options)}")
        self.divergences += 1
        return current if current is not None else options[0]

    def choose_int(self, n: int) -> int:
        at = self.pos
        c = self._next()
        if c is not None and 0 <= c < n:
            return c
        if self.strict:
            why = "the recording ended" if c is None else f"recorded {c} is not in range({n})"
            raise ReplayDivergence(f"data choice #{at}: {why}")
        self.divergences += 1
        return 0

    @property
    def finished(self) -> bool:
        """True when every recorded choice was consumed."""
        return self.pos == len(self._choices)
