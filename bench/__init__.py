"""Benchmarks against the project's stated limits (`python -m bench.run [--quick]`).

Each figure is a median of several runs after a warm-up, and every comparison
(replay vs a bare orjson loop, worker vs a bare aiokafka passthrough, one vs
two workers) is measured interleaved in the same run, so its ratio holds on a
busy machine even when the absolute numbers drift.
"""
