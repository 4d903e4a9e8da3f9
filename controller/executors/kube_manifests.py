"""Kubernetes manifests for one attempt: a ``batch/v1`` Job, or a Spark operator SparkApplication.

Naming: ``yw-<job>-<hash>-a<attempt>``, a DNS-1123 label of at most 52 characters, unique per
(job id, attempt). 52 rather than 63 because the Job controller names an Indexed Job's pods'
hostnames ``<job name>-<index>`` (up to 10 000 replicas: 6 more characters), and the Spark operator
derives ``<name>-driver`` and service names from the application name; both must stay DNS labels.

A job id that is not already a valid label value is carried as a hashed label value (for
selectors) and verbatim in the ``yiwang.gov.cn/job-id`` annotation.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from controller.assignments import Assignment
from controller.executors.base import job_environment
from controller.executors.kube_client import JOBS, SPARK_APPLICATIONS, Manifest
from controller.jobs import Resources

MAX_NAME = 52
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "yiwang"
LABEL_JOB_ID = "yiwang.gov.cn/job-id"
LABEL_ATTEMPT = "yiwang.gov.cn/attempt"
LABEL_TENANT = "yiwang.gov.cn/tenant"
LABEL_CLUSTER = "yiwang.gov.cn/cluster"
ANNOTATION_JOB_ID = "yiwang.gov.cn/job-id"
ANNOTATION_EPOCH = "yiwang.gov.cn/epoch"
LABEL_KUEUE_QUEUE = "kueue.x-k8s.io/queue-name"
GPU_RESOURCE = "nvidia.com/gpu"
CONTAINER_NAME = "job"

_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")


@dataclass(frozen=True)
class KubeOptions:
    """Per-cluster settings of the Kubernetes executor."""

    namespace_prefix: str = "tenant-"
    ttl_seconds_after_finished: int = 3600
    image_pull_policy: str = "IfNotPresent"
    queue_name: str | None = None  # Kueue LocalQueue: admits an Indexed gang all-or-nothing
    service_account: str | None = None  # Job pods: None keeps the namespace default, no token mounted
    run_as_user: int = 65532  # runAsNonRoot needs a numeric user if the image names none
    spark_version: str = "3.5.3"
    spark_service_account: str = "spark"
    spark_driver_cpu: int = 1
    spark_driver_memory_mib: int = 1024


def _short_hash(text: str, n: int = 8) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def object_name(job_id: str, attempt: int) -> str:
    suffix = f"-a{attempt}"
    clean = re.sub(r"[^a-z0-9-]+", "-", job_id.lower()).strip("-")
    if clean == job_id and len(f"yw-{clean}{suffix}") <= MAX_NAME:
        return f"yw-{clean}{suffix}"
    tail = f"-{_short_hash(job_id)}{suffix}"
    room = MAX_NAME - len("yw-") - len(tail)
    base = clean[:room].rstrip("-")
    return f"yw-{base}{tail}" if base else f"yw{tail}"


def job_id_label(job_id: str) -> str:
    if len(job_id) <= 63 and _LABEL_VALUE.match(job_id):
        return job_id
    clean = re.sub(r"[^A-Za-z0-9_.-]+", "-", job_id)[:50].strip("-_.")
    return f"{clean}-{_short_hash(job_id, 12)}" if clean else _short_hash(job_id, 12)


def namespace_for(tenant: str, options: KubeOptions) -> str:
    return f"{options.namespace_prefix}{tenant}"


def attempt_selector(job_id: str, attempt: int) -> str:
    return f"{LABEL_MANAGED_BY}={MANAGED_BY},{LABEL_JOB_ID}={job_id_label(job_id)},{LABEL_ATTEMPT}={attempt}"


def cluster_selector(cluster: str) -> str:
    return f"{LABEL_MANAGED_BY}={MANAGED_BY},{LABEL_CLUSTER}={cluster}"


def labels_for(assignment: Assignment, options: KubeOptions) -> dict[str, str]:
    labels = {
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_JOB_ID: job_id_label(assignment.job_id),
        LABEL_ATTEMPT: str(assignment.attempt),
        LABEL_TENANT: assignment.tenant,
        LABEL_CLUSTER: assignment.cluster,
    }
    if options.queue_name:
        labels[LABEL_KUEUE_QUEUE] = options.queue_name
    return labels


def _metadata(assignment: Assignment, options: KubeOptions) -> Manifest:
    return {
        "name": object_name(assignment.job_id, assignment.attempt),
        "namespace": namespace_for(assignment.tenant, options),
        "labels": labels_for(assignment, options),
        "annotations": {ANNOTATION_JOB_ID: assignment.job_id, ANNOTATION_EPOCH: str(assignment.epoch)},
    }


def cpu_quantity(cores: float) -> str:
    millis = max(1, round(cores * 1000))
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


def memory_mib(gib: float) -> int:
    return max(1, round(gib * 1024))


def memory_quantity(gib: float) -> str:
    mib = memory_mib(gib)
    return f"{mib // 1024}Gi" if mib % 1024 == 0 else f"{mib}Mi"


def container_security_context(options: KubeOptions) -> Manifest:
    return {
        "runAsNonRoot": True,
        "runAsUser": options.run_as_user,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def pod_security_context(options: KubeOptions) -> Manifest:
    return {
        "runAsNonRoot": True,
        "runAsUser": options.run_as_user,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def env_list(assignment: Assignment) -> list[Manifest]:
    return [{"name": k, "value": v} for k, v in job_environment(assignment).items()]


def gpu_tolerations() -> list[Manifest]:
    return [{"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}]


def whole_gpus(res: Resources) -> int:
    """GPUs a pod asks the device plugin for. A shared GPU (``gpu_milli``) still takes one whole
    ``nvidia.com/gpu`` here: the stock NVIDIA device plugin has no fractions, so the member
    cluster never overcommits (the controller's ledger counts the fraction it was given)."""
    return max(res.gpu, math.ceil(res.gpus)) if res.gpus > 0 else 0


def job_manifest(assignment: Assignment, options: KubeOptions) -> Manifest:
    """A batch/v1 Job: one pod per replica, all-or-nothing failure, retries left to Yiwang."""
    spec = assignment.spec
    res = spec.resources
    amounts: dict[str, str] = {"cpu": cpu_quantity(res.cpu)}
    if res.memory_gib > 0:
        amounts["memory"] = memory_quantity(res.memory_gib)
    if res.gpus > 0:
        amounts[GPU_RESOURCE] = str(whole_gpus(res))
    container: Manifest = {
        "name": CONTAINER_NAME,
        "image": spec.runtime.image,
        "imagePullPolicy": options.image_pull_policy,
        "env": env_list(assignment),
        "resources": {"requests": dict(amounts), "limits": dict(amounts)},
        "securityContext": container_security_context(options),
    }
    if spec.runtime.command:
        container["command"] = list(spec.runtime.command)
    pod_spec: Manifest = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "securityContext": pod_security_context(options),
        "containers": [container],
    }
    if options.service_account:
        pod_spec["serviceAccountName"] = options.service_account
    if res.gpus > 0:
        pod_spec["tolerations"] = gpu_tolerations()
    metadata = _metadata(assignment, options)
    job_spec: Manifest = {
        "parallelism": spec.replicas,
        "completions": spec.replicas,
        "backoffLimit": 0,
        "activeDeadlineSeconds": spec.max_runtime_s,
        "ttlSecondsAfterFinished": options.ttl_seconds_after_finished,
        "template": {"metadata": {"labels": dict(metadata["labels"])}, "spec": pod_spec},
    }
    if spec.replicas > 1:
        job_spec["completionMode"] = "Indexed"
    return {"apiVersion": JOBS.api_version, "kind": JOBS.kind, "metadata": metadata, "spec": job_spec}


