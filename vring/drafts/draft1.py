"""Draft I: registered buffers with "used" pointers, scanned by the interrupt.

Seed: "an interface to register input and output buffers and 'used' pointers:
in the 'interrupt' you scanned the used pointers to see what had been used up
... it had the fatal flaw that delivery wasn't in-order."

Guest memory holds a table of `slots` entries, 32 bytes each:

    +0  hdr   le64   the buffer's 8-byte header (token, latency): device-readable
    +8  data  le64   the data area
    +16 len   le32   its length
    +20 flags le16   AVAIL (registered) | WRITE (an input buffer: the device writes)
    +24 used  le32   the "used pointer": 0, or USED | bytes written, set by the device

Rules of one slot (both sides keep them, so no buffer is seen twice or lost):
* free -> registered: the driver writes hdr/data/len, wmb, then flags = AVAIL.
* registered -> used: the device writes the data, wmb, then used = USED | len.
* used -> free: the driver reads used, rmb, reads the data, then flags = 0,
  wmb, used = 0.  The device forgets a completed slot only when it reads
  used == 0 again, and reads flags only after that (rmb), so a slot registered
  anew meanwhile is fetched once and a stale registration never.
The flaw, on purpose: the interrupt scans slots 0..N-1, so buffers used before
one interrupt are delivered in slot order, not in the device's completion order.
Locks: "draft1", the driver's own (draft I drivers "looked much like normal
drivers"): taken irqsave in task context, plainly in the interrupt.
SlotTable and SlotDevice are reused by draft II, which kept this table.
"""
from __future__ import annotations

from ..errors import InvalidRequest
from .workload import HDR_SIZE, IN, OUT, Buffer, DraftConfig, parse_header, place, take_back

LOCKS = ("draft1",)

SLOT_SIZE = 32
_HDR, _DATA, _LEN, _FLAGS, _USED = 0, 8, 16, 20, 24
F_AVAIL, F_WRITE = 1, 2
USED = 1 << 31          # a zero-length use must still read as "used"

_IDLE, _PENDING, _DONE = 0, 1, 2    # the device's private view of a slot


class SlotTable:
    """The registration table in guest memory, with both sides' accessors."""

    def __init__(self, mem, n: int):
        if n < 1:
            raise InvalidRequest(f"slot table of {n} entries")
        self.mem = mem
        self.n = n
        self.base = mem.alloc(SLOT_SIZE * n, 16)

    def at(self, i: int) -> int:
        return self.base + SLOT_SIZE * i

    # -- driver side ------------------------------------------------------------
    def register(self, i: int, addr: int, buf: Buffer) -> None:
        mem, s = self.mem, self.at(i)
        mem.write64(s + _HDR, addr)
        mem.write64(s + _DATA, addr + HDR_SIZE)
        mem.write32(s + _LEN, buf.size)
        # wmb: the fields must be visible before AVAIL hands them to the device.
        mem.wmb()
        mem.write16(s + _FLAGS, F_AVAIL | (F_WRITE if buf.direction == IN else 0))

    def used_len(self, i: int) -> int | None:
        """Bytes the device wrote, or None while the slot is not used."""
        used = self.mem.read32(self.at(i) + _USED)
        if not used & USED:
            return None
        # rmb: read the data only after the used pointer that announces it.
        self.mem.rmb()
        return used & ~USED

    def release(self, i: int) -> None:
        mem, s = self.mem, self.at(i)
        mem.write16(s + _FLAGS, 0)
        # wmb: AVAIL must be gone before used reads 0, or the device could take
        # the stale registration for a new one.
        mem.wmb()
        mem.write32(s + _USED, 0)


