"""An in-memory Kubernetes API at our KubeClient boundary, faithful where the executor relies on it.

- one resourceVersion counter for everything (like etcd's revision), bumped on every write;
- create: 409 on an existing name, 404 on an unknown namespace (when namespaces are declared),
  422 on a body whose apiVersion/kind/name is wrong; the server fills uid, resourceVersion,
  creationTimestamp, generation and an empty status;
- get/delete of a missing object: 404; delete records the propagation policy;
- list with label selectors (``k=v``, ``k!=v``, ``k``, ``!k``, comma = and);
- watch from a resourceVersion (events after it), or without one (current objects as ADDED, then
  changes); 410 Gone for a version older than the last ``compact()``;
- the Job controller's and Spark operator's part is played by the test: ``job_running``,
  ``job_succeeded``, ``job_failed`` and ``spark_state`` write status like they would.

Thread-safe; ``watch`` blocks at most ``timeout_s`` waiting for new events.
"""

from __future__ import annotations

import copy
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from controller.executors.kube_client import (
    JOBS,
    SPARK_APPLICATIONS,
    EventType,
    KubeConflict,
    KubeError,
    KubeGone,
    KubeNotFound,
    KubeResource,
    Manifest,
    WatchEvent,
)

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _utcnow() -> datetime:
    return datetime.now(UTC)


def matches_selector(labels: dict[str, str], selector: str) -> bool:
    for term in (t.strip() for t in selector.split(",") if t.strip()):
        if "!=" in term:
            key, value = (s.strip() for s in term.split("!=", 1))
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, value = (s.strip() for s in term.split("=", 1))
            if labels.get(key.rstrip("=")) != value.lstrip("="):
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


@dataclass(frozen=True)
class _Event:
    revision: int
    resource: KubeResource
    namespace: str
    type: EventType
    object: Manifest


