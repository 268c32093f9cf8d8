"""`vringfuzz bench bugs`: every bug of the zoo x every engine, time to detect.

Rules:
* Seeds are 0..K-1 (`--seeds K`); each (bug, engine, seed) is one engine run
  with a budget of `--budget S` seconds that stops at its first detection.
  Time to detect is the engine's own clock up to that detection (stateful:
  the first failing example, shrinking off), runs are its executions.
* An engine runs only where it can apply (APPLIES says why not otherwise):
  stateful needs a ring-level fault (scenario faults live in task code the
  machines do not run); random/pct/explore need a scheduled scenario (the
  hostile-peer bugs need a peer that writes raw rings); fuzz needs its target
  (desc_chain for device validation, used_ring for driver hardening) and the
  engine module, skipped cleanly while harness/engines/fuzz.py is absent.
* Two baselines in the same run: "threads" (the bug's scenario on real
  threads, plain memory, harness/bench_threads.py) and "stateful", which is
  Hypothesis stateful without schedule control.
* False positives: every engine on the correct reference ring, per memory
  model, for `fp_seconds` each; the document records what ran and for how long.
* `--jobs N` runs the cells (one engine run each) in N worker processes;
  each cell's result is placed by its key, so the document does not depend
  on which worker finished first.  Give each job its own core: time to
  detect is wall time on the engine's clock.
* The output (Markdown + JSON) is written to docs/detection.{md,json} by
  `write_docs`; docs/detection.md is never edited by hand.
"""
from __future__ import annotations

import importlib.util
import os
import platform as _platform
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

ENGINES = ("stateful", "random", "pct", "explore", "fuzz")
BASELINES = ("threads",)
MODELS = ("sc", "tso", "relaxed")
#: Scenarios the correct ring runs for the false-positive check, with features.
FP_SCENARIOS = (("net", ""), ("net", "event_idx"), ("net-napi2", "event_idx"),
                ("blk", "indirect"), ("net-rx", "in_order"))
DOCS = Path("docs")


_WHY = {"malicious-driver": "needs a driver that writes raw descriptor tables: stateful/fuzz",
        "malicious-device": "needs a device that writes raw used entries: stateful/fuzz",
        "stateful": "no scheduled scenario reaches it (detach, a reordering IN_ORDER "
                    "completion) or checks its rule (suppression flags): stateful only"}


def _scheduled(bug) -> bool:
    from .scenarios import names
    return bug.scenario in names()


def _fuzz_target(bug) -> str | None:
    if bug.klass == "validation" or bug.scenario == "malicious-driver":
        return "desc_chain"
    if bug.klass == "hardening" or bug.scenario == "malicious-device":
        return "used_ring"
    if _scheduled(bug):
        return "schedule"       # the bytes choose every interleaving and drain
    return None


def fuzz_available() -> bool:
    return importlib.util.find_spec("harness.engines.fuzz") is not None


def applies(bug, engine: str) -> tuple[bool, str]:
    """Whether `engine` can reach `bug` at all, and if not, why."""
    if engine == "stateful":
        if bug.side == "scenario":
            return False, "scenario-level fault: the machines run no scenario tasks"
        return True, ""
    if engine in ("random", "pct", "explore", "threads"):
        if not _scheduled(bug):
            return False, _WHY[bug.scenario]
        return True, ""
    if engine == "fuzz":
        if _fuzz_target(bug) is None:
            return False, "no fuzz target reaches this class"
        if not fuzz_available():
            return False, "fuzz engine not in this build (harness/engines/fuzz.py)"
        return True, ""
    raise ValueError(engine)


def _opts(engine: str, bug_name: str, seed: int, budget: float, **over) -> SimpleNamespace:
    from . import bugs
    bug = bugs.get(bug_name) if bug_name else None
    o = SimpleNamespace(engine=engine, scenario=None, target=None, bug=bug_name,
                        driver="reference", device="reference", memory_model=None,
                        time=budget, seed=seed, out=None, size=None, features=None,
                        depth=3, preemption_bound=2, json=False, quiet=True, shrink=False,
                        jobs=1, corpus=None)
    if bug is not None and engine == "explore" and bug.scenario not in ("net-rx",):
        o.scenario = bug.scenario      # explore's default small config is net-rx
    if bug is not None and engine == "fuzz":
        o.target = _fuzz_target(bug)
    for k, v in over.items():
        setattr(o, k, v)
    return o


