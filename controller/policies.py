"""Policies as validated data: residency, placement, failover (and the topology).

Every policy file lives in ``policies/``. ``read_policy_set`` (through
``controller.services.policy_files.load_policy_set``) validates all of them and reports every
error with its file and path, so ``yiwang policy check`` lists them all at once.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from controller.datasets import Classification
from controller.errors import InvalidPolicy
from controller.schemas import Priority, QuotaAmount, Version, Weight
from controller.topology.model import Topology


class Movement(StrEnum):
    none = "none"  # runs only where a copy is; the data never moves
    owner_or_national = "owner_or_national"  # the owner's clusters or the national nodes
    anywhere = "anywhere"


# How strict a movement rule is: a policy may raise it, never lower it below the legal floor.
STRICTNESS = {Movement.anywhere: 0, Movement.owner_or_national: 1, Movement.none: 2}
# The legal floor (Data Security Law, art. 21; the 1+32+N rules on government data): core data
# runs only where a copy is; important data only on its owner's clusters or the national nodes.
# No policy, API call or plugin list can lower it: ResidencyPolicy refuses a looser rule, its
# ``rule`` never answers below it, and the scheduler always runs the residency filter.
LEGAL_FLOOR: dict[Classification, Movement] = {
    Classification.core: Movement.none,
    Classification.important: Movement.owner_or_national,
    Classification.general: Movement.anywhere,
}
FLOOR_RULE = {
    Classification.core: "core data never leaves its copies",
    Classification.important: "important data stays on its owner's clusters or the national nodes",
    Classification.general: "general data may move",
}


def stricter(a: Movement, b: Movement) -> Movement:
    return a if STRICTNESS[a] >= STRICTNESS[b] else b


class ResidencyPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: Version = 1
    movement: dict[Classification, Movement] = dict(LEGAL_FLOOR)

    @field_validator("movement")
    @classmethod
    def _not_below_the_floor(cls, movement: dict[Classification, Movement]) -> dict[Classification, Movement]:
        looser = [
            f"{c.value}: {m.value!r} is below the legal floor {LEGAL_FLOOR[c].value!r} ({FLOOR_RULE[c]})"
            for c, m in movement.items()
            if STRICTNESS[m] < STRICTNESS[LEGAL_FLOOR[c]]
        ]
        if looser:
            raise ValueError(
                "residency floor: " + "; ".join(looser) + "; a policy may tighten it, never loosen it"
            )
        return movement

    def rule(self, classification: Classification) -> Movement:
        # An unlisted classification gets the strictest rule: residency is never a preference.
        # Never below the legal floor, even for a policy built without validation.
        return stricter(self.movement.get(classification, Movement.none), LEGAL_FLOOR[classification])


RESIDENCY_FILTER = "residency"


class PluginWeight(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    weight: Weight = 1.0


class PlacementPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: Version = 1
    filters: Annotated[list[str], Field(min_length=1, max_length=32)] = [
        "health",
        "constraints",
        "residency",
        "capacity",
    ]
    scores: list[PluginWeight] = [
        PluginWeight(name="locality", weight=3.0),
        PluginWeight(name="constraints", weight=1.0),
        PluginWeight(name="balance", weight=1.0),
    ]
    # Delay scheduling for data locality (ski rental): when the best cluster free now would
    # take longer to fetch the inputs than the statically best one, a job waits for a better
    # cluster for at most that extra transfer time, and never longer than this. 0: off.
    locality_wait_max_s: Annotated[float, Field(ge=0, le=86_400, allow_inf_nan=False)] = 0.0

    @field_validator("filters")
    @classmethod
    def _keeps_residency(cls, filters: list[str]) -> list[str]:
        if RESIDENCY_FILTER not in filters:
            raise ValueError(
                f"residency floor: the {RESIDENCY_FILTER!r} filter is required (data residency is law, "
                "not a preference; the scheduler runs it whatever this list says)"
            )
        return filters


class FailoverPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: Version = 1
    heartbeat_grace_s: Annotated[float, Field(gt=0, le=3600, allow_inf_nan=False)] = 6.0
    lease_s: Annotated[float, Field(gt=0, le=3600, allow_inf_nan=False)] = 15.0
    backups: dict[str, list[str]] = {}


class TenantQuota(BaseModel):
    """One tenant's share of the federation, like a Kueue ClusterQueue in a cohort: ``nominal`` is
    guaranteed; up to ``borrowing_limit`` more may be borrowed from the cohort's unused nominal
    quota. A limit left out is unbounded."""

    model_config = ConfigDict(extra="forbid")

    nominal: dict[str, QuotaAmount] = {}  # cpu, memory_gib, gpu
    borrowing_limit: dict[str, QuotaAmount] | None = None  # None: no limit
    weight: Annotated[float, Field(gt=0, le=1000, allow_inf_nan=False)] = 1.0  # fair-share weight (DRF)


class QuotaPolicy(BaseModel):
    """Tenant quotas, fair share and priority classes (policies/quota.yaml)."""

    model_config = ConfigDict(extra="forbid")

    version: Version = 1
    # Tenants without an entry get ``default`` (none: unlimited, fair share still applies).
    default: TenantQuota | None = None
    tenants: dict[Annotated[str, Field(pattern=r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")], TenantQuota] = {}
    priority_classes: dict[
        Annotated[str, Field(pattern=r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")], Priority
    ] = {
        "system-critical": 1_000_000,
        "failover": 100_000,
        "high": 1000,
        "normal": 100,
        "low": 10,
        "best-effort": 0,
    }
    preemption: bool = True
    max_victims: Annotated[int, Field(ge=1, le=1000)] = 8  # per preemption, on one cluster
    # A job within its nominal quota may preempt borrowed work of other tenants (Kueue's
    # reclaimWithinCohort), whatever the priorities.
    reclaim_borrowed: bool = True

    @model_validator(mode="after")
    def _known_resources(self) -> QuotaPolicy:
        entries = [("default", self.default)] if self.default else []
        entries += [(f"tenants.{k}", v) for k, v in self.tenants.items()]
        for where, q in entries:
            for field_name in ("nominal", "borrowing_limit"):
                for res in getattr(q, field_name) or {}:
                    if res not in QUOTA_RESOURCES:
                        raise ValueError(
                            f"{where}.{field_name}: unknown resource {res!r}; use {QUOTA_RESOURCES}"
                        )
        return self


QUOTA_RESOURCES = ("cpu", "memory_gib", "gpu")


POLICY_KINDS: dict[str, type[BaseModel]] = {
    "residency": ResidencyPolicy,
    "placement": PlacementPolicy,
    "failover": FailoverPolicy,
    "quota": QuotaPolicy,
}


class PolicySet(BaseModel):
    topology: Topology
    residency: ResidencyPolicy
    placement: PlacementPolicy
    failover: FailoverPolicy
    quota: QuotaPolicy = QuotaPolicy()


def format_errors(source: str, exc: ValidationError) -> list[dict[str, str]]:
    """One entry per invalid field, with a dotted/indexed path: ``clusters[3].capacity.cpu``."""
    out = []
    for err in exc.errors():
        path = ""
        for part in err["loc"]:
            path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
        out.append({"source": source, "path": path or "(root)", "message": err["msg"]})
    return out


def cross_check(ps: PolicySet, known_filters: set[str], known_scores: set[str]) -> list[dict[str, str]]:
    """Rules that span files: references to clusters and plugins must exist."""
    errs: list[dict[str, str]] = []
    names = {c.name for c in ps.topology.clusters}
    for cluster, backups in ps.failover.backups.items():
        if cluster not in names:
            errs.append(
                {
                    "source": "failover",
                    "path": f"backups.{cluster}",
                    "message": f"unknown cluster {cluster!r}",
                }
            )
        for i, b in enumerate(backups):
            if b not in names:
                errs.append(
                    {
                        "source": "failover",
                        "path": f"backups.{cluster}[{i}]",
                        "message": f"unknown cluster {b!r}",
                    }
                )
            elif b == cluster:
                errs.append(
                    {
                        "source": "failover",
                        "path": f"backups.{cluster}[{i}]",
                        "message": "a cluster cannot be its own backup",
                    }
                )
    for i, f in enumerate(ps.placement.filters):
        if f not in known_filters:
            errs.append(
                {
                    "source": "placement",
                    "path": f"filters[{i}]",
                    "message": f"unknown filter plugin {f!r}; known: {sorted(known_filters)}",
                }
            )
    for i, s in enumerate(ps.placement.scores):
        if s.name not in known_scores:
            errs.append(
                {
                    "source": "placement",
                    "path": f"scores[{i}].name",
                    "message": f"unknown score plugin {s.name!r}; known: {sorted(known_scores)}",
                }
            )
    return errs


def raw_plugin_errors(doc: Any, known_filters: set[str], known_scores: set[str]) -> list[dict[str, str]]:
    """Unknown plugin names in a placement document that may not pass its schema."""
    if not isinstance(doc, dict):
        return []
    errs: list[dict[str, str]] = []
    filters = doc.get("filters")
    for i, f in enumerate(filters if isinstance(filters, list) else []):
        if isinstance(f, str) and f not in known_filters:
            errs.append(
                {
                    "source": "placement",
                    "path": f"filters[{i}]",
                    "message": f"unknown filter plugin {f!r}; known: {sorted(known_filters)}",
                }
            )
    scores = doc.get("scores")
    for i, sc in enumerate(scores if isinstance(scores, list) else []):
        name = sc.get("name") if isinstance(sc, dict) else None
        if isinstance(name, str) and name not in known_scores:
            errs.append(
                {
                    "source": "placement",
                    "path": f"scores[{i}].name",
                    "message": f"unknown score plugin {name!r}; known: {sorted(known_scores)}",
                }
            )
    return errs


def validate_kind(kind: str, body: Any) -> BaseModel:
    model = POLICY_KINDS.get(kind)
    if model is None:
        raise InvalidPolicy(f"unknown policy kind {kind!r}; kinds: {sorted(POLICY_KINDS)}")
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise InvalidPolicy(f"{kind} policy is invalid", errors=format_errors(kind, exc)) from exc


def read_policy_set(directory: Path, known_filters: set[str], known_scores: set[str]) -> PolicySet:
    """Load and validate every policy file, the placement plugins against the names given (the
    scheduler's, which this layer does not import: ``controller.services.policy_files``
    passes them); raise InvalidPolicy listing all errors."""
    docs: dict[str, Any] = {}
    errors: list[dict[str, str]] = []
    for kind in ("topology", *POLICY_KINDS):
        path = directory / f"{kind}.yaml"
        if not path.exists():
            if kind == "topology":
                errors.append({"source": str(path), "path": "(file)", "message": "missing"})
            docs[kind] = {}
            continue
        try:
            docs[kind] = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            errors.append({"source": str(path), "path": "(file)", "message": f"not valid YAML: {exc}"})
    models: dict[str, BaseModel] = {}
    kinds: list[tuple[str, type[BaseModel]]] = [("topology", Topology), *POLICY_KINDS.items()]
    for kind, model in kinds:
        if kind not in docs:
            continue
        try:
            models[kind] = model.model_validate(docs[kind])
        except ValidationError as exc:
            errors.extend(format_errors(f"{kind}.yaml", exc))
    if errors:  # unknown plugins too, so one run lists every mistake
        errors += raw_plugin_errors(docs.get("placement"), known_filters, known_scores)
        raise InvalidPolicy(f"{len(errors)} policy error(s)", errors=errors)
    ps = PolicySet.model_validate(models)
    errors = cross_check(ps, known_filters, known_scores)
    if errors:
        raise InvalidPolicy(f"{len(errors)} policy error(s)", errors=errors)
    return ps
