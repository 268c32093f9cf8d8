"""A live progress line for long work, and the time series a report draws.

Engines call `progress.update(runs, **fields)` as often as they like; the line
is redrawn at most every `interval` seconds (wall clock: display only, never
part of a replay) and each redraw is also kept as a sample for the campaign
report (runs and coverage over time).
"""
from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, label: str, *, stream=None, interval: float = 0.5, enabled: bool = True):
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.interval = interval
        self.enabled = enabled
        self.start = time.monotonic()
        self._last = 0.0
        self.samples: list[dict] = []
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
        if not self._tty:
            self.interval = max(interval, 5.0)  # a log, not a screen: fewer lines
        self._shown = False

    def update(self, runs: int, *, force: bool = False, **fields) -> None:
        now = time.monotonic()
        if not force and now - self._last < self.interval:
            return
        self._last = now
        elapsed = now - self.start
        sample = {"t": round(elapsed, 3), "runs": runs, **fields}
        self.samples.append(sample)
        if not self.enabled:
            return
        rate = runs / elapsed if elapsed > 0 else 0.0
        extra = "  ".join(f"{k} {v}" for k, v in fields.items())
        line = f"[{self.label}] {elapsed:6.1f}s  runs {runs}  ({rate:,.0f}/s)  {extra}".rstrip()
        if self._tty:
            self.stream.write("\r\x1b[2K" + line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
        self._shown = True

    def done(self, runs: int, **fields) -> None:
        self.update(runs, force=True, **fields)
        if self.enabled and self._tty and self._shown:
            self.stream.write("\n")
            self.stream.flush()


class NullProgress(Progress):
    def __init__(self):
        super().__init__("", enabled=False)


def for_opts(opts, label: str) -> Progress:
    """The progress object an engine should use: opts.progress or a fresh one."""
    p = getattr(opts, "progress", None)
    if p is not None:
        return p
    quiet = getattr(opts, "json", False)
    return Progress(label, enabled=not quiet)
