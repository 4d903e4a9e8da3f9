"""Read-only views for the operator console (docs/dashboard.md): the federation map with its
failover arrows, a cluster's page, tenants and quotas, and a data set's residency explained.
Each is a few aggregate queries over the store plus the controller's in-memory state; the API
routes are thin shells over these functions and decide what a caller may see (``sees``: may the
caller read this tenant's jobs?)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, Field

from controller.datasets import Classification, DatasetRead
from controller.policies import FLOOR_RULE, LEGAL_FLOOR, QUOTA_RESOURCES, STRICTNESS, Movement
from controller.registry import Health
from controller.scheduler.quota import QuotaBook
from controller.store.store import now
from controller.topology.cartogram import GridLayout, grid_cartogram
from controller.topology.model import Tier

if TYPE_CHECKING:
    from controller.service import Controller

Sees = Callable[[str], bool]  # may the caller read this tenant's jobs?

# Events that take a job off a cluster, and what the map calls them.
MOVE_KINDS = {"LeaseExpired": "failover", "Released": "failover", "Drained": "drain"}
MAX_MOVES = 5000  # newest move events read per answer
DEFAULT_WINDOW_S = 3600.0


# ---- response models -----------------------------------------------------------------------------
class Resources(BaseModel):
    cpu: float
    memory_gib: float
    gpu: float


class MapTile(BaseModel):
    cluster: str
    row: int
    col: int


class Activity(BaseModel):
    """Jobs on a cluster now, and its tenant's queue (None when the caller may not see it)."""

    scheduled: int = 0
    running: int = 0
    pending: int | None = Field(None, description="Pending jobs of the cluster's tenant (its queue)")


class Flow(BaseModel):
    """Jobs taken off ``from_cluster`` (its lease ended, its agent released them, or it was
    drained) and where they were placed next (``to_cluster`` None: not placed again yet)."""

    from_cluster: str
    to_cluster: str | None
    kind: Literal["failover", "drain"]
    jobs: int
    last_at: datetime


class FederationMap(BaseModel):
    rows: int = Field(description="grid rows of the province cartogram (north first)")
    cols: int
    tiles: list[MapTile] = Field(description="a cell per province, placed by its capital's coordinates")
    national: list[str]
    departments: list[str]
    activity: dict[str, Activity]
    flows: list[Flow]
    window_s: float
    generated_at: datetime


class HealthChangeRead(BaseModel):
    at: datetime
    health: str
    cordoned: bool
    draining: bool
    reason: str


class ClusterOverview(BaseModel):
    cluster: dict[str, Any] = Field(description="as GET /v1/clusters/{name}")
    health_history: list[HealthChangeRead] = Field(
        description="changes of health, cordon and drain seen by this controller process, oldest first"
    )
    activity: Activity
    datasets: list[DatasetRead] = Field(description="data sets with a copy here that the caller may read")
    backups: list[str] = Field(description="where this cluster's jobs fail over to, in order")
    backup_for: list[str] = Field(description="clusters whose jobs fail over to this one")
    flows: list[Flow] = Field(description="failovers and drains from or to this cluster in the window")
    window_s: float


class TenantRead(BaseModel):
    tenant: str
    weight: float
    nominal: Resources | None = Field(description="guaranteed quota; None: unlimited")
    borrowing_limit: Resources | None = Field(description="most it may borrow; None: no limit")
    used: Resources = Field(description="allocated to its Scheduled and Running jobs")
    borrowed: Resources = Field(description="used above nominal, lent by the cohort")
    borrowing: bool
    pending: int
    scheduled: int
    running: int
    oldest_pending_at: datetime | None
    dominant_share: float = Field(description="DRF: its largest share of any resource over its weight")
    fair_share_rank: int = Field(description="1 = served first when contended (the smallest dominant share)")
    preempted: int = Field(description="its jobs preempted in the window")
    last_preempted_at: datetime | None


class TenantList(BaseModel):
    items: list[TenantRead]
    tenants_total: int = Field(description="tenants in the federation (a tenant token sees its own row)")
    federation_capacity: Resources
    preemption: bool
    window_s: float


class ResidencyRead(BaseModel):
    dataset_id: str
    owner: str
    classification: Classification
    rule: Movement = Field(description="the movement rule in force (the policy's, never below the floor)")
    legal_floor: Movement
    tightened: bool = Field(description="the policy is stricter than the legal floor")
    explanation: str
    explanation_zh: str
    copies: list[str]
    may_run_on: list[str] = Field(description="clusters a job reading only this data set may run on")
    clusters_total: int


