"""The operation models behind the stateful machines (see harness/stateful.py).

A model owns one queue built through the plug-in contract and applies named
operations with JSON-able arguments, checking its invariants after each; the
Hypothesis machines and `replay_ops` drive the same models.
"""
from __future__ import annotations

from collections import deque

import vring
from vring.errors import DeviceViolation, QueueBroken, QueueFull
from vring.features import (F_EVENT_IDX, F_IN_ORDER, F_INDIRECT_DESC, F_VERSION_1,
                            VRING_AVAIL_F_NO_INTERRUPT, VRING_DESC_F_INDIRECT,
                            VRING_DESC_F_NEXT, VRING_USED_F_NO_NOTIFY, need_event)
from vring.layout import SplitLayout

from .nativemem import memory_for, plugin_features
from .oracles import (DataIntegrity, FreeCount, Ledger, LengthBound,
                      LostInterrupt, LostKick, OracleFailure, Ordering, pattern)

SIZES = (1, 2, 4, 8, 16)
FEATURES = {"indirect": F_INDIRECT_DESC, "event_idx": F_EVENT_IDX, "in_order": F_IN_ORDER}
MAX_ELEMS = 4        # elements per side of one chain
MAX_LEN = 40         # bytes per element (0 is legal: 2.7.5 sets no minimum)
MEM_SIZE = 1 << 16   # ring + 16 buffers of 8 elements fit many times over


# --- failures the shared oracles do not name -------------------------------------

class QueueFullSpurious(OracleFailure):
    oracle = "queue-full-only-when-full"


class FreeList(OracleFailure):
    oracle = "free-list-is-a-permutation"


class ChainIntact(OracleFailure):
    oracle = "device-sees-the-added-chain"


class WrittenLen(OracleFailure):
    oracle = "written-len-is-what-was-pushed"


class NotYetUsed(OracleFailure):
    oracle = "returned-only-after-used"


class Visibility(OracleFailure):
    oracle = "published-work-is-visible"


class Recheck(OracleFailure):
    oracle = "re-enable-reports-pending"


class FlagsRule(OracleFailure):
    oracle = "suppression-flags-legal"


class Leak(OracleFailure):
    oracle = "no-leak-at-quiescence"


class Hardening(OracleFailure):
    oracle = "hardening"


# --- shared helpers -----------------------------------------------------------------

def features_word(names) -> int:
    word = F_VERSION_1
    for n in names:
        word |= FEATURES[n]
    return word


def _chain_descs(mem, lay: SplitLayout, head: int) -> tuple[int, ...]:
    """Table indices of the chain at head, read from guest memory (bounded walk)."""
    out, i = [], head
    while i < lay.size and i not in out and len(out) < lay.size:
        out.append(i)
        d = lay.desc_at(i)
        flags = mem.read16(d + 12)
        if flags & VRING_DESC_F_INDIRECT or not flags & VRING_DESC_F_NEXT:
            break
        i = mem.read16(d + 14)
    return tuple(out)


class _Buf:
    __slots__ = ("readable", "writable", "allocs", "head", "descs")

    def __init__(self, readable, writable, allocs):
        self.readable, self.writable, self.allocs = readable, writable, allocs
        self.head, self.descs = None, ()

    @property
    def writable_len(self) -> int:
        return sum(ln for _, ln in self.writable)


