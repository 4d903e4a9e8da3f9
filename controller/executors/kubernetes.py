"""Runs attempts as Kubernetes Jobs or Spark applications in the tenant's namespace.

Talks to the cluster only through a ``KubeClient`` (``kube_client.py``): ``OfficialKubeClient``
in production, ``FakeKubeClient`` in tests and the embedded federation. Calls do network I/O, so
the asyncio agent drives this executor through ``asyncio.to_thread``; the state here is guarded
by a lock.

- start: create the object; 409 (it exists) means this attempt was already started: adopted.
  404 on create (no such namespace) or a 4xx rejection fails the attempt with the API's words;
  an unreachable or failing API server raises ExecutorUnavailable, and start can be retried.
- poll: read the object and map its status: Job conditions ``Complete`` -> Succeeded, ``Failed``
  -> Failed with the Job controller's reason (``DeadlineExceeded``, ``BackoffLimitExceeded``);
  SparkApplication states COMPLETED / FAILED / SUBMISSION_FAILED likewise. Terminal statuses are
  remembered, so a finished Job garbage-collected by its TTL still reports how it ended.
  Spark applications have no deadline field: poll deletes one that outlives max_runtime_s.
- stop: delete with propagationPolicy Background (pods go with it); 404 counts as done.
- recover: after an agent restart, adopt the attempts this cluster already has objects for.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from controller.assignments import Assignment
from controller.executors.base import (
    REASON_COMPLETED,
    REASON_DEADLINE,
    REASON_LOST,
    REASON_STOPPED,
    ExecutionNotFound,
    ExecutionStatus,
    ExecutorUnavailable,
    ResourceAmounts,
)
from controller.executors.kube_client import (
    JOBS,
    SPARK_APPLICATIONS,
    KubeClient,
    KubeConflict,
    KubeError,
    KubeNotFound,
    KubeResource,
    Manifest,
)
from controller.executors.kube_manifests import (
    ANNOTATION_JOB_ID,
    LABEL_ATTEMPT,
    KubeOptions,
    attempt_selector,
    cluster_selector,
    job_manifest,
    spark_application_manifest,
)

REASON_NAMESPACE_MISSING = "NamespaceMissing"
REASON_REJECTED = "Rejected"
REASON_SPARK_FAILED = "SparkFailed"
REASON_SPARK_SUBMISSION_FAILED = "SparkSubmissionFailed"


@dataclass
class _KubeAttempt:
    resource: KubeResource
    namespace: str
    name: str
    allocated: ResourceAmounts
    max_runtime_s: int | None
    status: ExecutionStatus | None = None


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def job_status(job: Manifest) -> ExecutionStatus:
    """Map a batch/v1 Job's status to an ExecutionStatus, as the Job controller reports it."""
    status = job.get("status") or {}
    name = job["metadata"]["name"]
    conditions = {c.get("type"): c for c in status.get("conditions") or [] if c.get("status") == "True"}
    if "Complete" in conditions:
        done = status.get("succeeded", 0)
        return ExecutionStatus(
            phase="Succeeded",
            exit_code=0,
            reason=REASON_COMPLETED,
            message=f"Job {name} complete: {done}/{job['spec'].get('completions', 1)} pods succeeded",
        )
    if "Failed" in conditions:
        cond = conditions["Failed"]
        reason = cond.get("reason") or "Failed"
        return ExecutionStatus.failed(reason, f"Job {name} failed: {cond.get('message') or reason}")
    active, ready = status.get("active", 0), status.get("ready", 0)
    if not status.get("startTime"):
        return ExecutionStatus.running(f"Job {name} created; waiting for the Job controller", "Pending")
    return ExecutionStatus.running(
        f"Job {name}: {active} active, {ready} ready, {status.get('succeeded', 0)} succeeded, "
        f"{status.get('failed', 0)} failed"
    )


