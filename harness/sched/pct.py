"""PCTSource: probabilistic concurrency testing (Burckhardt et al., ASPLOS 2010).

Rules and theory of operation:
* Each execution gives every choice id a random priority the first time it
  is seen (tasks and memory-model actions alike; a fresh draw in (d, d+1),
  so initial priorities are distinct and above every changed one), and
  picks d-1 change points among the first `max_steps_hint` decisions.
* At each decision the enabled option with the highest priority runs.  At
  the i-th change point the option that would run gets priority d - i,
  below everyone: that is how one ordering constraint of a depth-d bug is
  forced.  A bug of depth d among n choices and k decisions is hit with
  probability >= 1 / (n * k^(d-1)) per execution.
* Decisions are counted in choose() calls (points with one enabled option are
  never asked), so max_steps_hint should be the number of real decisions of
  a run, not its total length.  Execution k draws from Random(f"{seed}/{k}").
* A spinning task starves lower priorities (PCT assumes no busy-waiting):
  tasks that wait must block(), not spin on yield_().
"""
from __future__ import annotations

import random


class PCTSource:
    def __init__(self, seed: int = 0, depth: int = 3, max_steps_hint: int = 1000):
        if depth < 1:
            raise ValueError("PCT depth must be >= 1")
        if max_steps_hint < 1:
            raise ValueError("max_steps_hint must be >= 1")
        self.seed = seed
        self.depth = depth
        self.max_steps_hint = max_steps_hint
        self._rng = random.Random()
        self._next = 0
        self.execution = 0
        self._start(0)

    def _start(self, k: int) -> None:
        self.execution = k
        rng = self._rng
        rng.seed(f"{self.seed}/{k}")
        self._prio: dict[int, float] = {}
        self._decisions = 0
        n = min(self.depth - 1, self.max_steps_hint)
        points = rng.sample(range(1, self.max_steps_hint + 1), n)
        # change point step -> i (1-based, in increasing step order)
        self._changes = {step: i + 1 for i, step in enumerate(sorted(points))}

    def new_execution(self) -> bool:
        self._start(self._next)
        self._next += 1
        return True

    def _best(self, options):
        prio = self._prio
        best, best_p = None, -1.0
        for o in options:
            p = prio.get(o)
            if p is None:
                p = prio[o] = self.depth + self._rng.random()
            if p > best_p:
                best, best_p = o, p
        return best

    def choose(self, options, current):
        self._decisions += 1
        best = self._best(options)
        i = self._changes.get(self._decisions)
        if i is not None:
            self._prio[best] = float(self.depth - i)
            best = self._best(options)
        return best

    def choose_int(self, n: int) -> int:
        return self._rng.randrange(n)
