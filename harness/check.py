"""`vringfuzz check`: dispatch to one engine module under harness/engines/.

Each engine module exposes `run(opts) -> EngineResult`; `opts` carries the
parsed options (engine, scenario, target, bug, driver, device, memory_model,
time, seed, out, size, features, param, depth, preemption_bound, jobs, reduction).
"""
from __future__ import annotations

import importlib

from harness.errors import UsageError
from harness.result import EngineResult


def run_check(opts) -> EngineResult:
    try:
        module = importlib.import_module(f"harness.engines.{opts.engine}")
    except ModuleNotFoundError as e:
        if e.name and e.name.startswith("harness.engines"):
            raise UsageError(f"--engine {opts.engine}: not available in this build") from None
        raise
    if (getattr(opts, "jobs", None) or 1) > 1 and opts.engine != "explore":
        raise UsageError(f"--jobs: only --engine explore runs on several processes "
                         f"(got --engine {opts.engine})")
    if getattr(opts, "param", None) and opts.engine not in ("random", "pct", "explore"):
        raise UsageError(f"--param: only the scheduled engines (random, pct, explore) run "
                         f"a scenario (got --engine {opts.engine})")
    if getattr(opts, "reduction", None) and opts.engine != "explore":
        raise UsageError(f"--reduction: only --engine explore reduces its search "
                         f"(got --engine {opts.engine})")
    if getattr(opts, "out", None) is None:
        opts.out = "out"
    if getattr(opts, "bug", None):
        # A planted bug replaces the side it lives in, through the plug-in contract.
        from harness import bugs
        bug = bugs.get(opts.bug)
        opts.driver = bugs.driver_spec(bug, opts.driver)
        opts.device = bugs.device_spec(bug, opts.device)
    return module.run(opts)
