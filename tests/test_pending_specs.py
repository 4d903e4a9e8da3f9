"""The leader reads and validates a pending job's spec once: specs of jobs submitted through
another process (an API replica, a previous leader) are kept after the first cycle that reads
them, as this process's own submissions are, and dropped when the job is placed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from controller.bench.mixed import job_row
from controller.service import Controller
from controller.settings import Settings


def body(name: str, cpu: float, replicas: int = 1) -> dict[str, Any]:
    return {"name": name, "tenant": "hubei", "resources": {"cpu": cpu, "memory_gib": 1}, "replicas": replicas}


def test_a_spec_read_from_the_store_is_validated_once(tmp_path: Path) -> None:
    ctl = Controller(Settings(database_url=f"sqlite:///{tmp_path}/y.db", background=False))
    try:
        for name in ctl.registry.clusters:
            ctl.heartbeat(name, None)
        waits, fits = (
            job_row(body("waits", 4096, 64)),
            job_row(body("fits", 1)),
        )  # no cluster holds 64 x 4096 cpus
        ctl.store.insert_jobs_bulk([waits, fits])  # as another process's submissions
        asked: list[list[str]] = []
        read = ctl.store.job_specs_json

        def spy(ids: list[str]) -> dict[str, str]:
            asked.append(sorted(ids))
            return read(ids)

        ctl.store.job_specs_json = spy  # type: ignore[method-assign]
        assert ctl.schedule_pending() == 1
        assert asked == [sorted([waits["id"], fits["id"]])]
        assert ctl.get_job(fits["id"]).phase == "Scheduled" and ctl.get_job(waits["id"]).phase == "Pending"
        specs = ctl.read_model.pending_specs
        assert waits["id"] in specs and fits["id"] not in specs  # placed: dropped
        assert ctl.schedule_pending() == 0
        assert asked[1:] == [[]]  # the waiting job's spec was not read again
        assert ctl.get_job(waits["id"]).phase == "Pending"
    finally:
        ctl.stop()
        ctl.store.close()


def test_a_stored_spec_this_version_cannot_read_fails_its_job_not_the_cycle(tmp_path: Path) -> None:
    """A pending job whose stored spec is not valid here (written by another version, or by
    hand) fails with the reason; the cycle places the others, and the next cycle does not
    meet it again at the head of the queue."""
    ctl = Controller(Settings(database_url=f"sqlite:///{tmp_path}/y.db", background=False))
    try:
        for name in ctl.registry.clusters:
            ctl.heartbeat(name, None)
        bad, good = job_row(body("bad", 99_999)), job_row(body("good", 1))  # cpu at most 4,096
        ctl.store.insert_jobs_bulk([bad, good])
        assert ctl.schedule_pending() == 1
        failed = ctl.store.get_job(bad["id"])  # the row: the API cannot read this spec either
        assert failed is not None and failed["phase"] == "Failed"
        assert "stored spec is not valid" in failed["message"] and "resources.cpu" in failed["message"]
        assert ctl.get_job(good["id"]).phase == "Scheduled"
        assert [e["type"] for e in ctl.store.job_events(bad["id"])][-1] == "Failed"
        assert ctl.schedule_pending() == 0 and ctl.store.pending_heads(10) == []
    finally:
        ctl.stop()
        ctl.store.close()


def test_a_job_whose_stored_spec_is_not_valid_here_can_still_be_read(tmp_path: Path) -> None:
    """Reading and listing jobs do not fail on such a row: the spec is shown as stored, and after a
    cycle the job is Failed with the reason."""
    from fastapi.testclient import TestClient

    from controller.api.app import create_app

    app = create_app(Settings(database_url=f"sqlite:///{tmp_path}/y.db", background=False))
    ctl: Controller = app.state.controller
    with TestClient(app, raise_server_exceptions=False) as c:
        for name in ctl.registry.clusters:
            assert c.post(f"/v1/agents/{name}/heartbeat").status_code == 200
        bad = job_row(body("bad", 99_999))
        ctl.store.insert_jobs_bulk([bad])
        got = c.get(f"/v1/jobs/{bad['id']}")
        assert got.status_code == 200, got.text
        assert got.json()["spec"]["resources"]["cpu"] == 99_999 and got.json()["phase"] == "Pending"
        listed = c.get("/v1/jobs")
        assert listed.status_code == 200 and [j["id"] for j in listed.json()["items"]] == [bad["id"]]
        ctl.schedule_pending()
        failed = c.get(f"/v1/jobs/{bad['id']}").json()
        assert failed["phase"] == "Failed" and "stored spec is not valid" in failed["message"]
        assert [e["type"] for e in failed["events"]][-1] == "Failed"
    ctl.store.close()


def test_a_placed_job_whose_stored_spec_is_not_valid_here_stays_in_its_assignments(tmp_path: Path) -> None:
    """After an upgrade that tightens the schema, a job placed before it is still handed to its
    cluster's agent as stored: one such row must not make the cluster's assignment call fail (the
    agent would stop nothing and start nothing) nor drop the job from the list (the agent would
    stop it)."""
    from fastapi.testclient import TestClient
    from sqlalchemy import update

    from controller.api.app import create_app
    from controller.store import schema as t

    app = create_app(Settings(database_url=f"sqlite:///{tmp_path}/y.db", background=False))
    ctl: Controller = app.state.controller
    with TestClient(app, raise_server_exceptions=False) as c:
        for name in ctl.registry.clusters:
            assert c.post(f"/v1/agents/{name}/heartbeat").status_code == 200
        old, fine = job_row(body("old", 8)), job_row(body("fine", 1))
        ctl.store.insert_jobs_bulk([old, fine])
        assert ctl.schedule_pending() == 2
        cluster = ctl.get_job(old["id"]).cluster
        stored = {**old["spec"], "resources": {"cpu": 99_999, "memory_gib": 1}}  # not valid here
        with ctl.store.tx() as conn:
            conn.execute(update(t.jobs).where(t.jobs.c.id == old["id"]).values(spec=stored))
        got = c.get(f"/v1/agents/{cluster}/assignments")
        assert got.status_code == 200, got.text
        listed = {a["job_id"]: a for a in got.json()}
        assert listed[old["id"]]["spec"]["resources"]["cpu"] == 99_999
    ctl.store.close()
