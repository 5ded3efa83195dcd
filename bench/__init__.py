"""Benchmarks and comparisons that print figures (not tests)."""
