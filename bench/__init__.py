"""Benchmarks of the agent against the mock portal; `python -m bench.run` (see bench/README.md)."""
