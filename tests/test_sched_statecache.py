"""Explore's state cache is sound: a search that stops wherever it meets a state it
already explored (with at least as many preemptions left) reaches exactly the
outcomes of the plain preemption-bounded search (harness/sched/statehash.py).

Each test below names the part of the state it guards: remove that part from the
digest and the test loses an outcome.
"""
import pytest

from harness.sched import explore
from harness.sched.statehash import state_digest

from programs import (LOCKED, MP, MP_FENCED, SB, SB_MB, WAITS, X, Y, Z, outcomes,
                      random_programs, same_as_plain, world_outcomes)


@pytest.mark.parametrize("model", ["sc", "tso", "relaxed"])
@pytest.mark.parametrize("name,prog", [("sb", SB), ("sb+mb", SB_MB), ("mp", MP),
                                       ("mp+wmb+rmb", MP_FENCED), ("locked", LOCKED),
                                       ("waits", WAITS)])
def test_the_cached_search_reaches_every_outcome_of_the_plain_search(model, name, prog):
    same_as_plain(model, prog, state_cache=True)


@pytest.mark.parametrize("model", ["sc", "tso", "relaxed"])
def test_the_cached_search_matches_the_plain_search_on_random_tiny_programs(model):
    # Seeded: the same programs every time (a failure names its program).
    progs = random_programs(20261206, 40, tasks=(2, 3) if model != "relaxed" else (2,),
                            kinds="rrwwmqsg")
    for prog in progs:
        same_as_plain(model, prog, bounds=(0, 1, 2) if len(prog) < 3 else (0, 1),
                      state_cache=True)


def test_a_load_held_on_the_stack_across_a_point_is_part_of_the_state():
    # t2 computes Y*16 + X in one expression: while it waits to load X, Y's
    # value lives only on the interpreter's stack, so two runs can stand at
    # the same place with the same memory and locals and different futures.
    # Only t2's chain of loaded values tells them apart (found by a random
    # search with the chain left out of the digest, then shrunk).
    prog = [[("w", Y, 1), ("w", X, 2)], [("w", Y, 2)], [("rr", Y, X)]]
    got, _ = outcomes("sc", prog, 1, False, state_cache=True)
    plain, _ = outcomes("sc", prog, 1, False)
    assert got == plain and len(plain) > 4


def test_a_loop_that_took_one_more_point_is_a_different_state():
    # Found by a random search: t1 stands before its second rmb as it stood
    # before its first (same locals: op is ("rmb",) both times; same place; no
    # new load).  Only the `for` loop's iterator, on the interpreter's stack,
    # differs, and only t1's chain of operations shows it.
    prog = [[("rr", Z, Y), ("w", Z, 1)], [("rr", Z, X), ("rmb",), ("rmb",)],
            [("w", Y, 2), ("w", Y, 1)]]
    got, _ = outcomes("sc", prog, 1, False, state_cache=True)
    plain, _ = outcomes("sc", prog, 1, False)
    assert got == plain and len(plain) == 6


def test_the_cache_cuts_the_search_where_orders_commute():
    # Three tasks on three addresses: the 560 orders of their 8 steps pass
    # through far fewer states (which task runs next is part of a state).
    prog = [[("w", X, 1), ("r", X), ("w", X, 2)], [("w", Y, 1), ("r", Y), ("w", Y, 2)],
            [("w", Z, 1), ("r", Z)]]
    _, plain = outcomes("sc", prog, None, False)
    _, cached = outcomes("sc", prog, None, False, state_cache=True)
    assert plain.complete == 560
    assert cached.cached > 0 and cached.executions < plain.executions / 4


def test_stale_values_that_overlap_nothing_are_a_set_not_an_arrival_order(monkeypatch):
    # t1 and t2 store to X and Y in either order; t3's view then holds the
    # same two stale values, arrived in either order.  With both writers
    # done, those two states are equal: the digest must say so.
    from harness.sched import statehash
    prog = [[("w", X, 1)], [("w", Y, 1)], [("r", X), ("r", Y)]]
    got, as_set = outcomes("relaxed", prog, 2, False, state_cache=True)
    monkeypatch.setattr(statehash, "_canonical",
                        lambda stale: [statehash._stale_key(e) for e in stale])
    again, in_order = outcomes("relaxed", prog, 2, False, state_cache=True)
    plain, _ = outcomes("relaxed", prog, 2, False)
    assert got == again == plain
    assert as_set.states < in_order.states


@pytest.mark.parametrize("model", ["sc", "tso", "relaxed"])
def test_the_cached_search_reaches_every_outcome_of_the_plain_search_on_a_scenario(
        monkeypatch, model):
    # Scenario tasks share Python state (World.state, ledgers, the ring sides'
    # fields, the platform's irq and lock state): all of it is in the digest.
    params = {"scenario": "net-rx", "size": 4, "rx_packets": 2, "budget": 1,
              "memory_model": model}
    plain = world_outcomes(monkeypatch, params, 1, False)
    cached = world_outcomes(monkeypatch, params, 1, False, state_cache=True)
    assert len(plain) > 1 and cached == plain


