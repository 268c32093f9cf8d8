"""How a bug is switched into the reference ring, without copying its code.

Three small mechanisms cover the ring-level bugs of the zoo:

* `FaultyMemory` stands between one side and guest memory.  Inside the named
  ring methods it drops a barrier, weakens it (mb -> wmb), or drops the store
  to one field.  Everything else goes straight through, so the fault is exactly
  one line of the real code gone wrong, and the other side is untouched.
* `lenient` rule sets turn off one validation of the device's chain walk
  (vring/split/chain.py guards each check by its rule name).
* Small subclasses override one helper (a check, the need_event arithmetic,
  the IN_ORDER batch step) where the fault is logic, not memory.

Each factory returns a `make(mem, cfg, platform)` callable: the plug-in
contract, so a bugged ring loads through the same door as any other.
"""
from __future__ import annotations

import sys

from vring.layout import SplitLayout
from vring.split.device import SplitDevice
from vring.split.driver import SplitDriver

_FORWARDED = ("read16", "read32", "read64", "write16", "write32", "write64", "read",
              "write", "alloc", "free", "contains", "wmb", "rmb", "mb")


class FaultyMemory:
    """Guest memory as one buggy side sees it."""

    def __init__(self, mem, *, methods: tuple[str, ...], barrier: str | None = None,
                 becomes: str | None = None, drop_store: int | None = None):
        self._mem = mem
        for name in _FORWARDED:
            setattr(self, name, getattr(mem, name))
        self._methods = frozenset(methods)
        if barrier is not None:
            setattr(self, barrier, self._weakened(barrier, becomes))
        if drop_store is not None:
            self._dropped = drop_store
            self.write16 = self._write16_dropping

    def __getattr__(self, name):  # base, size, buf, allocated(), ...
        return getattr(self._mem, name)

    def _in_faulty_method(self) -> bool:
        # Frame 0 is us, 1 the barrier/store wrapper's caller: the ring method.
        return sys._getframe(2).f_code.co_name in self._methods

    def _weakened(self, barrier: str, becomes: str | None):
        real = getattr(self._mem, barrier)
        weaker = getattr(self._mem, becomes) if becomes else None

        def barrier_call():
            if self._in_faulty_method():
                if weaker is not None:
                    weaker()
                return
            real()
        return barrier_call

    def _write16_dropping(self, addr: int, value: int) -> None:
        if addr == self._dropped and self._in_faulty_method():
            return
        self._mem.write16(addr, value)


def _layout(cfg) -> SplitLayout:
    return SplitLayout(cfg.size, cfg.desc, cfg.avail, cfg.used)


def barrier_fault(side: str, methods: tuple[str, ...], barrier: str, becomes: str | None = None):
    """A side whose `barrier` inside `methods` is missing (or weakened to `becomes`)."""
    cls = SplitDriver if side == "driver" else SplitDevice

    def make(mem, cfg, platform):
        return cls(FaultyMemory(mem, methods=methods, barrier=barrier, becomes=becomes),
                   cfg, platform)
    return make


def store_fault(side: str, methods: tuple[str, ...], field: str):
    """A side that never stores `field` (a SplitLayout property) inside `methods`."""
    cls = SplitDriver if side == "driver" else SplitDevice

    def make(mem, cfg, platform):
        addr = getattr(_layout(cfg), field)
        return cls(FaultyMemory(mem, methods=methods, drop_store=addr), cfg, platform)
    return make


def lenient_device(*rules: str):
    """A device whose chain walk does not enforce `rules`."""
    def make(mem, cfg, platform):
        dev = SplitDevice(mem, cfg, platform)
        dev.lenient = frozenset(rules)
        return dev
    return make


def subclass(cls):
    """The plug-in factory of a one-method variant class."""
    def make(mem, cfg, platform):
        return cls(mem, cfg, platform)
    return make


# --- one-method variants -----------------------------------------------------

def need_event_off_by_one(event_idx: int, new_idx: int, old: int) -> bool:
    # The "- 1" of vring_need_event forgotten: true for event_idx in (old, new]
    # instead of [old, new).  It misses the common case of a peer waiting for
    # the very first new entry (event_idx == old) and fires for one not written.
    return (new_idx - event_idx) & 0xFFFF < (new_idx - old) & 0xFFFF


class NeedEventOffByOneDriver(SplitDriver):
    need_event = staticmethod(need_event_off_by_one)


class NeedEventOffByOneDevice(SplitDevice):
    need_event = staticmethod(need_event_off_by_one)


class EnableCbNoRecheck(SplitDriver):
    def poll(self, last_used_idx: int) -> bool:
        # The missing re-check: enable_cb() (= not poll(enable_cb_prepare())) and
        # the NAPI split form both say "nothing pending", so buffers used before
        # callbacks went back on are never delivered.
        return False


class UsedIdUnchecked(SplitDriver):
    def _check_used(self, head: int, written: int) -> None:
        pass  # trusts the device's id: a stale or foreign id reaches the token table


class UsedLenUnchecked(SplitDriver):
    def _check_used(self, head: int, written: int) -> None:
        super()._check_used(head, 0)  # id checks stay, the length bound is gone


class BrokenNotSticky(SplitDriver):
    def _bad_ring(self, err):
        raise err  # reports the violation, but never marks the queue broken


class DetachLeaks(SplitDriver):
    def _detach(self, head: int) -> None:
        ndescs = self._state[head].ndescs
        super()._detach(head)
        # Returns only the head of a multi-descriptor chain to the count.
        self.num_free -= ndescs - 1


class DetachDoubleFree(SplitDriver):
    def _detach(self, head: int) -> None:
        st = self._state[head]
        super()._detach(head)
        if st.ndescs == 1 and not self.in_order:
            # Pushes the head on the free list a second time.
            self._next[head] = self.free_head
            self.free_head = head
            self.num_free += 1


class InOrderBatchSkipsFree(SplitDriver):
    def _take_in_order(self, slot: int) -> tuple[int, int]:
        # Treats every used entry as one buffer: the earlier buffers of a batch
        # are never handed back (2.7.9 says they were used completely).
        elem = self.layout.used_ring(slot & (self.size - 1))
        head, written = self.mem.read32(elem), self.mem.read32(elem + 4)
        self._check_used(head, written)
        self._order.remove(head)
        return head, written


class InOrderDeviceReorders(SplitDevice):
    """An IN_ORDER device that completes the later of two buffers first."""

    def __init__(self, mem, cfg, platform):
        super().__init__(mem, cfg, platform)
        self._held: tuple[int, int] | None = None

    def push(self, head: int, written_len: int) -> None:
        if not self.in_order:
            return super().push(head, written_len)
        if self._held is None:
            self._held = (head, written_len)
            return
        held, self._held = self._held, None
        super().push(head, written_len)
        super().push(*held)

    def needs_interrupt(self) -> bool:
        if self._held is not None:  # never strand the held buffer at quiescence
            super().push(*self._held)
            self._held = None
        return super().needs_interrupt()


class AvailFlagsWithEventIdx(SplitDriver):
    def disable_cb(self) -> None:
        super().disable_cb()
        if self.event:  # the legacy flag, although EVENT_IDX forbids it (2.7.7.1)
            self.mem.write16(self.layout.avail_flags, 1)


class UsedFlagsWithEventIdx(SplitDevice):
    def disable_notify(self) -> None:
        super().disable_notify()
        if self.event:  # the legacy flag, although EVENT_IDX forbids it (2.7.10.2)
            self.mem.write16(self.layout.used_flags, 1)
