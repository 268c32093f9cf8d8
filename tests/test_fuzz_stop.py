"""Stopping a campaign stops its libFuzzer children (`kill PID` as well as Ctrl-C)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.bench_bugs import fuzz_available

ROOT = Path(__file__).resolve().parent.parent


def _children(pid: int) -> set[int]:
    out = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        out |= {int(c) for c in (task / "children").read_text().split()}
    return out


def _descendants(pid: int) -> set[int]:
    out, todo = set(), [pid]
    while todo:
        try:
            kids = _children(todo.pop())
        except FileNotFoundError:
            continue
        out |= kids
        todo += kids
    return out


def _running_with(word: str) -> list[int]:
    """Live processes whose command line mentions word (this test's folder)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes()
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if word.encode() in cmd and state != "Z":
            pids.append(int(proc.name))
    return pids


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")
def test_sigterm_to_a_fuzz_campaign_stops_libfuzzer_and_its_fork_workers(tmp_path):
    if not fuzz_available():
        pytest.skip("atheris is not installed")
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "fuzz", "used_ring",
                             "--time", "120", "--jobs", "2", "--out", str(tmp_path), "--json"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        # Started: libFuzzer (our child) has forked its workers (its children).
        while len(_descendants(proc.pid)) < 3:
            assert time.monotonic() < deadline, "the campaign never started"
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 143, err
        assert b"terminated" in err
        # Every process of the campaign names its folder (the launcher lives there).
        deadline = time.monotonic() + 10
        while _running_with(str(tmp_path)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _running_with(str(tmp_path)), "libFuzzer outlived the campaign"
    finally:
        if proc.poll() is None:
            proc.kill()
        for pid in _running_with(str(tmp_path)):
            os.kill(pid, signal.SIGKILL)
