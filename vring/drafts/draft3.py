"""Draft III: the pull model Linux still ships, on the reference split ring.

Seed: a "get_inbuf() method: instead of the callback being passed information
about the used buffers, it (or any other code) can ask for them one at a time",
and "revert the lock centralization as well".  The shapes below are those of
Linux's virtio_net.c (skb_recv_done, virtnet_poll, virtqueue_napi_complete,
skb_xmit_done, start_xmit/free_old_xmit).

Theory of operation:
* Two virtqueues, built through the plug-in contract (cfg.driver / cfg.device,
  "reference" by default, so a third-party ring runs the same scenario): rx
  for input buffers, tx for output buffers; cfg.slots is the queue size.
* A callback carries no buffer and takes no lock.  The rx callback stops rx
  callbacks (disable_cb) and schedules NAPI; the tx callback stops tx callbacks
  and schedules TX reaping.  Scheduling is two-step, as napi_schedule_prep +
  __napi_schedule: claim the flag (only the winner calls disable_cb), then let
  the poll run — so a poll can never complete between the claim and disable_cb
  and leave callbacks off with nobody polling.
* napi_poll: get_buf under the driver's "rx" lock, up to the budget.  Under
  budget it completes as virtqueue_napi_complete does: enable_cb_prepare, clear
  the flags, then poll(opaque) — enable_cb's re-check (2.7.10, the seed's
  "enable_cb returns False") split in two so a callback in between sees the
  flag clear.  Buffers used meanwhile may raise no interrupt: take the flag
  back, disable_cb, poll again.  tx_complete reaps under "tx" the same way.
* xmit (submit of an out buffer) holds "tx" around reaping old completions,
  add_sgs and kick (free_old_xmit + start_xmit under netif_tx_lock); an RX
  refill (submit of an in buffer) holds "rx" around add_sgs and kick.
Locking is the driver's: "tx" and "rx" are never taken in the interrupt and
never held across a callback.
"""
from __future__ import annotations

from ..contract import build, setup_queue
from ..errors import InvalidRequest, QueueFull
from .workload import HDR_SIZE, OUT, Buffer, DraftConfig, parse_header, place, take_back

LOCKS = ("tx", "rx")


