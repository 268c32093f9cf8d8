"""The fuzz targets, their oracles, the mutator, the seeds and the crash corpus.

Each oracle test plants one fault (a subclass or a monkeypatch of the
reference) and checks that the target raises; the smoke tests run every seed
and a few thousand seeded random inputs through the reference without a crash.
Committed crash repros (corpora/crashes/<target>/*.json) are regression tests
both ways, in tests/test_crash_corpus.py.
"""
from __future__ import annotations

import random
from pathlib import Path

import pytest

from fuzz import desc_chain, mutators, schedule, used_ring
from fuzz.common import (CFG_IN_ORDER, CFG_INDIRECT, DATA_BASE, KIND_DATA, AccessBudgetExceeded,
                         BadChain, ChainInput, EscapedBadAddress, FuzzFinding,
                         HardeningViolation, UnexpectedException, WrongVerdict,
                         decode_chain, encode_chain)
from harness import fuzzing, repro
from harness.oracles import ExactlyOnce, LengthBound
from vring.errors import DescriptorLoop
from vring.features import VRING_DESC_F_NEXT, VRING_DESC_F_WRITE
from vring.split import chain as chain_mod
from vring.split.device import SplitDevice
from vring.split.driver import SplitDriver

ROOT = Path(__file__).resolve().parent.parent
NEXT, WRITE = VRING_DESC_F_NEXT, VRING_DESC_F_WRITE
RANDOM_INPUTS = 2000
#: A schedule input is a whole scheduled run (~2 ms): fewer random ones.
RANDOM_INPUTS_FOR = {"schedule": 300}


def seeds(target: str) -> list[bytes]:
    return [p.read_bytes() for p in sorted((ROOT / "corpora" / target).glob("*.seed"))]


def random_inputs(seed: int, n: int = RANDOM_INPUTS, max_len: int = 400):
    rng = random.Random(seed)
    for _ in range(n):
        yield rng.randbytes(rng.randrange(max_len))


def chain_input(descs, ring=(0,), *, size_log2=3, features=0, avail=None, tables=()) -> bytes:
    return encode_chain(ChainInput(size_log2 | features, 0, len(ring) if avail is None else avail,
                                   list(ring), list(descs), [list(t) for t in tables]))


# --- smoke: seeds and random inputs never crash the reference ------------------

@pytest.mark.parametrize("target", fuzzing.TARGETS)
def test_seed_corpus_and_random_inputs_never_crash_the_reference(target):
    run = fuzzing.make_target(target)
    corpus = seeds(target)
    assert len(corpus) >= 5, "run corpora/make_seeds.py"
    for data in corpus:
        run(data)
    for data in random_inputs(1, RANDOM_INPUTS_FOR.get(target, RANDOM_INPUTS)):
        run(data)


@pytest.mark.parametrize("target", fuzzing.TARGETS)
def test_outcome_does_not_depend_on_earlier_inputs(target):
    """Reused memory is reset: an input fails or passes alike in a fresh target."""
    warm = fuzzing.make_target(target)
    for data in list(random_inputs(2, 30 if target == "schedule" else 100)) + seeds(target):
        for other in (b"\x07\xff" * 300, data):
            try:
                warm(other)
            except FuzzFinding:
                pass
        assert fuzzing.run_input(target, data) is None


def test_committed_seeds_are_what_make_seeds_generates():
    import runpy
    gen = runpy.run_path(str(ROOT / "corpora" / "make_seeds.py"))
    for target, make in (("desc_chain", gen["desc_chain_seeds"]),
                         ("used_ring", gen["used_ring_seeds"]),
                         ("schedule", gen["schedule_seeds"])):
        want = {f"{name}.seed": data for name, data in make().items()}
        again = {f"{name}.seed": data for name, data in make().items()}
        committed = {p.name: p.read_bytes() for p in (ROOT / "corpora" / target).glob("*.seed")}
        assert want == again == committed


# --- desc_chain oracles ------------------------------------------------------------

