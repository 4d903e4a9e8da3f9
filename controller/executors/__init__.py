"""Executors: how a member cluster's agent runs assignments (see base.py)."""
