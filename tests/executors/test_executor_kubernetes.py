from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
from kubernetes.client import V1Job
from kubernetes.client.exceptions import ApiException

from controller.executors.base import ExecutionNotFound, Executor, ExecutorUnavailable, ResourceAmounts
from controller.executors.kube_client import (
    JOBS,
    SPARK_APPLICATIONS,
    KubeConflict,
    KubeError,
    KubeGone,
    KubeNotFound,
    OfficialKubeClient,
)
from controller.executors.kube_fake import FakeKubeClient
from controller.executors.kube_manifests import (
    KubeOptions,
    job_manifest,
    object_name,
    spark_application_manifest,
)
from controller.executors.kubernetes import KubernetesExecutor

K8S_VERSION = "1.30.0"
DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
SPARK_SCHEMA = json.loads((Path(__file__).parent / "sparkapplication_v1beta2.schema.json").read_text())
NS = "tenant-440000"
CAPACITY = ResourceAmounts(cpu=64, memory_gib=256, gpu=8)

JOB_CASES = {
    "plain": {},
    "gang": {"replicas": 4, "resources": {"cpu": 2, "memory_gib": 8}},
    "gpu": {
        "resources": {"cpu": 8, "memory_gib": 61.5, "gpu": 2},
        "runtime": {"command": ["python", "train.py"]},
    },
    "image-entrypoint": {"runtime": {"command": []}},
    "fractional-cpu-and-env": {
        "resources": {"cpu": 0.25, "memory_gib": 0.5},
        "runtime": {"command": ["sh", "-c", "run"], "env": {"MODE": "fast"}},
    },
}
SPARK_CASES = {
    "python": {
        "runtime": {
            "kind": "spark",
            "main_application_file": "local:///opt/app/etl.py",
            "command": ["--day", "1"],
        }
    },
    "jar-gpu": {
        "replicas": 8,
        "resources": {"cpu": 3.5, "memory_gib": 12, "gpu": 1},
        "runtime": {"kind": "spark", "main_application_file": "s3a://apps/etl.jar"},
    },
}


def spark_spec(**extra: Any) -> dict[str, Any]:
    return {"runtime": {"kind": "spark", "main_application_file": "local:///opt/app/etl.py"}, **extra}


@pytest.fixture
def fake() -> FakeKubeClient:
    return FakeKubeClient()


@pytest.fixture
def executor(fake) -> KubernetesExecutor:
    return KubernetesExecutor(fake, capacity=CAPACITY)


# -- manifests ---------------------------------------------------------------------------


@pytest.mark.parametrize("case", JOB_CASES)
def test_job_manifest_is_valid_kubernetes(make_assignment, case):
    a = make_assignment(inputs={"pop.census-2020": "/data/pop"}, **JOB_CASES[case])
    doc = job_manifest(a, KubeOptions())
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    # The official client's typed model must keep every field we set (it drops unknown ones).
    from kubernetes.client import ApiClient

    assert ApiClient().sanitize_for_serialization(V1Job.from_dict(doc)) == doc


@pytest.mark.parametrize("case", JOB_CASES)
def test_job_manifest_contents(make_assignment, case):
    a = make_assignment(job_id="j-42", attempt=3, **JOB_CASES[case])
    doc = job_manifest(a, KubeOptions(ttl_seconds_after_finished=600))
    meta, spec = doc["metadata"], doc["spec"]
    assert meta["namespace"] == NS
    assert DNS_LABEL.match(meta["name"]) and len(meta["name"]) <= 63
    assert meta["labels"] == {
        "app.kubernetes.io/managed-by": "yiwang",
        "yiwang.gov.cn/job-id": "j-42",
        "yiwang.gov.cn/attempt": "3",
        "yiwang.gov.cn/tenant": "440000",
        "yiwang.gov.cn/cluster": "guangdong",
    }
    assert spec["template"]["metadata"]["labels"] == meta["labels"]
    replicas = a.spec.replicas
    assert (spec["parallelism"], spec["completions"]) == (replicas, replicas)
    assert spec.get("completionMode") == ("Indexed" if replicas > 1 else None)
    assert (spec["backoffLimit"], spec["activeDeadlineSeconds"], spec["ttlSecondsAfterFinished"]) == (
        0,
        a.spec.max_runtime_s,
        600,
    )
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["securityContext"]["runAsNonRoot"] is True
    container = pod["containers"][0]
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"} and sc["runAsNonRoot"] is True
    resources = container["resources"]
    assert resources["requests"] == resources["limits"]
    assert (resources["requests"].get("nvidia.com/gpu") is not None) == (a.spec.resources.gpu > 0)
    env = {e["name"]: e["value"] for e in container["env"]}
    assert (env["YIWANG_JOB_ID"], env["YIWANG_ATTEMPT"]) == ("j-42", "3")
    assert container.get("command", []) == a.spec.runtime.command


