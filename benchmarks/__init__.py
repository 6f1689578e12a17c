"""Benchmarks: one module per benchmark, each a command (`python -m benchmarks.NAME --help`) writing JSON."""
