"""Which modules a fuzz target instruments (imported before any vring module).

FACTS.md: atheris covers only modules imported inside `instrument_imports`, so
each target imports the ring inside `instrumentation(...)`.  Only the ring and
the plug-in packages named by the given environment variables are
instrumented: the harness's own coverage says nothing about the ring, and
instrumenting it costs executions.  Off unless fuzzing (running as __main__ or
VRINGFUZZ_INSTRUMENT=1), so importing a target in pytest stays cheap.
"""
from __future__ import annotations

import contextlib
import os


def instrumentation(as_main: bool, *plugin_envs: str):
    if not as_main and os.environ.get("VRINGFUZZ_INSTRUMENT") != "1":
        return contextlib.nullcontext()
    import atheris
    include = ["vring"]
    for env in plugin_envs:
        spec = os.environ.get(env, "")
        if ":" in spec:
            include.append(spec.split(":", 1)[0].split(".", 1)[0])
    return atheris.instrument_imports(include=include)
