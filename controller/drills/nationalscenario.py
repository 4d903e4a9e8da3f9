"""National drill scenarios (``federation.mode: national``): the replicated national store
(etcd on three sites, Patroni and PostgreSQL at Beijing and Gui'an, synchronous replication), a
controller at each national site on the multi-host URL, a health-checked endpoint in front of
them, agents outside the national sites (or at one of them), and faults done to whole sites:
every process of a site SIGKILLed at once, a site cut off in network namespaces, a site started
again. See docs/national.md.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from controller.datasets import NAME
from controller.drills.procscenario import ProcLoad
from controller.drills.scenario import ScenarioError
from controller.policies import format_errors
from controller.topology.model import Topology

ClusterName = Annotated[str, Field(pattern=NAME)]
Seconds = Annotated[float, Field(ge=0, le=86400)]
SiteName = Literal["beijing", "guian", "witness"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NationalAgent(Strict):
    """One ``yiwang agent --executor local`` process. ``site``: a national site it lives in (it
    is lost, cut off and started again with that site, and talks to that site's controller), or
    none (a province or ministry: it talks to the national endpoint)."""

    cluster: ClusterName
    cpu: Annotated[float, Field(gt=0, le=100_000)] = 64.0
    memory_gib: Annotated[float, Field(gt=0, le=1_000_000)] = 256.0
    site: Literal["beijing", "guian"] | None = None


class NationalFederation(Strict):
    mode: Literal["national"]
    # Every site and agent in its own network namespace (root); a partition needs it.
    netns: bool = False
    agents: Annotated[list[NationalAgent], Field(min_length=1, max_length=16)]
    lease_s: Annotated[float | None, Field(gt=0, le=3600)] = None
    heartbeat_grace_s: Annotated[float | None, Field(gt=0, le=3600)] = None
    agent_poll_interval_s: Annotated[float | None, Field(gt=0, le=10)] = None
    leader_ttl_s: Annotated[float | None, Field(gt=0, le=600)] = None  # YIWANG_LEADER_TTL_S
    store_timeout_s: Annotated[float, Field(gt=0, le=600)] = 120.0  # store healthy from empty folders
    ready_timeout_s: Annotated[float, Field(gt=0, le=600)] = 60.0


class NationalLoad(ProcLoad):
    """The submission load, sent to the national endpoint; ``retry_s``: how long one submission
    is retried (same Idempotency-Key) through a failover before it counts as failed."""

    retry_s: Annotated[float, Field(ge=0, le=600)] = 60.0


class SiteFault(Strict):
    at_s: Seconds
    site: SiteName


class KillSite(SiteFault):
    """SIGSTOP, then SIGKILL, every process of the site: its etcd member, Patroni, the
    postmaster and every PostgreSQL child, its controller, its agents and their jobs."""

    fault: Literal["kill_site"]


class RestartSite(SiteFault):
    """Start the site's processes again on their folders (etcd rejoins; the old primary
    rejoins as the synchronous standby through pg_rewind; a new controller process)."""

    fault: Literal["restart_site"]


class PartitionSite(SiteFault):
    """Cut the site off (its namespace's link down: packets dropped, in both directions)."""

    fault: Literal["partition_site"]


class HealSite(SiteFault):
    fault: Literal["heal_site"]


NationalFault = Annotated[KillSite | RestartSite | PartitionSite | HealSite, Field(discriminator="fault")]
DOWN = {"kill_site": "restart_site", "partition_site": "heal_site"}
UP = {v: k for k, v in DOWN.items()}


class NationalBudgets(Strict):
    rpo_jobs: Annotated[int, Field(ge=0)] = 0  # acknowledged jobs missing from the store
    jobs_lost: Annotated[int, Field(ge=0)] = 0  # missing, or ended Failed/Cancelled
    duplicate_successes: Annotated[int, Field(ge=0)] = 0
    overlapping_jobs: Annotated[int, Field(ge=0)] = 0
    jobs_stuck: Annotated[int, Field(ge=0)] = 0
    submission_failures: Annotated[int | None, Field(ge=0)] = None  # offers never acknowledged
    not_on_both_sites: Annotated[int | None, Field(ge=0)] = None  # acknowledged, absent from a site
    first_submission_s: Annotated[float | None, Field(gt=0)] = None  # fault -> a submission accepted
    first_placement_s: Annotated[float | None, Field(gt=0)] = None  # fault -> a placement
    max_ack_gap_s: Annotated[float | None, Field(gt=0)] = None  # longest gap between acks after it
    promotion_s: Annotated[float | None, Field(gt=0)] = None  # fault -> Gui'an is the primary
    rejoin_s: Annotated[float | None, Field(gt=0)] = None  # restart/heal -> synchronous standby again
    isolated_acks_after_promotion: Annotated[int | None, Field(ge=0)] = None  # partition: 0


class NationalScenario(Strict):
    name: Annotated[str, Field(pattern=NAME)]
    description: Annotated[str, Field(max_length=4000)] = ""
    federation: NationalFederation
    load: NationalLoad
    timeline: Annotated[list[NationalFault], Field(min_length=1, max_length=20)]
    budgets: NationalBudgets = NationalBudgets()
    stuck_after_s: Annotated[float, Field(gt=0, le=3600)] = 60.0
    settle_timeout_s: Annotated[float, Field(gt=0, le=86400)] = 900.0
    tail_s: Annotated[float, Field(ge=0, le=600)] = 2.0

    @model_validator(mode="after")
    def _rules(self) -> NationalScenario:
        clusters = [a.cluster for a in self.federation.agents]
        if len(set(clusters)) != len(clusters):
            raise ValueError("federation.agents: one agent per cluster")
        if not any(a.site is None for a in self.federation.agents):
            raise ValueError("federation.agents: at least one agent outside the national sites")
        state: dict[str, str] = {}
        last = 0.0
        for i, f in enumerate(self.timeline):
            if f.at_s < last:
                raise ValueError(f"timeline[{i}]: faults must be in time order")
            last = f.at_s
            if f.fault in DOWN:
                if f.site in state:
                    raise ValueError(f"timeline[{i}]: {f.site} is already under {state[f.site]}")
                if state:
                    raise ValueError(
                        f"timeline[{i}]: one site fault at a time (the store has two database sites)"
                    )
                state[f.site] = f.fault
            elif state.get(f.site) != UP[f.fault]:
                raise ValueError(f"timeline[{i}]: {f.fault} needs a {UP[f.fault]} of {f.site} before")
            else:
                state.pop(f.site)
            if f.fault in ("partition_site", "heal_site") and not self.federation.netns:
                raise ValueError(f"timeline[{i}]: a partition needs federation.netns: true")
        if self.load.steady != "none":
            raise ValueError("load.steady: national drills run their timeline from the load's start (none)")
        b = self.budgets
        kinds = {(f.fault, f.site) for f in self.timeline}
        if b.isolated_acks_after_promotion is not None and ("partition_site", "beijing") not in kinds:
            raise ValueError("budgets.isolated_acks_after_promotion needs a partition_site of beijing")
        if b.promotion_s is not None and not kinds & {
            ("kill_site", "beijing"),
            ("partition_site", "beijing"),
        }:
            raise ValueError("budgets.promotion_s needs Beijing killed or cut off")
        if b.rejoin_s is not None and not {f for f, _ in kinds} & {"restart_site", "heal_site"}:
            raise ValueError("budgets.rejoin_s needs a restart_site or heal_site")
        return self


def is_national_doc(doc: Any) -> bool:
    return (
        isinstance(doc, dict)
        and isinstance(doc.get("federation"), dict)
        and doc["federation"].get("mode") == "national"
    )


def parse_national_scenario(
    doc: Any, source: str = "scenario", topology: Topology | None = None
) -> NationalScenario:
    try:
        scn = NationalScenario.model_validate(doc)
    except ValidationError as exc:
        errors = [{"path": e["path"], "message": e["message"]} for e in format_errors(source, exc)]
        raise ScenarioError(f"{source}: {len(errors)} error(s)", errors=errors) from exc
    if topology is not None:
        known = {c.name for c in topology.clusters}
        tenants = {c.tenant for c in topology.clusters} | {"national"}
        errors = [
            {"path": f"federation.agents[{i}].cluster", "message": f"unknown cluster {a.cluster!r}"}
            for i, a in enumerate(scn.federation.agents)
            if a.cluster not in known
        ]
        if scn.load.tenant not in tenants:
            errors.append({"path": "load.tenant", "message": f"unknown tenant {scn.load.tenant!r}"})
        if errors:
            raise ScenarioError(f"{source}: {len(errors)} error(s)", errors=errors)
    return scn
