"""The scheduler runtime: interleavings, blocking, deadlock, step limit, failures."""

from harness.sched import (Deadlock, RandomSource, ReplaySource, Scheduler, StepLimit,
                           TaskFailed, explore)


def _two_tasks(addrs):
    """make_run for two tasks of two points each; addrs[task] = its two addresses."""
    def make_run(src):
        s = Scheduler(src)

        def body(mine):
            for i, a in enumerate(mine):
                s.point("w16", a, i)
        s.spawn("a", body, addrs[0])
        s.spawn("b", body, addrs[1])
        return s.run()
    return make_run


def test_two_tasks_of_two_points_have_c42_six_schedules():
    rep = explore(_two_tasks([(0x10, 0x20), (0x30, 0x40)]), preemption_bound=None, por=False)
    assert rep.exhausted and rep.executions == 6 and rep.failure is None


def test_preemption_bound_zero_leaves_only_the_two_serial_schedules():
    rep = explore(_two_tasks([(0x10, 0x20), (0x30, 0x40)]), preemption_bound=0, por=False)
    assert rep.exhausted and rep.executions == 2 and rep.bounded > 0


def test_sleep_sets_run_one_complete_execution_when_all_points_commute():
    rep = explore(_two_tasks([(0x10, 0x20), (0x30, 0x40)]), preemption_bound=None, por="sleep")
    assert rep.exhausted and rep.complete == 1 and rep.pruned > 0


def test_sleep_sets_keep_all_six_when_every_point_conflicts():
    rep = explore(_two_tasks([(0x10, 0x10), (0x10, 0x10)]), preemption_bound=None, por="sleep")
    assert rep.exhausted and rep.complete == 6 and rep.pruned == 0


def test_sleep_sets_keep_the_three_traces_of_store_buffering():
    # a: w x, r y   b: w y, r x  -> 3 Mazurkiewicz traces (the 4th order is cyclic)
    def make_run(src):
        s = Scheduler(src)
        s.spawn("a", lambda: (s.point("w16", 0x10, 1), s.point("r16", 0x20)))
        s.spawn("b", lambda: (s.point("w16", 0x20, 1), s.point("r16", 0x10)))
        return s.run()
    full = explore(make_run, preemption_bound=None, por=False)
    por = explore(make_run, preemption_bound=None, por="sleep")
    dpor = explore(make_run, preemption_bound=None, por=True)
    assert full.executions == 6 and por.complete == 3 and por.exhausted
    # DPOR without sleep sets (explore.py) may repeat a trace, but still prunes.
    assert 3 <= dpor.complete < full.executions and dpor.exhausted


def test_deadlock_names_every_blocked_task_and_its_reason():
    s = Scheduler(RandomSource(0))
    s.spawn("a", lambda: s.block("lock B", lambda: False))
    s.spawn("b", lambda: s.block("lock A", lambda: False))
    out = s.run()
    assert isinstance(out.error, Deadlock)
    assert out.error.blocked == {"a": "lock B", "b": "lock A"}


def test_block_wakes_when_another_task_makes_it_ready():
    s = Scheduler(RandomSource(3))
    box = []

    def waiter():
        s.block("wait-item", lambda: bool(box))
        box.append("seen")

    def producer():
        s.point("yield")
        box.append("item")
    s.spawn("w", waiter)
    s.spawn("p", producer)
    out = s.run()
    assert out.error is None and box == ["item", "seen"]


def test_step_limit_stops_a_livelock():
    s = Scheduler(RandomSource(0), max_steps=500)

    def spin():
        while True:
            s.yield_()
    s.spawn("spin", spin)
    out = s.run()
    assert isinstance(out.error, StepLimit) and out.steps == 501


def test_an_exception_in_a_task_becomes_task_failed_with_its_name():
    s = Scheduler(RandomSource(0))

    def bad():
        s.yield_()
        raise ValueError("boom")
    s.spawn("ok", lambda: [s.yield_() for _ in range(3)])
    s.spawn("bad", bad)
    out = s.run()
    assert isinstance(out.error, TaskFailed)
    assert out.error.task_name == "bad" and isinstance(out.error.error, ValueError)


def test_daemons_are_abandoned_and_their_cleanup_runs_when_the_work_is_done():
    s = Scheduler(RandomSource(1))
    cleaned = []

    def daemon():
        try:
            while True:
                s.yield_()
        finally:
            cleaned.append(s.current)
    s.spawn("d", daemon, daemon=True)
    s.spawn("w", lambda: [s.yield_() for _ in range(5)])
    out = s.run()
    assert out.error is None and cleaned == [None]
    assert s.tasks[1].done and not s.tasks[0].done