class _Model:
    """Common part: a queue, its op log, buffers in flight and the free-list checks."""

    def __init__(self, size: int, features: int, driver: str, device: str):
        features &= plugin_features(driver, device)   # e.g. Linux 6.1 has no IN_ORDER
        self.size, self.features = size, features
        self.event = bool(features & F_EVENT_IDX)
        self.in_order = bool(features & F_IN_ORDER)
        self.platform = vring.Platform(on_notify=self._on_notify)
        self.drv, self.dev, self.mem, cfg = vring.open_queue(
            size, features, mem=memory_for(driver, device, size=MEM_SIZE), platform=self.platform,
            driver=driver, device=device)
        self.lay = SplitLayout(cfg.size, cfg.desc, cfg.avail, cfg.used)
        self.ring_bytes = self.mem.allocated()
        self.ops: list = [["init", {"size": size, "features": features}]]
        self.failed = False     # an op raised: teardown must not mask it
        self.ledger = Ledger("queue")
        self.bufs: dict[int, _Buf] = {}
        self.next_token = 0
        self.added = self.reaped = 0

    def _on_notify(self) -> None:
        pass

    def apply(self, name: str, **args):
        self.ops.append([name, args])
        try:
            result = getattr(self, "op_" + name)(**args)
            self.check_invariants()
        except Exception as exc:
            self.failed = True
            if not hasattr(exc, "stateful_ops"):
                exc.stateful_ops = [list(op) for op in self.ops]
            raise
        return result

    # -- buffers -----------------------------------------------------------
    def _make_buf(self, token: int, out: list[int], in_: list[int]) -> _Buf:
        mem, allocs, readable, writable = self.mem, [], [], []
        data = pattern(token, sum(out))
        pos = 0
        for ln in out:
            a = mem.alloc(max(ln, 1), 8)
            allocs.append(a)
            mem.write(a, data[pos:pos + ln])
            pos += ln
            readable.append((a, ln))
        for ln in in_:
            a = mem.alloc(max(ln, 1), 8)
            allocs.append(a)
            writable.append((a, ln))
        return _Buf(tuple(readable), tuple(writable), allocs)

    def _free_buf(self, buf: _Buf) -> None:
        for a in buf.allocs:
            self.mem.free(a)

    def _add(self, out, in_) -> int | None:
        """add_sgs one buffer; QueueFull only when too few descriptors are free."""
        token = self.next_token
        self.next_token += 1
        buf = self._make_buf(token, out, in_)
        before = self.drv.num_free
        try:
            self.drv.add_sgs(list(buf.readable), list(buf.writable), token)
        except QueueFull:
            self._free_buf(buf)
            if before >= len(out) + len(in_):
                raise QueueFullSpurious(f"add_sgs of {len(out)}+{len(in_)} elements raised "
                                        f"QueueFull with num_free {before}") from None
            return None
        except QueueBroken:
            self._free_buf(buf)
            if not self.drv.broken:
                raise
            return None
        idx = self.mem.read16(self.lay.avail_idx)
        buf.head = self.mem.read16(self.lay.avail_ring((idx - 1) & (self.size - 1)))
        buf.descs = _chain_descs(self.mem, self.lay, buf.head)
        if before - self.drv.num_free != len(buf.descs):
            raise FreeCount(f"add_sgs took {before - self.drv.num_free} descriptors but "
                            f"the chain at head {buf.head} has {len(buf.descs)}")
        self.bufs[token] = buf
        self.ledger.add(token, buf.writable_len)
        self.added += 1
        return token

    def _reap(self, token, written: int) -> _Buf:
        """Account for a get_buf result: exactly once, in bounds, descriptors back."""
        self.ledger.got(token, written)
        buf = self.bufs.pop(token)
        self.reaped += 1
        return buf

    # -- invariants -----------------------------------------------------------
    def check_invariants(self) -> None:
        self.inv_free_count_plus_in_flight_is_size()
        self.inv_free_list_is_a_permutation()

    def inv_free_count_plus_in_flight_is_size(self) -> None:
        in_flight = sum(len(b.descs) for b in self.bufs.values())
        if self.drv.num_free + in_flight != self.size:
            raise FreeCount(f"num_free {self.drv.num_free} + {in_flight} descriptors in "
                            f"flight != queue size {self.size}")

    def inv_free_list_is_a_permutation(self) -> None:
        free_list = getattr(self.drv, "free_list", None)
        if free_list is None:
            return      # a plug-in without the introspection hook
        fl = free_list()
        busy = {d for b in self.bufs.values() for d in b.descs}
        if len(set(fl)) != len(fl) or len(fl) != self.drv.num_free:
            raise FreeList(f"free list {fl} has duplicates or != num_free {self.drv.num_free}")
        if busy & set(fl) or any(not 0 <= d < self.size for d in fl):
            raise FreeList(f"free list {fl} holds descriptors in flight {sorted(busy)} "
                           f"or out of range")


