"""Draft II: a callback per buffer, run with the virtio layer's central lock held.

Seed: "each buffer has an associated callback which gets called and says what
length was used.  In order to get the locking to be sane, I moved the lock into
the virtio subsystem: driver callbacks are called with the lock held."  Then
NAPI: "So I switched to a get_inbuf() method ... But now the draft-II
centralized locking hit me: the net devices poll function stops the input
callbacks, but the virtio output callback code will still try to grab the lock."

Theory of operation:
* Virtio2, the virtio layer, keeps draft I's SlotTable for registration and adds
  a used list in guest memory that the device appends in completion order
  (idx le16 at +0; entry k at +4+8k: slot le16, len le32 at +4), so callbacks
  run in completion order: draft II fixed draft I's ordering.
* Its central lock "virtio" guards all of it.  add_buf, kick, get_inbuf and
  enable_incb are called with it held; interrupt() takes it and runs every
  callback with it held.
* The NAPI retrofit (cfg.napi): an input notifier replaces the per-buffer input
  callbacks.  Used input buffers queue for get_inbuf(); the notifier runs (lock
  held) only while input callbacks are enabled.  Output callbacks stay.
* Draft2Queue, the net-like driver:
  - xmit (submit of an out buffer) takes "tx", then "virtio" around add_buf:
    tx -> virtio.  The output callback tx_done, run with "virtio" held, takes
    "tx" to reap the buffer: virtio -> tx.  The ABBA pair lockdep reports, and a
    real deadlock when the interrupt lands between xmit's two acquisitions.
  - the NAPI poll holds "virtio" (the central lock is the driver's lock) with
    interrupts on, which is NAPI's premise: only the input callbacks are
    stopped.  It drains get_inbuf and tells the host the ring has room again.
    An output-completion interrupt arriving meanwhile runs the dispatch, which
    takes "virtio" again: a self-deadlock on that CPU.  On the plain Platform,
    whose interrupts are synchronous, that is a LockError; under the harness,
    lockdep's irq-unsafe report ("virtio" taken in the interrupt, held by the
    poll with interrupts on).
"""
from __future__ import annotations

from collections import deque

from ..errors import InvalidRequest
from .draft1 import SlotDevice, SlotTable
from .workload import IN, OUT, Buffer, DraftConfig, place, take_back

LOCKS = ("virtio", "tx")

_ENTRY = 8


class Virtio2:
    """The draft II virtio layer.  Methods marked 'lock held' expect self.lock."""

    def __init__(self, mem, platform, n: int):
        self.mem = mem
        self.platform = platform
        self.table = SlotTable(mem, n)
        self.used = mem.alloc(4 + _ENTRY * n, 4)
        self.lock = platform.lock("virtio")
        if n & (n - 1):
            raise InvalidRequest(f"draft II wants a power-of-two slot count, not {n}")
        # slot -> (token, callback, direction): the guest's private state.
        self._cbs: list[tuple | None] = [None] * n
        self._last_used = 0
        self._inbufs: deque[tuple[int, int]] = deque()   # NAPI: used input (token, len)
        self.incb_enabled = True
        self.input_notify = None

    def add_buf(self, addr: int, buf: Buffer, cb) -> bool:
        """Register buf (lock held); cb(token, length) runs when it is used."""
        slot = next((i for i, c in enumerate(self._cbs) if c is None), None)
        if slot is None:
            return False
        self._cbs[slot] = (buf.token, cb, buf.direction)
        self.table.register(slot, addr, buf)
        return True

    def kick(self) -> None:
        # mb: the registration must be visible before the kick.
        self.mem.mb()
        self.platform.notify_device()

    def _next_used(self):
        mem = self.mem
        if mem.read16(self.used) == self._last_used:
            return None
        # rmb: the entry only after the idx that exposes it.
        mem.rmb()
        e = self.used + 4 + _ENTRY * (self._last_used % self.table.n)
        slot, length = mem.read16(e), mem.read32(e + 4)
        self._last_used = (self._last_used + 1) & 0xFFFF
        token, cb, direction = self._cbs[slot]
        self._cbs[slot] = None
        self.table.release(slot)
        return token, length, cb, direction

    def run_callbacks(self) -> None:
        """Consume the used list in order, calling callbacks (lock held)."""
        while (used := self._next_used()) is not None:
            token, length, cb, direction = used
            if direction == IN and self.input_notify is not None:
                self._inbufs.append((token, length))
            else:
                cb(token, length)
        if self._inbufs and self.incb_enabled and self.input_notify is not None:
            self.input_notify()

    def interrupt(self) -> None:
        """The interrupt handler: callbacks run with the central lock held."""
        with self.lock:
            # rmb: read the used list only after the interrupt that announced it.
            self.mem.rmb()
            self.run_callbacks()

    # -- the NAPI retrofit --------------------------------------------------------
    def get_inbuf(self):
        """The next used input buffer as (token, length), or None (lock held).

        Reading the used list also runs the output callbacks it passes."""
        if not self._inbufs:
            self.run_callbacks()
        return self._inbufs.popleft() if self._inbufs else None

    def disable_incb(self) -> None:
        self.incb_enabled = False

    def enable_incb(self) -> bool:
        """Input callbacks on again; False when input is pending: poll again."""
        self.incb_enabled = True
        return not self._inbufs and self.mem.read16(self.used) == self._last_used


