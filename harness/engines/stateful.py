"""The stateful engine: Hypothesis state machines against one driver/device pair.

Rules:
* The machines run in batches, in the rotation RingMachine, the
  malicious-driver machine (harness/stateful_driver.py: raw descriptor tables
  against the device's pop), RingMachine, MaliciousDeviceMachine (a machine
  that only exercises a reference side is dropped when the other side is a
  plug-in, see _rotation), until the time budget is spent;
  the budget is checked between batches, and each batch is sized from the
  speed of the previous ones so that the run ends near the budget.
* Determinism: no example database, and each batch is seeded from
  (seed, batch number) through `hypothesis.seed`, so one seed replays the same
  campaign.  With no --seed a seed is drawn from os.urandom and reported.
* A failure becomes the program of operations that failed (`exc.stateful_ops`),
  shrunk by at most SHRINK_CALLS replays of ddmin (Hypothesis's own shrinking
  is off: it has no time bound), as a repro document (`harness.repro.make_doc(engine="stateful", ops=...)`) that
  `harness.stateful.replay_ops` re-runs without Hypothesis; the engine replays
  it once and reports whether the replay shows the same oracle.
"""
from __future__ import annotations

import os
import time

import hypothesis
from hypothesis import HealthCheck, Phase, Verbosity, settings
from hypothesis.stateful import run_state_machine_as_test

from vring.contract import resolve

from .. import repro, stateful_driver
from ..oracles import finding_for
from ..result import EngineResult
from ..minimize import ddmin
from ..stateful import machine_for, replay_ops

STEPS = 50              # stateful_step_count per example
FIRST_BATCH = 20        # examples in the first batch, before the speed is known
MAX_BATCH_SECONDS = 3.0
ROTATION = ("ring", "driver", "ring", "hardening")


#: Replays the shrinker may spend on a failing program (deterministic, unlike a clock).
SHRINK_CALLS = 300


def _settings(examples: int) -> settings:
    # Hypothesis's own shrinking has no time bound (it ran a 20 s check past a
    # minute); the engine stops at the first failing example and shrinks the
    # recorded program itself with a bounded ddmin over replays (_shrunk).
    phases = tuple(p for p in Phase if p is not Phase.shrink)
    return settings(max_examples=examples, database=None, deadline=None, phases=phases,
                    derandomize=False, stateful_step_count=STEPS,
                    suppress_health_check=list(HealthCheck), report_multiple_bugs=False,
                    print_blob=False, verbosity=Verbosity.quiet)


def _rotation(driver: str, device: str) -> tuple[str, ...]:
    """The malicious-device machine tests only the driver and the
    malicious-driver machine only the device: when one side is the reference
    and the other a plug-in, the machine that exercises only the reference
    is left out of the rotation."""
    if driver == "reference" and device != "reference":
        return tuple(k for k in ROTATION if k != "hardening")
    if device == "reference" and driver != "reference":
        return tuple(k for k in ROTATION if k != "driver")
    return ROTATION


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def run(opts) -> EngineResult:
    budget = float(getattr(opts, "time", None) or 60.0)
    seed = getattr(opts, "seed", None)
    if seed is None:
        seed = int.from_bytes(os.urandom(4), "little")
    driver = getattr(opts, "driver", None) or "reference"
    device = getattr(opts, "device", None) or "reference"
    out = getattr(opts, "out", None)
    # A spec that cannot load is the user's mistake (PluginError, exit 2), not
    # a finding: check both before any example runs.
    resolve(driver, "driver")
    resolve(device, "device")
    counter = [0]
    machines = {kind: machine_for(kind, driver, device, counter)
                for kind in ("ring", "hardening")}
    machines["driver"] = stateful_driver.machine_for(driver, device, counter)
    rotation = _rotation(driver, device)
    start = time.monotonic()
    batch, examples = 0, FIRST_BATCH
    result = EngineResult(engine="stateful", extra={"seed": seed})
    while True:
        elapsed = time.monotonic() - start
        if elapsed >= budget:
            break
        kind = rotation[batch % len(rotation)]
        cls = machines[kind]

        def factory(cls=cls):
            return cls()

        hypothesis.seed(seed * 100003 + batch)(factory)
        t0, n0 = time.monotonic(), counter[0]
        try:
            run_state_machine_as_test(factory, settings=_settings(examples))
        except Exception as exc:    # any failure of the implementation is a finding
            return _found(result, exc, kind, seed, driver, device, out,
                          time.monotonic() - start, counter[0], getattr(opts, "bug", None),
                          shrink=getattr(opts, "shrink", True))
        per_example = (time.monotonic() - t0) / max(counter[0] - n0, 1)
        left = budget - (time.monotonic() - start)
        examples = max(1, int(min(left, MAX_BATCH_SECONDS) / max(per_example, 1e-4)))
        batch += 1
    result.seconds = time.monotonic() - start
    result.runs = counter[0]
    result.extra["batches"] = batch
    return result


def _shrunk(doc: dict, oracle: str) -> dict:
    """The shortest program ddmin finds that still fails with the same oracle."""
    init, body = doc["ops"][0], doc["ops"][1:]

    def fails(sub):
        again = replay_ops(dict(doc, ops=[init, *sub]))
        return again is not None and again.oracle == oracle
    return dict(doc, ops=[init, *ddmin(body, fails, budget=SHRINK_CALLS)])


def _found(result, exc, kind, seed, driver, device, out, seconds, runs,
           bug=None, shrink: bool = True) -> EngineResult:
    finding = finding_for(exc)
    message = _one_line(finding.message)
    ops = getattr(exc, "stateful_ops", None)
    result.found, result.oracle, result.message = True, finding.oracle, message
    result.seconds, result.runs = seconds, runs
    result.extra["machine"] = kind
    if ops is None:
        # The failure happened outside a model operation (e.g. the plug-in
        # could not be built): nothing to replay.
        return result
    doc = repro.make_doc("stateful", signature={"oracle": finding.oracle, "message": message},
                         params={"machine": kind}, ops=ops, seed=seed,
                         driver=driver, device=device, bug=bug)
    if shrink:
        doc = _shrunk(doc, finding.oracle)
    again = replay_ops(doc)
    result.extra["replays"] = again is not None and again.oracle == finding.oracle
    result.extra["ops"] = len(doc["ops"])
    if out is not None:
        result.repro = str(repro.save(doc, out))
    return result


_run_in_process = run


def run(opts) -> EngineResult:
    """A check with a native side runs in a forked worker (harness/nativemem.py)."""
    from ..nativemem import isolated
    return isolated(opts, "stateful", lambda: _run_in_process(opts))
