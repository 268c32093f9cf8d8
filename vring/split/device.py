"""The device side of a split virtqueue: what vhost, QEMU and rust-vmm do.

Rules (VIRTIO 1.2, 2.7) and theory of operation:

* pop reads avail idx, and only after a read barrier the ring entry and the
  descriptors it exposes.  It never trusts them: an avail idx more than the
  queue size ahead and every malformed chain raise a DriverViolation leaf
  (see chain.py), and the device position does not move past a bad chain.
* push writes the used element, then (after a write barrier) used idx:
  2.7.8.2 "the device MUST set len prior to updating the used idx".
* needs_interrupt, called after one or more pushes, applies the used buffer
  notification rules (2.7.7.2): flags without EVENT_IDX, used_event with it,
  after a full barrier (store used idx, load used_event: store buffering).
* enable_notify / disable_notify manage VRING_USED_F_NO_NOTIFY or avail_event
  (2.7.10.2); enable_notify re-checks avail idx after a full barrier and says
  whether buffers arrived meanwhile (vhost_enable_notify).
* IN_ORDER (2.7.9): push_batch may write a single used entry for a batch.
"""
from __future__ import annotations

from ..errors import AvailIdxTooFarAhead, InvalidRequest
from ..features import (F_EVENT_IDX, F_IN_ORDER, F_INDIRECT_DESC,
                        VRING_AVAIL_F_NO_INTERRUPT, VRING_USED_F_NO_NOTIFY,
                        need_event)
from ..layout import SplitLayout
from .chain import Chain, walk_chain


