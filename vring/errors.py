"""The error tree of vring (part of the plug-in contract).

    VirtioError
    ├── BadAddress          an access outside every mapped region of GuestMemory
    ├── QueueFull           add_sgs found too few free descriptors (Linux: -ENOSPC)
    ├── QueueBroken         the driver was marked broken earlier (Linux: -EIO)
    ├── InvalidRequest      the caller misused the API (empty request, bad token, ...)
    └── SpecViolation       a peer broke a normative rule of VIRTIO 1.2
        ├── DriverViolation     the driver broke it; the device detects it
        └── DeviceViolation     the device broke it; the driver detects it

Every SpecViolation leaf names its rule, the spec section that states it and
the side that broke it, like h11's Local/RemoteProtocolError.  Section titles are
those of ../shared/spec/split-ring.tex ("2.7.x" numbering of VIRTIO 1.2).
"""
from __future__ import annotations


class VirtioError(Exception):
    """Base of every error vring raises on purpose."""


class BadAddress(VirtioError):
    """An access to guest memory outside every mapped region."""

    def __init__(self, addr: int, size: int):
        super().__init__(f"guest access of {size} bytes at {addr:#x} is outside memory")
        self.addr = addr
        self.size = size


class QueueFull(VirtioError):
    """Not enough free descriptors for the request (Linux returns -ENOSPC)."""


class QueueBroken(VirtioError):
    """The queue was marked broken after the device misbehaved (Linux: -EIO)."""


class InvalidRequest(VirtioError):
    """The caller used the API wrongly: not a protocol violation by a peer."""


class SpecViolation(VirtioError):
    """A peer broke a normative rule.  Leaves set rule, section and side."""

    rule: str = "spec"
    section: str = "2.7 Split Virtqueues"
    side: str = "?"
    clause: str = ""

    def __init__(self, detail: str = ""):
        self.detail = detail
        super().__init__(f"{self.side} broke {self.rule} ({self.section}): "
                         f"{self.clause}{' - ' + detail if detail else ''}")


class DriverViolation(SpecViolation):
    """The driver broke a rule; raised by the device side."""

    side = "driver"


class DeviceViolation(SpecViolation):
    """The device broke a rule; raised by the driver side."""

    side = "device"


# Section numbers of VIRTIO 1.2 chapter 2.7 (split-ring.tex), requirement subsections.
_DESC = "2.7.5.2 Driver Requirements: The Virtqueue Descriptor Table"
_INDIRECT = "2.7.5.3.1 Driver Requirements: Indirect Descriptors"
_AVAIL = "2.7.6.1 Driver Requirements: The Virtqueue Available Ring"
_USED = "2.7.8 The Virtqueue Used Ring"
_USED_DEV = "2.7.8.2 Device Requirements: The Virtqueue Used Ring"
_INORDER = "2.7.9 In-order use of descriptors"
_FRAMING = "2.7.4.2 Driver Requirements: Message Framing"
_USED_NOTIF_DRV = "2.7.7.1 Driver Requirements: Used Buffer Notification Suppression"
_AVAIL_NOTIF_DEV = "2.7.10.2 Device Requirements: Available Buffer Notification Suppression"


def _leaf(base, name, rule, section, clause, doc):
    cls = type(name, (base,), {"rule": rule, "section": section, "clause": clause,
                               "__doc__": doc, "__module__": __name__})
    return cls


# --- rules the device enforces on the driver (raised by pop) -----------------

DescriptorLoop = _leaf(
    DriverViolation, "DescriptorLoop", "chain-loop", _DESC,
    "a descriptor chain must not loop",
    "A chain revisits a descriptor: the 2^32-byte rule implies loops are forbidden.")
DescriptorIndexOutOfRange = _leaf(
    DriverViolation, "DescriptorIndexOutOfRange", "desc-index-range",
    "2.7.5 The Virtqueue Descriptor Table",
    "a head or next index must name a descriptor of the table",
    "A head in the available ring or a next field is not below the table size.")
ChainTooLong = _leaf(
    DriverViolation, "ChainTooLong", "chain-length", _INDIRECT,
    "a descriptor chain must not be longer than the queue size",
    "A chain (counting indirect entries) has more descriptors than the queue size.")
IndirectWithNext = _leaf(
    DriverViolation, "IndirectWithNext", "indirect-no-next", _INDIRECT,
    "INDIRECT and NEXT must not both be set",
    "A descriptor sets both VIRTQ_DESC_F_INDIRECT and VIRTQ_DESC_F_NEXT.")
NestedIndirect = _leaf(
    DriverViolation, "NestedIndirect", "indirect-not-nested", _INDIRECT,
    "INDIRECT must not be set inside an indirect table",
    "An indirect table holds a descriptor with VIRTQ_DESC_F_INDIRECT.")
IndirectNotNegotiated = _leaf(
    DriverViolation, "IndirectNotNegotiated", "indirect-feature", _INDIRECT,
    "INDIRECT must not be set unless VIRTIO_F_INDIRECT_DESC was negotiated",
    "A descriptor sets VIRTQ_DESC_F_INDIRECT without the feature.")
IndirectTableLength = _leaf(
    DriverViolation, "IndirectTableLength", "indirect-table-length", _INDIRECT,
    "an indirect table holds len/16 whole descriptors",
    "An indirect table's length is zero or not a multiple of 16.")
ReadableAfterWritable = _leaf(
    DriverViolation, "ReadableAfterWritable", "writable-after-readable", _FRAMING,
    "device-writable descriptors must follow every device-readable one",
    "A device-readable descriptor follows a device-writable one.")
