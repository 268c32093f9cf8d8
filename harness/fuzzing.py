"""`vringfuzz fuzz TARGET`: an atheris/libFuzzer campaign, its crashes as repro files.

Rules and theory of operation:
* The campaign runs in a subprocess: libFuzzer owns the process (it exits on
  the first crash unless forked), and -fork/-jobs/-minimize_crash re-execute
  argv[0] (FACTS.md).  So the target is started through a launcher script that
  this module writes into out_dir: executable, its shebang is this very Python
  (the venv with atheris), and it passes its own path as argv[0].
* The working corpus directory comes first on the command line (libFuzzer adds
  new inputs there, so a killed campaign resumes from it); the committed seeds
  in corpora/<target>/ come second and are only read.  Crash artifacts go to
  out_dir via -artifact_prefix.
* One live progress line (harness.progress) is drawn from libFuzzer's stats
  lines ("#N ... cov: ft: corp: exec/s:"), read from the log file the child
  writes (out_dir/fuzz-<target>.log); the wall clock here is display only.
* Every crash artifact is replayed in-process, uninstrumented, and saved as a
  repro (engine "fuzz", target, input bytes base64, the driver/device specs
  and the planted bug, signature = oracle and "ExceptionType: message").
  A schedule-target repro also holds the run's params and the schedule it
  recorded, as a scheduled engine's repro does, so it can be replayed as a
  timeline.  `replay_fuzz(doc)` replays the input for `vringfuzz replay`.
* A planted bug (`bug`) reaches the targets the way `--bug` reaches every
  engine: desc_chain/used_ring get the faulty side as their --device /
  --driver; the schedule target gets the bug's name (VRINGFUZZ_BUG) because a
  bug also chooses its scenario, features and memory model.
* `memory_model` pins the schedule target's memory model (VRINGFUZZ_MODEL in
  the child; the other targets have none).  A schedule repro's memory_model
  is always the model its input ran under, and replay and minimize pin it,
  so a pinned campaign's crash re-runs as it failed.  So do its params'
  "points" (the memory model's choices; "all" when they predate it).
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

from harness.errors import UsageError
from harness.result import EngineResult, Finding

TARGETS = ("desc_chain", "used_ring", "schedule")
ARTIFACT_KINDS = ("crash", "timeout", "oom", "leak", "slow-unit")
MAX_LEN = 8192          # the largest desc_chain input (128-entry queue, 4 tables) fits
#: Per-target -max_len: a schedule input is one byte per decision, and a small
#: run makes a few hundred; longer inputs only slow every execution.
MAX_LENS = {"schedule": 1024}
ENV_BUG = "VRINGFUZZ_BUG"
ENV_MODEL = "VRINGFUZZ_MODEL"

_ROOT = Path(__file__).resolve().parent.parent
_STATS = re.compile(r"^#(\d+)\s*:?\s+(?:\w+\s+)?cov: (\d+) ft: (\d+) corp: (\d+)"
                    r"(?:/\S+)?.*?exec/s:? (\d+)(?:.*?crash: \d+/\d+/(\d+))?")


def target_file(target: str) -> Path:
    check_target(target)
    return _ROOT / "fuzz" / f"{target}.py"


def seed_dir(target: str) -> Path:
    return _ROOT / "corpora" / target


def crash_dir(target: str | None = None) -> Path:
    """corpora/crashes[/target]: repro files the test suite replays."""
    base = _ROOT / "corpora" / "crashes"
    return base / target if target else base


def check_target(target: str) -> None:
    if target not in TARGETS:
        raise UsageError(f"fuzz target {target!r}: expected one of {', '.join(TARGETS)}")


def bug_specs(bug, driver="reference", device="reference") -> tuple[str, str]:
    """(driver, device) with a planted bug's faulty side switched in."""
    if not bug:
        return driver, device
    from harness import bugs
    b = bugs.get(bug)
    return bugs.driver_spec(b, driver), bugs.device_spec(b, device)


def check_model_applies(target: str, memory_model) -> None:
    """--memory-model is for the schedule target only (the others have no model)."""
    if memory_model and target != "schedule":
        raise UsageError(f"--memory-model: fuzz target {target} has no memory model "
                         "(only schedule has)")


def make_target(target: str, *, driver="reference", device="reference", bug=None,
                memory_model=None, points=None):
    """A fresh in-process instance of a target (its TestOneInput as a callable).
    `points`: the schedule target's memory-model choices (None: its default)."""
    check_target(target)
    check_model_applies(target, memory_model)
    if target == "schedule":
        from fuzz.schedule import ScheduleTarget
        return ScheduleTarget(driver=driver, device=device, bug=bug or "",
                              model=memory_model or "", points=points)
    driver, device = bug_specs(bug, driver, device)
    if target == "desc_chain":
        from fuzz.desc_chain import DescChainTarget
        return DescChainTarget(device=device)
    from fuzz.used_ring import UsedRingTarget
    return UsedRingTarget(driver=driver)


