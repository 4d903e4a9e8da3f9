"""The 1+32+N federation topology: clusters, links and the network model."""

from controller.topology.model import (
    Cluster,
    ClusterCapacity,
    Link,
    Tier,
    Topology,
    load_topology,
)
from controller.topology.network import NetworkModel

__all__ = [
    "Cluster",
    "ClusterCapacity",
    "Link",
    "NetworkModel",
    "Tier",
    "Topology",
    "load_topology",
]