class RingModel(_Model):
    """Driver and device of one queue in any interleaving, against a model of both."""

    def __init__(self, size, features, driver="reference", device="reference"):
        super().__init__(size, features, driver, device)
        self.avail_q: deque[int] = deque()      # added, not popped (avail order)
        self.popped: list = []                  # [token, chain] popped, not pushed
        self.used_q: deque = deque()            # (token, len, data) pushed, not reaped
        self.pushed = 0
        self.signalled = 0                      # pushed at the last needs_interrupt
        self.added_since_kick = 0
        self.dev_notify = True
        self.cb = "on"           # on | off | armed | delayed | prepared
        self.delayed_target = 0
        self.opaque = None
        self.prepare_reaped = 0

    # -- driver ops --------------------------------------------------------------
    def op_add(self, out, in_, kick=False):
        token = self._add(out, in_)
        if token is not None:
            self.avail_q.append(token)
            self.added_since_kick += 1
        if kick:
            self.op_kick()

    def op_cycle(self, out, in_, n, salt):
        """One round trip as a real workload does it: add+kick, pop, push with
        needs_interrupt, reap.  Dense sequences of these reach index states
        that single-step rules reach rarely."""
        self.op_add(out, in_, kick=True)
        self.op_pop()
        if self.popped:
            k = 0 if self.in_order else len(self.popped) - 1
            self.op_push(k, min(n, self.popped[k][1].writable_len), salt, signal=True)
        self.op_reap()

    def op_serve(self, n, salt):
        """The device's turn as vhost takes it: pop all, one batch, signal."""
        while self.avail_q:
            self.op_pop()
        self.op_pop()
        if self.popped:
            self.op_push_batch(len(self.popped), n, salt)
            self.op_needs_interrupt()

    def op_reap(self):
        """get_buf until None, as a driver's callback or poll loop does."""
        for _ in range(len(self.used_q) + 1):
            self.op_get_buf()

    def op_kick(self):
        added, self.added_since_kick = self.added_since_kick, 0
        if self.drv.kick_prepare():
            self.drv.notify()
            return
        if added and self._device_asks_for_kick(added):
            raise LostKick(f"kick_prepare() False after {added} add(s) although "
                           f"{'avail_event' if self.event else 'used.flags'} asks for a "
                           f"kick (2.7.10.1)")
        if added and self.dev_notify and 0 < len(self.avail_q) <= added:
            # 2.7.10: the device popped everything older with notifications on
            # (it is idle, waiting), so flags are 0 / avail_event is in the new
            # range, and the driver MUST notify: a lost kick otherwise.
            raise LostKick(f"kick_prepare() False after {added} add(s) while the device "
                           f"is idle, wants kicks and has {len(self.avail_q)} buffer(s) "
                           f"unseen")

    def _device_asks_for_kick(self, added: int) -> bool:
        """What the device published, read the way 2.7.10.1 tells the driver to."""
        mem, lay = self.mem, self.lay
        if not self.event:
            return not mem.read16(lay.used_flags) & VRING_USED_F_NO_NOTIFY
        new = mem.read16(lay.avail_idx)
        return need_event(mem.read16(lay.avail_event), new, (new - added) & 0xFFFF)

    def op_get_buf(self):
        r = self.drv.get_buf()
        if r is None:
            if self.used_q:
                raise Visibility(f"get_buf() None with {len(self.used_q)} used buffer(s) "
                                 f"published")
            if self.cb in ("on", "prepared"):
                # Reaped dry with callbacks on: get_buf kept used_event at
                # last_used (2.7.7.1), so the next used buffer must interrupt,
                # as for drivers that never disable callbacks (virtio-console).
                self.cb = "armed"
            return
        token, written = r
        if not self.used_q or self.used_q[0][0] != token:
            if token in self.bufs and all(t != token for t, _, _ in self.used_q):
                raise NotYetUsed(f"get_buf returned token {token} the device never used")
            if self.used_q and token in self.bufs:
                raise Ordering(f"get_buf returned token {token} before {self.used_q[0][0]} "
                               f"(used ring order{', IN_ORDER' if self.in_order else ''})")
        buf = self._reap(token, written)
        _, want_len, data = self.used_q.popleft()
        if written != want_len:
            raise WrittenLen(f"token {token}: written_len {written}, device pushed {want_len}")
        got = b"".join(self.mem.read(a, ln) for a, ln in buf.writable)[:written]
        if got != data[:written]:
            raise DataIntegrity(f"token {token}: the {written} bytes the device wrote "
                                f"did not arrive intact")
        self._free_buf(buf)
        if self.cb == "delayed":
            self.cb = "on"

    def op_disable_cb(self):
        self.drv.disable_cb()
        self.cb = "off"

    def op_enable_cb(self):
        r = self.drv.enable_cb()
        pending = self.pushed - self.reaped
        if r != (pending == 0):
            raise Recheck(f"enable_cb() {r} with {pending} used buffer(s) unseen")
        self.cb = "armed" if r else "on"

    def op_enable_cb_prepare(self):
        self.opaque = self.drv.enable_cb_prepare()
        self.prepare_reaped = self.reaped
        self.cb = "prepared"

    def op_poll(self):
        r = self.drv.poll(self.opaque)
        want = self.pushed != self.prepare_reaped
        if r != want:
            raise Recheck(f"poll() {r}, but {self.pushed - self.prepare_reaped} buffer(s) "
                          f"were used since enable_cb_prepare")
        if self.cb == "prepared":
            self.cb = "on" if r else "armed"

    def op_enable_cb_delayed(self):
        r = self.drv.enable_cb_delayed()
        pending = self.pushed - self.reaped
        if not r and pending == 0:
            raise Recheck("enable_cb_delayed() False with no used buffer unseen")
        if r:
            self.cb = "delayed"
            self.delayed_target = self.reaped + max(len(self.ledger), 1)
        else:
            self.cb = "on"

    # -- device ops --------------------------------------------------------------
    def op_pop(self):
        chain = self.dev.pop()
        if chain is None:
            if self.avail_q:
                raise Visibility(f"pop() None with {len(self.avail_q)} buffer(s) available")
            return
        if not self.avail_q:
            raise ChainIntact(f"pop() returned head {chain.head} with nothing available")
        token = self.avail_q.popleft()
        buf = self.bufs[token]
        if (chain.head, tuple(chain.readable), tuple(chain.writable)) != \
                (buf.head, buf.readable, buf.writable):
            raise ChainIntact(f"token {token}: device saw head {chain.head} "
                              f"r={list(chain.readable)} w={list(chain.writable)}, driver "
                              f"added head {buf.head} r={list(buf.readable)} "
                              f"w={list(buf.writable)}")
        if chain.read_all(self.mem) != pattern(token, sum(ln for _, ln in buf.readable)):
            raise DataIntegrity(f"token {token}: readable bytes changed on the way")
        self.popped.append([token, chain])

    def _write(self, k: int, n: int, salt: int):
        token, chain = self.popped[k]
        data = pattern(salt, n)
        if chain.write_all(self.mem, data) != n:
            raise LengthBound(f"token {token}: wrote fewer than {n} bytes")
        return token, chain, data

    def op_push(self, k, n, salt, signal=False):
        token, chain, data = self._write(k, n, salt)
        del self.popped[k]
        before = self.mem.read16(self.lay.used_idx)
        self.dev.push(chain.head, n)
        self.used_q.append((token, n, data))
        self.pushed += 1
        self._expect_published(before, 1)
        if signal:
            self.op_needs_interrupt()

    def op_push_batch(self, count, n, salt):
        """Push the `count` oldest popped buffers with one used idx update."""
        batch = []
        for i in range(count):
            token, chain = self.popped[i]
            # IN_ORDER (2.7.9): a batch's earlier buffers count as fully written.
            ln = n if i == count - 1 or not self.in_order else chain.writable_len
            ln = min(ln, chain.writable_len)
            _, _, data = self._write(i, ln, salt + i)
            batch.append((chain.head, ln))
            self.used_q.append((token, ln, data))
        del self.popped[:count]
        before = self.mem.read16(self.lay.used_idx)
        push_batch = getattr(self.dev, "push_batch", None)
        if push_batch is not None:
            push_batch(batch)
        else:
            for head, ln in batch:
                self.dev.push(head, ln)
        self.pushed += count
        self._expect_published(before, count)

    def _expect_published(self, before: int, count: int) -> None:
        """push returns a buffer: element, barrier, used idx (2.7.8.2).  A device
        that returns without moving used idx by as many buffers holds them back
        (an IN_ORDER device reordering completions does, 2.7.9)."""
        now = self.mem.read16(self.lay.used_idx)
        if (now - before) & 0xFFFF != count:
            raise Visibility(f"used idx {before} -> {now} after pushing {count} buffer(s): "
                             f"the device did not publish them")

    def op_needs_interrupt(self):
        r = self.dev.needs_interrupt()
        unseen = self.pushed - self.reaped
        old, new = self.signalled & 0xFFFF, self.pushed & 0xFFFF
        self.signalled = self.pushed
        if not r and old != new and self._driver_asks_for_interrupt(old, new):
            raise LostInterrupt(f"needs_interrupt() False after used idx {old} -> {new} "
                                f"although {'used_event' if self.event else 'avail.flags'} "
                                f"asks for an interrupt (2.7.7.2)")
        if r:
            if self.cb in ("armed", "delayed"):
                self.cb = "on"      # the callback ran; the driver must re-enable
            return
        if self.cb == "armed" and unseen:
            raise LostInterrupt(f"needs_interrupt() False with {unseen} used buffer(s) "
                                f"unseen while callbacks were armed (enable_cb() True, "
                                f"poll() False, or get_buf() ran dry with callbacks on)")
        if self.cb == "delayed" and unseen and self.pushed >= self.delayed_target:
            raise LostInterrupt(f"needs_interrupt() False after every buffer in flight at "
                                f"enable_cb_delayed() was used ({unseen} unseen)")

    def _driver_asks_for_interrupt(self, old: int, new: int) -> bool:
        """What the driver published, read the way 2.7.7.2 tells the device to."""
        mem, lay = self.mem, self.lay
        if not self.event:
            return not mem.read16(lay.avail_flags) & VRING_AVAIL_F_NO_INTERRUPT
        return need_event(mem.read16(lay.used_event), new, old)

    def op_disable_notify(self):
        self.dev.disable_notify()
        self.dev_notify = False

    def op_enable_notify(self):
        r = self.dev.enable_notify()
        self.dev_notify = True
        if r != bool(self.avail_q):
            raise Recheck(f"enable_notify() {r} with {len(self.avail_q)} buffer(s) available")

    def op_quiesce(self):
        """Teardown: the device drains everything, the driver reaps everything."""
        while self.avail_q:
            self.op_pop()
        self.op_pop()
        while self.popped:
            self.op_push(0, self.popped[0][1].writable_len, 7)
        self.op_needs_interrupt()
        while self.used_q:
            self.op_get_buf()
        self.op_get_buf()
        if len(self.ledger) or self.drv.num_free != self.size:
            raise FreeCount(f"quiescent with {len(self.ledger)} token(s) out and num_free "
                            f"{self.drv.num_free} != queue size {self.size}")
        if self.mem.allocated() != self.ring_bytes:
            raise Leak(f"quiescent with {self.mem.allocated() - self.ring_bytes} guest "
                       f"bytes allocated beyond the ring (indirect table leaked?)")

    # -- invariants ---------------------------------------------------------------
    def check_invariants(self) -> None:
        super().check_invariants()
        self.inv_suppression_flags_legal()

    def inv_suppression_flags_legal(self) -> None:
        """2.7.7.1 / 2.7.10.1: flags are 0 or 1, and exactly 0 with EVENT_IDX."""
        avail_flags = self.mem.read16(self.lay.avail_flags)
        used_flags = self.mem.read16(self.lay.used_flags)
        limit = 0 if self.event else 1
        if avail_flags > limit or used_flags > limit:
            raise FlagsRule(f"avail.flags {avail_flags}, used.flags {used_flags} "
                            f"(EVENT_IDX {'on' if self.event else 'off'})")


