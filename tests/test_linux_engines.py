"""Every engine against the real Linux ring (issue 6): memory, bridge, crashes, a planted bug.

Skipped, with the reason, when the Debian package linux-source-6.1 is not
installed.  Runs are counted, never timed: each scheduled check below is a
fixed number of runs from a fixed seed (the engines' own loops are budgeted
in seconds, so only their plumbing is exercised through them).
"""
from __future__ import annotations

import ctypes
import difflib
from argparse import Namespace
from pathlib import Path

import pytest

from harness.linux import build as linux_build

if not linux_build.tarball("6.1").is_file():
    pytest.skip("the linux-source-6.1 package is not installed (apt-get install "
                "linux-source-6.1)", allow_module_level=True)

from hypothesis import settings  # noqa: E402
from hypothesis.stateful import run_state_machine_as_test  # noqa: E402

from harness import nativemem  # noqa: E402
from harness.engines.pct import _LearningPCT  # noqa: E402
from harness.oracles import LengthBound  # noqa: E402
from harness.stateful import machine_for  # noqa: E402
from harness.world import run_once  # noqa: E402
from vring.features import F_IN_ORDER  # noqa: E402

LINUX = "harness.linux.driver:make"
LINUX_TSAN = "harness.linux.driver:make_tsan"
VRINGH = "harness.linux.vringh:make"


@pytest.fixture(scope="module")
def libs():
    """The stock libraries (plain and tsan), cached after the first build."""
    return linux_build.build("6.1"), linux_build.build("6.1", tsan=True)


def pct_runs(params, seed, runs):
    """The first finding of `runs` PCT runs from `seed` (the pct engine's source)."""
    source = _LearningPCT(seed, 3)
    for i in range(runs):
        source.new_execution()
        report = run_once(params, source, trace=False)
        if report.finding is not None:
            return i + 1, report.finding
    return runs, None


# -- the memory a run needs ------------------------------------------------------

def test_a_native_side_gets_memory_whose_base_is_its_real_address():
    mem = nativemem.memory_for(LINUX, "reference", size=1 << 16)
    assert ctypes.addressof(ctypes.c_char.from_buffer(mem.buf)) == mem.base
    plain = nativemem.memory_for("reference", "reference", size=1 << 16)
    assert plain.base == 0x1000 and isinstance(plain.buf, bytearray)


def test_features_a_plugin_lacks_are_masked_out_of_draws():
    assert not nativemem.plugin_features(LINUX, VRINGH) & F_IN_ORDER
    assert nativemem.plugin_features("reference", "reference") & F_IN_ORDER


# -- the scheduled engines ----------------------------------------------------------

@pytest.mark.parametrize("driver,device,model", [
    (LINUX, "reference", "sc"), (LINUX, "reference", "tso"),
    ("reference", VRINGH, "tso"), (LINUX, VRINGH, "relaxed"),
    (LINUX_TSAN, "reference", "tso")])
def test_pct_on_the_unmodified_linux_ring_is_clean(libs, driver, device, model):
    params = {"scenario": "net", "driver": driver, "device": device, "memory_model": model}
    assert pct_runs(params, seed=1, runs=15) == (15, None)


def test_the_pct_engine_runs_a_linux_check_in_a_worker_and_finds_nothing(libs, tmp_path):
    from harness.engines import pct
    opts = Namespace(engine="pct", scenario=None, bug=None, driver=LINUX, device="reference",
                     memory_model=None, time=0.5, seed=7, out=str(tmp_path), size=None,
                     features=None, depth=3, json=True)
    res = pct.run(opts)
    assert not res.found and res.runs > 0 and res.extra["seed"] == 7


def test_c_stores_of_the_plain_build_reach_the_spec_monitor(libs):
    # vringh.c's used idx stores retire the chains the driver may reuse: without
    # the StoreReporter the monitor believes the device still owns them.
    params = {"scenario": "net", "driver": "reference", "device": VRINGH,
              "memory_model": "sc"}
    assert pct_runs(params, seed=3, runs=10) == (10, None)


