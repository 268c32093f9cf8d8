"""RandomSource: a seeded uniform choice at every point (shuttle's random policy).

Rules:
* Execution k of RandomSource(seed) draws from random.Random(f"{seed}/{k}"):
  its schedule depends only on (seed, k), never on earlier executions, on
  hash() order or on the clock.  new_execution() moves to k + 1 (the first
  call stays at k = 0, so calling it before the first run is optional).
* switch_prob < 1 makes preemption rarer: with probability 1 - switch_prob the
  running task simply continues; otherwise the choice is uniform over all
  enabled options (tasks and memory-model actions alike).
"""
from __future__ import annotations

import random


class RandomSource:
    def __init__(self, seed: int = 0, switch_prob: float = 1.0):
        if not 0.0 <= switch_prob <= 1.0:
            raise ValueError(f"switch_prob {switch_prob} is not in [0, 1]")
        self.seed = seed
        self.switch_prob = switch_prob
        self.execution = 0
        self._next = 0
        self._rng = random.Random()
        self._random = self._rng.random
        self._start(0)

    def _start(self, k: int) -> None:
        self.execution = k
        self._rng.seed(f"{self.seed}/{k}")

    def new_execution(self) -> bool:
        self._start(self._next)
        self._next += 1
        return True

    def choose(self, options, current):
        r = self._random
        if current is not None and self.switch_prob < 1.0 and r() >= self.switch_prob:
            return current
        return options[int(r() * len(options))]

    def choose_int(self, n: int) -> int:
        return int(self._random() * n)
