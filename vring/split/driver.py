"""The driver side of a split virtqueue: the Linux virtqueue API over GuestMemory.

Rules (VIRTIO 1.2, 2.7) and theory of operation:

* The driver owns a descriptor from the moment it takes it off its free list
  until get_buf hands the buffer back.  Its free list, chain lengths and tokens
  live in private state (`_next`, `_state`) and never in guest memory, so a
  device that scribbles on the descriptor table cannot corrupt them (the
  hardening Linux did with desc_extra, 5.x).
* add_sgs writes descriptors, then the avail ring entry, then (after a write
  barrier) avail idx.  kick_prepare decides whether the device wants a kick,
  after a full barrier (store avail idx, then load flags/avail_event: the
  store-buffering shape that only mb() forbids).
* get_buf trusts nothing it reads from the used ring: an id out of range or not
  in flight, a used idx that runs ahead, or a length beyond the writable part
  marks the queue broken for good (Linux's BAD_RING) and raises the
  DeviceViolation leaf.  A broken queue never hands out a token again.
* Callbacks: disable_cb / enable_cb / enable_cb_prepare + poll /
  enable_cb_delayed follow virtio_ring.c; enable_cb returns False when buffers
  arrived meanwhile, and the caller must poll again (the draft III contract).
* IN_ORDER (2.7.9): descriptors are used in ring order, chained with next = x+1;
  the device may write one used entry for a batch, and the skipped buffers are
  taken as fully written.
"""
from __future__ import annotations

from collections import deque

from ..errors import (InvalidRequest, QueueBroken, QueueFull, UsedIdNotHead,
                      UsedIdOutOfRange, UsedIdxRunsAhead, UsedLenTooLarge)
from ..features import (F_EVENT_IDX, F_IN_ORDER, F_INDIRECT_DESC,
                        VRING_AVAIL_F_NO_INTERRUPT, VRING_DESC_F_INDIRECT,
                        VRING_DESC_F_NEXT, VRING_DESC_F_WRITE,
                        VRING_USED_F_NO_NOTIFY, need_event)
from ..layout import DESC_SIZE, SplitLayout


class _BufState:
    """What the driver remembers of one buffer in flight (Linux: desc_state+extra)."""

    __slots__ = ("token", "ndescs", "indirect", "writable")

    def __init__(self, token, ndescs, indirect, writable):
        self.token = token
        self.ndescs = ndescs        # descriptors taken from the table
        self.indirect = indirect    # address of the indirect table, or 0
        self.writable = writable    # total device-writable bytes


