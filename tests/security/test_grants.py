"""Data-set grants: request -> approve -> submit; rejected or missing -> 403 naming inputs[i]."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.security.conftest import PROBLEM, job

GRANTS = "/v1/datasets/gd-tax/grants"


def test_request_approve_submit_then_reject(api: TestClient, tokens: dict[str, dict[str, str]]) -> None:
    hb, gd, admin = tokens["hubei"], tokens["guangdong"], tokens["admin"]
    reads = job("hubei", inputs=["gd-tax"])
    # no grant: submit and plan refused, naming the input; admin submitting for hubei too
    for path, who in (("/v1/jobs", hb), ("/v1/plan", hb), ("/v1/jobs", admin)):
        r = api.post(path, json={**reads, "inputs": ["gd-tax"]}, headers=who)
        assert r.status_code == 403 and r.headers["content-type"] == PROBLEM, r.text
        assert [e["path"] for e in r.json()["errors"]] == ["inputs[0]"]
        assert "gd-tax" in r.json()["errors"][0]["message"]
    # hubei cannot see the data set yet
    assert api.get("/v1/datasets", headers=hb).json()["items"] == []
    assert api.get("/v1/datasets/gd-tax", headers=hb).status_code == 404
    # request (201), again (200, same grant)
    asked = api.post(GRANTS, json={"reason": "joint labour statistics"}, headers=hb)
    assert asked.status_code == 201 and asked.json()["status"] == "pending"
    again = api.post(GRANTS, json={}, headers=hb)
    assert again.status_code == 200 and again.json()["id"] == asked.json()["id"]
    gid = asked.json()["id"]
    # only the owner or an admin decides
    for who in ("hubei", "operator", "national", "agent"):
        assert api.post(f"{GRANTS}/{gid}/approve", headers=tokens[who]).status_code == 403, who
    assert api.post(GRANTS, json={}, headers=tokens["operator"]).status_code == 403
    # still pending: still refused
    assert api.post("/v1/jobs", json=reads, headers=hb).status_code == 403
    approved = api.post(f"{GRANTS}/{gid}/approve", headers=gd)
    assert approved.status_code == 200 and approved.json()["status"] == "approved"
    assert approved.json()["decided_by"] != "bootstrap-admin"
    assert api.post("/v1/jobs", json=reads, headers=hb).status_code == 201
    assert api.post("/v1/plan", json=reads, headers=hb).status_code == 200
    assert [d["id"] for d in api.get("/v1/datasets", headers=hb).json()["items"]] == ["gd-tax"]
    # the owner withdraws it: new submissions refused again
    assert api.post(f"{GRANTS}/{gid}/reject", headers=gd).json()["status"] == "rejected"
    r = api.post("/v1/jobs", json=reads, headers=hb)
    assert r.status_code == 403 and r.json()["errors"][0]["path"] == "inputs[0]"
    # asking again after a rejection opens a new request
    assert api.post(GRANTS, json={}, headers=hb).json()["status"] == "pending"


def test_grants_are_per_tenant_and_the_owner_needs_none(
    api: TestClient, tokens: dict[str, dict[str, str]]
) -> None:
    hb, gd = tokens["hubei"], tokens["guangdong"]
    gid = api.post(GRANTS, json={}, headers=hb).json()["id"]
    api.post(f"{GRANTS}/{gid}/approve", headers=gd)
    # national needs a grant like everyone (and an admin may grant it)
    national = job("national", inputs=["gd-tax"])
    assert api.post("/v1/jobs", json=national, headers=tokens["national"]).status_code == 403
    ng = api.post(GRANTS, json={"tenant": "national"}, headers=tokens["admin"])
    assert ng.status_code == 201
    assert api.post(f"{GRANTS}/{ng.json()['id']}/approve", headers=tokens["admin"]).status_code == 200
    assert api.post("/v1/jobs", json=national, headers=tokens["national"]).status_code == 201
    # the owner needs no grant; a tenant asks for itself only
    assert api.post("/v1/jobs", json=job("guangdong", inputs=["gd-tax"]), headers=gd).status_code == 201
    assert api.post(GRANTS, json={}, headers=gd).status_code == 422
    assert api.post(GRANTS, json={"tenant": "zhejiang"}, headers=hb).status_code == 403
    # listing: owner, admin, operator see all; another tenant its own
    assert len(api.get(GRANTS, headers=gd).json()["items"]) == 2
    assert len(api.get(GRANTS, headers=tokens["operator"]).json()["items"]) == 2
    assert [g["tenant"] for g in api.get(GRANTS, headers=hb).json()["items"]] == ["hubei"]
    # unknown grant or data set: 404
    assert api.post(f"{GRANTS}/nope/approve", headers=gd).status_code == 404
    assert api.post("/v1/datasets/nope/grants", json={}, headers=hb).status_code == 404


def test_a_tenant_registers_its_own_data_sets_only(
    api: TestClient, tokens: dict[str, dict[str, str]]
) -> None:
    ds = {
        "id": "hb-open",
        "owner": "hubei",
        "size_bytes": 1,
        "classification": "general",
        "locations": ["prov-hubei"],
    }
    r = api.post("/v1/datasets", json=ds, headers=tokens["guangdong"])
    assert r.status_code == 403 and r.json()["errors"][0]["path"] == "owner"
    assert api.post("/v1/datasets", json=ds, headers=tokens["hubei"]).status_code == 201


def _running(api: TestClient, job_id: str, admin: dict[str, str]) -> str:
    """Report the placed job running, as its agent does; its cluster."""
    got = api.get(f"/v1/jobs/{job_id}", headers=admin).json()
    assert got["phase"] == "Scheduled", got
    cluster = got["cluster"]
    [entry] = [
        a for a in api.get(f"/v1/agents/{cluster}/assignments", headers=admin).json() if a["job_id"] == job_id
    ]
    report = {"job_id": job_id, "attempt": 1, "epoch": entry["epoch"], "phase": "Running"}
    r = api.post(f"/v1/agents/{cluster}/status", json=report, headers=admin)
    assert r.status_code == 200 and r.json()["phase"] == "Running", r.text
    return str(cluster)


def test_a_withdrawn_grant_stops_the_grantees_unfinished_jobs_at_once(
    api: TestClient, tokens: dict[str, dict[str, str]]
) -> None:
    """The owner withdraws an approved grant: in the same transaction every unfinished job of
    the grantee that reads the data set stops, each naming it. Not started (Pending, or
    Scheduled and not yet reported running) it fails; running it is cancelled, its attempt
    leaves its agent's assignments (the agent stops what it no longer finds there) and its
    reservation leaves the ledger. The answer names them; the audit row counts them. Jobs
    reading their own data, or nothing of the owner's, go on; so do finished ones."""
    from controller.service import Controller

    ctl: Controller = api.app.state.controller  # type: ignore[attr-defined]
    hb, gd, admin = tokens["hubei"], tokens["guangdong"], tokens["admin"]
    gid = api.post(GRANTS, json={}, headers=hb).json()["id"]
    api.post(f"{GRANTS}/{gid}/approve", headers=gd)
    reads = job("hubei", inputs=["gd-tax"])
    running = api.post("/v1/jobs", json=reads, headers=hb).json()["id"]
    done = api.post("/v1/jobs", json=reads, headers=hb).json()["id"]
    placed = api.post("/v1/jobs", json=reads, headers=hb).json()["id"]
    assert ctl.schedule_pending() == 3
    cluster = _running(api, running, admin)
    done_on = _running(api, done, admin)
    epoch = ctl.leadership.epoch
    finished = {"job_id": done, "attempt": 1, "epoch": epoch, "phase": "Succeeded"}
    assert (
        api.post(f"/v1/agents/{done_on}/status", json=finished, headers=admin).json()["phase"] == "Succeeded"
    )
    waiting = api.post("/v1/jobs", json=reads, headers=hb).json()["id"]
    own = api.post("/v1/jobs", json=job("hubei", name="own"), headers=hb).json()["id"]
    owner = api.post("/v1/jobs", json=job("guangdong", inputs=["gd-tax"]), headers=gd).json()["id"]
    assert running in ctl.registry.ledger and placed in ctl.registry.ledger

    r = api.post(f"{GRANTS}/{gid}/reject", headers=gd)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "rejected"
    assert r.json()["stopped_jobs"] == {running: "Cancelled", placed: "Failed", waiting: "Failed"}
    for job_id, phase, event in ((running, "Cancelled", "Cancelled"), (placed, "Failed", "Failed")):
        got = api.get(f"/v1/jobs/{job_id}", headers=hb).json()
        assert got["phase"] == phase and "gd-tax" in got["message"], got
        assert [e["type"] for e in got["events"]][-1] == event
        assert job_id not in ctl.registry.ledger
    assert "while the job ran" in api.get(f"/v1/jobs/{running}", headers=hb).json()["message"]
    assert "before it was reported running" in api.get(f"/v1/jobs/{placed}", headers=hb).json()["message"]
    got = api.get(f"/v1/jobs/{waiting}", headers=hb).json()
    assert got["phase"] == "Failed" and "no longer holds an approved grant" in got["message"]
    assert [e["type"] for e in ctl.store.job_events(waiting)] == ["Submitted", "Failed"]
    # the running attempt is no longer among its agent's assignments: the agent stops it
    listed = api.get(f"/v1/agents/{cluster}/assignments", headers=admin).json()
    assert running not in {a["job_id"] for a in listed}
    # its agent's late report is refused as stale (409): the agent stops the attempt then too
    late = {"job_id": running, "attempt": 1, "epoch": epoch, "phase": "Running"}
    assert api.post(f"/v1/agents/{cluster}/status", json=late, headers=admin).status_code == 409
    [audit] = [
        a for a in api.get("/v1/audit", params={"action": "grant.rejected"}, headers=admin).json()["items"]
    ]
    assert audit["detail"]["stopped_jobs"] == 3
    # the finished job, and jobs not reading the withdrawn grant, are left as they were
    assert api.get(f"/v1/jobs/{done}", headers=hb).json()["phase"] == "Succeeded"
    assert api.get(f"/v1/jobs/{own}", headers=hb).json()["phase"] == "Pending"
    assert api.get(f"/v1/jobs/{owner}", headers=gd).json()["phase"] == "Pending"
    assert ctl.schedule_pending() == 2
    # rejecting again changes nothing and stops nothing
    again = api.post(f"{GRANTS}/{gid}/reject", headers=gd).json()
    assert again["status"] == "rejected" and again["stopped_jobs"] == {}
    # granted again: a new submission runs; the stopped ones stay stopped
    regrant = api.post(GRANTS, json={}, headers=hb).json()["id"]
    assert api.post(f"{GRANTS}/{regrant}/approve", headers=gd).json()["stopped_jobs"] == {}
    fresh = api.post("/v1/jobs", json=reads, headers=hb).json()["id"]
    assert ctl.schedule_pending() == 1
    assert api.get(f"/v1/jobs/{fresh}", headers=hb).json()["phase"] == "Scheduled"
    assert api.get(f"/v1/jobs/{placed}", headers=hb).json()["phase"] == "Failed"