class SplitDevice:
    """A split-ring device with exactly the plug-in method names."""

    # The event-index arithmetic (2.7.7/2.7.10), as a class attribute so that a
    # variant (the bug zoo's off-by-one) can swap it without copying a method.
    need_event = staticmethod(need_event)

    def __init__(self, mem, cfg, platform):
        self.mem = mem
        self.platform = platform
        self.layout = lay = SplitLayout(cfg.size, cfg.desc, cfg.avail, cfg.used)
        self.size = cfg.size
        self.features = cfg.features
        self.event = bool(cfg.features & F_EVENT_IDX)
        self.indirect_ok = bool(cfg.features & F_INDIRECT_DESC)
        self.in_order = bool(cfg.features & F_IN_ORDER)
        self.last_avail_idx = 0
        self.used_idx = 0            # next used idx to publish (vhost last_used_idx)
        self.signalled_used = 0      # used idx at the last needs_interrupt()
        self.unsignalled = 0         # buffers pushed since then
        self.notify_enabled = True
        self.lenient: frozenset = frozenset()  # rules not enforced (bug zoo only)
        self._avail_idx = lay.avail_idx
        self._used_idx = lay.used_idx

    # -- taking buffers -----------------------------------------------------
    def avail_pending(self) -> int:
        """How many buffers the driver has exposed beyond our position."""
        avail_idx = self.mem.read16(self._avail_idx)
        pending = (avail_idx - self.last_avail_idx) & 0xFFFF
        if pending > self.size and "avail-idx-range" not in self.lenient:
            # 2.7.6.1: avail idx never goes back, so it can be at most the queue
            # size ahead of us (vhost: "Guest moved avail index from %u to %u").
            raise AvailIdxTooFarAhead(
                f"avail idx {avail_idx}, device at {self.last_avail_idx}, size {self.size}")
        return pending

    def pop(self) -> Chain | None:
        """The next available chain, validated; None when there is none."""
        if not self.avail_pending():
            return None
        mem = self.mem
        # rmb: read the ring entry and descriptors only after the avail idx
        # that exposes them (pairs with the driver's wmb before avail idx).
        mem.rmb()
        head = mem.read16(self.layout.avail_ring(self.last_avail_idx & (self.size - 1)))
        chain = walk_chain(mem, self.layout.desc, self.size, head,
                           indirect_ok=self.indirect_ok, in_order=self.in_order,
                           lenient=self.lenient)
        self.last_avail_idx = (self.last_avail_idx + 1) & 0xFFFF
        if self.event and self.notify_enabled:
            # Tell the driver how far we got (QEMU virtqueue_pop does this).
            mem.write16(self.layout.avail_event, self.last_avail_idx)
        return chain

    # -- returning buffers --------------------------------------------------
    def push(self, head: int, written_len: int) -> None:
        """Return one buffer: used element, barrier, used idx."""
        mem = self.mem
        idx = self.used_idx
        elem = self.layout.used_ring(idx & (self.size - 1))
        mem.write32(elem, head)
        mem.write32(elem + 4, written_len)
        # wmb: the used element (id and len) must be visible before the used
        # idx that exposes it (2.7.8.2).
        mem.wmb()
        self.used_idx = idx = (idx + 1) & 0xFFFF
        self.unsignalled += 1
        mem.write16(self._used_idx, idx)

    def push_batch(self, used) -> None:
        """Return several buffers with one used idx update (vhost_add_used_n).

        With IN_ORDER, only the last buffer's element is written, at the slot of
        the first one, and used idx moves by the batch size (2.7.9).
        """
        if not used:
            raise InvalidRequest("push_batch needs at least one buffer")
        mem = self.mem
        lay = self.layout
        mask = self.size - 1
        idx = self.used_idx
        if self.in_order:
            head, ln = used[-1]
            elem = lay.used_ring(idx & mask)
            mem.write32(elem, head)
            mem.write32(elem + 4, ln)
        else:
            for k, (head, ln) in enumerate(used):
                elem = lay.used_ring((idx + k) & mask)
                mem.write32(elem, head)
                mem.write32(elem + 4, ln)
        # wmb: used elements (id and len) must be visible before the used idx
        # that exposes them (2.7.8.2).
        mem.wmb()
        self.used_idx = (idx + len(used)) & 0xFFFF
        self.unsignalled += len(used)
        mem.write16(self._used_idx, self.used_idx)

    def needs_interrupt(self) -> bool:
        """Must the driver be interrupted for what was pushed since last asked?"""
        mem = self.mem
        # mb: our used idx store must be visible before we load flags or
        # used_event, or the driver's enable_cb re-check and our check can both
        # miss (store buffering; vhost_notify has the same smp_mb).
        mem.mb()
        old, new = self.signalled_used, self.used_idx
        pushed, self.unsignalled = self.unsignalled, 0
        self.signalled_used = new
        if not pushed:
            return False
        if pushed >= 0x10000:
            # old and new no longer tell how far we went (vhost's
            # signalled_used_valid): notify rather than risk a lost interrupt.
            return True
        if self.event:
            return self.need_event(mem.read16(self.layout.used_event), new, old)
        return not mem.read16(self.layout.avail_flags) & VRING_AVAIL_F_NO_INTERRUPT

    # -- notification suppression ------------------------------------------
    def disable_notify(self) -> None:
        """Ask the driver not to kick (a hint, 2.7.10.2)."""
        self.notify_enabled = False
        if not self.event:
            self.mem.write16(self.layout.used_flags, VRING_USED_F_NO_NOTIFY)

    def enable_notify(self) -> bool:
        """Ask for kicks again; True when buffers arrived meanwhile: pop again."""
        self.notify_enabled = True
        mem = self.mem
        if self.event:
            mem.write16(self.layout.avail_event, self.last_avail_idx)
        else:
            mem.write16(self.layout.used_flags, 0)
        # mb: the flags/avail_event store must be visible before we re-read
        # avail idx, or a buffer added meanwhile is neither kicked nor seen.
        mem.mb()
        return mem.read16(self._avail_idx) != self.last_avail_idx


def make(mem, cfg, platform) -> SplitDevice:
    """Plug-in contract entry point for the reference device."""
    return SplitDevice(mem, cfg, platform)
