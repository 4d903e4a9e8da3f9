"""Shared library of the Yiwang Pulumi projects: typed config, components and programs."""
