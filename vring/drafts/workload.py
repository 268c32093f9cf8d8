"""One buffer workload for the three drafts, a sequential runner, and the checks.

Rules:
* A workload is a value: N buffers (token, direction, size, payload, latency)
  drawn from random.Random(seed), so the same seed is the same workload in any
  process.  "out" buffers (TX) carry a payload the device reads; "in" buffers
  (RX) have room for a payload the device writes.
* In guest memory every buffer is one allocation: an 8-byte device-readable
  header (token le32, latency le32) followed by the data area.  The header is
  how a device knows which request it completes (a blk request header does the
  same); the latency is what a "per-request latency" device orders by.
* The checks are pure functions of what happened (workload, completion order,
  deliveries, device reads).  Each returns None or a Violation whose `oracle`
  is the name harness reports use ("exactly-once", "ordering", "data-integrity").
* run_sequential runs one fixed interleaving on the plain Platform: submit what
  fits, the device takes everything and completes it as a burst in the chosen
  completion order, one coalesced interrupt, then the NAPI poll and TX reaping
  the interrupt asked for.  Nothing else runs in between, so a draft's failure
  here is in its design, not in a race.
"""
from __future__ import annotations

import random
import struct
from collections import deque
from dataclasses import dataclass, field
from typing import NamedTuple, Sequence

from ..errors import InvalidRequest, VirtioError
from ..memory import GuestMemory
from ..platform import Platform

HDR_SIZE = 8
_HDR = struct.Struct("<II")

IN, OUT = "in", "out"


# --- the workload ----------------------------------------------------------------

@dataclass(frozen=True)
class Buffer:
    token: int
    direction: str      # IN: the device writes payload; OUT: the device reads it
    size: int           # bytes of the data area (>= len(payload))
    payload: bytes
    latency: int        # how long a per-request-latency device takes over it


@dataclass(frozen=True)
class Workload:
    seed: int
    buffers: tuple[Buffer, ...]

    def by_token(self) -> dict[int, Buffer]:
        return {b.token: b for b in self.buffers}


def make_workload(n: int = 8, seed: int = 0, *, directions: Sequence[str] = (IN, OUT),
                  max_size: int = 32) -> Workload:
    """N buffers with tokens 1..N, deterministic from seed."""
    if n < 1 or max_size < 1 or not directions or set(directions) - {IN, OUT}:
        raise InvalidRequest("make_workload: n >= 1, max_size >= 1, directions in/out")
    rng = random.Random(seed)
    bufs = []
    for token in range(1, n + 1):
        direction = directions[rng.randrange(len(directions))]
        n_bytes = rng.randint(1, max_size)
        payload = bytes(rng.randrange(256) for _ in range(n_bytes))
        size = n_bytes if direction == OUT else n_bytes + rng.randint(0, 8)
        bufs.append(Buffer(token, direction, size, payload, rng.randint(1, 100)))
    return Workload(seed, tuple(bufs))


@dataclass(frozen=True)
class DraftConfig:
    """Parameters every draft takes (a draft ignores what it has no use for)."""

    slots: int = 8          # buffers in flight at once (queue size for draft III)
    napi: bool = True       # draft II: the NAPI retrofit (get_inbuf) instead of rx callbacks
    budget: int = 4         # NAPI budget the runner passes to napi_poll
    features: int = 0       # draft III: negotiated ring features
    driver: str = "reference"   # draft III: plug-in specs of the ring sides
    device: str = "reference"


class Delivery(NamedTuple):
    """One buffer the driver handed up: input data, or an output completion."""

    token: int
    direction: str
    length: int
    data: bytes         # the first `length` bytes of an input buffer; b"" for output


# --- guest placement of a buffer (driver side) and its header (device side) -------

def place(mem, buf: Buffer) -> int:
    """Allocate header + data for buf, fill the header (and an out payload)."""
    addr = mem.alloc(HDR_SIZE + buf.size, 8)
    mem.write(addr, _HDR.pack(buf.token, buf.latency))
    if buf.direction == OUT:
        mem.write(addr + HDR_SIZE, buf.payload)
    return addr


def take_back(mem, buf: Buffer, addr: int, length: int) -> Delivery:
    """Read what the device wrote (input) and free the buffer."""
    data = mem.read(addr + HDR_SIZE, length) if buf.direction == IN else b""
    mem.free(addr)
    return Delivery(buf.token, buf.direction, length, data)


def parse_header(raw: bytes) -> tuple[int, int]:
    """(token, latency) from the 8 header bytes the device read."""
    return _HDR.unpack_from(raw)


# --- the device's completion order ------------------------------------------------

def completion_plan(pending: Sequence[int], order, workload: Workload) -> list[int]:
    """The order in which a device completes the pending tokens (arrival order).

    order: "fifo" (arrival), "lifo" (newest first), "latency" (smallest
    per-request latency first, ties in arrival order), or a sequence of tokens
    (those first, in that order; the rest after, in arrival order).
    """
    pending = list(pending)
    if order == "fifo":
        return pending
    if order == "lifo":
        return pending[::-1]
    if order == "latency":
        lat = {b.token: b.latency for b in workload.buffers}
        return sorted(pending, key=lambda t: (lat[t], pending.index(t)))
    if isinstance(order, str):
        raise InvalidRequest(f"completion order {order!r}: fifo, lifo, latency or tokens")
    rank = {t: i for i, t in enumerate(order)}
    return sorted(pending, key=lambda t: (rank.get(t, len(rank)), pending.index(t)))


# --- the checks (pure) --------------------------------------------------------------

