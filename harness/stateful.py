"""Hypothesis state machines over one split virtqueue, replayable without Hypothesis.

Rules and theory of operation:

* A *model* (RingModel, HardeningModel) owns one queue built through the
  plug-in contract (`vring.open_queue`, so `--driver/--device M:C` work) and
  applies *operations*: a rule name plus JSON-able arguments.  Every operation
  is recorded in `model.ops` before it runs, then the model checks its
  invariants.  The Hypothesis machines only draw arguments and call
  `model.apply`; `replay_ops(doc)` applies a recorded list the same way, so a
  shrunk failing program replays bit for bit in any process (no hash(), no
  clock, no RNG: tokens count up, payloads come from `oracles.pattern`).
* A failed property raises an `oracles.OracleFailure` named for it; a spec
  violation either side reports raises its vring leaf; `oracles.finding_for`
  names both.  The exception carries `stateful_ops`, the program that led to it.
* Sequential memory (plain GuestMemory): every store is visible at once, so
  the notification checks are exact: after enable_cb() returned True the next
  needs_interrupt() with unseen used buffers must say True (2.7.7, 2.7.10 of
  VIRTIO 1.2), and kick_prepare() may say False after an add only when the
  device asked not to be notified or already knows of the work.
"""
from __future__ import annotations

from hypothesis import strategies as st
from hypothesis.stateful import (RuleBasedStateMachine, initialize, precondition,
                                 rule)

from .oracles import finding_for
from .result import Finding
from .stateful_driver import MaliciousDriverModel
from .stateful_models import (FEATURES, MAX_ELEMS, MAX_LEN, SIZES, HardeningModel,
                              RingModel, _Model, features_word)


# --- the Hypothesis machines ---------------------------------------------------------

_LENS = st.integers(0, MAX_LEN)
_OUT = st.lists(_LENS, min_size=1, max_size=MAX_ELEMS)
_IN = st.lists(_LENS, min_size=0, max_size=MAX_ELEMS)
_FEATURES = st.sets(st.sampled_from(sorted(FEATURES)))


class _Machine(RuleBasedStateMachine):
    driver_spec = "reference"
    device_spec = "reference"
    counter: list | None = None     # the engine's example count, if any
    model_class: type = _Model

    def __init__(self):
        super().__init__()
        self.model = None
        if self.counter is not None:
            self.counter[0] += 1

    @initialize(size=st.sampled_from(SIZES), features=_FEATURES)
    def init_queue(self, size, features):
        self.model = self.model_class(size, features_word(sorted(features)),
                                      self.driver_spec, self.device_spec)

    @rule(out=_OUT, in_=_IN, kick=st.booleans())
    def add(self, out, in_, kick):
        size = self.model.size
        out = out[:size]
        self.model.apply("add", out=out, in_=in_[:size - len(out)], kick=kick)

    @rule()
    def kick(self):
        self.model.apply("kick")

    @rule()
    def get_buf(self):
        self.model.apply("get_buf")

    @rule()
    def disable_cb(self):
        self.model.apply("disable_cb")

    @rule()
    def enable_cb(self):
        self.model.apply("enable_cb")


class RingMachine(_Machine):
    """Driver and device operations in any order; see RingModel for the checks."""

    model_class = RingModel

    @rule(out=_OUT, in_=_IN, n=_LENS, salt=st.integers(0, 255))
    def cycle(self, out, in_, n, salt):
        size = self.model.size
        out = out[:size]
        self.model.apply("cycle", out=out, in_=in_[:size - len(out)], n=n, salt=salt)

    @rule(n=_LENS, salt=st.integers(0, 255))
    def serve(self, n, salt):
        self.model.apply("serve", n=n, salt=salt)

    @rule()
    def reap(self):
        self.model.apply("reap")

    @rule()
    def enable_cb_prepare(self):
        self.model.apply("enable_cb_prepare")

    @precondition(lambda self: self.model.opaque is not None)
    @rule()
    def poll(self):
        self.model.apply("poll")

    @rule()
    def enable_cb_delayed(self):
        self.model.apply("enable_cb_delayed")

    @rule()
    def pop(self):
        self.model.apply("pop")

    @precondition(lambda self: self.model.popped)
    @rule(data=st.data())
    def push(self, data):
        m = self.model
        k = 0 if m.in_order else data.draw(st.integers(0, len(m.popped) - 1), label="k")
        wl = m.popped[k][1].writable_len
        n = data.draw(st.one_of(st.just(wl), st.integers(0, wl)), label="n")
        m.apply("push", k=k, n=n, salt=data.draw(st.integers(0, 255), label="salt"),
                signal=data.draw(st.booleans(), label="signal"))

    @precondition(lambda self: self.model.popped)
    @rule(data=st.data())
    def push_batch(self, data):
        m = self.model
        count = data.draw(st.integers(1, len(m.popped)), label="count")
        wl = m.popped[count - 1][1].writable_len
        n = data.draw(st.integers(0, wl), label="n")
        m.apply("push_batch", count=count, n=n, salt=data.draw(st.integers(0, 255), label="salt"))

    @rule()
    def needs_interrupt(self):
        self.model.apply("needs_interrupt")

    @rule()
    def disable_notify(self):
        self.model.apply("disable_notify")

    @rule()
    def enable_notify(self):
        self.model.apply("enable_notify")

    def teardown(self):
        if self.model is not None and not self.model.failed:
            self.model.apply("quiesce")


