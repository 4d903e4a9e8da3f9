"""The three Pulumi programs, as functions of their typed config.

Each project's ``__main__.py`` only calls one of these; tests call them directly under mocks.
Order of tiers: national (primary, then backup) first; provinces and ministries read the national
stack's outputs through a StackReference.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pulumi

from controller.store.patroni import multi_host_url
from controller.topology.model import Cluster, Tier, load_topology
from infra.yiwang_infra.charts import POLICIES_DIR
from infra.yiwang_infra.config import (
    AddressBlock,
    ControllerRole,
    Mode,
    StackConfig,
    StackSecrets,
    StoreKind,
    cluster_entry,
    load_stack_config,
)
from infra.yiwang_infra.controller_plane import (
    DATABASE_USER,
    ControllerDatabase,
    ControllerDeployment,
    ControllerEndpoint,
)
from infra.yiwang_infra.member_cluster import MemberCluster
from infra.yiwang_infra.national_store import NationalStoreMember
from infra.yiwang_infra.network_plan import plan_for
from infra.yiwang_infra.platform import ClusterPlatform, NetworkInputs
from infra.yiwang_infra.registration import AgentToken, ControllerRegistration


def registration_body(config: StackConfig) -> dict[str, Any]:
    """The cluster's entry exactly as in policies/topology.yaml (absent fields stay absent)."""
    return cluster_entry(config.cluster)


def _cluster(config: StackConfig, secrets: StackSecrets) -> MemberCluster:
    kubeconfig = secrets.kubeconfig() if config.mode is Mode.existing else None
    return MemberCluster(config.cluster.name, config, kubeconfig=kubeconfig)


def site_block(name: str, config: StackConfig | None = None) -> str:
    """A cluster's address block: this stack's own plan, else the block the address plan gives the
    cluster (an existing-mode site routes from its reserved block)."""
    if config is not None and config.cluster.name == name and config.network is not None:
        return config.network.vpc_cidr
    names = [c.name for c in load_topology_clusters()]
    return plan_for(names.index(name)).vpc_cidr


def api_server_blocks(config: StackConfig, cluster: MemberCluster) -> pulumi.Input[list[AddressBlock]]:
    """Where this cluster's pods reach its API server: ``platform.apiServer`` when set, else the ACK
    cluster's endpoints, else (existing mode) the site's reserved block on 443 and 6443."""
    if config.platform.api_server:
        return list(config.platform.api_server)
    if cluster.api_server is not None:
        return cluster.api_server
    pulumi.log.warn(
        f"{config.cluster.name}: platform.apiServer is not set; the NetworkPolicies let the agent, the "
        "Spark operator and Spark drivers reach the API server anywhere in the site's address block "
        f"{site_block(config.cluster.name, config)} on 443 and 6443: set it to the API server's addresses"
    )
    return [AddressBlock(cidr=site_block(config.cluster.name, config), ports=[443, 6443])]


def network_inputs(
    config: StackConfig, cluster: MemberCluster, controller_url: pulumi.Input[str]
) -> NetworkInputs:
    clusters = load_topology_clusters()
    national = [site_block(c.name, config) for c in clusters if c.tier is Tier.national]
    members = config.federation.members if config.federation else []
    return NetworkInputs(
        controller_url=controller_url,
        api_server=api_server_blocks(config, cluster),
        national_blocks=national,
        federated_member_blocks=[site_block(m, config) for m in members],
    )