class _Dev(SplitDevice):
    """A reference device whose pop the tests rewire."""


def _device(pop):
    def make(mem, cfg, platform):
        dev = _Dev(mem, cfg, platform)
        dev.pop = lambda: pop(dev)
        return dev
    return make


VALID = chain_input([(KIND_DATA, NEXT, 1, 0, 64), (KIND_DATA, WRITE, 0, 0x100, 32)])


def test_a_valid_chain_passes_the_reference():
    desc_chain.DescChainTarget()(VALID)


def test_a_chain_that_differs_from_the_rewalk_is_bad_chain():
    def pop(dev):
        c = SplitDevice.pop(dev)
        return c and chain_mod.Chain(c.head, c.readable, c.writable[:-1])
    with pytest.raises(BadChain):
        desc_chain.DescChainTarget(device=_device(pop))(VALID)


def test_a_buffer_outside_memory_is_bad_chain():
    def pop(dev):
        c = SplitDevice.pop(dev)
        return c and chain_mod.Chain(c.head, c.readable, ((0x10, 8),))
    with pytest.raises(BadChain, match="outside guest memory"):
        desc_chain.DescChainTarget(device=_device(pop))(VALID)


def test_rejecting_a_valid_chain_is_a_wrong_verdict():
    def pop(dev):
        raise DescriptorLoop("planted")
    with pytest.raises(WrongVerdict, match="rejected a valid chain"):
        desc_chain.DescChainTarget(device=_device(pop))(VALID)


def test_accepting_a_loop_is_a_wrong_verdict(monkeypatch):
    loop = chain_input([(KIND_DATA, NEXT, 1, 0, 8), (KIND_DATA, NEXT, 0, 0, 8)])
    desc_chain.DescChainTarget()(loop)     # the reference raises a leaf: fine

    def walk(mem, table, size, head, **kw):   # the fault: no loop detection
        return chain_mod.Chain(head, ((desc_chain.MEM_BASE, 8),), ())
    monkeypatch.setattr("vring.split.device.walk_chain", walk)
    with pytest.raises(WrongVerdict, match="accepted an invalid chain"):
        desc_chain.DescChainTarget()(loop)


def test_readable_after_writable_accepted_is_a_wrong_verdict(monkeypatch):
    bad = chain_input([(KIND_DATA, WRITE | NEXT, 1, 0, 8), (KIND_DATA, 0, 0, 0x40, 8)])
    desc_chain.DescChainTarget()(bad)      # the reference raises a leaf: fine

    def lax(mem, table, size, head, **kw):   # the fault: no ordering rule (2.7.4.2)
        return chain_mod.Chain(head, ((DATA_BASE + 0x40, 8),), ((DATA_BASE, 8),))
    monkeypatch.setattr("vring.split.device.walk_chain", lax)
    with pytest.raises(WrongVerdict):
        desc_chain.DescChainTarget()(bad)


def test_a_chain_for_another_head_is_bad_chain():
    def pop(dev):
        c = SplitDevice.pop(dev)
        return c and chain_mod.Chain(c.head + 1, c.readable, c.writable)
    with pytest.raises(BadChain, match="the ring holds 0"):
        desc_chain.DescChainTarget(device=_device(pop))(VALID)


def test_a_chain_with_nothing_pending_is_a_wrong_verdict():
    empty = chain_input([(KIND_DATA, 0, 0, 0, 8)], avail=0)
    desc_chain.DescChainTarget()(empty)
    with pytest.raises(WrongVerdict, match="nothing pending"):
        desc_chain.DescChainTarget(device=_device(
            lambda dev: chain_mod.Chain(0, ((DATA_BASE, 8),), ())))(empty)


def test_a_violation_that_names_no_rule_is_unexpected():
    from vring.errors import DriverViolation

    def pop(dev):
        raise DriverViolation("which rule?")
    with pytest.raises(UnexpectedException, match="DriverViolation"):
        desc_chain.DescChainTarget(device=_device(pop))(VALID)


