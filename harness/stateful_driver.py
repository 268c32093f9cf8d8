"""The malicious-driver machine: raw descriptor tables against the device's pop.

The stateful twin of fuzz/desc_chain.py, for the bug zoo's "validation" class
and any device plug-in (`--device M:C`).

Rules and theory of operation:

* The model (MaliciousDriverModel) writes the descriptor table, one indirect
  table, the available ring and avail idx byte by byte, as a hostile or buggy
  driver may (VIRTIO 1.2 2.7.5, 2.7.5.3, 2.7.6), then calls `pop`.  It keeps
  the interface of harness/stateful.py's models: `Model(size, features,
  driver, device)`, `apply(name, **args)` records every operation before it
  runs and attaches the program to the failure as `stateful_ops`, so a repro
  replays without Hypothesis (`harness.stateful.replay_ops`).
* The oracle is the fuzz target's, shared on purpose (one contract, two
  drivers): each pop is judged against fuzz.desc_chain.rewalk, an independent
  walk of the bytes.  pop returns None exactly when nothing is pending, a
  chain equal to the re-walk exactly when the chain keeps every rule, and a
  DriverViolation leaf exactly when it breaks one; BadAddress or any other
  exception escaping, or more than 4 * size + 16 guest accesses in one pop
  (an unbounded walk), is a finding.  After a DriverViolation the model
  resets the queue (a fresh device, avail idx 0) and goes on.
* Deterministic: no clock, no hash order; memory is fuzz.common's
  CountingMemory (one region at MEM_BASE), fresh per model.
"""
from __future__ import annotations

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule

from fuzz.common import MEM_END, BadChain, CountingMemory
from fuzz.desc_chain import access_budget, judge_pop, rewalk
from vring.contract import build, setup_queue
from vring.features import F_IN_ORDER, F_INDIRECT_DESC, F_VERSION_1
from vring.layout import SplitLayout
from vring.platform import Platform


SIZES = (1, 2, 4, 8)
TABLE_ENTRIES = 8          # the one indirect table the driver may point at
DATA_BYTES = 512
FEATURES = {"indirect": F_INDIRECT_DESC, "in_order": F_IN_ORDER}
#: Where a descriptor may point: symbolic, so a program reads well and replays.
ADDRS = ("data", "data+64", "table", "end-8", "zero", "far")
FAULTS = ("none", "next", "skip", "flags", "write", "indirect", "indirect-next", "addr",
          "head")