# ---- failover arrows -----------------------------------------------------------------------------
def flows(ctl: Controller, since: datetime, sees: Sees, cluster: str | None = None) -> list[Flow]:
    """Jobs moved off a cluster since ``since`` (from the job events: the move's origin is the
    cluster of the job's latest placement before it, its destination the next placement),
    grouped by (from, to, kind), most jobs first. Only jobs of tenants the caller sees count."""
    moves = [
        m for m in ctl.store.recent_events(list(MOVE_KINDS), since, limit=MAX_MOVES) if sees(str(m["tenant"]))
    ]
    placed = ctl.store.placed_events([m["job_id"] for m in moves])
    groups: dict[tuple[str, str | None, str], list[datetime]] = {}
    for m in moves:
        events = placed.get(m["job_id"], [])
        before = [e for e in events if e[0] < m["id"]]
        after = [e for e in events if e[0] > m["id"] and e[1] == "Scheduled"]
        if not before:
            continue
        origin = before[-1][2]
        dest = after[0][2] if after else None
        if cluster is not None and cluster not in (origin, dest):
            continue
        groups.setdefault((origin, dest, MOVE_KINDS[m["type"]]), []).append(m["at"])
    out = [
        Flow(from_cluster=o, to_cluster=d, kind=k, jobs=len(ats), last_at=max(ats))
        for (o, d, k), ats in groups.items()
    ]
    out.sort(key=lambda f: (-f.jobs, f.from_cluster, f.to_cluster or ""))
    return out


# ---- the map -------------------------------------------------------------------------------------
_layout_cache: dict[tuple[tuple[str, float, float], ...], GridLayout] = {}


def province_layout(ctl: Controller) -> GridLayout:
    points = {
        name: (s.spec.location.lng, s.spec.location.lat)
        for name, s in list(ctl.registry.clusters.items())
        if s.spec.tier is Tier.province
    }
    key = tuple(sorted((n, p[0], p[1]) for n, p in points.items()))
    layout = _layout_cache.get(key)
    if layout is None:
        if len(_layout_cache) > 8:
            _layout_cache.clear()
        layout = _layout_cache[key] = grid_cartogram(points)
    return layout


def activity(ctl: Controller, sees: Sees) -> dict[str, Activity]:
    active = ctl.store.active_counts_by_cluster()
    by_tenant = ctl.store.counts_by_tenant()
    out = {}
    for name, state in list(ctl.registry.clusters.items()):
        counts = active.get(name, {})
        tenant = state.spec.tenant
        out[name] = Activity(
            scheduled=counts.get("Scheduled", 0),
            running=counts.get("Running", 0),
            pending=by_tenant.get(tenant, {}).get("Pending", 0) if sees(tenant) else None,
        )
    return out


def federation_map(ctl: Controller, sees: Sees, window_s: float = DEFAULT_WINDOW_S) -> FederationMap:
    layout = province_layout(ctl)
    states = list(ctl.registry.clusters.values())
    return FederationMap(
        rows=layout.rows,
        cols=layout.cols,
        tiles=[MapTile(cluster=n, row=r, col=c) for n, (r, c) in sorted(layout.cells.items())],
        national=[s.spec.name for s in states if s.spec.tier is Tier.national],
        departments=sorted(s.spec.name for s in states if s.spec.tier is Tier.department),
        activity=activity(ctl, sees),
        flows=flows(ctl, now() - timedelta(seconds=window_s), sees),
        window_s=window_s,
        generated_at=now(),
    )


# ---- a cluster's page ------------------------------------------------------------------------------
def cluster_overview(
    ctl: Controller, name: str, sees: Sees, datasets: list[DatasetRead], window_s: float = DEFAULT_WINDOW_S
) -> ClusterOverview:
    """``datasets``: the catalogue as the caller may read it."""
    state = ctl.cluster_state(name)
    counts = ctl.store.active_counts_by_cluster().get(name, {})
    tenant = state.spec.tenant
    pending = ctl.store.counts_by_tenant().get(tenant, {}).get("Pending", 0) if sees(tenant) else None
    backups = ctl.policies.failover.backups
    return ClusterOverview(
        cluster=ctl.cluster_view(state),
        health_history=[
            HealthChangeRead(
                at=h.at, health=h.health, cordoned=h.cordoned, draining=h.draining, reason=h.reason
            )
            for h in ctl.cluster_history.of(name)
        ],
        activity=Activity(
            scheduled=counts.get("Scheduled", 0), running=counts.get("Running", 0), pending=pending
        ),
        datasets=[d for d in datasets if name in d.locations],
        backups=list(backups.get(name, [])),
        backup_for=sorted(c for c, group in backups.items() if name in group),
        flows=flows(ctl, now() - timedelta(seconds=window_s), sees, cluster=name),
        window_s=window_s,
    )


# ---- tenants and quotas ----------------------------------------------------------------------------
def _resources(v: list[float] | np.ndarray) -> Resources:
    return Resources(**{r: float(v[i]) for i, r in enumerate(QUOTA_RESOURCES)})


def _finite_or_none(v: list[float]) -> Resources | None:
    return _resources(v) if all(np.isfinite(v)) else None