def run_engine(engine: str, bug_name: str | None, seed: int, budget: float, **over) -> dict:
    """One engine run (stops at its first detection); a JSON-able summary."""
    import shutil
    import tempfile
    from .check import run_check
    opts = _opts(engine, bug_name, seed, budget, **over)
    # A fresh folder per run: repros are not kept, and the fuzz engine's
    # working corpus (out/corpus/<target>) must not carry one seed into the next.
    opts.out = tempfile.mkdtemp(prefix="vringfuzz-bench-")
    devnull = open(os.devnull, "w")
    old = sys.stderr
    sys.stderr = devnull            # engines draw progress lines on stderr
    try:
        t0 = time.monotonic()
        r = run_check(opts)
        wall = time.monotonic() - t0
    finally:
        sys.stderr = old
        devnull.close()
        shutil.rmtree(opts.out, ignore_errors=True)
    return {"found": bool(r.found), "seconds": round(min(r.seconds or wall, wall), 3),
            "runs": r.runs, "oracle": r.oracle,
            "message": (r.message or "")[:160] if r.found else None}


def _threads(bug, seed: int, budget: float) -> dict:
    from .bench_threads import threads_check
    from .engines.scheduled import params_for
    params = params_for(SimpleNamespace(bug=bug.name))
    params["memory_model"] = "sc"
    return threads_check(params, budget)


def summarize(runs: list[dict]) -> dict:
    hit = [r for r in runs if r["found"]]
    secs = [r["seconds"] for r in hit]
    return {"detected": len(hit), "of": len(runs),
            "median_s": round(statistics.median(secs), 3) if secs else None,
            "worst_s": round(max(secs), 3) if secs else None,
            "median_runs": statistics.median([r["runs"] for r in hit]) if hit else None,
            "oracles": sorted({r["oracle"] for r in hit})}


def _best(row: dict) -> str | None:
    """The engine with the highest detection rate, then the lowest median."""
    cands = [(-s["detected"] / s["of"], s["median_s"], e) for e, s in row["summary"].items()
             if e in ENGINES and s["detected"]]
    return min(cands)[2] if cands else None


def _fp_cells(fp_seconds: float) -> list[tuple]:
    """The false-positive runs: (row fields, engine, budget, run_engine overrides)."""
    cells = []
    share = fp_seconds / len(FP_SCENARIOS)
    for model in MODELS:
        for engine in ("random", "pct", "explore"):
            for scenario, feats in FP_SCENARIOS:
                cells.append(({"engine": engine, "model": model, "scenario": scenario,
                               "features": feats, "budget_s": share}, engine, share,
                              {"scenario": scenario, "features": feats, "memory_model": model}))
    cells.append(({"engine": "stateful", "model": "sequential", "scenario": "machines",
                   "features": "all", "budget_s": fp_seconds}, "stateful", fp_seconds, {}))
    if fuzz_available():
        # desc_chain and used_ring have no memory model; schedule runs pinned to
        # each (its bytes still choose scenario, features and schedule).
        for target in ("desc_chain", "used_ring"):
            cells.append(({"engine": "fuzz", "model": "sequential", "scenario": target,
                           "features": "", "budget_s": fp_seconds / 2}, "fuzz",
                          fp_seconds / 2, {"target": target}))
        for model in MODELS:
            cells.append(({"engine": "fuzz", "model": model, "scenario": "schedule",
                           "features": "from the bytes", "budget_s": fp_seconds}, "fuzz",
                          fp_seconds, {"target": "schedule", "memory_model": model}))
    for scenario, feats in FP_SCENARIOS:
        cells.append(({"engine": "threads", "model": "real threads", "scenario": scenario,
                       "features": feats, "budget_s": share}, "threads", share,
                      {"scenario": scenario, "features": feats}))
    return cells


def _run_fp_cell(cell) -> dict:
    fields, engine, budget, over = cell
    if engine == "threads":
        from .bench_threads import threads_check
        return {**fields, **threads_check(dict(over), budget)}
    return {**fields, **run_engine(engine, None, 0, budget, **over)}


def _run_bug_cell(cell) -> dict:
    name, engine, seed, budget = cell
    from . import bugs
    if engine == "threads":
        return _threads(bugs.get(name), seed, budget)
    return run_engine(engine, name, seed, budget)


