"""The seed's three virtio API drafts as small executable models.

Rusty Russell's "Virtio I/O Draft III" (2007, shared/seed-virtio-draft-iii.txt)
tells how the virtio API became what Linux still ships.  Each draft is a module
here, over the same two seams as the reference ring (GuestMemory and Platform),
driven by the same buffer workload (workload.py):

* draft1: buffers registered with "used" pointers in guest memory; the
  interrupt scans them in slot order.  Flaw: delivery is not in completion order.
* draft2: a callback per buffer, called by the virtio layer with its central
  lock held, plus the NAPI retrofit (input callbacks that can be disabled and
  get_inbuf).  Flaw: lock-held callbacks; the tx lock and the virtio lock are
  taken in both orders, and an output-completion interrupt during the NAPI
  poll takes the lock the poll holds.
* draft3: the pull model on vring.split (get_buf, disable_cb/enable_cb with the
  re-check, locking left to the driver).  Clean.

The common interface (what one harness scenario drives for all three)
----------------------------------------------------------------------
Each module has ``make(mem, platform, cfg: DraftConfig) -> DraftQueue`` and
``LOCKS`` (the lock names it takes through ``platform.lock``).  A DraftQueue
models one net-like device: input (RX, device writes) and output (TX, device
reads) buffers.  Every operation is non-blocking except lock acquisition,
so each may run as a task under the harness scheduler::

    # driver (guest) side
    submit(buf: Buffer) -> bool     xmit (out) or RX refill (in); False = no room:
                                    retry after completions were reaped
    interrupt() -> None             the driver's interrupt handler; run it once per
                                    (coalesced) platform.interrupt()
    napi_poll(budget: int) -> int   deliver up to budget input buffers; run it while
                                    napi_scheduled is True
    tx_complete() -> int            reap finished output buffers outside the
                                    interrupt; run it while tx_scheduled is True
    napi_scheduled: bool            the interrupt asked for napi_poll
    tx_scheduled: bool              the interrupt asked for tx_complete
    # device (host) side
    device_fetch() -> int           take newly available buffers (reads out payloads)
    device_pending() -> tuple[int]  tokens fetched, not yet completed, arrival order
    device_complete(token, data=b"") -> None
                                    finish one pending buffer: write data (the packet
                                    from the wire) into an input buffer, mark it used,
                                    then platform.interrupt() if the driver wants it
    # what happened, for the oracles (workload.check_all)
    delivered: list[Delivery]       what the driver handed up, in delivery order
    completed: list[int]            tokens in device completion order
    received: dict[int, bytes]      out payloads as the device read them
    outstanding() -> int            submitted and not yet delivered

Locks: draft1 "draft1"; draft2 "virtio" (central) and "tx"; draft3 "tx" and
"rx" (each module's LOCKS).  Barriers: a side reads shared state only after an
rmb/mb that follows whatever sent it to look (a kick, an interrupt, a NAPI
flag), and publishes with wmb/mb before it kicks or interrupts, so under the
harness's tso and relaxed models a draft fails only by its design.

The device picks its completion order (workload.completion_plan: fifo, lifo,
latency, or an explicit token list), which is what exposes draft I.  Every
buffer carries an 8-byte device-readable header (token le32, latency le32) so
the device knows which request it completes, as a blk request header does.
"""
from ..errors import InvalidRequest
from .workload import (Buffer, DraftConfig, Delivery, Outcome, Stalled, Violation,
                       Workload, check_all, completion_plan, data_intact, exactly_once,
                       in_completion_order, make_workload, run_sequential)

#: The draft modules by short name, for the CLI and the scenario.
DRAFTS = ("draft1", "draft2", "draft3")


def load(name: str):
    """The draft module called name ('draft1', 'draft2' or 'draft3')."""
    import importlib
    if name not in DRAFTS:
        raise InvalidRequest(f"unknown draft {name!r} (known: {', '.join(DRAFTS)})")
    return importlib.import_module(f"{__name__}.{name}")


__all__ = ["Buffer", "DraftConfig", "Delivery", "Outcome", "Stalled", "Violation",
           "Workload", "check_all", "completion_plan", "data_intact", "exactly_once",
           "in_completion_order", "make_workload", "run_sequential", "DRAFTS", "load"]
