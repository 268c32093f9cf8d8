"""Run C-backed work in a forked worker so that a crash becomes a finding.

    run_isolated(fn, *args, timeout=None) -> fn(*args)

Rules:
* The child is a fork() of the caller: it inherits the loaded library, the
  memory and the objects, runs fn(*args) and sends back the pickled result or
  the pickled exception; the parent re-raises the exception as is.
* A child killed by a signal (SIGSEGV in virtio_ring.c, abort()) or exiting
  without an answer raises NativeCrash(signal); a child still running after
  `timeout` seconds (a livelock in C, e.g. a device-made descriptor loop) is
  killed and raises NativeCrash too.  The timeout is a safety net for
  campaigns, never part of what a replay decides.
* Plan for engines (issue 6): a check run with --driver linux executes each
  run (or each batch of runs) through run_isolated; the schedule and seed that
  led to a NativeCrash are written as a repro like any other failure.
"""
from __future__ import annotations

import faulthandler
import os
import pickle
import select
import signal

from .errors import NativeCrash


def run_isolated(fn, *args, timeout: float | None = None):
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:                                   # child
        os.close(rfd)
        # The parent reports the crash; no faulthandler dump from the child.
        faulthandler.disable()
        try:
            try:
                payload = pickle.dumps((True, fn(*args)))
            except BaseException as e:             # noqa: BLE001 - sent to the parent
                try:
                    payload = pickle.dumps((False, e))
                except Exception:                  # noqa: BLE001 - unpicklable
                    payload = pickle.dumps((False, NativeCrash(f"{type(e).__name__}: {e}")))
            with os.fdopen(wfd, "wb") as w:
                w.write(payload)
        finally:
            os._exit(0)
    os.close(wfd)
    chunks = []
    with os.fdopen(rfd, "rb") as r:
        while True:
            ready, _, _ = select.select([r], [], [], timeout)
            if not ready:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                raise NativeCrash(f"worker still running after {timeout}s (killed)",
                                  signal.SIGKILL)
            chunk = os.read(r.fileno(), 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        raise NativeCrash(f"worker killed by {signal.Signals(sig).name}", sig)
    if not chunks:
        raise NativeCrash(f"worker exited with status {os.waitstatus_to_exitcode(status)} "
                          f"and no result")
    ok, value = pickle.loads(b"".join(chunks))
    if ok:
        return value
    raise value
