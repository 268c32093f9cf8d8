"""points="effective": fewer choices, the same reachable outcomes (memmodel.py rules).

With points="effective" a fence that does nothing in its model is no
scheduling point, and a relaxed stale entry is decided by the load that reads
it instead of being a choice of its own.  The equivalence tests explore every
schedule (no preemption bound) of a program both ways and compare every
outcome: each task's loaded values, the final memory and the error.
"""
import pytest

from harness.memmodel import POINTS, UnknownModel, make_memory
from harness.sched import Scheduler
from harness.sched.source import ACTION_BASE

from programs import (HALVES, MP, MP_FENCED, SB, SB_MB, WAITS, X, Y, outcomes,
                      random_programs)

MODELS = ("sc", "tso", "relaxed")
NAMED = {"SB": SB, "SB_MB": SB_MB, "MP": MP, "MP_FENCED": MP_FENCED, "WAITS": WAITS,
         "HALVES": HALVES}


def _same_outcomes(model, prog):
    every, _ = outcomes(model, prog, None, False, points="all")
    effective, _ = outcomes(model, prog, None, False, points="effective")
    assert effective == every, (model, prog)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("name", sorted(NAMED))
def test_effective_points_reach_exactly_the_outcomes_of_all_points(model, name):
    _same_outcomes(model, NAMED[name])


@pytest.mark.parametrize("model", MODELS)
def test_effective_points_reach_the_same_outcomes_on_random_programs(model):
    # Two tasks of 2-3 ops over two addresses with barriers among them: stale
    # entries of both addresses, fences with and without stores buffered.
    for prog in random_programs(20261207, 30, tasks=(2,), lengths=(2, 3)):
        _same_outcomes(model, prog)


class Scripted:
    """No preemption (the running task goes on, else the lowest option);
    every data choice answers `answer`.  Keeps what it was asked."""

    def __init__(self, answer=0):
        self.answer = answer
        self.options = []           # the options of every choose()
        self.ints = []              # the n of every choose_int()

    def new_execution(self):
        return True

    def choose(self, options, current):
        self.options.append(tuple(options))
        return current if current in options else options[0]

    def choose_int(self, n):
        self.ints.append(n)
        return self.answer


def _kinds(model, points, body, source=None):
    """The trace kinds of a one-task run of body(m)."""
    s = Scheduler(source or Scripted())
    m = make_memory(model, s, size=4096, points=points)
    s.spawn("t", body, m)
    out = s.run()
    assert out.error is None
    return [e[2] for e in out.events]


def _store_then_fences(m):
    m.write32(X, 1)
    m.wmb()
    m.rmb()
    m.mb()                  # drains the store
    m.mb()                  # nothing buffered any more


def test_no_fence_is_a_point_under_sc_with_effective_points():
    assert _kinds("sc", "all", _store_then_fences) == ["w32", "wmb", "rmb", "mb", "mb"]
    assert _kinds("sc", "effective", _store_then_fences) == ["w32"]


def test_under_tso_only_an_mb_with_stores_to_drain_is_a_point_with_effective_points():
    assert _kinds("tso", "all", _store_then_fences) == ["w32", "wmb", "rmb", "mb", "drain",
                                                       "mb"]
    assert _kinds("tso", "effective", _store_then_fences) == ["w32", "mb", "drain"]


def test_every_fence_stays_a_point_under_relaxed_with_effective_points():
    assert _kinds("relaxed", "effective", _store_then_fences) == \
        _kinds("relaxed", "all", _store_then_fences)


def _stale_read(points, answer):
    """The writer stores X = 7 and drains it (mb), so the reader holds a stale
    entry of X; then the reader loads X twice.  What it loaded, the source."""
    src = Scripted(answer)
    s = Scheduler(src)
    m = make_memory("relaxed", s, size=4096, points=points)
    got = []

    def writer():
        m.write32(X, 7)
        m.mb()

    def reader():
        got.append(m.read32(X))
        got.append(m.read32(X))
    s.spawn("writer", writer)           # task 0: runs to its end first (Scripted)
    s.spawn("reader", reader)
    out = s.run()
    assert out.error is None
    return got, src, out


def test_a_load_decides_its_stale_entry_keep_or_drop():
    kept, src, _ = _stale_read("effective", answer=1)
    assert kept == [0, 0] and src.ints == [2, 2]        # asked again at each load
    dropped, src, out = _stale_read("effective", answer=0)
    assert dropped == [7, 7] and src.ints == [2]        # once dropped, nothing to ask
    assert ("stale", X) in [(e[2], e[3]) for e in out.events if e[1] == 1]


def test_a_stale_entry_is_no_choice_of_its_own_with_effective_points():
    # Under "all" the drop is offered beside the reader (a memory-model action)
    # and this source never takes it; with "effective" it is never offered.
    got, every, _ = _stale_read("all", answer=0)
    assert got == [0, 0] and not every.ints
    assert any(max(o) >= ACTION_BASE and min(o) == 1 for o in every.options)
    _, effective, _ = _stale_read("effective", answer=0)
    assert effective.ints == [2]
    assert not any(max(o) >= ACTION_BASE and min(o) == 1 for o in effective.options)


def test_an_unknown_points_value_is_refused():
    assert POINTS == ("all", "effective")
    with pytest.raises(UnknownModel, match="points 'some'"):
        make_memory("sc", Scheduler(Scripted()), size=4096, points="some")
