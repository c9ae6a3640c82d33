"""Harnesses for tests and benchmarks that drive real components (such as Envoy)."""
