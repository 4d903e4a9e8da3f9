"""`yiwang demo`: the whole loop on one machine (see run.py)."""
