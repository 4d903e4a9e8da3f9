"""A small Python client of the REST API v1, used by the CLI and the demo."""

from __future__ import annotations

from typing import Any

import httpx


class ApiError(Exception):
    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.problem = problem
        detail = problem.get("detail") or problem.get("title") or "error"
        fields = "; ".join(f"{e.get('path')}: {e.get('message')}" for e in problem.get("errors", []))
        super().__init__(f"{status} {detail}" + (f" ({fields})" if fields else ""))


class Client:
    def __init__(self, base_url: str, token: str | None = None, timeout: float = 30.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout)
        self.last_status = 0  # of the last response (201 created, 200 an idempotent replay, ...)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kw: Any) -> Any:
        r = self.http.request(method, path, **kw)
        self.last_status = r.status_code
        if r.status_code >= 400:
            try:
                body = r.json()
            except ValueError:
                body = {"detail": r.text}
            raise ApiError(r.status_code, body)
        return r.json() if r.content else None

    def submit(self, job: dict[str, Any], idempotency_key: str | None = None) -> dict[str, Any]:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        result: dict[str, Any] = self._call("POST", "/v1/jobs", json=job, headers=headers)
        return result

    def job(self, job_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"/v1/jobs/{job_id}")
        return result

    def jobs(self, **params: Any) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/v1/jobs", params={k: v for k, v in params.items() if v})
        return result

    def logs(self, job_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"/v1/jobs/{job_id}/logs")
        return result

    def cancel(self, job_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", f"/v1/jobs/{job_id}/cancel")
        return result

    def decision(self, job_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"/v1/jobs/{job_id}/decision")
        return result

    def plan(self, job: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", "/v1/plan", json=job)
        return result

    def clusters(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/v1/clusters")["items"]
        return result

    def cluster_action(self, name: str, action: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", f"/v1/clusters/{name}/{action}")
        return result

    def add_dataset(self, ds: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", "/v1/datasets", json=ds)
        return result

    def datasets(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/v1/datasets")["items"]
        return result

    # ---- security (admin): tokens, data-set grants, audit log --------------------------------
    def create_token(self, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", "/v1/tokens", json=body)
        return result

    def tokens(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/v1/tokens")["items"]
        return result

    def revoke_token(self, token_id: str) -> None:
        self._call("DELETE", f"/v1/tokens/{token_id}")

    def audit(self, **params: Any) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/v1/audit", params={k: v for k, v in params.items() if v})
        return result
