"""The split virtqueue (VIRTIO 1.2, 2.7): driver, device and chain walk."""
from .chain import Chain, walk_chain
from .device import SplitDevice
from .driver import SplitDriver

__all__ = ["Chain", "walk_chain", "SplitDevice", "SplitDriver"]
