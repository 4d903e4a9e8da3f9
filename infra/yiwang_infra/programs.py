"""The three Pulumi programs, as functions of their typed config.

Each project's ``__main__.py`` only calls one of these; tests call them directly under mocks.
Order of tiers: national (primary, then backup) first; provinces and ministries read the national
stack's outputs through a StackReference.
"""

from __future__ import annotations

from typing import Any

import pulumi

from controller.topology.model import Tier
from infra.yiwang_infra.config import (
    ControllerRole,
    Mode,
    StackConfig,
    StackSecrets,
    cluster_entry,
    load_stack_config,
)
from infra.yiwang_infra.controller_plane import ControllerDatabase, ControllerDeployment
from infra.yiwang_infra.member_cluster import MemberCluster
from infra.yiwang_infra.platform import ClusterPlatform
from infra.yiwang_infra.registration import ControllerRegistration


def registration_body(config: StackConfig) -> dict[str, Any]:
    """The cluster's entry exactly as in policies/topology.yaml (absent fields stay absent)."""
    return cluster_entry(config.cluster)


def _cluster(config: StackConfig, secrets: StackSecrets) -> MemberCluster:
    kubeconfig = secrets.kubeconfig() if config.mode is Mode.existing else None
    return MemberCluster(config.cluster.name, config, kubeconfig=kubeconfig)


def national_main(config: StackConfig, secrets: StackSecrets) -> dict[str, Any]:
    """national-primary (controller active) or national-backup (controller standby)."""
    if config.cluster.tier is not Tier.national or config.controller is None:
        raise ValueError(f"{config.cluster.name} is not a national cluster")
    settings = config.controller
    federation = config.federation
    if federation is None:
        raise ValueError("national stacks need the federation key")
    cluster = _cluster(config, secrets)
    k8s_opts = pulumi.ResourceOptions(providers=[cluster.provider])
    platform = ClusterPlatform(
        f"{config.cluster.name}-platform",
        config,
        controller_url=settings.url,
        agent_token=secrets.agent_token(),
        monitoring_values={
            "scrape": {"controller": {"enabled": True}},
            "federation": {
                "enabled": bool(federation.members),
                "targets": [
                    {"cluster": m, "address": federation.member_address_template.format(cluster=m)}
                    for m in federation.members
                ],
            },
        },
        opts=k8s_opts,
    )

    outputs: dict[str, Any] = {}
    database_url = secrets.database_url()
    if database_url is None:
        if settings.role is ControllerRole.standby:
            database_url = pulumi.StackReference(settings.primary_stack).require_output("databaseUrl")
        elif config.mode is Mode.ack:
            database = ControllerDatabase(
                f"{config.cluster.name}-database", config, cluster, secrets.database_password()
            )
            database_url = database.url
        else:
            raise ValueError("an existing-mode primary needs the databaseUrl secret")
    if settings.role is ControllerRole.active:
        outputs["databaseUrl"] = pulumi.Output.secret(database_url)

    controller = ControllerDeployment(
        f"{config.cluster.name}-controller",
        config,
        namespace=platform.system_namespace.metadata.name,
        database_url=database_url,
        admin_token=secrets.admin_token(),
        opts=k8s_opts,
    )
    registration = ControllerRegistration(
        f"{config.cluster.name}-registration",
        url=settings.url,
        token=secrets.admin_token(),
        cluster=registration_body(config),
        opts=pulumi.ResourceOptions(depends_on=[controller, platform]),
    )
    outputs.update(
        {
            "clusterName": config.cluster.name,
            "region": config.region,
            "mode": config.mode.value,
            "controllerRole": settings.role.value,
            "controllerUrl": settings.url,
            "prometheusRemoteWriteUrl": federation.remote_write_url,
            "prometheusFederateUrl": federation.federate_url,
            "kubeconfig": cluster.kubeconfig,
            "registeredCluster": registration.id,
        }
    )
    return outputs


def member_main(config: StackConfig, secrets: StackSecrets, tier: Tier) -> dict[str, Any]:
    """A province's or a ministry's cluster, wired to the national stack."""
    if config.cluster.tier is not tier:
        raise ValueError(f"{config.cluster.name} is a {config.cluster.tier} cluster, not a {tier} one")
    national = pulumi.StackReference(config.national_stack)
    controller_url = config.controller_url or national.require_output("controllerUrl")
    remote_write_url = national.require_output("prometheusRemoteWriteUrl")
    cluster = _cluster(config, secrets)
    platform = ClusterPlatform(
        f"{config.cluster.name}-platform",
        config,
        controller_url=controller_url,
        agent_token=secrets.agent_token(),
        # the national Prometheus federates this one (pull); the chart has no remote_write yet
        monitoring_values={},
        opts=pulumi.ResourceOptions(providers=[cluster.provider]),
    )
    registration = ControllerRegistration(
        f"{config.cluster.name}-registration",
        url=controller_url,
        token=secrets.admin_token(),
        cluster=registration_body(config),
        opts=pulumi.ResourceOptions(depends_on=[platform]),
    )
    return {
        "clusterName": config.cluster.name,
        "region": config.region,
        "mode": config.mode.value,
        "controllerUrl": controller_url,
        "nationalPrometheusRemoteWriteUrl": remote_write_url,
        "kubeconfig": cluster.kubeconfig,
        "registeredCluster": registration.id,
    }


def run(tier: Tier) -> None:
    """Entry point of a project's ``__main__.py``: read config, build, export outputs."""
    config = load_stack_config()
    secrets = StackSecrets()
    outputs = national_main(config, secrets) if tier is Tier.national else member_main(config, secrets, tier)
    for key, value in outputs.items():
        pulumi.export(key, value)