def spark_status(app: Manifest) -> ExecutionStatus:
    """Map a SparkApplication's applicationState to an ExecutionStatus."""
    state_obj = (app.get("status") or {}).get("applicationState") or {}
    state = state_obj.get("state", "")
    error = state_obj.get("errorMessage", "")
    name = app["metadata"]["name"]
    if state == "COMPLETED":
        return ExecutionStatus(
            phase="Succeeded",
            exit_code=0,
            reason=REASON_COMPLETED,
            message=f"SparkApplication {name} completed",
        )
    if state == "FAILED":
        return ExecutionStatus.failed(REASON_SPARK_FAILED, f"SparkApplication {name}: {error or 'failed'}")
    if state == "SUBMISSION_FAILED":
        return ExecutionStatus.failed(
            REASON_SPARK_SUBMISSION_FAILED, f"SparkApplication {name}: {error or 'submission failed'}"
        )
    return ExecutionStatus.running(f"SparkApplication {name}: {state or 'NEW'}", state or "Pending")


class KubernetesExecutor:
    name = "kubernetes"

    def __init__(
        self,
        client: KubeClient,
        *,
        capacity: ResourceAmounts,
        options: KubeOptions | None = None,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.client = client
        self.options = options or KubeOptions()
        self._capacity = capacity
        self._clock = clock
        self._lock = threading.RLock()
        self._attempts: dict[tuple[str, int], _KubeAttempt] = {}

    # -- the Executor interface ------------------------------------------------------------

    def start(self, assignment: Assignment) -> None:
        key = (assignment.job_id, assignment.attempt)
        with self._lock:
            if key in self._attempts:
                return
            spec = assignment.spec
            if spec.runtime.kind == "spark":
                resource, body = SPARK_APPLICATIONS, spark_application_manifest(assignment, self.options)
            else:
                resource, body = JOBS, job_manifest(assignment, self.options)
            meta = body["metadata"]
            att = _KubeAttempt(
                resource=resource,
                namespace=meta["namespace"],
                name=meta["name"],
                allocated=ResourceAmounts.for_job(spec),
                max_runtime_s=spec.max_runtime_s if resource == SPARK_APPLICATIONS else None,
            )
            try:
                self.client.create(resource, att.namespace, body)
            except KubeConflict:
                pass  # the name is unique per attempt: this attempt was started already
            except KubeNotFound as exc:
                att.status = ExecutionStatus.failed(REASON_NAMESPACE_MISSING, str(exc))
            except KubeError as exc:
                if exc.retryable:
                    raise ExecutorUnavailable(f"cannot start {att.name}: {exc}") from exc
                att.status = ExecutionStatus.failed(REASON_REJECTED, str(exc))
            self._attempts[key] = att

    def poll(self, job_id: str, attempt: int) -> ExecutionStatus:
        with self._lock:
            att = self._attempts.get((job_id, attempt))
            if att is None:
                raise ExecutionNotFound(f"attempt {attempt} of job {job_id} was not started by this executor")
            if att.status is not None:
                return att.status
            try:
                obj = self.client.get(att.resource, att.namespace, att.name)
            except KubeNotFound:
                att.status = ExecutionStatus.failed(
                    REASON_LOST,
                    f"{att.resource.kind} {att.namespace}/{att.name} was deleted before its end was seen",
                )
                return att.status
            except KubeError as exc:
                raise ExecutorUnavailable(f"cannot read {att.name}: {exc}") from exc
            status = job_status(obj) if att.resource == JOBS else spark_status(obj)
            if not status.terminal and self._past_deadline(att, obj):
                self._delete(att)
                status = ExecutionStatus.failed(
                    REASON_DEADLINE,
                    f"{att.resource.kind} {att.name} exceeded max_runtime_s={att.max_runtime_s}",
                )
            if status.terminal:
                att.status = status
            return status

    def stop(self, job_id: str, attempt: int, reason: str) -> None:
        with self._lock:
            att = self._attempts.get((job_id, attempt))
            if att is None:
                found = self._find(job_id, attempt)
                if found is None:
                    return
                att = self._attempts[(job_id, attempt)] = found
            self._delete(att)
            if att.status is None:
                att.status = ExecutionStatus.failed(REASON_STOPPED, reason or "stop requested")

    def active(self) -> list[tuple[str, int]]:
        with self._lock:
            return sorted(k for k, a in self._attempts.items() if a.status is None)

    def capacity(self) -> ResourceAmounts:
        return self._capacity

    def allocated(self) -> ResourceAmounts:
        with self._lock:
            total = ResourceAmounts()
            for att in self._attempts.values():
                if att.status is None:
                    total = total + att.allocated
            return total

    # -- restart and helpers ---------------------------------------------------------------

    def recover(self, cluster: str) -> list[tuple[str, int]]:
        """Adopt every attempt this cluster has objects for; returns the adopted keys."""
        adopted = []
        with self._lock:
            for resource in (JOBS, SPARK_APPLICATIONS):
                try:
                    items, _ = self.client.list(resource, None, cluster_selector(cluster))
                except KubeError as exc:
                    raise ExecutorUnavailable(f"cannot list {resource.plural}: {exc}") from exc
                for obj in items:
                    key, att = self._adopt(resource, obj)
                    if key is not None and key not in self._attempts:
                        self._attempts[key] = att
                        adopted.append(key)
        return sorted(adopted)

    def _adopt(self, resource: KubeResource, obj: Manifest) -> tuple[tuple[str, int] | None, _KubeAttempt]:
        meta = obj["metadata"]
        job_id = (meta.get("annotations") or {}).get(ANNOTATION_JOB_ID)
        attempt = (meta.get("labels") or {}).get(LABEL_ATTEMPT, "")
        att = _KubeAttempt(
            resource=resource,
            namespace=meta["namespace"],
            name=meta["name"],
            allocated=_allocated_from(obj),
            max_runtime_s=None,
        )
        if not job_id or not attempt.isdigit():
            return None, att
        return (job_id, int(attempt)), att

    def _find(self, job_id: str, attempt: int) -> _KubeAttempt | None:
        for resource in (JOBS, SPARK_APPLICATIONS):
            try:
                items, _ = self.client.list(resource, None, attempt_selector(job_id, attempt))
            except KubeError as exc:
                raise ExecutorUnavailable(f"cannot look up attempt {attempt} of {job_id}: {exc}") from exc
            for obj in items:
                if (obj["metadata"].get("annotations") or {}).get(ANNOTATION_JOB_ID) == job_id:
                    return self._adopt(resource, obj)[1]
        return None

    def _delete(self, att: _KubeAttempt) -> None:
        try:
            self.client.delete(att.resource, att.namespace, att.name, propagation_policy="Background")
        except KubeNotFound:
            pass
        except KubeError as exc:
            raise ExecutorUnavailable(f"cannot delete {att.name}: {exc}") from exc

    def _past_deadline(self, att: _KubeAttempt, obj: Manifest) -> bool:
        if att.max_runtime_s is None:
            return False
        created = _parse_time(obj["metadata"].get("creationTimestamp"))
        return created is not None and (self._clock() - created).total_seconds() > att.max_runtime_s


def _allocated_from(obj: Manifest) -> ResourceAmounts:
    """What an adopted object holds, read back from its own manifest (Jobs only; 0 if unknown)."""
    try:
        spec = obj["spec"]
        requests = spec["template"]["spec"]["containers"][0]["resources"]["requests"]
        replicas = int(spec.get("parallelism", 1))
    except (KeyError, IndexError, TypeError):
        return ResourceAmounts()
    return ResourceAmounts(
        cpu=_parse_cpu(requests.get("cpu", "0")) * replicas,
        memory_gib=_parse_memory_gib(requests.get("memory", "0")) * replicas,
        gpu=int(requests.get("nvidia.com/gpu", 0)) * replicas,
    )


def _parse_cpu(q: str) -> float:
    return int(q[:-1]) / 1000 if q.endswith("m") else float(q)


def _parse_memory_gib(q: str) -> float:
    units = {"Gi": 1.0, "Mi": 1 / 1024, "Ki": 1 / 1024**2}
    for suffix, factor in units.items():
        if q.endswith(suffix):
            return float(q[: -len(suffix)]) * factor
    return float(q) / 2**30
