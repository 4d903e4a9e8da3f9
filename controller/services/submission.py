"""Submission: a job is checked against the federation (its tenant, the data sets and clusters
it names must exist, or it would wait forever), built into its row and committed as Pending;
``submit_async`` joins the store's group commit (the API's hot path), with the submitter's audit
row in the job's transaction. A replayed Idempotency-Key returns the job it created first.

Dependencies: the store, the cluster registry, the data-set catalogue's map, the current
policies (a callable: the quota policy names tenants), the settings (the process's role), the
read model (terms and pending specs of jobs submitted here), the job queries (the answer) and
the controller's wake-up of its loop."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any, NamedTuple

from controller.datasets import DatasetRead
from controller.errors import Conflict, InvalidInput
from controller.jobs import JobCreate, JobRead, new_job_json
from controller.policies import PolicySet
from controller.registry import Registry
from controller.services.jobs import JobQueries
from controller.services.read_model import ReadModel
from controller.settings import Settings
from controller.store.store import AUDIT_KEY, Store, new_job_id, now


class Accepted(NamedTuple):
    """A submission's job as the API answers it: its id and its ``JobRead`` as JSON."""

    id: str
    json: bytes


def spec_hash(spec: JobCreate) -> str:
    return hashlib.sha256(spec.model_dump_json().encode()).hexdigest()


class Submission:
    def __init__(
        self,
        store: Store,
        registry: Registry,
        datasets: dict[str, DatasetRead],
        settings: Settings,
        read_model: ReadModel,
        jobs: JobQueries,
        *,
        policies: Callable[[], PolicySet],
        wake: Callable[[], None],
    ) -> None:
        self.store = store
        self.registry = registry
        self.datasets = datasets
        self.settings = settings
        self.read_model = read_model
        self.jobs = jobs
        self.policies = policies
        self.wake = wake

    def known_tenants(self) -> set[str]:
        """The federation's tenants: the member clusters' tenants and those of the quota policy."""
        tenants = {s.spec.tenant for s in self.registry.clusters.values() if s.spec.tenant}
        return tenants | set(self.policies().quota.tenants)

    def is_known_tenant(self, tenant: str) -> bool:
        """``tenant in known_tenants()`` without building the set (it ran per request: 5 % of the
        API's CPU): the quota policy's dict, the clusters' tenants as of the registry's last
        rebuild, then (a cluster added and the registry not yet rebuilt) the clusters (walking
        them for every submission of a tenant the quota policy does not name was 3 %)."""
        if tenant in self.policies().quota.tenants or tenant in self.registry.tenants:
            return True
        return any(s.spec.tenant == tenant for s in self.registry.clusters.values())

    def check_inputs(self, spec: JobCreate) -> None:
        """Names must exist in the federation, or the job would wait forever for them."""
        errors = [
            {"path": f"inputs[{i}]", "message": f"unknown data set {ds!r}"}
            for i, ds in enumerate(spec.inputs)
            if ds not in self.datasets
        ]
        if not self.is_known_tenant(spec.tenant):
            errors.append(
                {
                    "path": "tenant",
                    "message": f"unknown tenant {spec.tenant!r} (tenants: the member clusters' and "
                    "policies/quota.yaml's)",
                }
            )
        clusters = self.registry.clusters
        for field in ("allow_clusters", "deny_clusters", "prefer_clusters"):
            errors += [
                {"path": f"constraints.{field}[{i}]", "message": f"unknown cluster {name!r}"}
                for i, name in enumerate(getattr(spec.constraints, field))
                if name not in clusters
            ]
        if errors:
            raise InvalidInput(
                "the job names "
                + ", ".join(sorted({e["path"].split("[")[0] for e in errors}))
                + " that the federation does not have",
                errors=errors,
            )

    @staticmethod
    def new_job_row(spec: JobCreate, idempotency_key: str | None) -> dict[str, Any]:
        at = now()
        return {
            "id": new_job_id(),
            "tenant": spec.tenant,
            "name": spec.name,
            "phase": "Pending",
            "cluster": None,
            "attempt": 1,
            "epoch": 0,
            "priority": spec.priority,
            "spec": spec.model_dump(mode="json"),
            "message": "waiting to be scheduled",
            "created_at": at,
            "updated_at": at,
            "lease_expires_at": None,
            "idempotency_key": idempotency_key,
            "request_hash": spec_hash(spec) if idempotency_key else None,
        }

    def submit(self, spec: JobCreate, idempotency_key: str | None = None) -> tuple[JobRead, bool]:
        return self.submit_many([(spec, idempotency_key)])[0]

    def submit_many(self, items: list[tuple[JobCreate, str | None]]) -> list[tuple[JobRead, bool]]:
        """Commit jobs as Pending; returns (job, created). A replayed Idempotency-Key returns the
        job it created first; the same key with a different body is a conflict."""
        rows = []
        for spec, key in items:
            self.check_inputs(spec)
            rows.append(self.new_job_row(spec, key))
        out = []
        for (spec, key), (row, created) in zip(items, self.store.insert_jobs(rows), strict=True):
            if not created and row["request_hash"] != spec_hash(spec):
                raise Conflict(f"Idempotency-Key {key!r} was used for a different job ({row['id']})")
            if created:
                self.read_model.note_terms(str(row["id"]), spec)
            out.append((self.jobs.job_read(row, with_events=False), created))
        self.wake()
        return out

    async def submit_async(
        self, spec: JobCreate, idempotency_key: str | None = None, audit: dict[str, Any] | None = None
    ) -> tuple[Accepted, bool]:
        """``submit`` for the API's hot path: the row joins the store's group commit (many
        concurrent submissions share one transaction and fsync); answers after the commit, with
        the job as JSON (a new job's from its row, ``new_job_json``; a replayed key's as stored).
        ``audit``: the submitter's audit_log row, written in the job's transaction if created."""
        self.check_inputs(spec)
        row = self.new_job_row(spec, idempotency_key)
        if audit is not None:
            row[AUDIT_KEY] = {**audit, "target": f"job/{row['id']}"}
        stored, created = await self.store.group_commit().submit(row)
        if created:
            self.read_model.note_terms(str(row["id"]), spec)
        if created and self.settings.role == "all":
            self.read_model.keep_spec(str(row["id"]), spec)
        self.wake()
        if not created:
            if stored["request_hash"] != spec_hash(spec):
                raise Conflict(
                    f"Idempotency-Key {idempotency_key!r} was used for a different job ({stored['id']})"
                )
            read = self.jobs.job_read(stored, with_events=False)
            return Accepted(read.id, read.model_dump_json().encode()), False
        job_id = str(row["id"])
        return Accepted(job_id, new_job_json(job_id, row["spec"], row["created_at"], row["message"])), True