def tenants(ctl: Controller, sees: Sees, window_s: float = DEFAULT_WINDOW_S) -> TenantList:
    """Every tenant's quota, usage (the allocation ledger), queue, fair-share position and
    preemptions; the rows the caller may see."""
    policy = ctl.policies.quota
    snap = ctl.snapshot()
    capacity = snap.capacity.sum(axis=0) if len(snap.capacity) else np.zeros(3)
    with ctl.lock:
        usage = ctl.registry.ledger.tenant_totals()
    names = sorted(ctl.known_tenants() | set(usage))
    book = QuotaBook(policy, capacity, names, usage)
    shares = {t: book.dominant_share(t) for t in names}
    rank = {t: i + 1 for i, t in enumerate(sorted(names, key=lambda t: (shares[t], t)))}
    counts = ctl.store.counts_by_tenant()
    preempted: dict[str, list[datetime]] = {}
    for e in ctl.store.recent_events(["Preempted"], now() - timedelta(seconds=window_s), limit=MAX_MOVES):
        preempted.setdefault(str(e["tenant"]), []).append(e["at"])
    items = []
    for t in names:
        if not sees(t):
            continue
        lim = book.limits(t)
        used = book.used(t)
        nominal = _finite_or_none(lim.nominal)
        borrowed = [
            max(0.0, u - n) if np.isfinite(n) else 0.0 for u, n in zip(used, lim.nominal, strict=True)
        ]
        borrow_limit = [c - n for c, n in zip(lim.ceiling, lim.nominal, strict=True)]
        c = counts.get(t, {})
        items.append(
            TenantRead(
                tenant=t,
                weight=lim.weight,
                nominal=nominal,
                borrowing_limit=_finite_or_none(borrow_limit) if nominal is not None else None,
                used=_resources(used),
                borrowed=_resources(borrowed),
                borrowing=any(b > 1e-9 for b in borrowed),
                pending=c.get("Pending", 0),
                scheduled=c.get("Scheduled", 0),
                running=c.get("Running", 0),
                oldest_pending_at=c.get("oldest_pending"),
                dominant_share=round(shares[t], 6),
                fair_share_rank=rank[t],
                preempted=len(preempted.get(t, [])),
                last_preempted_at=max(preempted[t]) if t in preempted else None,
            )
        )
    return TenantList(
        items=items,
        tenants_total=len(names),
        federation_capacity=_resources(capacity),
        preemption=policy.preemption,
        window_s=window_s,
    )


# ---- residency, explained ----------------------------------------------------------------------------
RULE_TEXT = {
    Movement.none: (
        "{cls} data never moves: a job reading {id} runs only on a cluster holding a copy ({copies}).",
        "{cls_zh}不出域：读取 {id} 的作业只能在持有副本的集群上运行（{copies}）。",
    ),
    Movement.owner_or_national: (
        "{cls} data stays with its owner: a job reading {id} runs on {owner}'s own clusters, on a "
        "cluster holding a copy, or on the national nodes; never in another province or ministry.",
        "{cls_zh}仅在属主与国家节点内流动：读取 {id} 的作业只能在 {owner} 自己的集群、持有副本的集群或"
        "国家节点上运行，不得跨省或跨部委。",
    ),
    Movement.anywhere: (
        "{cls} data may move: a job reading {id} may run on any cluster; moving it costs WAN time "
        "and bytes, which the locality score weighs.",
        "{cls_zh}可以流动：读取 {id} 的作业可在任一集群运行；数据迁移的广域网时间与流量计入本地性评分。",
    ),
}
CLASS_ZH = {
    Classification.general: "一般数据",
    Classification.important: "重要数据",
    Classification.core: "核心数据",
}


def residency(ctl: Controller, ds: DatasetRead) -> ResidencyRead:
    rule = ctl.policies.residency.rule(ds.classification)
    floor = LEGAL_FLOOR[ds.classification]
    states = list(ctl.registry.clusters.values())
    if rule is Movement.anywhere:
        allowed = [s.spec.name for s in states]
    elif rule is Movement.owner_or_national:
        allowed = [
            s.spec.name
            for s in states
            if s.spec.name in ds.locations or s.spec.tenant == ds.owner or s.spec.tier is Tier.national
        ]
    else:
        allowed = [s.spec.name for s in states if s.spec.name in ds.locations]
    en, zh = RULE_TEXT[rule]
    fill = {
        "cls": ds.classification.value.capitalize(),
        "cls_zh": CLASS_ZH[ds.classification],
        "id": ds.id,
        "owner": ds.owner,
        "copies": ", ".join(ds.locations),
    }
    tightened = STRICTNESS[rule] > STRICTNESS[floor]
    explanation = en.format(**fill)
    explanation_zh = zh.format(**fill)
    if tightened:
        explanation += f" The policy is stricter than the legal floor ({FLOOR_RULE[ds.classification]})."
        explanation_zh += "（策略严于法定底线。）"
    down = [s.spec.name for s in states if s.spec.name in allowed and s.health != Health.Ready]
    if down:
        explanation += f" Not Ready now: {', '.join(sorted(down))}."
    return ResidencyRead(
        dataset_id=ds.id,
        owner=ds.owner,
        classification=ds.classification,
        rule=rule,
        legal_floor=floor,
        tightened=tightened,
        explanation=explanation,
        explanation_zh=explanation_zh,
        copies=list(ds.locations),
        may_run_on=sorted(allowed),
        clusters_total=len(states),
    )
