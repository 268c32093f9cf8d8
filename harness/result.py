"""What every engine returns, and what `--json` prints (DESIGN.md, "Engines")."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class Finding:
    """One failure: which oracle fired, its message, and how to replay it."""

    oracle: str                 # e.g. "exactly-once", "lost-interrupt", "spec:chain-loop"
    message: str                # one line a person can act on
    repro: dict | None = None   # the repro document (see harness/repro.py), if any


@dataclass
class EngineResult:
    engine: str
    found: bool = False
    oracle: str | None = None
    message: str | None = None
    seconds: float = 0.0
    runs: int = 0
    repro: str | None = None    # path of the repro file written, if any
    extra: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        d = asdict(self)
        extra = d.pop("extra")
        d.update(extra)
        return d
