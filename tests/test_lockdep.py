"""The lockdep rules (harness/lockdep.py), checked on the pure validator.

Each test is named for the rule it checks; sites are made-up (file, line, func)
tuples so that the messages can be compared exactly.
"""
from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from harness.lockdep import (IrqLockInversion, IrqUnsafeLock, Lockdep, LockOrderInversion, SelfDeadlock,
                             UnlockNotHeld, call_site, format_site)


def site(line, func="f"):
    return ("/elsewhere/scenario.py", line, func)


def take(ld, tid, lock, line, *, irq=False, off=False, name=None):
    ld.acquire(tid, name or f"t{tid}", lock, site(line), irq_context=irq, irqs_disabled=off)


def test_taking_a_held_lock_again_is_reported_as_AA():
    ld = Lockdep()
    take(ld, 1, "tx", 10, name="xmit")
    with pytest.raises(SelfDeadlock) as e:
        take(ld, 1, "tx", 12, name="xmit")
    assert e.value.kind == "AA"
    assert e.value.sites == (site(10), site(12))
    assert str(e.value) == ("AA: xmit takes 'tx' at scenario.py:12 (f) while already "
                            "holding it since scenario.py:10 (f)")
    assert ld.held(1) == ["tx"]         # the refused acquisition is not recorded


def test_the_same_lock_in_two_tasks_is_not_AA():
    ld = Lockdep()
    take(ld, 1, "tx", 10)
    take(ld, 2, "tx", 20)               # contention, not recursion
    assert ld.reports == []


def test_inverse_orders_at_different_times_are_reported_as_ABBA():
    """No deadlock happened in this run: the graph still proves one possible."""
    ld = Lockdep()
    ld.acquire(1, "irq", "vq", site(39, "cb"), irq_context=False, irqs_disabled=True)
    ld.acquire(1, "irq", "tx", site(40, "cb"), irq_context=False, irqs_disabled=True)
    ld.release(1, "tx", site(41, "cb"))
    ld.release(1, "vq", site(42, "cb"))
    ld.acquire(2, "xmit", "tx", site(21, "start_xmit"), irq_context=False,
               irqs_disabled=True)
    with pytest.raises(LockOrderInversion) as e:
        ld.acquire(2, "xmit", "vq", site(22, "start_xmit"), irq_context=False,
                   irqs_disabled=True)
    v = e.value
    assert v.kind == "ABBA"
    assert v.tasks == ("xmit", "irq")
    assert set(v.sites) == {site(39, "cb"), site(40, "cb"), site(21, "start_xmit"),
                            site(22, "start_xmit")}
    assert str(v) == (
        "ABBA: 'tx' -> 'vq' taken by xmit at scenario.py:22 (start_xmit) holding 'tx' "
        "from scenario.py:21 (start_xmit), 'vq' -> 'tx' taken by irq at "
        "scenario.py:40 (cb) holding 'vq' from scenario.py:39 (cb)")


def test_a_three_lock_cycle_is_reported_with_every_edge():
    ld = Lockdep(raise_on_report=False)
    for tid, (a, b) in enumerate([("A", "B"), ("B", "C"), ("C", "A")]):
        take(ld, tid, a, 10 * tid)
        take(ld, tid, b, 10 * tid + 1)
    [v] = ld.reports
    assert isinstance(v, LockOrderInversion)
    assert str(v).startswith("lock order cycle of 3: 'C' -> 'A'")
    assert set(v.locks) == {"A", "B", "C"}


def test_a_cycle_is_reported_once():
    ld = Lockdep(raise_on_report=False)
    for _ in range(3):
        for tid, order in ((1, "AB"), (2, "BA")):
            take(ld, tid, order[0], 1)
            take(ld, tid, order[1], 2)
            ld.release(tid, order[1], site(3))
            ld.release(tid, order[0], site(4))
    assert [type(r) for r in ld.reports] == [LockOrderInversion]


def test_a_consistent_nested_order_is_not_reported():
    ld = Lockdep()
    for tid in (1, 2):
        take(ld, tid, "A", 1)
        take(ld, tid, "B", 2)
    ld.release(1, "B", site(3))
    ld.release(1, "A", site(4))
    take(ld, 1, "A", 5)
    assert ld.reports == []
    assert ld.held(2) == ["A", "B"]
    assert list(ld.graph) == ["A"] and list(ld.graph["A"]) == ["B"]


def test_a_lock_taken_in_irq_and_held_with_irqs_on_is_reported():
    ld = Lockdep()
    ld.acquire(9, "irq", "vq", site(40, "cb"), irq_context=True, irqs_disabled=True)
    ld.release(9, "vq", site(41, "cb"))
    with pytest.raises(IrqUnsafeLock) as e:
        ld.acquire(1, "xmit", "vq", site(22, "start_xmit"), irq_context=False,
                   irqs_disabled=False)
    assert e.value.tasks == ("irq", "xmit")
    assert e.value.sites == (site(40, "cb"), site(22, "start_xmit"))
    assert "'vq' taken in interrupt context by irq at scenario.py:40 (cb)" in str(e.value)
    assert "by xmit at scenario.py:22 (start_xmit)" in str(e.value)


