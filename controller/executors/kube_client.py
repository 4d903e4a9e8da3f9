"""Our own boundary to the Kubernetes API: the few calls the executor needs, on plain dicts.

Objects cross this boundary as camelCase manifests (what ``kubectl get -o json`` prints), and
failures as our own errors. ``OfficialKubeClient`` implements it over the official ``kubernetes``
client; ``controller.executors.kube_fake.FakeKubeClient`` implements it in memory for tests,
drills and the embedded federation. Nothing else in Yiwang imports ``kubernetes``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, Protocol

Manifest = dict[str, Any]
EventType = Literal["ADDED", "MODIFIED", "DELETED"]


@dataclass(frozen=True)
class KubeResource:
    """A namespaced resource type, as the API addresses it."""

    group: str  # "" for the core group
    version: str
    plural: str
    kind: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


JOBS = KubeResource("batch", "v1", "jobs", "Job")
SPARK_APPLICATIONS = KubeResource("sparkoperator.k8s.io", "v1beta2", "sparkapplications", "SparkApplication")


class KubeError(Exception):
    """An API call failed; ``status`` is the HTTP status (0 when the server was not reached)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status

    @property
    def retryable(self) -> bool:
        return self.status == 0 or self.status == 429 or self.status >= 500


class KubeNotFound(KubeError):
    def __init__(self, message: str) -> None:
        super().__init__(message, 404)


class KubeConflict(KubeError):
    def __init__(self, message: str) -> None:
        super().__init__(message, 409)


class KubeGone(KubeError):
    """A watch asked for a resourceVersion that is too old: list again, then watch from there."""

    def __init__(self, message: str) -> None:
        super().__init__(message, 410)


@dataclass(frozen=True)
class WatchEvent:
    type: EventType
    object: Manifest


class KubeClient(Protocol):
    def create(self, resource: KubeResource, namespace: str, body: Manifest) -> Manifest:
        """Create; KubeConflict if the name exists, KubeNotFound if the namespace does not."""
        ...

    def get(self, resource: KubeResource, namespace: str, name: str) -> Manifest:
        """Read; KubeNotFound if absent."""
        ...

    def delete(
        self, resource: KubeResource, namespace: str, name: str, propagation_policy: str = "Background"
    ) -> None:
        """Delete; KubeNotFound if absent."""
        ...

    def list(
        self, resource: KubeResource, namespace: str | None, label_selector: str = ""
    ) -> tuple[list[Manifest], str]:
        """Objects (all namespaces when namespace is None) and the list's resourceVersion."""
        ...

    def watch(
        self,
        resource: KubeResource,
        namespace: str | None,
        *,
        label_selector: str = "",
        resource_version: str | None = None,
        timeout_s: float = 0.0,
    ) -> Iterator[WatchEvent]:
        """Changes after resource_version (or the current objects as ADDED, then changes), ending
        after timeout_s; KubeGone if resource_version is too old."""
        ...


def _error_from_api_exception(exc: Any, what: str) -> KubeError:
    status = int(getattr(exc, "status", 0) or 0)
    detail = getattr(exc, "reason", "") or ""
    body = getattr(exc, "body", None)
    if body:
        try:
            detail = json.loads(body).get("message", detail)
        except (ValueError, AttributeError):
            pass
    message = f"{what}: {status} {detail}".strip()
    if status == 404:
        return KubeNotFound(message)
    if status == 409:
        return KubeConflict(message)
    if status == 410:
        return KubeGone(message)
    return KubeError(message, status)


# verb -> (the BatchV1Api method for Jobs, the CustomObjectsApi method for everything else)
_OBJECT_CALLS = {
    "create": ("create_namespaced_job", "create_namespaced_custom_object"),
    "get": ("read_namespaced_job", "get_namespaced_custom_object"),
    "delete": ("delete_namespaced_job", "delete_namespaced_custom_object"),
}


