#!/usr/bin/env python3
"""Fuzz target: a whole scheduled run, every choice made by the fuzzer's bytes.

Input format (total: missing bytes read as zero, extra bytes are schedule):

    scenario u8 | model+features u8 | shape u8 | counts u8 | schedule bytes...

* scenario: SCENARIOS[b % 5] (net, net-tx, net-rx, blk, draft3);
* model+features: memory model MODELS[(b & 3) % 3] (sc, tso, relaxed); bit 2
  INDIRECT_DESC, bit 3 EVENT_IDX, bit 4 IN_ORDER;
* shape: queue size (2, 4, 8, 4)[b & 3] (blk: at least 4), NAPI budget
  1 + bit 2, submitters 1 + bit 3;
* counts: rx packets 1 + (b & 3) % 3, tx buffers 1 + bit 2, blk requests
  1 + bit 3, draft buffers 2 + (b >> 4 & 3) % 3.
Counts are small on purpose: runs of ~50-500 scheduling points (about 190 on
average under libFuzzer), and the planted bugs need no more (the explore
engine finds them with 3 buffers).  The cost is per point (~3-4 us in the
scheduler and memory model), not per run setup.

The rest drives `harness.world.run_once` through a FuzzSource (one byte per
point of a running task, per_point, and per decision where no task runs;
harness/sched/fuzzsource.py), trace off and the schedule not recorded: a
finding runs again, recording, for its repro.
Every oracle of the scheduled engines applies (exactly-once, length bound,
data integrity, ordering, the spec monitor, lockdep, liveness at quiescence,
deadlock, step limit): a finding raises `ScheduleFinding`, whose `oracle` is
the world's (so the repro signature matches the scheduled engines') and which
carries the params and the recorded schedule for a scheduled-style repro.

Campaigns mutate inputs with fuzz/schedule_mutator.py beside libFuzzer's byte
mutations (VRINGFUZZ_NO_MUTATOR=1: bytes only).

Implementation under test: VRINGFUZZ_DRIVER / VRINGFUZZ_DEVICE (plug-in specs,
default the reference); a planted bug from VRINGFUZZ_BUG (`--bug`).  A bug
fixes the scenario (its own, when it names one), adds the features it needs
and raises the memory model to at least the one it needs; the bytes still
choose everything else.  VRINGFUZZ_MODEL (`--memory-model`) pins the memory
model instead: the model byte's low bits are then ignored, bug or no bug, as
`--memory-model` overrides a bug's model on the scheduled engines.

The memory model offers only the choices that can change what a task sees
(params "points": "effective", POINTS below): no point before a fence that
does nothing in the model, and a relaxed stale value kept or dropped by the
load that reads it (a data byte there) instead of a choice of its own.
VRINGFUZZ_POINTS=all gives every choice and the old byte rule (a byte per
decision), as before: repros made before "points" existed replay with it.
"""
from __future__ import annotations

import os
import sys


from fuzz.instrument import instrumentation  # noqa: E402  (imports no vring)

# Coverage of the ring sides and the drafts; the rest of vring is plumbing here
# (the memory models override the accessors; errors, layout: no branches), and
# so is vring.drafts.workload: the drafts' checks, run after every NAPI poll,
# are oracles, whose branches say nothing new about a schedule.
UNDER_TEST = ("vring.split.driver", "vring.split.device", "vring.split.chain",
              "vring.features", "vring.drafts.draft1", "vring.drafts.draft2",
              "vring.drafts.draft3")

# Branches only: the bytes are choices, so compared values say nothing to them.
with instrumentation(__name__ == "__main__", "VRINGFUZZ_DRIVER", "VRINGFUZZ_DEVICE",
                     under_test=UNDER_TEST, compares=False):
    import vring.split.device  # noqa: F401  (the reference, instrumented)
    import vring.split.driver  # noqa: F401
    import vring.drafts.draft1  # noqa: F401  (the drafts load lazily: import them here)
    import vring.drafts.draft2  # noqa: F401
    import vring.drafts.draft3  # noqa: F401
    import harness.scenarios.blk  # noqa: F401
    import harness.scenarios.drafts  # noqa: F401
    import harness.scenarios.net  # noqa: F401
    import harness.bugs.faults  # noqa: F401
    from harness import bugs as _bugs
    from harness import memmodel
    from harness.sched.fuzzsource import FuzzSource
    from harness.sched.runtime import Workers
    from harness.world import run_once
    from fuzz.common import FuzzFinding, plugin_spec

ENV_BUG = "VRINGFUZZ_BUG"
ENV_MODEL = "VRINGFUZZ_MODEL"
ENV_POINTS = "VRINGFUZZ_POINTS"
#: The memory model's choices (harness/memmodel.py, "points"): only those that
#: can change what a task observes.  A byte spent on a no-op fence or on a
#: stale drop no load reads is a byte libFuzzer mutates for nothing, and a
#: step the exec pays for (41% of the relaxed steps of a campaign's corpus
#: were stale drops).  Repros carry it in their params.
POINTS = "effective"
SCENARIOS = ("net", "net-tx", "net-rx", "blk", "draft3")
MODELS = ("sc", "tso", "relaxed")
HEADER = 4
MAX_STEPS = 5000        # small runs take < 1,000 points; more is a livelock