def test_irq_unsafe_is_reported_whichever_usage_comes_first():
    ld = Lockdep(raise_on_report=False)
    take(ld, 1, "vq", 22, off=False)
    ld.release(1, "vq", site(23))
    take(ld, 9, "vq", 40, irq=True, off=True)
    assert [type(r) for r in ld.reports] == [IrqUnsafeLock]


def test_a_lock_taken_in_irq_and_with_irqsave_elsewhere_is_not_reported():
    ld = Lockdep()
    take(ld, 9, "vq", 40, irq=True, off=True)
    ld.release(9, "vq", site(41))
    take(ld, 1, "vq", 22, off=True)
    take(ld, 1, "stats", 23, off=True)
    assert ld.reports == []


def test_reenabling_irqs_while_holding_an_irq_lock_is_reported():
    ld = Lockdep()
    take(ld, 9, "vq", 40, irq=True, off=True)
    ld.release(9, "vq", site(41))
    take(ld, 1, "vq", 22, off=True)      # spin_lock_irqsave
    with pytest.raises(IrqUnsafeLock):
        ld.irqs_enabled(1, "xmit", site(23))   # local_irq_restore, vq still held


def test_an_irq_safe_lock_ordered_before_an_irq_unsafe_one_is_reported():
    """CPU0 holds 'stats' with irqs on; CPU1 holds 'vq' and waits for 'stats';
    CPU0's interrupt waits for 'vq'."""
    ld = Lockdep(raise_on_report=False)
    take(ld, 9, "vq", 40, irq=True, off=True, name="irq")
    ld.release(9, "vq", site(41))
    take(ld, 1, "vq", 20, off=True, name="reap")      # spin_lock_irqsave(vq)
    take(ld, 1, "stats", 21, off=True, name="reap")   # spin_lock(stats), irqs still off
    ld.release(1, "stats", site(22))
    ld.release(1, "vq", site(23))
    assert ld.reports == []
    take(ld, 2, "stats", 30, off=False, name="xmit")  # spin_lock(stats), irqs on
    [v] = ld.reports
    assert isinstance(v, IrqLockInversion)
    assert v.locks == ("vq", "stats") and v.tasks == ("irq", "xmit", "reap")
    assert str(v) == (
        "irq-safe->irq-unsafe: 'vq' is taken in interrupt context by irq at "
        "scenario.py:40 (f), 'stats' is held with interrupts enabled by xmit at "
        "scenario.py:30 (f), and 'vq' -> 'stats' taken by reap at scenario.py:21 (f) "
        "holding 'vq' from scenario.py:20 (f)")


def test_an_irq_safe_lock_ordered_before_an_irqsave_one_is_not_reported():
    ld = Lockdep()
    take(ld, 9, "vq", 40, irq=True, off=True)
    ld.release(9, "vq", site(41))
    take(ld, 1, "vq", 20, off=True)
    take(ld, 1, "stats", 21, off=True)
    take(ld, 2, "stats", 30, off=True)
    take(ld, 3, "tx", 31, off=False)    # irq-unsafe, but not after an irq-safe lock
    take(ld, 3, "vq", 32, off=True)     # unsafe -> safe is allowed
    assert ld.reports == []


def test_releasing_a_lock_not_held_is_reported():
    ld = Lockdep()
    take(ld, 1, "A", 1)
    with pytest.raises(UnlockNotHeld):
        ld.release(2, "A", site(2), "other")
    assert ld.held(1) == ["A"]


def test_call_site_names_the_caller_outside_the_harness():
    here = call_site()
    assert here[0] == __file__ and here[2] == ("test_call_site_names_the_caller_"
                                               "outside_the_harness")
    assert format_site(here) == f"tests/test_lockdep.py:{here[1]} ({here[2]})"


orders = st.lists(st.lists(st.sampled_from("ABCDE"), unique=True, max_size=4),
                  max_size=5)


def has_cycle(edges):
    graph = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)

    def reaches(src, dst, seen):
        return any(n == dst or (n not in seen and reaches(n, dst, seen | {n}))
                   for n in graph.get(src, ()))
    return any(reaches(n, n, frozenset()) for n in graph)


@given(orders)
def test_an_inversion_is_reported_exactly_when_the_orders_form_a_cycle(tasks):
    ld = Lockdep(raise_on_report=False)
    edges = set()
    for tid, order in enumerate(tasks):
        for i, lock in enumerate(order):
            take(ld, tid, lock, i)
            edges.update((held, lock) for held in order[:i])
        for lock in reversed(order):
            ld.release(tid, lock, site(99))
    assert ld.reports == [] or all(isinstance(r, LockOrderInversion) for r in ld.reports)
    assert bool(ld.reports) == has_cycle(edges)
