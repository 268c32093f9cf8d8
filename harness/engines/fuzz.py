"""`--engine fuzz`: one atheris/libFuzzer campaign on a fuzz target.

`opts.target` picks the target (default desc_chain); opts.time, opts.driver,
opts.device, opts.bug, opts.seed, opts.out and opts.progress are honoured as
by every engine; opts.memory_model pins the schedule target's model.  The
campaign runs in a child process (harness/fuzzing.py), stops at its first
crash, and that crash is a repro file in opts.out that records the driver,
device, bug and (schedule) model, so `vringfuzz replay` runs the same
implementation.  The working corpus is opts.out/corpus/<target>: a second
check resumes from it.
"""
from __future__ import annotations

from ..fuzzing import run_fuzz
from ..progress import for_opts

DEFAULT_TARGET = "desc_chain"


def run(opts):
    target = getattr(opts, "target", None) or DEFAULT_TARGET
    seed = getattr(opts, "seed", None)
    return run_fuzz(target, time_s=float(getattr(opts, "time", None) or 10.0), jobs=1,
                    out_dir=getattr(opts, "out", None) or "out",
                    progress=for_opts(opts, f"fuzz {target}"),
                    driver=getattr(opts, "driver", None) or "reference",
                    device=getattr(opts, "device", None) or "reference",
                    bug=getattr(opts, "bug", None) or None,
                    seed=None if seed is None else int(seed),
                    memory_model=getattr(opts, "memory_model", None))
