"""Call the policies' validate functions directly (a PolicyPack blocks in a gRPC server)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyProviderResource,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    StackValidationArgs,
)

from infra.policypack.rules import RESOURCE_POLICIES, STACK_POLICIES


def _opts(parent: str | None = None) -> PolicyResourceOptions:
    return PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [], parent)


def provider(resource_type: str, props: Mapping[str, Any], name: str = "provider") -> PolicyProviderResource:
    return PolicyProviderResource(
        resource_type, props, f"urn:pulumi:test::test::{resource_type}::{name}", name
    )


def resource_args(
    resource_type: str,
    props: Mapping[str, Any],
    name: str = "res",
    provider_resource: PolicyProviderResource | None = None,
    urn: str | None = None,
) -> ResourceValidationArgs:
    return ResourceValidationArgs(
        resource_type,
        props,
        urn or f"urn:pulumi:test::test::{resource_type}::{name}",
        name,
        _opts(),
        provider_resource,
    )


def policy_resource(resource_type: str, props: Mapping[str, Any], name: str = "res") -> PolicyResource:
    urn = f"urn:pulumi:test::test::{resource_type}::{name}"
    return PolicyResource(resource_type, props, urn, name, _opts(), None, None, [], {})


class Violations(list[str]):
    """A ReportViolation that keeps the messages."""

    def __call__(self, message: str, urn: str | None = None) -> None:
        self.append(message)


def check_resource(args: ResourceValidationArgs) -> dict[str, list[str]]:
    """Every resource policy on one resource: policy name -> violations (only non-empty)."""
    out: dict[str, list[str]] = {}
    for policy in RESOURCE_POLICIES:
        found = Violations()
        policy.validate(args, found)
        if found:
            out[policy.name] = list(found)
    return out


def check_stack(resources: list[PolicyResource]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for policy in STACK_POLICIES:
        found = Violations()
        policy.validate(StackValidationArgs(resources), found)
        if found:
            out[policy.name] = list(found)
    return out