def _map(fn, cells: list, jobs: int, progress=None) -> list:
    """fn over cells, in cells' order, on `jobs` worker processes (1: in this one)."""
    if jobs <= 1:
        out = []
        for c in cells:
            out.append(fn(c))
            if progress:
                progress(c, out[-1])
        return out
    import multiprocessing
    results: list = [None] * len(cells)
    # fork: workers inherit the imported harness; each cell builds its runs fresh.
    with multiprocessing.get_context("fork").Pool(jobs, maxtasksperchild=8) as pool:
        for k, r in pool.imap_unordered(_indexed, [(fn, k, c) for k, c in enumerate(cells)]):
            results[k] = r
            if progress:
                progress(cells[k], r)
    return results


def _indexed(job):
    fn, k, cell = job
    return k, fn(cell)


def bench_bugs(seeds: int = 3, budget: float = 60.0, *, fp_seconds: float | None = None,
               names: list[str] | None = None, write: bool = True, progress=None,
               jobs: int = 1, engines: list[str] | None = None, fp_only: bool = False):
    """Run the zoo; returns (data, text) and writes docs/detection.{md,json}.
    fp_only: only the false-positive cells (no bug runs), e.g. to re-run them longer."""
    from . import bugs
    say = progress or (lambda msg: print(msg, file=sys.stderr, flush=True))
    started = time.monotonic()
    if fp_seconds is None:
        fp_seconds = max(10.0, budget)
    command = f"vringfuzz bench bugs --seeds {seeds} --budget {budget:g}"
    if fp_seconds != max(10.0, budget):
        command += f" --fp-seconds {fp_seconds:g}"
    command += "".join(f" --bug {n}" for n in names or ())
    command += "".join(f" --engine {e}" for e in engines or ())
    if fp_only:
        command += " --fp-only"
    if jobs > 1:
        command += f" --jobs {jobs}"
    data = {"command": command, "jobs": jobs,
            "seeds": list(range(seeds)), "budget_s": budget, "machine": machine(),
            "engines": list(ENGINES), "baselines": list(BASELINES), "bugs": {}}
    cells = []
    for bug in bugs.BUGS:
        if fp_only or (names and bug.name not in names):
            continue
        row = {"class": bug.klass, "side": bug.side, "memory_model": bug.memory_model,
               "features": list(bug.features), "scenario": bug.scenario, "history": bug.history,
               "rule": bug.rule, "runs": {}, "skipped": {}, "summary": {}}
        for engine in ENGINES + BASELINES:
            if engines and engine not in engines:
                continue
            ok, why = applies(bug, engine)
            if not ok:
                row["skipped"][engine] = why
                continue
            cells += [("bug", (bug.name, engine, seed, budget)) for seed in range(seeds)]
        data["bugs"][bug.name] = row
    # The long false-positive cells first, so no core idles at the end
    # (--fp-seconds 0: none, e.g. to re-run one bug).
    fp_cells = _fp_cells(fp_seconds) if fp_seconds > 0 else []
    cells = [("fp", c) for c in fp_cells if not engines or c[1] in engines] + cells
    done = [0]

    def tell(cell, r):
        done[0] += 1
        kind, c = cell
        what = f"{c[0]:<34} {c[1]:<8} seed {c[2]}" if kind == "bug" else (
            f"false positives: {c[1]:<8} {c[0]['model']} {c[0]['scenario']}")
        say(f"[{done[0]}/{len(cells)}] {what}: "
            + (f"FOUND [{r['oracle']}] in {r['seconds']}s" if r["found"] else "nothing"))
    results = _map(_run_cell, cells, jobs, tell)
    fp = []
    for (kind, c), r in zip(cells, results):
        if kind == "bug":
            data["bugs"][c[0]]["runs"].setdefault(c[1], []).append(r)
        else:
            fp.append(r)
    for row in data["bugs"].values():
        for engine, runs in row["runs"].items():
            row["summary"][engine] = summarize(runs)
        row["best"] = _best(row)
    data["false_positives"] = fp
    data["fp_seconds_per_engine_and_model"] = fp_seconds
    data["total_s"] = round(time.monotonic() - started, 1)
    text = render_markdown(data)
    if write:
        write_docs(data, text)
    return data, text


def _run_cell(cell) -> dict:
    kind, c = cell
    return _run_bug_cell(c) if kind == "bug" else _run_fp_cell(c)


def machine() -> dict:
    return {"python": _platform.python_version(), "system": _platform.platform(),
            "cpus": os.cpu_count(), "processor": _platform.processor() or _platform.machine()}


