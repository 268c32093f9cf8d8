"""Guest memory: the only way ring code touches state both sides share.

One mapped region [base, base+size) over a writable buffer (a bytearray by
default; any writable buffer works, e.g. ctypes memory that C code can see).
Address 0 lies below the region so a NULL address is a BadAddress, never an
IndexError.  All fields are little-endian (VIRTIO 1.2, 2.7 "le16/le32/le64").

The barriers are the three of Linux's virtio_ring.h.  Here they are no-ops: on
plain sequential memory every store is visible at once.  The harness's memory
models subclass this class and give them meaning; ring code must call them
exactly where the spec and Linux place them.

The accessors run millions of times per campaign: each is one bounds check and
one precompiled struct call.
"""
from __future__ import annotations

import struct

from .errors import BadAddress, InvalidRequest

_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


class GuestMemory:
    """Little-endian guest memory with barriers and a first-fit allocator."""

    def __init__(self, size: int = 1 << 20, base: int = 0x1000, buffer=None):
        if buffer is None:
            buffer = bytearray(size)
        else:
            buffer = memoryview(buffer).cast("B")
            if buffer.readonly or len(buffer) < size:
                raise InvalidRequest("guest memory buffer must be writable and hold size bytes")
        self.base = base
        self.size = size
        self.buf = buffer
        self._end = base + size
        # Allocator state: sorted free extents and the size of each allocation.
        self._free: list[tuple[int, int]] = [(base, size)]
        self._allocs: dict[int, int] = {}

    # -- bounds ------------------------------------------------------------
    def contains(self, addr: int, n: int) -> bool:
        """True when [addr, addr+n) lies inside the mapped region."""
        return n >= 0 and self.base <= addr and addr + n <= self._end

    def _off(self, addr: int, n: int) -> int:
        off = addr - self.base
        if off < 0 or off + n > self.size:
            raise BadAddress(addr, n)
        return off

    # -- accessors (hot path) ---------------------------------------------
    def read16(self, addr: int) -> int:
        off = addr - self.base
        if off < 0 or off + 2 > self.size:
            raise BadAddress(addr, 2)
        return _U16.unpack_from(self.buf, off)[0]

    def read32(self, addr: int) -> int:
        off = addr - self.base
        if off < 0 or off + 4 > self.size:
            raise BadAddress(addr, 4)
        return _U32.unpack_from(self.buf, off)[0]

    def read64(self, addr: int) -> int:
        off = addr - self.base
        if off < 0 or off + 8 > self.size:
            raise BadAddress(addr, 8)
        return _U64.unpack_from(self.buf, off)[0]

    def write16(self, addr: int, value: int) -> None:
        off = addr - self.base
        if off < 0 or off + 2 > self.size:
            raise BadAddress(addr, 2)
        _U16.pack_into(self.buf, off, value & 0xFFFF)

    def write32(self, addr: int, value: int) -> None:
        off = addr - self.base
        if off < 0 or off + 4 > self.size:
            raise BadAddress(addr, 4)
        _U32.pack_into(self.buf, off, value & 0xFFFFFFFF)

    def write64(self, addr: int, value: int) -> None:
        off = addr - self.base
        if off < 0 or off + 8 > self.size:
            raise BadAddress(addr, 8)
        _U64.pack_into(self.buf, off, value & 0xFFFFFFFFFFFFFFFF)

    def read(self, addr: int, n: int) -> bytes:
        if n < 0:
            raise BadAddress(addr, n)
        off = self._off(addr, n)
        return bytes(self.buf[off:off + n])

    def write(self, addr: int, data: bytes) -> None:
        n = len(data)
        off = self._off(addr, n)
        self.buf[off:off + n] = data

    # -- barriers (virtio_wmb / virtio_rmb / virtio_mb) -------------------
    def wmb(self) -> None:
        """Order earlier stores before later stores."""

    def rmb(self) -> None:
        """Order earlier loads before later loads."""

    def mb(self) -> None:
        """Order earlier loads and stores before later loads and stores."""

    # -- allocator ---------------------------------------------------------
    def alloc(self, size: int, align: int = 16) -> int:
        """First-fit allocation of zeroed memory; deterministic for a given history."""
        if size <= 0 or align <= 0 or align & (align - 1):
            raise InvalidRequest(f"alloc({size}, align={align}): size > 0 and a power-of-two align")
        for i, (start, length) in enumerate(self._free):
            if length < size:
                continue                # too small at any alignment (padding fragments)
            addr = (start + align - 1) & ~(align - 1)
            pad = addr - start
            if pad + size > length:
                continue
            pieces = []
            if pad:
                pieces.append((start, pad))
            rest = length - pad - size
            if rest:
                pieces.append((addr + size, rest))
            self._free[i:i + 1] = pieces
            self._allocs[addr] = size
            off = addr - self.base
            self.buf[off:off + size] = bytes(size)
            return addr
        raise InvalidRequest(f"guest memory exhausted: no room for {size} bytes")

    def free(self, addr: int) -> None:
        size = self._allocs.pop(addr, None)
        if size is None:
            raise InvalidRequest(f"free({addr:#x}): not an allocation")
        free = self._free
        # Insert in address order, then merge with neighbours.
        i = 0
        while i < len(free) and free[i][0] < addr:
            i += 1
        free.insert(i, (addr, size))
        if i + 1 < len(free) and addr + size == free[i + 1][0]:
            free[i] = (addr, size + free[i + 1][1])
            del free[i + 1]
        if i > 0 and free[i - 1][0] + free[i - 1][1] == addr:
            free[i - 1] = (free[i - 1][0], free[i - 1][1] + free[i][1])
            del free[i]

    def allocated(self) -> int:
        """Bytes currently allocated (for leak checks)."""
        return sum(self._allocs.values())