class Draft2Queue:
    """The net-like driver on Virtio2, and the device (see module doc)."""

    name = "draft2"

    def __init__(self, mem, platform, cfg: DraftConfig):
        self.mem = mem
        self.platform = platform
        self.virtio = Virtio2(mem, platform, cfg.slots)
        self.tx_lock = platform.lock("tx")
        self._mine: dict[int, tuple[Buffer, int]] = {}     # token -> (buf, addr)
        if cfg.napi:
            self.virtio.input_notify = self.rx_interrupt
        self.dev = SlotDevice(self.virtio.table)
        self._dev_used_idx = 0          # the device's own copy of the used idx
        self.napi_scheduled = False
        self.tx_scheduled = False       # TX completes only through callbacks
        self.delivered: list = []
        self.completed: list[int] = []
        self.received = self.dev.received

    def _deliver(self, token: int, length: int) -> None:
        buf, addr = self._mine.pop(token)
        self.delivered.append(take_back(self.mem, buf, addr, length))

    # -- driver -------------------------------------------------------------------
    def submit(self, buf: Buffer) -> bool:
        addr = place(self.mem, buf)
        self._mine[buf.token] = (buf, addr)
        out = buf.direction == OUT
        if out:
            self.tx_lock.acquire()          # netif_tx_lock in start_xmit
        try:
            vl = self.virtio.lock
            vl.acquire(irqsave=True)        # tx -> virtio
            try:
                ok = self.virtio.add_buf(addr, buf, self.tx_done if out else self.rx_done)
            finally:
                vl.release()
        finally:
            if out:
                self.tx_lock.release()
        if not ok:
            del self._mine[buf.token]
            self.mem.free(addr)
            return False
        self.virtio.kick()
        return True

    def tx_done(self, token: int, length: int) -> None:
        """Output callback, run with "virtio" held: reap under "tx" (virtio -> tx)."""
        with self.tx_lock:
            self._deliver(token, length)

    def rx_done(self, token: int, length: int) -> None:
        """Input callback without NAPI: hand the packet up at once."""
        self._deliver(token, length)

    def rx_interrupt(self) -> None:
        """NAPI input notifier ("virtio" held): stop input callbacks, schedule the poll."""
        self.virtio.disable_incb()
        self.napi_scheduled = True

    def interrupt(self) -> None:
        self.virtio.interrupt()

    def napi_poll(self, budget: int) -> int:
        vl = self.virtio.lock
        vl.acquire()        # interrupts stay on: NAPI stops only the input callbacks
        try:
            n = 0
            while n < budget and (got := self.virtio.get_inbuf()) is not None:
                self._deliver(*got)
                n += 1
            if n:
                self.virtio.kick()      # the receive ring has room again
            if n < budget:
                self.napi_scheduled = False
                if not self.virtio.enable_incb():
                    self.virtio.disable_incb()
                    self.napi_scheduled = True
            return n
        finally:
            vl.release()

    def tx_complete(self) -> int:
        return 0        # draft II learns of used output buffers only by callback

    def outstanding(self) -> int:
        return len(self._mine)

    # -- device -------------------------------------------------------------------
    def device_fetch(self) -> int:
        return self.dev.fetch()

    def device_pending(self) -> tuple[int, ...]:
        return tuple(self.dev.pending)

    def device_complete(self, token: int, data: bytes = b"") -> None:
        slot, written = self.dev.complete(token, data)
        mem, used, n = self.mem, self.virtio.used, self.virtio.table.n
        idx = self._dev_used_idx
        e = used + 4 + _ENTRY * (idx % n)
        mem.write16(e, slot)
        mem.write32(e + 4, written)
        # wmb: the entry must be visible before the idx that exposes it.
        mem.wmb()
        self._dev_used_idx = (idx + 1) & 0xFFFF
        mem.write16(used, self._dev_used_idx)
        self.completed.append(token)
        # mb: used idx must be visible before the interrupt announces it.
        mem.mb()
        self.platform.interrupt()


def make(mem, platform, cfg: DraftConfig | None = None) -> Draft2Queue:
    return Draft2Queue(mem, platform, cfg if cfg is not None else DraftConfig())


__all__ = ["make", "LOCKS", "Draft2Queue", "Virtio2"]