def merge(data: dict, part: dict, why: str = "") -> dict:
    """data with what `part` re-ran (a run with --engine and/or --bug) put in:
    the runs of each (bug, engine) part has, and the false-positive rows of each
    engine part ran them for; both commands are recorded, and `why`."""
    for name, new in part["bugs"].items():
        row = data["bugs"].get(name)
        if row is None:
            continue
        row["runs"].update(new["runs"])
        for engine in new["runs"]:          # it ran now: no longer out of reach
            row["skipped"].pop(engine, None)
        row["skipped"].update(new.get("skipped", {}))
    for row in data["bugs"].values():
        row["summary"] = {e: summarize(runs) for e, runs in row["runs"].items()}
        row["best"] = _best(row)
    fp_redone = {r["engine"] for r in part["false_positives"]}
    fp_s = part.get("fp_seconds_per_engine_and_model")
    if fp_redone and fp_s != data.get("fp_seconds_per_engine_and_model"):
        # One budget per document: a longer re-run must redo every engine's rows.
        missing = {r["engine"] for r in data["false_positives"]} - fp_redone
        if missing:
            raise ValueError(f"the re-run's false-positive budget ({fp_s:g} s) differs from "
                             f"the document's; it must also re-run {', '.join(sorted(missing))}")
        data["fp_seconds_per_engine_and_model"] = fp_s
    data["false_positives"] = [r for r in data["false_positives"]
                               if r["engine"] not in fp_redone] + part["false_positives"]
    data["command"] += "; then " + part["command"]
    if why:
        redone = sorted({e for row in part["bugs"].values() for e in row["runs"]} | fp_redone)
        data.setdefault("reruns", []).append(f"{', '.join(redone)}: {why}")
    data["total_s"] = round(data["total_s"] + part["total_s"], 1)
    return data


def merge_into_docs(part: dict, why: str, folder: Path = DOCS) -> tuple[dict, str]:
    """Merge a partial run into the committed detection.{md,json} (ValueError
    when the document cannot be read or the budgets do not fit)."""
    import json
    path = folder / "detection.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"cannot read {path}: {e}") from None
    data = merge(data, part, why)
    text = render_markdown(data)
    write_docs(data, text, folder)
    return data, text


def rerender(folder: Path = DOCS) -> str:
    """Re-render detection.md from detection.json (same run, same data)."""
    import json
    data = json.loads((folder / "detection.json").read_text())
    text = render_markdown(data)
    (folder / "detection.md").write_text(text)
    return text


def write_docs(data: dict, text: str, folder: Path = DOCS) -> None:
    import json
    folder.mkdir(exist_ok=True)
    (folder / "detection.md").write_text(text)
    (folder / "detection.json").write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")


# --- the document -----------------------------------------------------------------

def _cell(s: dict | None, why: str | None) -> str:
    if s is None:
        return "n/a" if why else "-"
    if not s["detected"]:
        return f"0/{s['of']}"
    return (f"{s['detected']}/{s['of']} {s['median_s']:.2f}/{s['worst_s']:.2f}s "
            f"({s['median_runs']:g} runs)")


def _rate(bugs: dict, engine: str) -> str:
    ran = [r["summary"][engine] for r in bugs.values() if engine in r["summary"]]
    hit = sum(s["detected"] for s in ran)
    runs = sum(s["of"] for s in ran)
    full = sum(1 for s in ran if s["detected"] == s["of"])
    return (f"{hit}/{runs} runs detected; {full}/{len(ran)} applicable bugs found in every "
            f"seed" if ran else "not run")