class Draft3Queue:
    """The net-like driver on two split rings, and their devices."""

    name = "draft3"

    def __init__(self, mem, platform, cfg: DraftConfig):
        self.mem = mem
        self.platform = platform
        qrx = setup_queue(mem, cfg.slots, cfg.features)
        qtx = setup_queue(mem, cfg.slots, cfg.features)
        self.rx = build(cfg.driver, "driver", mem, qrx, platform)
        self.tx = build(cfg.driver, "driver", mem, qtx, platform)
        self.rxdev = build(cfg.device, "device", mem, qrx, platform)
        self.txdev = build(cfg.device, "device", mem, qtx, platform)
        self.rx_lock = platform.lock("rx")
        self.tx_lock = platform.lock("tx")
        self._mine: dict[int, tuple[Buffer, int]] = {}     # token -> (buf, addr)
        # NAPI_STATE_SCHED (claimed by the callback or the poll) and "the poll may run".
        self._rx_claimed = self._tx_claimed = False
        self.napi_scheduled = False
        self.tx_scheduled = False
        self.delivered: list = []
        self._pending: dict[int, tuple[object, object]] = {}   # device: token -> (dev, chain)
        self.completed: list[int] = []
        self.received: dict[int, bytes] = {}

    # -- driver: adding -----------------------------------------------------------
    def submit(self, buf: Buffer) -> bool:
        addr = place(self.mem, buf)
        self._mine[buf.token] = (buf, addr)
        hdr = [(addr, HDR_SIZE)]
        data = [(addr + HDR_SIZE, buf.size)]
        if buf.direction == OUT:
            vq, lock, out, in_ = self.tx, self.tx_lock, hdr + data, []
        else:
            vq, lock, out, in_ = self.rx, self.rx_lock, hdr, data
        with lock:
            if vq is self.tx:
                self._reap_tx()             # free_old_xmit before start_xmit adds
            try:
                vq.add_sgs(out, in_, buf.token)
            except QueueFull:
                del self._mine[buf.token]
                self.mem.free(addr)
                return False
            vq.kick()
        return True

    # -- driver: callbacks (interrupt context, no lock) ---------------------------
    def _rx_callback(self) -> None:
        if not self._rx_claimed:
            self._rx_claimed = True
            self.rx.disable_cb()
            self._publish()
            self.napi_scheduled = True

    def _tx_callback(self) -> None:
        if not self._tx_claimed:
            self._tx_claimed = True
            self.tx.disable_cb()
            self._publish()
            self.tx_scheduled = True

    def _publish(self) -> None:
        """The NAPI_STATE_SCHED bit operations are fully ordered atomics
        (napi_schedule_prep, napi_complete_done): the poll, which may run on
        another CPU, sees every store made before the flag changed hands."""
        self.mem.mb()

    def interrupt(self) -> None:
        """One interrupt line for both queues (vp_interrupt): run both callbacks."""
        self._rx_callback()
        self._tx_callback()

    # -- driver: taking back ------------------------------------------------------
    def _deliver(self, token: int, length: int) -> None:
        buf, addr = self._mine.pop(token)
        self.delivered.append(take_back(self.mem, buf, addr, length))

    def _reap_tx(self) -> int:
        """Reap used output buffers ("tx" held)."""
        n = 0
        while (got := self.tx.get_buf()) is not None:
            self._deliver(*got)
            n += 1
        return n

    def napi_poll(self, budget: int) -> int:
        n = 0
        self._publish()
        while True:
            with self.rx_lock:
                while n < budget and (got := self.rx.get_buf()) is not None:
                    self._deliver(*got)
                    n += 1
                if n >= budget:
                    return n            # stay scheduled: the softirq polls again
                opaque = self.rx.enable_cb_prepare()
            self._publish()
            self.napi_scheduled = self._rx_claimed = False     # napi_complete_done
            if not self.rx.poll(opaque) or self._rx_claimed:
                return n                # nothing new, or the callback rescheduled us
            # Used meanwhile: no interrupt may come for it.  Poll again.
            self._rx_claimed = True
            self.rx.disable_cb()
            self._publish()
            self.napi_scheduled = True

    def tx_complete(self) -> int:
        n = 0
        self._publish()
        while True:
            with self.tx_lock:
                n += self._reap_tx()
                opaque = self.tx.enable_cb_prepare()
            self._publish()
            self.tx_scheduled = self._tx_claimed = False
            if not self.tx.poll(opaque) or self._tx_claimed:
                return n
            self._tx_claimed = True
            self.tx.disable_cb()
            self._publish()
            self.tx_scheduled = True

    def outstanding(self) -> int:
        return len(self._mine)

    # -- device ---------------------------------------------------------------------
    def device_fetch(self) -> int:
        n = 0
        # rmb: look at the rings only after the kick that woke us (a trapped
        # notification orders the driver's earlier stores before our loads).
        self.mem.rmb()
        for dev in (self.txdev, self.rxdev):
            while (chain := dev.pop()) is not None:
                raw = chain.read_all(self.mem)
                token, _latency = parse_header(raw[:HDR_SIZE])
                if not chain.writable:
                    self.received[token] = raw[HDR_SIZE:]
                self._pending[token] = (dev, chain)
                n += 1
        return n

    def device_pending(self) -> tuple[int, ...]:
        return tuple(self._pending)

    def device_complete(self, token: int, data: bytes = b"") -> None:
        if token not in self._pending:
            raise InvalidRequest(f"token {token} is not pending at the device")
        dev, chain = self._pending.pop(token)
        written = chain.write_all(self.mem, data[:chain.writable_len]) if chain.writable else 0
        dev.push(chain.head, written)
        self.completed.append(token)
        if dev.needs_interrupt():
            self.platform.interrupt()


def make(mem, platform, cfg: DraftConfig | None = None) -> Draft3Queue:
    return Draft3Queue(mem, platform, cfg if cfg is not None else DraftConfig())


__all__ = ["make", "LOCKS", "Draft3Queue"]
