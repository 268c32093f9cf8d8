"""What the scheduled engines (random, pct, explore) share.

* `params_for(opts)`: the scenario parameters of a check, from the options,
  a planted bug's needs (its scenario, features and memory model, unless the
  user chose them) and the scenario's defaults.
* `save_finding(...)`: a failing run becomes a repro file (the scenario,
  params and the recorded schedule) plus, beside it, its swimlane SVG.
* `sampling_loop(...)`: random and PCT run fresh schedules until the budget
  is spent or something is found.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from .. import bugs, repro
from ..errors import UsageError
from ..progress import for_opts
from ..result import EngineResult
from ..world import run_once

#: The small configuration of issue 3: explored exhaustively within bound 2.
SMALL = {"scenario": "net-rx", "size": 4, "rx_packets": 3, "budget": 2}


def params_for(opts, *, small: bool = False) -> dict:
    bug = bugs.get(opts.bug) if getattr(opts, "bug", None) else None
    params: dict = dict(SMALL) if small or getattr(opts, "scenario", None) == "small" else {}
    scenario = getattr(opts, "scenario", None)
    if scenario and scenario != "small":
        params["scenario"] = scenario
    elif "scenario" not in params:
        from ..scenarios import names
        params["scenario"] = bug.scenario if bug and bug.scenario in names() else "net"
    model = getattr(opts, "memory_model", None)
    params["memory_model"] = model or (bug.memory_model if bug else "sc")
    feats = getattr(opts, "features", None)
    if feats is not None:
        params["features"] = feats
    elif bug and bug.features:
        params["features"] = ",".join(bug.features)
    if getattr(opts, "size", None):
        params["size"] = opts.size
    params.update(scenario_params(params["scenario"], getattr(opts, "param", None) or ()))
    params["driver"] = bugs.driver_spec(bug, getattr(opts, "driver", None) or "reference")
    params["device"] = bugs.device_spec(bug, getattr(opts, "device", None) or "reference")
    if bug is not None:
        params["bug"] = bug.name
    return params


def scenario_params(scenario: str, given) -> dict:
    """`--param NAME=VALUE` options as scenario parameters: NAME one the scenario
    takes, VALUE a JSON value (3, true) or else a string."""
    from ..scenarios import get
    from ..world import BASE_PARAMS
    # The scenario and the sides have options of their own (--scenario, --driver, --device).
    known = {k for k in dict(BASE_PARAMS, **get(scenario).defaults)
             if k not in ("scenario", "driver", "device")}
    out = {}
    for item in given:
        name, eq, raw = item.partition("=")
        if not eq or name not in known:
            takes = ", ".join(sorted(known))
            raise UsageError(f"--param {item!r}: expected NAME=VALUE with NAME one of "
                             f"{scenario}'s parameters: {takes}")
        try:
            out[name] = json.loads(raw)
        except ValueError:
            out[name] = raw
    return out


def seed_of(opts) -> int:
    seed = getattr(opts, "seed", None)
    return int.from_bytes(os.urandom(4), "little") if seed is None else int(seed)


def save_finding(engine: str, report, *, seed, out) -> str | None:
    """Write the repro (and its swimlane beside it); returns the repro path."""
    if out is None:
        return None
    from ..timeline import render_svg
    p = report.params
    doc = repro.make_doc(engine, scenario=p["scenario"], params=p, seed=seed,
                         schedule=report.schedule, memory_model=p["memory_model"],
                         driver=p["driver"], device=p["device"], bug=p.get("bug"),
                         signature={"oracle": report.finding.oracle,
                                    "message": report.finding.message})
    path = repro.save(doc, out)
    layout = report.layout
    svg = render_svg(report.events, report.task_names, f"{report.finding.oracle}: "
                     f"{report.finding.message}", layout=layout,
                     failing_step=report.failing_step)
    Path(path).with_suffix(".svg").write_text(svg)
    return str(path)


def result_from(engine: str, report, *, runs: int, seconds: float, seed, out,
                extra: dict | None = None) -> EngineResult:
    res = EngineResult(engine=engine, runs=runs, seconds=round(seconds, 3),
                       extra={"seed": seed, "scenario": report.params["scenario"]
                              if report else None, **(extra or {})})
    if report is not None and report.finding is not None:
        res.found = True
        res.oracle = report.finding.oracle
        res.message = report.finding.message
        res.repro = save_finding(engine, report, seed=seed, out=out)
    return res


def sampling_loop(engine: str, opts, make_source) -> EngineResult:
    """Run schedules from one seeded source until found or out of time."""
    params = params_for(opts)
    seed = seed_of(opts)
    source = make_source(seed, params)
    budget = float(getattr(opts, "time", None) or 10.0)
    progress = for_opts(opts, engine)
    start = time.monotonic()
    runs = 0
    last = None
    while True:
        source.new_execution()
        # Tracing costs; a failing run is replayed with the trace on below.
        report = run_once(params, source, trace=False)
        runs += 1
        if report.finding is not None:
            last = _with_trace(report)
            break
        last = report
        progress.update(runs, scenario=params["scenario"], model=params["memory_model"])
        if time.monotonic() - start >= budget:
            break
    return result_from(engine, last, runs=runs, seconds=time.monotonic() - start,
                       seed=seed, out=getattr(opts, "out", None),
                       extra={"memory_model": params["memory_model"]})


def _with_trace(report):
    """Replay a failing run's schedule with tracing on, for the repro's picture."""
    from ..sched.replay import ReplaySource
    traced = run_once(report.params, ReplaySource(report.schedule), trace=True)
    if traced.finding is None or traced.finding.oracle != report.finding.oracle:
        return report  # keep the untraced run's verdict; the repro still replays it
    return traced
