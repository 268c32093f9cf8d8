"""Where every field of a split virtqueue lives (VIRTIO 1.2, 2.7).

All ring field offsets are computed here and nowhere else.

    desc (align 16)          avail (align 2)            used (align 4)
    +-------------------+    +----------------------+   +-------------------------+
    | addr   le64  +0   |    | flags      le16 +0   |   | flags        le16 +0    |
    | len    le32  +8   |    | idx        le16 +2   |   | idx          le16 +2    |
    | flags  le16  +12  |    | ring[N]    le16 +4   |   | ring[N]: id  le32 +4+8i |
    | next   le16  +14  |    | used_event le16 +4+2N|   |          len le32 +8+8i |
    +-------------------+    +----------------------+   | avail_event  le16 +4+8N |
      x N (16 bytes each)                               +-------------------------+
"""
from __future__ import annotations

from dataclasses import dataclass

from .errors import InvalidRequest
from .features import MAX_QUEUE_SIZE

DESC_SIZE = 16
DESC_ADDR, DESC_LEN, DESC_FLAGS, DESC_NEXT = 0, 8, 12, 14
USED_ELEM_SIZE = 8

DESC_ALIGN, AVAIL_ALIGN, USED_ALIGN = 16, 2, 4  # 2.7 table of alignments


def desc_table_size(n: int) -> int:
    return DESC_SIZE * n


def avail_size(n: int) -> int:
    return 6 + 2 * n


def used_size(n: int) -> int:
    return 6 + USED_ELEM_SIZE * n


def check_queue_size(n: int) -> None:
    # 2.7: "Queue Size ... a power of 2"; the maximum is 32768.
    if not (isinstance(n, int) and 0 < n <= MAX_QUEUE_SIZE and n & (n - 1) == 0):
        raise InvalidRequest(f"queue size {n!r} is not a power of two in 1..{MAX_QUEUE_SIZE}")


@dataclass(frozen=True)
class SplitLayout:
    """Absolute guest addresses of the fields of one split ring."""

    size: int
    desc: int
    avail: int
    used: int

    def __post_init__(self):
        check_queue_size(self.size)

    # descriptor table
    def desc_at(self, i: int) -> int:
        return self.desc + DESC_SIZE * i

    # available ring
    @property
    def avail_flags(self) -> int:
        return self.avail

    @property
    def avail_idx(self) -> int:
        return self.avail + 2

    def avail_ring(self, slot: int) -> int:
        return self.avail + 4 + 2 * slot

    @property
    def used_event(self) -> int:
        return self.avail + 4 + 2 * self.size

    # used ring
    @property
    def used_flags(self) -> int:
        return self.used

    @property
    def used_idx(self) -> int:
        return self.used + 2

    def used_ring(self, slot: int) -> int:
        return self.used + 4 + USED_ELEM_SIZE * slot

    @property
    def avail_event(self) -> int:
        return self.used + 4 + USED_ELEM_SIZE * self.size

    def region(self, addr: int) -> str | None:
        """Name the ring area that holds addr, for traces and the monitor."""
        n = self.size
        if self.desc <= addr < self.desc + desc_table_size(n):
            return "desc"
        if self.avail <= addr < self.avail + avail_size(n):
            return "avail"
        if self.used <= addr < self.used + used_size(n):
            return "used"
        return None

    def field_name(self, addr: int) -> str | None:
        """'desc[3].len', 'avail.idx', 'used.ring[1].id', ... or None."""
        n = self.size
        if self.desc <= addr < self.desc + desc_table_size(n):
            i, off = divmod(addr - self.desc, DESC_SIZE)
            fld = {0: "addr", 8: "len", 12: "flags", 14: "next"}.get(off, f"+{off}")
            return f"desc[{i}].{fld}"
        if self.avail <= addr < self.avail + avail_size(n):
            off = addr - self.avail
            if off == 0:
                return "avail.flags"
            if off == 2:
                return "avail.idx"
            if off == 4 + 2 * n:
                return "avail.used_event"
            return f"avail.ring[{(off - 4) // 2}]"
        if self.used <= addr < self.used + used_size(n):
            off = addr - self.used
            if off == 0:
                return "used.flags"
            if off == 2:
                return "used.idx"
            if off == 4 + USED_ELEM_SIZE * n:
                return "used.avail_event"
            i, r = divmod(off - 4, USED_ELEM_SIZE)
            return f"used.ring[{i}].{'id' if r < 4 else 'len'}"
        return None
