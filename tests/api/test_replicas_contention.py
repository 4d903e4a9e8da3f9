"""Replicas under contention: the scheduling leader and two API replicas as real processes on
one database (a SQLite file; PostgreSQL). Clients send the same Idempotency-Keys to different
replicas at once and cancel jobs, while the leader places them, agents report batches of them
Running and Succeeded (in any order) and an operator drains clusters. No answer is a 5xx (a
deadlock between replicas' transactions would surface as a 503), each key makes one job, and
every job ends Succeeded or Cancelled."""

from __future__ import annotations

import random
import threading
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from controller.live import LiveController, wait_for

KEYS = 40


@pytest.fixture(params=["sqlite", "postgresql"])
def replicas(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[LiveController]]:
    """The leader and two API replicas, as processes, on one database of each kind."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'yiwang.db'}"
    else:
        url = request.getfixturevalue("fresh_postgres").replace("postgresql://", "postgresql+psycopg://", 1)
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


def jobs(http: httpx.Client, base: str = "") -> list[dict[str, object]]:
    """The tenant's jobs (every job these tests make fits one page)."""
    items: list[dict[str, object]] = http.get(
        f"{base}/v1/jobs", params={"tenant": "guangdong", "limit": 500}
    ).json()["items"]
    return items


def body(key: int) -> dict[str, object]:
    return {"name": f"k{key}", "tenant": "guangdong", "resources": {"cpu": 0.5 + key % 3}}


class Traffic:
    """What the clients and agents sent and got, shared by their threads."""

    def __init__(self, urls: list[str]) -> None:
        self.urls = urls
        self.statuses: dict[int, int] = defaultdict(int)
        self.errors: list[str] = []
        self.ids_by_key: dict[int, set[str]] = defaultdict(set)
        self.cancelled: set[str] = set()
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.drains = 0

    def note(self, r: httpx.Response) -> None:
        with self.lock:
            self.statuses[r.status_code] += 1
            if r.status_code >= 500:
                self.errors.append(f"{r.request.method} {r.request.url.path}: {r.status_code} {r.text[:300]}")

    def client(self, seed: int) -> None:
        """Submissions with shared keys (70 %), cancels of known jobs, reads; a random replica each."""
        rng = random.Random(seed)
        with httpx.Client(timeout=30) as http:
            for _ in range(60):
                base, roll = rng.choice(self.urls), rng.random()
                if roll < 0.7:
                    key = rng.randrange(KEYS)
                    r = http.post(
                        f"{base}/v1/jobs", json=body(key), headers={"Idempotency-Key": f"key-{key}"}
                    )
                    if r.status_code in (200, 201):
                        with self.lock:
                            self.ids_by_key[key].add(r.json()["id"])
                elif roll < 0.85:
                    with self.lock:
                        known = sorted({j for ids in self.ids_by_key.values() for j in ids})
                    if not known:
                        continue
                    job = rng.choice(known)
                    r = http.post(f"{base}/v1/jobs/{job}/cancel")
                    if r.status_code == 200:
                        with self.lock:
                            self.cancelled.add(job)
                else:
                    r = http.get(f"{base}/v1/jobs", params={"tenant": "guangdong", "limit": 50})
                self.note(r)

    def agent(self, seed: int) -> None:
        """Report what is placed as agents would: a batch per cluster, in shuffled order, moving
        each job one step (Scheduled to Running, Running to Succeeded)."""
        rng = random.Random(seed)
        with httpx.Client(timeout=30) as http:
            while not self.done.is_set():
                base = rng.choice(self.urls)
                by_cluster: dict[str, list[dict[str, object]]] = defaultdict(list)
                for j in jobs(http, base):
                    if j["phase"] in ("Scheduled", "Running") and j["cluster"]:
                        step = "Running" if j["phase"] == "Scheduled" else "Succeeded"
                        report = {
                            "job_id": j["id"],
                            "attempt": j["attempt"],
                            "epoch": j["epoch"],
                            "phase": step,
                        }
                        by_cluster[j["cluster"]].append(report)
                for cluster, reports in by_cluster.items():
                    rng.shuffle(reports)
                    self.note(http.post(f"{base}/v1/agents/{cluster}/reports", json={"reports": reports}))
                self.done.wait(0.05)

    def operator(self, seed: int) -> None:
        """Drain a cluster that runs jobs now and then (its jobs back to Pending, a new attempt)
        and put it back in service, through a random replica."""
        rng = random.Random(seed)
        with httpx.Client(timeout=30) as http:
            while not self.done.wait(0.5):
                base = rng.choice(self.urls)
                busy = sorted(
                    {str(j["cluster"]) for j in jobs(http, base) if j["phase"] in ("Scheduled", "Running")}
                )
                if not busy:
                    continue
                name = rng.choice(busy)
                r = http.post(f"{base}/v1/clusters/{name}/drain")
                self.note(r)
                if r.status_code == 200:
                    with self.lock:
                        self.drains += 1
                self.done.wait(0.2)
                self.note(http.post(f"{rng.choice(self.urls)}/v1/clusters/{name}/uncordon"))