def test_the_cycle_fails_a_job_whose_grant_went_elsewhere(
    api: TestClient, tokens: dict[str, dict[str, str]]
) -> None:
    """A grant rejected by another writer than this process's API (another controller version,
    or by hand with its audit row) leaves the grantee's queued job Pending; the scheduling
    cycle reads the grants again before placing and fails it, naming the data set, instead of
    running it against the owner's decision. Jobs reading their own data are placed."""
    from sqlalchemy import update

    from controller.service import Controller
    from controller.store import audit_chain
    from controller.store import schema as t
    from controller.store.store import now

    ctl: Controller = api.app.state.controller  # type: ignore[attr-defined]
    hb, gd = tokens["hubei"], tokens["guangdong"]
    gid = api.post(GRANTS, json={}, headers=hb).json()["id"]
    api.post(f"{GRANTS}/{gid}/approve", headers=gd)
    waiting = api.post("/v1/jobs", json=job("hubei", inputs=["gd-tax"]), headers=hb).json()["id"]
    owner = api.post("/v1/jobs", json=job("guangdong", inputs=["gd-tax"]), headers=gd).json()["id"]
    with ctl.store.tx() as conn:
        conn.execute(update(t.dataset_grants).where(t.dataset_grants.c.id == gid).values(status="rejected"))
        audit_chain.append(
            conn,
            [
                {
                    "at": now(),
                    "actor": "elsewhere",
                    "role": "admin",
                    "tenant": None,
                    "action": "grant.rejected",
                    "target": "dataset/gd-tax",
                    "detail": {"grant": gid},
                }
            ],
        )
    assert ctl.schedule_pending() == 1  # the owner's own job
    got = api.get(f"/v1/jobs/{waiting}", headers=hb).json()
    assert got["phase"] == "Failed", got
    assert "gd-tax" in got["message"] and "no longer holds an approved grant" in got["message"]
    assert [e["type"] for e in ctl.store.job_events(waiting)] == ["Submitted", "Failed"]
    assert api.get(f"/v1/jobs/{owner}", headers=gd).json()["phase"] == "Scheduled"


