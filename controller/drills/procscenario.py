"""Process drill scenarios (``federation.mode: processes``): real ``yiwang serve`` and
``yiwang agent --executor local`` processes, jobs that write agent-side markers, and faults done
to the processes themselves (SIGKILL, SIGSTOP/SIGCONT, a network namespace cut that drops
packets, a SIGKILLed controller). See docs/drills.md, "Process drills (run once)".

Scenarios leave the failover timers to the policies (``policies/failover.yaml``) unless
``federation.lease_s`` / ``heartbeat_grace_s`` are given (the tests' short versions do).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from controller.datasets import NAME
from controller.drills.scenario import ScenarioError
from controller.jobs import Resources
from controller.policies import format_errors
from controller.topology.model import Topology

ClusterName = Annotated[str, Field(pattern=NAME)]
Seconds = Annotated[float, Field(ge=0, le=86400)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AgentSpec(Strict):
    """One ``yiwang agent --executor local`` process for ``cluster``, with its own workdir."""

    cluster: ClusterName
    cpu: Annotated[float, Field(gt=0, le=100_000)] = 64.0  # capacity offered (--cpu)
    memory_gib: Annotated[float, Field(gt=0, le=1_000_000)] = 256.0
    # at_load: started before the load; after_load: once the load is steady (so the load lands on
    # the first agents and this one is where failed-over work can go)
    start: Literal["at_load", "after_load"] = "at_load"


class ProcFederation(Strict):
    mode: Literal["processes"]
    database: Literal["sqlite", "postgresql"] = "sqlite"
    agents: Annotated[list[AgentSpec], Field(min_length=1, max_length=16)]
    # Run the controller and every agent in network namespaces (root only); a partition fault
    # needs it. Without it everything talks over 127.0.0.1.
    netns: bool = False
    # Failover policy overrides for short test versions; shipped scenarios leave them unset.
    lease_s: Annotated[float | None, Field(gt=0, le=3600)] = None
    heartbeat_grace_s: Annotated[float | None, Field(gt=0, le=3600)] = None
    agent_poll_interval_s: Annotated[float | None, Field(gt=0, le=10)] = None  # default: the CLI's
    leader_ttl_s: Annotated[float | None, Field(gt=0, le=600)] = (
        None  # YIWANG_LEADER_TTL_S; default: Settings'
    )
    ready_timeout_s: Annotated[float, Field(gt=0, le=600)] = 60.0


class ProcLoad(Strict):
    """``count`` jobs named ``<name>-<i>`` offered at ``rate_per_s`` (open loop, bounded
    concurrency); each sleeps ``work_s`` between its start and end markers."""

    name: Annotated[str, Field(pattern=r"^[a-z0-9]([a-z0-9-]{0,40}[a-z0-9])?$")] = "runonce"
    tenant: ClusterName
    count: Annotated[int, Field(ge=1, le=1_000_000)]
    rate_per_s: Annotated[float, Field(gt=0, le=10_000)] = 100.0
    work_s: Annotated[float, Field(ge=0, le=86400)] = 0.2
    resources: Resources = Resources(cpu=1, memory_gib=1)
    allow_clusters: Annotated[list[ClusterName], Field(max_length=200)] = []  # default: the agents'
    concurrency: Annotated[int, Field(ge=1, le=256)] = 16  # submissions in flight
    request_timeout_s: Annotated[float, Field(gt=0, le=120)] = 10.0
    # running: faults start once every acknowledged job is Running (cluster faults on running
    # work); none: the timeline starts with the load (bursts, controller kills under load)
    steady: Literal["running", "none"] = "none"
    steady_timeout_s: Annotated[float, Field(gt=0, le=3600)] = 120.0


class ProcFaultBase(Strict):
    at_s: Seconds  # after the timeline's start (steady state, or the load's start)


class KillAgentP(ProcFaultBase):
    """SIGKILL the agent process (only it: its jobs are their own process groups)."""

    fault: Literal["kill_agent"]
    cluster: ClusterName


class RestartAgentP(ProcFaultBase):
    """Start a new agent process for the cluster (same workdir, empty memory)."""

    fault: Literal["restart_agent"]
    cluster: ClusterName


class FreezeAgentP(ProcFaultBase):
    fault: Literal["freeze_agent"]  # SIGSTOP
    cluster: ClusterName


class ThawAgentP(ProcFaultBase):
    fault: Literal["thaw_agent"]  # SIGCONT
    cluster: ClusterName


class PartitionP(ProcFaultBase):
    """Cut the agent's namespace off (its veth's peer down): packets are dropped, calls hang."""

    fault: Literal["partition"]
    cluster: ClusterName


class HealP(ProcFaultBase):
    fault: Literal["heal"]
    cluster: ClusterName


class KillControllerP(ProcFaultBase):
    """SIGKILL the controller, start it again after ``down_s`` (same database and port);
    ``repeat`` times, ``every_s`` apart."""

    fault: Literal["kill_controller"]
    down_s: Annotated[float, Field(ge=0, le=600)] = 1.0
    repeat: Annotated[int, Field(ge=1, le=100)] = 1
    every_s: Annotated[float, Field(gt=0, le=3600)] = 30.0


ProcFault = Annotated[
    KillAgentP | RestartAgentP | FreezeAgentP | ThawAgentP | PartitionP | HealP | KillControllerP,
    Field(discriminator="fault"),
]
DOWN = {"kill_agent": "restart_agent", "freeze_agent": "thaw_agent", "partition": "heal"}
UP = {v: k for k, v in DOWN.items()}


class ProcBudgets(Strict):
    duplicate_successes: Annotated[int, Field(ge=0)] = 0
    overlapping_jobs: Annotated[int, Field(ge=0)] = 0
    jobs_lost: Annotated[int, Field(ge=0)] = 0
    jobs_stuck: Annotated[int, Field(ge=0)] = 0
    detection_s: Annotated[float | None, Field(gt=0)] = None
    rto_s: Annotated[float | None, Field(gt=0)] = None
    takeover_s: Annotated[float | None, Field(gt=0)] = None


class ProcScenario(Strict):
    name: Annotated[str, Field(pattern=NAME)]
    description: Annotated[str, Field(max_length=4000)] = ""
    federation: ProcFederation
    load: ProcLoad
    timeline: Annotated[list[ProcFault], Field(max_length=50)] = []
    budgets: ProcBudgets = ProcBudgets()
    # A job is stuck when it is not terminal this long after its work could have finished (the
    # load ended, the last fault was undone, plus work_s).
    stuck_after_s: Annotated[float, Field(gt=0, le=3600)] = 60.0
    settle_timeout_s: Annotated[float, Field(gt=0, le=86400)] = 1800.0  # hard bound on the drill
    tail_s: Annotated[float, Field(ge=0, le=600)] = 2.0  # watch markers this long after settling

    @model_validator(mode="after")
    def _rules(self) -> ProcScenario:
        clusters = [a.cluster for a in self.federation.agents]
        if len(set(clusters)) != len(clusters):
            raise ValueError("federation.agents: one agent per cluster")
        state: dict[str, str] = {}
        last = 0.0
        for i, f in enumerate(self.timeline):
            if f.at_s < last:
                raise ValueError(f"timeline[{i}]: faults must be in time order")
            last = f.at_s
            cluster = getattr(f, "cluster", None)
            if cluster is None:
                continue
            if cluster not in clusters:
                raise ValueError(f"timeline[{i}]: no agent for cluster {cluster!r}")
            if f.fault in DOWN:
                if cluster in state:
                    raise ValueError(f"timeline[{i}]: {cluster} is already under {state[cluster]}")
                state[cluster] = f.fault
            elif state.get(cluster) != UP[f.fault]:
                raise ValueError(f"timeline[{i}]: {f.fault} needs a {UP[f.fault]} of {cluster} before")
            else:
                state.pop(cluster)
            if f.fault == "partition" and not self.federation.netns:
                raise ValueError(f"timeline[{i}]: a partition needs federation.netns: true")
        if self.federation.netns and self.federation.database == "postgresql":
            raise ValueError("federation.netns runs the controller in a namespace; use sqlite there")
        kinds = {f.fault for f in self.timeline}
        if self.budgets.detection_s is not None and not kinds & set(DOWN):
            raise ValueError("budgets.detection_s needs an agent fault in the timeline")
        if self.budgets.rto_s is not None and not kinds & set(DOWN):
            raise ValueError("budgets.rto_s needs an agent fault in the timeline")
        if self.budgets.takeover_s is not None and "kill_controller" not in kinds:
            raise ValueError("budgets.takeover_s needs a kill_controller fault")
        return self

    def expanded_timeline(self) -> list[Any]:
        """The timeline with each repeated controller kill spelled out, in time order."""
        out: list[Any] = []
        for f in self.timeline:
            if isinstance(f, KillControllerP):
                for k in range(f.repeat):
                    out.append(f.model_copy(update={"at_s": f.at_s + k * f.every_s, "repeat": 1}))
            else:
                out.append(f)
        return sorted(out, key=lambda f: f.at_s)


def has_mode(doc: Any, mode: str) -> bool:
    """Whether a scenario document asks for ``federation.mode: <mode>``."""
    return (
        isinstance(doc, dict)
        and isinstance(doc.get("federation"), dict)
        and doc["federation"].get("mode") == mode
    )


def is_process_doc(doc: Any) -> bool:
    return has_mode(doc, "processes")


LiveScenario = TypeVar("LiveScenario", bound=BaseModel)


def parse_live_scenario(
    model: type[LiveScenario], doc: Any, source: str = "scenario", topology: Topology | None = None
) -> LiveScenario:
    """Validate a process or national scenario: its schema, then (given the topology) that every
    agent's cluster and the load's tenant exist. Every error at once, each with its path."""
    try:
        scn = model.model_validate(doc)
    except ValidationError as exc:
        errors = [{"path": e["path"], "message": e["message"]} for e in format_errors(source, exc)]
        raise ScenarioError(f"{source}: {len(errors)} error(s)", errors=errors) from exc
    if topology is not None:
        agents: list[Any] = scn.federation.agents  # type: ignore[attr-defined]
        tenant: str = scn.load.tenant  # type: ignore[attr-defined]
        known = {c.name for c in topology.clusters}
        tenants = {c.tenant for c in topology.clusters} | {"national"}
        errors = [
            {"path": f"federation.agents[{i}].cluster", "message": f"unknown cluster {a.cluster!r}"}
            for i, a in enumerate(agents)
            if a.cluster not in known
        ]
        if tenant not in tenants:
            errors.append({"path": "load.tenant", "message": f"unknown tenant {tenant!r}"})
        if errors:
            raise ScenarioError(f"{source}: {len(errors)} error(s)", errors=errors)
    return scn


def parse_proc_scenario(doc: Any, source: str = "scenario", topology: Topology | None = None) -> ProcScenario:
    return parse_live_scenario(ProcScenario, doc, source, topology)
