"""vring: a spec-exact reference virtqueue over explicit guest memory.

Plain, sequential Python: no threads, no globals, no imports from the harness.
All instrumentation enters through GuestMemory and the Platform.
"""
from .contract import QueueConfig, build, setup_queue
from .errors import (BadAddress, DeviceViolation, DriverViolation, QueueBroken,
                     QueueFull, SpecViolation, VirtioError)
from .memory import GuestMemory
from .platform import Platform


def open_queue(size: int = 8, features: int = 0, *, mem: GuestMemory | None = None,
               platform=None, driver: str = "reference", device: str = "reference"):
    """Allocate a ring and build both sides through the plug-in contract.

    Returns (driver, device, mem, cfg).
    """
    mem = mem if mem is not None else GuestMemory()
    platform = platform if platform is not None else Platform()
    cfg = setup_queue(mem, size, features)
    drv = build(driver, "driver", mem, cfg, platform)
    dev = build(device, "device", mem, cfg, platform)
    return drv, dev, mem, cfg


__all__ = ["GuestMemory", "Platform", "QueueConfig", "setup_queue", "build", "open_queue",
           "VirtioError", "SpecViolation", "DriverViolation", "DeviceViolation",
           "BadAddress", "QueueFull", "QueueBroken"]
