"""Split ring layout (VIRTIO 1.2, 2.7): field offsets, area sizes, alignment."""
from __future__ import annotations

import pytest

import vring
from vring.errors import InvalidRequest
from vring.layout import (AVAIL_ALIGN, DESC_ALIGN, USED_ALIGN, SplitLayout, avail_size,
                          check_queue_size, desc_table_size, used_size)


def test_area_sizes_follow_the_2_7_table():
    # desc 16*N, avail 6+2*N, used 6+8*N (2.7 "Virtqueues" size table)
    for n in (1, 2, 256, 32768):
        assert desc_table_size(n) == 16 * n
        assert avail_size(n) == 6 + 2 * n
        assert used_size(n) == 6 + 8 * n


def test_alignments_follow_the_2_7_table():
    assert (DESC_ALIGN, AVAIL_ALIGN, USED_ALIGN) == (16, 2, 4)


def test_setup_queue_places_each_area_at_its_alignment():
    for size in (1, 2, 4, 8, 256):
        mem = vring.GuestMemory()
        mem.alloc(3, 1)                      # knock the allocator off alignment
        cfg = vring.setup_queue(mem, size, 0)
        assert cfg.desc % 16 == 0 and cfg.avail % 2 == 0 and cfg.used % 4 == 0
        assert mem.read(cfg.desc, desc_table_size(size)) == bytes(desc_table_size(size))
        assert mem.read(cfg.used, used_size(size)) == bytes(used_size(size))


def test_field_offsets_of_avail_and_used_rings():
    lay = SplitLayout(8, desc=0x1000, avail=0x2000, used=0x3000)
    assert lay.desc_at(3) == 0x1000 + 48
    assert (lay.avail_flags, lay.avail_idx) == (0x2000, 0x2002)
    assert lay.avail_ring(0) == 0x2004 and lay.avail_ring(7) == 0x2004 + 14
    assert lay.used_event == 0x2004 + 16
    assert (lay.used_flags, lay.used_idx) == (0x3000, 0x3002)
    assert lay.used_ring(0) == 0x3004 and lay.used_ring(7) == 0x3004 + 56
    assert lay.avail_event == 0x3004 + 64


def test_field_names_cover_every_ring_field():
    lay = SplitLayout(4, desc=0x1000, avail=0x2000, used=0x3000)
    assert lay.field_name(0x1000 + 16 + 8) == "desc[1].len"
    assert lay.field_name(0x1000 + 14) == "desc[0].next"
    assert lay.field_name(0x2002) == "avail.idx"
    assert lay.field_name(0x2004 + 6) == "avail.ring[3]"
    assert lay.field_name(lay.used_event) == "avail.used_event"
    assert lay.field_name(lay.used_ring(2) + 4) == "used.ring[2].len"
    assert lay.field_name(lay.avail_event) == "used.avail_event"
    assert lay.field_name(0x4000) is None
    assert lay.region(lay.avail_event + 1) == "used" and lay.region(0x1000 + 64) is None


@pytest.mark.parametrize("size", [0, 3, 6, 65536, -2, 1.0, "8"])
def test_queue_size_must_be_a_power_of_two_up_to_32768(size):
    with pytest.raises(InvalidRequest):
        check_queue_size(size)


def test_largest_legal_queue_size_is_accepted():
    check_queue_size(32768)
    SplitLayout(32768, 0, 0, 0)