class FakeKubeClient:
    def __init__(
        self, *, namespaces: set[str] | None = None, clock: Callable[[], datetime] = _utcnow
    ) -> None:
        self.namespaces = namespaces  # None: every namespace exists
        self._clock = clock
        self._cond = threading.Condition()
        self._revision = 0
        self._compacted = 0
        self._objects: dict[tuple[KubeResource, str, str], Manifest] = {}
        self._events: list[_Event] = []
        self.deletions: list[tuple[str, str, str, str]] = []  # (kind, namespace, name, propagation)
        self.unavailable = False  # True: every call fails as if the API server were down

    # -- the KubeClient boundary -----------------------------------------------------------

    def create(self, resource: KubeResource, namespace: str, body: Manifest) -> Manifest:
        self._check_up()
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        name = meta.get("name", "")
        if obj.get("apiVersion") != resource.api_version or obj.get("kind") != resource.kind:
            raise KubeError(
                f"{resource.kind} is invalid: apiVersion/kind {obj.get('apiVersion')}/{obj.get('kind')}", 422
            )
        if not name or len(name) > 253 or not _DNS_SUBDOMAIN.match(name):
            raise KubeError(
                f"{resource.kind} {name!r} is invalid: metadata.name must be a DNS-1123 subdomain", 422
            )
        if meta.get("namespace", namespace) != namespace:
            raise KubeError("the namespace of the object does not match the namespace on the request", 400)
        with self._cond:
            if self.namespaces is not None and namespace not in self.namespaces:
                raise KubeNotFound(f'namespaces "{namespace}" not found')
            key = (resource, namespace, name)
            if key in self._objects:
                raise KubeConflict(f'{resource.plural}.{resource.group} "{name}" already exists')
            meta.update(
                namespace=namespace,
                uid=str(uuid.uuid4()),
                creationTimestamp=_iso(self._clock()),
                generation=1,
            )
            obj.setdefault("status", {})
            self._write(key, obj, "ADDED")
            return copy.deepcopy(obj)

    def get(self, resource: KubeResource, namespace: str, name: str) -> Manifest:
        self._check_up()
        with self._cond:
            obj = self._objects.get((resource, namespace, name))
            if obj is None:
                raise KubeNotFound(f'{resource.plural}.{resource.group} "{name}" not found')
            return copy.deepcopy(obj)

    def delete(
        self, resource: KubeResource, namespace: str, name: str, propagation_policy: str = "Background"
    ) -> None:
        self._check_up()
        with self._cond:
            key = (resource, namespace, name)
            obj = self._objects.get(key)
            if obj is None:
                raise KubeNotFound(f'{resource.plural}.{resource.group} "{name}" not found')
            self.deletions.append((resource.kind, namespace, name, propagation_policy))
            obj = copy.deepcopy(obj)
            obj["metadata"]["deletionTimestamp"] = _iso(self._clock())
            self._write(key, obj, "DELETED")

    def list(
        self, resource: KubeResource, namespace: str | None, label_selector: str = ""
    ) -> tuple[list[Manifest], str]:
        self._check_up()
        with self._cond:
            items = [
                copy.deepcopy(obj)
                for (res, ns, _), obj in sorted(self._objects.items(), key=lambda kv: kv[0][1:])
                if res == resource
                and (namespace is None or ns == namespace)
                and matches_selector(obj["metadata"].get("labels") or {}, label_selector)
            ]
            return items, str(self._revision)

    def watch(
        self,
        resource: KubeResource,
        namespace: str | None,
        *,
        label_selector: str = "",
        resource_version: str | None = None,
        timeout_s: float = 0.0,
    ) -> Iterator[WatchEvent]:
        self._check_up()
        with self._cond:
            if resource_version:
                since = int(resource_version)
                if since < self._compacted:
                    raise KubeGone(f"too old resource version: {since} ({self._compacted})")
                initial: list[WatchEvent] = []
            else:
                items, rv = self.list(resource, namespace, label_selector)
                since = int(rv)
                initial = [WatchEvent("ADDED", item) for item in items]
        return self._stream(resource, namespace, label_selector, since, timeout_s, initial)

    # -- what the Job controller and the Spark operator would do ---------------------------

    def set_status(self, resource: KubeResource, namespace: str, name: str, status: Manifest) -> Manifest:
        with self._cond:
            key = (resource, namespace, name)
            if key not in self._objects:
                raise KubeNotFound(f'{resource.plural}.{resource.group} "{name}" not found')
            obj = copy.deepcopy(self._objects[key])
            obj["status"] = copy.deepcopy(status)
            self._write(key, obj, "MODIFIED")
            return copy.deepcopy(obj)

    def job_running(self, namespace: str, name: str, active: int | None = None) -> Manifest:
        job = self.get(JOBS, namespace, name)
        pods = active if active is not None else int(job["spec"].get("parallelism", 1))
        status = {"startTime": _iso(self._clock()), "active": pods, "ready": pods}
        return self.set_status(JOBS, namespace, name, status)

    def job_succeeded(self, namespace: str, name: str) -> Manifest:
        job = self.get(JOBS, namespace, name)
        now = _iso(self._clock())
        completions = int(job["spec"].get("completions", 1))
        status = {
            "startTime": job["status"].get("startTime", now),
            "completionTime": now,
            "succeeded": completions,
            "active": 0,
            "ready": 0,
            "conditions": [
                self._condition(
                    "SuccessCriteriaMet", "CompletionsReached", "Reached expected number of succeeded pods"
                ),
                self._condition(
                    "Complete", "CompletionsReached", "Reached expected number of succeeded pods"
                ),
            ],
        }
        if job["spec"].get("completionMode") == "Indexed":
            status["completedIndexes"] = f"0-{completions - 1}" if completions > 1 else "0"
        return self.set_status(JOBS, namespace, name, status)

    def job_failed(
        self, namespace: str, name: str, reason: str = "BackoffLimitExceeded", message: str = ""
    ) -> Manifest:
        job = self.get(JOBS, namespace, name)
        now = _iso(self._clock())
        default = {
            "DeadlineExceeded": "Job was active longer than specified deadline",
            "BackoffLimitExceeded": "Job has reached the specified backoff limit",
        }.get(reason, reason)
        text = message or default
        status = {
            "startTime": job["status"].get("startTime", now),
            "failed": 1,
            "active": 0,
            "ready": 0,
            "conditions": [
                self._condition("FailureTarget", reason, text),
                self._condition("Failed", reason, text),
            ],
        }
        return self.set_status(JOBS, namespace, name, status)

    def spark_state(self, namespace: str, name: str, state: str, error_message: str = "") -> Manifest:
        app_state: dict[str, str] = {"state": state}
        if error_message:
            app_state["errorMessage"] = error_message
        status = {"applicationState": app_state, "driverInfo": {"podName": f"{name}-driver"}}
        return self.set_status(SPARK_APPLICATIONS, namespace, name, status)

    def compact(self) -> None:
        """Forget history, as etcd compaction does: older watches now get 410 Gone."""
        with self._cond:
            self._compacted = self._revision
            self._events.clear()

    @property
    def resource_version(self) -> str:
        with self._cond:
            return str(self._revision)

    # -- internals -------------------------------------------------------------------------

    def _check_up(self) -> None:
        if self.unavailable:
            raise KubeError("API server unreachable (fake: unavailable)", 0)

    def _condition(self, type_: str, reason: str, message: str) -> Manifest:
        now = _iso(self._clock())
        return {
            "type": type_,
            "status": "True",
            "reason": reason,
            "message": message,
            "lastProbeTime": now,
            "lastTransitionTime": now,
        }

    def _write(self, key: tuple[KubeResource, str, str], obj: Manifest, event: EventType) -> None:
        """Under the lock: bump the revision, store (or drop) the object, record the event."""
        self._revision += 1
        obj["metadata"]["resourceVersion"] = str(self._revision)
        if event == "DELETED":
            del self._objects[key]
        else:
            self._objects[key] = obj
        self._events.append(_Event(self._revision, key[0], key[1], event, copy.deepcopy(obj)))
        self._cond.notify_all()

    def _stream(
        self,
        resource: KubeResource,
        namespace: str | None,
        selector: str,
        since: int,
        timeout_s: float,
        initial: Sequence[WatchEvent],
    ) -> Iterator[WatchEvent]:
        yield from initial
        deadline = time.monotonic() + timeout_s
        while True:
            with self._cond:
                if since < self._compacted:
                    raise KubeGone(f"too old resource version: {since} ({self._compacted})")
                batch = [e for e in self._events if e.revision > since]
                if not batch:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return
                    self._cond.wait(remaining)
                    continue
            for event in batch:
                since = event.revision
                labels = event.object["metadata"].get("labels") or {}
                if (
                    event.resource == resource
                    and (namespace is None or event.namespace == namespace)
                    and matches_selector(labels, selector)
                ):
                    yield WatchEvent(event.type, copy.deepcopy(event.object))
