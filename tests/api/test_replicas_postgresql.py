"""Replicas on PostgreSQL under contention: the scheduling leader and two API replicas as real
processes on one PostgreSQL database; clients send the same Idempotency-Keys to different
replicas at once, cancel jobs while the leader places them, and read. No answer is a 5xx (a
deadlock between replicas' transactions would surface as a 503), each key makes one job, and
every job ends placed or cancelled."""

from __future__ import annotations

import random
import threading
from collections import defaultdict
from collections.abc import Iterator

import httpx
import pytest

from controller.live import LiveController, wait_for

KEYS = 40


@pytest.fixture
def replicas(fresh_postgres: str) -> Iterator[list[LiveController]]:
    url = fresh_postgres.replace("postgresql://", "postgresql+psycopg://", 1)
    leader = LiveController(process=True, database_url=url, holder="leader").start()
    servers = [leader]
    try:
        for k in range(2):
            servers.append(
                LiveController(process=True, database_url=url, role="api", holder=f"api-{k}").start()
            )
        yield servers
    finally:
        for server in reversed(servers):
            server.stop()


def body(key: int) -> dict[str, object]:
    return {"name": f"k{key}", "tenant": "guangdong", "resources": {"cpu": 0.5 + key % 3}}


@pytest.mark.timeout(300)
def test_replicas_under_contention_answer_no_5xx_and_make_each_key_once(
    replicas: list[LiveController],
) -> None:
    clients = [httpx.Client(base_url=s.url, timeout=30) for s in replicas]
    names = [c["name"] for c in clients[0].get("/v1/clusters").json()["items"]]
    for name in names:
        assert clients[1].post(f"/v1/agents/{name}/heartbeat").status_code == 200
    statuses: dict[int, int] = defaultdict(int)
    errors: list[str] = []
    ids_by_key: dict[int, set[str]] = defaultdict(set)
    cancelled: set[str] = set()
    lock = threading.Lock()

    def client_loop(seed: int) -> None:
        rng = random.Random(seed)
        with httpx.Client(timeout=30) as http:
            for _ in range(60):
                base = replicas[rng.randrange(len(replicas))].url
                roll = rng.random()
                if roll < 0.7:
                    key = rng.randrange(KEYS)
                    r = http.post(
                        f"{base}/v1/jobs", json=body(key), headers={"Idempotency-Key": f"key-{key}"}
                    )
                    if r.status_code in (200, 201):
                        with lock:
                            ids_by_key[key].add(r.json()["id"])
                elif roll < 0.85:
                    with lock:
                        known = sorted({j for s in ids_by_key.values() for j in s})
                    if not known:
                        continue
                    job = rng.choice(known)
                    r = http.post(f"{base}/v1/jobs/{job}/cancel")
                    if r.status_code == 200:
                        with lock:
                            cancelled.add(job)
                else:
                    r = http.get(f"{base}/v1/jobs", params={"tenant": "guangdong", "limit": 50})
                with lock:
                    statuses[r.status_code] += 1
                    if r.status_code >= 500:
                        errors.append(
                            f"{r.request.method} {r.request.url.path}: {r.status_code} {r.text[:300]}"
                        )

    threads = [threading.Thread(target=client_loop, args=(seed,)) for seed in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(240)
    assert not any(t.is_alive() for t in threads), "a client hung"
    assert not errors, f"{len(errors)} answers were 5xx (statuses {dict(statuses)}): {errors[:5]}"
    assert sum(statuses.values()) > 300 and statuses[201] > 0
    assert all(len(ids) == 1 for ids in ids_by_key.values()), {
        k: v for k, v in ids_by_key.items() if len(v) > 1
    }
    made = {next(iter(ids)) for ids in ids_by_key.values()}

    def settled() -> bool:
        for name in names:
            clients[0].post(f"/v1/agents/{name}/heartbeat")
        phases = {j: clients[2].get(f"/v1/jobs/{j}").json()["phase"] for j in made}
        return all(p in ("Scheduled", "Cancelled") for p in phases.values())

    wait_for("every job placed or cancelled", settled, 60, every_s=0.5)
    listed = clients[0].get("/v1/jobs", params={"tenant": "guangdong", "limit": 500}).json()["items"]
    assert sorted(j["id"] for j in listed) == sorted(made)
    for j in cancelled:
        assert clients[1].get(f"/v1/jobs/{j}").json()["phase"] == "Cancelled"
    for c in clients:
        c.close()