def test_an_unbounded_walk_exceeds_the_access_budget():
    def pop(dev):
        while True:
            dev.mem.read16(dev.layout.avail_idx)
    with pytest.raises(AccessBudgetExceeded):
        desc_chain.DescChainTarget(device=_device(pop))(VALID)


def test_a_swallowed_budget_stop_is_still_reported():
    def pop(dev):
        try:
            while True:
                dev.mem.read16(dev.layout.avail_idx)
        except Exception:  # noqa: BLE001  (the fault: swallow everything)
            return None
    with pytest.raises(AccessBudgetExceeded):
        desc_chain.DescChainTarget(device=_device(pop))(VALID)


def test_an_escaping_bad_address_is_reported():
    def pop(dev):
        dev.mem.read64(0)
    with pytest.raises(EscapedBadAddress):
        desc_chain.DescChainTarget(device=_device(pop))(VALID)


def test_any_other_exception_is_unexpected():
    def pop(dev):
        return [][1]
    with pytest.raises(UnexpectedException, match="IndexError"):
        desc_chain.DescChainTarget(device=_device(pop))(VALID)


def test_none_with_buffers_pending_is_a_wrong_verdict():
    with pytest.raises(WrongVerdict, match="returned None"):
        desc_chain.DescChainTarget(device=_device(lambda dev: None))(VALID)


def test_rewalk_agrees_with_the_reference_on_indirect_and_in_order_seeds():
    run = desc_chain.DescChainTarget()
    table = [(KIND_DATA, NEXT, 1, 0, 16), (KIND_DATA, WRITE, 0, 0x40, 16)]
    run(chain_input([(1, 4, 0, 0, 0)], features=CFG_INDIRECT, tables=[table]))
    run(chain_input([(1, 4, 0, 0, 0)], features=CFG_INDIRECT | CFG_IN_ORDER, tables=[table]))


# --- used_ring oracles -------------------------------------------------------------

ADD = ("add", [64], [128])


def ops(*seq, cfg=3) -> bytes:
    return used_ring.encode_ops(cfg, list(seq))


def _driver(cls):
    return lambda mem, cfg, platform: cls(mem, cfg, platform)


def test_an_unchecked_used_id_makes_the_driver_return_a_stranger():
    class NoCheck(SplitDriver):
        def _check_used(self, head, written):   # the fault: trust the device
            pass
    lie = ops(ADD, ADD, ("push", 0), ("get",), ("used", 0x12, 0, 0), ("get",))
    used_ring.UsedRingTarget()(lie)            # the reference marks itself broken
    with pytest.raises((ExactlyOnce, HardeningViolation, UnexpectedException)):
        used_ring.UsedRingTarget(driver=_driver(NoCheck))(lie)


def test_an_unchecked_used_len_breaks_the_length_bound():
    class NoLen(SplitDriver):
        def _check_used(self, head, written):
            if head >= self.size or self._state[head] is None:
                super()._check_used(head, written)
    lie = ops(ADD, ("used", 0x18, 0, 0), ("get",))
    used_ring.UsedRingTarget()(lie)
    with pytest.raises(LengthBound):
        used_ring.UsedRingTarget(driver=_driver(NoLen))(lie)


def test_a_double_push_on_the_free_list_is_caught():
    class DoubleFree(SplitDriver):
        def _detach(self, head):
            super()._detach(head)
            self.num_free += 1                  # the fault: a descriptor counted twice
    with pytest.raises(HardeningViolation, match="num_free"):
        used_ring.UsedRingTarget(driver=_driver(DoubleFree))(ops(ADD, ("push", 0), ("get",)))


def test_a_token_returned_twice_is_caught():
    class Echo(SplitDriver):
        last = None

        def get_buf(self):                      # the fault: hand the last one out again
            got = super().get_buf()
            self.last, got = got, got or self.last
            return got
    with pytest.raises(ExactlyOnce, match="a second time"):
        used_ring.UsedRingTarget(driver=_driver(Echo))(ops(ADD, ("push", 0), ("get",), ("get",)))


