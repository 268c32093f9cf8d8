"""The Hypothesis state machines on the reference ring, and stateful replay.

The machines run under the active Hypothesis profile (tests/conftest.py: "ci"
keeps them to a few seconds).  The replay tests pin each notification and
hardening oracle to a short program: it must stay quiet on the reference ring
and fire on the bug zoo's side that breaks that rule, so removing the check
makes these tests fail.
"""
from __future__ import annotations

import json
import types

import pytest

from harness.engines.stateful import run
from harness.stateful import (FEATURES, MaliciousDeviceMachine, RingMachine, features_word,
                              machine_for, replay_ops)

TestRingMachine = RingMachine.TestCase
TestMaliciousDeviceMachine = MaliciousDeviceMachine.TestCase

EV = features_word(["event_idx"])
BUG = "harness.bugs.plugins:{side}__{name}"


def doc(ops, machine="ring", driver="reference", device="reference"):
    return {"params": {"machine": machine}, "ops": ops, "driver": driver, "device": device}


def add(out=(1,), in_=(2,), kick=False):
    return ["add", {"out": list(out), "in_": list(in_), "kick": kick}]


PUSH = ["push", {"k": 0, "n": 2, "salt": 1, "signal": True}]

PROGRAMS = {
    # name: (oracle, machine, features, faulty side, bug, ops)
    "lost-kick": ("lost-kick", "ring", EV, "device", "avail-event-not-updated",
                  [add(kick=True), ["pop", {}], add(kick=True)]),
    "lost-kick-driver": ("lost-kick", "ring", EV, "driver", "need-event-off-by-one-kick",
                         [add(kick=True)]),
    "lost-interrupt-get-buf": ("lost-interrupt", "ring", EV, "driver", "used-event-not-updated",
                               [add(kick=True), ["pop", {}], PUSH, ["reap", {}],
                                add(kick=True), ["pop", {}], PUSH]),
    "lost-interrupt-device": ("lost-interrupt", "ring", EV, "device",
                              "need-event-off-by-one-interrupt",
                              [add(), ["pop", {}], ["enable_cb", {}], PUSH]),
    "enable-cb-recheck": ("re-enable-reports-pending", "ring", 0, "driver",
                          "enable-cb-no-recheck",
                          [add(), ["pop", {}], ["disable_cb", {}], PUSH, ["enable_cb", {}]]),
    "flags-with-event-idx": ("suppression-flags-legal", "ring", EV, "driver",
                             "avail-flags-with-event-idx", [["disable_cb", {}]]),
    "push-publishes": ("published-work-is-visible", "ring", features_word(["in_order"]),
                       "device", "in-order-device-reorders",
                       [add(), ["pop", {}], ["push", {"k": 0, "n": 2, "salt": 1,
                                                      "signal": False}]]),
    "used-id-unchecked": ("hardening", "hardening", 0, "driver", "used-id-unchecked",
                          [add(), ["write_used", {"slot": 0, "id": 3, "len": 0}],
                           ["set_used_idx", {"value": 1}], ["get_buf", {}]]),
    "used-len-unchecked": ("length-bound", "hardening", 0, "driver", "used-len-unchecked",
                           [add(), ["write_used", {"slot": 0, "id": 0, "len": 9}],
                            ["set_used_idx", {"value": 1}], ["get_buf", {}]]),
}


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_each_oracle_is_quiet_on_the_reference_and_fires_on_its_bug(name):
    oracle, machine, features, side, bug, ops = PROGRAMS[name]
    program = [["init", {"size": 4, "features": features | features_word([])}]] + ops
    assert replay_ops(doc(program, machine)) is None
    spec = BUG.format(side=side, name=bug.replace("-", "_"))
    finding = replay_ops(doc(program, machine, **{side: spec}))
    assert finding is not None and finding.oracle == oracle, finding


def test_replay_runs_a_clean_program_to_quiescence():
    ops = [["init", {"size": 2, "features": features_word(sorted(FEATURES))}],
           add(out=(3, 0), in_=()), add(in_=(5,), kick=True), ["pop", {}],
           ["push_batch", {"count": 1, "n": 2, "salt": 3}], ["reap", {}], ["quiesce", {}]]
    assert replay_ops(json.loads(json.dumps(doc(ops)))) is None


def test_replay_rejects_a_malformed_program():
    from harness.repro import ReproError
    with pytest.raises(ReproError):
        replay_ops(doc([["add", {}]]))
    with pytest.raises(ReproError):
        replay_ops(doc([["init", {"size": 2, "features": 0}], ["format_disk", {}]]))


def test_machines_accept_plugin_specs():
    cls = machine_for("ring", driver="vring.split.driver:make", device="reference")
    assert cls.driver_spec == "vring.split.driver:make" and issubclass(cls, RingMachine)


def test_the_engine_runs_clean_on_the_reference_within_its_budget(tmp_path):
    opts = types.SimpleNamespace(time=0.5, seed=3, driver=None, device=None, out=str(tmp_path))
    result = run(opts)
    assert not result.found and result.runs > 0 and result.extra["seed"] == 3
    assert list(tmp_path.iterdir()) == []


def test_the_engine_reports_a_bad_plugin_spec_as_a_plugin_error_not_a_finding():
    from vring.contract import PluginError
    opts = types.SimpleNamespace(time=1, seed=1, driver="no_such_vf_module:make",
                                 device=None, out=None)
    with pytest.raises(PluginError):
        run(opts)
