"""The timeline names ring fields, one column per task, and marks the failure."""
from __future__ import annotations

import xml.etree.ElementTree as ET

from vring.layout import SplitLayout

from harness.timeline import RingNamer, describe, render_svg, render_text

LAY = SplitLayout(4, 0x1000, 0x1040, 0x1080)
SITE = ("/x/vring/split/driver.py", 160, "add_sgs")
EVENTS = [
    (1, 0, "w16", LAY.avail_idx, 3, SITE),
    (2, 1, "r16", LAY.used_idx, 2, ("/x/device.py", 95, "push")),
    (3, 0, "mb", None, None, SITE),
    (4, 0, "lock", "tx", None, None),
    (5, 0, "notify", None, None, None),
    (6, 1, "interrupt", None, None, None),
    (7, 1, "drain", LAY.used_idx, 3, None),
]
NAMES = {0: "driver", 1: "device"}


def test_actions_name_ring_fields():
    assert describe("w16", LAY.avail_idx, 3, LAY) == "W16 avail.idx=3"
    assert describe("r16", LAY.used_idx, 2, LAY) == "R16 used.idx -> 2"
    assert describe("r32", LAY.used_ring(1) + 4, 8, LAY) == "R32 used.ring[1].len -> 8"
    assert describe("lock", "tx", None, LAY) == "lock tx"
    assert describe("mb", None, None, LAY) == "mb"


def test_text_has_one_column_per_task_and_the_call_site():
    text = render_text(EVENTS, NAMES, width=22, layout=LAY)
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["step", "driver", "device"]
    row1 = next(ln for ln in lines if "W16 avail.idx=3" in ln)
    row2 = next(ln for ln in lines if "R16 used.idx -> 2" in ln)
    assert row2.index("R16") > row1.index("W16")          # device column is to the right
    assert "driver.py:160 add_sgs" in row1


def test_text_marks_the_failing_step():
    text = render_text(EVENTS, NAMES, layout=LAY, failing_step=3)
    marked = [ln for ln in text.splitlines() if ln.startswith(">>")]
    assert len(marked) == 1 and "mb" in marked[0] and "<== fails" in marked[0]
    # default: the last event
    last = [ln for ln in render_text(EVENTS, NAMES, layout=LAY).splitlines()
            if ln.startswith(">>")]
    assert "drain" in last[0]


def test_ring_namer_prefixes_queue_names():
    other = SplitLayout(4, 0x2000, 0x2040, 0x2080)
    namer = RingNamer({"tx": LAY, "rx": other})
    assert namer.field_name(other.avail_idx) == "rx:avail.idx"
    assert namer.field_name(0x9000) is None


def test_svg_is_well_formed_with_a_lane_per_task_and_markers():
    svg = render_svg(EVENTS, NAMES, "t <&> title", layout=LAY, failing_step=5)
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    texts = [t.text for t in root.iter(f"{ns}text")]
    assert "driver" in texts and "device" in texts and "t <&> title" in texts
    assert "W16 avail.idx=3" in texts
    lines = [ln for ln in root.iter(f"{ns}line") if ln.get("marker-end")]
    assert len(lines) == 2                                # notify + interrupt arrows
    red = [r for r in root.iter(f"{ns}rect") if r.get("stroke") == "#d00"]
    assert len(red) == 1


def test_svg_is_deterministic():
    assert render_svg(EVENTS, NAMES, "x", layout=LAY) == render_svg(EVENTS, NAMES, "x",
                                                                     layout=LAY)