def test_a_head_still_in_flight_handed_out_again_is_caught():
    class Forgets(SplitDriver):
        def add_sgs(self, out, in_, token):     # the fault: always start at descriptor 0
            self.free_head = 0
            return super().add_sgs(out, in_, token)
    with pytest.raises(HardeningViolation, match="reused descriptor"):
        used_ring.UsedRingTarget(driver=_driver(Forgets))(ops(ADD, ADD))


def test_a_duplicate_on_the_free_list_is_caught():
    class Dup(SplitDriver):
        def free_list(self):
            fl = super().free_list()
            return fl[:-1] + fl[:1]
    with pytest.raises(HardeningViolation, match="duplicates"):
        used_ring.UsedRingTarget(driver=_driver(Dup))(ops(ADD))


def test_add_accepted_on_a_broken_queue_is_caught():
    class Deaf(SplitDriver):
        def add_sgs(self, out, in_, token):     # the fault: ignore broken
            broken, self.broken = self.broken, False
            try:
                return super().add_sgs(out, in_, token)
            finally:
                self.broken = broken
    lie = ops(ADD, ("used", 0x11, 9, 0), ("get",), ADD)
    used_ring.UsedRingTarget()(lie)
    with pytest.raises(HardeningViolation, match="broken queue"):
        used_ring.UsedRingTarget(driver=_driver(Deaf))(lie)


def test_a_small_request_refused_as_invalid_is_unexpected():
    from vring.errors import InvalidRequest

    class Picky(SplitDriver):
        def add_sgs(self, out, in_, token):
            raise InvalidRequest("planted")
    with pytest.raises(UnexpectedException, match="InvalidRequest"):
        used_ring.UsedRingTarget(driver=_driver(Picky))(ops(ADD))


def test_a_callback_call_that_raises_is_unexpected():
    class Crashy(SplitDriver):
        def enable_cb(self):
            raise RuntimeError("planted")
    with pytest.raises(UnexpectedException, match="enable_cb"):
        used_ring.UsedRingTarget(driver=_driver(Crashy))(ops(ADD, ("misc", 2)))


def test_a_miscounted_free_list_is_caught_without_free_list_introspection():
    class Opaque(SplitDriver):
        free_list = None                        # a plug-in that exposes no free list

        def _detach(self, head):
            super()._detach(head)
            self.num_free += 1
    with pytest.raises(HardeningViolation, match="descriptors in flight != size"):
        used_ring.UsedRingTarget(driver=_driver(Opaque))(ops(ADD, ("push", 0), ("get",)))


def test_a_device_violation_that_names_no_rule_is_unexpected():
    from vring.errors import DeviceViolation

    class Vague(SplitDriver):
        def get_buf(self):
            self.broken = True
            raise DeviceViolation("which rule?")
    with pytest.raises(UnexpectedException, match="DeviceViolation"):
        used_ring.UsedRingTarget(driver=_driver(Vague))(ops(ADD, ("get",)))


def test_a_free_list_holding_a_busy_descriptor_is_caught():
    class Leaky(SplitDriver):
        def free_list(self):
            return [0] + super().free_list()[1:]   # claims descriptor 0 while it is busy
    with pytest.raises(HardeningViolation, match="in flight"):
        used_ring.UsedRingTarget(driver=_driver(Leaky))(ops(ADD))


def test_a_token_after_broken_is_caught():
    class Unbreakable(SplitDriver):
        def get_buf(self):
            self.broken = False                 # the fault: forget BAD_RING
            return super().get_buf()
    # id 9 is out of range: broken; then the device rewrites slot 0 correctly.
    lie = ops(ADD, ("used", 0x11, 9, 0), ("get",), ("used_idx", 0, 0), ("used", 0x10, 0, 0),
              ("get",))
    used_ring.UsedRingTarget()(lie)
    with pytest.raises(HardeningViolation, match="after the queue broke"):
        used_ring.UsedRingTarget(driver=_driver(Unbreakable))(lie)


