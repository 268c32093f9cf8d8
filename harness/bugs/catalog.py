"""The bug zoo: named faults that real virtqueues shipped, as switches.

Every entry says its class, the mechanism in one sentence, the spec rule it
breaks, and the history it re-creates where there is one.  `side` says where
the fault lives: in the driver or the device of the reference ring (switched
in through faults.py), or in a scenario's driver logic (locks, NAPI; the
scenarios honour `params["bug"]`).  `needs` lists the features and memory
model under which the fault can show at all.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from . import faults as f


@dataclass(frozen=True)
class Bug:
    name: str
    klass: str
    mechanism: str
    rule: str
    history: str
    side: str                       # "driver" | "device" | "scenario"
    make: object = None             # plug-in factory for the faulty side, if ring-level
    features: tuple[str, ...] = ()  # features it needs, e.g. ("event_idx",)
    memory_model: str = "sc"        # the weakest model that lets it show
    scenario: str = "net"           # where it shows best: a harness/scenarios name, or
    #                                 "malicious-driver" / "malicious-device" / "stateful":
    #                                 only the stateful machines (and fuzz targets) reach it
    tags: tuple[str, ...] = field(default=())


_MP = "message passing (MP+fencewmbonceonce+fencermbonceonce)"
_SB = "store buffering (SB+fencembonceonces)"

BUGS: list[Bug] = [
    # --- barriers ----------------------------------------------------------
    Bug("missing-wmb-avail-idx", "barrier",
        "add_sgs publishes avail idx without the write barrier, so the device can see "
        "the new idx before the ring entry or descriptors it exposes (" + _MP + ").",
        "2.7.13.3.1 Driver Requirements: Updating idx",
        "SeaBIOS 0f3783b3cc9b 'cleanup memory barrier usage' (write barrier before index "
        "write); Fuchsia zircon dfa4ed14de24 '[virtio] ring: Barriers before updating "
        "avail->idx/after reading used->idx'", "driver",
        f.barrier_fault("driver", ("add_sgs",), "wmb"), memory_model="relaxed"),
    Bug("missing-wmb-used-idx", "barrier",
        "push publishes used idx without the write barrier, so the driver can read a "
        "stale used element (" + _MP + ").",
        "2.7.8.2 Device Requirements: The Virtqueue Used Ring",
        "ACRN kernel PR #214 'vbs: set memory barrier for virtio_vq' (2019)", "device",
        f.barrier_fault("device", ("push", "push_batch"), "wmb"), memory_model="relaxed"),
    Bug("missing-rmb-get-buf", "barrier",
        "get_buf reads the used element without the read barrier after used idx, so it "
        "can see the element's old contents (" + _MP + ").",
        "2.7.14 Receiving Used Buffers From The Device",
        "DPDK 4b058fdd27ce 'net/virtio: add missing read barrier for packed dequeue'",
        "driver", f.barrier_fault("driver", ("get_buf",), "rmb"), memory_model="relaxed"),
    Bug("missing-rmb-pop", "barrier",
        "pop reads the avail ring entry and descriptors without the read barrier after "
        "avail idx, so it can walk stale descriptors (" + _MP + ").",
        "2.7.13.3.1 Driver Requirements: Updating idx (the device's pairing barrier)",
        "Firecracker PR #2169 'arm: fix possible load-load data inconsistency' (2020)",
        "device", f.barrier_fault("device", ("pop",), "rmb"), memory_model="relaxed"),
    Bug("kick-prepare-wmb-not-mb", "barrier",
        "kick_prepare orders the avail idx store only against later stores, not against "
        "the load of avail_event/flags, so driver and device can both miss the other's "
        "update and the kick is lost (" + _SB + ").",
        "2.7.13.4.1 Driver Requirements: Notifying The Device",
        "Linux a72caae21803 'virtio: correct the memory barrier in "
        "virtqueue_kick_prepare()' (2012)", "driver",
        f.barrier_fault("driver", ("kick_prepare",), "mb", becomes="wmb"),
        memory_model="tso", scenario="net"),
    Bug("poll-wmb-not-mb", "barrier",
        "enable_cb's re-check (poll) loads used idx without a full barrier after storing "
        "used_event/flags, so a buffer used meanwhile raises no interrupt and is not seen "
        "(" + _SB + ").",
        "2.7.7.1 Driver Requirements: Used Buffer Notification Suppression",
        "the draft III re-check; cf. Linux cbdadbbf0c79 'virtio_net: fix race in RX VQ "
        "processing' (2013)", "driver",
        f.barrier_fault("driver", ("poll", "enable_cb_delayed"), "mb", becomes="wmb"),
        memory_model="tso"),
    Bug("device-interrupt-wmb-not-mb", "barrier",
        "needs_interrupt loads used_event/flags without a full barrier after the used "
        "idx store, so it can skip the interrupt while the driver re-checks a stale "
        "used idx (" + _SB + ").",
        "2.7.7.2 Device Requirements: Used Buffer Notification Suppression",
        "DPDK 159793ac867b 'vhost: fix virtio freeze due to missed interrupt'; "
        "ACRN PR #2733 'dm: virtio: add memory barrier before notify FE' (2019)",
        "device", f.barrier_fault("device", ("needs_interrupt",), "mb", becomes="wmb"),
        memory_model="tso"),
    Bug("enable-notify-no-mb", "barrier",
        "enable_notify re-reads avail idx without a full barrier after clearing "
        "NO_NOTIFY/writing avail_event, so a buffer added meanwhile is neither kicked "
        "nor seen (" + _SB + ").",
        "2.7.10.2 Device Requirements: Available Buffer Notification Suppression",
        "", "device", f.barrier_fault("device", ("enable_notify",), "mb"),
        memory_model="tso"),
    # --- notification suppression -----------------------------------------
    Bug("need-event-off-by-one-kick", "notification",
        "kick_prepare's need_event forgets the '- 1', so the driver skips the kick when "
        "the device waits for exactly the first new entry.",
        "2.7.10.1 Driver Requirements: Available Buffer Notification Suppression",
        "vring_need_event, Linux a5c262c5fd83 'virtio_ring: support event idx feature' "
        "(2011) defines the arithmetic", "driver", f.subclass(f.NeedEventOffByOneDriver),
        features=("event_idx",)),
    Bug("need-event-off-by-one-interrupt", "notification",
        "needs_interrupt's need_event forgets the '- 1', so the device skips the "
        "interrupt the driver asked for with used_event.",
        "2.7.7.2 Device Requirements: Used Buffer Notification Suppression",
        "", "device", f.subclass(f.NeedEventOffByOneDevice), features=("event_idx",)),
    Bug("used-event-not-updated", "notification",
        "get_buf does not advance used_event, so with EVENT_IDX the device never again "
        "reaches the index that asks for an interrupt.",
        "2.7.7.1 Driver Requirements: Used Buffer Notification Suppression",
        "", "driver", f.store_fault("driver", ("get_buf",), "used_event"),
        features=("event_idx",)),
    Bug("avail-event-not-updated", "notification",
        "the device never advances avail_event, so with EVENT_IDX the driver stops "
        "kicking once the stale index is passed.",
        "2.7.10.2 Device Requirements: Available Buffer Notification Suppression",
        "", "device", f.store_fault("device", ("pop", "enable_notify"), "avail_event"),
        features=("event_idx",)),
    Bug("avail-flags-with-event-idx", "notification",
        "disable_cb also sets VRING_AVAIL_F_NO_INTERRUPT although EVENT_IDX was "
        "negotiated, and nothing clears it.",
        "2.7.7.1 Driver Requirements: Used Buffer Notification Suppression "
        "('the driver MUST set flags to 0')",
        "", "driver", f.subclass(f.AvailFlagsWithEventIdx), features=("event_idx",),
        scenario="stateful"),
    Bug("used-flags-with-event-idx", "notification",
        "disable_notify sets VRING_USED_F_NO_NOTIFY although EVENT_IDX was negotiated.",
        "2.7.10.2 Device Requirements: Available Buffer Notification Suppression "
        "('the device MUST set flags to 0')", "", "device",
        f.subclass(f.UsedFlagsWithEventIdx), features=("event_idx",),
        scenario="stateful"),
    # --- the seed's callback races ----------------------------------------
    Bug("enable-cb-no-recheck", "callback",
        "enable_cb turns callbacks on but never re-checks the used ring, so a buffer "
        "used just before is never delivered (the reason draft III's enable_cb returns "
        "a bool).", "2.7.7.1 Driver Requirements: Used Buffer Notification Suppression",
        "seed draft III", "driver", f.subclass(f.EnableCbNoRecheck), scenario="net-rx"),
    Bug("napi-complete-without-enable", "callback",
        "the NAPI poll completes under budget without re-enabling callbacks, so the "
        "next buffer raises no interrupt.", "2.7.7 Used Buffer Notification Suppression",
        "", "scenario", scenario="net-rx"),
    Bug("enable-cb-after-napi-complete", "callback",
        "the poll calls enable_cb after napi_complete, outside NAPI's one-CPU exclusion, "
        "so it runs while a poll started meanwhile on another CPU is inside get_buf "
        "(unserialised virtqueue ops; used_event can move backwards).",
        "2.7.7.1 Driver Requirements: Used Buffer Notification Suppression",
        "Linux cbdadbbf0c79 'virtio_net: fix race in RX VQ processing' (2013)", "scenario",
        features=("event_idx",), scenario="net-napi2"),
    Bug("napi-schedule-before-disable-cb", "callback",
        "the interrupt callback lets the NAPI poll run before it disables callbacks, so "
        "a poll that completes and re-enables them first is undone: callbacks stay off "
        "with NAPI idle and the next buffer raises no interrupt.",
        "2.7.7 Used Buffer Notification Suppression",
        "", "scenario", scenario="net-rx"),
    # --- locking ----------------------------------------------------------
    Bug("callback-under-ring-lock", "locking",
        "completion callbacks run with the ring lock held and take the driver's tx lock, "
        "while xmit takes the tx lock then the ring lock (draft II): ABBA.",
        "none (driver locking; the virtio API leaves locking to the driver)",
        "seed draft II", "scenario", scenario="net"),
    Bug("abba-tx-rx-locks", "locking",
        "the refill path takes the rx lock then the tx lock while TX reaping takes the "
        "tx lock then the rx lock.", "none (driver locking)", "", "scenario"),
    Bug("irq-lock-without-irqsave", "locking",
        "the tx lock is taken in the interrupt callback and, elsewhere, held in task "
        "context with interrupts enabled: an interrupt on that CPU deadlocks on it.",
        "none (driver locking; lockdep's irq-safe vs irq-unsafe rule)", "", "scenario"),
    Bug("tx-reap-without-lock", "locking",
        "TX completions are reaped from the interrupt path without the tx lock while "
        "xmit adds under it: two contexts operate one virtqueue at once.",
        "none (the virtio API requires callers to serialise a virtqueue)",
        "Linux 5a2f966d0f3f 'virtio_net: move tx vq operation under tx queue lock' "
        "(Fixes b92f1e6751a6)", "scenario"),
    # --- descriptor validation (device) -----------------------------------
    Bug("no-loop-detection", "validation",
        "the chain walk has neither a visited set nor a length bound, so a looping "
        "chain never ends.", "2.7.5.2 Driver Requirements: The Virtqueue Descriptor "
        "Table (loops are forbidden)",
        "microsoft/openvmm PR #2986 'virtio: fix descriptor chain validation' (cycle "
        "rejection)", "device", f.lenient_device("chain-loop", "chain-length"),
        scenario="malicious-driver"),
    Bug("next-out-of-range", "validation",
        "the walk follows a next (or head) index at or beyond the queue size, reading "
        "past the descriptor table.",
        "2.7.5 The Virtqueue Descriptor Table", "", "device",
        f.lenient_device("desc-index-range"), scenario="malicious-driver"),
    Bug("nested-indirect", "validation",
        "an indirect table may point at another indirect table (and at itself).",
        "2.7.5.3.1 Driver Requirements: Indirect Descriptors", "", "device",
        f.lenient_device("indirect-not-nested"), features=("indirect",),
        scenario="malicious-driver"),
    Bug("indirect-with-next", "validation",
        "a descriptor with both INDIRECT and NEXT is accepted.",
        "2.7.5.3.1 Driver Requirements: Indirect Descriptors", "", "device",
        f.lenient_device("indirect-no-next"), features=("indirect",),
        scenario="malicious-driver"),
    Bug("indirect-len-not-multiple", "validation",
        "an indirect table whose length is not a multiple of 16 is walked anyway.",
        "2.7.5.3.1 Driver Requirements: Indirect Descriptors", "", "device",
        f.lenient_device("indirect-table-length"), features=("indirect",),
        scenario="malicious-driver"),
    Bug("readable-after-writable", "validation",
        "a device-readable descriptor after a device-writable one is accepted.",
        "2.7.4.2 Driver Requirements: Message Framing",
        "Linux stable 'vringh: Use wiov->used to check for read/write desc order'",
        "device", f.lenient_device("writable-after-readable"), scenario="malicious-driver"),
    Bug("buffer-outside-memory", "validation",
        "a descriptor whose buffer (addr, len) is not inside guest memory is accepted and "
        "handed to the device's data path.",
        "2.7.5 The Virtqueue Descriptor Table (addr/len name guest memory)", "", "device",
        f.lenient_device("buffer-in-memory"), scenario="malicious-driver"),
    Bug("avail-idx-unchecked", "validation",
        "the device trusts an avail idx more than the queue size ahead and pops "
        "stale ring entries again.",
        "2.7.6.1 Driver Requirements: The Virtqueue Available Ring",
        "QEMU CVE-2016-5403 (virtqueue_pop: 'Virtqueue size exceeded')", "device",
        f.lenient_device("avail-idx-range"), scenario="malicious-driver"),
    # --- driver hardening -------------------------------------------------
    Bug("used-id-unchecked", "hardening",
        "get_buf looks up the used id without checking its range or that it is a head "
        "in flight.", "2.7.8 The Virtqueue Used Ring",
        "the checks Linux virtio_ring.c keeps: BAD_RING 'id %u out of range' / "
        "'id %u is not a head!'",
        "driver", f.subclass(f.UsedIdUnchecked), scenario="malicious-device"),
    Bug("used-len-unchecked", "hardening",
        "get_buf returns a used len larger than the buffer's writable part.",
        "2.7.8.2 Device Requirements: The Virtqueue Used Ring",
        "", "driver",
        f.subclass(f.UsedLenUnchecked), scenario="malicious-device"),
    Bug("broken-not-sticky", "hardening",
        "a device violation is reported once but the queue is not marked broken, so "
        "the driver goes on trusting the ring the device has already corrupted.",
        "none (driver hardening; 2.7.8 rules broken by the device)",
        "the rule Linux virtio_ring.c's BAD_RING keeps: vq->broken set for good", "driver",
        f.subclass(f.BrokenNotSticky), scenario="malicious-device"),
    Bug("detach-leaks-descriptors", "hardening",
        "detaching a multi-descriptor chain returns only its head to the free count.",
        "none (driver bookkeeping)", "", "driver", f.subclass(f.DetachLeaks),
        scenario="stateful"),
    Bug("detach-double-free", "hardening",
        "detaching a one-descriptor chain pushes its descriptor on the free list twice.",
        "none (driver bookkeeping)", "", "driver", f.subclass(f.DetachDoubleFree),
        scenario="stateful"),
    # --- IN_ORDER ---------------------------------------------------------
    Bug("in-order-device-reorders", "in-order",
        "with IN_ORDER negotiated the device completes the later of two buffers first; "
        "the driver takes the earlier one as used although it was not.",
        "2.7.9 In-order use of descriptors", "", "device",
        f.subclass(f.InOrderDeviceReorders), features=("in_order",), scenario="stateful"),
    Bug("in-order-batch-skips-free", "in-order",
        "a batched used entry returns only its last buffer; the earlier buffers of the "
        "batch are never handed back.", "2.7.9 In-order use of descriptors", "",
        "driver", f.subclass(f.InOrderBatchSkipsFree), features=("in_order",),
        scenario="stateful"),
    Bug("in-order-next-unchecked", "in-order",
        "with IN_ORDER the device follows any next instead of requiring the next "
        "descriptor in table order, so it walks a chain the driver cannot have made.",
        "2.7.9 In-order use of descriptors", "", "device",
        f.lenient_device("in-order-next"), features=("in_order",),
        scenario="malicious-driver"),
]