class SlotDevice:
    """The device's side of a SlotTable: fetch registered buffers, complete them."""

    def __init__(self, table: SlotTable):
        self.table = table
        self.mem = table.mem
        self.state = [_IDLE] * table.n
        self.pending: dict[int, tuple[int, int, int, bool]] = {}  # token -> slot, data, len, in
        self.received: dict[int, bytes] = {}

    def fetch(self) -> int:
        mem, n = self.mem, 0
        # rmb: look at the table only after the kick that woke us (a trapped
        # notification orders the driver's earlier stores before our loads).
        mem.rmb()
        for i in range(self.table.n):
            s = self.table.at(i)
            if self.state[i] == _PENDING:
                continue
            used = mem.read32(s + _USED)
            if used:
                continue            # ours, still waiting for the driver to free it
            self.state[i] = _IDLE
            # rmb: flags only after used reads 0 (see release()).
            mem.rmb()
            flags = mem.read16(s + _FLAGS)
            if not flags & F_AVAIL:
                continue
            # rmb: the fields only after the AVAIL that publishes them.
            mem.rmb()
            hdr = mem.read64(s + _HDR)
            data = mem.read64(s + _DATA)
            length = mem.read32(s + _LEN)
            token, _latency = parse_header(mem.read(hdr, HDR_SIZE))
            writable = bool(flags & F_WRITE)
            if not writable:
                self.received[token] = mem.read(data, length)
            self.pending[token] = (i, data, length, writable)
            self.state[i] = _PENDING
            n += 1
        return n

    def complete(self, token: int, data: bytes) -> tuple[int, int]:
        """Write data into an input buffer, set its used pointer: (slot, written)."""
        if token not in self.pending:
            raise InvalidRequest(f"token {token} is not pending at the device")
        i, addr, length, writable = self.pending.pop(token)
        written = min(len(data), length) if writable else 0
        if written:
            self.mem.write(addr, data[:written])
        # wmb: the data must be visible before the used pointer that announces it.
        self.mem.wmb()
        self.mem.write32(self.table.at(i) + _USED, USED | written)
        self.state[i] = _DONE
        return i, written


class Draft1Queue:
    """Draft I: the driver and the device over one SlotTable (see module doc)."""

    name = "draft1"

    def __init__(self, mem, platform, cfg: DraftConfig):
        self.mem = mem
        self.platform = platform
        self.table = SlotTable(mem, cfg.slots)
        self.lock = platform.lock("draft1")
        self._bufs: list[tuple[Buffer, int] | None] = [None] * cfg.slots  # driver private
        self.dev = SlotDevice(self.table)
        self.napi_scheduled = False     # draft I has no NAPI: the interrupt delivers
        self.tx_scheduled = False
        self.delivered: list = []
        self.completed: list[int] = []
        self.received = self.dev.received

    # -- driver -------------------------------------------------------------------
    def submit(self, buf: Buffer) -> bool:
        self.lock.acquire(irqsave=True)
        try:
            slot = next((i for i, b in enumerate(self._bufs) if b is None), None)
            if slot is None:
                return False
            addr = place(self.mem, buf)
            self._bufs[slot] = (buf, addr)
            self.table.register(slot, addr, buf)
        finally:
            self.lock.release()
        # mb: AVAIL must be visible before the kick that sends the device to look.
        self.mem.mb()
        self.platform.notify_device()
        return True

    def _scan(self, budget: int, ways) -> int:
        """The draft I interrupt: visit the used pointers in slot order."""
        # rmb: read the used pointers only after the interrupt (or the flag) that
        # sent us to look; PCI orders an MSI after the device's earlier writes.
        self.mem.rmb()
        n = 0
        for slot in range(self.table.n):
            if n >= budget:
                break
            ent = self._bufs[slot]
            if ent is None or ent[0].direction not in ways:
                continue
            length = self.table.used_len(slot)
            if length is None:
                continue
            buf, addr = ent
            self.delivered.append(take_back(self.mem, buf, addr, length))
            self._bufs[slot] = None
            self.table.release(slot)
            n += 1
        return n

    def interrupt(self) -> None:
        with self.lock:
            self._scan(self.table.n, (IN, OUT))

    def napi_poll(self, budget: int) -> int:
        """Polling the used pointers works without an interrupt (never scheduled)."""
        self.lock.acquire(irqsave=True)
        try:
            return self._scan(budget, (IN,))
        finally:
            self.lock.release()

    def tx_complete(self) -> int:
        self.lock.acquire(irqsave=True)
        try:
            return self._scan(self.table.n, (OUT,))
        finally:
            self.lock.release()

    def outstanding(self) -> int:
        return sum(b is not None for b in self._bufs)

    # -- device -------------------------------------------------------------------
    def device_fetch(self) -> int:
        return self.dev.fetch()

    def device_pending(self) -> tuple[int, ...]:
        return tuple(self.dev.pending)

    def device_complete(self, token: int, data: bytes = b"") -> None:
        self.dev.complete(token, data)
        self.completed.append(token)
        # mb: the used pointer must be visible before the interrupt announces it.
        self.mem.mb()
        self.platform.interrupt()       # draft I cannot suppress interrupts


def make(mem, platform, cfg: DraftConfig | None = None) -> Draft1Queue:
    return Draft1Queue(mem, platform, cfg if cfg is not None else DraftConfig())


__all__ = ["make", "LOCKS", "Draft1Queue", "SlotTable", "SlotDevice"]
