"""Helpers for the tests, the drills, the demo and the bench (entry-point layer)."""
