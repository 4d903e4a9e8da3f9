"""Scheduler framework: snapshot -> filter -> score -> select -> reserve, over an ordered plugin list."""