def test_approved_pairs_are_exactly_the_approved_grants_asked_for(db_url: str) -> None:
    """``SecurityStore.approved_pairs`` (the cycle's one read of the grants) on both databases,
    over more pairs than one statement takes: approved ones only, and only those asked for."""
    from sqlalchemy import insert, select

    from controller.store import Store
    from controller.store import schema as t
    from controller.store.security import SecurityStore
    from controller.store.store import new_job_id, now

    store = Store(db_url)
    at = now()
    datasets = [f"ds-{i}" for i in range(60)]
    tenants = [f"tenant-{i}" for i in range(40)]
    status = ["approved", "rejected", "pending"]
    grants = {
        (tn, d): status[(i * 7 + j) % 3] for i, tn in enumerate(tenants) for j, d in enumerate(datasets)
    }
    with store.tx() as conn:
        conn.execute(
            insert(t.datasets),
            [
                {
                    "id": d,
                    "owner": "guangdong",
                    "size_bytes": 1,
                    "classification": "general",
                    "locations": ["prov-guangdong"],
                    "created_at": at,
                }
                for d in datasets
            ],
        )
        conn.execute(
            insert(t.dataset_grants),
            [
                {
                    "id": new_job_id(),
                    "dataset_id": d,
                    "tenant": tn,
                    "status": st,
                    "reason": "",
                    "requested_by": "test",
                    "requested_at": at,
                    "decided_by": None,
                    "decided_at": None,
                }
                for (tn, d), st in grants.items()
            ],
        )
    wanted = {pair for k, pair in enumerate(sorted(grants)) if k % 5 != 0} | {("tenant-x", "ds-1")}
    assert len(wanted) > 1000
    repo = SecurityStore(store)
    got = repo.approved_pairs(wanted)
    assert got == {p for p in wanted if grants.get(p) == "approved"} and got
    # the marker moves with each decision (its audit row), on both databases
    assert repo.grants_marker() == 0
    g = t.dataset_grants.c
    with store.read() as conn:
        grant_id, dataset_id = conn.execute(
            select(g.id, g.dataset_id).where(g.status == "approved").limit(1)
        ).one()
    markers = []
    for status in ("rejected", "approved"):
        audit = {
            "at": now(),
            "actor": "test",
            "role": "admin",
            "tenant": None,
            "target": f"dataset/{dataset_id}",
        }
        row = {**audit, "action": f"grant.{status}", "detail": {}}
        repo.decide_grant(dataset_id, grant_id, status, "test", now(), lambda _grantee, row=row: row)
        markers.append(repo.grants_marker())
    assert 0 < markers[0] < markers[1]
    store.close()


