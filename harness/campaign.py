"""`vringfuzz campaign`: the default job.

Runs every engine against the ring (the reference ring unless --driver/--device
name another, or --bug plants a fault) for a share of one time budget, shows a
live progress line per engine, and ends with a summary table on screen and an
HTML report in --out (runs over time, coverage over time, findings with links
to their repro files and swimlane pictures).  Exit 1 when anything was found.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from harness.check import run_check
from harness.progress import Progress
from harness.report import write_report
from harness.result import EngineResult

DEFAULT_BUDGET = 180.0

#: (label, engine, option overrides, share of the budget)
JOBS = [
    ("stateful", "stateful", {}, 0.12),
    ("pct net tso", "pct", {"scenario": "net", "memory_model": "tso"}, 0.10),
    ("pct net relaxed", "pct", {"scenario": "net", "memory_model": "relaxed"}, 0.10),
    ("pct blk relaxed", "pct", {"scenario": "blk", "memory_model": "relaxed"}, 0.08),
    ("random net sc", "random", {"scenario": "net", "memory_model": "sc"}, 0.06),
    ("explore sc", "explore", {"scenario": "small", "memory_model": "sc"}, 0.08),
    ("explore tso", "explore", {"scenario": "small", "memory_model": "tso"}, 0.08),
    ("explore relaxed", "explore", {"scenario": "small", "memory_model": "relaxed"}, 0.08),
    # No model: desc_chain and used_ring have none; schedule's bytes draw one.
    ("fuzz desc_chain", "fuzz", {"target": "desc_chain", "memory_model": None}, 0.10),
    ("fuzz used_ring", "fuzz", {"target": "used_ring", "memory_model": None}, 0.10),
    ("fuzz schedule", "fuzz", {"target": "schedule", "memory_model": None}, 0.10),
]


def _opts(args, engine: str, overrides: dict, seconds: float, out: Path) -> argparse.Namespace:
    o = argparse.Namespace(
        engine=engine, scenario=None, target=None, bug=args.bug, driver=args.driver,
        device=args.device, memory_model="sc", time=seconds, seed=args.seed,
        out=str(out / "repros"), size=None, features=None, depth=3, preemption_bound=2,
        json=False)
    for k, v in overrides.items():
        setattr(o, k, v)
    return o


def run_campaign(args) -> tuple[list[dict], Path]:
    budget = DEFAULT_BUDGET if args.time is None else args.time
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    total_share = sum(share for *_, share in JOBS)
    quiet = getattr(args, "json", False)
    for label, engine, overrides, share in JOBS:
        seconds = budget * share / total_share
        opts = _opts(args, engine, overrides, seconds, out)
        opts.progress = Progress(label, enabled=not quiet)
        t0 = time.monotonic()
        try:
            result = run_check(opts)
        except Exception as e:  # an engine that cannot run here must not sink the rest
            result = EngineResult(engine=engine, found=False,
                                  message=f"engine error: {type(e).__name__}: {e}")
            result.extra["error"] = True
        opts.progress.done(result.runs)
        rows.append({"label": label, "seconds_budget": round(seconds, 1),
                     "seconds": round(time.monotonic() - t0, 2), **result.to_json(),
                     "samples": opts.progress.samples})
    return rows, out


def format_table(rows: list[dict]) -> str:
    head = f"{'engine':<18}{'runs':>10}{'seconds':>9}  result"
    lines = [head, "-" * len(head)]
    for r in rows:
        if r.get("error"):
            verdict = r["message"]
        elif r["found"]:
            verdict = f"FOUND [{r['oracle']}] {r['message']}"
        else:
            verdict = "clean"
        lines.append(f"{r['label']:<18}{r['runs']:>10}{r['seconds']:>9.1f}  {verdict}")
    return "\n".join(lines)


def main(args) -> int:
    rows, out = run_campaign(args)
    report = write_report(rows, out, title="vringfuzz campaign")
    (out / "summary.json").write_text(json.dumps(rows, indent=1, sort_keys=True, default=str))
    found = [r for r in rows if r["found"]]
    if getattr(args, "json", False):
        print(json.dumps({"found": bool(found), "rows": [
            {k: v for k, v in r.items() if k != "samples"} for r in rows],
            "report": str(report)}, sort_keys=True, default=str))
    else:
        print()
        print(format_table(rows))
        print(f"\nreport: {report}")
        for r in found:
            if r.get("repro"):
                print(f"replay: vringfuzz replay {r['repro']}")
    return 1 if found else 0
