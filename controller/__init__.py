"""Yiwang: the compute-federation controller of the 1+32+N national government big-data system."""

__version__ = "0.1.0"
