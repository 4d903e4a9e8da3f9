"""Failover drills: scenario files, the runner that injects faults and measures budgets, reports."""
