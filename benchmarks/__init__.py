"""Benchmarks that print measured figures (speed targets live here, not in unit tests)."""