def test_a_task_spawned_during_the_run_is_scheduled():
    s = Scheduler(RandomSource(2))
    log = []

    def parent():
        s.yield_()
        s.spawn("child", lambda: (s.yield_(), log.append("child")))
        log.append("parent")
    s.spawn("parent", parent)
    out = s.run()
    assert out.error is None and sorted(log) == ["child", "parent"]
    assert [t.name for t in s.tasks] == ["parent", "child"]


def test_keyboard_interrupt_in_a_task_propagates_out_of_run():
    s = Scheduler(RandomSource(0))

    def stop():
        s.yield_()
        raise KeyboardInterrupt
    s.spawn("x", stop)
    s.spawn("y", lambda: [s.yield_() for _ in range(3)])
    try:
        s.run()
    except KeyboardInterrupt:
        pass
    else:
        raise AssertionError("KeyboardInterrupt was swallowed")


def test_schedulers_are_independent_objects():
    outs = []
    for _ in range(2):
        s = Scheduler(RandomSource(5))
        s.spawn("a", lambda s=s: [s.yield_() for _ in range(4)])
        s.spawn("b", lambda s=s: [s.yield_() for _ in range(4)])
        outs.append(s.run())
    assert outs[0].schedule == outs[1].schedule and outs[0].error is None


def test_trace_site_is_the_line_that_made_the_access():
    s = Scheduler(RandomSource(0))
    s.spawn("a", lambda: s.point("w16", 0x10, 7))
    out = s.run()
    (step, tid, kind, a, b, site), = out.events
    assert (step, tid, kind, a, b) == (1, 0, "w16", 0x10, 7)
    assert site[0] == __file__ and site[2].endswith("<lambda>")


def test_data_choices_are_recorded_and_replayed():
    def run(src):
        s = Scheduler(src)
        got = []
        s.spawn("a", lambda: got.append(s.choose_int(1000)))
        return s.run(), got
    out, got = run(RandomSource(9))
    out2, got2 = run(ReplaySource(out.schedule))
    assert out.schedule.choices == tuple(got) and got2 == got and out2.error is None


# --- Workers: task greenlets parked between runs -------------------------------

def _yielders(workers, seed, log=None):
    s = Scheduler(RandomSource(seed), workers=workers)

    def body(name):
        for _ in range(3):
            s.yield_()
        if log is not None:
            log.append(name)
    s.spawn("a", body, "a")
    s.spawn("b", body, "b")
    s.spawn("d", lambda: [s.yield_() for _ in iter(int, 1)], daemon=True)   # killed
    return s.run()


def test_runs_on_parked_workers_are_the_runs_on_fresh_greenlets():
    from harness.sched.runtime import Workers
    workers = Workers()
    for seed in range(20):
        fresh, reused = _yielders(None, seed), _yielders(workers, seed)
        assert (reused.schedule, reused.steps, reused.error) == (fresh.schedule, fresh.steps,
                                                                 fresh.error)
        assert [e[:5] for e in reused.events] == [e[:5] for e in fresh.events]
        assert [e[5] and e[5][0] for e in reused.events] == [e[5] and e[5][0]
                                                             for e in fresh.events]
    assert len(workers._idle) == 3          # the ended, and the killed daemon's, parked


def test_a_parked_worker_keeps_no_context_and_no_task_of_its_run():
    import contextvars
    import gc
    import weakref

    from harness.sched.runtime import Workers
    var = contextvars.ContextVar("var", default="unset")
    workers, seen = Workers(), []

    class Payload:
        pass

    def run(value, payload=None):
        s = Scheduler(RandomSource(0), workers=workers)

        def body(held):
            seen.append(var.get())
            var.set(value)
            s.yield_()
        s.spawn("t", body, payload)
        s.run()

    payload = Payload()
    gone = weakref.ref(payload)
    run("first", payload)
    del payload
    gc.collect()
    run("second")
    assert seen == ["unset", "unset"] and gone() is None and len(workers._idle) == 1


def test_a_task_dying_of_keyboard_interrupt_leaves_no_worker_behind():
    from harness.sched.runtime import Workers
    workers = Workers()
    s = Scheduler(RandomSource(0), workers=workers)

    def stop():
        s.yield_()
        raise KeyboardInterrupt
    s.spawn("x", stop)
    try:
        s.run()
    except KeyboardInterrupt:
        pass
    assert all(not g.dead for g in workers._idle) and len(workers._idle) == 0