class ScheduleFinding(FuzzFinding):
    """An oracle of the scheduled run fired; `oracle` is the world's."""

    def __init__(self, finding, params: dict, schedule, steps: int):
        super().__init__(finding.message)
        self.oracle = finding.oracle
        self.params = params
        self.schedule = schedule
        self.steps = steps


def _bit(b: int, k: int) -> int:
    return (b >> k) & 1


def check_model(model: str | None) -> str | None:
    if model is not None and model not in MODELS:
        raise ValueError(f"memory model {model!r}: expected one of {', '.join(MODELS)}")
    return model


def decode_params(data: bytes, *, driver="reference", device="reference",
                  bug=None, model=None, points=POINTS) -> dict:
    """The scenario parameters the first HEADER bytes choose (see the docstring);
    `model` pins the memory model; `points`: the memory model's choices."""
    head = bytes(data[:HEADER]).ljust(HEADER, b"\0")
    b0, b1, b2, b3 = head
    scenario = SCENARIOS[b0 % len(SCENARIOS)]
    pinned = check_model(model)
    model = pinned or MODELS[(b1 & 3) % 3]
    feats = [name for bit, name in ((2, "indirect"), (3, "event_idx"), (4, "in_order"))
             if _bit(b1, bit)]
    if bug is not None:
        from harness.scenarios import names
        if bug.scenario in names():
            scenario = bug.scenario
        if pinned is None and MODELS.index(bug.memory_model) > MODELS.index(model):
            model = bug.memory_model
        feats += [f for f in bug.features if f not in feats]
    if scenario == "blk" and "indirect" not in feats:
        feats.append("indirect")   # blk's requests are indirect tables (scenarios/blk.py)
    size = (2, 4, 8, 4)[b2 & 3]
    if scenario == "blk":
        size = max(size, 4)        # a request is 3 entries; a table holds <= size (2.7.5.3.1)
    params = {"scenario": scenario, "memory_model": model, "features": ",".join(feats),
              "size": size, "budget": 1 + _bit(b2, 2), "submitters": 1 + _bit(b2, 3),
              "rx_packets": 1 + (b3 & 3) % 3, "tx_buffers": 1 + _bit(b3, 2),
              "requests": 1 + _bit(b3, 3), "buffers": 2 + ((b3 >> 4) & 3) % 3,
              "slots": size, "max_steps": MAX_STEPS, "points": memmodel.check_points(points),
              "driver": _bugs.driver_spec(bug, driver),
              "device": _bugs.device_spec(bug, device)}
    if bug is not None:
        params["bug"] = bug.name
    return params


class ScheduleTarget:
    """One fuzz target instance (run_once builds every run fresh: no reuse to
    reset; only its parked task greenlets serve the next run, holding nothing)."""

    def __init__(self, driver=None, device=None, bug=None, model=None, points=None):
        self.driver = plugin_spec("driver", driver)
        self.device = plugin_spec("device", device)
        name = bug if bug is not None else os.environ.get(ENV_BUG) or None
        self.bug = _bugs.get(name) if name else None
        model = model if model is not None else os.environ.get(ENV_MODEL)
        self.model = check_model(model or None)
        # A repro made before "points" existed replays with "all" (fuzz_impl).
        self.points = memmodel.check_points(points or os.environ.get(ENV_POINTS) or POINTS)
        self.last_steps = 0           # scheduling points of the last run
        self.last_decisions = 0       # of which the bytes decided
        self.workers = Workers()      # task greenlets, reused run after run
        self._decoded: dict = {}      # header (and sides) -> params: decoding is pure

    def params(self, data: bytes) -> dict:
        return dict(self._params(data))

    def _params(self, data: bytes) -> dict:
        """decode_params, memoised; the dict returned is shared: do not change it."""
        key = (bytes(data[:HEADER]), self.driver, self.device, self.bug, self.model,
               self.points)
        p = self._decoded.get(key)
        if p is None:
            if len(self._decoded) >= 4096:
                self._decoded.clear()
            p = self._decoded[key] = decode_params(data, driver=self.driver,
                                                   device=self.device, bug=self.bug,
                                                   model=self.model, points=self.points)
        return p

    def run(self, data: bytes, *, trace: bool = False, record: bool = True):
        """The RunReport of one input (no exception for a finding).  With
        points="effective" a byte is read at every point (FuzzSource
        per_point); record=False then skips finding which points were
        decisions, and the report has no schedule."""
        source = FuzzSource(bytes(data[HEADER:]), per_point=self.points == "effective")
        # run_once copies the params it is given (resolve_params): the memo is safe.
        report = run_once(self._params(data), source, trace=trace, workers=self.workers,
                          record=record)
        self.last_steps, self.last_decisions = report.steps, source.decisions
        return report

    def __call__(self, data: bytes) -> None:
        report = self.run(data, record=False)
        if report.finding is not None:
            # The same run again, recording its schedule for the repro (the
            # choices do not depend on recording: the same finding).
            report = self.run(data)
            raise ScheduleFinding(report.finding, report.params, report.schedule,
                                  report.steps)


_target: ScheduleTarget | None = None


def TestOneInput(data: bytes) -> None:  # noqa: N802  (the atheris/OSS-Fuzz name)
    global _target
    if _target is None:
        _target = ScheduleTarget()
    _target(data)


def main(argv=None) -> None:
    from fuzz.common import fuzz_main
    from fuzz.schedule_mutator import custom_mutator
    fuzz_main(sys.argv if argv is None else argv, TestOneInput, custom_mutator)


if __name__ == "__main__":
    main()
