"""The schedule fuzz target, its FuzzSource, the fuzz engine and --bug for every target.

Bug-finding tests run a tiny bounded loop: the committed seeds first, then
seeded random inputs (or, for desc_chain, seeded structural mutations of the
seeds), and fail if the planted bug is not found within the bound.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
from pathlib import Path

import pytest

from fuzz import mutators
from fuzz.schedule import HEADER, MODELS, SCENARIOS, ScheduleFinding, ScheduleTarget, decode_params
from harness import bugs, fuzzing, repro
from harness.sched.fuzzsource import PREEMPT, FuzzSource
from harness.sched.replay import ReplaySource
from harness.sched.source import ACTION_BASE, Schedule
from harness.world import run_once

ROOT = Path(__file__).resolve().parent.parent


def seeds(target: str) -> list[bytes]:
    return [p.read_bytes() for p in sorted((ROOT / "corpora" / target).glob("*.seed"))]


def first_finding(run, inputs, bound: int):
    """The first FuzzFinding of run over inputs (at most `bound` of them)."""
    for k, data in enumerate(inputs):
        if k >= bound:
            return None
        try:
            run(data)
        except Exception as e:  # noqa: BLE001  (every escape is a finding: fuzzing.signature_of)
            return e
    return None


def failing_input(t, inputs, bound: int) -> bytes:
    """The first input (of at most `bound`) on which t raises a FuzzFinding."""
    for k, data in enumerate(inputs):
        assert k < bound, "nothing found"
        if _fails(t, data):
            return data


def seeds_then_random(target: str, seed: int, max_len: int = 300):
    yield from seeds(target)
    rng = random.Random(seed)
    while True:
        yield rng.randbytes(rng.randrange(HEADER, max_len))


# --- FuzzSource ------------------------------------------------------------------

def test_a_low_byte_keeps_the_running_task():
    src = FuzzSource(bytes([0x00, 0x7F]))
    assert src.choose((0, 1, 2), 1) == 1
    assert src.choose((0, 1, 2), 2) == 2


def test_a_high_byte_picks_an_option_by_modulo():
    src = FuzzSource(bytes([PREEMPT + 0, PREEMPT + 4, PREEMPT + 2]))
    assert src.choose((0, 1, 2), 1) == 0
    assert src.choose((0, 1, 2), 1) == 1
    assert src.choose((0, 1, ACTION_BASE), 0) == ACTION_BASE   # a store drain


def test_when_bytes_run_out_the_running_task_goes_on():
    src = FuzzSource(b"")
    assert src.choose((0, 1, 2), 2) == 2
    assert src.choose_int(7) == 0


def test_when_bytes_run_out_pending_stores_drain_first():
    """Fairness to memory: a task spinning on another's buffered store must see it."""
    src = FuzzSource(b"")
    assert src.choose((0, 1, ACTION_BASE + 3, ACTION_BASE + 5), 1) == ACTION_BASE + 3


def test_when_bytes_run_out_idle_choices_go_round_robin():
    """Not always the lowest task: two tasks waking each other must not starve a third."""
    src = FuzzSource(b"")
    got = [src.choose((0, 1, 2), None) for _ in range(4)]
    assert got == [0, 1, 2, 0]


def test_the_same_bytes_give_the_same_schedule():
    data = bytes(random.Random(5).randbytes(200))
    params = decode_params(bytes([0, 1, 1, 0x11]))
    src = FuzzSource(data)
    one = run_once(params, src, trace=False).schedule
    src.new_execution()
    assert run_once(params, src, trace=False).schedule == one
    assert run_once(params, FuzzSource(data), trace=False).schedule == one


def test_quick_answers_as_choose_would_for_the_running_task():
    src = FuzzSource(bytes([0x10, PREEMPT]))
    assert src.quick(1, ACTION_BASE) == 1 and src.pos == 1     # a low byte: consumed
    assert src.quick(1, None) is None and src.pos == 1         # a high byte: choose()'s
    src.pos = 2                                                 # out of bytes:
    assert src.quick(1, ACTION_BASE + 4) == ACTION_BASE + 4    # the oldest drain first
    assert src.quick(1, None) == 1 and src.decisions == 3      # else the task goes on


class _NoFastPath(FuzzSource):
    quick = None        # the runtime then asks choose() at every decision


