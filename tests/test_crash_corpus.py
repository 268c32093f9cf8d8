"""The crash corpus (corpora/crashes/<target>/*.json) replayed as regression tests.

Every file is a minimised fuzz repro.  Most are the fuzzer's findings against a
planted bug of the zoo (the doc's "bug"; the file is named after it); those are
checked both ways:
* detection: replayed as recorded (bug planted) it still fails with the oracle
  of its signature, so the harness still catches that bug;
* fix: the same input on the reference ring (bug stripped) finds nothing.
A file without a bug is a finding against the ring itself and must no longer
fail once fixed.  Every target keeps at least one file, so the corpus cannot
silently vanish.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from harness import bugs, fuzzing, repro
from harness.replay import replay_doc

MAX_FILE_BYTES = 4096      # "keep files small": one minimised input each


def crash_repros() -> list[Path]:
    return sorted(fuzzing.crash_dir().glob("*/*.json"))


def case_id(path: Path) -> str:
    return f"{path.parent.name}/{path.stem}"


ALL = crash_repros()
PLANTED = [p for p in ALL if repro.load(p).get("bug")]


def without_bug(doc: dict) -> dict:
    """The same repro on the reference ring: no bug, reference driver and device."""
    return dict(doc, bug=None, driver="reference", device="reference")


def schedule_run_on_reference(doc: dict, data: bytes):
    """A schedule input run with the recorded params (the scenario, memory model
    and features its bug chose) but the reference sides and no bug: the
    ScheduleFinding it raises, or None."""
    from fuzz.schedule import ScheduleFinding, ScheduleTarget
    params = {k: v for k, v in doc["params"].items() if k != "bug"}
    params.update(driver="reference", device="reference")
    target = ScheduleTarget(driver="reference", device="reference", bug="")
    target.params = lambda _data: dict(params)
    try:
        target(data)
    except ScheduleFinding as e:
        return e
    return None


@pytest.mark.parametrize("path", ALL, ids=case_id)
def test_committed_crash_is_a_small_fuzz_repro_in_its_target_folder(path):
    doc = repro.load(path)
    assert doc["engine"] == "fuzz" and doc["target"] == path.parent.name
    assert doc["target"] in fuzzing.TARGETS
    assert path.stat().st_size <= MAX_FILE_BYTES, f"{path.name}: minimise it"
    repro.input_bytes(doc)                       # a valid base64 input
    bug = doc.get("bug")
    if bug:
        bugs.get(bug)                            # a zoo bug, by its name
        assert path.stem == bug, "name the file after its bug"
        # The recorded sides are the bug's faulty side and nothing else.
        assert (doc["driver"], doc["device"]) == fuzzing.bug_specs(bug)
        if doc["target"] == "schedule":
            p = doc["params"]
            assert (p["driver"], p["device"], p.get("bug")) == (doc["driver"], doc["device"], bug)


@pytest.mark.parametrize("path", PLANTED, ids=case_id)
def test_planted_bug_is_still_detected(path):
    doc = repro.load(path)
    want = doc["signature"]["oracle"]
    found = fuzzing.replay_fuzz(doc)
    assert found is not None, f"{case_id(path)}: the harness no longer detects {doc['bug']}"
    assert found.oracle == want, f"{case_id(path)}: found [{found.oracle}], recorded [{want}]"
    if doc["target"] == "schedule":
        # `vringfuzz replay` replays a schedule repro as its recorded schedule.
        got = replay_doc(doc).finding
        assert got is not None and got.oracle == want, f"{case_id(path)}: recorded schedule"


@pytest.mark.parametrize("path", ALL, ids=case_id)
def test_replay_finds_nothing_on_the_fixed_ring(path):
    doc = repro.load(path)
    if not doc.get("bug"):
        # A finding against the ring itself: fixed, so it must no longer fail.
        assert fuzzing.replay_fuzz(doc) is None, f"{case_id(path)} fails again"
        return
    found = fuzzing.replay_fuzz(without_bug(doc))
    assert found is None, (f"{case_id(path)} fails without {doc['bug']}: "
                           f"[{found.oracle}] {found.message}")
    if doc["target"] == "schedule":
        # Without its bug the input may decode to another scenario; run it
        # also in the very run setup the bug chose.
        exc = schedule_run_on_reference(doc, repro.input_bytes(doc))
        assert exc is None, f"{case_id(path)} fails on the reference: [{exc.oracle}] {exc}"


def test_every_target_has_a_committed_crash():
    for target in fuzzing.TARGETS:
        assert sorted(fuzzing.crash_dir(target).glob("*.json")), \
            f"corpora/crashes/{target}/ has no repro"


def test_every_crash_file_is_in_a_target_folder():
    stray = [p for p in fuzzing.crash_dir().rglob("*.json")
             if p.parent.parent != fuzzing.crash_dir() or p.parent.name not in fuzzing.TARGETS]
    assert not stray, f"not replayed by the tests: {stray}"
