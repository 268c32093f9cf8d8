"""The platform a transport gives a virtqueue: notifications and locks.

This is the second instrumentation seam (the first is GuestMemory).  A ring
calls `notify_device()` to kick the device and the device side's owner calls
`interrupt()` to run the driver's callback; drivers that need locks take them
from `lock(name)` so that a harness can watch them.

`Platform` here is the plain, sequential one: notifications call the hooks
given at construction and a lock is a flag that refuses to be taken twice
(there is no other thread that could release it).
"""
from __future__ import annotations

from typing import Callable, Protocol

from .errors import VirtioError


class LockError(VirtioError):
    """A plain lock was taken while held or released while free."""


class Lock(Protocol):
    name: str

    def acquire(self, irqsave: bool = False) -> None: ...
    def release(self) -> None: ...
    def __enter__(self): ...
    def __exit__(self, *exc) -> None: ...


class PlainLock:
    """A lock for sequential code: taking it twice is a self-deadlock."""

    __slots__ = ("name", "held")

    def __init__(self, name: str):
        self.name = name
        self.held = False

    def acquire(self, irqsave: bool = False) -> None:
        if self.held:
            raise LockError(f"lock {self.name!r} taken while already held (self-deadlock)")
        self.held = True

    def release(self) -> None:
        if not self.held:
            raise LockError(f"lock {self.name!r} released while not held")
        self.held = False

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


class Platform:
    """Plain platform: calls on_notify / on_interrupt synchronously."""

    def __init__(self, on_notify: Callable[[], None] | None = None,
                 on_interrupt: Callable[[], None] | None = None):
        self.on_notify = on_notify
        self.on_interrupt = on_interrupt
        self.notifies = 0
        self.interrupts = 0
        self._locks: dict[str, PlainLock] = {}

    def notify_device(self) -> None:
        self.notifies += 1
        if self.on_notify is not None:
            self.on_notify()

    def interrupt(self) -> None:
        self.interrupts += 1
        if self.on_interrupt is not None:
            self.on_interrupt()

    def lock(self, name: str) -> PlainLock:
        lk = self._locks.get(name)
        if lk is None:
            lk = self._locks[name] = PlainLock(name)
        return lk