def test_a_violation_without_broken_is_caught():
    class Forgetful(SplitDriver):
        def _bad_ring(self, err):
            raise err                           # the fault: raise but stay usable
    with pytest.raises(HardeningViolation, match="not broken"):
        used_ring.UsedRingTarget(driver=_driver(Forgetful))(ops(ADD, ("used_idx", 0, 3),
                                                                  ("get",)))


def test_a_foreign_exception_from_get_buf_is_unexpected():
    class Crashy(SplitDriver):
        def get_buf(self):
            raise KeyError("planted")
    with pytest.raises(UnexpectedException, match="KeyError"):
        used_ring.UsedRingTarget(driver=_driver(Crashy))(ops(ADD, ("get",)))


def test_add_refused_without_cause_is_caught():
    class Refuses(SplitDriver):
        def add_sgs(self, out, in_, token):
            from vring.errors import QueueBroken
            raise QueueBroken("planted")
    with pytest.raises(HardeningViolation, match="not broken"):
        used_ring.UsedRingTarget(driver=_driver(Refuses))(ops(ADD))


def test_queue_full_is_not_a_finding():
    full = ops(*([ADD] * 6), cfg=1)             # 2 descriptors: the second add is full
    used_ring.UsedRingTarget()(full)


# --- the mutator -------------------------------------------------------------------

def test_decoder_is_total_and_encoding_round_trips():
    for data in random_inputs(3, 500, 600):
        inp = decode_chain(data)
        assert decode_chain(encode_chain(inp)) == inp


def _chain_inputs():
    """Random bytes, the seeds, their truncations and structural mutants."""
    rng = random.Random(6)
    corpus = seeds("desc_chain")
    yield b""
    yield from random_inputs(7, 400, 600)
    for data in corpus:
        yield data
        yield data[:rng.randrange(len(data) + 1)]
        yield data + rng.randbytes(rng.randrange(40))
    for k in range(400):
        yield mutators.structural_mutate(corpus[k % len(corpus)], rng)
    for k in range(100):   # up to five tables (one past MAX_TABLES), some cut short
        base = encode_chain(decode_chain(corpus[k % len(corpus)]))
        tables = b"".join(bytes([n]) + rng.randbytes(12 * n)
                          for n in (rng.randrange(6) for _ in range(1 + k % 5)))
        yield (base + tables)[:len(base) + rng.randrange(len(tables) + 2)]
    # The same record bytes under another limit (queue size, table length):
    # cut after one record, so only the limit tells their `next` apart.
    rec = bytes([KIND_DATA, NEXT, 200, 0]) + bytes(8)
    for log2 in range(8):
        yield bytes([log2, 0, 1, 0]) + bytes(2 << log2) + rec
        yield bytes([log2, 0, 1, 0]) + bytes(14 << log2) + bytes([3 + log2]) + rec


def test_load_chain_writes_what_decode_and_materialize_write():
    from fuzz.common import CountingMemory, load_chain, materialize
    from vring.contract import setup_queue
    fast, slow = CountingMemory(), CountingMemory()
    cfg = setup_queue(fast, 128, 0)
    setup_queue(slow, 128, 0)
    for s in (fast, slow):
        s.snapshot()
    memo: dict = {}                   # shared, as the target shares its own
    for data in _chain_inputs():
        fast.reset()
        slow.reset()
        inp = decode_chain(data)
        materialize(slow, inp, cfg.desc, cfg.avail)
        assert load_chain(fast, data, cfg.desc, cfg.avail, memo) == (inp.cfg, inp.pops, inp.avail)
        assert fast.buf == slow.buf, data
        assert (fast._lo, fast._hi) == (slow._lo, slow._hi)   # reset zeroes the same


