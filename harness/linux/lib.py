"""`--driver harness.linux.lib:/path/to/libvfring-....so`: a ring library by path.

Rules:
* The attribute after the colon is the library's path (module __getattr__,
  PEP 562): vring.contract.resolve splits the spec at its FIRST colon, so any
  absolute path without a colon works, and the spec - hence every repro file
  - names the exact library that ran.
* The library is one `vringfuzz linux build [--tsan] --patch FILE.diff` (or
  `--source DIR`) printed; a tsan build is recognised by its symbols and then
  bridged to the run's memory model like `--driver linux-tsan`.
* The factory declares native_memory (harness/nativemem.py).
"""
from __future__ import annotations


def __getattr__(path: str):
    if path.startswith("__"):
        raise AttributeError(path)

    def make(mem, cfg, platform):
        from .driver import LinuxDriver
        return LinuxDriver(mem, cfg, platform, lib_path=path)

    make.native_memory = True
    from .driver import SUPPORTED
    make.features = SUPPORTED
    make.__name__ = f"make[{path}]"
    return make
