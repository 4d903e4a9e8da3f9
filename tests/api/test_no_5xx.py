"""Bad input of every shape gets a 4xx problem, never a 5xx (seeded, bounded fuzzing)."""

from __future__ import annotations

import json
import random
from typing import Any

from fastapi.testclient import TestClient

VALID = {
    "name": "fuzz",
    "tenant": "hubei",
    "priority": 5,
    "resources": {"cpu": 1, "memory_gib": 2, "gpu": 0},
    "replicas": 2,
    "inputs": [],
    "constraints": {"allow_clusters": ["prov-hubei"], "require_labels": {}},
    "runtime": {"kind": "container", "command": ["echo", "hi"]},
    "max_runtime_s": 60,
}
WEIRD: list[Any] = [
    None,
    True,
    -1,
    0,
    1e308,
    -1e308,
    2**70,
    "",
    "x" * 5000,
    "名字",
    "\u0000",
    [],
    {},
    [[[]]],
    {"a": {"b": {"c": []}}},
    float("nan") if False else "NaN",
    "../../etc/passwd",
    "prov-hubei",
]


def mutate(rng: random.Random, doc: Any, depth: int = 0) -> Any:
    if isinstance(doc, dict) and doc and rng.random() < 0.8:
        doc = dict(doc)
        key = rng.choice(sorted(doc))
        roll = rng.random()
        if roll < 0.2:
            del doc[key]
        elif roll < 0.3:
            doc[rng.choice(["extra", "__proto__", "", "名字"])] = rng.choice(WEIRD)
        else:
            doc[key] = mutate(rng, doc[key], depth + 1) if rng.random() < 0.5 else rng.choice(WEIRD)
        return doc
    if isinstance(doc, list) and doc and rng.random() < 0.5:
        return [mutate(rng, x, depth + 1) for x in doc]
    return rng.choice(WEIRD)


def test_fuzzed_requests_never_get_a_5xx(ready: TestClient) -> None:
    rng = random.Random(20261127)
    endpoints = [
        ("POST", "/v1/jobs"),
        ("POST", "/v1/plan"),
        ("POST", "/v1/datasets"),
        ("PUT", "/v1/policies/placement"),
        ("PUT", "/v1/policies/residency"),
        ("PUT", "/v1/policies/failover"),
        ("PUT", "/v1/clusters/prov-hubei"),
        ("POST", "/v1/agents/prov-hubei/status"),
        ("POST", "/v1/agents/prov-hubei/heartbeat"),
    ]
    statuses: dict[int, int] = {}
    for i in range(600):
        method, path = rng.choice(endpoints)
        body = mutate(rng, VALID)
        if i % 7 == 0:
            content = json.dumps(body)[: rng.randint(0, 40)].encode()  # truncated JSON
        elif i % 11 == 0:
            content = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 64)))  # binary junk
        else:
            content = json.dumps(body).encode()
        r = ready.request(
            method,
            path,
            content=content,
            headers={"content-type": "application/json", "Idempotency-Key": f"k{i % 13}"},
        )
        statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
        assert r.status_code < 500, (method, path, content[:200], r.text[:500])
    for path in (
        "/v1/jobs/%00",
        "/v1/jobs/" + "a" * 3000,
        "/v1/clusters/%2e%2e",
        "/v1/jobs?limit=abc",
        "/v1/jobs?phase=&tenant=&cursor=",
        "/v1/datasets/" + "名" * 20,
    ):
        assert ready.get(path).status_code < 500, path
    assert any(400 <= s < 500 for s in statuses)