class HardeningModel(_Model):
    """The driver against a device that writes arbitrary used entries and used idx."""

    def __init__(self, size, features, driver="reference", device="reference"):
        super().__init__(size, features, driver, device)
        self.broken = False

    def op_add(self, out, in_, kick=False):
        was_broken = self.drv.broken
        token = self._add(out, in_)
        if token is not None and was_broken:
            raise Hardening(f"add_sgs accepted token {token} on a broken queue")
        if kick:
            self.drv.kick()

    def op_write_used(self, slot, id, len):
        elem = self.lay.used_ring(slot % self.size)
        self.mem.write32(elem, id)
        self.mem.write32(elem + 4, len)

    def op_complete(self, id, len, count):
        """A lying push: one used entry at the next slot, used idx moved by count."""
        self.op_write_used(self.reaped, id, len)
        self.op_set_used_idx((self.reaped + count) & 0xFFFF)

    def op_set_used_idx(self, value):
        self.mem.write16(self.lay.used_idx, value)

    def op_get_buf(self):
        try:
            r = self.drv.get_buf()
        except DeviceViolation as e:
            if not self.drv.broken:
                raise Hardening(f"get_buf raised {type(e).__name__} but broken is False") from e
            self.broken = True
            return
        except Exception as e:
            # h11's contract: the library's own error or nothing, never a crash.
            raise Hardening(f"get_buf raised {type(e).__name__}: {e}") from e
        if r is None:
            return
        if self.broken:
            raise Hardening(f"get_buf returned {r!r} after the queue was marked broken")
        self._free_buf(self._reap(*r))

    def op_kick(self):
        self.drv.kick()

    def op_enable_cb(self):
        self.drv.enable_cb()

    def op_disable_cb(self):
        self.drv.disable_cb()
