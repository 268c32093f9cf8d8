"""Delta debugging (Zeller & Hildebrandt, TSE 2002): shrink a list, keep the failure.

`ddmin(items, fails)` returns a 1-minimal sublist for which `fails(sublist)` is
still true: removing any single element makes it pass.  `fails` must be
deterministic (our replays are), and is called O(n^2) times in the worst case,
so `budget` caps the number of calls.
"""
from __future__ import annotations

from typing import Callable, Sequence, TypeVar

T = TypeVar("T")


def ddmin(items: Sequence[T], fails: Callable[[list[T]], bool], *, budget: int = 2000) -> list[T]:
    current = list(items)
    calls = 0
    n = 2
    while len(current) >= 2 and calls < budget:
        chunk = max(1, len(current) // n)
        reduced = False
        start = 0
        while start < len(current) and calls < budget:
            candidate = current[:start] + current[start + chunk:]
            calls += 1
            if candidate and fails(candidate):
                current = candidate
                n = max(n - 1, 2)
                reduced = True
            else:
                start += chunk
        if not reduced:
            if chunk == 1:
                break
            n = min(len(current), n * 2)
    return current