def national_main(config: StackConfig, secrets: StackSecrets) -> dict[str, Any]:
    """national-primary (controller active) or national-backup (controller standby).

    Order inside the stack: cluster -> platform (namespaces, policies, monitoring) -> database ->
    controller release -> its intranet endpoint (ack mode) -> agent tokens and registrations through
    the controller's API (each waits for ``/readyz``) -> this cluster's agent. The primary also issues
    every member's agent token (secret output ``agentTokens``) and registers every member, so member
    stacks hold no admin token.
    """
    if config.cluster.tier is not Tier.national or config.controller is None:
        raise ValueError(f"{config.cluster.name} is not a national cluster")
    settings = config.controller
    federation = config.federation
    if federation is None:
        raise ValueError("national stacks need the federation key")
    name = config.cluster.name
    cluster = _cluster(config, secrets)
    k8s_opts = pulumi.ResourceOptions(providers=[cluster.provider])
    platform = ClusterPlatform(
        f"{name}-platform",
        config,
        monitoring_values=national_monitoring_values(config),
        network=network_inputs(config, cluster, settings.url),
        opts=k8s_opts,
    )

    outputs: dict[str, Any] = {}
    store = settings.store
    if store.kind is StoreKind.patroni:
        # this site's member of the replicated national store (docs/national.md)
        store_member = NationalStoreMember(
            f"{name}-store",
            config,
            cluster,
            superuser_password=secrets.store_password("superuser"),
            replication_password=secrets.store_password("replication"),
            database_password=secrets.database_password(),
            peer_cidrs=[*standby_cidrs(config), store.witness_cidr],
            own_cidr=own_cidr(config),
            backup_credentials=secrets.store_backup_credentials(),
            opts=k8s_opts,
        )
        if store_member.backup_bucket is not None:
            outputs["storeBackupBucket"] = store_member.backup_bucket
    database_url = secrets.database_url()
    database_cidrs: list[str] = []  # a given databaseUrl: anywhere
    if database_url is None:
        if settings.role is ControllerRole.standby:
            database_url = pulumi.StackReference(settings.primary_stack).require_output("databaseUrl")
            database_cidrs = standby_cidrs(config)  # the primary site's RDS
        elif store.kind is StoreKind.patroni:
            # both sites' controllers: libpq multi-host, the writable site only
            hosts = [store.postgres["beijing"], store.postgres["guian"]]
            database_url = secrets.database_password().apply(
                lambda pw: multi_host_url(hosts, DATABASE_USER, quote(pw, safe=""))
            )
            database_cidrs = [site_block(name, config), *standby_cidrs(config)]  # both sites' store
        elif config.mode is Mode.ack:
            database_cidrs = [site_block(name, config)]
            database = ControllerDatabase(
                f"{name}-database",
                config,
                cluster,
                secrets.database_password(),
                client_cidrs=standby_cidrs(config),
            )
            database_url = database.url
        else:
            raise ValueError("an existing-mode primary needs the databaseUrl secret")
    if settings.role is ControllerRole.active:
        outputs["databaseUrl"] = pulumi.Output.secret(database_url)

    admin_token = secrets.admin_token()
    controller = ControllerDeployment(
        f"{name}-controller",
        config,
        namespace=platform.system_namespace.metadata.name,
        database_url=database_url,
        admin_token=admin_token,
        database_cidrs=database_cidrs,
        opts=k8s_opts,
    )
    endpoint_deps: list[pulumi.Resource] = [controller]
    if config.mode is Mode.ack:
        endpoint = ControllerEndpoint(
            f"{name}-endpoint",
            config,
            cluster,
            namespace=platform.system_namespace.metadata.name,
            release=controller.release,
            tls_cert=secrets.controller_tls_cert(),
            tls_key=secrets.controller_tls_key(),
            opts=k8s_opts,
        )
        endpoint_deps.append(endpoint)
    after_endpoint = pulumi.ResourceOptions(depends_on=endpoint_deps)

    # every cluster this stack registers and issues an agent token for: itself; the primary all members
    clusters = [config.cluster]
    if settings.role is ControllerRole.active:
        members = set(federation.members)
        clusters += [c for c in load_topology_clusters() if c.name in members]
    tokens: dict[str, AgentToken] = {}
    registrations: dict[str, ControllerRegistration] = {}
    for member in clusters:
        registrations[member.name] = ControllerRegistration(
            f"{member.name}-registration",
            url=settings.url,
            token=admin_token,
            cluster=cluster_entry(member),
            opts=after_endpoint,
        )
        tokens[member.name] = AgentToken(
            f"{member.name}-agent-token",
            url=settings.url,
            token=admin_token,
            cluster=member.name,
            opts=pulumi.ResourceOptions(depends_on=[*endpoint_deps, registrations[member.name]]),
        )
    platform.install_agent(settings.url, tokens[name].agent_token, depends_on=[tokens[name]])
    if settings.role is ControllerRole.active:
        outputs["agentTokens"] = pulumi.Output.secret(
            pulumi.Output.all(**{n: t.agent_token for n, t in tokens.items() if n != name})
        )
    outputs.update(
        {
            "clusterName": name,
            "region": config.region,
            "mode": config.mode.value,
            "controllerRole": settings.role.value,
            "controllerUrl": settings.url,
            "prometheusRemoteWriteUrl": federation.remote_write_url,
            "prometheusFederateUrl": federation.federate_url,
            "kubeconfig": cluster.kubeconfig,
            "registeredCluster": registrations[name].id,
            "registeredClusters": pulumi.Output.all(*[r.id for r in registrations.values()]),
        }
    )
    return outputs


