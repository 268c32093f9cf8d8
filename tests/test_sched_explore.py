"""Explore's reductions are sound: DPOR and sleep sets reach exactly the outcomes
of the plain preemption-bounded search, on litmus tests and tiny programs under
every memory model, and explore still finds a planted ring bug with bound 2.

An outcome is what a run can tell apart: every value each task loaded, the
final memory (after the end-of-run drain) and the error, if any.
"""
import random

import pytest

from harness.sched import explore
from harness.sched.runtime import Abandoned

from programs import (HALVES, LOCKED, MP, MP_FENCED, SB, SB_MB, WAITS, X, Y, Z, loads,
                      random_program, random_programs, same_as_plain, world_outcomes)
from programs import outcomes as _outcomes


@pytest.mark.parametrize("model", ["sc", "tso", "relaxed"])
@pytest.mark.parametrize("name,prog", [("sb", SB), ("sb+mb", SB_MB), ("mp", MP),
                                       ("mp+wmb+rmb", MP_FENCED), ("locked", LOCKED),
                                       ("waits", WAITS)])
def test_reduced_search_reaches_every_outcome_of_the_plain_bounded_search(model, name, prog):
    same_as_plain(model, prog, por="dpor")


def test_dpor_keeps_the_store_buffering_outcome_only_without_the_full_barrier():
    sb, _ = _outcomes("tso", SB, None, "dpor")
    sb_mb, _ = _outcomes("tso", SB_MB, None, "dpor")
    assert ((0, (0,)), (1, (0,))) in loads(sb)
    assert ((0, (0,)), (1, (0,))) not in loads(sb_mb)


@pytest.mark.parametrize("model", ["sc", "tso", "relaxed"])
def test_dpor_matches_the_plain_search_on_random_tiny_programs(model):
    # Seeded: the same programs on every run (a failure names its program).
    # Relaxed stays at 2 x 2: drains there spawn stale-value choices that the
    # bound does not limit (no task is running), and the plain search explodes.
    rng = random.Random(20261125)
    sizes = (2,) if model == "relaxed" else (2, 3)
    for _ in range(12):
        prog = random_program(rng, rng.choice(sizes), rng.choice(sizes))
        same_as_plain(model, prog, bounds=(0, 1, 2), por="dpor")


def test_an_action_costs_a_preemption_where_a_task_could_run_instead():
    # SB under tso: t0 ends with X buffered and t1 could run.  Draining X first
    # is a deviation from the default schedule (lazy actions), so bound 0 has
    # only the all-buffered outcome; free actions (the old rule) reach more.
    lazy0, _ = _outcomes("tso", SB, 0, False)
    eager0, _ = _outcomes("tso", SB, 0, False, lazy_actions=False)
    lazy1, _ = _outcomes("tso", SB, 1, False)
    assert loads(lazy0) == [((0, (0,)), (1, (0,)))]
    assert len(eager0) == 3 and eager0 <= lazy1
    # Unbounded, the rule changes nothing.
    assert _outcomes("tso", SB, None, False)[0] == _outcomes("tso", SB, None, False,
                                                              lazy_actions=False)[0]


@pytest.mark.parametrize("name,prog", [("sb", SB), ("mp", MP), ("mp+wmb+rmb", MP_FENCED),
                                       ("waits", WAITS), ("locked", LOCKED)]
                         + [(f"random{i}", p) for i, p in
                            enumerate(random_programs(20261202, 8))])
def test_deferring_stale_drops_reaches_every_outcome_of_the_search_without_it(name, prog):
    # A stale drop waits for its owner's next read of the address; "waits"
    # needs the exception: where only actions are enabled a drop is free.
    for bound in (0, 1, 2) if len(prog) < 3 else (0, 1):
        full, frep = _outcomes("relaxed", prog, bound, False, defer_stale=False)
        for por in (False, "dpor"):
            got, rep = _outcomes("relaxed", prog, bound, por)
            assert got == full, (name, bound, por)
            assert rep.complete <= frep.complete


