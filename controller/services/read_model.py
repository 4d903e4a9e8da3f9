"""The in-memory read model of a controller process: the allocation ledger's entries for placed
jobs (``apply_job_state``, from stored rows: at start-up and by the follower), the specs of jobs
submitted here and not yet placed (so a cycle does not re-read them), and the (tenant, demand,
priority) terms of jobs submitted here (so the follower adds a placement without reading its
row). The priority the ledger keeps follows the quota policy's classes.

Dependencies: the cluster registry (its ledger) and the current quota policy (a callable, as the
policy is replaced at run time). Callers hold the controller's lock when they change it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from controller.domain.phases import TERMINAL
from controller.jobs import JobCreate
from controller.policies import QuotaPolicy
from controller.registry import Registry
from controller.scheduler.framework import demand_triple, demand_vector
from controller.scheduler.quota import class_priority
from controller.store.store import ACTIVE_PHASES

PENDING_SPEC_CACHE = 100_000  # about 4 KB a spec: 400 MB at most (a cycle takes schedule_batch)
JOB_TERMS_CACHE = 200_000
TERMINAL_PHASES = frozenset(p.value for p in TERMINAL)


class ReadModel:
    def __init__(self, registry: Registry, quota: Callable[[], QuotaPolicy]) -> None:
        self.registry = registry
        self.quota = quota
        # Specs of jobs submitted through this controller and not yet placed, so a scheduling
        # cycle does not re-read and re-validate them from the store (bounded; misses are read).
        self.pending_specs: dict[str, JobCreate] = {}
        # (tenant, demand, priority) of jobs submitted through this process and not finished:
        # a follower adds a placement of one of them to the ledger without reading its row.
        self.job_terms: dict[str, tuple[str, tuple[float, float, float], int]] = {}

    def apply_job_state(self, row: dict[str, Any]) -> None:
        """Set the job's ledger entry from its stored row (id, tenant, phase, cluster, attempt,
        spec): present while an attempt is placed, absent otherwise. Callers hold the lock
        (or own the controller, at start-up)."""
        job_id = row["id"]
        if row["phase"] != "Pending":
            self.pending_specs.pop(job_id, None)
        if row["phase"] not in ACTIVE_PHASES or not row["cluster"]:
            self.registry.ledger.pop(job_id)
            return
        entry = self.registry.ledger.entries.get(job_id)
        if entry is not None and (entry.cluster, entry.attempt) == (row["cluster"], row["attempt"]):
            return
        demand, priority = self.ledger_terms(row["spec"])
        self.registry.ledger.add(job_id, row["cluster"], demand, row["tenant"], priority, row["attempt"])

    def ledger_terms(self, spec: dict[str, Any]) -> tuple[np.ndarray, int]:
        """(demand, effective priority) of a stored spec. Stored specs are complete
        (``model_dump`` of a validated JobCreate), so this reads the few fields it needs instead
        of validating the whole spec again: a follower does it for every placement it learns of."""
        try:
            r, replicas = spec["resources"], spec["replicas"]
            gpu = r["gpu_milli"] / 1000.0 if r.get("gpu_milli") else r["gpu"]
            demand = np.array([r["cpu"], r["memory_gib"], gpu], dtype=np.float64) * replicas
            priority = self.priority(int(spec["priority"]), spec["priority_class"])
            if not (np.isfinite(demand).all() and (demand >= 0).all()):
                raise TypeError("demand out of bounds")
        except (KeyError, TypeError):  # not our own complete form: validate it (raises if bad)
            full = JobCreate.model_validate(spec)
            return demand_vector(full), self.priority_of(full)
        return demand, priority

    def keep_spec(self, job_id: str, spec: JobCreate) -> None:
        """Keep a pending job's validated spec for the cycles that will read it (bounded)."""
        if len(self.pending_specs) < PENDING_SPEC_CACHE:
            self.pending_specs[job_id] = spec

    def note_terms(self, job_id: str, spec: JobCreate) -> None:
        if len(self.job_terms) < JOB_TERMS_CACHE:
            # without ``demand_vector``'s array: it was 3 % of the API's CPU a submission
            self.job_terms[job_id] = (spec.tenant, demand_triple(spec), self.priority_of(spec))

    def forget_terms(self, job_id: str, phase: str | None) -> None:
        """A job left Scheduled/Running (callers hold the lock): its pending spec goes unless
        it is Pending again; its noted terms go once it is finished."""
        if phase != "Pending":
            self.pending_specs.pop(job_id, None)
        if phase in TERMINAL_PHASES:
            self.job_terms.pop(job_id, None)

    def priority_of(self, spec: JobCreate) -> int:
        return self.priority(spec.priority, spec.priority_class)

    def priority(self, priority: int, priority_class: str | None) -> int:
        """The priority the ledger keeps: the class's value when the class is known, else the
        job's own."""
        p = class_priority(priority, priority_class, self.quota())
        return p if p is not None else priority