@pytest.mark.parametrize(
    ("cpu", "memory", "gpu", "requests"),
    [
        (1, 1, 0, {"cpu": "1", "memory": "1Gi"}),
        (0.25, 0.5, 0, {"cpu": "250m", "memory": "512Mi"}),
        (8, 61.5, 2, {"cpu": "8", "memory": "62976Mi", "nvidia.com/gpu": "2"}),
        (1.5, 0, 0, {"cpu": "1500m"}),
    ],
)
def test_resource_quantities(make_assignment, cpu, memory, gpu, requests):
    a = make_assignment(resources={"cpu": cpu, "memory_gib": memory, "gpu": gpu})
    container = job_manifest(a, KubeOptions())["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["requests"] == requests


@pytest.mark.parametrize(
    "job_id",
    ["j1", "Job_With.Odd/Chars", "x" * 200, "550e8400-e29b-41d4-a716-446655440000", "--", "中文作业"],
)
def test_names_are_dns_labels_unique_per_attempt(make_assignment, job_id):
    names = {object_name(job_id, attempt) for attempt in (1, 2, 10_000)}
    assert len(names) == 3
    for name in names:
        assert DNS_LABEL.match(name) and len(name) <= 52, name
    doc = job_manifest(make_assignment(job_id=job_id), KubeOptions())
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    assert doc["metadata"]["annotations"]["yiwang.gov.cn/job-id"] == job_id


def test_ids_that_clean_up_the_same_get_different_names():
    assert object_name("a.b", 1) != object_name("a-b", 1) != object_name("A-B", 1)


def test_kueue_queue_label_when_configured(make_assignment):
    doc = job_manifest(make_assignment(replicas=4), KubeOptions(queue_name="analytics"))
    assert doc["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "analytics"
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def _pod_from_spark_part(part: dict[str, Any], image: str) -> dict[str, Any]:
    """The driver/executor fields that are Kubernetes types, put into a Pod to validate them."""
    pod_spec: dict[str, Any] = {
        "containers": [
            {"name": "spark", "image": image, "env": part["env"], "securityContext": part["securityContext"]}
        ],
        "securityContext": part["podSecurityContext"],
        "serviceAccountName": part["serviceAccount"],
    }
    if "tolerations" in part:
        pod_spec["tolerations"] = part["tolerations"]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "labels": part["labels"]},
        "spec": pod_spec,
    }


@pytest.mark.parametrize("case", SPARK_CASES)
def test_spark_application_manifest_is_valid(make_assignment, case):
    a = make_assignment(**SPARK_CASES[case])
    doc = spark_application_manifest(a, KubeOptions())
    jsonschema.validate(doc, SPARK_SCHEMA, cls=jsonschema.Draft202012Validator)
    for part in ("driver", "executor"):
        kubernetes_validate.validate(
            _pod_from_spark_part(doc["spec"][part], doc["spec"]["image"]), K8S_VERSION, strict=True
        )
    spec = doc["spec"]
    assert spec["executor"]["instances"] == a.spec.replicas
    assert spec["restartPolicy"] == {"type": "Never"}
    assert spec["type"] == {"python": "Python", "jar-gpu": "Scala"}[case]
    assert ("gpu" in spec["executor"]) == (a.spec.resources.gpu > 0)
    assert spec.get("arguments", []) == a.spec.runtime.command


def test_spark_schema_can_fail(make_assignment):
    doc = spark_application_manifest(make_assignment(**spark_spec()), KubeOptions())
    doc["spec"]["executor"]["instance"] = 2  # misspelt
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, SPARK_SCHEMA, cls=jsonschema.Draft202012Validator)


# -- the fake API ------------------------------------------------------------------------


def _job(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {
            "template": {"spec": {"containers": [{"name": "c", "image": "i"}], "restartPolicy": "Never"}}
        },
    }


