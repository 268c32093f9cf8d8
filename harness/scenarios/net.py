"""net: a virtio-net-like workload (Linux drivers/net/virtio_net.c, simplified).

TX queue "tx": `submitters` tasks each send `tx_buffers` packets under the tx
lock (taken irqsave: the interrupt callback takes it too, and lockdep's
irq-unsafe rule would report a plain acquire).  When the ring is full a
submitter reaps completions itself, then asks for a delayed interrupt
(enable_cb_delayed) and waits; otherwise completions are reaped by the
interrupt callback, under the tx lock.

RX queue "rx": a refill task posts receive buffers and kicks; the interrupt
callback, like skb_recv_done + virtqueue_napi_schedule, disables callbacks
and schedules NAPI; the poll task receives up to `budget` buffers per round
(refilling under the rx lock) and, under budget, completes NAPI: it clears
"scheduled" first, then enable_cb(); False means buffers arrived meanwhile,
so it disables callbacks and polls again: the draft III re-check.

Device tasks (one per queue, daemons) work like vhost: disable_notify while
processing, enable_notify and re-check when the ring looks empty, wait for a
kick only then; after each push needs_interrupt() decides the interrupt.

Parameters: tx_buffers, rx_packets, submitters, budget, buf_len, tx, rx.
"""
from __future__ import annotations

from vring.errors import QueueFull

from ..oracles import check_data, pattern
from . import Scenario


def device_loop(q, serve) -> None:
    """vhost's handle_tx/handle_rx shape: serve(chain) -> written_len."""
    while True:
        chain = q.pop()
        if chain is None:
            # Count kicks before the re-check: one sent after it wakes us.
            seen = q.platform.kicks
            if q.dev.enable_notify():
                # Buffers arrived between our last pop and re-enabling: take them.
                q.dev.disable_notify()
                continue
            q.platform.wait_kick(seen)
            q.dev.disable_notify()
            continue
        q.push(chain, serve(chain))


# --- TX ---------------------------------------------------------------------------

def _reap_tx(w, q) -> None:
    """free_old_xmit: take back every sent buffer (caller holds the tx lock)."""
    while q.get() is not None:
        pass
    w.state["tx_reaped"] += 1


def _tx_submit(w, q, tokens) -> None:
    lock = w.lock("tx")
    n = w.params["buf_len"]
    for token in tokens:
        addr = w.state["addr"][token]
        w.mem.write(addr, pattern(addr, n))
        while True:
            lock.acquire(irqsave=True)
            _reap_tx(w, q)
            try:
                q.add([(addr, n)], [], token)
            except QueueFull:
                # Ring full: ask for an interrupt when most of it is used, then
                # wait for the callback to reap (virtio_net stops the queue).
                if not q.drv.enable_cb_delayed():
                    lock.release()
                    continue                       # more were used meanwhile: reap
                mark = w.state["tx_reaped"]
                lock.release()
                w.wait("wait-interrupt tx-full", lambda: w.state["tx_reaped"] > mark)
                continue
            q.drv.kick()
            lock.release()
            break
    mine = set(tokens)
    w.wait("wait-interrupt tx-done",
           lambda: not mine.intersection(q.ledger.outstanding()))


def _tx_callback(w, q) -> None:
    lock = w.lock("tx")
    lock.acquire()
    _reap_tx(w, q)
    lock.release()


def _tx_serve(w, q):
    def serve(chain):
        data = chain.read_all(w.mem)
        check_data(chain.readable[0][0], data, len(data), "tx packet")
        return 0
    return serve


# --- RX ---------------------------------------------------------------------------

def _rx_fill(w, q) -> None:
    """try_fill_recv: post buffers while the ring has room (caller holds rx)."""
    st = w.state
    added = False
    while st["rx_posted"] < w.params["rx_packets"]:
        token = st["rx_posted"]
        try:
            q.add([], [(st["rx_addr"][token], w.params["buf_len"])], token)
        except QueueFull:
            break
        st["rx_posted"] += 1
        added = True
    if added:
        q.drv.kick()