@pytest.mark.parametrize("edit", mutators.EDITS, ids=lambda e: e.__name__)
def test_every_structural_edit_keeps_the_input_decodable(edit):
    rng = random.Random(4)
    corpus = seeds("desc_chain")
    for k in range(300):
        inp = decode_chain(corpus[k % len(corpus)] if k % 2 else rng.randbytes(rng.randrange(200)))
        edit(inp, rng)
        out = encode_chain(inp)
        assert decode_chain(out) == inp


def test_custom_mutator_is_deterministic_and_bounded():
    def flip(data, max_size):                  # stands in for atheris.Mutate
        return bytes([data[0] ^ 1]) + data[1:max_size] if data else b"\x01"
    data = seeds("desc_chain")[0]
    outs = [mutators.custom_mutator(data, 256, seed, flip) for seed in range(200)]
    assert outs == [mutators.custom_mutator(data, 256, seed, flip) for seed in range(200)]
    assert all(len(o) <= 256 for o in outs)
    assert len(set(outs)) > 10
    flipped = flip(data, 256)
    assert sum(o == flipped for o in outs) in range(140, 181)   # BYTE_SHARE of calls


def test_structural_mutations_reach_many_outcomes():
    """The edits turn valid seeds into most kinds of broken chain."""
    from vring.errors import DriverViolation
    rng = random.Random(5)
    seen = set()
    corpus = seeds("desc_chain")
    run = desc_chain.DescChainTarget()
    real_pop = SplitDevice.pop

    def spy(self):
        try:
            return real_pop(self)
        except DriverViolation as e:
            seen.add(type(e).__name__)
            raise
    SplitDevice.pop = spy
    try:
        for k in range(1500):
            run(mutators.structural_mutate(corpus[k % len(corpus)], rng))
    finally:
        SplitDevice.pop = real_pop
    assert {"DescriptorLoop", "IndirectNotNegotiated", "NestedIndirect",
            "BufferOutOfMemory", "AvailIdxTooFarAhead"} <= seen


# --- repro files and the crash corpus ------------------------------------------------

# The committed files themselves are replayed by tests/test_crash_corpus.py.


def test_a_crash_artifact_becomes_a_repro_that_replays(tmp_path, monkeypatch):
    """The folder machinery: artifact -> repro file -> load -> replay finds it."""
    lie = ops(ADD, ADD, ("push", 0), ("get",), ("used", 0x12, 0, 0), ("get",))

    class NoCheck(SplitDriver):
        def _check_used(self, head, written):
            pass
    monkeypatch.setattr("vring.split.driver.SplitDriver._check_used", NoCheck._check_used)
    art = tmp_path / "crash-0001"
    art.write_bytes(lie)
    path = fuzzing.artifact_to_repro("used_ring", art, tmp_path / "crashes")
    doc = repro.load(path)
    assert repro.input_bytes(doc) == lie
    found = fuzzing.replay_fuzz(doc)
    assert found is not None and found.oracle == doc["signature"]["oracle"]
    assert found.message == doc["signature"]["message"]
    monkeypatch.undo()
    assert fuzzing.replay_fuzz(doc) is None     # fixed: the regression test passes


def test_libfuzzer_stats_lines_are_parsed():
    text = ("#4096\tpulse  cov: 114 ft: 389 corp: 49/35Kb lim: 4096 exec/s: 4096 rss: 44Mb\n"
            "#5000: cov: 120 ft: 400 corp: 52 exec/s 3000 oom/timeout/crash: 0/0/2 time: 9s job: 3\n")
    assert fuzzing.parse_stats(text) == {"runs": 5000, "cov": 120, "ft": 400, "corpus": 52,
                                         "execs_per_s": 3000, "fork_crashes": 2}


def test_the_launcher_is_an_executable_with_this_python(tmp_path):
    import os
    import sys
    path = fuzzing.write_launcher("desc_chain", tmp_path)
    assert os.access(path, os.X_OK)
    assert path.read_text().splitlines()[0] == f"#!{sys.executable}"


# --- instrumentation ----------------------------------------------------------------

