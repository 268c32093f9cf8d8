"""Shared pytest setup: the Hypothesis profiles.

Rules: "ci" keeps every property and stateful test to a modest number of
examples with no deadline (CI machines are shared and slow; speed belongs to
benchmarks, not tests); "dev" explores more.  The profile comes from the
HYPOTHESIS_PROFILE environment variable, "dev" when unset.  Neither profile
derandomizes: a failure prints its reproduce blob instead.
"""
import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=25, deadline=None, derandomize=False, print_blob=True,
    stateful_step_count=30, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile(
    "dev", max_examples=100, deadline=None, derandomize=False, print_blob=True,
    stateful_step_count=50, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))
