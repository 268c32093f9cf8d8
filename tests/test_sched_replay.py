"""Determinism and replay: same seed -> same schedule and trace, anywhere."""
import json
import os
import subprocess
import sys

import pytest

from harness.bench_sched import ring_run
from harness.sched import (PCTSource, RandomSource, ReplayDivergence, ReplaySource, Schedule,
                           ScheduleFormatError)

_SCRIPT = """
import hashlib, json, sys
from harness.bench_sched import ring_run
from harness.sched import RandomSource
out, n = ring_run(RandomSource(11), "relaxed", round_trips=6, trace=True)
doc = json.dumps([out.schedule.to_json(), [list(map(repr, e)) for e in out.events]])
print(hashlib.sha256(doc.encode()).hexdigest())
"""


def _digest(out) -> str:
    import hashlib
    doc = json.dumps([out.schedule.to_json(), [list(map(repr, e)) for e in out.events]])
    return hashlib.sha256(doc.encode()).hexdigest()


@pytest.mark.parametrize("model", ["sc", "tso", "relaxed"])
def test_same_seed_gives_identical_schedule_and_trace(model):
    a, _ = ring_run(RandomSource(4), model, round_trips=6, trace=True)
    b, _ = ring_run(RandomSource(4), model, round_trips=6, trace=True)
    assert a.error is None and len(a.schedule) > 10
    assert a.schedule == b.schedule and a.events == b.events


def test_same_seed_gives_identical_trace_in_subprocesses_with_other_hash_seeds():
    here, _ = ring_run(RandomSource(11), "relaxed", round_trips=6, trace=True)
    digests = set()
    for hashseed in ("1", "4242"):
        env = dict(os.environ, PYTHONHASHSEED=hashseed)
        r = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, capture_output=True,
                           text=True, check=True, cwd=os.path.dirname(os.path.dirname(__file__)))
        digests.add(r.stdout.strip())
    assert digests == {_digest(here)}


@pytest.mark.parametrize("model", ["sc", "tso", "relaxed"])
@pytest.mark.parametrize("make", [lambda: RandomSource(7, switch_prob=0.3),
                                  lambda: PCTSource(7, depth=3, max_steps_hint=200)])
def test_replay_reproduces_a_recorded_run_exactly(model, make):
    rec, n = ring_run(make(), model, round_trips=5, trace=True)
    src = ReplaySource(rec.schedule)
    rep, n2 = ring_run(src, model, round_trips=5, trace=True)
    assert rep.error is None and src.finished and src.divergences == 0
    assert rep.schedule == rec.schedule and rep.events == rec.events and n2 == n


def test_strict_replay_reports_divergence_as_the_outcome_error():
    rec, _ = ring_run(RandomSource(1), "tso", round_trips=3)
    cut = Schedule(choices=rec.schedule.choices[: len(rec.schedule) // 2])
    out, _ = ring_run(ReplaySource(cut), "tso", round_trips=3)
    assert isinstance(out.error, ReplayDivergence)


def test_lenient_replay_falls_back_to_no_preemption_and_counts_it():
    rec, _ = ring_run(RandomSource(1), "tso", round_trips=3)
    cut = Schedule(choices=rec.schedule.choices[: len(rec.schedule) // 2])
    src = ReplaySource(cut, strict=False)
    out, n = ring_run(src, "tso", round_trips=3)
    assert out.error is None and n == 3 and src.divergences > 0


def test_schedule_round_trips_through_json_and_rejects_other_versions():
    s = Schedule(choices=(0, 1, 1048576, 0))
    assert Schedule.from_json(json.loads(json.dumps(s.to_json()))) == s
    with pytest.raises(ScheduleFormatError):
        Schedule.from_json({"version": 2, "choices": []})


def test_strict_replay_rejects_a_recorded_choice_that_is_not_enabled():
    rec, _ = ring_run(RandomSource(1), "sc", round_trips=3)
    bogus = Schedule(choices=(99,) + rec.schedule.choices[1:])
    out, _ = ring_run(ReplaySource(bogus), "sc", round_trips=3)
    assert isinstance(out.error, ReplayDivergence) and "not enabled" in str(out.error)


def test_a_saved_repro_is_a_whole_file_readable_like_any_output(tmp_path):
    """Written atomically (no temporary file left) with the umask's mode, not 0600."""
    import os
    from harness import repro
    old = os.umask(0o022)
    try:
        path = repro.save({"format": 1, "x": [1, 2]}, tmp_path, "r.json")
    finally:
        os.umask(old)
    assert os.stat(path).st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]
    assert repro.dumps({"format": 1, "x": [1, 2]}) == path.read_text()