def test_unfinished_reading_is_exactly_the_grantees_unfinished_readers(db_url: str) -> None:
    """``JobsRepo.unfinished_reading`` (what a withdrawal stops) on both databases: the tenant's
    Pending, Scheduled and Running jobs whose inputs name the data set, and no others: not
    another tenant's, not a finished one, not one naming the id elsewhere in its spec or
    reading a data set whose id the LIKE filter also matches (``_`` is its wildcard)."""
    from controller.bench.mixed import job_row
    from controller.store import Store

    store = Store(db_url)
    specs = {
        "reads": ("hubei", "Pending", ["gd_tax", "other"]),
        "reads-placed": ("hubei", "Scheduled", ["gd_tax"]),
        "reads-running": ("hubei", "Running", ["x", "gd_tax"]),
        "reads-done": ("hubei", "Succeeded", ["gd_tax"]),
        "reads-failed": ("hubei", "Failed", ["gd_tax"]),
        "other-tenant": ("zhejiang", "Running", ["gd_tax"]),
        "wildcard": ("hubei", "Running", ["gd-tax"]),
        "longer": ("hubei", "Pending", ["gd_tax2"]),
        "named": ("hubei", "Pending", []),
    }
    rows = [
        job_row({"name": "gd_tax" if name == "named" else name, "tenant": tenant, "inputs": inputs})
        for name, (tenant, _, inputs) in specs.items()
    ]
    store.insert_jobs_bulk(rows)
    # each job to its phase by the rule table's own steps
    steps = {
        "Scheduled": ["Scheduled"],
        "Running": ["Scheduled", "Running"],
        "Succeeded": ["Scheduled", "Running", "Succeeded"],
        "Failed": ["Failed"],
    }
    with store.tx() as conn:
        for row, (_, phase, _) in zip(rows, specs.values(), strict=True):
            at = "Pending"
            for step in steps.get(phase, []):
                values = {"phase": step, "cluster": "prov-hubei"}
                assert store.transition(
                    conn,
                    row["id"],
                    expect_phases=[at],
                    expect_attempt=1,
                    values=values,
                    event_type=step,
                    reason="",
                )
                at = step
    ids = {r["name"]: r["id"] for r in rows}
    with store.tx() as conn:
        got = store.unfinished_reading(conn, "hubei", "gd_tax")
    assert got == sorted(
        [
            (ids["reads"], "Pending", 1, None),
            (ids["reads-placed"], "Scheduled", 1, "prov-hubei"),
            (ids["reads-running"], "Running", 1, "prov-hubei"),
        ]
    )
    store.close()
