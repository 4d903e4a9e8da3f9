"""Yiwang compliance rules as a Pulumi policy pack (rules in :mod:`infra.policypack.rules`)."""
