"""blk: a virtio-blk-like request/response workload (Linux virtio_blk.c, simplified).

One queue "blk" (INDIRECT_DESC negotiated by default, so every request is one
ring slot pointing at an indirect table, 2.7.5.3).  A request is the chain
[header (readable, 16 bytes: type le32, token le32, sector le64)] [data:
readable for a write, writable for a read] [status (writable, 1 byte)]
(VIRTIO 1.2, 5.2.6 "Device Operation").

`submitters` tasks share the "blk" lock, taken irqsave because completion
runs in the interrupt callback under the same lock (virtblk_done).  Like
virtio_queue_rq, a submitter adds under the lock and calls kick_prepare there,
but notifies after dropping it.  On QueueFull it waits for a completion.

The device reads the header; for a write it checks the data is the pattern of
its address, for a read it fills the data with that pattern; then it writes
status 0 (VIRTIO_BLK_S_OK).  The completion side checks status and, for a
read, the data: the device wrote it before used idx, so it must be there.

Parameters: requests (per submitter), submitters, buf_len.
"""
from __future__ import annotations

import struct

from vring.errors import QueueFull

from ..oracles import DataIntegrity, check_data, pattern
from . import Scenario
from .net import device_loop

HDR = struct.Struct("<IIQ")
T_IN, T_OUT = 0, 1          # VIRTIO_BLK_T_IN (read), VIRTIO_BLK_T_OUT (write)


def _submit(w, q, tokens) -> None:
    st, n = w.state, w.params["buf_len"]
    lock = w.lock("blk")
    for token in tokens:
        hdr, data, status = st["req"][token]
        kind = T_OUT if token % 2 else T_IN
        w.mem.write(hdr, HDR.pack(kind, token, token * 8))
        if kind == T_OUT:
            w.mem.write(data, pattern(data, n))
            out, in_ = [(hdr, HDR.size), (data, n)], [(status, 1)]
        else:
            out, in_ = [(hdr, HDR.size)], [(data, n), (status, 1)]
        while True:
            lock.acquire(irqsave=True)
            try:
                q.add(out, in_, token)
            except QueueFull:
                mark = st["done"]
                lock.release()
                w.wait("wait-interrupt blk-full", lambda: st["done"] > mark)
                continue
            kick = q.drv.kick_prepare()
            lock.release()
            if kick:
                q.drv.notify()
            break
    mine = set(tokens)
    w.wait("wait-interrupt blk-done", lambda: q.ledger.none_outstanding(mine))


def _complete(w, q) -> None:
    """virtblk_done: under the lock, take back every finished request."""
    st, n = w.state, w.params["buf_len"]
    lock = w.lock("blk")
    lock.acquire()
    while True:
        r = q.get()
        if r is None:
            break
        token, written = r
        hdr, data, status = st["req"][token]
        if w.mem.read(status, 1) != b"\0":
            raise DataIntegrity(f"request {token}: status byte is not VIRTIO_BLK_S_OK")
        if token % 2 == 0:
            check_data(data, w.mem.read(data, n), n, "read data")
        st["done"] += 1
    lock.release()


def _serve(w):
    n = w.params["buf_len"]

    def serve(chain):
        kind, token, _sector = HDR.unpack(w.mem.read(*chain.readable[0]))
        status_addr = chain.writable[-1][0]
        if kind == T_OUT:
            addr, ln = chain.readable[1]
            check_data(addr, w.mem.read(addr, ln), ln, "write data")
            written = 0
        else:
            addr, ln = chain.writable[0]
            w.mem.write(addr, pattern(addr, ln))
            written = ln
        w.mem.write(status_addr, b"\0")
        return written + 1
    return serve


def build(w) -> None:
    p, st = w.params, w.state
    q = w.queue("blk")
    per, n = p["requests"], p["buf_len"]
    total = per * p["submitters"]
    st["done"] = 0
    st["req"] = [(w.buffer(HDR.size), w.buffer(n), w.buffer(1)) for _ in range(total)]
    w.on_interrupt(lambda: _complete(w, q))
    for k in range(p["submitters"]):
        w.task(f"sub{k}", _submit, w, q, list(range(k * per, (k + 1) * per)))
    w.task("dev-blk", device_loop, q, _serve(w), side="device", daemon=True)


SCENARIOS = [
    Scenario("blk", __doc__.split("\n\n")[0], build,
             {"requests": 3, "submitters": 2, "buf_len": 16, "features": "indirect"}),
]