def test_fake_create_get_delete_and_resource_versions(fake):
    created = fake.create(JOBS, NS, _job("a"))
    rv1 = int(created["metadata"]["resourceVersion"])
    assert created["metadata"]["uid"] and created["metadata"]["namespace"] == NS
    assert fake.get(JOBS, NS, "a") == created
    modified = fake.job_running(NS, "a")
    assert int(modified["metadata"]["resourceVersion"]) > rv1
    with pytest.raises(KubeConflict):
        fake.create(JOBS, NS, _job("a"))
    fake.delete(JOBS, NS, "a", propagation_policy="Background")
    assert fake.deletions == [("Job", NS, "a", "Background")]
    with pytest.raises(KubeNotFound):
        fake.get(JOBS, NS, "a")
    with pytest.raises(KubeNotFound):
        fake.delete(JOBS, NS, "a")
    with pytest.raises(KubeNotFound):
        fake.get(JOBS, "other", "a")


@pytest.mark.parametrize(
    ("mutate", "status"),
    [
        (lambda d: d["metadata"].update(name="Bad_Name"), 422),
        (lambda d: d.update(kind="Pod"), 422),
        (lambda d: d["metadata"].update(namespace="elsewhere"), 400),
    ],
)
def test_fake_rejects_invalid_bodies(fake, mutate, status):
    body = _job("ok")
    mutate(body)
    with pytest.raises(KubeError) as info:
        fake.create(JOBS, NS, body)
    assert info.value.status == status


def test_fake_unknown_namespace_is_404():
    fake = FakeKubeClient(namespaces={NS})
    fake.create(JOBS, NS, _job("a"))
    with pytest.raises(KubeNotFound):
        fake.create(JOBS, "tenant-nobody", _job("a"))


def test_fake_watch_from_resource_version(fake):
    fake.create(JOBS, NS, _job("before"))
    start_rv = fake.resource_version
    fake.create(JOBS, NS, _job("a", {"team": "x"}))
    fake.create(JOBS, "tenant-other", _job("b", {"team": "x"}))
    fake.create(
        SPARK_APPLICATIONS,
        NS,
        {"apiVersion": "sparkoperator.k8s.io/v1beta2", "kind": "SparkApplication", "metadata": {"name": "s"}},
    )
    fake.job_succeeded(NS, "a")
    fake.delete(JOBS, NS, "a")
    events = list(fake.watch(JOBS, NS, resource_version=start_rv))
    assert [(e.type, e.object["metadata"]["name"]) for e in events] == [
        ("ADDED", "a"),
        ("MODIFIED", "a"),
        ("DELETED", "a"),
    ]
    rvs = [int(e.object["metadata"]["resourceVersion"]) for e in events]
    assert rvs == sorted(rvs) and len(set(rvs)) == 3
    everywhere = list(fake.watch(JOBS, None, label_selector="team=x", resource_version=start_rv))
    assert [(e.type, e.object["metadata"]["name"]) for e in everywhere] == [
        ("ADDED", "a"),
        ("ADDED", "b"),
        ("MODIFIED", "a"),
        ("DELETED", "a"),
    ]


def test_fake_watch_without_version_lists_then_follows(fake):
    fake.create(JOBS, NS, _job("a"))
    stream = fake.watch(JOBS, NS, timeout_s=0.0)
    first = next(stream)
    assert (first.type, first.object["metadata"]["name"]) == ("ADDED", "a")
    fake.job_running(NS, "a")
    assert [e.type for e in stream] == ["MODIFIED"]


def test_fake_watch_waits_for_events_up_to_its_timeout(fake):
    rv = fake.resource_version
    assert list(fake.watch(JOBS, NS, resource_version=rv, timeout_s=0.2)) == []


def test_fake_watch_of_compacted_version_is_gone(fake):
    fake.create(JOBS, NS, _job("a"))
    old = "0"
    fake.compact()
    with pytest.raises(KubeGone):
        list(fake.watch(JOBS, NS, resource_version=old))


def test_fake_label_selectors(fake):
    fake.create(JOBS, NS, _job("a", {"tier": "province", "gpu": "yes"}))
    fake.create(JOBS, NS, _job("b", {"tier": "national"}))
    for selector, names in [
        ("tier=province", ["a"]),
        ("tier!=province", ["b"]),
        ("gpu", ["a"]),
        ("!gpu", ["b"]),
        ("tier=national,gpu", []),
        ("", ["a", "b"]),
    ]:
        items, _ = fake.list(JOBS, NS, selector)
        assert [i["metadata"]["name"] for i in items] == names, selector


# -- the executor against the fake -------------------------------------------------------