# -- signatures, findings, repro documents ---------------------------------------

def signature_of(exc: BaseException) -> dict:
    """What identifies a failure: the oracle and "ExceptionType: message"."""
    oracle = getattr(exc, "oracle", None)
    if not isinstance(oracle, str):
        oracle = "fuzz:crash"
    return {"oracle": oracle, "message": f"{type(exc).__name__}: {exc}"}


def run_input_exc(target: str, data: bytes, *, driver="reference", device="reference",
                  bug=None, memory_model=None, points=None) -> BaseException | None:
    """Run one input in-process on a fresh target; what escaped, or None."""
    t = make_target(target, driver=driver, device=device, bug=bug,
                    memory_model=memory_model, points=points)
    try:
        t(bytes(data))
    except Exception as e:  # noqa: BLE001  (every escape is the finding)
        return e
    return None


def run_input(target: str, data: bytes, *, driver="reference", device="reference",
              bug=None, memory_model=None, points=None) -> dict | None:
    """Run one input in-process on a fresh target; the failure's signature or None."""
    exc = run_input_exc(target, data, driver=driver, device=device, bug=bug,
                        memory_model=memory_model, points=points)
    return None if exc is None else signature_of(exc)


def fuzz_doc(target: str, data: bytes, *, signature: dict, driver="reference",
             device="reference", bug=None, exc: BaseException | None = None,
             memory_model=None, points=None) -> dict:
    """The repro document of one fuzz input.  For the schedule target it also
    holds the scheduled run (params, recorded schedule) when `exc` carries it,
    and always the memory model the input runs under."""
    from harness import repro
    extra = {}
    params = getattr(exc, "params", None)
    if target == "schedule" and params is not None:
        extra = dict(scenario=params["scenario"], params=params, schedule=exc.schedule,
                     memory_model=params["memory_model"])
        driver, device = params["driver"], params["device"]   # with the bug's side in
    elif target == "schedule":
        t = make_target(target, driver=driver, device=device, bug=bug,
                        memory_model=memory_model, points=points)
        extra = dict(memory_model=t.params(bytes(data))["memory_model"])
    return repro.make_doc("fuzz", target=target, input_bytes=bytes(data),
                          driver=_spec_name(driver), device=_spec_name(device),
                          bug=bug or None, signature=signature, **extra)


def fuzz_impl(doc: dict) -> dict:
    """What a fuzz repro ran on: driver, device, planted bug and, for the
    schedule target, the memory model (pinned, so the input runs as recorded)."""
    impl = dict(driver=doc.get("driver") or "reference",
                device=doc.get("device") or "reference", bug=doc.get("bug"))
    if doc.get("target") == "schedule":
        impl["memory_model"] = doc.get("memory_model")
        # The choices its run offered: a repro whose params predate "points"
        # ran with all of them (world.py); one without params, the default.
        params = doc.get("params")
        if isinstance(params, dict):
            from harness.memmodel import DEFAULT_POINTS
            impl["points"] = params.get("points", DEFAULT_POINTS)
    return impl


def replay_fuzz(doc: dict) -> Finding | None:
    """Re-run a fuzz repro's input; a Finding when it still fails."""
    from harness.repro import ReproError, input_bytes
    target = doc.get("target")
    if target not in TARGETS:
        raise ReproError(f"fuzz repro names an unknown target {target!r}")
    sig = run_input(target, input_bytes(doc), **fuzz_impl(doc))
    if sig is None:
        return None
    return Finding(sig["oracle"], sig["message"], repro=doc)


def artifact_to_repro(target: str, path: Path, out_dir: Path, *, driver="reference",
                      device="reference", bug=None, memory_model=None,
                      log_tail: str = "", points=None) -> Path:
    """Turn one libFuzzer artifact into a repro file; returns its path.
    `points`: the schedule target's choices (None: its default, as in the child)."""
    from harness import repro
    data = path.read_bytes()
    exc = run_input_exc(target, data, driver=driver, device=device, bug=bug,
                        memory_model=memory_model, points=points)
    sig = None if exc is None else signature_of(exc)
    if sig is None:
        # Not reproducible in-process (a timeout, an OOM, or the fuzzer's own
        # state): keep what libFuzzer said so the file is still actionable.
        kind = path.name.split("-", 1)[0]
        sig = {"oracle": f"fuzz:{kind}", "message": f"{kind} (does not reproduce "
               f"in-process) {log_tail}".strip()}
    doc = fuzz_doc(target, data, signature=sig, driver=driver, device=device, bug=bug,
                   exc=exc, memory_model=memory_model, points=points)
    return repro.save(doc, out_dir)


