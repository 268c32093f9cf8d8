"""harness: deterministic scheduling, memory models, locks, oracles and engines.

Imports vring, never the reverse.
"""
