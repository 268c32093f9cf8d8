"""The schedule-source protocol and the Schedule value (shuttle's split).

Rules:
* A source decides; the runtime (runtime.py) records.  At every scheduling
  point with more than one enabled choice the runtime calls
  `choose(options, current)` and appends the answer to the run's Schedule;
  `choose_int(n)` (a data choice) is recorded in the same stream.  Points with
  one enabled choice are not asked and not recorded, so a Schedule holds only
  real decisions and replays them in order.
* Choice ids are ints: task ids (0, 1, 2 ... in spawn order) and, from
  ACTION_BASE up, memory-model actions (a buffered store draining, a stale
  value being dropped).  `options` is sorted, so every task id precedes every
  action id.
* Optional `quick(current, first_action) -> int | None` (FuzzSource): asked
  at a decision of the running task `current` with several options, before
  they are all computed (first_action: the lowest pending action id, or
  None).  An int is the answer choose() would give, recorded the same;
  None defers to choose().  It saves evaluating blocked tasks' wake-up
  predicates.  Not used for sources that see forced points.
* Optional `per_point = True` (with quick()): quick() is asked at every
  point of a running task, whatever the options (runtime.py, _at_point).
* Randomness comes only from a `random.Random` the source owns, seeded from
  the user's seed: same seed, same schedule, in any process, with any
  PYTHONHASHSEED.
* `new_execution()` starts the next run; False means nothing is left (an
  exhausted explorer).  Call it before every run; a source used without it
  runs its first execution.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

#: Choice ids at or above this are memory-model actions, not tasks.
ACTION_BASE = 1 << 20

SCHEDULE_VERSION = 1


class ScheduleSource(Protocol):
    def new_execution(self) -> bool: ...

    def choose(self, options: Sequence[int], current: int | None) -> int: ...

    def choose_int(self, n: int) -> int: ...


class ScheduleFormatError(ValueError):
    """A serialised schedule of an unknown version or shape."""


@dataclass(frozen=True)
class Schedule:
    """The choices of one run, in order: replay it with ReplaySource."""

    version: int = SCHEDULE_VERSION
    choices: tuple[int, ...] = ()

    def __len__(self) -> int:
        return len(self.choices)

    def to_json(self) -> dict:
        return {"version": self.version, "choices": list(self.choices)}

    @classmethod
    def from_json(cls, doc) -> "Schedule":
        if not isinstance(doc, dict) or doc.get("version") != SCHEDULE_VERSION:
            raise ScheduleFormatError(f"expected a schedule of version {SCHEDULE_VERSION}, "
                                      f"got {doc!r:.80}")
        choices = doc.get("choices")
        if not isinstance(choices, list) or not all(
                isinstance(c, int) and not isinstance(c, bool) for c in choices):
            raise ScheduleFormatError("schedule 'choices' must be a list of ints")
        return cls(version=SCHEDULE_VERSION, choices=tuple(choices))
