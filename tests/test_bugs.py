"""The bug zoo: every fault is documented, switched in only where named, and found.

Rules checked: each entry carries its class, mechanism, spec rule and side
(issue 5); a ring-level fault changes exactly the barrier / store / check it
names and nothing else; a scenario fault is guarded by its name (the correct
ring stays clean under the same schedules); `--bug` with an unknown name is
a one-line usage error (exit 2); representative bugs are detected by their
best engine with a fixed seed within a small number of runs.
"""
from __future__ import annotations

import pytest

from vring.errors import DescriptorLoop, ReadableAfterWritable
from vring.features import F_EVENT_IDX, F_VERSION_1
from vring.memory import GuestMemory
from vring.contract import build, setup_queue
from vring.platform import Platform
from vring.layout import SplitLayout

from harness import bugs, cli
from harness.engines.pct import _LearningPCT
from harness.engines.scheduled import params_for
from harness.stateful import HardeningModel
from harness.stateful_driver import MaliciousDriverModel
from harness.world import run_once

from fuzz.common import WrongVerdict


# --- documentation ---------------------------------------------------------------

def test_zoo_has_at_least_24_bugs_and_two_per_class():
    assert len(bugs.BUGS) >= 24
    for klass in bugs.CLASSES:
        assert sum(b.klass == klass for b in bugs.BUGS) >= 2, klass


@pytest.mark.parametrize("bug", bugs.BUGS, ids=lambda b: b.name)
def test_every_bug_documents_class_mechanism_rule_and_side(bug):
    assert bug.klass in bugs.CLASSES
    assert bug.mechanism.strip().endswith(".") and len(bug.mechanism) > 30
    assert bug.rule.strip()
    assert bug.side in ("driver", "device", "scenario")
    # Ring-level faults load through the plug-in contract; scenario ones do not.
    assert (bug.make is not None) == (bug.side != "scenario")


