"""The whole API loop on a real PostgreSQL, the production database."""

from __future__ import annotations

from fastapi.testclient import TestClient

from controller.api.app import create_app
from controller.settings import Settings


def test_submit_schedule_report_on_postgres(fresh_postgres: str) -> None:
    app = create_app(Settings(database_url=fresh_postgres, background=False))
    ctl = app.state.controller
    with TestClient(app, raise_server_exceptions=False) as c:
        for name in ctl.registry.clusters:
            c.post(f"/v1/agents/{name}/heartbeat")
        c.post(
            "/v1/datasets",
            json={
                "id": "sc-core",
                "owner": "sichuan",
                "size_bytes": 5,
                "classification": "core",
                "locations": ["prov-sichuan"],
            },
        )
        first = c.post(
            "/v1/jobs",
            json={"name": "j", "tenant": "sichuan", "inputs": ["sc-core"]},
            headers={"Idempotency-Key": "pg-1"},
        )
        again = c.post(
            "/v1/jobs",
            json={"name": "j", "tenant": "sichuan", "inputs": ["sc-core"]},
            headers={"Idempotency-Key": "pg-1"},
        )
        assert first.status_code == 201 and again.status_code == 200
        jid = first.json()["id"]
        assert again.json()["id"] == jid
        assert ctl.schedule_pending() == 1
        assert c.get(f"/v1/jobs/{jid}/decision").json()["cluster"] == "prov-sichuan"
        [assignment] = c.get("/v1/agents/prov-sichuan/assignments").json()
        report = {"job_id": jid, "attempt": 1, "epoch": assignment["epoch"], "phase": "Running"}
        assert c.post("/v1/agents/prov-sichuan/status", json=report).json()["phase"] == "Running"
        # A report from the wrong cluster or for another attempt is refused.
        assert c.post("/v1/agents/prov-hubei/status", json=report).status_code == 409
        assert c.post("/v1/agents/prov-sichuan/status", json={**report, "attempt": 2}).status_code == 409
        done = c.post("/v1/agents/prov-sichuan/status", json={**report, "phase": "Succeeded"}).json()
        assert done["phase"] == "Succeeded"
        assert [e["type"] for e in c.get(f"/v1/jobs/{jid}").json()["events"]] == [
            "Submitted",
            "Scheduled",
            "Running",
            "Succeeded",
        ]
        assert c.get("/readyz").json()["leader"] is True
    ctl.store.close()
