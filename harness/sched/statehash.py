"""A digest of everything a scheduled run's future depends on (explore's state cache).

Theory of operation:
* A run is deterministic: from one state, the same choices give the same
  future.  So a search that reaches a state it has already explored, with no
  more preemptions left than it had then, can stop there (stateful search,
  as SPIN does, applied to the preemption-bounded space: a state explored
  with r preemptions left covers every later visit with r or fewer).
* The state is every object reachable from the scheduler: the running task,
  each task's suspended frames (code, position and locals), the pending
  memory-model actions, and `sched.roots` (the world: guest memory, the
  memory model's buffers, the platform, lockdep, queues, ring sides, oracles,
  scenario state).  `state_digest` serialises that graph with the C pickler,
  in a fixed order, and hashes it (BLAKE2b, 128 bits).  Pickle writes an
  object it meets again as a back-reference to its first position, so
  aliasing is part of the state and object identities are not.  Dicts, sets
  and lists keep their iteration order: two sets that iterate differently can
  make a program behave differently.
* `_Digest.reducer_override` covers what pickle cannot write or must not:
  functions and lambdas (their code and closure contents), bound methods,
  classes, modules, code objects and greenlets (by identity: they live as
  long as the process, and digests are only compared within one), guest
  memory (a 64-bit hash of its bytes, not the bytes), tasks (named by id: their contents go
  in once, up front), actions without their ids, and the scheduler without
  its history.
* A relaxed task's stale values that overlap no other are a set, not a
  list: which came first changes nothing a later step can do (their drops
  and reads commute); counting their order split equal states (draft III
  under relaxed, bound 1: 168,626 states against 105,862).
* History is not state: what the scheduler records (choices, steps, trace),
  the schedule source, and the ids of pending actions (numbered in creation
  order: the same actions can carry other numbers in an equivalent state).
  Frames of the scheduling plumbing (this package) are written as code and
  position only: their locals are the choice being made, which the task's
  next operation (`Task.next_op`) and blocked reason already say.  A
  finished task is written as finished: only its effects on shared state
  can change the future.
* What a frame does not show: what a suspended expression holds on the
  interpreter's stack (a `for` loop's iterator, the left operand of
  `a() + b()`).  So each task's history is part of its state too, as a
  hash chain of its operations at scheduling points and the values its
  loads returned (`Scheduler.observed`): a loop that took one more
  scheduling point, or a temporary that came from a load, shows there.
  Not seen: a temporary or loop position that came from plain Python state,
  or a loop whose turns only wait (waits are not in the chain), that left
  no trace in the task's operations or locals.  The outcome checks in
  tests/test_sched_statecache.py (litmus programs, random programs and whole
  scenarios against the plain search) guard that assumption.
"""
from __future__ import annotations

import hashlib
import io
import os
import pickle
import random
import sys
import types

from greenlet import getcurrent, greenlet

from vring.memory import GuestMemory

from .runtime import Action, Scheduler, Task

_HERE = os.path.dirname(os.path.abspath(__file__)) + os.sep

#: Scheduler attributes that are history or plumbing, never state (its tasks,
#: current task, pending actions and roots are written separately).
SCHED_SKIP = frozenset((
    "source", "_choose", "_choose_int", "_quick", "_choices", "steps", "events", "_skip",
    "_main", "_next_action", "max_steps", "trace", "_want_ops", "_single", "_opts",
    "_topts", "_alive", "_blocked", "_nblocked", "_live", "_state", "_error", "_ended",
    "_finishers", "workers", "current", "tasks", "_pending", "roots", "_values",
    "notes_values"))

_IDENTITY = (type, types.ModuleType, types.CodeType, types.BuiltinFunctionType,
             greenlet, types.FrameType)
_BODY = Scheduler._body.__code__
_ASK = Scheduler._ask.__code__


def _tag(*parts):
    """What a reduced object becomes (never called: digests are never loaded)."""
    return parts


def _frames(top) -> list:
    """(code, position, sorted locals) of each frame from `top` down to the
    task's body (excluded); plumbing frames without their locals."""
    out = []
    f = top
    while f is not None and f.f_code is not _BODY:
        code = f.f_code
        if code.co_filename.startswith(_HERE):
            out.append((id(code), f.f_lasti))
        else:
            # f_locals is the frame's own dict, refreshed on each access: its
            # key order records when names were first bound, so sort it.
            out.append((id(code), f.f_lasti, sorted(f.f_locals.items())))
        f = f.f_back
    return out


def _function(obj):
    cells = []
    for c in obj.__closure__ or ():
        try:
            cells.append(c.cell_contents)
        except ValueError:          # an empty cell
            cells.append(_tag)
    return _tag, ("f", id(obj.__code__)), (obj.__defaults__, cells)


def _memory(obj):
    # The C pickler writes a bytearray whole, without asking: hash the guest's
    # bytes here instead (64 KiB and more per digest).
    return _tag, ("g", id(type(obj)), hash(bytes(obj.buf))), [
        (k, v) for k, v in vars(obj).items() if k != "buf"]


