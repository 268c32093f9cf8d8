"""harness.sched: the deterministic scheduler and its schedule sources.

runtime.py runs tasks on greenlets and records every choice; source.py holds
the ScheduleSource protocol and the Schedule value; one module per policy:
random.py, pct.py, replay.py, explore.py (DFS + preemption bound + sleep sets).
"""
from .explore import ExploreDivergence, ExploreReport, ExploreSource, explore, independent
from .pct import PCTSource
from .random import RandomSource
from .replay import ReplayDivergence, ReplaySource
from .runtime import (ABANDON, Abandoned, Action, Deadlock, RunOutcome, Scheduler,
                      SchedulerError, StepLimit, Task, TaskFailed, resolve_events)
from .source import ACTION_BASE, Schedule, ScheduleFormatError, ScheduleSource

__all__ = ["Scheduler", "Task", "Action", "RunOutcome", "TaskFailed", "Deadlock", "StepLimit",
           "Abandoned", "SchedulerError", "ABANDON", "ACTION_BASE", "resolve_events",
           "Schedule", "ScheduleSource", "ScheduleFormatError",
           "RandomSource", "PCTSource", "ReplaySource", "ReplayDivergence",
           "ExploreSource", "ExploreReport", "ExploreDivergence", "explore", "independent"]
