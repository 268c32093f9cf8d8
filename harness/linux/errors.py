"""Errors of the Linux target (harness/linux): each says what went wrong and what to do.

    VirtioError (vring.errors)
    ├── PluginError (vring.contract)
    │   ├── LinuxSourceMissing     the Debian linux-source-X package is not installed
    │   ├── LinuxBuildError        extracting or compiling virtio_ring.c failed
    │   ├── LinuxMemoryError       the GuestMemory is not memory C can address
    │   └── LinuxFeatureUnsupported a feature bit this kernel's ring does not implement
    ├── KernelBug                  BUG()/BUG_ON() fired inside virtio_ring.c
    ├── KernelWarning              WARN_ON() fired inside virtio_ring.c
    ├── NativeCrash                the C code killed its worker process (signal)
    └── SpecViolation (vring.errors)
        └── DriverViolation
            └── VringhRejected     vringh.c refused a chain for a reason no
                                   vring leaf names (its errno and message)

Device misbehaviour seen by the Linux driver is reported with vring's own
DeviceViolation leaves (UsedIdOutOfRange, UsedIdNotHead): the oracle is the
same whichever driver runs.  Likewise the chains vringh.c refuses
(`--device linux-vringh`) raise vring's DriverViolation leaves where one
matches (harness/linux/vringh.py), and VringhRejected otherwise.
"""
from __future__ import annotations

from vring.contract import PluginError
from vring.errors import DriverViolation, VirtioError


class LinuxSourceMissing(PluginError):
    """/usr/src/linux-source-X.tar.xz is absent: `apt-get install linux-source-X`."""


class LinuxBuildError(PluginError):
    """tar or gcc failed while building the ring library."""


class LinuxMemoryError(PluginError):
    """The driver needs a GuestMemory whose addresses are real (linux_memory())."""


class LinuxFeatureUnsupported(PluginError):
    """The requested feature bits are not implemented by this kernel's virtio_ring.c."""


class KernelBug(VirtioError):
    """BUG()/BUG_ON() in the kernel code: an internal invariant of the driver broke.

    The C call was abandoned at the BUG (longjmp back to the glue), as the
    kernel would kill the task; the queue is then marked broken.
    """

    def __init__(self, what: str, file: str, line: int):
        super().__init__(f"kernel BUG: {what} at {file}:{line}")
        self.what, self.file, self.line = what, file, line

    def __reduce__(self):                     # crosses the worker pipe (isolate.py)
        return type(self), (self.what, self.file, self.line)


class KernelWarning(VirtioError):
    """WARN_ON() fired in the kernel code (the call itself ran to its end)."""

    def __init__(self, what: str, file: str, line: int):
        super().__init__(f"kernel WARNING: {what} at {file}:{line}")
        self.what, self.file, self.line = what, file, line

    def __reduce__(self):
        return type(self), (self.what, self.file, self.line)


class NativeCrash(VirtioError):
    """A worker process running the C ring died from a signal or exited abnormally."""

    def __init__(self, detail: str, signal: int = 0):
        super().__init__(f"native crash in worker: {detail}")
        self.detail, self.signal = detail, signal

    def __reduce__(self):
        return type(self), (self.detail, self.signal)


class VringhRejected(DriverViolation):
    """vringh.c refused a chain (vringh_getdesc_user < 0) for a reason that no
    vring DriverViolation leaf names; `errno` and vringh's message say why."""

    rule = "vringh-rejected"
    section = "2.7 Split Virtqueues"
    clause = "the Linux vringh.c device refused the chain"

    def __init__(self, detail: str = "", errno: int = 0):
        self.errno = errno
        super().__init__(detail)

    def __reduce__(self):
        return type(self), (self.detail, self.errno)