def test_the_quick_fast_path_decides_exactly_as_choose():
    """Scheduler + FuzzSource.quick() must record the same schedule, steps and
    verdict as choose() alone, over every scenario and memory model."""
    rng = random.Random(3)
    target = ScheduleTarget(driver="reference", device="reference", bug="")
    for k in range(60):
        data = bytes([k % len(SCENARIOS), k % 3 | rng.randrange(256) & ~3, rng.randrange(256),
                      rng.randrange(256)]) + rng.randbytes(rng.randrange(0, 400))
        params = target.params(data)
        fast = run_once(params, FuzzSource(data[HEADER:]), trace=False)
        slow = run_once(params, _NoFastPath(data[HEADER:]), trace=False)
        assert (fast.schedule, fast.steps, fast.finding) == (slow.schedule, slow.steps,
                                                             slow.finding), data.hex()


def _per_point_inputs(count, seed):
    rng = random.Random(seed)
    for k in range(count):
        yield bytes([k % len(SCENARIOS), k % 3 | rng.randrange(256) & ~3, rng.randrange(256),
                     rng.randrange(256)]) + rng.randbytes(rng.randrange(0, 400))


def test_a_per_point_run_chooses_the_same_whether_or_not_it_records():
    """Recording asks the wake predicates at every point; not recording skips
    them where the byte does not preempt.  Neither may change a choice."""
    target = ScheduleTarget(driver="reference", device="reference", bug="")
    for data in _per_point_inputs(60, 4):
        params = target.params(data)
        fast = FuzzSource(data[HEADER:], per_point=True)
        slow = FuzzSource(data[HEADER:], per_point=True)
        a = run_once(params, fast, trace=False, record=False)
        b = run_once(params, slow, trace=False, record=True)
        assert (a.steps, a.finding, fast.pos) == (b.steps, b.finding, slow.pos), data.hex()
        assert not a.schedule.choices


def test_a_per_point_runs_recorded_schedule_replays_it_exactly():
    target = ScheduleTarget(driver="reference", device="reference", bug="")
    for data in _per_point_inputs(40, 5):
        params = target.params(data)
        run = run_once(params, FuzzSource(data[HEADER:], per_point=True), trace=True)
        again = run_once(params, ReplaySource(run.schedule), trace=True)
        assert (again.events, again.finding) == (run.events, run.finding), data.hex()


def _parked_and_running(src, record, points=5):
    """Task 0 blocks on a counting predicate; task 1 then takes `points` points.
    How many times the predicate was asked, and the source's position."""
    from harness.sched.runtime import Scheduler
    asked = []
    s = Scheduler(src, record=record)

    def ready():
        asked.append(1)
        return False
    s.spawn("parked", lambda: s.block("never", ready), daemon=True)

    def runner():
        for _ in range(points):
            s.point("op")
    s.spawn("runner", runner)
    assert s.run().error is None
    return len(asked), src.pos


def test_a_per_point_source_reads_a_byte_at_every_point_of_the_running_task():
    # Both read one byte where the run starts (two tasks to pick from); then the
    # runner's 4 points after its first (where it parked) have one option each.
    _, per_point = _parked_and_running(FuzzSource(bytes(8), per_point=True), record=False)
    _, decisions_only = _parked_and_running(FuzzSource(bytes(8)), record=False)
    assert (decisions_only, per_point) == (1, 1 + 4)


def test_not_recording_spares_the_wake_predicates_where_no_byte_preempts():
    # The parked task asks its predicate twice while it blocks (block() and
    # its own option scan); each of the runner's 4 later points may add one.
    asked, _ = _parked_and_running(FuzzSource(bytes(8), per_point=True), record=False)
    assert asked == 2
    asked, _ = _parked_and_running(FuzzSource(bytes(8), per_point=True), record=True)
    assert asked == 2 + 4               # recording: was each point a decision?
    asked, _ = _parked_and_running(FuzzSource(bytes([PREEMPT] * 8), per_point=True),
                                   record=False)
    assert asked == 2 + 4               # a preempting byte needs the options


# --- the input format -----------------------------------------------------------

def test_decoding_params_is_total():
    rng = random.Random(9)
    for data in [b""] + [rng.randbytes(rng.randrange(8)) for _ in range(200)]:
        p = decode_params(data)
        assert p["scenario"] in SCENARIOS and p["memory_model"] in MODELS
        assert p["size"] in (2, 4, 8) and 1 <= p["rx_packets"] <= 3