def test_a_stale_drop_that_another_waits_behind_is_not_deferred():
    # HALVES: the reader sees X's high half fresh only once both its entries
    # dropped, and the older one covers the low half alone.  Deferring that one
    # to a read of the low half loses the outcome (it takes 4 preemptions).
    full, _ = _outcomes("relaxed", HALVES, None, False, defer_stale=False)
    assert (2, 0x20003) in {vals for o in full for t, (vals, _) in o[0] if t == 1}
    for por in (False, "dpor"):
        assert _outcomes("relaxed", HALVES, None, por)[0] == full, por


def test_dpor_runs_one_execution_when_tasks_share_nothing():
    prog = [[("w", X, 1), ("r", X)], [("w", Y, 1), ("r", Y)], [("w", Z, 1), ("r", Z)]]
    _, plain = _outcomes("sc", prog, None, False)
    _, dpor = _outcomes("sc", prog, None, "dpor")
    assert plain.complete == 90 and dpor.complete == 1


def test_dpor_prunes_under_a_preemption_bound_too():
    prog = [[("w", X, 1), ("w", Y, 1), ("r", Z)], [("r", Y), ("w", Z, 1), ("r", X)]]
    _, plain = _outcomes("sc", prog, 2, False)
    _, dpor = _outcomes("sc", prog, 2, "dpor")
    assert dpor.complete < plain.complete


class _Verdict:
    """explore() stops on .error: a run's finding (Abandoned passes through)."""

    def __init__(self, report):
        self.report = report
        self.error = report.error if isinstance(report.error, Abandoned) else report.finding


@pytest.mark.parametrize("scenario,extra", [
    ("net-rx", {"size": 4, "rx_packets": 1, "budget": 2}),
    ("net-tx", {"size": 4, "tx_buffers": 2, "submitters": 1}),
])
def test_dpor_with_bound_2_still_finds_the_lost_kick_of_kick_prepare_wmb_not_mb(scenario, extra):
    # Linux a72caae21803: the store-buffering lost kick, reachable only under tso.
    from harness.bugs import driver_spec, get
    from harness.world import run_once
    bug = get("kick-prepare-wmb-not-mb")
    params = {"scenario": scenario, "memory_model": "tso", "bug": bug.name,
              "driver": driver_spec(bug, "reference"), "device": "reference", **extra}
    rep = explore(lambda src: _Verdict(run_once(params, src, trace=False)),
                  preemption_bound=2, por="dpor")
    assert rep.found and rep.failure.error.oracle == "lost-kick"


def test_dpor_reaches_every_outcome_of_the_plain_search_on_a_scenario(monkeypatch):
    """The guard for any change to footprints (docs/design/explore-python-state.md):
    scenario tasks share Python state, and the run ends while daemons can move."""
    params = {"scenario": "net-rx", "size": 4, "rx_packets": 2, "budget": 1,
              "memory_model": "sc"}
    plain = world_outcomes(monkeypatch, params, 1, False)
    dpor = world_outcomes(monkeypatch, params, 1, True)
    assert len(plain) > 1
    assert plain <= dpor, f"DPOR lost {len(plain - dpor)} outcome(s)"


# --- sharing one search among workers (split=, explore_parallel) -------------------

@pytest.mark.parametrize("model", ["sc", "tso", "relaxed"])
@pytest.mark.parametrize("name,prog", [("sb", SB), ("mp", MP), ("locked", LOCKED),
                                       ("waits", WAITS)])
def test_split_workers_together_reach_every_outcome_and_run_each_interleaving_once(
        model, name, prog):
    for bound in (1, 2):
        for por in (False, "dpor"):
            whole, wrep = _outcomes(model, prog, bound, por)
            union, total = set(), 0
            for worker in range(3):
                got, rep = _outcomes(model, prog, bound, por, split=(worker, 3, 2))
                union |= got
                total += rep.complete
            assert union == whole, (bound, por)
            if not por:
                # The plain search is partitioned exactly: each run in one worker.
                assert total == wrep.complete, (bound, por)


def test_parallel_explore_exhausts_the_same_space_as_one_search():
    from harness.engines.explore import Outcome
    from harness.sched.explore_parallel import explore_parallel
    from harness.world import run_once
    params = {"scenario": "net-rx", "size": 2, "rx_packets": 1, "budget": 1,
              "memory_model": "tso"}

    def make_run(src):
        return Outcome(run_once(params, src, trace=False))
    one = explore(make_run, preemption_bound=1, por=False)
    seen = []
    two, failing = explore_parallel(make_run, jobs=2, preemption_bound=1, por=False,
                                    progress=seen.append)
    assert one.exhausted and two.exhausted and failing is None
    assert two.complete == one.complete > 10
    assert seen and seen[-1] <= two.executions