def _identity(obj):
    return _tag, ("o", id(obj))


def _builtin(obj):
    owner = obj.__self__
    if isinstance(owner, (types.ModuleType, type(None))):
        return _tag, ("o", id(obj))
    return _tag, ("bm", obj.__name__), owner         # e.g. list.append


def _generic(obj):
    try:
        return obj.__reduce_ex__(2)
    except TypeError:               # cannot be reduced: identity only
        return _tag, ("o", id(obj))


def _stale_key(e):
    """A stale value (memmodel._Stale) without its id: whether it is offered is state."""
    return (e.owner, e.a, e.n, bytes(e.data), e.id >= 0)


def _canonical(stale):
    """Stale entries that overlap none of the others commute: their arrival
    order is not state.  Otherwise keep it (it decides which are offered)."""
    ranges = sorted((e.a, e.a + e.n) for e in stale)
    if any(ranges[i + 1][0] < ranges[i][1] for i in range(len(ranges) - 1)):
        return [_stale_key(e) for e in stale]
    return sorted(_stale_key(e) for e in stale)


def _view(v):
    return _tag, ("view",), (v.tid, v.mem, v.buf, _canonical(v.stale), v.epoch)


_EXACT = {
    types.FunctionType: _function,
    types.MethodType: lambda m: (_tag, ("m",), (m.__func__, m.__self__)),
    memoryview: lambda v: (_tag, ("v", hash(bytes(v)))),
    Task: lambda t: (_tag, ("t", t.id)),
    Scheduler: lambda s: (_tag, ("s",), [(k, v) for k, v in vars(s).items()
                                        if k not in SCHED_SKIP]),
    types.BuiltinFunctionType: _builtin,
}


def _action(tp):
    """An action (a memory model may subclass Action: its buffered stores and
    stale values are their own choices) without its id: whether it is offered
    now (id >= 0) is state, its number is history."""
    names = [n for k in reversed(tp.__mro__) for n in k.__dict__.get("__slots__", ())
             if n != "id"]
    return lambda a: (_tag, ("a", id(tp), a.id >= 0), [getattr(a, n, None) for n in names])


def _handler(tp):
    """How to reduce instances of tp (decided once per type)."""
    h = _EXACT.get(tp)
    if h is not None:
        return h
    from harness.memmodel import _View      # here: memmodel imports this package
    if tp is _View:
        return _view
    if issubclass(tp, Action):
        return _action(tp)
    if issubclass(tp, GuestMemory):
        return _memory
    if issubclass(tp, _IDENTITY):
        return _identity
    if issubclass(tp, random.Random):
        return lambda r: (_tag, ("r", r.getstate()))
    if issubclass(tp, BaseException):
        return lambda e: (_tag, ("e", id(type(e))), e.args)
    return _generic


_handlers: dict = {}


class _Digest(pickle.Pickler):
    """Reduces write (_tag, (kind, identity...), contents): pickle remembers the
    object before it writes the third part, so a cycle through it (a closure
    that refers back to its owner) becomes a back-reference, not a recursion."""

    def reducer_override(self, obj):
        if obj is _tag:
            return NotImplemented       # written by name, like any module function
        tp = type(obj)
        h = _handlers.get(tp)
        if h is None:
            h = _handlers[tp] = _handler(tp)
        return h(obj)


def state_digest(sched: Scheduler) -> bytes:
    """The digest of `sched`'s state (see the module docstring); call it from
    the schedule source's choose()."""
    running = getcurrent()
    # The running task is inside the source that asked for this digest: its
    # own frames start where the runtime asks the source.
    top = sys._getframe(1)
    while top is not None and top.f_code is not _ASK:
        top = top.f_back
    if top is None and any(t._g is running for t in sched.tasks):
        # Without that frame the running task's frames would go unseen.
        raise RuntimeError("state_digest: a task's decision that did not come "
                           "through Scheduler._ask")
    cur = sched.current
    head: list = [cur.id if cur is not None else None]
    for t in sched.tasks:
        g = t._g
        if g is None or g.dead or t.done:
            head.append((t.id, True))
            continue
        head.append((t.id, t.name, t.blocked_on, t.daemon, t.irq_context, t.fresh,
                     t.next_op, t._ready, t._fn, t._args,
                     _frames(top if g is running else g.gr_frame), sched.observed(t.id)))
    # Pending stale drops are a set too (their order is the order they arrived).
    from harness.memmodel import _Stale
    pend = list(sched._pending.values())
    head.append([a for a in pend if type(a) is not _Stale])
    head.append(sorted(_stale_key(a) for a in pend if type(a) is _Stale))
    head.append(sched)
    head.append(sched.roots)
    buf = io.BytesIO()
    _Digest(buf, protocol=5).dump(head)
    return hashlib.blake2b(buf.getbuffer(), digest_size=16).digest()