@pytest.mark.parametrize("bug,model", [("kick-prepare-wmb-not-mb", "tso"),
                                       ("missing-rmb-pop", "relaxed")])
def test_the_cached_search_reaches_every_finding_of_the_plain_search(monkeypatch, bug, model):
    from harness import bugs
    b = bugs.get(bug)
    params = {"scenario": "net-rx", "size": 4, "rx_packets": 2, "budget": 1,
              "memory_model": model, "driver": bugs.driver_spec(b, "reference"),
              "device": bugs.device_spec(b, "reference")}
    plain = world_outcomes(monkeypatch, params, 1, False)
    cached = world_outcomes(monkeypatch, params, 1, False, state_cache=True)
    assert any(o[0] for o in plain)        # the bug's finding is among them
    assert cached == plain


def test_blk_and_draft3_outcomes_survive_the_cache(monkeypatch):
    # blk ends while its irq handler may be half way through a completion (the
    # case that broke DPOR, docs/design/explore-python-state.md); draft3 keeps
    # its delivery lists in plain Python objects.
    for params, bound in (({"scenario": "blk", "submitters": 1, "requests": 1,
                            "memory_model": "tso"}, 1),
                          ({"scenario": "draft3", "buffers": 2}, 0)):
        plain = world_outcomes(monkeypatch, params, bound, False)
        assert world_outcomes(monkeypatch, params, bound, False, state_cache=True) == plain


def test_state_cache_needs_the_plain_search():
    with pytest.raises(ValueError, match="state_cache"):
        explore(lambda src: None, por="dpor", state_cache=True)


def test_equal_states_of_two_runs_have_equal_digests_and_different_ones_do_not():
    # The digest ignores history (choices, steps, action numbers) and object
    # identities: two fresh runs stopped at their first decision agree.
    from harness.engines.scheduled import SMALL
    from harness.sched.runtime import ABANDON
    from harness.world import run_once

    class Stop:
        wants_values = True

        def __init__(self, skip):
            self.skip, self.digests = skip, []

        def new_execution(self):
            return True

        def choose(self, options, current):
            self.digests.append(state_digest(self.sched))
            if len(self.digests) > self.skip:
                return ABANDON
            return current if current in options else options[0]

        def choose_int(self, n):
            return 0

        def bind(self, sched):
            self.sched = sched
    params = dict(SMALL, memory_model="tso")
    a, b, c = Stop(0), Stop(0), Stop(3)
    for src in (a, b, c):
        run_once(params, src, trace=False)
    assert a.digests[0] == b.digests[0] == c.digests[0]
    assert len(set(c.digests)) == len(c.digests) == 4


# --- the engine: `check --engine explore --reduction states|dpor|none` -----------------

def _check(**kw):
    import argparse

    from harness.check import run_check
    opts = dict(engine="explore", bug=None, time=60, out=None, driver="reference",
                device="reference", scenario=None, memory_model=None, features=None,
                size=None, preemption_bound=1, seed=None, json=True, progress=None,
                reduction=None)
    opts.update(kw)
    return run_check(argparse.Namespace(**opts))


def test_explore_caches_states_by_default_and_says_how_many_it_passed(tmp_path):
    res = _check(out=str(tmp_path))
    assert not res.found and res.extra["exhausted"]
    assert res.extra["reduction"] == "states" and res.extra["states"] > 1000
    assert res.extra["cached"] > 0 and "distinct states" in res.message


def test_every_reduction_exhausts_the_same_bound_without_a_finding(tmp_path):
    for reduction in ("states", "dpor", "none"):
        res = _check(reduction=reduction, preemption_bound=0, out=str(tmp_path))
        assert not res.found and res.extra["exhausted"], reduction
        assert res.extra["reduction"] == reduction


def native_make(mem, cfg, platform):   # never called: needs_native reads the flag
    raise AssertionError


native_make.native_memory = True


def test_a_native_side_is_searched_with_dpor_the_digest_cannot_see_its_memory():
    from harness.engines.explore import search_options
    native = {"driver": f"{__name__}:native_make", "device": "reference"}
    assert search_options("states", native) == {"por": True, "state_cache": False}
    plain = {"driver": "reference", "device": "reference"}
    assert search_options("states", plain) == {"por": False, "state_cache": True}


def test_reduction_is_a_usage_error_for_the_other_engines(capsys):
    from harness.cli import main
    assert main(["check", "--engine", "pct", "--reduction", "none", "--time", "1"]) == 2
    assert "--reduction" in capsys.readouterr().err