@dataclass(frozen=True)
class Violation:
    oracle: str         # "exactly-once", "ordering", "data-integrity"
    message: str


def exactly_once(workload: Workload, delivered: Sequence[Delivery], *,
                 complete: bool = True) -> Violation | None:
    """Every delivered token is one of the workload's, none twice; with complete,
    every buffer was delivered (call it at quiescence)."""
    known = workload.by_token()
    seen: set[int] = set()
    for d in delivered:
        if d.token not in known:
            return Violation("exactly-once", f"token {d.token} delivered but never submitted")
        if d.token in seen:
            return Violation("exactly-once", f"token {d.token} delivered twice")
        seen.add(d.token)
    if complete and len(seen) != len(known):
        missing = sorted(set(known) - seen)
        return Violation("exactly-once", f"token(s) {missing} never delivered")
    return None


def in_completion_order(workload: Workload, completed: Sequence[int],
                        delivered: Sequence[Delivery]) -> Violation | None:
    """Per direction, the driver delivers buffers in the order the device completed
    them (what draft I could not do).  Only delivered tokens are compared."""
    direction = {b.token: b.direction for b in workload.buffers}
    for way in (IN, OUT):
        got = [d.token for d in delivered if d.direction == way]
        got_set = set(got)
        want = [t for t in completed if direction.get(t) == way and t in got_set]
        if got != want:
            k = next((i for i, (g, w) in enumerate(zip(got, want)) if g != w),
                     min(len(got), len(want)))
            return Violation("ordering", f"{way}: delivered {got} but the device completed "
                             f"{want} (first difference at position {k})")
    return None


def data_intact(workload: Workload, delivered: Sequence[Delivery],
                received: dict[int, bytes]) -> Violation | None:
    """Input buffers carry the device's payload; the device read each out payload."""
    known = workload.by_token()
    for d in delivered:
        buf = known.get(d.token)
        if buf is None or d.direction != buf.direction:
            return Violation("data-integrity", f"token {d.token}: wrong direction {d.direction}")
        if buf.direction == IN and (d.length != len(buf.payload) or d.data != buf.payload):
            return Violation("data-integrity", f"token {d.token}: input data differs from "
                             f"what the device wrote ({d.length} bytes delivered)")
        if buf.direction == OUT and received.get(d.token) != buf.payload:
            return Violation("data-integrity", f"token {d.token}: the device read other "
                             f"bytes than the driver sent")
    return None


def check_all(workload: Workload, completed: Sequence[int], delivered: Sequence[Delivery],
              received: dict[int, bytes], *, complete: bool = True) -> list[Violation]:
    checks = (exactly_once(workload, delivered, complete=complete),
              data_intact(workload, delivered, received),
              in_completion_order(workload, completed, delivered))
    return [v for v in checks if v is not None]


# --- the sequential runner ----------------------------------------------------------

class Stalled(VirtioError):
    """run_sequential made no progress: a buffer is stranded (e.g. a lost interrupt)."""


@dataclass
class Outcome:
    delivered: list[Delivery]
    completed: list[int]
    received: dict[int, bytes]
    interrupts: int
    notifies: int
    violations: list[Violation] = field(default_factory=list)

    @property
    def order(self) -> list[int]:
        return [d.token for d in self.delivered]


def run_sequential(draft, workload: Workload, *, completion_order="fifo",
                   cfg: DraftConfig | None = None, mem: GuestMemory | None = None,
                   platform: Platform | None = None, max_rounds: int = 10_000) -> Outcome:
    """Run workload through draft (a module with make) in one fixed interleaving."""
    cfg = cfg if cfg is not None else DraftConfig()
    mem = mem if mem is not None else GuestMemory(1 << 16)
    platform = platform if platform is not None else Platform()
    q = draft.make(mem, platform, cfg)
    todo = deque(workload.buffers)
    known = workload.by_token()
    for _ in range(max_rounds):
        if not todo and not q.outstanding():
            break
        before = (len(todo), len(q.completed), len(q.delivered))
        while todo and q.submit(todo[0]):
            todo.popleft()
        q.device_fetch()
        irqs = platform.interrupts
        for token in completion_plan(q.device_pending(), completion_order, workload):
            buf = known[token]
            q.device_complete(token, buf.payload if buf.direction == IN else b"")
        if platform.interrupts != irqs:
            q.interrupt()           # one interrupt for the burst (coalesced, as MSI-X)
        # A poll that stays scheduled must make progress (softirq livelock guard).
        for _ in range(len(known) + 2):
            if not q.napi_scheduled:
                break
            q.napi_poll(cfg.budget)
        for _ in range(len(known) + 2):
            if not q.tx_scheduled:
                break
            q.tx_complete()
        if q.napi_scheduled or q.tx_scheduled:
            raise Stalled(f"{draft.__name__}: still scheduled after {len(known) + 2} polls")
        if todo and (len(todo), len(q.completed), len(q.delivered)) == before:
            # The ring is full of delivered-but-unreaped TX: reap as xmit would.
            q.tx_complete()
        if (len(todo), len(q.completed), len(q.delivered)) == before:
            raise Stalled(f"{draft.__name__}: no progress with {len(todo)} to submit, "
                          f"{q.outstanding()} outstanding, {len(q.device_pending())} at the device")
    else:
        raise Stalled(f"{draft.__name__}: not done after {max_rounds} rounds")
    out = Outcome(list(q.delivered), list(q.completed), dict(q.received),
                  platform.interrupts, platform.notifies)
    out.violations = check_all(workload, out.completed, out.delivered, out.received)
    return out
