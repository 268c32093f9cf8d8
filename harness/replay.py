"""`vringfuzz replay FILE` and `vringfuzz minimize FILE -o OUT`.

Replay re-runs a repro exactly (same scenario, params and schedule; or the same
operations; or the same fuzz input) and prints the interleaving as a timeline,
one column per task; `--svg OUT` draws it as a swimlane.  Exit 1 when the
failure still happens, 0 when it no longer does (fixed), 2 when the file is not
a usable repro.  Minimize shrinks what the repro replays while the failure
keeps its signature (the same oracle).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from . import repro
from .errors import UsageError
from .result import Finding
from .minimize import ddmin


@dataclass
class Replayed:
    finding: Finding | None
    events: list = field(default_factory=list)
    task_names: dict = field(default_factory=dict)
    layout: object = None
    failing_step: int | None = None
    note: str = ""


SCHEDULED = ("pct", "random", "explore")


def _check_plugins(doc: dict) -> None:
    from .plugins import check
    for side in ("driver", "device"):
        spec = doc.get("params", {}).get(side) or doc.get(side) or "reference"
        check(spec, side)


def _check_memory(doc: dict) -> None:
    """The memory model and its choices ("points") a repro names exist."""
    from .memmodel import MODELS, POINTS
    params = doc.get("params") if isinstance(doc.get("params"), dict) else {}
    for where, key, known in (("", "memory_model", MODELS),
                              ("params ", "memory_model", MODELS),
                              ("params ", "points", POINTS)):
        value = (params if where else doc).get(key)
        if value is not None and value not in known:
            raise repro.ReproError(f"{where}{key} {value!r}: expected one of "
                                   f"{', '.join(known)}")


def _replay_scheduled(doc: dict, *, strict: bool = True, schedule=None) -> Replayed:
    from .sched.replay import ReplayDivergence, ReplaySource
    from .sched.source import Schedule, ScheduleFormatError
    from .world import run_once
    if "params" not in doc or "schedule" not in doc:
        raise repro.ReproError("a scheduled repro needs 'params' and 'schedule'")
    try:
        sched = schedule or Schedule.from_json(doc["schedule"])
    except ScheduleFormatError as e:
        raise repro.ReproError(f"bad schedule: {e}") from None
    report = run_once(doc["params"], ReplaySource(sched, strict=strict), trace=True)
    note = ""
    if isinstance(report.error, ReplayDivergence):
        raise repro.ReproError(f"the schedule no longer fits this build: {report.error}")
    layout = report.layout
    return Replayed(report.finding, report.events, report.task_names, layout,
                    report.failing_step, note)


def replay_doc(doc: dict) -> Replayed:
    engine = doc["engine"]
    if engine in SCHEDULED:
        return _replay_scheduled(doc)
    if engine == "stateful":
        from .stateful import replay_ops
        return Replayed(replay_ops(doc))
    if engine == "fuzz":
        if doc.get("target") == "schedule" and "params" in doc and "schedule" in doc:
            return _replay_scheduled(doc)  # a schedule input replays as its schedule
        from .fuzzing import replay_fuzz
        return Replayed(replay_fuzz(doc))
    raise repro.ReproError(f"unknown engine {engine!r}")


def main(args) -> int:
    doc = repro.load(args.file)
    _check_plugins(doc)
    _check_memory(doc)
    got = replay_doc(doc)
    want = doc["signature"]
    if got.events and not args.quiet:
        from .timeline import render_text
        print(render_text(got.events, got.task_names, layout=got.layout,
                          failing_step=got.failing_step))
    if args.svg:
        if not got.events:
            raise UsageError(f"--svg: a {doc['engine']} repro has no interleaving to draw")
        from .timeline import render_svg
        title = f"{got.finding.oracle}: {got.finding.message}" if got.finding else "clean run"
        Path(args.svg).write_text(render_svg(got.events, got.task_names, title,
                                             layout=got.layout, failing_step=got.failing_step))
        print(f"swimlane: {args.svg}")
    if got.finding is None:
        print(f"no failure: the repro's [{want['oracle']}] no longer happens")
        return 0
    same = got.finding.oracle == want["oracle"]
    print(f"FAILS [{got.finding.oracle}] {got.finding.message}")
    if not same:
        print(f"note: the repro recorded [{want['oracle']}] {want.get('message', '')}")
    return 1


def _same(found: Finding | None, want: dict) -> bool:
    return found is not None and found.oracle == want["oracle"]


def minimize_doc(doc: dict) -> dict:
    """A smaller repro with the same failure signature."""
    want = doc["signature"]
    engine = doc["engine"]
    if engine in SCHEDULED:
        from .sched.source import Schedule
        choices = list(doc["schedule"]["choices"])

        def fails(sub):
            try:
                got = _replay_scheduled(doc, strict=False, schedule=Schedule(choices=tuple(sub)))
            except repro.ReproError:
                return False
            return _same(got.finding, want)
        if not fails(choices):
            raise UsageError("the repro does not fail as recorded; nothing to minimize")
        small = ddmin(choices, fails)
        # Re-record the shrunk run strictly: the schedule it really followed.
        from .sched.replay import ReplaySource
        from .world import run_once
        report = run_once(doc["params"], ReplaySource(Schedule(choices=tuple(small)),
                                                      strict=False), trace=False)
        out = dict(doc, schedule=report.schedule.to_json())
        out["signature"] = {"oracle": report.finding.oracle, "message": report.finding.message}
        return out
    if engine == "stateful":
        from .stateful import replay_ops
        ops = list(doc["ops"])

        def fails(sub):
            return _same(replay_ops(dict(doc, ops=sub)), want)
        if not fails(ops):
            raise UsageError("the repro does not fail as recorded; nothing to minimize")
        return dict(doc, ops=ddmin(ops, fails))
    if engine == "fuzz":
        from .fuzzing import fuzz_doc, fuzz_impl, run_input_exc, signature_of
        data = repro.input_bytes(doc)
        # The same implementation as recorded: driver, device, planted bug (and model).
        impl = fuzz_impl(doc)

        def fails(sub):
            exc = run_input_exc(doc["target"], bytes(sub), **impl)
            return exc is not None and signature_of(exc)["oracle"] == want["oracle"]
        if not fails(list(data)):
            raise UsageError("the repro does not fail as recorded; nothing to minimize")
        small = bytes(ddmin(list(data), fails))
        exc = run_input_exc(doc["target"], small, **impl)
        # A schedule-target repro keeps the params and re-recorded schedule.
        return fuzz_doc(doc["target"], small, signature=signature_of(exc), exc=exc, **impl)
    raise repro.ReproError(f"unknown engine {engine!r}")


def _size(doc: dict) -> int:
    if doc["engine"] == "fuzz" and "input" in doc:
        return len(repro.input_bytes(doc))
    if "schedule" in doc:
        return len(doc["schedule"]["choices"])
    if "ops" in doc:
        return len(doc["ops"])
    return len(repro.input_bytes(doc)) if "input" in doc else 0


def minimize_main(args) -> int:
    doc = repro.load(args.file)
    _check_plugins(doc)
    _check_memory(doc)
    small = minimize_doc(doc)
    out = Path(args.output)
    repro.save(small, out.parent if str(out.parent) else ".", name=out.name)
    print(f"minimized {_size(doc)} -> {_size(small)}; signature "
          f"[{small['signature']['oracle']}] kept: {out}")
    return 0
