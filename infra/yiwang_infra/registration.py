"""Dynamic resources that call the controller API: a cluster's registration and its agent token.

``ControllerRegistration``:

Contract (controller/api): ``PUT {url}/v1/clusters/{name}`` with the topology entry as JSON body
(idempotent; a changed body updates), ``GET`` -> 200/404, ``DELETE`` -> 204, or 404 when unknown,
which counts as already deleted. Every call carries ``Authorization: Bearer <admin token>``.

``AgentToken``: ``POST {url}/v1/tokens`` ``{"role": "agent", "cluster": name}`` issues a token that
is good for that one cluster's agent endpoints only; the answer's ``token`` becomes the secret output
``agentToken``; ``DELETE /v1/tokens/{id}`` revokes it on destroy or replacement.

Both first wait (bounded, ``readyTimeoutS``) until ``GET {url}/readyz`` answers 200, so a stack that
creates the controller's endpoint in the same run registers only once the endpoint serves.

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


class ControllerApiProvider(ResourceProvider):
    """HTTP calls to the controller with retries, and the wait for its endpoint to be ready."""

    TIMEOUT_S = 15.0
    ATTEMPTS = 4
    READY_TIMEOUT_S = 600.0

    def _wait_ready(self, props: dict[str, Any]) -> None:
        import time

        import httpx

        url = f"{str(props['url']).rstrip('/')}/readyz"
        budget = float(props.get("readyTimeoutS") or self.READY_TIMEOUT_S)
        deadline = time.monotonic() + budget
        last = "no answer"
        while True:  # bounded by the deadline
            try:
                response = httpx.get(url, timeout=min(self.TIMEOUT_S, budget))
                if response.status_code == 200:
                    return
                last = f"{response.status_code} {response.text[:200]}"
            except httpx.TransportError as exc:
                last = repr(exc)
            if time.monotonic() >= deadline:
                raise RegistrationError(f"{url} was not ready within {budget:.0f} s: {last}")
            time.sleep(min(5.0, max(0.1, deadline - time.monotonic())))

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


class RegistrationProvider(ControllerApiProvider):
    """create/read/update/delete/diff of one cluster's registration. Props: url, token, cluster."""

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
        self._wait_ready(props)
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


class AgentTokenProvider(ControllerApiProvider):
    """An agent token for one cluster. Props: url, token (admin), cluster (name), description."""

    def _base(self, props: dict[str, Any]) -> str:
        return str(props["url"]).rstrip("/")

    def create(self, props: dict[str, Any]) -> CreateResult:
        self._wait_ready(props)
        body = {
            "role": "agent",
            "cluster": props["cluster"],
            "description": str(props.get("description") or f"agent of {props['cluster']} (Pulumi)"),
        }
        response = self._call("POST", f"{self._base(props)}/v1/tokens", props["token"], body)
        if response.status_code != 201:
            raise RegistrationError(
                f"issuing the agent token of {props['cluster']}: {response.status_code} {response.text[:500]}"
            )
        issued = response.json()
        outs = {
            "url": props["url"],
            "token": props["token"],
            "cluster": props["cluster"],
            "description": body["description"],
            "token_id": issued["id"],
            "agent_token": issued["token"],
        }
        return CreateResult(id_=str(issued["id"]), outs=outs)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces = [k for k in ("url", "cluster") if olds.get(k) != news.get(k)]
        changed = bool(replaces) or olds.get("token") != news.get("token")
        return DiffResult(changes=changed, replaces=replaces, delete_before_replace=False)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        # only the admin token used for the calls changed: the issued token stays
        return UpdateResult(outs={**olds, "token": news["token"]})

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        response = self._call("DELETE", f"{self._base(props)}/v1/tokens/{id_}", props["token"])
        if response.status_code not in (200, 204, 404):
            raise RegistrationError(f"revoking token {id_}: {response.status_code} {response.text[:500]}")

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        response = self._call("GET", f"{self._base(props)}/v1/tokens", props["token"])
        if response.status_code != 200:
            raise RegistrationError(f"reading token {id_}: {response.status_code} {response.text[:500]}")
        live = [t for t in response.json()["items"] if t["id"] == id_ and not t.get("revoked_at")]
        if not live:
            return ReadResult(id_="", outs={})  # revoked or gone: Pulumi drops it and issues anew
        return ReadResult(id_=id_, outs=props)


_pickle_by_value(RegistrationError)
_pickle_by_value(ControllerApiProvider)
_pickle_by_value(RegistrationProvider)
_pickle_by_value(AgentTokenProvider)


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
        ready_timeout_s: float = ControllerApiProvider.READY_TIMEOUT_S,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["token"]))
        super().__init__(
            RegistrationProvider(),
            name,
            {
                "url": url,
                "token": pulumi.Output.secret(token),
                "cluster": cluster,
                "readyTimeoutS": ready_timeout_s,
            },
            opts,
        )


class AgentToken(pulumi.dynamic.Resource, module="yiwang", name="AgentToken"):
    """A per-cluster agent token issued by the controller at ``url``; ``agent_token`` is secret."""

    agent_token: pulumi.Output[str]
    token_id: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        url: pulumi.Input[str],
        token: pulumi.Input[str],
        cluster: str,
        ready_timeout_s: float = ControllerApiProvider.READY_TIMEOUT_S,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        opts = pulumi.ResourceOptions.merge(
            opts, pulumi.ResourceOptions(additional_secret_outputs=["token", "agent_token"])
        )
        super().__init__(
            AgentTokenProvider(),
            name,
            {
                "url": url,
                "token": pulumi.Output.secret(token),
                "cluster": cluster,
                "description": f"agent of {cluster} (Pulumi)",
                "readyTimeoutS": ready_timeout_s,
                "token_id": None,
                "agent_token": None,
            },
            opts,
        )