class MaliciousDeviceMachine(_Machine):
    """The driver's hardening: arbitrary used entries and used idx between calls."""

    model_class = HardeningModel

    @rule(data=st.data())
    def write_used(self, data):
        m = self.model
        heads = sorted(b.head for b in m.bufs.values())
        ids = st.integers(0, m.size + 2) | st.just(0xFFFFFFFF)
        if heads:
            ids = st.sampled_from(heads) | ids
        m.apply("write_used", slot=data.draw(st.integers(0, m.size - 1), label="slot"),
                id=data.draw(ids, label="id"),
                len=data.draw(st.integers(0, 2 * MAX_LEN) | st.just(0xFFFFFFFF), label="len"))

    @rule(data=st.data())
    def complete(self, data):
        m = self.model
        heads = sorted(b.head for b in m.bufs.values())
        ids = st.integers(0, m.size + 2) | st.just(0xFFFFFFFF)
        if heads:
            ids = st.sampled_from(heads) | ids
        m.apply("complete", id=data.draw(ids, label="id"),
                len=data.draw(st.integers(0, 2 * MAX_LEN) | st.just(0xFFFFFFFF), label="len"),
                count=data.draw(st.integers(0, m.size + 1), label="count"))

    @rule(data=st.data())
    def set_used_idx(self, data):
        m = self.model
        near = st.integers(-2, m.size + 2).map(lambda d: (m.reaped + d) & 0xFFFF)
        m.apply("set_used_idx", value=data.draw(near | st.integers(0, 0xFFFF), label="value"))


def machine_for(kind: str, driver: str = "reference", device: str = "reference",
                counter: list | None = None) -> type:
    """A machine class bound to plug-in specs (and an example counter for engines)."""
    base = MACHINES[kind]
    return type(base.__name__, (base,), {"driver_spec": driver, "device_spec": device,
                                         "counter": counter})


MACHINES = {"ring": RingMachine, "hardening": MaliciousDeviceMachine}
MODELS = {"ring": RingModel, "hardening": HardeningModel,
          "driver": MaliciousDriverModel}   # the last from stateful_driver.py


# --- replay ---------------------------------------------------------------------------

def replay_ops(doc: dict) -> Finding | None:
    """Re-run a stateful repro's operations; the Finding it still shows, or None."""
    from .repro import ReproError
    kind = (doc.get("params") or {}).get("machine", "ring")
    ops = doc.get("ops")
    if kind not in MODELS or not ops or ops[0][0] != "init":
        raise ReproError(f"stateful repro needs params.machine in {sorted(MODELS)} and ops "
                         f"starting with 'init'")
    cls = MODELS[kind]
    for name, _ in ops[1:]:
        if not callable(getattr(cls, "op_" + str(name), None)):
            raise ReproError(f"stateful repro: unknown operation {name!r} for {kind}")
    init = ops[0][1]
    try:
        model = cls(init["size"], init["features"], doc.get("driver", "reference"),
                    doc.get("device", "reference"))
        for name, args in ops[1:]:
            model.apply(name, **args)
    except Exception as exc:    # every failure is a finding; finding_for names it
        finding = finding_for(exc)
        finding.repro = doc
        return finding
    return None