@pytest.mark.timeout(300)
def test_replicas_under_contention_answer_no_5xx_and_make_each_key_once(
    replicas: list[LiveController],
) -> None:
    clients = [httpx.Client(base_url=s.url, timeout=30) for s in replicas]
    names = [c["name"] for c in clients[0].get("/v1/clusters").json()["items"]]
    for name in names:
        assert clients[1].post(f"/v1/agents/{name}/heartbeat").status_code == 200
    traffic = Traffic([s.url for s in replicas])
    threads = [threading.Thread(target=traffic.client, args=(seed,)) for seed in range(8)]
    agents = [threading.Thread(target=traffic.agent, args=(100 + k,)) for k in range(2)]
    agents.append(threading.Thread(target=traffic.operator, args=(200,)))
    for t in threads + agents:
        t.start()
    for t in threads:
        t.join(240)
    assert not any(t.is_alive() for t in threads), "a client hung"
    errors, statuses = traffic.errors, traffic.statuses
    assert not errors, f"{len(errors)} answers were 5xx (statuses {dict(statuses)}): {errors[:5]}"
    assert sum(statuses.values()) > 300 and statuses[201] > 0
    ids_by_key = traffic.ids_by_key
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
        traffic.done.set()
        for t in agents:
            t.join(30)
    assert not errors, f"{len(errors)} answers were 5xx: {errors[:5]}"
    listed = jobs(clients[0])
    assert sorted(j["id"] for j in listed) == sorted(made)
    assert traffic.drains > 0 and any(j["attempt"] > 1 for j in listed)  # drained jobs ran again
    for j in traffic.cancelled:  # a cancel that answered 200 stays
        assert clients[1].get(f"/v1/jobs/{j}").json()["phase"] == "Cancelled"
    for c in clients:
        c.close()


@pytest.mark.timeout(300)
def test_a_replica_killed_mid_stream_loses_no_acknowledged_job(replicas: list[LiveController]) -> None:
    """kill -9 of an API replica while clients submit keyed jobs through both replicas; a
    client whose request got no answer retries the same key on the other replica. Every
    acknowledged job exists, each key made one job, and the leader places them all."""
    _, first, second = replicas  # the leader places; clients use the two API replicas
    acked: dict[str, str] = {}  # key -> job id from a 2xx
    lock = threading.Lock()
    unanswered = 0
    failures: list[str] = []

    def submit(seed: int) -> None:
        nonlocal unanswered
        rng = random.Random(seed)
        with httpx.Client(timeout=30) as http:
            for i in range(40):
                key = f"s{seed}-{i}"
                targets = [first.url, second.url] if rng.random() < 0.5 else [second.url, first.url]
                for base in targets + [second.url] * 5:  # the survivor, until it answers
                    try:
                        r = http.post(
                            f"{base}/v1/jobs",
                            json={"name": key, "tenant": "guangdong", "resources": {"cpu": 0.1}},
                            headers={"Idempotency-Key": key},
                        )
                    except httpx.TransportError:
                        with lock:
                            unanswered += 1
                        continue
                    if r.status_code in (200, 201):
                        with lock:
                            if acked.setdefault(key, r.json()["id"]) != r.json()["id"]:
                                failures.append(f"{key}: two jobs")
                        break
                    if r.status_code != 503:
                        failures.append(f"{key}: {r.status_code} {r.text[:200]}")
                        break
                else:
                    failures.append(f"{key}: never acknowledged")

    threads = [threading.Thread(target=submit, args=(seed,)) for seed in range(6)]
    for t in threads:
        t.start()
    wait_for("a third of the jobs acknowledged", lambda: len(acked) >= 80, 60)
    first.kill()  # SIGKILL, requests in flight
    for t in threads:
        t.join(240)
    assert not failures, failures[:5]
    assert len(acked) == 240 and unanswered > 0  # the kill cut requests off, and they were retried
    with httpx.Client(base_url=second.url, timeout=30) as api:
        names = [c["name"] for c in api.get("/v1/clusters").json()["items"]]

        def placed() -> bool:
            for name in names:
                api.post(f"/v1/agents/{name}/heartbeat")
            items = jobs(api)
            return len(items) == 240 and all(j["phase"] == "Scheduled" for j in items)

        wait_for("every acknowledged job placed, once", placed, 60, every_s=0.5)
        items = jobs(api)
        assert sorted(j["id"] for j in items) == sorted(acked.values())
