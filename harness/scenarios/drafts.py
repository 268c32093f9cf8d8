"""drafts: the seed's three virtio API drafts (vring/drafts) under the scheduler.

One DraftQueue per run, driven through the drafts' common interface
(vring/drafts/__init__.py) by these tasks:

* "xmit": submits the workload's buffers in order (TX sends and RX refills);
  when submit says "no room" it waits for a delivery and retries.
* "irq": the platform's interrupt task runs the draft's interrupt() once per
  coalesced interrupt.
* "napi" / "txc": run napi_poll(budget) / tx_complete() while the interrupt
  asked for them, until every buffer was delivered.
* "device" (daemon): fetches what was made available (waiting for a kick when
  there is nothing), then completes pending buffers in the workload's
  completion plan ("latency" by default: a device that finishes requests out
  of order, which is what breaks draft I).

After every delivering operation the drafts' own pure checks run on what was
delivered so far (workload.check_all, not complete), so the failing step is
the delivery that broke the rule.  Expected outcomes: draft1 "ordering";
draft2 "lockdep:..." or "deadlock" naming the virtio lock and the callback;
draft3 clean.

Parameters: draft, buffers, slots, budget, completion, workload_seed.
"""
from __future__ import annotations

import functools

from .. import oracles
from ..world import LockingPlatform
from . import Scenario

_ORACLES = {"exactly-once": oracles.ExactlyOnce, "ordering": oracles.Ordering,
            "data-integrity": oracles.DataIntegrity}


def _check(w, q, complete: bool = False) -> None:
    from vring.drafts import check_all
    wl = w.state["workload"]
    for v in check_all(wl, q.completed, q.delivered, q.received, complete=complete):
        raise _ORACLES.get(v.oracle, oracles.OracleFailure)(f"{w.params['draft']}: {v.message}")


def _finished(w, q) -> bool:
    st = w.state
    return st["submitted"] == len(st["workload"].buffers) and not q.outstanding()


def _xmit(w, q) -> None:
    st = w.state
    for buf in st["workload"].buffers:
        while not q.submit(buf):
            mark = len(q.delivered)
            w.wait("wait-interrupt room", lambda: len(q.delivered) > mark)
        st["submitted"] += 1
    w.wait("wait-interrupt done", lambda: _finished(w, q))


def _napi(w, q) -> None:
    budget = w.params["budget"]
    while True:
        w.wait("wait-interrupt napi", lambda: q.napi_scheduled or _finished(w, q))
        if not q.napi_scheduled:
            return
        q.napi_poll(budget)
        _check(w, q)


def _txc(w, q) -> None:
    while True:
        w.wait("wait-interrupt tx", lambda: q.tx_scheduled or _finished(w, q))
        if not q.tx_scheduled:
            return
        q.tx_complete()
        _check(w, q)


def _irq(w, q) -> None:
    q.interrupt()
    _check(w, q)


def _device(w, q) -> None:
    from vring.drafts import completion_plan
    from vring.drafts.workload import IN
    wl, order = w.state["workload"], w.params["completion"]
    if "in_order" in w.params["features"]:
        order = "fifo"              # 2.7.9: an IN_ORDER device completes in order
    known = wl.by_token()
    plat = w.platform
    while True:
        seen = plat.kicks
        q.device_fetch()
        pending = q.device_pending()
        if not pending:
            w.wait("wait-kick draft", lambda: plat.kicks > seen)
            continue
        for token in completion_plan(pending, order, wl):
            buf = known[token]
            q.device_complete(token, buf.payload if buf.direction == IN else b"")


def build(w) -> None:
    from vring.drafts import DraftConfig, load
    from vring.features import parse_features

    p = w.params
    draft = load(p["draft"])
    cfg = DraftConfig(slots=p["slots"], budget=p["budget"],
                      features=parse_features(p["features"]),
                      driver=p["driver"], device=p["device"])
    q = draft.make(w.mem, LockingPlatform(w), cfg)
    w.state.update(workload=_workload(p["buffers"], p["workload_seed"]), submitted=0,
                   draft=q)
    w.end_checks.append(lambda: _end(w, q))
    w.on_interrupt(lambda: _irq(w, q))
    w.task("xmit", _xmit, w, q)
    w.task("napi", _napi, w, q)
    w.task("txc", _txc, w, q)
    w.task("device", _device, w, q, side="device", daemon=True)


@functools.lru_cache(maxsize=32)
def _workload(n: int, seed: int):
    """make_workload is pure and its Workload a frozen value: drawn once per (n, seed)."""
    from vring.drafts import make_workload
    return make_workload(n, seed)


def _end(w, q) -> None:
    """At the end (or quiescence): everything delivered, in order, intact."""
    if q.outstanding():
        done = len(q.completed)
        delivered = len(q.delivered)
        if done > delivered:
            raise oracles.LostInterrupt(f"{w.params['draft']}: {done - delivered} completed "
                                        f"buffer(s) never delivered")
        raise oracles.LostKick(f"{w.params['draft']}: {q.outstanding()} buffer(s) never "
                               f"completed by the device")
    _check(w, q, complete=True)


_DEFAULTS = {"draft": "draft3", "buffers": 8, "slots": 4, "budget": 2,
             "completion": "latency", "workload_seed": 1}

SCENARIOS = [
    Scenario("drafts", __doc__.split("\n\n")[0], build, dict(_DEFAULTS)),
    Scenario("draft1", "draft I: used pointers scanned in slot order", build,
             {**_DEFAULTS, "draft": "draft1"}),
    Scenario("draft2", "draft II: lock-held per-buffer callbacks + NAPI", build,
             {**_DEFAULTS, "draft": "draft2"}),
    Scenario("draft3", "draft III: get_buf pull model with enable_cb re-check", build,
             {**_DEFAULTS, "draft": "draft3"}),
]
