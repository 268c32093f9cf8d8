"""Tiny concurrent programs for the explore tests, and what tells their runs apart.

A program is a list of tasks, each a list of ops run on one scheduled memory:
("r", A) load A; ("w", A, v) store v (32 bits; "r16"/"w16": 16); ("mb",) / ("wmb",) / ("rmb",) barriers;
("lock", n) / ("unlock", n) a platform lock; ("wait", A, v) block until A
holds v; ("rr", A, B) load A and B in one expression, so A's value is held on
the interpreter's stack across B's scheduling point; ("set", k, v) store v
in a plain Python dict the tasks share (no scheduling point), and ("get", k)
read it into a local variable that the task reports only when it ends.

An outcome is what a run can tell apart: every value each task loaded (and its
last "get"), the final memory (after the end-of-run drain) and the error, if any.
"""
import random
import re

from harness.memmodel import make_memory
from harness.platform import HarnessPlatform
from harness.sched import Scheduler, explore
from harness.sched.runtime import Abandoned

X, Y, Z = 0x1000, 0x1040, 0x1080
ADDRS = (X, Y, Z)

SB = [[("w", X, 1), ("r", Y)], [("w", Y, 1), ("r", X)]]
SB_MB = [[("w", X, 1), ("mb",), ("r", Y)], [("w", Y, 1), ("mb",), ("r", X)]]
MP = [[("w", X, 1), ("w", Y, 1)], [("r", Y), ("r", X)]]
MP_FENCED = [[("w", X, 1), ("wmb",), ("w", Y, 1)], [("r", Y), ("rmb",), ("r", X)]]
LOCKED = [[("lock", "a"), ("r", X), ("w", X, 1), ("unlock", "a")],
          [("lock", "a"), ("r", X), ("w", X, 2), ("unlock", "a")],
          [("r", X), ("w", Y, 3)]]
# The reader's stale entry of X's word waits behind the older one of X's low
# half (memmodel: per address in arrival order): a load of the high half alone
# must be able to see both dropped.
HALVES = [[("w16", X, 1), ("w", X, 0x20003)], [("r16", X + 2), ("r", X)]]
WAITS = [[("w", X, 1), ("w", Y, 1)], [("wait", Y, 1), ("r", X), ("w", Z, 1)],
         [("r", Z), ("w", X, 2)]]


def outcomes(model, prog, bound, por, points="all", **explore_kw):
    """The set of outcomes of program `prog` (tasks of ops) within `bound`,
    and the ExploreReport (the search must be exhausted).  `points`: the
    memory model's choices (memmodel.POINTS)."""
    seen = set()

    def make_run(src):
        s = Scheduler(src, trace=False)
        m = make_memory(model, s, size=4096, points=points)
        plat = HarnessPlatform(s)
        got = {}
        shared = {}

        def body(me, ops):
            out = []
            held = None
            for op in ops:
                k = op[0]
                if k == "r":
                    out.append(m.read32(op[1]))
                elif k == "rr":
                    out.append(m.read32(op[1]) * 16 + m.read32(op[2]))
                elif k == "w":
                    m.write32(op[1], op[2])
                elif k == "r16":
                    out.append(m.read16(op[1]))
                elif k == "w16":
                    m.write16(op[1], op[2])
                elif k in ("mb", "wmb", "rmb"):
                    getattr(m, k)()
                elif k == "lock":
                    plat.lock(op[1]).acquire()
                elif k == "unlock":
                    plat.lock(op[1]).release()
                elif k == "wait":       # block until memory holds a value
                    s.block(f"wait {op[1]:#x}",
                            lambda a=op[1], v=op[2]: m.peek32(a) == v)
                elif k == "set":
                    shared[op[1]] = op[2]
                elif k == "get":
                    held = shared.get(op[1])
            got[me] = (tuple(out), held)
        for i, ops in enumerate(prog):
            s.spawn(f"t{i}", body, i, ops)
        out = s.run()
        if isinstance(out.error, Abandoned):
            return out
        final = tuple(m.peek32(a) for a in ADDRS)
        seen.add((tuple(sorted(got.items())), final, type(out.error).__name__))
        out.error = None                # a failure is an outcome too: keep exploring
        return out
    rep = explore(make_run, preemption_bound=bound, por=por, **explore_kw)
    assert rep.exhausted
    return seen, rep


def same_as_plain(model, prog, bounds=(0, 1, 2), por=False, **explore_kw):
    """The reduced search (por, explore_kw) reaches exactly the plain bounded
    search's outcomes, at each bound, in no more complete runs."""
    for bound in bounds:
        plain, prep = outcomes(model, prog, bound, False)
        got, rep = outcomes(model, prog, bound, por, **explore_kw)
        assert got == plain, (model, bound, por, explore_kw, prog)
        assert rep.complete <= prep.complete


def loads(seen):
    """Each outcome's loaded values per task (without what "get" held)."""
    return sorted(tuple((t, vals) for t, (vals, _) in o[0]) for o in seen)


def random_program(rng, tasks, length, kinds="rrwwm"):
    """Random ops: r(ead), w(rite), m (a barrier); with kinds="rrwwmqsg" also
    q ("rr": a load held across a point), s(et) and g(et) of Python state."""
    ops = []
    for _ in range(tasks):
        body = []
        for _ in range(length):
            k = rng.choice(kinds)
            a = rng.choice(ADDRS[:2])
            if k == "r":
                body.append(("r", a))
            elif k == "w":
                body.append(("w", a, rng.randrange(1, 4)))
            elif k == "q":
                body.append(("rr", a, rng.choice(ADDRS[:2])))
            elif k == "s":
                body.append(("set", "f", rng.randrange(1, 3)))
            elif k == "g":
                body.append(("get", "f"))
            else:
                body.append((rng.choice(("mb", "wmb", "rmb")),))
        ops.append(body)
    return ops


def random_programs(seed, count, tasks=(2,), lengths=(2, 3), kinds="rrwwm"):
    rng = random.Random(seed)
    return [random_program(rng, rng.choice(tasks), rng.choice(lengths), kinds)
            for _ in range(count)]


def world_outcomes(monkeypatch, params, bound, por, **explore_kw):
    """Outcomes of a whole scenario run: the verdict, the final guest memory, the
    scenario's state (object addresses left out) and the platform's counters
    (what the end checks can see); a draft's delivered and completed lists."""
    import harness.world as world
    seen = set()
    end_checks = world._end_checks

    def recording(w):
        verdict = end_checks(w)
        q = w.state.get("draft")
        lists = (repr(q.delivered), repr(q.completed)) if q is not None else ()
        seen.add((verdict and verdict.oracle, bytes(w.mem.buf),
                  re.sub(r" at 0x[0-9a-f]+", "", repr(sorted(dict(w.state).items()))),
                  repr(w.platform.counters()), lists))
        return verdict

    class _Out:
        def __init__(self, report):
            self.error = report.error if isinstance(report.error, Abandoned) else None
            if report.finding is not None:      # found mid-run: an outcome too
                seen.add((report.finding.oracle, report.finding.message))

    monkeypatch.setattr(world, "_end_checks", recording)
    rep = explore(lambda src: _Out(world.run_once(params, src, trace=False)),
                  preemption_bound=bound, por=por, **explore_kw)
    monkeypatch.undo()
    assert rep.exhausted
    return seen