def test_is_an_executor(executor):
    assert isinstance(executor, Executor)


def test_job_lifecycle_running_to_succeeded(executor, fake, make_assignment):
    a = make_assignment(replicas=2, resources={"cpu": 2, "memory_gib": 4})
    executor.start(a)
    executor.start(a)
    (job,) = fake.list(JOBS, NS)[0]
    name = job["metadata"]["name"]
    assert executor.poll("job-1", 1).phase == "Running"
    assert executor.poll("job-1", 1).reason == "Pending"
    fake.job_running(NS, name)
    running = executor.poll("job-1", 1)
    assert running.phase == "Running" and "2 active" in running.message
    assert executor.active() == [("job-1", 1)]
    assert executor.allocated() == ResourceAmounts(cpu=4, memory_gib=8, gpu=0)
    fake.job_succeeded(NS, name)
    done = executor.poll("job-1", 1)
    assert (done.phase, done.exit_code) == ("Succeeded", 0)
    assert executor.active() == [] and executor.allocated() == ResourceAmounts()
    fake.delete(JOBS, NS, name)  # ttlSecondsAfterFinished ran out
    assert executor.poll("job-1", 1) == done


def test_start_of_an_existing_attempt_is_adopted_not_an_error(fake, make_assignment):
    a = make_assignment()
    KubernetesExecutor(fake, capacity=CAPACITY).start(a)
    restarted = KubernetesExecutor(fake, capacity=CAPACITY)
    restarted.start(a)  # 409 from the API: already started
    assert len(fake.list(JOBS, NS)[0]) == 1
    assert restarted.poll("job-1", 1).phase == "Running"


@pytest.mark.parametrize(
    ("reason", "message"),
    [
        ("DeadlineExceeded", "Job was active longer than specified deadline"),
        ("BackoffLimitExceeded", "Job has reached the specified backoff limit"),
        ("PodFailurePolicy", "Container job for pod x failed with exit code 2"),
    ],
)
def test_job_failure_carries_the_job_controllers_reason(executor, fake, make_assignment, reason, message):
    executor.start(make_assignment(max_runtime_s=60))
    name = object_name("job-1", 1)
    fake.job_running(NS, name)
    fake.job_failed(NS, name, reason=reason, message=message if reason == "PodFailurePolicy" else "")
    status = executor.poll("job-1", 1)
    assert (status.phase, status.reason) == ("Failed", reason)
    assert message in status.message


def test_stop_deletes_in_background_and_is_idempotent(executor, fake, make_assignment):
    executor.start(make_assignment())
    name = object_name("job-1", 1)
    fake.job_running(NS, name)
    executor.stop("job-1", 1, "lease lost")
    assert fake.deletions == [("Job", NS, name, "Background")]
    with pytest.raises(KubeNotFound):
        fake.get(JOBS, NS, name)
    executor.stop("job-1", 1, "again")  # 404 is done
    status = executor.poll("job-1", 1)
    assert (status.phase, status.reason) == ("Failed", "Stopped") and "lease lost" in status.message
    assert executor.active() == []


def test_stop_after_an_agent_restart_finds_the_object_by_labels(fake, make_assignment):
    KubernetesExecutor(fake, capacity=CAPACITY).start(make_assignment(job_id="Odd/Id"))
    fresh = KubernetesExecutor(fake, capacity=CAPACITY)
    fresh.stop("Odd/Id", 1, "cancelled")
    assert fake.list(JOBS, NS)[0] == []
    fresh.stop("never-there", 1, "no-op")


def test_recover_adopts_this_clusters_attempts(fake, make_assignment):
    first = KubernetesExecutor(fake, capacity=CAPACITY)
    first.start(make_assignment(job_id="a", resources={"cpu": 2, "memory_gib": 3}, replicas=2))
    first.start(make_assignment(job_id="b", **spark_spec()))
    first.start(make_assignment(job_id="c", cluster="other-cluster"))
    fresh = KubernetesExecutor(fake, capacity=CAPACITY)
    assert fresh.recover("guangdong") == [("a", 1), ("b", 1)]
    assert fresh.active() == [("a", 1), ("b", 1)]
    assert fresh.allocated().cpu == 4


def test_deleted_before_its_end_was_seen_is_lost(executor, fake, make_assignment):
    executor.start(make_assignment())
    fake.delete(JOBS, NS, object_name("job-1", 1))
    status = executor.poll("job-1", 1)
    assert (status.phase, status.reason) == ("Failed", "Lost")


