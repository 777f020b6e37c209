"""Benchmark objectives and performance scripts shipped with emews (not part of the core)."""
