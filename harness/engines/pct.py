"""`--engine pct`: probabilistic concurrency testing with bug depth --depth.

PCT's guarantee (p >= 1/(n k^(d-1)) per run) needs k, the number of decisions
of a run: the source starts with a guess and learns k from the runs it makes.
"""
from __future__ import annotations

from ..nativemem import isolated
from ..sched.pct import PCTSource
from .scheduled import sampling_loop


class _LearningPCT(PCTSource):
    """PCT whose change points spread over the decisions runs really make."""

    def __init__(self, seed: int, depth: int):
        super().__init__(seed=seed, depth=depth, max_steps_hint=200)
        self._seen = 0

    def choose(self, options, current):
        self._seen += 1
        return super().choose(options, current)

    def new_execution(self) -> bool:
        if self._seen:
            self.max_steps_hint = max(self.max_steps_hint, self._seen)
        self._seen = 0
        return super().new_execution()


def run(opts):
    depth = int(getattr(opts, "depth", 3) or 3)
    return isolated(opts, "pct", lambda: sampling_loop(
        "pct", opts, lambda seed, params: _LearningPCT(seed, depth)))
