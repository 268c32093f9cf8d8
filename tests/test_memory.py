"""GuestMemory: little-endian accessors, BadAddress bounds, and the allocator."""
from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from vring.errors import BadAddress, InvalidRequest
from vring.memory import GuestMemory


def test_fields_are_little_endian():
    mem = GuestMemory(size=64, base=0x1000)
    mem.write64(0x1000, 0x0102030405060708)
    assert mem.read(0x1000, 8) == bytes([8, 7, 6, 5, 4, 3, 2, 1])
    assert mem.read32(0x1000) == 0x05060708
    assert mem.read16(0x1006) == 0x0102


def test_stores_truncate_to_their_width():
    mem = GuestMemory(size=64)
    mem.write16(mem.base, 0x12345)
    mem.write32(mem.base + 4, -1)
    assert mem.read16(mem.base) == 0x2345
    assert mem.read32(mem.base + 4) == 0xFFFFFFFF


@pytest.mark.parametrize("op", ["read16", "read32", "read64"])
def test_reads_outside_memory_raise_bad_address_not_index_error(op):
    mem = GuestMemory(size=64, base=0x1000)
    width = int(op[4:]) // 8
    for addr in (0, 0x1000 - 1, 0x1000 + 64 - width + 1, 1 << 40):
        with pytest.raises(BadAddress):
            getattr(mem, op)(addr)


@pytest.mark.parametrize("op", ["write16", "write32", "write64"])
def test_writes_outside_memory_raise_bad_address(op):
    mem = GuestMemory(size=64, base=0x1000)
    with pytest.raises(BadAddress):
        getattr(mem, op)(0x1000 + 63, 1)
    with pytest.raises(BadAddress):
        getattr(mem, op)(0, 1)


def test_null_address_is_a_bad_address():
    mem = GuestMemory()
    with pytest.raises(BadAddress):
        mem.read(0, 1)
    with pytest.raises(BadAddress):
        mem.write(0, b"")


def test_bulk_read_write_bounds_and_negative_length():
    mem = GuestMemory(size=32, base=0x1000)
    mem.write(0x1000, b"x" * 32)
    assert mem.read(0x1000, 32) == b"x" * 32
    with pytest.raises(BadAddress):
        mem.read(0x1001, 32)
    with pytest.raises(BadAddress):
        mem.write(0x101F, b"ab")
    with pytest.raises(BadAddress):
        mem.read(0x1000, -1)


def test_contains_is_half_open():
    mem = GuestMemory(size=16, base=0x1000)
    assert mem.contains(0x1000, 16) and mem.contains(0x1010, 0)
    assert not mem.contains(0x1001, 16) and not mem.contains(0xFFF, 1)
    assert not mem.contains(0x1000, -1)


def test_barriers_are_callable_no_ops_on_plain_memory():
    mem = GuestMemory(size=16)
    mem.write16(mem.base, 7)
    mem.wmb(), mem.rmb(), mem.mb()
    assert mem.read16(mem.base) == 7


def test_alloc_is_aligned_zeroed_and_inside_memory():
    mem = GuestMemory(size=4096)
    a = mem.alloc(10, 1)
    mem.write(a, b"\xff" * 10)
    mem.free(a)
    for align in (1, 2, 4, 16, 64, 256):
        b = mem.alloc(10, align)
        assert b % align == 0 and mem.contains(b, 10)
        assert mem.read(b, 10) == bytes(10)
        mem.write(b, b"\xff" * 10)


def test_alloc_rejects_bad_requests_and_exhaustion():
    mem = GuestMemory(size=64)
    for size, align in ((0, 16), (-1, 16), (8, 3), (8, 0)):
        with pytest.raises(InvalidRequest):
            mem.alloc(size, align)
    with pytest.raises(InvalidRequest):
        mem.alloc(65)
    with pytest.raises(InvalidRequest):
        mem.free(mem.base + 8)


def test_free_twice_is_an_error():
    mem = GuestMemory(size=64)
    a = mem.alloc(8)
    mem.free(a)
    with pytest.raises(InvalidRequest):
        mem.free(a)


@given(st.lists(st.tuples(st.integers(1, 200), st.sampled_from([1, 2, 4, 8, 16, 64]),
                          st.booleans()), max_size=40))
def test_allocations_never_overlap_and_freeing_all_restores_one_extent(script):
    mem = GuestMemory(size=8192)
    live: dict[int, int] = {}
    for size, align, free_one in script:
        if free_one and live:
            addr = sorted(live)[len(live) // 2]
            mem.free(addr)
            del live[addr]
            continue
        try:
            addr = mem.alloc(size, align)
        except InvalidRequest:
            continue
        assert addr % align == 0 and mem.contains(addr, size)
        for other, n in live.items():
            assert addr + size <= other or other + n <= addr
        live[addr] = size
        assert mem.allocated() == sum(live.values())
    for addr in list(live):
        mem.free(addr)
    assert mem.allocated() == 0
    assert mem.alloc(8192, 1) == mem.base      # the free extents merged back


def test_an_external_buffer_must_be_writable_and_large_enough():
    with pytest.raises(InvalidRequest):
        GuestMemory(size=64, buffer=bytes(64))
    with pytest.raises(InvalidRequest):
        GuestMemory(size=64, buffer=bytearray(32))
    shared = bytearray(64)
    mem = GuestMemory(size=64, base=0x1000, buffer=shared)
    mem.write32(0x1000, 0xAABBCCDD)
    assert shared[:4] == b"\xdd\xcc\xbb\xaa"
