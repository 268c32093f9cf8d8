"""Which modules a fuzz target instruments (imported before any vring module).

FACTS.md: atheris covers only modules imported inside `instrument_imports`, so
each target imports the ring inside `instrumentation(...)`.  Only the ring and
the plug-in packages named by the given environment variables are
instrumented: the harness's own coverage says nothing about the ring, and
instrumenting it costs executions.  Off unless fuzzing (running as __main__ or
VRINGFUZZ_INSTRUMENT=1), so importing a target in pytest stays cheap.

`under_test` narrows the ring to the modules (and packages: a name covers
its submodules) a target exercises: every other vring module is left out
(atheris's `exclude` takes exact module names, so they are listed from the
package's files, without importing it).  A target
names them when the rest only carries plumbing for it (errors, layout
arithmetic, allocator): each instrumented block and comparison there costs
every execution and tells libFuzzer nothing the walk's own branches do not.

`compares=False` keeps branch coverage and drops comparison tracing (atheris's
`_trace_cmp`, which feeds libFuzzer's table of compared values).  That table
helps where input bytes become the compared values (a descriptor's flags,
`next`, `len`); the schedule target's bytes are choices, never values, so
there it only costs: about a quarter of the instrumentation's instructions.
"""
from __future__ import annotations

import contextlib
import importlib.util
import os
import pkgutil


def package_modules(package: str) -> list[str]:
    """Every module name of a top-level `package` (itself included), found on
    disk: find_spec of a top-level name imports nothing (of a dotted name it
    would import the parent, before the hook)."""
    def walk(name: str, paths) -> list[str]:
        names = [name]
        for info in pkgutil.iter_modules(paths):
            sub = f"{name}.{info.name}"
            names += (walk(sub, [os.path.join(info.module_finder.path, info.name)])
                      if info.ispkg else [sub])
        return names
    return walk(package, importlib.util.find_spec(package).submodule_search_locations)


def _outside(package: str, keep) -> list[str]:
    """The modules of `package` that are neither a name in `keep` nor under one."""
    return [m for m in package_modules(package)
            if not any(m == k or m.startswith(k + ".") for k in keep)]


def instrumentation(as_main: bool, *plugin_envs: str, under_test: tuple[str, ...] = (),
                    compares: bool = True):
    if not as_main and os.environ.get("VRINGFUZZ_INSTRUMENT") != "1":
        return contextlib.nullcontext()
    import atheris
    include = ["vring"]
    keep = set(under_test)
    ours = set()                    # harness subpackages holding a plug-in
    for env in plugin_envs:
        spec = os.environ.get(env, "")
        if ":" in spec:
            module = spec.split(":", 1)[0]
            include.append(module.split(".", 1)[0])
            keep.add(module)        # a plug-in inside vring stays instrumented
            if module.startswith("harness."):
                # The bug zoo's faulty sides (harness.bugs): that subpackage is the
                # ring under test; the rest of harness is the fuzzer's plumbing
                # (instrumented, a planted-bug campaign ran about 130 execs/s).
                ours.add(module.rsplit(".", 1)[0])
    exclude = _outside("vring", keep) if under_test else []
    if ours:
        exclude += _outside("harness", ours)
    if not compares:
        # instrument_imports always traces comparisons; the HookManager it
        # returns takes the switch (atheris 3.0).  Elsewhere: comparisons too.
        try:
            from atheris.import_hook import HookManager
            return HookManager({name.split(".")[0] for name in include}, set(exclude),
                               enable_loader_override=True, trace_dataflow=False)
        except (ImportError, TypeError):
            pass
    return atheris.instrument_imports(include=include, exclude=exclude)
