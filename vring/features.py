"""Feature bits and ring flags (VIRTIO 1.2, 6 "Reserved Feature Bits" and 2.7).

Names follow the ABI (include/uapi/linux/virtio_ring.h, virtio_config.h).
"""
from __future__ import annotations

# Feature bit numbers.
VIRTIO_RING_F_INDIRECT_DESC = 28
VIRTIO_RING_F_EVENT_IDX = 29
VIRTIO_F_VERSION_1 = 32
VIRTIO_F_RING_PACKED = 34
VIRTIO_F_IN_ORDER = 35

# The same, as masks over the negotiated feature word.
F_INDIRECT_DESC = 1 << VIRTIO_RING_F_INDIRECT_DESC
F_EVENT_IDX = 1 << VIRTIO_RING_F_EVENT_IDX
F_VERSION_1 = 1 << VIRTIO_F_VERSION_1
F_RING_PACKED = 1 << VIRTIO_F_RING_PACKED
F_IN_ORDER = 1 << VIRTIO_F_IN_ORDER

#: Features the reference split ring implements.
SUPPORTED = F_INDIRECT_DESC | F_EVENT_IDX | F_VERSION_1 | F_IN_ORDER

FEATURE_NAMES = {
    "indirect": F_INDIRECT_DESC,
    "event_idx": F_EVENT_IDX,
    "version_1": F_VERSION_1,
    "in_order": F_IN_ORDER,
}

# Descriptor flags (2.7.5).
VRING_DESC_F_NEXT = 1
VRING_DESC_F_WRITE = 2
VRING_DESC_F_INDIRECT = 4

# Available ring flags (2.7.7) and used ring flags (2.7.10).
VRING_AVAIL_F_NO_INTERRUPT = 1
VRING_USED_F_NO_NOTIFY = 1

MAX_QUEUE_SIZE = 32768


def has(features: int, mask: int) -> bool:
    return features & mask == mask


def parse_features(text: str) -> int:
    """'indirect,event_idx' -> feature word (VERSION_1 always set)."""
    word = F_VERSION_1
    for name in filter(None, (t.strip().lower() for t in text.split(","))):
        if name not in FEATURE_NAMES:
            raise ValueError(f"unknown feature {name!r} (known: {', '.join(FEATURE_NAMES)})")
        word |= FEATURE_NAMES[name]
    return word


def feature_names(word: int) -> str:
    return ",".join(n for n, m in FEATURE_NAMES.items() if word & m and n != "version_1")


def need_event(event_idx: int, new_idx: int, old: int) -> bool:
    """Should the side that moved an index from old to new notify the other?

    True when event_idx lies in [old, new) modulo 2^16 (2.7.7 / 2.7.10; Linux's
    vring_need_event).  The u16 arithmetic keeps it right across wrap-around.
    """
    return (new_idx - event_idx - 1) & 0xFFFF < (new_idx - old) & 0xFFFF
