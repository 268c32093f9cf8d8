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

Parameters: tx_buffers, rx_packets, submitters, budget, buf_len, tx, rx,
napi_cpus (how many CPUs may run the NAPI poll; NAPI's SCHED bit keeps one
at a time, "net-napi2" has two).

Bug zoo faults (harness/bugs, class "callback" and "locking") live here, each
a small change guarded by `params["bug"] == NAME`, so the correct code stays
the default and each fault reads as the one line that went wrong.  Oracle
owned here: "vq-serialised", a task entering add/get_buf of a queue while
another task is inside one (the virtio API leaves serialising a virtqueue
to its caller: Linux virtio_ring.c "the caller must ensure we don't call
this with other virtqueue operations at the same time").
"""
from __future__ import annotations

from vring.errors import QueueFull

from ..oracles import OracleFailure, check_data, pattern
from . import Scenario


class Unserialised(OracleFailure):
    oracle = "vq-serialised"


class ChainIntact(OracleFailure):
    oracle = "chain-intact"


def _expect_chain(chain, addrs, n: int, writable: bool, what: str) -> None:
    """The device popped one of the chains the driver made available: a single
    buffer of ours, with the right direction (2.7.13.3.1: descriptors and
    ring entry are visible before idx).  A stale table entry fails here."""
    bufs = chain.writable if writable else chain.readable
    other = chain.readable if writable else chain.writable
    if len(bufs) != 1 or other or bufs[0][0] not in addrs or bufs[0][1] != n:
        raise ChainIntact(f"{what}: device popped head {chain.head} with readable "
                          f"{list(chain.readable)} writable {list(chain.writable)}, "
                          f"not a chain the driver made available")


class _Exclusive:
    """Marks a task inside a driver data-path op of one queue; a second task
    entering meanwhile is the bug (two contexts operating one virtqueue)."""

    def __init__(self, w, q, op: str):
        self.inside, self.key, self.op = w.state.setdefault("inside", {}), q.name, op
        cur = w.sched.current
        self.me = w.task_names.get(cur.id, str(cur.id)) if cur is not None else "main"

    def __enter__(self):
        other = self.inside.get(self.key)
        if other is not None and other[0] != self.me:
            raise Unserialised(f"{self.key}: {self.me} entered {self.op} while {other[0]} "
                               f"is inside {other[1]} (callers must serialise a virtqueue)")
        self.inside[self.key] = (self.me, self.op)
        return self

    def __exit__(self, *exc):
        if self.inside.get(self.key, (None,))[0] == self.me:
            del self.inside[self.key]


def _get(w, q):
    with _Exclusive(w, q, "get_buf"):
        return q.get()


def _add(w, q, out, in_, token) -> None:
    with _Exclusive(w, q, "add_sgs"):
        q.add(out, in_, token)


def _enable_cb_prepare(w, q) -> int:
    # Serialised like add/get (disable_cb and poll need not be, virtio_ring.c).
    with _Exclusive(w, q, "enable_cb_prepare"):
        return q.drv.enable_cb_prepare()


def _bug(w) -> str | None:
    return w.params.get("bug")


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
    while _get(w, q) is not None:
        pass
    w.state["tx_reaped"] += 1


def _tx_submit(w, q, tokens) -> None:
    lock = w.lock("tx")
    n = w.params["buf_len"]
    bug = _bug(w)
    # irq-lock-without-irqsave: spin_lock instead of spin_lock_irqsave for a
    # lock the interrupt callback also takes (lockdep: irq-safe vs irq-unsafe).
    irqsave = bug != "irq-lock-without-irqsave"
    for token in tokens:
        addr = w.state["addr"][token]
        w.mem.write(addr, pattern(addr, n))
        while True:
            lock.acquire(irqsave=irqsave)
            if bug == "abba-tx-rx-locks":
                # Reaping also recycles rx pages: takes rx under tx (refill
                # takes tx under rx: ABBA).
                w.lock("rx").acquire(irqsave=True)
                _reap_tx(w, q)
                w.lock("rx").release()
            else:
                _reap_tx(w, q)
            ring = w.lock("tx-vq") if bug == "callback-under-ring-lock" else None
            if ring is not None:
                ring.acquire(irqsave=True)   # draft II: the virtio layer's own lock
            try:
                _add(w, q, [(addr, n)], [], token)
            except QueueFull:
                # Ring full: ask for an interrupt when most of it is used, then
                # wait for the callback to reap (virtio_net stops the queue).
                if ring is not None:
                    ring.release()
                if not q.drv.enable_cb_delayed():
                    lock.release()
                    continue                       # more were used meanwhile: reap
                mark = w.state["tx_reaped"]
                lock.release()
                w.wait("wait-interrupt tx-full", lambda: w.state["tx_reaped"] > mark)
                continue
            q.drv.kick()
            if ring is not None:
                ring.release()
            lock.release()
            break
    mine = set(tokens)
    w.wait("wait-interrupt tx-done",
           lambda: q.ledger.none_outstanding(mine))


def _tx_callback(w, q) -> None:
    bug = _bug(w)
    if bug == "tx-reap-without-lock":
        # Reaps from the interrupt path without the tx lock, while xmit adds
        # under it (Linux 5a2f966d0f3f moved this under the tx queue lock).
        _reap_tx(w, q)
        return
    ring = w.lock("tx-vq") if bug == "callback-under-ring-lock" else None
    if ring is not None:
        ring.acquire()     # draft II: the callback runs under the virtio layer's lock
    lock = w.lock("tx")
    lock.acquire()
    _reap_tx(w, q)
    lock.release()
    if ring is not None:
        ring.release()


def _tx_serve(w, q):
    addrs = frozenset(w.state["addr"].values())

    def serve(chain):
        _expect_chain(chain, addrs, w.params["buf_len"], False, "tx")
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
            _add(w, q, [], [(st["rx_addr"][token], w.params["buf_len"])], token)
        except QueueFull:
            break
        st["rx_posted"] += 1
        added = True
    if added:
        q.drv.kick()


def _rx_refill(w, q) -> None:
    lock = w.lock("rx")
    lock.acquire()
    tx = w.lock("tx") if _bug(w) == "abba-tx-rx-locks" else None
    if tx is not None:
        tx.acquire(irqsave=True)      # refill under rx also takes tx: the B of ABBA
    _rx_fill(w, q)
    if tx is not None:
        tx.release()
    lock.release()
    w.state["opened"] = True


def _rx_callback(w, q) -> None:
    st = w.state
    if st["napi"]:                        # napi_schedule_prep fails: NAPIF_STATE_MISSED
        st["missed"] = True
    elif _bug(w) == "napi-schedule-before-disable-cb":
        # The poll may run, finish and re-enable callbacks before this
        # disable_cb lands: callbacks stay off with NAPI idle.
        st["napi"] = True
        w.mem.mb()
        st["run"] = True
        q.drv.disable_cb()
    else:
        # virtqueue_napi_schedule: claim NAPI, disable callbacks, and only then
        # let the poll run (__napi_schedule), so the two never race on the flags.
        st["napi"] = True
        q.drv.disable_cb()
        w.mem.mb()      # __napi_schedule's test_and_set_bit: a full barrier (release)
        st["run"] = True


def _napi_claim(w, q, me: str) -> bool:
    """This CPU starts the scheduled poll (NAPI_STATE_SCHED keeps one CPU at a
    time); False when every buffer came back and there is nothing to poll."""
    st, total = w.state, w.params["rx_packets"]
    # NAPI is enabled only once the open-time refill is done (virtnet_open:
    # try_fill_recv, then virtnet_napi_enable), so no poll races that refill.
    while st["owner"] != me:
        w.wait("wait-interrupt napi", lambda: (st["run"] and st["owner"] is None
                                               and st["opened"])
               or q.ledger.returned >= total)
        if q.ledger.returned >= total:
            return False
        if st["run"] and st["owner"] is None:   # no other CPU took it meanwhile
            st["owner"] = me
    return True


def _napi_complete(st) -> None:
    st["run"] = st["napi"] = False
    st["owner"] = None


def _rx_poll(w, q, me: str = "napi") -> None:
    st, budget, total = w.state, w.params["budget"], w.params["rx_packets"]
    lock = w.lock("rx")
    bug = _bug(w)
    while q.ledger.returned < total:
        if not _napi_claim(w, q, me):
            break
        lock.acquire()
        got = 0
        while got < budget:
            r = _get(w, q)
            if r is None:
                break
            token, written = r
            addr = st["rx_addr"][token]
            check_data(addr, w.mem.read(addr, written), written, "rx packet")
            got += 1
        _rx_fill(w, q)
        lock.release()
        if got < budget and bug == "napi-complete-without-enable":
            _napi_complete(st)        # callbacks stay disabled: nothing wakes us again
            st["missed"] = False
        elif got < budget and bug == "enable-cb-after-napi-complete":
            # Before Linux cbdadbbf0c79: napi_complete, then enable_cb, so
            # another CPU's poll can run meanwhile and this CPU's used_event
            # store (from a stale last_used) moves it backwards.
            _napi_complete(st)
            st["missed"] = False
            with _Exclusive(w, q, "enable_cb"):   # virtqueue_enable_cb: serialised
                pending = not q.drv.enable_cb()
            if pending and not st["napi"]:
                st["napi"] = True
                q.drv.disable_cb()
                st["run"] = True
        elif got < budget:
            # virtqueue_napi_complete = enable_cb() split around napi_complete_done:
            # callbacks go on while NAPI is still scheduled (so the interrupt
            # callback cannot disable_cb concurrently), then the re-check; False
            # from enable_cb means buffers are pending: disable_cb, poll again.
            opaque = _enable_cb_prepare(w, q)
            if st["missed"]:              # napi_complete_done returns false
                st["missed"] = False
                continue
            _napi_complete(st)
            if q.drv.poll(opaque) and not st["napi"]:
                st["napi"] = True
                q.drv.disable_cb()
                st["run"] = True


def _rx_serve(w, q):
    addrs = frozenset(w.state["rx_addr"])

    def serve(chain):
        _expect_chain(chain, addrs, w.params["buf_len"], True, "rx")
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
        st.update(napi=False, run=False, missed=False, rx_posted=0, owner=None, opened=False,
                  rx_addr=[w.buffer(p["buf_len"]) for _ in range(p["rx_packets"])])
        w.on_interrupt(lambda: _rx_callback(w, rx))
        w.task("refill", _rx_refill, w, rx)
        for cpu in range(p.get("napi_cpus", 1)):
            name = "napi" if cpu == 0 else f"napi{cpu}"
            w.task(name, _rx_poll, w, rx, name)
        w.task("dev-rx", device_loop, rx, _rx_serve(w, rx), side="device", daemon=True)


_DEFAULTS = {"tx_buffers": 4, "rx_packets": 6, "submitters": 2, "budget": 2, "buf_len": 16,
             "tx": True, "rx": True, "napi_cpus": 1}

SCENARIOS = [
    Scenario("net", __doc__.split("\n\n")[0], build, dict(_DEFAULTS)),
    Scenario("net-tx", "net, TX queue only", build, {**_DEFAULTS, "rx": False}),
    Scenario("net-rx", "net, RX queue only", build, {**_DEFAULTS, "tx": False}),
    Scenario("net-napi2", "net, RX queue only, NAPI poll may run on two CPUs", build,
             {**_DEFAULTS, "tx": False, "napi_cpus": 2}),
]
