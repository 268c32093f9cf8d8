"""PCT (Burckhardt et al. 2010): a depth-2 bug needs one priority change point."""
from harness.sched import PCTSource, RandomSource, Scheduler, TaskFailed


class TornPair(Exception):
    """The reader saw the writer's first store without its second."""


def _atomicity_run(src):
    # Writer: x = 1 then x = 2, several points apart; the bug is the reader
    # running exactly between them: two ordering constraints, depth 2.
    s = Scheduler(src)
    x = [0]

    def writer():
        for _ in range(3):
            s.yield_()
        s.point("w16", 0x10, 1)
        x[0] = 1
        s.point("w16", 0x10, 2)
        x[0] = 2
        for _ in range(3):
            s.yield_()

    def reader():
        s.point("r16", 0x10)
        if x[0] == 1:
            raise TornPair
    s.spawn("writer", writer)
    s.spawn("reader", reader)
    return s.run()


def _runs_to_find(source, limit):
    for k in range(limit):
        source.new_execution()
        out = _atomicity_run(source)
        if isinstance(out.error, TaskFailed) and isinstance(out.error.error, TornPair):
            return k + 1
    return None


def test_pct_depth2_finds_a_depth2_ordering_bug_within_bounded_runs():
    # p >= 1/(n k) = 1/(2*10) per run; 200 runs miss with probability < 1e-4.
    assert _runs_to_find(PCTSource(seed=1, depth=2, max_steps_hint=10), 200) is not None


def test_pct_depth1_never_finds_it_having_no_change_point():
    assert _runs_to_find(PCTSource(seed=1, depth=1, max_steps_hint=10), 200) is None


def test_pct_executions_are_deterministic_per_seed():
    a = [_atomicity_run(src).schedule for src in [PCTSource(3, 2, 10)]]
    b = [_atomicity_run(src).schedule for src in [PCTSource(3, 2, 10)]]
    assert a == b


def test_random_source_with_switch_probability_zero_never_preempts():
    out = _atomicity_run(RandomSource(0, switch_prob=0.0))
    # Only the first pick (nobody running yet) is free; then the runner keeps going.
    assert out.error is None and len(set(out.schedule.choices[1:])) <= 1
