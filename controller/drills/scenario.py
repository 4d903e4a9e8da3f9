"""Drill scenario files (``policies/drills/*.yaml``), validated by pydantic models.

A scenario says which federation to start, which load to put on it, which faults to inject when
(seconds after the load reached steady state) and which budgets the drill must meet.
``load_scenario`` reports every error with its path (``timeline[2].cluster``), like
``yiwang policy check`` does for policies.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from controller.datasets import DATASET_ID, NAME, Classification
from controller.drills.gbt20988 import LEVELS
from controller.errors import InvalidInput
from controller.jobs import Constraints, Resources
from controller.policies import format_errors
from controller.topology.model import Topology

ClusterName = Annotated[str, Field(pattern=NAME)]
Seconds = Annotated[float, Field(ge=0, le=3600)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FederationSpec(Strict):
    """The federation a drill starts: embedded (all agents in the runner's process, real HTTP)."""

    mode: Literal["embedded"] = "embedded"
    clusters: Literal["all"] | Annotated[list[ClusterName], Field(min_length=1, max_length=200)] = "all"
    executor: Literal["simulated"] = "simulated"
    time_scale: Annotated[float, Field(gt=0, le=10)] = 0.02  # simulated seconds -> wall seconds
    nodes_per_cluster: Annotated[int, Field(ge=1, le=64)] = 4
    poll_interval_s: Annotated[float, Field(gt=0, le=10)] = 0.2
    # Failover policy overrides (PUT /v1/policies/failover before the agents start).
    lease_s: Annotated[float | None, Field(gt=0, le=3600)] = None
    heartbeat_grace_s: Annotated[float | None, Field(gt=0, le=3600)] = None
    leader_ttl_s: Annotated[float, Field(gt=0, le=60)] = 2.0
    loop_interval_s: Annotated[float, Field(gt=0, le=5)] = 0.05
    # URL of a Prometheus the drill may stop (stop_prometheus); none: that fault is skipped.
    prometheus_url: str | None = None


class DatasetSpec(Strict):
    id: Annotated[str, Field(pattern=DATASET_ID)]
    owner: ClusterName
    classification: Classification
    locations: Annotated[list[ClusterName], Field(min_length=1, max_length=200)]
    size_bytes: Annotated[int, Field(ge=0, le=10**18)] = 50 * 10**9


class JobGroup(Strict):
    """``count`` identical jobs of one tenant, named ``<name>-<i>``."""

    name: Annotated[str, Field(pattern=r"^[a-z0-9]([a-z0-9-]{0,50}[a-z0-9])?$")]
    tenant: ClusterName
    count: Annotated[int, Field(ge=1, le=500)] = 1
    inputs: Annotated[list[Annotated[str, Field(pattern=DATASET_ID)]], Field(max_length=64)] = []
    resources: Resources = Resources(cpu=4, memory_gib=8)
    replicas: Annotated[int, Field(ge=1, le=64)] = 1
    expected_runtime_s: Annotated[float, Field(gt=0, le=86400)] = 300.0  # simulated seconds
    priority: Annotated[int, Field(ge=0, le=1_000_000)] = 100
    constraints: Constraints = Constraints()
    failover: Literal["backup-group", "anywhere-legal", "none"] = "backup-group"


class LoadSpec(Strict):
    datasets: Annotated[list[DatasetSpec], Field(max_length=200)] = []
    jobs: Annotated[list[JobGroup], Field(min_length=1, max_length=100)]
    # Faults start once every job is Running (or legally Pending), within this bound.
    steady_timeout_s: Annotated[float, Field(gt=0, le=600)] = 20.0


class FaultBase(Strict):
    at_s: Seconds  # after steady state


class KillAgent(FaultBase):
    """The cluster's agent dies with its machine: no heartbeats, its attempts die with it."""

    fault: Literal["kill_agent"]
    cluster: ClusterName


class Partition(FaultBase):
    """The agent cannot reach the controller but keeps running: it must stop its own attempts
    before its lease ends."""

    fault: Literal["partition"]
    cluster: ClusterName


class Recover(FaultBase):
    """Bring the agent back (a killed agent restarts with an empty memory; a partition heals)."""

    fault: Literal["recover"]
    cluster: ClusterName


class KillController(FaultBase):
    """Stop the controller's server and start a new Controller on the same database and port."""

    fault: Literal["kill_controller"]
    down_s: Annotated[float, Field(ge=0, le=60)] = 0.5


class StopPrometheus(FaultBase):
    fault: Literal["stop_prometheus"]


class FillCluster(FaultBase):
    """Occupy a cluster with filler jobs pinned to it, so re-placement must go elsewhere."""

    fault: Literal["fill_cluster"]
    cluster: ClusterName
    fraction: Annotated[float, Field(gt=0, le=1)] = 1.0


Fault = Annotated[
    KillAgent | Partition | Recover | KillController | StopPrometheus | FillCluster,
    Field(discriminator="fault"),
]
CLUSTER_FAULTS = ("kill_agent", "partition")


class Budgets(Strict):
    detection_s: Annotated[float | None, Field(gt=0)] = None  # fault -> cluster Unreachable
    rto_s: Annotated[float | None, Field(gt=0)] = None  # fault -> every affected job running again
    jobs_lost: Annotated[int, Field(ge=0)] = 0
    jobs_run_twice: Annotated[int, Field(ge=0)] = 0
    gbt20988_level: Annotated[int | None, Field(ge=1, le=6)] = None  # the drill's RTO meets it


class Scenario(Strict):
    name: Annotated[str, Field(pattern=NAME)]
    description: Annotated[str, Field(max_length=4000)] = ""
    federation: FederationSpec = FederationSpec()
    load: LoadSpec
    timeline: Annotated[list[Fault], Field(min_length=1, max_length=50)]
    budgets: Budgets = Budgets()
    settle_timeout_s: Annotated[float, Field(gt=0, le=600)] = 30.0  # bound on the wait for the end


class ScenarioError(InvalidInput):
    """A scenario file is invalid; ``errors`` lists each problem with its path."""


Errors = list[dict[str, str]]


def _err(errs: Errors, path: str, message: str) -> None:
    errs.append({"path": path, "message": message})


def _check_load(scn: Scenario, members: set[str] | None, tenants: set[str] | None, errs: Errors) -> None:
    """Data sets on member clusters with known owners, job groups over defined data sets."""
    ds_ids = [d.id for d in scn.load.datasets]
    for i, d in enumerate(scn.load.datasets):
        if ds_ids.index(d.id) != i:
            _err(errs, f"load.datasets[{i}].id", f"data set {d.id!r} is defined twice")
        for j, loc in enumerate(d.locations):
            if members is not None and loc not in members:
                _err(errs, f"load.datasets[{i}].locations[{j}]", f"cluster {loc!r} is not in the federation")
        if tenants is not None and d.owner not in tenants:
            _err(errs, f"load.datasets[{i}].owner", f"unknown owner {d.owner!r}")
    names = [g.name for g in scn.load.jobs]
    for i, g in enumerate(scn.load.jobs):
        if names.index(g.name) != i:
            _err(errs, f"load.jobs[{i}].name", f"job group {g.name!r} is defined twice")
        for j, ds in enumerate(g.inputs):
            if ds not in ds_ids:
                _err(errs, f"load.jobs[{i}].inputs[{j}]", f"data set {ds!r} is not in load.datasets")
        if tenants is not None and g.tenant not in tenants:
            _err(errs, f"load.jobs[{i}].tenant", f"unknown tenant {g.tenant!r}")


def _check_timeline(scn: Scenario, members: set[str] | None, errs: Errors) -> None:
    """Faults in time order on member clusters; one fault at a time per cluster, a recover only
    after one."""
    down: dict[str, str] = {}  # cluster -> fault it is under
    last_at = 0.0
    for i, f in enumerate(scn.timeline):
        if f.at_s < last_at:
            _err(errs, f"timeline[{i}].at_s", f"faults must be in time order ({f.at_s} < {last_at})")
        last_at = max(last_at, f.at_s)
        cluster = getattr(f, "cluster", None)
        if cluster is None:
            continue
        if members is not None and cluster not in members:
            _err(errs, f"timeline[{i}].cluster", f"cluster {cluster!r} is not in the federation")
        if f.fault in CLUSTER_FAULTS:
            if cluster in down:
                _err(errs, f"timeline[{i}].cluster", f"{cluster} is already under {down[cluster]}")
            down[cluster] = f.fault
        elif f.fault == "recover":
            if cluster not in down:
                _err(
                    errs,
                    f"timeline[{i}].cluster",
                    f"nothing to recover: no kill_agent or partition of {cluster} before",
                )
            down.pop(cluster, None)


def _check_budgets(scn: Scenario, errs: Errors) -> None:
    """Budgets the timeline can measure."""
    has_cluster_fault = any(f.fault in CLUSTER_FAULTS for f in scn.timeline)
    has_recoverable = has_cluster_fault or any(f.fault == "kill_controller" for f in scn.timeline)
    if scn.budgets.detection_s is not None and not has_cluster_fault:
        _err(errs, "budgets.detection_s", "needs a kill_agent or partition fault in the timeline")
    if (scn.budgets.rto_s is not None or scn.budgets.gbt20988_level) and not has_recoverable:
        _err(errs, "budgets.rto_s", "needs a kill_agent, partition or kill_controller fault in the timeline")
    if scn.budgets.gbt20988_level is not None and scn.budgets.gbt20988_level not in LEVELS:
        _err(errs, "budgets.gbt20988_level", "unknown level")


def cross_check(scn: Scenario, topology: Topology | None = None) -> Errors:
    """Rules that span sections: known clusters and data sets, a recover after its fault, budgets
    that the timeline can measure."""
    errs: Errors = []
    known = {c.name for c in topology.clusters} if topology else None
    tenants = {c.tenant for c in topology.clusters} | {"national"} if topology else None
    members = known if scn.federation.clusters == "all" else set(scn.federation.clusters)
    if known is not None and scn.federation.clusters != "all":
        for i, c in enumerate(scn.federation.clusters):
            if c not in known:
                _err(errs, f"federation.clusters[{i}]", f"unknown cluster {c!r}")
    _check_load(scn, members, tenants, errs)
    _check_timeline(scn, members, errs)
    _check_budgets(scn, errs)
    return errs


def parse_scenario(doc: Any, source: str = "scenario", topology: Topology | None = None) -> Scenario:
    try:
        scn = Scenario.model_validate(doc)
    except ValidationError as exc:
        errors = [{"path": e["path"], "message": e["message"]} for e in format_errors(source, exc)]
        raise ScenarioError(f"{source}: {len(errors)} error(s)", errors=errors) from exc
    errors = cross_check(scn, topology)
    if errors:
        raise ScenarioError(f"{source}: {len(errors)} error(s)", errors=errors)
    return scn


def load_scenario(path: Path, topology: Topology | None = None) -> Scenario:
    """Read and validate one scenario file; ScenarioError lists every problem with its path."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ScenarioError(f"{path}: cannot read", errors=[{"path": "(file)", "message": str(exc)}]) from exc
    return parse_scenario(doc, str(path), topology)