def national_monitoring_values(config: StackConfig) -> dict[str, Any]:
    federation = config.federation
    assert federation is not None
    return {
        "scrape": {"controller": {"enabled": True}},
        "federation": {
            "enabled": bool(federation.members),
            "targets": [
                {"cluster": m, "address": federation.member_address_template.format(cluster=m)}
                for m in federation.members
            ],
        },
        # the national Prometheus keeps its history across restarts and reschedules
        "persistence": {"enabled": True},
        # each national site routes its alerts (receivers: platform.monitoringChartValues)
        "alertmanager": {"enabled": True},
    }


def load_topology_clusters() -> list[Cluster]:
    return list(load_topology(POLICIES_DIR / "topology.yaml").clusters)


def own_cidr(config: StackConfig) -> str:
    """This national cluster's address range (the block the address plan reserves for it)."""
    names = [c.name for c in load_topology_clusters()]
    return plan_for(names.index(config.cluster.name)).vpc_cidr


def standby_cidrs(config: StackConfig) -> list[str]:
    """Address ranges of the other national site(s), whose standby controller uses the database:
    the block the address plan reserves for each (an existing-mode site routes from it)."""
    return [
        site_block(c.name, config)
        for c in load_topology_clusters()
        if c.tier is Tier.national and c.name != config.cluster.name
    ]


def member_main(config: StackConfig, secrets: StackSecrets, tier: Tier) -> dict[str, Any]:
    """A province's or a ministry's cluster, wired to the national stack.

    No admin token here: the national primary registered this cluster and issued its agent token
    (secret output ``agentTokens``), which this stack reads through the StackReference.
    """
    if config.cluster.tier is not tier:
        raise ValueError(f"{config.cluster.name} is a {config.cluster.tier} cluster, not a {tier} one")
    name = config.cluster.name
    national = pulumi.StackReference(config.national_stack)
    controller_url = config.controller_url or national.require_output("controllerUrl")
    remote_write_url = national.require_output("prometheusRemoteWriteUrl")
    agent_token: pulumi.Output[str] = pulumi.Output.secret(
        national.require_output("agentTokens").apply(lambda tokens: _token_of(tokens, name))
    )
    cluster = _cluster(config, secrets)
    platform = ClusterPlatform(
        f"{name}-platform",
        config,
        # the national Prometheus federates this one (pull); the chart has no remote_write yet
        monitoring_values={},
        network=network_inputs(config, cluster, controller_url),
        opts=pulumi.ResourceOptions(providers=[cluster.provider]),
    )
    platform.install_agent(controller_url, agent_token)
    return {
        "clusterName": name,
        "region": config.region,
        "mode": config.mode.value,
        "controllerUrl": controller_url,
        "nationalPrometheusRemoteWriteUrl": remote_write_url,
        "kubeconfig": cluster.kubeconfig,
    }


def _token_of(tokens: Any, name: str) -> str:
    if not isinstance(tokens, dict) or not tokens.get(name):
        raise ValueError(
            f"the national stack's agentTokens output has no token for {name}: add {name} to "
            "federation.members of the national primary and run pulumi up there first"
        )
    return str(tokens[name])


def run(tier: Tier) -> None:
    """Entry point of a project's ``__main__.py``: read config, build, export outputs."""
    config = load_stack_config()
    secrets = StackSecrets()
    outputs = national_main(config, secrets) if tier is Tier.national else member_main(config, secrets, tier)
    for key, value in outputs.items():
        pulumi.export(key, value)
