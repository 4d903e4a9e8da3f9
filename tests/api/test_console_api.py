"""The console's read-only endpoints: the federation map (cartogram, activity, failover arrows from
the job events), a cluster's overview, tenants and quotas, residency explained, the audit log's
target/order/exclude filters, the drill reports folder and the time series from the controller's
own samples."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from controller.api.app import create_app
from controller.drills.report import BudgetResult, DrillReport, write_json
from controller.service import Controller
from controller.settings import Settings
from controller.store.store import now


def make(tmp: Path, **settings: Any) -> tuple[FastAPI, TestClient]:
    app = create_app(Settings(database_url=f"sqlite:///{tmp / 'yiwang.db'}", background=False, **settings))
    c = TestClient(app)
    for name in app.state.controller.registry.clusters:
        assert c.post(f"/v1/agents/{name}/heartbeat").status_code == 200
    return app, c


def submit(c: TestClient, name: str, tenant: str, **extra: Any) -> str:
    r = c.post(
        "/v1/jobs", json={"name": name, "tenant": tenant, "resources": {"cpu": 10, "memory_gib": 10}, **extra}
    )
    assert r.status_code == 201, r.text
    job_id: str = r.json()["id"]
    return job_id


def fail(ctl: Controller, cluster: str) -> int:
    """The cluster falls silent for longer than lease + grace; the leader detects it and fails over."""
    silent = now() - timedelta(seconds=ctl.lease_hold_s() + 5)
    ctl.store.update_cluster(cluster, last_heartbeat=silent)
    ctl.registry.clusters[cluster].last_heartbeat = silent
    ctl.lead_since = silent  # the leader led throughout (silence counts from its takeover)
    return ctl.expire_leases()


def test_the_map_has_the_cartogram_activity_and_the_failover_and_drain_arrows(tmp_path: Path) -> None:
    app, c = make(tmp_path)
    ctl: Controller = app.state.controller
    on_hainan = [
        submit(c, f"hi-{i}", "hainan", constraints={"prefer_clusters": ["prov-hainan"]}) for i in range(2)
    ]
    on_hubei = submit(c, "hb-0", "hubei", constraints={"prefer_clusters": ["prov-hubei"]})
    stuck = submit(c, "hb-stuck", "hubei", constraints={"allow_clusters": ["prov-hubei"]})
    assert ctl.schedule_pending() == 4
    assert {c.get(f"/v1/jobs/{j}").json()["cluster"] for j in on_hainan} == {"prov-hainan"}
    body = c.get("/v1/federation/map").json()
    assert (body["rows"], body["cols"]) == (8, 9) and len(body["tiles"]) == 32
    assert len({(t["row"], t["col"]) for t in body["tiles"]}) == 32
    assert body["national"] == ["national-primary", "national-backup"] and len(body["departments"]) == 8
    assert body["activity"]["prov-hainan"] == {"scheduled": 2, "running": 0, "pending": 0}
    assert body["flows"] == []

    assert fail(ctl, "prov-hainan") == 2
    assert c.post("/v1/clusters/prov-hubei/drain").json()["requeued_jobs"] == 2
    ctl.schedule_pending()
    where = {j: c.get(f"/v1/jobs/{j}").json()["cluster"] for j in [*on_hainan, on_hubei, stuck]}
    assert where[stuck] is None and where[on_hubei] not in (None, "prov-hubei")
    flows = {
        (f["from_cluster"], f["to_cluster"], f["kind"]): f["jobs"]
        for f in c.get("/v1/federation/map").json()["flows"]
    }
    backup = where[on_hainan[0]]
    assert backup is not None and {where[j] for j in on_hainan} == {backup}
    assert flows == {
        ("prov-hainan", backup, "failover"): 2,
        ("prov-hubei", where[on_hubei], "drain"): 1,
        ("prov-hubei", None, "drain"): 1,
    }
    assert c.get("/v1/federation/map").json()["activity"]["prov-hubei"]["pending"] == 1  # hubei's queue

    overview = c.get("/v1/clusters/prov-hainan/overview").json()
    assert [h["health"] for h in overview["health_history"]] == ["Unknown", "Ready", "Unreachable"]
    assert overview["health_history"][-1]["reason"].startswith("no heartbeat for more than the grace")
    assert overview["backups"] == ctl.policies.failover.backups["prov-hainan"]
    assert "prov-guangdong" in overview["backup_for"]  # Guangdong fails over to Hainan first
    assert [(f["from_cluster"], f["to_cluster"]) for f in overview["flows"]] == [("prov-hainan", backup)]
    drained = c.get("/v1/clusters/prov-hubei/overview").json()["health_history"][-1]
    assert (drained["cordoned"], drained["draining"], drained["reason"]) == (True, True, "drained")


def test_a_clusters_overview_lists_the_data_sets_it_holds(tmp_path: Path) -> None:
    _, c = make(tmp_path)
    for ds_id, where in (("gd-a", ["prov-guangdong"]), ("gd-b", ["prov-guangdong", "national-primary"])):
        body = {
            "id": ds_id,
            "owner": "guangdong",
            "size_bytes": 1,
            "classification": "general",
            "locations": where,
        }
        assert c.post("/v1/datasets", json=body).status_code == 201
    assert [d["id"] for d in c.get("/v1/clusters/prov-guangdong/overview").json()["datasets"]] == [
        "gd-a",
        "gd-b",
    ]
    assert [d["id"] for d in c.get("/v1/clusters/national-primary/overview").json()["datasets"]] == ["gd-b"]
    assert c.get("/v1/clusters/nope/overview").status_code == 404


def test_tenants_show_quota_use_borrowing_queue_and_fair_share(tmp_path: Path) -> None:
    app, c = make(tmp_path)
    ctl: Controller = app.state.controller
    # Guangdong: nominal 4,000 cores; 2 x 2,500 cores is 1,000 borrowed.
    big = {
        "resources": {"cpu": 2500, "memory_gib": 100},
        "replicas": 2,
        "constraints": {"allow_clusters": ["prov-guangdong"]},
    }
    assert c.post("/v1/jobs", json={"name": "big", "tenant": "guangdong", **big}).status_code == 201
    submit(c, "small", "hubei")
    waiting = submit(c, "too-big", "hebei", resources={"cpu": 3000, "memory_gib": 1}, replicas=3)
    assert ctl.schedule_pending() == 2
    rows = {t["tenant"]: t for t in c.get("/v1/tenants").json()["items"]}
    gd = rows["guangdong"]
    assert gd["nominal"] == {"cpu": 4000.0, "memory_gib": 16000.0, "gpu": 16.0}
    assert gd["borrowing_limit"] == {"cpu": 8000.0, "memory_gib": 32000.0, "gpu": 32.0}
    assert gd["used"]["cpu"] == 5000 and gd["borrowed"]["cpu"] == 1000 and gd["borrowing"] is True
    assert (gd["scheduled"], gd["pending"]) == (1, 0)
    hebei = rows["hebei"]
    assert hebei["pending"] == 1 and hebei["oldest_pending_at"] is not None and hebei["used"]["cpu"] == 0
    assert c.get(f"/v1/jobs/{waiting}").json()["message"].startswith("0/42")
    # Fair share: the smallest dominant share first; Guangdong uses the most of its quota.
    assert max(rows.values(), key=lambda t: t["fair_share_rank"])["tenant"] == "guangdong"
    assert rows["guangdong"]["dominant_share"] == 5000 / 4000
    assert sorted(t["fair_share_rank"] for t in rows.values()) == list(range(1, len(rows) + 1))
    assert rows["national"]["weight"] == 2.0


def test_residency_is_explained_per_data_set(tmp_path: Path) -> None:
    _, c = make(tmp_path)
    sets = [
        ("core-1", "core", ["prov-guangdong"]),
        ("imp-1", "important", ["prov-guangdong"]),
        ("gen-1", "general", ["prov-guangdong"]),
    ]
    for ds_id, cls, where in sets:
        body = {"id": ds_id, "owner": "guangdong", "size_bytes": 1, "classification": cls, "locations": where}
        assert c.post("/v1/datasets", json=body).status_code == 201
    core = c.get("/v1/datasets/core-1/residency").json()
    assert (core["rule"], core["legal_floor"], core["tightened"]) == ("none", "none", False)
    assert core["may_run_on"] == ["prov-guangdong"] and core["clusters_total"] == 42
    assert core["explanation"] == (
        "Core data never moves: a job reading core-1 runs only on a cluster holding a copy (prov-guangdong)."
    )
    assert core["explanation_zh"].startswith("核心数据不出域")
    important = c.get("/v1/datasets/imp-1/residency").json()
    assert important["may_run_on"] == ["national-backup", "national-primary", "prov-guangdong"]
    assert "never in another province or ministry" in important["explanation"]
    assert len(c.get("/v1/datasets/gen-1/residency").json()["may_run_on"]) == 42
    assert c.get("/v1/datasets/nope/residency").status_code == 404


def test_the_audit_log_filters_by_target_newest_first_and_leaves_out_an_action(tmp_path: Path) -> None:
    app, c = make(tmp_path)
    for name in ("prov-hubei", "prov-hunan", "prov-hubei"):
        assert c.post(f"/v1/clusters/{name}/cordon").status_code == 200
    submit(c, "one", "hubei")
    app.state.controller.schedule_pending()
    hubei = c.get("/v1/audit", params={"target": "cluster/prov-hubei"}).json()["items"]
    assert [a["action"] for a in hubei] == ["cluster.cordoned", "cluster.cordoned"]
    newest = c.get("/v1/audit", params={"order": "desc", "limit": 2}).json()
    assert [a["action"] for a in newest["items"]] == ["placement.decided", "job.submitted"]
    rest = c.get("/v1/audit", params={"order": "desc", "limit": 2, "cursor": newest["next_cursor"]}).json()
    ids = [a["id"] for a in newest["items"] + rest["items"]]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 4
    quiet = c.get("/v1/audit", params={"order": "desc", "exclude_action": "placement.decided"}).json()[
        "items"
    ]
    assert quiet and all(a["action"] != "placement.decided" for a in quiet)
    assert c.get("/v1/audit", params={"order": "sideways"}).status_code == 422


def report(name: str, *, rto: float, budget: float) -> DrillReport:
    rep = DrillReport(name, f"policies/drills/{name}.yaml", "2027-01-10T08:00:00+00:00", duration_s=12.5)
    rep.results = [
        BudgetResult("detection_s", 5.0, 1.2, "s", True, "measured 1.200 s <= budget 5.000 s"),
        BudgetResult("rto_s", budget, rto, "s", rto <= budget, f"measured {rto:.3f} s"),
        BudgetResult("jobs_lost", 0, 0, "jobs", True, "measured 0 jobs <= budget 0 jobs"),
    ]
    rep.timeline = [{"fault": "kill_agent", "cluster": "prov-hainan", "detection_s": 1.2, "rto_s": rto}]
    return rep


def test_drill_reports_are_read_from_the_configured_folder(tmp_path: Path) -> None:
    folder = tmp_path / "drills"
    write_json(report("agent-killed", rto=3.0, budget=10.0), folder / "agent-killed.json")
    write_json(report("slow", rto=30.0, budget=10.0), folder / "slow.json")
    (folder / "slow.medians.json").write_text(json.dumps({"scenario": "slow", "runs": 3, "medians": {}}))
    (folder / "notes.json").write_text("{not json")
    (folder / "junit.xml").write_text("<testsuites/>")
    _, c = make(tmp_path, drill_reports_dir=folder)
    body = c.get("/v1/drills").json()
    assert body["folder"] == str(folder)
    by_name = {d["name"]: d for d in body["items"]}
    assert set(by_name) == {"agent-killed", "slow"}
    assert (by_name["agent-killed"]["passed"], by_name["agent-killed"]["budgets_met"]) == (True, 3)
    assert (by_name["slow"]["passed"], by_name["slow"]["budgets_missed"]) == (False, 1)
    assert by_name["slow"]["timeline"][0]["rto_s"] == 30.0
    assert {u["file"] for u in body["unreadable"]} == {"slow.medians.json", "notes.json"}
    full = c.get("/v1/drills/slow").json()
    assert full["scenario"] == "slow" and full["results"][1]["message"] == "measured 30.000 s"
    assert c.get("/v1/drills/missing").status_code == 404
    assert c.get("/v1/drills/notes").status_code == 404  # there, but not a report
    assert c.get("/v1/drills/..%2Fyiwang").status_code in (404, 422)


def test_without_a_drill_folder_the_list_is_empty_and_says_so(tmp_path: Path) -> None:
    _, c = make(tmp_path)
    assert c.get("/v1/drills").json() == {"folder": None, "items": [], "unreadable": []}
    assert c.get("/v1/drills/anything").status_code == 404


def test_series_come_from_the_controllers_own_samples(tmp_path: Path) -> None:
    app, c = make(tmp_path, metrics_sample_s=0.01)
    ctl: Controller = app.state.controller
    ctl.sample_metrics()
    for i in range(3):
        submit(c, f"s-{i}", "sichuan")
    assert ctl.schedule_pending() == 3
    fail(ctl, ctl.store.get_job(c.get("/v1/jobs").json()["items"][0]["id"])["cluster"])
    ctl.sample_metrics()
    body = c.get("/v1/metrics/series", params={"window_s": 300}).json()
    assert body["source"] == "memory" and body["interval_s"] == 0.01
    s = {x["name"]: x for x in body["series"]}
    assert [x["name"] for x in body["series"]] == [
        "queue", "running", "placements_per_s", "utilisation_cpu", "utilisation_gpu",
        "failovers", "fenced", "wan_bytes_per_s", "unreachable",
    ]  # fmt: skip
    assert s["unreachable"]["points"][-1][1] == 1
    assert sum(v for _, v in s["failovers"]["points"]) >= 1
    assert any(v > 0 for _, v in s["placements_per_s"]["points"])
    assert s["utilisation_cpu"]["unit"] == "%" and s["utilisation_cpu"]["points"][-1][1] >= 0
    metrics = c.get("/metrics").text
    assert "yiwang_placements_total 3.0" in metrics and "yiwang_failovers_total" in metrics
    assert c.get("/v1/metrics/series", params={"window_s": 10}).status_code == 422