def test_a_bug_sets_its_scenario_features_and_weakest_model():
    bug = bugs.get("kick-prepare-wmb-not-mb")       # driver side, tso
    p = decode_params(bytes([2, 0, 0, 0]), bug=bug)  # bytes say net-rx, sc
    assert p["scenario"] == bug.scenario
    assert p["memory_model"] == "tso"
    assert p["driver"] == bugs.driver_spec(bug) and p["bug"] == bug.name
    p = decode_params(bytes([0, 2, 0, 0]), bug=bug)  # relaxed is weaker: kept
    assert p["memory_model"] == "relaxed"


def test_blk_always_gets_room_for_its_three_entry_requests():
    p = decode_params(bytes([3, 0, 0, 0]))
    assert p["scenario"] == "blk" and p["size"] >= 4 and "indirect" in p["features"]


def test_seeds_make_at_least_fifty_scheduling_points():
    t = ScheduleTarget()
    points = []
    for data in seeds("schedule"):
        t(data)
        points.append(t.last_steps)
    assert sum(points) / len(points) >= 50


# --- oracles and repros ----------------------------------------------------------

def test_a_finding_carries_the_worlds_oracle_and_its_schedule():
    t = ScheduleTarget(bug="enable-cb-no-recheck")
    e = first_finding(t, seeds_then_random("schedule", 1), 400)
    assert isinstance(e, ScheduleFinding) and e.oracle == "lost-interrupt"
    # The recorded schedule replays the same failure (a scheduled-style repro).
    again = run_once(e.params, ReplaySource(Schedule.from_json(e.schedule.to_json())),
                     trace=True)
    assert again.finding is not None and again.finding.oracle == e.oracle
    assert again.events


def test_the_reference_passes_what_the_bug_fails():
    """The finding is the planted bug's, not the target's: the same params and
    schedule bytes with the reference driver run clean."""
    t = ScheduleTarget(bug="enable-cb-no-recheck")
    data = failing_input(t, seeds_then_random("schedule", 1), 400)
    params = dict(t.params(data), driver="reference")
    params.pop("bug")
    assert run_once(params, FuzzSource(data[HEADER:]), trace=False).finding is None


def _fails(t, data) -> bool:
    try:
        t(data)
    except Exception:  # noqa: BLE001
        return True
    return False


def test_a_schedule_crash_becomes_a_repro_with_params_schedule_and_bug(tmp_path):
    t = ScheduleTarget(bug="enable-cb-no-recheck")
    data = failing_input(t, seeds_then_random("schedule", 1), 400)
    art = tmp_path / "crash-1"
    art.write_bytes(data)
    path = fuzzing.artifact_to_repro("schedule", art, tmp_path, bug="enable-cb-no-recheck")
    doc = repro.load(path)
    assert doc["bug"] == "enable-cb-no-recheck"
    assert doc["driver"] == bugs.driver_spec(bugs.get("enable-cb-no-recheck"))
    assert doc["params"]["scenario"] == doc["scenario"] and doc["schedule"]["choices"]
    found = fuzzing.replay_fuzz(doc)
    assert found is not None and found.oracle == "lost-interrupt"
    assert fuzzing.replay_fuzz(dict(doc, bug=None, driver="reference")) is None


@pytest.mark.parametrize("bug, bound", [("kick-prepare-wmb-not-mb", 300),
                                        ("missing-wmb-avail-idx", 3000),
                                        ("enable-cb-no-recheck", 300)])
def test_the_schedule_target_finds_planted_ordering_bugs(bug, bound):
    e = first_finding(ScheduleTarget(bug=bug), seeds_then_random("schedule", 1), bound)
    assert isinstance(e, ScheduleFinding), f"{bug} not found in {bound} inputs"


# --- the schedule mutator -----------------------------------------------------------

def test_schedule_mutator_knows_the_targets_header_length():
    from fuzz import schedule_mutator as sm
    assert sm.HEADER == HEADER      # a copy: the target module cannot be imported twice


def test_schedule_mutator_is_deterministic_and_bounded():
    from fuzz import schedule_mutator as sm
    data = bytes([2, 2, 1, 0]) + bytes(range(40))
    flip = lambda d, n: bytes(d[:-1]) + b"\xff"
    outs = [sm.custom_mutator(data, 128, seed, flip) for seed in range(300)]
    assert outs == [sm.custom_mutator(data, 128, seed, flip) for seed in range(300)]
    assert all(len(o) <= 128 for o in outs)
    assert len(set(outs)) > 100          # it does mutate, many ways
    assert sum(o == flip(data, 128) for o in outs) in range(100, 200)  # BYTE_SHARE of calls


