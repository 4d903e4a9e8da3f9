"""The federation's address plan: one non-overlapping block set per cluster, from the topology.

Member VPCs are joined (CEN / the government backbone) to the national ones for the agents' calls,
the national federation pull and RDS, so no two clusters may share a VPC, pod or Service range.
Cluster ``i`` (its position in policies/topology.yaml, kept once written to its stack file) gets:

- VPC ``10.{4i}.0.0/14``; node vSwitches ``10.{4i}.{32z}.0/19`` (zone ``z``);
- Terway pod vSwitches ``10.{4i+1+z}.0.0/16`` (zone ``z`` < 3): pods take VPC addresses;
- Service range ``172.{16 + i // 16}.{16 (i % 16)}.0/20`` (outside every VPC).

That fits 64 clusters (1 + 32 + 31 ministries); :func:`check` finds any overlap in a set of plans.
"""

from __future__ import annotations

import ipaddress
from itertools import combinations
from typing import Annotated

from pydantic import Field

from infra.yiwang_infra.config_base import Camel

MAX_CLUSTERS = 64
MAX_ZONES = 3


class NetworkPlan(Camel):
    """The address blocks of one ACK cluster (config key ``network``, generated)."""

    vpc_cidr: str
    vswitch_cidrs: Annotated[list[str], Field(min_length=1, max_length=MAX_ZONES)]
    pod_vswitch_cidrs: Annotated[list[str], Field(min_length=1, max_length=MAX_ZONES)]
    service_cidr: str


def plan_for(index: int, zones: int = MAX_ZONES) -> NetworkPlan:
    if not 0 <= index < MAX_CLUSTERS:
        raise ValueError(f"cluster index {index} is outside the address plan (0..{MAX_CLUSTERS - 1})")
    zones = max(1, min(zones, MAX_ZONES))
    return NetworkPlan(
        vpc_cidr=f"10.{4 * index}.0.0/14",
        vswitch_cidrs=[f"10.{4 * index}.{32 * z}.0/19" for z in range(zones)],
        pod_vswitch_cidrs=[f"10.{4 * index + 1 + z}.0.0/16" for z in range(zones)],
        service_cidr=f"172.{16 + index // 16}.{16 * (index % 16)}.0/20",
    )


def check(plans: dict[str, NetworkPlan]) -> list[str]:
    """Every problem in a set of plans (cluster -> plan): overlaps across clusters, a vSwitch
    outside its VPC, a Service range inside any VPC, overlapping vSwitches in one VPC."""
    problems: list[str] = []
    net = ipaddress.IPv4Network
    for name, plan in plans.items():
        vpc = net(plan.vpc_cidr)
        switches = [net(c) for c in (*plan.vswitch_cidrs, *plan.pod_vswitch_cidrs)]
        problems += [f"{name}: vSwitch {s} is outside VPC {vpc}" for s in switches if not s.subnet_of(vpc)]
        problems += [
            f"{name}: vSwitches {a} and {b} overlap" for a, b in combinations(switches, 2) if a.overlaps(b)
        ]
    for (a_name, a), (b_name, b) in combinations(plans.items(), 2):
        if net(a.vpc_cidr).overlaps(net(b.vpc_cidr)):
            problems.append(f"VPCs of {a_name} ({a.vpc_cidr}) and {b_name} ({b.vpc_cidr}) overlap")
        if net(a.service_cidr).overlaps(net(b.service_cidr)):
            problems.append(f"Service ranges of {a_name} and {b_name} overlap ({a.service_cidr})")
    vpcs = [(n, net(p.vpc_cidr)) for n, p in plans.items()]
    for name, plan in plans.items():
        service = net(plan.service_cidr)
        problems += [
            f"{name}: Service range {service} overlaps the VPC of {n}" for n, v in vpcs if service.overlaps(v)
        ]
    return problems