def spark_type(main_application_file: str) -> str:
    suffix = PurePosixPath(main_application_file.split("?", 1)[0]).suffix.lower()
    return {".py": "Python", ".r": "R"}.get(suffix, "Scala")


def spark_application_manifest(assignment: Assignment, options: KubeOptions) -> Manifest:
    """A SparkApplication: the driver plus ``replicas`` executors of the job's per-replica size.

    runtime.command becomes the application's arguments. The operator has no run-time deadline,
    so the executor enforces max_runtime_s itself.
    """
    spec = assignment.spec
    res = spec.resources
    metadata = _metadata(assignment, options)
    labels = dict(metadata["labels"])
    env = env_list(assignment)
    common: Manifest = {
        "labels": labels,
        "env": env,
        "serviceAccount": options.spark_service_account,
        "securityContext": container_security_context(options),
        "podSecurityContext": pod_security_context(options),
    }
    driver: Manifest = {
        **common,
        "cores": options.spark_driver_cpu,
        "coreLimit": cpu_quantity(options.spark_driver_cpu),
        "memory": f"{options.spark_driver_memory_mib}m",
    }
    executor: Manifest = {
        **common,
        "instances": spec.replicas,
        "cores": max(1, math.ceil(res.cpu)),
        "coreRequest": cpu_quantity(res.cpu),
        "coreLimit": cpu_quantity(res.cpu),
        "memory": f"{memory_mib(res.memory_gib)}m",
        "deleteOnTermination": True,
    }
    if res.gpus > 0:
        executor["gpu"] = {"name": GPU_RESOURCE, "quantity": whole_gpus(res)}
        executor["tolerations"] = gpu_tolerations()
    app_spec: Manifest = {
        "type": spark_type(spec.runtime.main_application_file or ""),
        "mode": "cluster",
        "sparkVersion": options.spark_version,
        "image": spec.runtime.image,
        "imagePullPolicy": options.image_pull_policy,
        "mainApplicationFile": spec.runtime.main_application_file,
        "restartPolicy": {"type": "Never"},
        "timeToLiveSeconds": options.ttl_seconds_after_finished,
        "driver": driver,
        "executor": executor,
    }
    if spec.runtime.command:
        app_spec["arguments"] = list(spec.runtime.command)
    return {
        "apiVersion": SPARK_APPLICATIONS.api_version,
        "kind": SPARK_APPLICATIONS.kind,
        "metadata": metadata,
        "spec": app_spec,
    }