@pytest.mark.parametrize("edit", ["reroll_suffix", "preempt_window", "calm_window"])
def test_schedule_edits_keep_the_header(edit):
    from fuzz import schedule_mutator as sm
    data = bytes([3, 6, 9, 12]) + bytes(60)
    for seed in range(50):
        out = getattr(sm, edit)(bytearray(data), mutators.SplitMix(seed), 256)
        assert out[:HEADER] == data[:HEADER] and len(out) <= 256


def test_preempt_and_calm_windows_write_only_their_kind_of_byte():
    from fuzz import schedule_mutator as sm
    data = bytes(4) + bytes([0x40]) * 100
    for seed in range(50):
        hot = sm.preempt_window(bytearray(data), mutators.SplitMix(seed), 256)
        changed = [b for a, b in zip(data, hot) if a != b]
        assert changed and all(b >= PREEMPT for b in changed)
        calm = sm.calm_window(bytearray(bytes(4) + bytes([0xC0]) * 100),
                              mutators.SplitMix(seed), 256)
        assert any(b < PREEMPT for b in calm[HEADER:])
        assert all(b < PREEMPT or b == 0xC0 for b in calm[HEADER:])


def test_schedule_mutator_finds_a_reordering_the_seeds_alone_miss():
    """The point of the edits: from the seed corpus, a few hundred mutations
    reach a store reordering (missing-wmb-avail-idx under relaxed)."""
    from fuzz import schedule_mutator as sm
    from harness.bench_fuzz import mutations_to_finding
    t = ScheduleTarget(bug="missing-wmb-avail-idx")
    base = seeds("schedule")
    assert all(t.run(d).finding is None for d in base)
    pick = mutators.SplitMix(11)
    n = mutations_to_finding(t, base, lambda d: sm.schedule_mutate(d, pick, 1024), pick, 3000)
    assert n is not None, "no reordering found in 3000 mutations"


# --- --bug for desc_chain and used_ring ----------------------------------------------

def _mutations(target: str, seed: int):
    """The seeds, then seeded structural mutations of them (the mutator's edits)."""
    base = seeds(target)
    yield from base
    rng = mutators.SplitMix(seed)
    pool = list(base)
    while True:
        data = pool[rng.randrange(len(pool))]
        for _ in range(1 + rng.randrange(3)):
            data = mutators.structural_mutate(data, rng)
        pool.append(data)
        yield data


@pytest.mark.parametrize("bug", ["no-loop-detection", "nested-indirect",
                                 "readable-after-writable"])
def test_desc_chain_finds_device_validation_bugs(bug):
    t = fuzzing.make_target("desc_chain", bug=bug)
    data = failing_input(t, _mutations("desc_chain", 7), 3000)
    assert fuzzing.run_input("desc_chain", data) is None   # the reference device passes it


# The zoo is being edited by others: test the hardening bugs it holds.
HARDENING = [b for b in ("used-id-unchecked", "used-len-unchecked", "used-idx-jump-unchecked",
                         "broken-not-sticky") if b in bugs.ZOO]


@pytest.mark.parametrize("bug", HARDENING)
def test_used_ring_finds_driver_hardening_bugs(bug):
    t = fuzzing.make_target("used_ring", bug=bug)
    data = failing_input(t, _mutations_bytes("used_ring", 3), 3000)
    # The input that found it passes the reference driver.
    assert fuzzing.run_input("used_ring", data) is None