def render_markdown(data: dict) -> str:
    from . import bugs as zoo
    order = {b.name: k for k, b in enumerate(zoo.BUGS)}     # class by class, as `bugs`
    bugs = dict(sorted(data["bugs"].items(), key=lambda kv: order.get(kv[0], len(order))))
    engines = data["engines"] + data["baselines"]
    m = data["machine"]
    out = ["# Bug zoo detection table", "",
           "Generated by `" + data["command"] + "` (harness/bench_bugs.py); do not edit by "
           "hand.  Machine: " + f"{m['processor']}, {m['cpus']} CPUs (shared), Python "
           f"{m['python']}, {m['system']}.  Seeds {data['seeds'][0]}..{data['seeds'][-1]}, "
           f"budget {data['budget_s']:g} s per (bug, engine, seed) run, each run stopped at its "
           f"first detection; total wall time {data['total_s']:g} s"
           + (f" with {data['jobs']} runs at a time (one per core)." if data.get("jobs", 1) > 1
              else "."), "",
           "Cells: `detected/seeds median/worst seconds to detect (median runs to detect)`; "
           "`n/a`: the engine cannot "
           "reach the bug (reasons below).  Time is the engine's own clock to its first "
           "failing run (stateful: first failing example, shrinking off).  `threads` is the "
           "uncontrolled baseline (the bug's scenario on `threading.Thread`s, "
           "`sys.setswitchinterval(1e-6)`, plain memory); `stateful` is Hypothesis stateful "
           "without schedule control.  `fuzz` is one libFuzzer campaign on the target that "
           "reaches the bug: desc_chain (validation), used_ring (hardening), schedule (every "
           "bug a scheduled scenario reaches).  On plain memory a dropped or weakened barrier "
           "changes nothing, so a `threads` detection of a barrier bug is a false positive "
           "of the baseline itself (its races; see its rows in the false-positive check).", ""]
    out += [f"Re-run and merged (`bench_bugs.merge`): {r}" for r in data.get("reruns", [])]
    if data.get("reruns"):
        out.append("")
    # targets
    best = {n: r["best"] for n, r in bugs.items()}
    every = [n for n, r in bugs.items() if r["best"] and any(
        s["detected"] == s["of"] for e, s in r["summary"].items() if e in data["engines"])]
    meds = [bugs[n]["summary"][b]["median_s"] for n, b in best.items() if b]
    out += ["## Targets", "",
            f"- Bugs found by at least one engine in every seed: {len(every)}/{len(bugs)}"
            + ("" if len(every) == len(bugs) else " (missing: " + ", ".join(
                sorted(set(bugs) - set(every))) + ")"),
            f"- Median time to detect across the zoo, best engine per bug: "
            f"{statistics.median(meds):.2f} s" if meds else "- no detections",
            f"- Worst best-engine median: {max(meds):.2f} s" if meds else ""]
    for e in engines:
        out.append(f"- `{e}`: {_rate(bugs, e)}")
    out += ["", "## Detection by bug and engine", "",
            "| bug | class | needs | " + " | ".join(engines) + " | best | oracle (best) |",
            "|---|---|---|" + "---|" * len(engines) + "---|---|"]
    for n, r in bugs.items():
        needs = ", ".join(r["features"] + ([r["memory_model"]] if r["memory_model"] != "sc"
                                           else [])) or "-"
        cells = [_cell(r["summary"].get(e), r["skipped"].get(e)) for e in engines]
        b = r["best"]
        orc = ", ".join(r["summary"][b]["oracles"]) if b else "-"
        out.append(f"| `{n}` | {r['class']} | {needs} | " + " | ".join(cells)
                   + f" | {b or '**none**'} | {orc} |")
    reasons: dict = {}
    for r in bugs.values():
        for e, why in r["skipped"].items():
            reasons.setdefault((e, why), 0)
            reasons[(e, why)] += 1
    out += ["", "## Where an engine does not run", ""]
    for (e, why), k in sorted(reasons.items()):
        out.append(f"- `{e}` ({k} bugs): {why}")
    fp_s = data["fp_seconds_per_engine_and_model"]
    out += ["", "## False-positive check: the correct reference ring", "",
            f"Every engine against the reference ring, {fp_s:g} s per engine and memory model "
            "(split evenly over the scenarios listed; the fuzz targets without a memory model "
            f"share {fp_s:g} s, the schedule target runs pinned to each model (its bytes "
            "choose the rest), and the stateful machines, which have no model, run "
            f"{fp_s:g} s once)" + (": the 10 minutes per model that issue 5 asks for." if fp_s >= 600
                              else "; issue 5 asks for 600 s, this run is shorter."), "",
            "| engine | model | scenario | features | seconds | runs | findings |",
            "|---|---|---|---|---|---|---|"]
    for r in data["false_positives"]:
        f = f"**{r['oracle']}**: {r['message']}" if r["found"] else "0"
        out.append(f"| {r['engine']} | {r['model']} | {r['scenario']} | {r['features'] or '-'} "
                   f"| {r['seconds']:.1f} | {r['runs']} | {f} |")
    out += ["", "## The zoo", "", "| bug | class | side | rule | history |", "|---|---|---|---|---|"]
    for n, r in bugs.items():
        out.append(f"| `{n}` | {r['class']} | {r['side']} | {r['rule']} | {r['history'] or '-'} |")
    return "\n".join(out) + "\n"


__all__ = ["bench_bugs", "run_engine", "applies", "summarize", "merge", "merge_into_docs",
           "ENGINES", "BASELINES", "write_docs", "render_markdown"]