def test_parallel_explore_finds_a_planted_bug_and_its_repro_replays(tmp_path):
    import argparse

    from harness import repro
    from harness.check import run_check
    from harness.replay import replay_doc
    opts = argparse.Namespace(engine="explore", bug="device-interrupt-wmb-not-mb", jobs=2,
                              time=60, out=str(tmp_path), driver="reference",
                              device="reference", scenario=None, memory_model=None,
                              features=None, size=None, preemption_bound=2, seed=None,
                              json=True, progress=None)
    res = run_check(opts)
    assert res.found and res.oracle == "lost-interrupt" and res.extra["jobs"] == 2
    got = replay_doc(repro.load(res.repro)).finding
    assert got is not None and got.oracle == "lost-interrupt"


def test_jobs_is_a_usage_error_for_engines_that_run_on_one_process(capsys):
    from harness.cli import main
    assert main(["check", "--engine", "pct", "--jobs", "2", "--time", "1"]) == 2
    assert "--jobs" in capsys.readouterr().err


# Found by a random search: with DPOR pruning above the split node, a race
# between an event above it and one in worker 1's subtree added a choice that
# only worker 1 explored, and worker 0's share under it was lost.
ACROSS_SPLIT = [[("w", X, 2), ("r", X), ("r", X), ("w", Y, 1)],
                [("w", X, 3), ("r", X), ("r", Y), ("w", X, 2)],
                [("r", X), ("r", Y), ("r", X), ("r", X)]]


def test_dpor_does_not_prune_above_the_split_node():
    whole, _ = _outcomes("sc", ACROSS_SPLIT, 1, "dpor")
    union = set()
    for worker in range(2):
        union |= _outcomes("sc", ACROSS_SPLIT, 1, "dpor", split=(worker, 2, 2))[0]
    assert union == whole


# Found by a random search: unbounded, DPOR with sleep sets reached 17 of the
# plain search's 18 outcomes (so DPOR now runs without sleep sets).
UNBOUNDED_LOSS = [[("w", X, 2), ("r", Y)], [("r", X), ("r", Y)], [("w", Y, 1), ("w", Y, 3)]]


def test_unbounded_dpor_reaches_every_outcome_of_the_plain_search():
    assert _outcomes("sc", UNBOUNDED_LOSS, None, "dpor")[0] == \
        _outcomes("sc", UNBOUNDED_LOSS, None, False)[0]


def test_explore_searches_bound_0_then_1_then_2_and_finds_a_one_preemption_bug_early(tmp_path):
    # missing-rmb-pop needs one deviation (the device's stale avail idx dropped
    # while its stale descriptor stays): the bound-1 pass finds it in about a
    # hundred runs, where a bound-2 DFS spent over a minute deep in one subtree.
    import argparse

    from harness.check import run_check
    opts = argparse.Namespace(engine="explore", bug="missing-rmb-pop", time=60,
                              out=str(tmp_path), driver="reference", device="reference",
                              scenario=None, memory_model=None, features=None, size=None,
                              preemption_bound=2, seed=None, json=True, progress=None)
    res = run_check(opts)
    assert res.found and res.extra["bound_reached"] == 1
    assert res.runs < 1000


def test_a_pass_below_the_bound_that_does_not_end_leaves_time_for_the_last_one(tmp_path):
    # On the whole net scenario the bound-0 pass does not end within a minute
    # (every free choice among five tasks), and device-interrupt-wmb-not-mb
    # needs a preemption: without the cap the search never got past bound 0.
    import argparse

    from harness.check import run_check
    opts = argparse.Namespace(engine="explore", bug="device-interrupt-wmb-not-mb", time=8,
                              out=str(tmp_path), driver="reference", device="reference",
                              scenario="net", memory_model=None, features=None, size=None,
                              preemption_bound=2, seed=None, json=True, progress=None)
    res = run_check(opts)
    assert res.found and res.extra["bound_reached"] >= 1