ChainTooLarge = _leaf(
    DriverViolation, "ChainTooLarge", "chain-total-length", _DESC,
    "a descriptor chain must not be longer than 2^32 bytes in total",
    "The lengths of a chain add up to more than 2^32 bytes.")
BufferOutOfMemory = _leaf(
    DriverViolation, "BufferOutOfMemory", "buffer-in-memory", "2.7.5 The Virtqueue Descriptor Table",
    "a descriptor's addr and len must lie inside guest memory",
    "A buffer or indirect table lies (partly) outside guest memory.")
AvailIdxTooFarAhead = _leaf(
    DriverViolation, "AvailIdxTooFarAhead", "avail-idx-range", _AVAIL,
    "avail idx must not run more than the queue size ahead, nor go back",
    "The available idx moved more than the queue size past the device's position.")
InOrderNextNotSequential = _leaf(
    DriverViolation, "InOrderNextNotSequential", "in-order-next", _DESC,
    "with IN_ORDER, next must be x+1 (0 after the last descriptor)",
    "With VIRTIO_F_IN_ORDER a chained descriptor's next is not the following one.")

# --- rules the driver enforces on the device (raised by get_buf) -------------

UsedIdOutOfRange = _leaf(
    DeviceViolation, "UsedIdOutOfRange", "used-id-range", _USED,
    "a used id must name a descriptor of the table",
    "A used element's id is not below the queue size (Linux: 'id out of range').")
UsedIdNotHead = _leaf(
    DeviceViolation, "UsedIdNotHead", "used-id-in-flight", _USED,
    "a used id must be the head of a chain the driver made available",
    "A used element's id is not the head of a buffer in flight "
    "(Linux: 'id %u is not a head!').")
UsedIdxRunsAhead = _leaf(
    DeviceViolation, "UsedIdxRunsAhead", "used-idx-range", _USED,
    "used idx must not pass the number of buffers made available",
    "The used idx ran ahead of what the driver made available.")
UsedLenTooLarge = _leaf(
    DeviceViolation, "UsedLenTooLarge", "used-len-bound", _USED_DEV,
    "len counts bytes written into the device-writable part",
    "A used element's len exceeds the writable length of its buffer "
    "(Linux 5.16 'virtio_ring: validate used buffer length').")

# --- rules the harness's passive monitor enforces on stores ------------------

DeviceWroteDescriptor = _leaf(
    DeviceViolation, "DeviceWroteDescriptor", "device-no-desc-write",
    "2.7.5.1 Device Requirements: The Virtqueue Descriptor Table",
    "a device must not write to any descriptor table entry",
    "The device stored into the descriptor table.")
DeviceWroteReadable = _leaf(
    DeviceViolation, "DeviceWroteReadable", "device-no-readable-write",
    "2.7.5.1 Device Requirements: The Virtqueue Descriptor Table",
    "a device must not write to a device-readable buffer",
    "The device stored into a buffer the driver marked device-readable.")
AvailIdxDecremented = _leaf(
    DriverViolation, "AvailIdxDecremented", "avail-idx-monotonic",
    "2.7.6.1 Driver Requirements: The Virtqueue Available Ring",
    "a driver must not decrement the available idx",
    "The driver stored an avail idx that does not move forward.")
DriverWroteDeviceOwned = _leaf(
    DriverViolation, "DriverWroteDeviceOwned", "driver-no-owned-write", _DESC,
    "a driver must not change a descriptor the device owns",
    "The driver stored into a descriptor of a chain still in flight.")

AvailFlagsWithEventIdx = _leaf(
    DriverViolation, "AvailFlagsWithEventIdx", "avail-flags-zero-with-event-idx", _USED_NOTIF_DRV,
    "with VIRTIO_F_EVENT_IDX the driver must keep avail flags 0",
    "The driver stored a non-zero avail flags word although EVENT_IDX was negotiated.")
UsedFlagsWithEventIdx = _leaf(
    DeviceViolation, "UsedFlagsWithEventIdx", "used-flags-zero-with-event-idx", _AVAIL_NOTIF_DEV,
    "with VIRTIO_F_EVENT_IDX the device must keep used flags 0",
    "The device stored a non-zero used flags word although EVENT_IDX was negotiated.")
DriverWroteUsedRing = _leaf(
    DriverViolation, "DriverWroteUsedRing", "driver-no-used-write", _USED,
    "the used ring is only written by the device",
    "The driver stored into the used ring (other than at its initialisation).")
DeviceWroteAvailRing = _leaf(
    DeviceViolation, "DeviceWroteAvailRing", "device-no-avail-write",
    "2.7.6 The Virtqueue Available Ring",
    "the available ring is only written by the driver",
    "The device stored into the available ring.")
UsedIdxDecremented = _leaf(
    DeviceViolation, "UsedIdxDecremented", "used-idx-monotonic", _USED,
    "used idx only increases",
    "The device stored a used idx that does not move forward.")

UsedNotInOrder = _leaf(
    DeviceViolation, "UsedNotInOrder", "used-in-order", "2.7.9 In-order use of descriptors",
    "with IN_ORDER, buffers are used in the order they were made available",
    "With VIRTIO_F_IN_ORDER a used element names a chain out of order, or closes a "
    "batch of more buffers than used idx moved by.")

#: Every SpecViolation leaf, by its rule name (for reports and the bug zoo).
RULES: dict[str, type[SpecViolation]] = {
    cls.rule: cls
    for cls in list(globals().values())
    if isinstance(cls, type) and issubclass(cls, SpecViolation)
    and cls not in (SpecViolation, DriverViolation, DeviceViolation)
}
