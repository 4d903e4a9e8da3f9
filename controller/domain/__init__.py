"""The domain: plain types and rules with no I/O (job phases and their transitions, cluster
health, the reasons recorded with each change). The lowest layer: it imports nothing else of
the controller but ``controller.errors``."""
