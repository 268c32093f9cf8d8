"""Engines: one module per engine, each exposing `run(opts) -> EngineResult`.

`harness.check.run_check` imports `harness.engines.<name>` by the --engine
option, so this package imports nothing itself: an engine's dependencies load
only when it is chosen.
"""
