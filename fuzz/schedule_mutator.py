"""A libFuzzer custom mutator for the schedule target's input.

The input is a 4-byte header (scenario parameters) and then one byte per
scheduling or store-drain decision (fuzz/schedule.py, FuzzSource).  Byte
mutations of a corpus entry change a few decisions, and coverage of the ring
changes only when an ordering bug already shows, so on their own they rarely
reach a deep reordering: an unseeded search needs many preemptions and
out-of-order drains in one run (the random engine's strength).  These edits
add that, while keeping what coverage guidance found:

* `reroll_suffix`: keep the header and a prefix of the decisions, then
  continue with uniform random bytes (a random schedule from that point on);
* `preempt_window`: a run of preempting bytes (switches and drains chosen
  uniformly among the options);
* `calm_window`: a run of non-preempting bytes (one task runs ahead while
  its stores stay buffered, so a later drain can pick a newer store first);
* `reroll_header`: one new header byte (another scenario, model, shape or
  count, with the same schedule).

Rules: a pure function of (data, max_size, seed): randomness comes from the
seed (a hash of it picks the path, SplitMix(seed) drives an edit), so
libFuzzer's -seed reproduces a campaign.  BYTE_SHARE of the calls go to
libFuzzer's own byte mutations (atheris.Mutate).
"""
from __future__ import annotations

from fuzz.mutators import SplitMix, bytes_path
from harness.sched.fuzzsource import PREEMPT

HEADER = 4              # fuzz/schedule.py's (not imported: under atheris it is __main__)
BYTE_SHARE = 0.5
MAX_SUFFIX = 512        # runs decide < 1,000 times; more bytes are never read
MAX_WINDOW = 32


def _early(rng: SplitMix, n: int) -> int:
    """A position in range(n), log-uniform in scale: a run often reads only
    its first few dozen decision bytes, so an edit past them changes nothing."""
    return rng.randrange(max(1, min(n, 2 << rng.randrange(9))))


def reroll_suffix(data: bytearray, rng: SplitMix, max_size: int) -> bytearray:
    keep = HEADER + _early(rng, len(data) - HEADER + 1)
    room = max_size - keep
    if room <= 0:
        return data[:max_size]
    n = 1 + rng.randrange(min(room, MAX_SUFFIX))
    tail = b"".join(rng.getrandbits(64).to_bytes(8, "little") for _ in range((n + 7) // 8))
    return data[:keep] + tail[:n]


def _window(data: bytearray, rng: SplitMix, max_size: int, lo: int, hi: int) -> bytearray:
    if len(data) < HEADER + 1:
        data = data.ljust(HEADER + 1, b"\0")[:max_size]
    start = HEADER + _early(rng, len(data) - HEADER)
    end = min(start + 1 + rng.randrange(MAX_WINDOW), max_size)
    if end > len(data):
        data = data.ljust(end, b"\0")
    for k in range(start, end):
        data[k] = lo + rng.randrange(hi - lo)
    return data


def preempt_window(data: bytearray, rng: SplitMix, max_size: int) -> bytearray:
    return _window(data, rng, max_size, PREEMPT, 256)


def calm_window(data: bytearray, rng: SplitMix, max_size: int) -> bytearray:
    return _window(data, rng, max_size, 0, PREEMPT)


def reroll_header(data: bytearray, rng: SplitMix, max_size: int) -> bytearray:
    data = data.ljust(HEADER, b"\0")
    data[rng.randrange(HEADER)] = rng.randrange(256)
    return data[:max_size]


EDITS = (reroll_suffix, preempt_window, calm_window, reroll_header)


def schedule_mutate(data: bytes, rng: SplitMix, max_size: int) -> bytes:
    edit = EDITS[rng.randrange(len(EDITS))]
    return bytes(edit(bytearray(data), rng, max_size)[:max_size])


def custom_mutator(data: bytes, max_size: int, seed: int, byte_mutate=None) -> bytes:
    """The atheris custom_mutator entry point (byte_mutate: tests pass their own)."""
    if bytes_path(seed, BYTE_SHARE):
        if byte_mutate is None:
            import atheris  # loaded whenever libFuzzer calls us
            byte_mutate = atheris.Mutate
        return byte_mutate(data, max_size)
    return schedule_mutate(data, SplitMix(seed), max_size)