def test_missing_namespace_fails_the_attempt(make_assignment):
    executor = KubernetesExecutor(FakeKubeClient(namespaces=set()), capacity=CAPACITY)
    executor.start(make_assignment())
    status = executor.poll("job-1", 1)
    assert (status.phase, status.reason) == ("Failed", "NamespaceMissing")


def test_unreachable_api_is_retryable(executor, fake, make_assignment):
    fake.unavailable = True
    with pytest.raises(ExecutorUnavailable):
        executor.start(make_assignment())
    fake.unavailable = False
    executor.start(make_assignment())  # the retry starts it
    assert executor.poll("job-1", 1).phase == "Running"
    fake.unavailable = True
    with pytest.raises(ExecutorUnavailable):
        executor.poll("job-1", 1)
    with pytest.raises(ExecutorUnavailable):
        executor.stop("job-1", 1, "x")
    assert executor.active() == [("job-1", 1)]  # a stop that did not happen is not claimed


def test_poll_of_unknown_attempt_raises(executor):
    with pytest.raises(ExecutionNotFound):
        executor.poll("nope", 1)


@pytest.mark.parametrize(
    ("state", "error", "phase", "reason"),
    [
        ("SUBMITTED", "", "Running", "SUBMITTED"),
        ("RUNNING", "", "Running", "RUNNING"),
        ("COMPLETED", "", "Succeeded", "Completed"),
        ("FAILED", "driver exited with 1", "Failed", "SparkFailed"),
        ("SUBMISSION_FAILED", "image pull failed", "Failed", "SparkSubmissionFailed"),
    ],
)
def test_spark_lifecycle(executor, fake, make_assignment, state, error, phase, reason):
    executor.start(make_assignment(**spark_spec()))
    (app,) = fake.list(SPARK_APPLICATIONS, NS)[0]
    fake.spark_state(NS, app["metadata"]["name"], state, error)
    status = executor.poll("job-1", 1)
    assert (status.phase, status.reason) == (phase, reason)
    assert error in status.message


def test_spark_deadline_is_enforced_by_the_executor(fake, make_assignment):
    now = [datetime(2025, 1, 1, tzinfo=UTC)]
    fake = FakeKubeClient(clock=lambda: now[0])
    executor = KubernetesExecutor(fake, capacity=CAPACITY, clock=lambda: now[0])
    executor.start(make_assignment(max_runtime_s=600, **spark_spec()))
    name = object_name("job-1", 1)
    fake.spark_state(NS, name, "RUNNING")
    now[0] += timedelta(seconds=600)
    assert executor.poll("job-1", 1).phase == "Running"
    now[0] += timedelta(seconds=1)
    status = executor.poll("job-1", 1)
    assert (status.phase, status.reason) == ("Failed", "DeadlineExceeded")
    assert fake.deletions == [("SparkApplication", NS, name, "Background")]


# -- the official client adapter, against stubs of the official API objects ---------------