class MaliciousDriverModel:
    """A device of one queue against raw driver memory; see the module rules."""

    def __init__(self, size: int, features: int, driver: str = "reference",
                 device: str = "reference"):
        self.size, self.features = size, features
        self.mem = mem = CountingMemory()
        self.cfg = cfg = setup_queue(mem, size, features)
        self.lay = SplitLayout(cfg.size, cfg.desc, cfg.avail, cfg.used)
        self.table = mem.alloc(16 * TABLE_ENTRIES, 16)
        self.table2 = mem.alloc(16 * TABLE_ENTRIES, 16)   # for a nested INDIRECT
        self.data = mem.alloc(DATA_BYTES, 16)
        self.device_spec = device
        self.dev = build(device, "device", mem, cfg, Platform())
        self.avail_idx = 0      # what the driver published
        self.pos = 0            # the device's next avail slot, as the oracle sees it
        self.ops: list = [["init", {"size": size, "features": features}]]

    def apply(self, name: str, **args):
        self.ops.append([name, args])
        try:
            return getattr(self, "op_" + name)(**args)
        except Exception as exc:
            if not hasattr(exc, "stateful_ops"):
                exc.stateful_ops = [list(op) for op in self.ops]
            raise

    def _addr(self, where: str) -> int:
        return {"data": self.data, "data+64": self.data + 64, "table": self.table,
                "table2": self.table2,
                "end-8": MEM_END - 8, "zero": 0, "far": 0xFFFF_FFFF_0000}[where]

    def _write_desc(self, base: int, i: int, addr: str, len: int, flags: int,
                    next: int) -> None:
        d = base + 16 * i
        self.mem.write64(d, self._addr(addr))
        self.mem.write32(d + 8, len & 0xFFFFFFFF)
        self.mem.write16(d + 12, flags & 0xFFFF)
        self.mem.write16(d + 14, next & 0xFFFF)

    # -- the driver's stores (2.7.5, 2.7.6) -----------------------------------
    def op_desc(self, i, addr, len, flags, next):
        self._write_desc(self.cfg.desc, i % self.size, addr, len, flags, next)

    def op_entry(self, j, addr, len, flags, next, table="table"):
        self._write_desc(self._addr(table), j % TABLE_ENTRIES, addr, len, flags, next)

    def op_publish(self, head):
        self.mem.write16(self.lay.avail_ring(self.avail_idx % self.size), head)
        self.avail_idx = (self.avail_idx + 1) & 0xFFFF
        self.mem.write16(self.lay.avail_idx, self.avail_idx)

    def op_set_avail_idx(self, ahead):
        self.avail_idx = (self.pos + ahead) & 0xFFFF
        self.mem.write16(self.lay.avail_idx, self.avail_idx)

    def _reset(self) -> None:
        """After a violation the device would mark the queue broken; the driver
        resets the queue (2.7.1 / 4.1.4.3.2 queue_reset) and starts over."""
        self.dev = build(self.device_spec, "device", self.mem, self.cfg, Platform())
        self.avail_idx = self.pos = 0
        self.mem.write16(self.lay.avail_idx, 0)

    # -- the device's pop, judged ------------------------------------------------
    def _expect(self):
        pending = (self.avail_idx - self.pos) & 0xFFFF
        if pending == 0:
            return ("none",), None
        if pending > self.size:
            return ("bad", f"avail idx {self.avail_idx} is {pending} ahead of {self.pos}"), None
        head = self.mem.read16(self.lay.avail_ring(self.pos % self.size))
        return rewalk(self.mem.buf, self.cfg.desc, self.size, head, self.features), head

    def op_pop(self):
        expect, head = self._expect()
        chain = judge_pop(self.dev.pop, self.mem, expect, head, self.pos,
                          access_budget(self.size))
        if chain is None:
            if expect[0] == "bad":
                self._reset()   # rejected as it should be: the device stops here
            return
        if not isinstance(chain.head, int):
            raise BadChain("pop returned a chain without an integer head")
        self.pos = (self.pos + 1) & 0xFFFF


# --- the Hypothesis machine ------------------------------------------------------------

_LEN = st.integers(0, 64) | st.sampled_from((16, 32, 48, 17, 0x8000_0000, 0xFFFF_FFFF))
_FLAGS = st.integers(0, 7)      # NEXT, WRITE, INDIRECT in every combination


