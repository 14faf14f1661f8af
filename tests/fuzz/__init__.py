"""Fuzz tests: hostile upstreams through the real sources and engine (issue 12)."""