class OfficialKubeClient:
    """KubeClient over the official client's ``BatchV1Api``, ``CustomObjectsApi`` and ``Watch``.

    The API objects are injected (build them with ``from_config``), so tests can stand a stub in
    for them and check the requests without a server.
    """

    def __init__(
        self,
        batch_api: Any,
        custom_api: Any,
        *,
        serialize: Callable[[Any], Any] | None = None,
        watch_factory: Callable[[], Any] | None = None,
        request_timeout_s: float = 30.0,
    ) -> None:
        from kubernetes import client, watch

        self._batch = batch_api
        self._custom = custom_api
        self._serialize = serialize or client.ApiClient().sanitize_for_serialization
        self._watch_factory = watch_factory or watch.Watch
        self._timeout = request_timeout_s

    @classmethod
    def from_config(cls, kubeconfig: str | None = None, context: str | None = None) -> OfficialKubeClient:
        """In-cluster config when running in a pod, else the kubeconfig file."""
        from kubernetes import client, config

        try:
            config.load_incluster_config()
        except config.ConfigException:
            config.load_kube_config(config_file=kubeconfig, context=context)
        api_client = client.ApiClient()
        return cls(
            client.BatchV1Api(api_client),
            client.CustomObjectsApi(api_client),
            serialize=api_client.sanitize_for_serialization,
        )

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            return fn(*args, **kwargs)
        except ApiException as exc:
            raise _error_from_api_exception(exc, what) from exc
        except (HTTPError, OSError) as exc:
            raise KubeError(f"{what}: API server unreachable: {exc}", 0) from exc

    def _to_manifest(self, obj: Any) -> Manifest:
        data = self._serialize(obj)
        if not isinstance(data, dict):
            raise KubeError(f"unexpected API answer of type {type(obj).__name__}", 0)
        return data

    def _object_call(self, verb: str, what: str, resource: KubeResource, namespace: str, **kw: Any) -> Any:
        """One object request: a Job through ``BatchV1Api``, any other resource through
        ``CustomObjectsApi`` (which also needs its group, version and plural)."""
        batch_fn, custom_fn = _OBJECT_CALLS[verb]
        if resource == JOBS:
            fn = getattr(self._batch, batch_fn)
            return self._call(what, fn, namespace=namespace, _request_timeout=self._timeout, **kw)
        fn = getattr(self._custom, custom_fn)
        return self._call(
            what,
            fn,
            group=resource.group,
            version=resource.version,
            namespace=namespace,
            plural=resource.plural,
            _request_timeout=self._timeout,
            **kw,
        )

    def create(self, resource: KubeResource, namespace: str, body: Manifest) -> Manifest:
        what = f"create {resource.kind} {namespace}/{body.get('metadata', {}).get('name')}"
        sent: Any = body
        if resource == JOBS:
            from kubernetes.client import V1Job

            # Building the typed model validates the manifest client-side before it is sent.
            sent = V1Job.from_dict(body)
        return self._to_manifest(self._object_call("create", what, resource, namespace, body=sent))

    def get(self, resource: KubeResource, namespace: str, name: str) -> Manifest:
        what = f"get {resource.kind} {namespace}/{name}"
        return self._to_manifest(self._object_call("get", what, resource, namespace, name=name))

    def delete(
        self, resource: KubeResource, namespace: str, name: str, propagation_policy: str = "Background"
    ) -> None:
        what = f"delete {resource.kind} {namespace}/{name}"
        self._object_call(
            "delete", what, resource, namespace, name=name, propagation_policy=propagation_policy
        )

    def _list_call(
        self, resource: KubeResource, namespace: str | None
    ) -> tuple[Callable[..., Any], list[Any]]:
        """The official list function and its positional arguments (Watch.stream needs both)."""
        if resource == JOBS:
            if namespace is None:
                return self._batch.list_job_for_all_namespaces, []
            return self._batch.list_namespaced_job, [namespace]
        if namespace is None:
            return self._custom.list_cluster_custom_object, [
                resource.group,
                resource.version,
                resource.plural,
            ]
        return self._custom.list_namespaced_custom_object, [
            resource.group,
            resource.version,
            namespace,
            resource.plural,
        ]

    def list(
        self, resource: KubeResource, namespace: str | None, label_selector: str = ""
    ) -> tuple[list[Manifest], str]:
        fn, args = self._list_call(resource, namespace)
        result = self._call(
            f"list {resource.plural} in {namespace or 'all namespaces'}",
            fn,
            *args,
            label_selector=label_selector or None,
            _request_timeout=self._timeout,
        )
        data = self._to_manifest(result)
        return list(data.get("items") or []), str((data.get("metadata") or {}).get("resourceVersion", ""))

    def watch(
        self,
        resource: KubeResource,
        namespace: str | None,
        *,
        label_selector: str = "",
        resource_version: str | None = None,
        timeout_s: float = 0.0,
    ) -> Iterator[WatchEvent]:
        fn, args = self._list_call(resource, namespace)
        w = self._watch_factory()
        kwargs: dict[str, Any] = {"timeout_seconds": max(1, int(timeout_s))}
        if label_selector:
            kwargs["label_selector"] = label_selector
        if resource_version:
            kwargs["resource_version"] = resource_version
        stream = self._call(f"watch {resource.plural}", w.stream, fn, *args, **kwargs)
        try:
            while True:
                try:
                    event = self._call(f"watch {resource.plural}", next, stream)
                except StopIteration:
                    return
                kind = event.get("type")
                if kind == "ERROR":
                    obj = event.get("raw_object") or {}
                    if obj.get("code") == 410:
                        raise KubeGone(
                            f"watch {resource.plural}: {obj.get('message', 'too old resource version')}"
                        )
                    raise KubeError(
                        f"watch {resource.plural}: {obj.get('message', obj)}", int(obj.get("code", 0))
                    )
                if kind in ("ADDED", "MODIFIED", "DELETED"):
                    yield WatchEvent(kind, event.get("raw_object") or self._to_manifest(event["object"]))
        finally:
            w.stop()