def _run_instrumented(code: str, env=None):
    """Run `code` in a fresh interpreter that instruments as a fuzz target does."""
    import os
    import subprocess
    import sys
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT,
                          env=dict(os.environ, VRINGFUZZ_INSTRUMENT="1", **(env or {})),
                          capture_output=True, text=True, check=True)


def _instrumented_modules(target: str, env=None) -> set[str]:
    """The modules atheris reports instrumenting when `target` is imported to fuzz."""
    out = _run_instrumented(f"import fuzz.{target}", env)
    return {line.split()[-1] for line in out.stderr.splitlines()
            if line.startswith("INFO: Instrumenting ")}


def test_desc_chain_instruments_the_device_walk_and_no_plumbing():
    assert _instrumented_modules("desc_chain") == set(desc_chain.UNDER_TEST)


def test_schedule_instruments_the_ring_sides_and_every_draft_but_not_their_checks():
    # The drafts load lazily (harness/scenarios/drafts.py): imported late, they
    # would run uninstrumented and their branches would guide nothing.
    mods = _instrumented_modules("schedule")
    assert mods == set(schedule.UNDER_TEST)
    assert {f"vring.drafts.draft{n}" for n in (1, 2, 3)} <= mods
    assert "vring.drafts.workload" not in mods


def test_a_plugin_device_inside_vring_stays_instrumented():
    mods = _instrumented_modules("desc_chain", {"VRINGFUZZ_DEVICE": "vring.split.device:make"})
    assert mods == set(desc_chain.UNDER_TEST)
    mods = _instrumented_modules("desc_chain", {"VRINGFUZZ_DEVICE": "vring.contract:build"})
    assert "vring.contract" in mods


def test_package_modules_lists_vring_without_importing_it():
    import subprocess
    import sys
    code = ("import sys; from fuzz.instrument import package_modules; "
            "m = package_modules('vring'); "
            "assert 'vring.split.chain' in m and 'vring.memory' in m, m; "
            "assert 'vring' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def _traced_calls(target: str, module: str) -> set[str]:
    """The atheris callbacks the code of `module` calls once `target` is imported to fuzz."""
    code = (f"import types, fuzz.{target}, {module} as m\n"
            "names = set()\n"
            "def walk(c):\n"
            "    names.update(n for n in c.co_names if n.startswith('_trace'))\n"
            "    for k in c.co_consts:\n"
            "        if isinstance(k, types.CodeType): walk(k)\n"
            "for o in vars(m).values():\n"
            "    for f in [o, *vars(o).values()] if isinstance(o, type) else [o]:\n"
            "        if getattr(f, '__module__', None) == m.__name__ and hasattr(f, '__code__'):\n"
            "            walk(f.__code__)\n"
            "print(' '.join(sorted(names)))\n")
    return set(_run_instrumented(code).stdout.split())


def test_schedule_target_traces_branches_but_not_comparisons():
    # Its bytes are choices, never compared values (fuzz/instrument.py).
    assert _traced_calls("schedule", "vring.split.driver") == {"_trace_branch"}


def test_desc_chain_target_traces_comparisons_of_the_walk():
    # There the input bytes are the descriptor fields the walk compares.
    assert _traced_calls("desc_chain", "vring.split.device") == {"_trace_branch", "_trace_cmp"}


def test_a_planted_bug_instruments_its_faulty_side_and_no_harness_plumbing():
    # A bug's side is a plug-in inside harness (harness.bugs): its subpackage is
    # ring code under test; the scheduler, memory models and oracles are not.
    spec = fuzzing.bug_specs("enable-cb-no-recheck")[0]
    mods = _instrumented_modules("schedule", {"VRINGFUZZ_DRIVER": spec,
                                              "VRINGFUZZ_BUG": "enable-cb-no-recheck"})
    assert "harness.bugs.faults" in mods          # where the zoo's faulty code lives
    assert set(schedule.UNDER_TEST) <= mods
    assert not {m for m in mods if m.startswith("harness.") and
                not m.startswith("harness.bugs")}
