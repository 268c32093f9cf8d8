"""`--engine random`: uniformly random schedules (and store drains) from one seed."""
from __future__ import annotations

from ..nativemem import isolated
from ..sched.random import RandomSource
from .scheduled import sampling_loop


def run(opts):
    return isolated(opts, "random", lambda: sampling_loop(
        "random", opts, lambda seed, params: RandomSource(seed)))
