"""The plug-in contract: 'module:callable' specs, the built-in 'reference', errors."""
from __future__ import annotations

import sys
import types

import pytest

import vring
from vring.contract import (DEVICE_METHODS, DRIVER_METHODS, PluginError, build, resolve,
                            setup_queue)
from vring.split.device import SplitDevice
from vring.split.driver import SplitDriver


@pytest.fixture
def plugin_module(monkeypatch):
    """A throwaway module 'vf_test_plugin' holding a few make callables."""
    mod = types.ModuleType("vf_test_plugin")
    calls = []

    def make_driver(mem, cfg, platform):
        calls.append((mem, cfg, platform))
        return SplitDriver(mem, cfg, platform)

    class Incomplete:
        def __init__(self, mem, cfg, platform):
            pass

        def pop(self):
            return None

    mod.make_driver = make_driver
    mod.make_incomplete = Incomplete
    mod.not_callable = 42
    mod.calls = calls
    monkeypatch.setitem(sys.modules, "vf_test_plugin", mod)
    return mod


def test_reference_is_a_builtin_name_for_both_sides():
    drv, dev, _, _ = vring.open_queue(4, 0)
    assert isinstance(drv, SplitDriver) and isinstance(dev, SplitDevice)
    assert resolve("reference", "driver") is resolve("vring.split.driver:make", "driver")


def test_module_callable_spec_is_loaded_and_called_with_mem_cfg_platform(plugin_module):
    mem = vring.GuestMemory()
    cfg = setup_queue(mem, 8, 0)
    platform = vring.Platform()
    drv = build("vf_test_plugin:make_driver", "driver", mem, cfg, platform)
    assert isinstance(drv, SplitDriver)
    assert plugin_module.calls == [(mem, cfg, platform)]


def test_open_queue_builds_a_plugin_side(plugin_module):
    drv, dev, mem, cfg = vring.open_queue(4, 0, driver="vf_test_plugin:make_driver")
    drv.add_sgs([(mem.base, 4)], [], "t")
    assert dev.pop().head == 0 and len(plugin_module.calls) == 1


@pytest.mark.parametrize("spec", ["nocolon", ":make", "vring.split.driver:", ""])
def test_malformed_spec_is_a_plugin_error(spec):
    with pytest.raises(PluginError, match="MODULE:CALLABLE"):
        resolve(spec, "driver")


def test_unimportable_module_is_a_plugin_error():
    with pytest.raises(PluginError, match="cannot import"):
        resolve("no_such_module_vf:make", "device")


@pytest.mark.parametrize("attr", ["missing", "not_callable"])
def test_missing_or_non_callable_attribute_is_a_plugin_error(plugin_module, attr):
    with pytest.raises(PluginError, match="no callable"):
        resolve(f"vf_test_plugin:{attr}", "driver")


def test_an_object_lacking_contract_methods_is_a_plugin_error(plugin_module):
    mem = vring.GuestMemory()
    cfg = setup_queue(mem, 4, 0)
    with pytest.raises(PluginError, match="missing contract method") as info:
        build("vf_test_plugin:make_incomplete", "device", mem, cfg, vring.Platform())
    for name in set(DEVICE_METHODS) - {"pop"}:
        assert name in str(info.value)


def test_unknown_side_is_a_plugin_error():
    with pytest.raises(PluginError):
        resolve("reference", "bus")


def test_plugin_errors_are_virtio_errors():
    assert issubclass(PluginError, vring.VirtioError)


def test_the_reference_sides_offer_every_contract_method():
    drv, dev, _, _ = vring.open_queue(2, 0)
    assert all(callable(getattr(drv, m)) for m in DRIVER_METHODS)
    assert all(callable(getattr(dev, m)) for m in DEVICE_METHODS)


def test_setup_queue_refuses_the_packed_ring_for_now():
    from vring.features import F_RING_PACKED
    with pytest.raises(PluginError):
        setup_queue(vring.GuestMemory(), 4, F_RING_PACKED)