def _mutations_bytes(target: str, seed: int):
    """The seeds, then seeded byte flips of them."""
    rng = random.Random(seed)
    base = seeds(target)
    yield from base
    while True:
        data = bytearray(rng.choice(base))
        for _ in range(1 + rng.randrange(4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        yield bytes(data)


def test_minimize_keeps_the_recorded_driver():
    """The fuzz minimize branch replays with the repro's driver/bug, not the reference."""
    from harness.replay import minimize_doc
    t = fuzzing.make_target("used_ring", bug="used-id-unchecked")
    data = next(d for d in seeds("used_ring") if _fails(t, d))
    exc = fuzzing.run_input_exc("used_ring", data, bug="used-id-unchecked")
    driver, _ = fuzzing.bug_specs("used-id-unchecked")
    doc = fuzzing.fuzz_doc("used_ring", data, signature=fuzzing.signature_of(exc),
                           driver=driver, bug="used-id-unchecked")
    small = minimize_doc(doc)
    assert small["driver"] == driver and small["bug"] == "used-id-unchecked"
    assert len(repro.input_bytes(small)) <= len(data)
    assert fuzzing.replay_fuzz(small) is not None


# --- the engine and libFuzzer ---------------------------------------------------------

def test_check_engine_fuzz_finds_a_planted_bug_and_records_it(tmp_path):
    from harness.check import run_check
    opts = argparse.Namespace(engine="fuzz", target="schedule", bug="enable-cb-no-recheck",
                              driver="reference", device="reference", time=30, seed=1,
                              out=str(tmp_path), json=True, progress=None)
    res = run_check(opts)
    assert res.found and res.oracle == "lost-interrupt"
    doc = repro.load(res.repro)
    assert doc["target"] == "schedule" and doc["bug"] == "enable-cb-no-recheck"
    assert doc["driver"] == bugs.driver_spec(bugs.get("enable-cb-no-recheck"))


def test_a_crash_on_an_input_already_in_the_out_folder_is_still_a_finding(tmp_path):
    # libFuzzer names artifacts by the input's hash: the same campaign again
    # rewrites the same file, which was there before it started.
    art = tmp_path / "crash-39f18bc2"
    art.write_bytes(b"x")
    before = {art}
    log = f"SUMMARY: libFuzzer: fuzz target exited\nTest unit written to {art}\n"
    assert fuzzing.new_artifacts(tmp_path, before, log) == [art]
    assert fuzzing.new_artifacts(tmp_path, before, "") == []
    fresh = tmp_path / "crash-0a0b"
    fresh.write_bytes(b"y")
    assert fuzzing.new_artifacts(tmp_path, before, log) == [fresh, art]


def test_a_campaigns_pinned_model_reaches_the_fuzzing_child(tmp_path):
    # Unpinned, the bug raises the model to tso and the first seed finds it
    # (test_a_pinned_campaigns_crash_replays_under_its_pinned_model); pinned to
    # sc, where the store-load reordering does not exist, a bounded campaign is clean.
    res = fuzzing.run_fuzz("schedule", time_s=30, out_dir=tmp_path, progress=False,
                           bug="kick-prepare-wmb-not-mb", memory_model="sc", seed=1, runs=300)
    assert res.extra["exit_code"] == 0 and res.runs >= 300
    assert not res.found, res.message


@pytest.mark.parametrize("target", fuzzing.TARGETS)
def test_each_target_runs_under_libfuzzer(target, tmp_path):
    """A real atheris/libFuzzer smoke: the seeds plus a bounded number of runs."""
    launcher = fuzzing.write_launcher(target, tmp_path)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    args = fuzzing.libfuzzer_args(time_s=20, jobs=1, out_dir=tmp_path, corpus=corpus,
                                  seeds=fuzzing.seed_dir(target), runs=200,
                                  max_len=fuzzing.MAX_LENS.get(target, fuzzing.MAX_LEN),
                                  extra=["-seed=1"])
    env = {k: v for k, v in os.environ.items() if not k.startswith("VRINGFUZZ_")}
    proc = subprocess.run([str(launcher)] + args, cwd=tmp_path, env=env, timeout=120,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert fuzzing.parse_stats(proc.stderr).get("runs", 0) >= 200


# --- a pinned memory model (--memory-model, VRINGFUZZ_MODEL) ---------------------

def test_a_pinned_model_overrides_the_model_byte_and_the_bugs_model():
    bug = bugs.get("kick-prepare-wmb-not-mb")        # needs tso
    for b1 in range(3):
        data = bytes([0, b1, 0, 0])
        assert decode_params(data, model="relaxed")["memory_model"] == "relaxed"
        assert decode_params(data, bug=bug)["memory_model"] != "sc"
        assert decode_params(data, bug=bug, model="sc")["memory_model"] == "sc"


def test_the_target_reads_its_pinned_model_from_the_environment(monkeypatch):
    monkeypatch.setenv("VRINGFUZZ_MODEL", "tso")
    assert ScheduleTarget().params(bytes(HEADER))["memory_model"] == "tso"
    assert ScheduleTarget(model="").params(bytes(HEADER))["memory_model"] == "sc"
    monkeypatch.setenv("VRINGFUZZ_MODEL", "weak")
    with pytest.raises(ValueError, match="weak"):
        ScheduleTarget()


def test_a_model_pin_on_a_target_without_models_is_a_usage_error():
    from harness.errors import UsageError
    with pytest.raises(UsageError, match="no memory model"):
        fuzzing.make_target("desc_chain", memory_model="tso")


def _repro_of_first_crash(t, tmp_path, **kw) -> dict:
    """The repro a campaign makes of t's first failing input (seeds, then random)."""
    art = tmp_path / "crash-1"
    art.write_bytes(failing_input(t, seeds_then_random("schedule", 1), 400))
    return repro.load(fuzzing.artifact_to_repro("schedule", art, tmp_path, **kw))


def test_a_pinned_campaigns_crash_replays_under_its_pinned_model(tmp_path):
    # kick-prepare-wmb-not-mb is a store-load reordering: tso has it, sc does not.
    name = "kick-prepare-wmb-not-mb"
    doc = _repro_of_first_crash(ScheduleTarget(bug=name, model="tso"), tmp_path, bug=name,
                                memory_model="tso")
    assert doc["memory_model"] == doc["params"]["memory_model"] == "tso"
    assert fuzzing.replay_fuzz(doc) is not None
    # Replay pins the recorded model: under sc the same input is clean, although
    # the bug alone would raise the bytes' model to tso.
    assert fuzzing.replay_fuzz(dict(doc, memory_model="sc")) is None


def test_a_schedule_repro_without_a_recorded_run_still_records_its_model():
    doc = fuzzing.fuzz_doc("schedule", bytes([0, 2, 0, 0]),
                           signature={"oracle": "fuzz:timeout", "message": "timeout"})
    assert doc["memory_model"] == "relaxed"                   # what the bytes chose
    doc = fuzzing.fuzz_doc("schedule", bytes([0, 2, 0, 0]), memory_model="tso",
                           signature={"oracle": "fuzz:timeout", "message": "timeout"})
    assert doc["memory_model"] == "tso"


# --- the memory model's choices ("points") ---------------------------------------------

def test_the_target_offers_only_effective_choices_and_its_params_say_so(monkeypatch):
    assert ScheduleTarget().params(bytes(HEADER))["points"] == "effective"
    monkeypatch.setenv("VRINGFUZZ_POINTS", "all")
    assert ScheduleTarget().params(bytes(HEADER))["points"] == "all"
    monkeypatch.setenv("VRINGFUZZ_POINTS", "some")
    with pytest.raises(ValueError, match="points 'some'"):
        ScheduleTarget()


def test_effective_choices_make_shorter_runs_of_the_same_seeds():
    # No-op fences and stale drops are no steps: the seeds' runs get shorter,
    # and still take more than fifty scheduling points on average.
    steps = {}
    for points in ("all", "effective"):
        t = ScheduleTarget(points=points)
        steps[points] = []
        for data in seeds("schedule"):
            t(data)
            steps[points].append(t.last_steps)
    assert sum(steps["effective"]) < 0.9 * sum(steps["all"])
    assert sum(steps["effective"]) / len(steps["effective"]) >= 50


def test_a_repro_from_before_points_replays_its_bytes_with_every_choice(tmp_path):
    name = "enable-cb-no-recheck"
    doc = _repro_of_first_crash(ScheduleTarget(bug=name, points="all"), tmp_path, bug=name,
                                points="all")
    assert doc["params"]["points"] == "all"
    params = dict(doc["params"])
    del params["points"]                    # as every repro made before it existed
    old = dict(doc, params=params)
    assert fuzzing.fuzz_impl(old)["points"] == "all"
    assert fuzzing.replay_fuzz(old).oracle == doc["signature"]["oracle"]


@pytest.mark.parametrize("where, key, said", [
    ("params", "points", "params points 'some'"),
    ("params", "memory_model", "params memory_model 'some'"),
    ("doc", "memory_model", "memory_model 'some'")])
def test_replaying_a_repro_with_an_unknown_model_or_points_is_a_usage_error(
        tmp_path, capsys, where, key, said):
    from harness import cli
    doc = repro.load(next((ROOT / "corpora" / "crashes" / "schedule").glob("*.json")))
    (doc["params"] if where == "params" else doc)[key] = "some"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    for command in (["replay", str(path)], ["minimize", str(path), "-o", str(tmp_path / "o")]):
        assert cli.main(command) == 2
        assert said in capsys.readouterr().err


def test_the_bench_compares_the_choices_side_by_side():
    from harness.bench_fuzz import compare_points, format_points
    res = compare_points(seconds=1, pairs=1)
    m = res["median"]
    # Each side ran with its own setting: the default has fewer points a run.
    assert res["default"] == "effective"
    assert 50 <= m["effective"]["points_per_exec"] < m["all"]["points_per_exec"]
    assert res["ratio"] and "points=all" in format_points(res)
