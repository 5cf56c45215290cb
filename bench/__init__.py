"""Benchmarks and evaluations (run with `python -m bench.<module>`; see docs/benchmarks.md)."""