def test_unknown_bug_is_a_one_line_usage_error(capsys):
    assert cli.main(["check", "--bug", "no-such-bug", "--time", "1"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "no-such-bug" in err


def test_bugs_command_lists_every_bug(capsys):
    assert cli.main(["bugs"]) == 0
    out = capsys.readouterr().out
    assert all(b.name in out for b in bugs.BUGS)


# --- ring-level faults change exactly what they name -----------------------------

class BarrierCount(GuestMemory):
    """Plain memory that records (barrier, calling ring method)."""

    def __init__(self):
        super().__init__(1 << 16)
        self.calls: list = []

    def _note(self, kind):
        import sys
        f = sys._getframe(1)
        while f.f_code.co_name in ("wmb", "rmb", "mb", "barrier_call"):
            f = f.f_back            # FaultyMemory's wrapper sits in between
        self.calls.append((kind, f.f_code.co_name))

    def wmb(self):
        self._note("wmb")

    def rmb(self):
        self._note("rmb")

    def mb(self):
        self._note("mb")


def _pair(bug_name: str | None, features: int = F_VERSION_1):
    mem = BarrierCount()
    cfg = setup_queue(mem, 4, features)
    bug = bugs.get(bug_name) if bug_name else None
    drv = build(bugs.driver_spec(bug), "driver", mem, cfg, Platform())
    dev = build(bugs.device_spec(bug), "device", mem, cfg, Platform())
    return mem, drv, dev, cfg


def _round_trip(mem, drv, dev):
    buf = mem.alloc(16)
    drv.add_sgs([], [(buf, 16)], "t")
    drv.kick_prepare()
    chain = dev.pop()
    dev.push(chain.head, 4)
    dev.needs_interrupt()
    return drv.get_buf()


def _barriers(bug_name):
    mem, drv, dev, _ = _pair(bug_name)
    assert _round_trip(mem, drv, dev) == ("t", 4)
    return mem.calls


def test_kick_prepare_fault_weakens_only_its_full_barrier():
    ref, bug = _barriers(None), _barriers("kick-prepare-wmb-not-mb")
    assert ("mb", "kick_prepare") in ref and ("mb", "kick_prepare") not in bug
    assert ("wmb", "kick_prepare") in bug
    rest = lambda calls: [c for c in calls if c[1] != "kick_prepare"]  # noqa: E731
    assert rest(ref) == rest(bug)


def test_missing_wmb_avail_idx_drops_only_add_sgs_barrier():
    ref, bug = _barriers(None), _barriers("missing-wmb-avail-idx")
    assert ("wmb", "add_sgs") in ref and ("wmb", "add_sgs") not in bug
    assert [c for c in ref if c != ("wmb", "add_sgs")] == bug


def test_missing_rmb_pop_drops_only_the_device_read_barrier():
    ref, bug = _barriers(None), _barriers("missing-rmb-pop")
    assert ("rmb", "pop") in ref and ("rmb", "pop") not in bug
    assert [c for c in ref if c != ("rmb", "pop")] == bug


def test_used_event_fault_drops_only_that_store():
    def used_event_after(bug_name):
        mem, drv, dev, cfg = _pair(bug_name, F_VERSION_1 | F_EVENT_IDX)
        lay = SplitLayout(cfg.size, cfg.desc, cfg.avail, cfg.used)
        _round_trip(mem, drv, dev)
        return mem.read16(lay.used_event), mem.read16(lay.avail_idx)
    ref, bug = used_event_after(None), used_event_after("used-event-not-updated")
    assert ref[0] == 1 and bug[0] == 0      # get_buf advanced used_event: only ref
    assert ref[1] == bug[1] == 1            # the other stores are untouched


def _chain_program(model, flags_second: int):
    model.apply("desc", i=0, addr="data", len=8, flags=1 | 2, next=1)      # NEXT|WRITE
    model.apply("desc", i=1, addr="data+64", len=8, flags=flags_second, next=0)
    model.apply("publish", head=0)
    model.apply("pop")


def test_lenient_device_accepts_only_its_rule():
    dev = bugs.device_spec(bugs.get("readable-after-writable"))
    # Readable after writable: the reference rejects it (model is content) ...
    _chain_program(MaliciousDriverModel(4, F_VERSION_1), flags_second=0)
    # ... the faulty device accepts it, and the malicious-driver oracle says so.
    with pytest.raises(WrongVerdict, match="readable after writable"):
        _chain_program(MaliciousDriverModel(4, F_VERSION_1, device=dev), flags_second=0)
    # Its other rules hold: a loop is still refused.
    m = MaliciousDriverModel(4, F_VERSION_1, device=dev)
    m.apply("desc", i=0, addr="data", len=8, flags=1, next=0)
    m.apply("publish", head=0)
    with pytest.raises(DescriptorLoop):
        m.dev.pop()


def test_reference_device_rejects_readable_after_writable():
    mem = GuestMemory(1 << 16)
    cfg = setup_queue(mem, 4, F_VERSION_1)
    dev = build("reference", "device", mem, cfg, Platform())
    lay = SplitLayout(cfg.size, cfg.desc, cfg.avail, cfg.used)
    a = mem.alloc(16)
    for i, (flags, nxt) in enumerate(((3, 1), (0, 0))):
        d = lay.desc_at(i)
        mem.write64(d, a), mem.write32(d + 8, 8), mem.write16(d + 12, flags)
        mem.write16(d + 14, nxt)
    mem.write16(lay.avail_ring(0), 0)
    mem.write16(lay.avail_idx, 1)
    with pytest.raises(ReadableAfterWritable):
        dev.pop()


def test_used_len_fault_keeps_the_id_checks():
    drv = bugs.driver_spec(bugs.get("used-len-unchecked"))
    m = HardeningModel(4, F_VERSION_1, driver=drv)
    m.apply("add", out=[4], in_=[4])
    m.apply("write_used", slot=0, id=3, len=4)     # not a head in flight
    m.apply("set_used_idx", value=1)
    m.apply("get_buf")                              # refused: the queue is broken
    assert m.drv.broken


# --- detection with a fixed seed ---------------------------------------------------

def _first_finding(bug_name: str | None, runs: int, seed: int = 1, **over):
    from types import SimpleNamespace
    params = params_for(SimpleNamespace(bug=bug_name, **over)) if bug_name else dict(over)
    src = _LearningPCT(seed, 3)
    for k in range(runs):
        src.new_execution()
        rep = run_once(params, src, trace=False)
        if rep.finding is not None:
            return k + 1, rep.finding
    return None, None


@pytest.mark.parametrize("name, oracle, runs", [
    ("kick-prepare-wmb-not-mb", "lost-kick", 20),
    ("need-event-off-by-one-interrupt", "lost-interrupt", 10),
    ("napi-complete-without-enable", "lost-interrupt", 10),
    ("napi-schedule-before-disable-cb", "lost-interrupt", 40),
    ("abba-tx-rx-locks", "lockdep:ABBA", 5),
    ("irq-lock-without-irqsave", "lockdep:irq-unsafe", 5),
    ("tx-reap-without-lock", "vq-serialised", 40),
    ("enable-cb-after-napi-complete", "vq-serialised", 150),
])
def test_representative_bug_found_by_pct_with_a_fixed_seed(name, oracle, runs):
    n, finding = _first_finding(name, runs)
    assert finding is not None and finding.oracle == oracle, (n, finding)


def test_stale_descriptors_are_caught_by_the_chain_intact_oracle():
    # missing-rmb-pop (relaxed): the device walks a descriptor the driver has
    # not published yet; net.py's serve functions say so (seed 0, run 2).
    n, finding = _first_finding("missing-rmb-pop", 30, seed=0)
    assert finding is not None and finding.oracle == "chain-intact", (n, finding)


@pytest.mark.parametrize("scenario, features, model", [
    ("net", "", "tso"), ("net-napi2", "event_idx", "sc"), ("net-rx", "", "relaxed")])
def test_correct_ring_stays_clean_under_the_same_schedules(scenario, features, model):
    # The scenario faults (and net.py's oracles vq-serialised / chain-intact)
    # are guarded by the bug's name: without it the same seeds find nothing.
    n, finding = _first_finding(None, 40, scenario=scenario, features=features,
                                memory_model=model)
    assert finding is None, finding


def test_validation_bug_found_by_the_malicious_driver_machine():
    # The program the stateful engine's malicious-driver machine shrinks to.
    dev = bugs.device_spec(bugs.get("no-loop-detection"))
    m = MaliciousDriverModel(2, F_VERSION_1, device=dev)
    m.apply("desc", i=0, addr="data", len=8, flags=1, next=1)
    m.apply("desc", i=1, addr="data", len=8, flags=1, next=0)
    m.apply("publish", head=0)
    from fuzz.common import AccessBudgetExceeded
    with pytest.raises(AccessBudgetExceeded):
        m.apply("pop")


# --- the bench's applicability rules -------------------------------------------------

def test_bench_runs_an_engine_only_where_it_can_reach_the_bug():
    from harness.bench_bugs import applies
    assert applies(bugs.get("abba-tx-rx-locks"), "stateful")[0] is False
    assert applies(bugs.get("abba-tx-rx-locks"), "pct")[0] is True
    assert applies(bugs.get("no-loop-detection"), "pct")[0] is False
    assert applies(bugs.get("no-loop-detection"), "stateful")[0] is True
    # Scheduled bugs reach the schedule target; a stateful-only one reaches none.
    from harness.bench_bugs import _fuzz_target
    assert _fuzz_target(bugs.get("kick-prepare-wmb-not-mb")) == "schedule"
    assert _fuzz_target(bugs.get("no-loop-detection")) == "desc_chain"
    assert _fuzz_target(bugs.get("used-id-unchecked")) == "used_ring"
    assert applies(bugs.get("avail-flags-with-event-idx"), "fuzz") == (
        False, "no fuzz target reaches this class")
    for bug in bugs.BUGS:   # every bug has at least one engine that can reach it
        assert any(applies(bug, e)[0] for e in ("stateful", "random", "pct", "explore"))


def _slow_square(x: int) -> int:
    import time
    time.sleep(0.02 * x)        # later cells finish first
    return x * x


def test_bench_cells_keep_their_order_whatever_finishes_first():
    from harness.bench_bugs import _map
    cells = [3, 1, 2, 0]
    seen = []
    assert _map(_slow_square, cells, 2, lambda c, r: seen.append(c)) == [9, 1, 4, 0]
    assert sorted(seen) == sorted(cells)
    assert _map(_slow_square, cells, 1) == [9, 1, 4, 0]


def test_a_rerun_of_one_engine_replaces_only_that_engine():
    from harness.bench_bugs import merge
    run = {"found": True, "seconds": 1.0, "runs": 3, "oracle": "lost-kick", "message": "m"}
    miss = {"found": False, "seconds": 60.0, "runs": 9, "oracle": None, "message": None}
    data = {"command": "full", "total_s": 10.0,
            "bugs": {"b": {"runs": {"pct": [run], "threads": [run]}, "summary": {},
                           "skipped": {}}},
            "false_positives": [{"engine": "pct", "found": False},
                                {"engine": "threads", "found": True}]}
    part = {"command": "threads again", "total_s": 5.0,
            "bugs": {"b": {"runs": {"threads": [miss]}}},
            "false_positives": [{"engine": "threads", "found": False}]}
    out = merge(data, part)
    row = out["bugs"]["b"]
    assert row["runs"] == {"pct": [run], "threads": [miss]}
    assert row["summary"]["threads"]["detected"] == 0 and row["best"] == "pct"
    assert [r["found"] for r in out["false_positives"] if r["engine"] == "threads"] == [False]
    assert out["command"] == "full; then threads again" and out["total_s"] == 15.0


def test_a_longer_false_positive_rerun_must_redo_every_engine():
    from harness.bench_bugs import merge
    data = {"command": "full", "total_s": 1.0, "bugs": {},
            "fp_seconds_per_engine_and_model": 300.0,
            "false_positives": [{"engine": "pct", "found": False},
                                {"engine": "fuzz", "found": False}]}
    part = {"command": "pct longer", "total_s": 1.0, "bugs": {},
            "fp_seconds_per_engine_and_model": 600.0,
            "false_positives": [{"engine": "pct", "found": False}]}
    with pytest.raises(ValueError, match="fuzz"):
        merge(dict(data), part)
    part["false_positives"].append({"engine": "fuzz", "found": False})
    assert merge(data, part)["fp_seconds_per_engine_and_model"] == 600.0


def test_fp_only_runs_no_bug_cells():
    from harness.bench_bugs import bench_bugs
    data, _ = bench_bugs(fp_seconds=0.5, engines=["random"], fp_only=True, write=False)
    assert data["bugs"] == {}
    assert {(r["engine"], r["model"]) for r in data["false_positives"]} == {
        ("random", m) for m in ("sc", "tso", "relaxed")}
    assert "--fp-only" in data["command"]


def test_a_reader_that_leaves_early_gets_no_traceback():
    import subprocess
    import sys
    # `vringfuzz bugs | head -1`: the pipe closes after one line.
    p = subprocess.Popen([sys.executable, "-c", "from harness.cli import main; "
                          "import sys; sys.exit(main(['bugs']))"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdout.readline()
    p.stdout.close()
    err = p.stderr.read().decode()
    p.wait()
    assert "Traceback" not in err and "BrokenPipe" not in err


def test_a_rerun_that_now_reaches_a_bug_clears_its_skip_reason():
    from harness.bench_bugs import merge
    run = {"found": True, "seconds": 1.0, "runs": 3, "oracle": "lost-kick", "message": "m"}
    data = {"command": "full", "total_s": 1.0, "false_positives": [],
            "bugs": {"b": {"runs": {"pct": [run]}, "summary": {},
                           "skipped": {"fuzz": "no fuzz target reaches this class"}}}}
    part = {"command": "fuzz", "total_s": 1.0, "false_positives": [],
            "bugs": {"b": {"runs": {"fuzz": [run]}, "skipped": {}}}}
    row = merge(data, part)["bugs"]["b"]
    assert row["skipped"] == {} and row["summary"]["fuzz"]["detected"] == 1


def test_merging_into_a_missing_document_is_a_usage_error(tmp_path, monkeypatch, capsys):
    from harness.cli import main
    monkeypatch.chdir(tmp_path)         # no docs/detection.json here
    import harness.bench_bugs as bb
    monkeypatch.setattr(bb, "bench_bugs", lambda **kw: ({"false_positives": [], "bugs": {},
                                                          "command": "x", "total_s": 0}, ""))
    assert main(["bench", "bugs", "--engine", "pct", "--merge", "why"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("vringfuzz: error: bench bugs --merge: cannot read") and "\n" not in err


def test_the_schedule_target_runs_the_false_positive_check_once_per_memory_model():
    from harness.bench_bugs import _fp_cells
    sched = [c for c in _fp_cells(600.0) if c[1] == "fuzz" and c[3]["target"] == "schedule"]
    assert sorted(c[3]["memory_model"] for c in sched) == ["relaxed", "sc", "tso"]
    assert all(c[2] == 600.0 and c[0]["model"] == c[3]["memory_model"] for c in sched)