def _rx_refill(w, q) -> None:
    lock = w.lock("rx")
    lock.acquire()
    _rx_fill(w, q)
    lock.release()


def _rx_callback(w, q) -> None:
    st = w.state
    if st["napi"]:                        # napi_schedule_prep fails: NAPIF_STATE_MISSED
        st["missed"] = True
    else:
        # virtqueue_napi_schedule: claim NAPI, disable callbacks, and only then
        # let the poll run (__napi_schedule), so the two never race on the flags.
        st["napi"] = True
        q.drv.disable_cb()
        w.mem.mb()      # __napi_schedule's test_and_set_bit: a full barrier (release)
        st["run"] = True


def _rx_poll(w, q) -> None:
    st, budget, total = w.state, w.params["budget"], w.params["rx_packets"]
    lock = w.lock("rx")
    while q.ledger.returned < total:
        w.wait("wait-interrupt napi", lambda: st["run"])
        lock.acquire()
        got = 0
        while got < budget:
            r = q.get()
            if r is None:
                break
            token, written = r
            addr = st["rx_addr"][token]
            check_data(addr, w.mem.read(addr, written), written, "rx packet")
            got += 1
        _rx_fill(w, q)
        lock.release()
        if got < budget:
            # virtqueue_napi_complete = enable_cb() split around napi_complete_done:
            # callbacks go on while NAPI is still scheduled (so the interrupt
            # callback cannot disable_cb concurrently), then the re-check; False
            # from enable_cb means buffers are pending: disable_cb, poll again.
            opaque = q.drv.enable_cb_prepare()
            if st["missed"]:              # napi_complete_done returns false
                st["missed"] = False
                continue
            st["run"] = st["napi"] = False
            if q.drv.poll(opaque) and not st["napi"]:
                st["napi"] = True
                q.drv.disable_cb()
                st["run"] = True


def _rx_serve(w, q):
    def serve(chain):
        addr, ln = chain.writable[0]
        return chain.write_all(w.mem, pattern(addr, chain.writable_len))
    return serve


# --- build --------------------------------------------------------------------

def build(w) -> None:
    p, st = w.params, w.state
    if p["tx"]:
        tx = w.queue("tx")
        n, per = p["buf_len"], p["tx_buffers"]
        st["tx_reaped"] = 0
        st["addr"] = {t: w.buffer(n) for t in range(per * p["submitters"])}
        w.on_interrupt(lambda: _tx_callback(w, tx))
        for k in range(p["submitters"]):
            w.task(f"tx{k}", _tx_submit, w, tx, list(range(k * per, (k + 1) * per)))
        w.task("dev-tx", device_loop, tx, _tx_serve(w, tx), side="device", daemon=True)
    if p["rx"]:
        rx = w.queue("rx")
        st.update(napi=False, run=False, missed=False, rx_posted=0,
                  rx_addr=[w.buffer(p["buf_len"]) for _ in range(p["rx_packets"])])
        w.on_interrupt(lambda: _rx_callback(w, rx))
        w.task("refill", _rx_refill, w, rx)
        w.task("napi", _rx_poll, w, rx)
        w.task("dev-rx", device_loop, rx, _rx_serve(w, rx), side="device", daemon=True)


_DEFAULTS = {"tx_buffers": 4, "rx_packets": 6, "submitters": 2, "budget": 2, "buf_len": 16,
             "tx": True, "rx": True}

SCENARIOS = [
    Scenario("net", __doc__.split("\n\n")[0], build, dict(_DEFAULTS)),
    Scenario("net-tx", "net, TX queue only", build, {**_DEFAULTS, "rx": False}),
    Scenario("net-rx", "net, RX queue only", build, {**_DEFAULTS, "tx": False}),
]