class SplitDriver:
    """A split-ring driver with exactly the plug-in method names."""

    # The event-index arithmetic (2.7.7/2.7.10), as a class attribute so that a
    # variant (the bug zoo's off-by-one) can swap it without copying a method.
    need_event = staticmethod(need_event)

    def __init__(self, mem, cfg, platform):
        self.mem = mem
        self.platform = platform
        self.layout = lay = SplitLayout(cfg.size, cfg.desc, cfg.avail, cfg.used)
        self.size = n = cfg.size
        self.features = cfg.features
        self.event = bool(cfg.features & F_EVENT_IDX)
        self.use_indirect = bool(cfg.features & F_INDIRECT_DESC)
        self.in_order = bool(cfg.features & F_IN_ORDER)
        self.broken = False
        # Private free list: _next[i] is the descriptor after i (Linux desc_extra.next).
        self._next = [(i + 1) % n for i in range(n)]
        self.free_head = 0
        self.num_free = n
        self._state: list[_BufState | None] = [None] * n
        self.avail_idx_shadow = 0
        self.avail_flags_shadow = 0
        self.last_used_idx = 0
        self.num_added = 0
        # IN_ORDER: heads in the order they were made available, and the batch
        # being drained (the id and len of the one used entry that covers it).
        self._order: deque[int] = deque()
        self._batch: tuple[int, int] | None = None
        # Addresses used on every call.
        self._avail_idx = lay.avail_idx
        self._used_idx = lay.used_idx
        self._used_event = lay.used_event
        self._avail_event = lay.avail_event

    # -- adding buffers -----------------------------------------------------
    def add_sgs(self, out, in_, token) -> None:
        """Expose one buffer: device-readable `out` then device-writable `in_`.

        Each is a list of (addr, len).  Raises QueueFull when too few
        descriptors are free, QueueBroken once the device misbehaved.
        """
        if self.broken:
            raise QueueBroken("add_sgs on a broken queue")
        if token is None:
            raise InvalidRequest("token must not be None (None means 'no buffer')")
        sgs = [(a, ln, 0) for a, ln in out] + [(a, ln, VRING_DESC_F_WRITE) for a, ln in in_]
        total = len(sgs)
        if total == 0:
            raise InvalidRequest("add_sgs needs at least one element")
        if total > self.size and not self.use_indirect:
            raise InvalidRequest(f"{total} elements exceed the queue size {self.size}")
        mem = self.mem
        writable = sum(ln for _, ln, f in sgs if f)
        # Like Linux, use an indirect table for any multi-element buffer when
        # the feature is negotiated: it costs one ring slot instead of `total`.
        indirect = 0
        if self.use_indirect and total > 1:
            if total > self.size:
                raise InvalidRequest(f"{total} elements exceed the queue size {self.size}")
            indirect = mem.alloc(total * DESC_SIZE, 16)
            for i, (addr, ln, flags) in enumerate(sgs):
                d = indirect + i * DESC_SIZE
                last = i == total - 1
                mem.write64(d, addr)
                mem.write32(d + 8, ln)
                # 2.7.5.3.1: with IN_ORDER, indirect entries chain 0 -> 1 -> 2 ...
                mem.write16(d + 12, flags if last else flags | VRING_DESC_F_NEXT)
                mem.write16(d + 14, 0 if last else i + 1)
            ndescs = 1
        else:
            ndescs = total
        if self.num_free < ndescs:
            if indirect:
                mem.free(indirect)
            raise QueueFull(f"{ndescs} descriptors needed, {self.num_free} free")

        head = self.free_head
        i = head
        lay = self.layout
        if indirect:
            d = lay.desc_at(i)
            mem.write64(d, indirect)
            mem.write32(d + 8, total * DESC_SIZE)
            mem.write16(d + 12, VRING_DESC_F_INDIRECT)
            mem.write16(d + 14, 0)
            i = self._next[i]
        else:
            for k, (addr, ln, flags) in enumerate(sgs):
                d = lay.desc_at(i)
                nxt = self._next[i]
                last = k == total - 1
                mem.write64(d, addr)
                mem.write32(d + 8, ln)
                mem.write16(d + 12, flags if last else flags | VRING_DESC_F_NEXT)
                # The device follows next only when NEXT is set; write 0 on the
                # last one so a stale index never points into someone else's chain.
                mem.write16(d + 14, 0 if last else nxt)
                i = nxt
        self.free_head = i
        self.num_free -= ndescs
        self._state[head] = _BufState(token, ndescs, indirect, writable)
        if self.in_order:
            self._order.append(head)

        # Put the head in the next available slot, then publish it.
        mem.write16(lay.avail_ring(self.avail_idx_shadow & (self.size - 1)), head)
        # wmb: descriptors and the ring entry must be visible before the new
        # avail idx exposes them (2.7.13.3.1 "Updating idx").
        mem.wmb()
        self.avail_idx_shadow = (self.avail_idx_shadow + 1) & 0xFFFF
        mem.write16(self._avail_idx, self.avail_idx_shadow)
        self.num_added += 1
        # Linux kicks unconditionally every 2^16-1 adds so that old/new in
        # need_event never wrap into each other.
        if self.num_added == 0xFFFF:
            self.kick()

    # -- notifying the device -----------------------------------------------
    def kick_prepare(self) -> bool:
        """True when the device asked to be notified of what was added."""
        mem = self.mem
        # mb: the avail idx store must be visible before we load flags or
        # avail_event, or we and the device can both miss each other's update
        # (2.7.13.4.1 "Notifying The Device"; the store-buffering litmus shape;
        # Linux a72caae21803 made this a full barrier).
        mem.mb()
        new = self.avail_idx_shadow
        old = (new - self.num_added) & 0xFFFF
        self.num_added = 0
        if self.event:
            return self.need_event(mem.read16(self._avail_event), new, old)
        return not (mem.read16(self.layout.used_flags) & VRING_USED_F_NO_NOTIFY)

    def notify(self) -> bool:
        if self.broken:
            return False
        self.platform.notify_device()
        return True

    def kick(self) -> bool:
        """kick_prepare + notify; False only when the queue is broken (as Linux)."""
        if self.kick_prepare():
            return self.notify()
        return not self.broken

    # -- taking buffers back ------------------------------------------------
    def _more_used(self) -> bool:
        return self.last_used_idx != self.mem.read16(self._used_idx)

    def _bad_ring(self, err):
        """Mark the queue broken for good and raise (Linux BAD_RING)."""
        self.broken = True
        raise err

    def get_buf(self):
        """Return (token, written_len) of the next used buffer, or None."""
        if self.broken:
            return None
        mem = self.mem
        used_idx = mem.read16(self._used_idx)
        last = self.last_used_idx
        if used_idx == last:
            return None
        self._check_used_idx(used_idx, last)
        # rmb: read the used element only after the idx that exposes it.
        mem.rmb()
        if self.in_order:
            head, written = self._take_in_order(last)
        else:
            elem = self.layout.used_ring(last & (self.size - 1))
            head = mem.read32(elem)
            written = mem.read32(elem + 4)
            self._check_used(head, written)
        token = self._state[head].token
        self._detach(head)
        self.last_used_idx = last = (last + 1) & 0xFFFF
        # If we expect an interrupt for the next entry, tell the device by
        # writing used_event, and make that store visible before the next
        # get_buf reads used idx (Linux virtio_store_mb).
        if not self.avail_flags_shadow & VRING_AVAIL_F_NO_INTERRUPT:
            mem.write16(self._used_event, last)
            mem.mb()
        return token, written

    def _check_used_idx(self, used_idx: int, last: int) -> None:
        in_flight = (self.avail_idx_shadow - last) & 0xFFFF
        if (used_idx - last) & 0xFFFF > in_flight:
            self._bad_ring(UsedIdxRunsAhead(
                f"used idx {used_idx}, last seen {last}, only {in_flight} in flight"))

    def _check_used(self, head: int, written: int) -> None:
        if head >= self.size:
            self._bad_ring(UsedIdOutOfRange(f"id {head} >= queue size {self.size}"))
        st = self._state[head]
        if st is None:
            self._bad_ring(UsedIdNotHead(f"id {head} is not a head!"))
        if written > st.writable:
            self._bad_ring(UsedLenTooLarge(
                f"id {head}: len {written} > {st.writable} writable bytes"))

    def _take_in_order(self, slot: int) -> tuple[int, int]:
        """IN_ORDER: the next buffer in order; one used entry may cover a batch."""
        if self._batch is None:
            elem = self.layout.used_ring(slot & (self.size - 1))
            head = self.mem.read32(elem)
            written = self.mem.read32(elem + 4)
            self._check_used(head, written)
            self._batch = (head, written)
        batch_head, batch_len = self._batch
        head = self._order.popleft()
        if head == batch_head:
            self._batch = None
            return head, batch_len
        # 2.7.9: skipped buffers "are assumed to have been used completely".
        return head, self._state[head].writable

    def _detach(self, head: int) -> None:
        """Return a chain's descriptors to the free list (Linux detach_buf_split)."""
        st = self._state[head]
        self._state[head] = None
        if st.indirect:
            self.mem.free(st.indirect)
        if self.in_order:
            # Descriptors are handed out in ring order and come back in order.
            self.num_free += st.ndescs
            return
        tail = head
        for _ in range(st.ndescs - 1):
            tail = self._next[tail]
        self._next[tail] = self.free_head
        self.free_head = head
        self.num_free += st.ndescs

    # -- callbacks ----------------------------------------------------------
    def disable_cb(self) -> None:
        """Ask the device not to interrupt (a hint: it may still do so)."""
        if self.avail_flags_shadow & VRING_AVAIL_F_NO_INTERRUPT:
            return
        self.avail_flags_shadow |= VRING_AVAIL_F_NO_INTERRUPT
        if self.event:
            # With EVENT_IDX the flags must stay 0 (2.7.7.1); park used_event
            # just behind us so the device will not reach it for 2^16 entries.
            self.mem.write16(self._used_event, (self.last_used_idx - 1) & 0xFFFF)
        else:
            self.mem.write16(self.layout.avail_flags, self.avail_flags_shadow)

    def enable_cb_prepare(self) -> int:
        """Turn callbacks on; returns the opaque position to pass to poll()."""
        last = self.last_used_idx
        if self.avail_flags_shadow & VRING_AVAIL_F_NO_INTERRUPT:
            self.avail_flags_shadow &= ~VRING_AVAIL_F_NO_INTERRUPT
            if not self.event:
                self.mem.write16(self.layout.avail_flags, self.avail_flags_shadow)
        self.mem.write16(self._used_event, last)
        return last

    def poll(self, last_used_idx: int) -> bool:
        """True when buffers were used since enable_cb_prepare returned last_used_idx."""
        if self.broken:
            return False
        # mb: our used_event/flags store must be visible before we load used
        # idx, or a buffer used meanwhile raises no interrupt and we miss it
        # too (the store-buffering shape; the re-check of the seed's draft III).
        self.mem.mb()
        return last_used_idx != self.mem.read16(self._used_idx)

    def enable_cb(self) -> bool:
        """Re-enable callbacks; False when buffers are pending: poll again."""
        return not self.poll(self.enable_cb_prepare())

    def enable_cb_delayed(self) -> bool:
        """Re-enable callbacks, but ask for the interrupt only when about 3/4
        of the buffers in flight are used (Linux virtqueue_enable_cb_delayed)."""
        mem = self.mem
        if self.avail_flags_shadow & VRING_AVAIL_F_NO_INTERRUPT:
            self.avail_flags_shadow &= ~VRING_AVAIL_F_NO_INTERRUPT
            if not self.event:
                mem.write16(self.layout.avail_flags, self.avail_flags_shadow)
        bufs = ((self.avail_idx_shadow - self.last_used_idx) & 0xFFFF) * 3 // 4
        mem.write16(self._used_event, (self.last_used_idx + bufs) & 0xFFFF)
        # mb: as in poll(), used_event must be visible before used idx is read.
        mem.mb()
        if (mem.read16(self._used_idx) - self.last_used_idx) & 0xFFFF > bufs:
            return False
        return True

    # -- teardown -----------------------------------------------------------
    def detach_unused_buf(self):
        """After the device was reset: take back one buffer it never used."""
        for head in range(self.size):
            st = self._state[head]
            if st is None:
                continue
            self._detach(head)
            if self.in_order:
                self._order.remove(head)
            # Un-expose it, as Linux does; only legal once the device is reset.
            self.avail_idx_shadow = (self.avail_idx_shadow - 1) & 0xFFFF
            self.mem.write16(self._avail_idx, self.avail_idx_shadow)
            return st.token
        return None

    # -- introspection for oracles -----------------------------------------
    def in_flight(self) -> int:
        return sum(st is not None for st in self._state)

    def free_list(self) -> list[int]:
        """Descriptor indices on the free list, in order (for invariants)."""
        if self.in_order:
            start = self.free_head
            return [(start + k) % self.size for k in range(self.num_free)]
        out, i = [], self.free_head
        for _ in range(self.num_free):
            out.append(i)
            i = self._next[i]
        return out


def make(mem, cfg, platform) -> SplitDriver:
    """Plug-in contract entry point for the reference driver."""
    return SplitDriver(mem, cfg, platform)