class StubApi:
    """Records calls; answers each method from ``answers`` (a value, or an exception to raise)."""

    def __init__(self, answers: dict[str, Any] | None = None) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        self.answers = answers or {}

    def __getattr__(self, method: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((method, args, kwargs))
            answer = self.answers.get(method, {})
            if isinstance(answer, Exception):
                raise answer
            return answer

        call.__name__ = method
        return call


class StubWatch:
    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.events = events
        self.stream_args: tuple[Any, ...] = ()
        self.stream_kwargs: dict[str, Any] = {}
        self.stopped = False

    def stream(self, fn: Any, *args: Any, **kwargs: Any):
        self.stream_fn, self.stream_args, self.stream_kwargs = fn, args, kwargs
        yield from self.events

    def stop(self) -> None:
        self.stopped = True


def _adapter(batch=None, custom=None, watch=None) -> OfficialKubeClient:
    return OfficialKubeClient(batch or StubApi(), custom or StubApi(), watch_factory=lambda: watch)


def test_adapter_creates_jobs_with_the_typed_model(make_assignment):
    doc = job_manifest(make_assignment(replicas=3, resources={"gpu": 1}), KubeOptions())
    batch = StubApi({"create_namespaced_job": V1Job.from_dict(doc)})
    result = _adapter(batch).create(JOBS, NS, doc)
    ((method, args, kwargs),) = batch.calls
    assert method == "create_namespaced_job" and args == ()
    assert kwargs["namespace"] == NS and isinstance(kwargs["body"], V1Job)
    from kubernetes.client import ApiClient

    assert ApiClient().sanitize_for_serialization(kwargs["body"]) == doc
    assert result == doc


def test_adapter_custom_objects_and_reads_and_deletes(make_assignment):
    doc = spark_application_manifest(make_assignment(**spark_spec()), KubeOptions())
    custom = StubApi({"create_namespaced_custom_object": doc, "get_namespaced_custom_object": doc})
    batch = StubApi({"read_namespaced_job": V1Job.from_dict(_job("j"))})
    client = _adapter(batch, custom)
    assert client.create(SPARK_APPLICATIONS, NS, doc) == doc
    assert client.get(SPARK_APPLICATIONS, NS, "s") == doc
    client.delete(SPARK_APPLICATIONS, NS, "s")
    assert client.get(JOBS, NS, "j")["metadata"]["name"] == "j"
    client.delete(JOBS, NS, "j")
    where = {
        "group": "sparkoperator.k8s.io",
        "version": "v1beta2",
        "namespace": NS,
        "plural": "sparkapplications",
    }
    assert [(m, {k: v for k, v in kw.items() if k != "_request_timeout"}) for m, _, kw in custom.calls] == [
        ("create_namespaced_custom_object", {**where, "body": doc}),
        ("get_namespaced_custom_object", {**where, "name": "s"}),
        ("delete_namespaced_custom_object", {**where, "name": "s", "propagation_policy": "Background"}),
    ]
    assert [(m, {k: v for k, v in kw.items() if k != "_request_timeout"}) for m, _, kw in batch.calls] == [
        ("read_namespaced_job", {"name": "j", "namespace": NS}),
        ("delete_namespaced_job", {"name": "j", "namespace": NS, "propagation_policy": "Background"}),
    ]


@pytest.mark.parametrize(
    ("status", "error", "retryable"),
    [
        (404, KubeNotFound, False),
        (409, KubeConflict, False),
        (410, KubeGone, False),
        (500, KubeError, True),
        (422, KubeError, False),
    ],
)
def test_adapter_maps_api_errors(status, error, retryable):
    exc = ApiException(status=status, reason="Reason")
    exc.body = json.dumps({"message": f"server says {status}"})
    client = _adapter(StubApi({"read_namespaced_job": exc}))
    with pytest.raises(error) as info:
        client.get(JOBS, NS, "j")
    assert type(info.value) is error and info.value.status == status
    assert info.value.retryable is retryable and f"server says {status}" in str(info.value)


def test_adapter_lists_across_namespaces_with_selectors():
    custom = StubApi(
        {"list_cluster_custom_object": {"metadata": {"resourceVersion": "77"}, "items": [{"a": 1}]}}
    )
    items, rv = _adapter(custom=custom).list(SPARK_APPLICATIONS, None, "app.kubernetes.io/managed-by=yiwang")
    assert (items, rv) == ([{"a": 1}], "77")
    ((method, args, kwargs),) = custom.calls
    assert method == "list_cluster_custom_object"
    assert args == ("sparkoperator.k8s.io", "v1beta2", "sparkapplications")
    assert kwargs["label_selector"] == "app.kubernetes.io/managed-by=yiwang"


def test_adapter_watch_passes_version_and_yields_raw_objects():
    raw = _job("a")
    watch = StubWatch(
        [
            {"type": "ADDED", "object": object(), "raw_object": raw},
            {"type": "BOOKMARK", "object": {}, "raw_object": {}},
            {"type": "DELETED", "object": object(), "raw_object": raw},
        ]
    )
    batch = StubApi()
    events = list(
        _adapter(batch, watch=watch).watch(
            JOBS, NS, label_selector="x=y", resource_version="41", timeout_s=30
        )
    )
    assert [(e.type, e.object) for e in events] == [("ADDED", raw), ("DELETED", raw)]
    assert watch.stream_fn.__name__ == "list_namespaced_job"
    assert watch.stream_args == (NS,)
    assert watch.stream_kwargs == {"label_selector": "x=y", "resource_version": "41", "timeout_seconds": 30}
    assert watch.stopped


def test_adapter_watch_error_410_is_gone():
    watch = StubWatch([{"type": "ERROR", "object": {}, "raw_object": {"code": 410, "message": "too old"}}])
    with pytest.raises(KubeGone):
        list(_adapter(watch=watch).watch(JOBS, NS, resource_version="1"))