def test_plain_c_stores_never_overtake_the_callers_buffered_stores(libs):
    # vringh.c publishes used idx straight to memory: the payload the device
    # task wrote before (buffered under tso) must be visible first, or the
    # driver reads stale bytes (data-integrity).  StoreReporter.enter drains.
    params = {"scenario": "net", "driver": LINUX, "device": VRINGH, "memory_model": "tso"}
    assert pct_runs(params, seed=4, runs=12) == (12, None)


# -- the stateful machines and the malicious-device fuzz target -------------------

def test_the_stateful_ring_machine_is_clean_with_the_linux_driver(libs):
    machine = machine_for("ring", LINUX, "reference")
    run_state_machine_as_test(machine, settings=settings(max_examples=10, database=None,
                                                           deadline=None,
                                                           stateful_step_count=20))


def test_linux_61_returns_a_used_len_larger_than_the_buffer(libs):
    """Not a false positive: 6.1's virtio_ring.c does not validate used len
    (the 5.16 check was reverted), so a malicious device's len reaches the
    caller and the length-bound oracle (rule used-len-bound, 2.7.8) fires."""
    import random

    from fuzz.common import FuzzFinding
    from fuzz.used_ring import UsedRingTarget
    target = UsedRingTarget(LINUX)
    rng = random.Random(0)
    seen = set()
    for _ in range(400):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(4, 120)))
        try:
            target(data)
        except LengthBound:
            seen.add("length-bound")
        except FuzzFinding as e:        # any other finding would be news: show it
            pytest.fail(f"{type(e).__name__}: {e}")
    assert seen == {"length-bound"}


# -- crashes ---------------------------------------------------------------------------

def test_a_segfault_in_a_native_check_is_a_crash_finding_with_its_seed():
    opts = Namespace(engine="pct", driver=LINUX, device="reference", memory_model="tso",
                     scenario=None, time=1.0, seed=None)
    res = nativemem.isolated(opts, "pct", lambda: ctypes.string_at(0))
    assert res.found and res.oracle == "crash" and "SIGSEGV" in res.message
    assert f"--seed {opts.seed}" in res.message and res.extra["seed"] == opts.seed


# -- a planted fault in the real source --------------------------------------------

def kick_prepare_wmb_patch(tmp_path: Path) -> Path:
    """virtio_mb -> virtio_wmb in virtqueue_kick_prepare_split (undoes a72caae21803),
    as a -p1 diff written from the installed source (no kernel text is committed)."""
    src = linux_build.source_dir("6.1") / "drivers/virtio/virtio_ring.c"
    old = src.read_text()
    start = old.index("static bool virtqueue_kick_prepare_split(")
    at = old.index("virtio_mb(vq->weak_barriers);", start)
    new = old[:at] + "virtio_wmb" + old[at + len("virtio_mb"):]
    name = "drivers/virtio/virtio_ring.c"
    diff = difflib.unified_diff(old.splitlines(True), new.splitlines(True),
                                f"a/{name}", f"b/{name}")
    path = tmp_path / "kick-prepare-wmb.diff"
    path.write_text("".join(diff))
    return path


def test_the_lost_kick_of_a_patched_kick_prepare_is_found_under_tso(libs, tmp_path):
    lib = linux_build.build("6.1", tsan=True, patch=kick_prepare_wmb_patch(tmp_path))
    assert "custom-" in lib.name
    params = {"scenario": "net", "driver": f"harness.linux.lib:{lib}",
              "device": "reference", "memory_model": "tso"}
    runs, finding = pct_runs(params, seed=1, runs=30)
    assert finding is not None and finding.oracle == "lost-kick", (runs, finding)
    # The same schedules on the stock tsan build: clean (the patch is the bug).
    stock = dict(params, driver=f"harness.linux.lib:{libs[1]}")
    assert pct_runs(stock, seed=1, runs=runs) == (runs, None)

