"""Trace-replay simulator: a virtual clock driving the real scheduler over a simulated 1+32+N."""