def _spec_name(spec) -> str:
    return spec if isinstance(spec, str) else f"{spec.__module__}:{spec.__qualname__}"


# -- the campaign -------------------------------------------------------------------

def write_launcher(target: str, out_dir: Path) -> Path:
    """An executable script that libFuzzer can re-run as argv[0] (FACTS.md)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"run-{target}"
    path.write_text(
        f"#!{sys.executable}\n"
        f'"""Launcher for fuzz/{target}.py, written by harness/fuzzing.py."""\n'
        "import os, sys\n"
        f"sys.path.insert(0, {str(_ROOT)!r})\n"
        "os.environ['VRINGFUZZ_INSTRUMENT'] = '1'  # instrument vring at import\n"
        f"from fuzz import {target} as target\n"
        "target.main(sys.argv)\n")
    path.chmod(0o755)
    return path


def libfuzzer_args(*, time_s: float, jobs: int, out_dir: Path, corpus: Path,
                   seeds: Path | None, max_len: int = MAX_LEN, runs: int | None = None,
                   extra=()) -> list[str]:
    args = [f"-max_total_time={max(1, int(time_s))}", f"-artifact_prefix={out_dir}/",
            f"-max_len={max_len}", "-print_final_stats=1"]
    if runs is not None:
        args.append(f"-runs={runs}")
    if jobs > 1:
        # Fork mode: N workers, aggregated stats on stderr, keeps going past crashes.
        args += [f"-fork={jobs}", "-ignore_crashes=1", "-ignore_timeouts=1", "-ignore_ooms=1"]
    args += list(extra)
    args.append(str(corpus))
    if seeds is not None and seeds.is_dir():
        args.append(str(seeds))
    return args


def parse_stats(text: str) -> dict:
    """The last libFuzzer stats line in text: runs, cov, ft, corpus, execs_per_s."""
    found = {}
    for line in text.splitlines():
        m = _STATS.match(line)
        if m:
            found = {"runs": int(m[1]), "cov": int(m[2]), "ft": int(m[3]),
                     "corpus": int(m[4]), "execs_per_s": int(m[5])}
            if m[6] is not None:
                found["fork_crashes"] = int(m[6])
    for key, name in (("stat::number_of_executed_units:", "runs"),
                      ("stat::average_exec_per_sec:", "execs_per_s")):
        for line in text.splitlines():
            if line.startswith(key):
                found[name] = int(line.split(":")[-1])
    return found


def _tail(path: Path, n: int = 16384) -> str:
    with open(path, "rb") as f:
        f.seek(max(0, f.seek(0, 2) - n))
        return f.read().decode(errors="replace")


#: libFuzzer's line for each artifact it writes (crash-, leak-, timeout-, oom-).
_WRITTEN = re.compile(r"Test unit written to (\S+)")


def _artifacts(out_dir: Path) -> list[Path]:
    return sorted(p for p in out_dir.iterdir()
                  if p.is_file() and p.name.split("-", 1)[0] in ARTIFACT_KINDS)


def new_artifacts(out_dir: Path, before: set, log_text: str) -> list[Path]:
    """The artifacts a campaign wrote: files not in `before`, and those its log
    says it wrote.  libFuzzer names an artifact after its input's hash, so a
    campaign that crashes on an input an earlier one left in out_dir (the same
    -seed) rewrites a file that is not new."""
    new = [p for p in _artifacts(out_dir) if p not in before]
    for written in _WRITTEN.findall(log_text):
        p = out_dir / Path(written).name
        if p.exists() and p not in new:
            new.append(p)
    return new


def _stop_group(proc) -> None:
    """Stop the child's process group (libFuzzer and any -fork workers)."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, None)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break                     # the whole group is gone
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            continue
        if sig == signal.SIGTERM:
            try:                      # workers may outlive the leader
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        break


