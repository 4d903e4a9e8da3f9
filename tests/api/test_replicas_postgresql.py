"""Replicas on PostgreSQL under contention: the scheduling leader and two API replicas as real
processes on one PostgreSQL database; clients send the same Idempotency-Keys to different
replicas at once, cancel jobs while the leader places them and while agents report batches of
them Running and Succeeded (in any order), and read. No answer is a 5xx (a deadlock between
replicas' transactions would surface as a 503), each key makes one job, and every job ends
Succeeded or Cancelled."""

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

    done = threading.Event()

    def agents_loop(seed: int) -> None:
        """Report what is placed as an agent would, a batch per cluster, in shuffled order."""
        rng = random.Random(seed)
        with httpx.Client(timeout=30) as http:
            while not done.is_set():
                base = replicas[rng.randrange(len(replicas))].url
                items = http.get(f"{base}/v1/jobs", params={"tenant": "guangdong", "limit": 500}).json()[
                    "items"
                ]
                by_cluster: dict[str, list[dict[str, object]]] = defaultdict(list)
                for j in items:
                    if j["phase"] in ("Scheduled", "Running") and j["cluster"]:
                        nxt = "Running" if j["phase"] == "Scheduled" else "Succeeded"
                        report = {
                            "job_id": j["id"],
                            "attempt": j["attempt"],
                            "epoch": j["epoch"],
                            "phase": nxt,
                        }
                        by_cluster[j["cluster"]].append(report)
                for cluster, reports in by_cluster.items():
                    rng.shuffle(reports)
                    r = http.post(f"{base}/v1/agents/{cluster}/reports", json={"reports": reports})
                    with lock:
                        statuses[r.status_code] += 1
                        if r.status_code >= 500:
                            errors.append(f"reports from {cluster}: {r.status_code} {r.text[:300]}")
                done.wait(0.05)

    threads = [threading.Thread(target=client_loop, args=(seed,)) for seed in range(8)]
    reporters = [threading.Thread(target=agents_loop, args=(100 + k,)) for k in range(2)]
    for t in threads + reporters:
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
        return all(p in ("Succeeded", "Cancelled") for p in phases.values())

    try:
        wait_for("every job Succeeded or Cancelled", settled, 90, every_s=0.5)
    finally:
        done.set()
        for t in reporters:
            t.join(30)
    assert not errors, f"{len(errors)} answers were 5xx: {errors[:5]}"
    listed = clients[0].get("/v1/jobs", params={"tenant": "guangdong", "limit": 500}).json()["items"]
    assert sorted(j["id"] for j in listed) == sorted(made)
    for j in cancelled:  # a cancel that answered 200 stays
        assert clients[1].get(f"/v1/jobs/{j}").json()["phase"] == "Cancelled"
    for c in clients:
        c.close()