class MaliciousDriverMachine(RuleBasedStateMachine):
    """Raw descriptor tables, ring entries and avail idx, then pop."""

    device_spec = "reference"
    driver_spec = "reference"
    counter: list | None = None

    def __init__(self):
        super().__init__()
        self.model = None
        if self.counter is not None:
            self.counter[0] += 1

    @initialize(size=st.sampled_from(SIZES), features=st.sets(st.sampled_from(sorted(FEATURES))))
    def init_queue(self, size, features):
        word = F_VERSION_1
        for name in sorted(features):
            word |= FEATURES[name]
        self.model = MaliciousDriverModel(size, word, self.driver_spec, self.device_spec)

    @rule(data=st.data(), addr=st.sampled_from(ADDRS), len=_LEN, flags=_FLAGS)
    def desc(self, data, addr, len, flags):
        """One raw store over a descriptor (bare publishes are left out: on the
        zeroed table they only make the device stop at once)."""
        n = self.model.size
        self.model.apply("desc", i=data.draw(st.integers(0, n - 1), label="i"), addr=addr,
                         len=len, flags=flags,
                         next=data.draw(st.integers(0, n + 1), label="next"))

    @rule(j=st.integers(0, TABLE_ENTRIES - 1), addr=st.sampled_from(ADDRS), len=_LEN,
          flags=_FLAGS, next=st.integers(0, TABLE_ENTRIES + 1))
    def entry(self, j, addr, len, flags, next):
        self.model.apply("entry", j=j, addr=addr, len=len, flags=flags, next=next)

    @rule(data=st.data())
    def chain(self, data):
        """A whole chain at once, well formed but for at most ONE mistake a
        hostile driver makes (FAULTS), published and mostly popped at once.
        Random single stores rarely build a chain that gets far enough for a
        lenient walk to disagree with a strict one; one fault per chain makes
        it the first rule broken."""
        m = self.model
        n = m.size
        k = data.draw(st.integers(1, n), label="k")
        start = data.draw(st.integers(0, n - 1), label="start")
        writable_from = data.draw(st.integers(0, k), label="writable_from")
        fault = data.draw(st.sampled_from(FAULTS), label="fault")
        at = data.draw(st.integers(0, k - 1), label="at")
        idx = [(start + j) % n for j in range(k)]
        for j, i in enumerate(idx):
            last = j == k - 1
            flags = (0 if last else 1) | (2 if j >= writable_from else 0)
            nxt = idx[j + 1] if not last else 0
            addr, ln = ("data" if j % 2 == 0 else "data+64"), data.draw(st.integers(0, 48))
            if j == at and fault == "skip" and j + 2 < k:
                nxt = idx[j + 2]    # a valid chain, but not in table order (IN_ORDER)
            elif j == at and fault == "next":
                # Anywhere in the table (loops), or out of it.
                flags |= 1
                nxt = data.draw(st.sampled_from((0, n, 0x1000, 0xFFFF))
                                | st.integers(0, n - 1), label="next")
            elif j == at and fault == "flags":
                flags = data.draw(_FLAGS, label="flags")
            elif j == at and fault == "write":
                flags ^= 2
            elif j == at and fault in ("indirect", "indirect-next"):
                kt = data.draw(st.integers(1, TABLE_ENTRIES), label="kt")
                self._table(data, kt)
                # INDIRECT ends the chain here (2.7.5.3.1: not with NEXT) unless
                # the fault is exactly that.
                flags = 4 | (1 if fault == "indirect-next" else 0)
                addr = "table"
                ln = 16 * kt + data.draw(st.sampled_from((0, 0, 1, 8)), label="table_rest")
            elif j == at and fault == "addr":
                addr = data.draw(st.sampled_from(ADDRS), label="addr")
            m.apply("desc", i=i, addr=addr, len=ln, flags=flags, next=nxt)
        head = idx[0]
        if fault == "head":
            head = data.draw(st.sampled_from((n, 0xFFFF)), label="head")
        m.apply("publish", head=head)
        if data.draw(st.integers(0, 3), label="pop_now"):
            m.apply("pop")      # mostly judge it at once: later stores may mask it

    def _table(self, data, k: int) -> None:
        """Entries 0..k-1 of the indirect table as a chain, with at most one
        fault: a nested INDIRECT (to itself), a wild next, wild flags."""
        fault = data.draw(st.sampled_from(("none", "nest", "next", "flags")), label="tfault")
        at = data.draw(st.integers(0, k - 1), label="tat")
        for j in range(k):
            last = j == k - 1
            flags, nxt, addr, ln = (0 if last else 1), (j + 1 if not last else 0), "data", 8
            if j == at and fault == "nest":
                # INDIRECT inside the table, to a second table holding one
                # good buffer: only the no-nesting rule (2.7.5.3.1) is broken.
                self.model.apply("entry", j=0, addr="data", len=8, flags=0, next=0,
                                 table="table2")
                flags, addr, ln = 4, "table2", 16
            elif j == at and fault == "next":
                flags, nxt = 1, data.draw(st.integers(0, TABLE_ENTRIES + 1), label="tnext")
            elif j == at and fault == "flags":
                flags = data.draw(_FLAGS, label="tflags")
            self.model.apply("entry", j=j, addr=addr, len=ln, flags=flags, next=nxt)

    @rule(data=st.data())
    def set_avail_idx(self, data):
        # Up to a little more than the queue size ahead (2.7.6.1's bound).
        ahead = data.draw(st.integers(0, self.model.size + 2), label="ahead")
        self.model.apply("set_avail_idx", ahead=ahead)

    @rule()
    def pop(self):
        self.model.apply("pop")


def machine_for(driver: str = "reference", device: str = "reference",
                counter: list | None = None) -> type:
    """The machine bound to plug-in specs (and an engine's example counter)."""
    return type("MaliciousDriverMachine", (MaliciousDriverMachine,),
                {"driver_spec": driver, "device_spec": device, "counter": counter})


__all__ = ["MaliciousDriverModel", "MaliciousDriverMachine", "machine_for"]