def run_fuzz(target: str, *, time_s: float = 60.0, jobs: int = 1, corpus_dir=None,
             out_dir="out", progress=True, driver="reference", device="reference",
             bug=None, seed: int | None = None, runs: int | None = None, extra_args=(),
             env=None, memory_model=None) -> EngineResult:
    """Run one campaign; every crash becomes a repro file in out_dir.

    progress: True (a live line on stderr), False, or a harness.progress.Progress.
    bug: a zoo bug to plant; seed: libFuzzer's -seed (None: libFuzzer picks).
    memory_model: pin the schedule target's model (None: its bytes choose).
    """
    from harness.progress import Progress
    check_target(target)
    check_model_applies(target, memory_model)
    if target != "schedule":
        driver, device = bug_specs(bug, driver, device)
    if seed is not None:
        extra_args = [f"-seed={seed + 1}"] + list(extra_args)   # -seed=0 means "random"
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    corpus = Path(corpus_dir).resolve() if corpus_dir else out / "corpus" / target
    corpus.mkdir(parents=True, exist_ok=True)
    before = set(_artifacts(out))
    launcher = write_launcher(target, out)
    cmd = [str(launcher)] + libfuzzer_args(time_s=time_s, jobs=jobs, out_dir=out,
                                           corpus=corpus, seeds=seed_dir(target),
                                           runs=runs, extra=extra_args,
                                           max_len=MAX_LENS.get(target, MAX_LEN))
    child_env = dict(os.environ if env is None else env)
    for name in (ENV_BUG, ENV_MODEL):  # the repro records these: only ours may apply
        child_env.pop(name, None)
    if bug and target == "schedule":
        child_env[ENV_BUG] = bug
    if memory_model:
        child_env[ENV_MODEL] = memory_model
    for name, spec in (("VRINGFUZZ_DRIVER", driver), ("VRINGFUZZ_DEVICE", device)):
        if isinstance(spec, str) and spec != "reference":
            child_env[name] = spec
    owned = not isinstance(progress, Progress)   # a caller's bar is the caller's to close
    bar = Progress(f"fuzz {target}", enabled=bool(progress)) if owned else progress
    log_path = out / f"fuzz-{target}.log"
    start = time.monotonic()
    stats: dict = {}
    with open(log_path, "wb") as log:
        # Its own process group: a stop (Ctrl-C, or SIGTERM to us, which the CLI
        # turns into an exit that runs this finally) must also reach -fork's workers.
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=out,
                                env=child_env, start_new_session=True)
        try:
            deadline = start + time_s + 60  # libFuzzer stops itself; this is the backstop
            while proc.poll() is None:
                time.sleep(0.25)
                stats = parse_stats(_tail(log_path)) or stats
                crashes = len(set(_artifacts(out)) - before)
                bar.update(stats.get("runs", 0), cov=stats.get("cov", 0),
                           ft=stats.get("ft", 0), corpus=stats.get("corpus", 0),
                           execs_s=stats.get("execs_per_s", 0), crashes=crashes)
                if time.monotonic() > deadline:
                    _stop_group(proc)
        finally:
            _stop_group(proc)         # interrupted: stop the campaign, keep its artifacts
    text = log_path.read_text(errors="replace")
    stats = parse_stats(text) or stats
    new = new_artifacts(out, before, text)
    tail = " | ".join(line for line in text.splitlines()[-40:]
                      if "Error" in line or "Exception" in line)[:300]
    repros = []
    for art in new:
        path = artifact_to_repro(target, art, out, driver=driver, device=device,
                                 bug=bug, memory_model=memory_model, log_tail=tail)
        if path not in repros:
            repros.append(path)
    (bar.done if owned else partial(bar.update, force=True))(
        stats.get("runs", 0), cov=stats.get("cov", 0), ft=stats.get("ft", 0),
        corpus=stats.get("corpus", 0), crashes=len(new))
    result = EngineResult(engine="fuzz", found=bool(repros), seconds=time.monotonic() - start,
                          runs=stats.get("runs", 0),
                          extra={"target": target, "bug": bug, "memory_model": memory_model,
                                 "cov": stats.get("cov"),
                                 "ft": stats.get("ft"), "corpus": stats.get("corpus"),
                                 "execs_per_s": stats.get("execs_per_s"),
                                 "crashes": [str(p) for p in repros],
                                 "exit_code": proc.returncode, "log": str(log_path)})
    if repros:
        from harness.repro import load
        sig = load(repros[0])["signature"]
        result.oracle, result.message, result.repro = sig["oracle"], sig["message"], str(repros[0])
    return result


def main(args) -> int:
    """The `vringfuzz fuzz` command (args: target, time, jobs, corpus, out)."""
    check_target(args.target)
    if args.jobs < 1:
        raise UsageError("--jobs must be at least 1")
    out = args.out or "out"
    bug = getattr(args, "bug", None)
    if bug:
        from harness import bugs
        bugs.get(bug)   # a UsageError naming the known bugs
    result = run_fuzz(args.target, time_s=args.time, jobs=args.jobs, corpus_dir=args.corpus,
                      out_dir=out, progress=not getattr(args, "json", False),
                      driver=getattr(args, "driver", None) or "reference",
                      device=getattr(args, "device", None) or "reference", bug=bug,
                      memory_model=getattr(args, "memory_model", None))
    if getattr(args, "json", False):
        import json
        print(json.dumps(result.to_json(), sort_keys=True))
    else:
        x = result.extra
        print(f"fuzz {args.target}: {result.runs} runs in {result.seconds:.1f}s, "
              f"cov {x['cov']} ft {x['ft']} corpus {x['corpus']}, "
              f"{len(x['crashes'])} crash repro(s)")
        for path in x["crashes"]:
            print(f"repro: {path}\nreplay with: vringfuzz replay {path}")
    return 1 if result.found else 0
