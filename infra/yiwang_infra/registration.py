"""ControllerRegistration: a dynamic resource that registers a cluster with the controller API.

Contract (controller/api): ``PUT {url}/v1/clusters/{name}`` with the topology entry as JSON body
(idempotent; a changed body updates), ``GET`` -> 200/404, ``DELETE`` -> 204, or 404 when unknown,
which counts as already deleted. Every call carries ``Authorization: Bearer <admin token>``.

The provider runs in Pulumi's dynamic-provider process, which cannot import this repository
(its ``sys.path`` is the virtualenv only). So :class:`RegistrationProvider` keeps all its logic
in its own methods and is pickled *by value* (see :func:`_pickle_by_value`): the process needs only
``httpx`` and ``pulumi``, both installed in the virtualenv.
"""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, ResourceProvider, UpdateResult


class RegistrationError(Exception):
    """The controller refused or failed a registration call."""


class RegistrationProvider(ResourceProvider):
    """create/read/update/delete/diff of one cluster's registration. Props: url, token, cluster."""

    TIMEOUT_S = 15.0
    ATTEMPTS = 4

    def _call(self, method: str, url: str, token: str, body: dict[str, Any] | None = None) -> Any:
        import time

        import httpx

        last: Exception | None = None
        for attempt in range(self.ATTEMPTS):
            try:
                response = httpx.request(
                    method,
                    url,
                    json=body,
                    headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
                    timeout=self.TIMEOUT_S,
                )
            except httpx.TransportError as exc:  # connection refused, timeout: retry
                last = exc
            else:
                if response.status_code < 500:
                    return response
                last = RegistrationError(f"{method} {url}: {response.status_code} {response.text[:500]}")
            time.sleep(min(8.0, 0.5 * 2**attempt))
        raise RegistrationError(f"{method} {url} failed after {self.ATTEMPTS} attempts: {last}")

    def _cluster_url(self, props: dict[str, Any]) -> str:
        return f"{str(props['url']).rstrip('/')}/v1/clusters/{props['cluster']['name']}"

    def _put(self, props: dict[str, Any]) -> dict[str, Any]:
        response = self._call("PUT", self._cluster_url(props), props["token"], dict(props["cluster"]))
        if response.status_code not in (200, 201):
            raise RegistrationError(
                f"registering {props['cluster']['name']}: {response.status_code} {response.text[:500]}"
            )
        return response.json()

    def _outs(self, props: dict[str, Any]) -> dict[str, Any]:
        return {"url": props["url"], "token": props["token"], "cluster": props["cluster"]}

    def create(self, props: dict[str, Any]) -> CreateResult:
        self._put(props)
        return CreateResult(id_=str(props["cluster"]["name"]), outs=self._outs(props))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = [k for k in ("url", "token", "cluster") if olds.get(k) != news.get(k)]
        old_name = (olds.get("cluster") or {}).get("name")
        replaces = ["cluster"] if old_name != (news.get("cluster") or {}).get("name") else []
        return DiffResult(changes=bool(changed), replaces=replaces, delete_before_replace=False)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        self._put(news)
        return UpdateResult(outs=self._outs(news))

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        response = self._call("DELETE", self._cluster_url(props), props["token"])
        if response.status_code not in (200, 202, 204, 404):
            raise RegistrationError(
                f"deregistering {props['cluster']['name']}: {response.status_code} {response.text[:500]}"
            )

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        response = self._call("GET", self._cluster_url(props), props["token"])
        if response.status_code == 404:
            return ReadResult(id_="", outs={})  # gone: Pulumi drops it from the state
        if response.status_code != 200:
            raise RegistrationError(f"reading {id_}: {response.status_code} {response.text[:500]}")
        return ReadResult(id_=id_, outs=self._outs(props))


def _pickle_by_value(cls: type) -> None:
    """Make dill serialize ``cls`` and its methods by value, not as an import of this module."""
    cls.__module__ = "__main__"
    for value in vars(cls).values():
        function = getattr(value, "__func__", value)
        if callable(function) and hasattr(function, "__code__"):
            function.__module__ = "__main__"


_pickle_by_value(RegistrationError)
_pickle_by_value(RegistrationProvider)


class ControllerRegistration(pulumi.dynamic.Resource, module="yiwang", name="ControllerRegistration"):
    """The registration of one cluster (its topology entry) with the controller at ``url``."""

    url: pulumi.Output[str]
    cluster: pulumi.Output[dict[str, Any]]

    def __init__(
        self,
        name: str,
        url: pulumi.Input[str],
        token: pulumi.Input[str],
        cluster: dict[str, Any],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["token"]))
        super().__init__(
            RegistrationProvider(),
            name,
            {"url": url, "token": pulumi.Output.secret(token), "cluster": cluster},
            opts,
        )
