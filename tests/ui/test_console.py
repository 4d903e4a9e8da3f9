"""The operator console against a live embedded federation (tests/ui/console.py): what an operator
reads on the federation map, a cluster's page, tenants and quotas, data sets and grants, the audit
log, drill runs and the time series, checked against the API; at 1280 and 390 px, by keyboard, and
with tenant tokens where a tenant must see only its own."""

from __future__ import annotations

import json
import re
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.ui.conftest import Page
from tests.ui.console import CORDONED, DRAINED, FAILED, GRACE_S, LONG, Console

pytestmark = pytest.mark.timeout(120)


def num(n: float, digits: int = 1) -> str:
    """As the dashboard writes numbers (en-US grouping, at most one or two decimals): the browser's
    Intl.NumberFormat rounds the number's shortest decimal form half away from zero (4.595 ->
    4.6), where Python's format rounds its binary value (4.595 -> 4.59)."""
    exact = Decimal(repr(float(n))).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)
    return f"{exact:,.{digits}f}".rstrip("0").rstrip(".")


# ---- 1. the decision panel of a Running job ---------------------------------------------------------
def test_a_running_jobs_decision_says_placed_and_running_not_scheduled(ctab: Page, console: Console) -> None:
    running = console.job("hb-flood-model-0")
    assert running["phase"] == "Running"
    page = ctab.open(f"#/jobs/{running['id']}")
    expect(page.locator("dd[data-field=phase]")).to_have_text("Running")
    head = page.locator(".decision-head")
    expect(head.locator("[data-outcome]")).to_have_text("Placed 已放置")
    expect(head.locator("[data-job-now]")).to_have_text("The job is now Running there.")
    expect(head).not_to_contain_text("Scheduled")  # the bug: a Running job's panel said "Scheduled"
    expect(head.locator("[data-chosen]")).to_contain_text(running["cluster"])
    ctab.shot("decision-running-1280", doc=True)

    # A job that failed over: its decision is the new attempt's, on the cluster it runs on now.
    moved = next(
        j
        for j in map(console.job, ("gd-open-report-0", "gd-open-report-1", "gd-open-report-2"))
        if j["attempt"] == 2
    )
    assert moved["phase"] == "Running" and moved["cluster"] != FAILED
    page.goto(f"{console.url}/ui#/jobs/{moved['id']}")
    expect(page.locator(".decision-head [data-job-now]")).to_have_text("The job is now Running there.")
    expect(page.locator(".decision-head")).to_contain_text("Attempt 2")
    expect(page.locator(".timeline li[data-event=LeaseExpired]")).to_contain_text(
        f"cluster {FAILED} unreachable"
    )

    # The core job cannot leave Guangdong: it waits, and the panel says why.
    core = console.job("gd-census-core")
    page.goto(f"{console.url}/ui#/jobs/{core['id']}")
    expect(page.locator("dd[data-field=phase]")).to_have_text("Pending")
    expect(page.locator(".decision-head [data-outcome]")).to_contain_text("Unschedulable")
    expect(page.locator(".decision-head [data-job-now]")).to_have_text("The job is now Pending.")
    expect(page.locator("[data-summary]")).to_contain_text(
        "residency (core data gd-population-register has no copy here"
    )
    ctab.shot("decision-waiting-1280")


# ---- 2. the federation map -------------------------------------------------------------------------------
def test_the_map_places_provinces_by_their_capitals_and_shows_health_load_and_failovers(
    ctab: Page, cnarrow: Page, console: Console
) -> None:
    api = console.get("/v1/federation/map")
    cells = {t["cluster"]: (t["row"], t["col"]) for t in api["tiles"]}
    assert len(cells) == 32 and len(set(cells.values())) == 32
    page = ctab.open("#/map")
    expect(page.locator(".province-grid .mtile")).to_have_count(32)
    expect(page.locator(".national-tiles .mtile")).to_have_count(2)
    expect(page.locator(".ministry-tiles .mtile")).to_have_count(8)
    for name, (row, col) in cells.items():
        tile = page.locator(f".province-grid .mtile[data-cluster={name}]")
        expect(tile).to_have_attribute("data-row", str(row))
        expect(tile).to_have_attribute("data-col", str(col))

    def box(name: str) -> dict[str, float]:
        b = page.locator(f".mtile[data-cluster={name}]").bounding_box()
        assert b is not None
        return b

    # Drawn as the country: the north-east right of the far west, Hainan south of Guangdong,
    # Beijing north of Guangdong, Shanghai east of Sichuan.
    assert box("prov-heilongjiang")["x"] > box("prov-xinjiang")["x"]
    assert box("prov-hainan")["y"] > box("prov-guangdong")["y"]
    assert box("prov-beijing")["y"] < box("prov-guangdong")["y"]
    assert box("prov-shanghai")["x"] > box("prov-sichuan")["x"]

    # Health and state, in words and colour.
    failed = page.locator(f".mtile[data-cluster={FAILED}]")
    expect(failed).to_have_attribute("data-state", "unreachable")
    expect(failed).to_contain_text("广东")
    expect(failed).to_contain_text("Unreachable")
    expect(failed).to_have_attribute(
        "aria-label", re.compile(r"^Guangdong 广东省: Unreachable; CPU [<\d]+% allocated")
    )
    expect(page.locator(f".mtile[data-cluster={CORDONED}]")).to_have_attribute("data-state", "cordoned")
    expect(page.locator(f".mtile[data-cluster={DRAINED}]")).to_have_attribute("data-state", "draining")
    expect(page.locator(f".mtile[data-cluster={DRAINED}]")).to_contain_text("Draining")
    summary = page.locator(".summary-line")
    expect(summary).to_contain_text("1 Unreachable")
    expect(summary).to_contain_text("1 cordoned · 1 draining")

    # Load and queue per tile, as the API counts them.
    hubei = api["activity"]["prov-hubei"]
    tile = page.locator(".mtile[data-cluster=prov-hubei]")
    expect(tile.locator("[data-num=running]")).to_have_text(f"R{hubei['running'] + hubei['scheduled']}")
    expect(tile.locator("[data-num=queue]")).to_have_text(f"Q{hubei['pending']}")
    expect(page.locator(f".mtile[data-cluster={FAILED}] [data-num=queue]")).to_have_text("Q1")  # the core job

    # Failovers: an arrow and a sentence per (from, to), from the job events.
    flows = [f for f in api["flows"] if f["from_cluster"] == FAILED]
    assert sum(f["jobs"] for f in flows) >= 5 and any(f["to_cluster"] is None for f in flows)
    for f in api["flows"]:
        item = page.locator(f'.flow-list li[data-flow="{f["from_cluster"]}>{f["to_cluster"] or ""}"]')
        expect(item).to_contain_text(f"{f['jobs']} job")
        if f["to_cluster"] is None:
            expect(item).to_contain_text("not placed again yet")
        elif f["to_cluster"] != f["from_cluster"]:
            arrow = page.locator(f'path.flow[data-from="{f["from_cluster"]}"][data-to="{f["to_cluster"]}"]')
            expect(arrow).to_have_count(1)
            expect(arrow).to_have_class(re.compile(f["kind"]))
    drain = page.locator(f'.flow-list li[data-kind=drain][data-flow^="{DRAINED}>"]')
    expect(drain).to_contain_text("Drain 排空")
    expect(page.locator(".attention-list")).to_contain_text(f"{FAILED} 广东省 — Unreachable")
    ctab.shot("map-1280", doc=True)

    # Keyboard: arrows move between neighbouring tiles; Enter opens the cluster's page.
    row, col = cells["prov-hubei"]
    right = next(n for n, rc in cells.items() if rc == (row, col + 1))
    up = next(n for n, rc in cells.items() if rc == (row - 1, col))
    tile.focus()
    page.keyboard.press("ArrowRight")
    expect(page.locator(f".mtile[data-cluster={right}]")).to_be_focused()
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowUp")
    expect(page.locator(f".mtile[data-cluster={up}]")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(f"#/clusters/{up}$"))
    expect(page.locator("h1")).to_contain_text(up)

    narrow = cnarrow.open("#/map")
    expect(narrow.locator(".province-grid .mtile")).to_have_count(32)
    expect(narrow.locator(f".mtile[data-cluster={FAILED}]")).to_have_attribute("data-state", "unreachable")
    expect(narrow.locator("path.flow").first).to_be_attached()
    cnarrow.fits()
    cnarrow.shot("map-390", doc=True)


# ---- 3. a cluster's page ------------------------------------------------------------------------------------
def test_a_clusters_page_explains_capacity_health_jobs_data_and_backups(
    ctab: Page, cnarrow: Page, console: Console
) -> None:
    api = console.get(f"/v1/clusters/{FAILED}/overview")
    page = ctab.open(f"#/clusters/{FAILED}")
    expect(page.locator("h1")).to_contain_text("Guangdong 广东省")
    expect(page.locator(".cluster-badges [data-health]")).to_have_text("Unreachable 不可达")
    c = api["cluster"]
    cpu = page.locator(".capacity-table tr[data-resource=cpu]")
    expect(cpu.locator("[data-col=declared]")).to_have_text(num(c["capacity"]["cpu"]))
    expect(cpu.locator("[data-col=effective]")).to_have_text(num(c["effective_capacity"]["cpu"]))
    expect(cpu.locator("[data-col=allocated]")).to_have_text(num(c["allocated"]["cpu"]))
    history = page.locator(".health-history li")
    expect(history.first).to_have_attribute("data-health", "Unreachable")
    expect(history.first).to_contain_text(f"no heartbeat for more than the grace of {GRACE_S:g}s")
    expect(page.locator(".health-history li[data-health=Ready]")).to_contain_text(
        "its agent's heartbeat arrived"
    )
    held = page.locator(".cluster-datasets li")
    expect(held).to_have_count(3)
    expect(page.locator(".cluster-datasets li[data-dataset=gd-population-register]")).to_contain_text(
        "core 核心数据"
    )
    backups = page.locator("[data-backups]")
    expect(backups).to_have_attribute("data-backups", ",".join(api["backups"]))
    expect(backups).to_contain_text("Its jobs fail over to: prov-hainan 海南省 → national-backup")
    expect(page.locator("[data-queue]")).to_have_text("1 pending job of tenant guangdong")
    expect(page.locator(".cluster-queue")).to_contain_text("gd-census-core")
    for f in api["flows"]:
        expect(
            page.locator(f'.flow-list li[data-flow="{f["from_cluster"]}>{f["to_cluster"] or ""}"]')
        ).to_contain_text(f"{f['jobs']} job")
    ctab.shot("cluster-1280", doc=True)

    # Hubei: its jobs, then cordon and uncordon through the page, with confirmation.
    here = console.get("/v1/clusters/prov-hubei/overview")["activity"]
    assert here["running"] >= 2 and console.job("hb-flood-model-0")["cluster"] == "prov-hubei"
    page.goto(f"{console.url}/ui#/clusters/prov-hubei")
    expect(page.locator("[data-jobs-summary]")).to_have_text(
        f"{here['running']} running, {here['scheduled']} scheduled (placed, not started)"
    )
    expect(page.locator(".cluster-jobs tr[data-job]")).to_have_count(here["running"] + here["scheduled"])
    expect(page.locator(".cluster-jobs")).to_contain_text("hb-flood-model-0")
    page.get_by_role("button", name="Cordon 封锁").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("No new jobs will be placed on prov-hubei (湖北省)")
    dialog.get_by_role("button", name="Cordon").click()
    expect(page.locator(".cluster-badges [data-state=cordoned]")).to_have_text("Cordoned 已封锁")
    assert console.get("/v1/clusters/prov-hubei")["cordoned"] is True
    expect(page.locator(".health-history li").first).to_contain_text("cordoned")
    expect(page.locator(".ops-list li[data-action='cluster.cordoned']")).to_be_visible()
    page.get_by_role("button", name="Uncordon 解除封锁").click()
    page.get_by_role("dialog").get_by_role("button", name="Uncordon").click()
    expect(page.get_by_role("button", name="Cordon 封锁")).to_be_visible()
    assert console.get("/v1/clusters/prov-hubei")["cordoned"] is False

    # Drain asks first, saying how many jobs would move; Escape leaves everything as it was.
    page.get_by_role("button", name="Drain 排空").click()
    expect(page.get_by_role("dialog")).to_contain_text(
        f"every job on it ({here['running'] + here['scheduled']} now) sent back to Pending"
    )
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog")).to_be_hidden()
    assert console.get("/v1/clusters/prov-hubei")["draining"] is False

    narrow = cnarrow.open(f"#/clusters/{FAILED}")
    expect(narrow.locator(".capacity-table tr[data-resource=cpu] [data-col=declared]")).to_have_text(
        num(c["capacity"]["cpu"])
    )
    cnarrow.fits()
    cnarrow.shot("cluster-390", doc=True)


# ---- 4. tenants and quotas ------------------------------------------------------------------------------------
def test_tenants_show_quota_borrowing_queue_fair_share_and_preemptions(
    ctab: Page, cnarrow: Page, console: Console
) -> None:
    api = {t["tenant"]: t for t in console.get("/v1/tenants")["items"]}
    page = ctab.open("#/tenants")
    js = page.locator("tr[data-tenant=jiangsu]")
    used, nominal = api["jiangsu"]["used"]["cpu"], api["jiangsu"]["nominal"]["cpu"]
    assert used > nominal, "the fixture's Jiangsu job borrows"
    expect(js.locator("td[data-res=cpu]")).to_contain_text(
        f"{num(used)} / {num(nominal)} cores ({num(used - nominal)} borrowed)"
    )
    expect(js).to_contain_text("Borrowing 借用")
    expect(page.locator("tr[data-tenant=hebei] [data-col=pending]")).to_contain_text("1 pending")
    expect(page.locator("tr[data-tenant=qinghai] [data-col=preempted]")).to_contain_text("1")
    expect(page.locator("tr[data-tenant=gansu] [data-col=placed]")).to_have_text("1 running")
    ranks = [int(r) for r in page.locator("[data-rank]").evaluate_all("els => els.map(e => e.dataset.rank)")]
    shown = page.locator("tr[data-tenant]").evaluate_all("els => els.map(e => e.dataset.tenant)")
    assert ranks == sorted(ranks) and ranks == [api[t]["fair_share_rank"] for t in shown]
    assert set(shown) >= {"guangdong", "hubei", "sichuan", "national", "jiangsu", "hebei", "qinghai", "gansu"}
    summary = page.locator(".summary-line")
    expect(summary).to_contain_text("1 borrowing")
    expect(summary).to_contain_text("1 preempted in the last hour")
    ctab.shot("tenants-1280", doc=True)

    page.get_by_label("Show tenants without jobs").check()
    expect(page.locator("tr[data-tenant]")).to_have_count(len(api))

    # A tenant token sees its own row only.
    ctab.set_token(console.tokens["hubei"])
    page.reload()
    expect(page.locator("tr[data-tenant]")).to_have_count(1)
    expect(page.locator("tr[data-tenant=hubei]")).to_be_visible()
    expect(summary).to_contain_text(f"1 of {len(api)} tenants")

    narrow = cnarrow.open("#/tenants")
    expect(narrow.locator("tr[data-tenant=jiangsu]")).to_contain_text("borrowed")
    cnarrow.fits()
    cnarrow.shot("tenants-390", doc=True)


# ---- 5. data sets, residency and grants ------------------------------------------------------------------------
def test_the_catalogue_explains_residency_and_owners_decide_grants(
    ctab: Page, cnarrow: Page, console: Console
) -> None:
    page = ctab.open("#/data")
    core = page.locator("tr[data-dataset=gd-population-register]")
    expect(core).to_contain_text("core 核心数据")
    expect(core.locator("[data-copies]")).to_have_attribute("data-copies", FAILED)
    expect(core.locator("[data-rule]")).to_have_text("never moves 不出域")
    core.get_by_role("button", name="Explain").click()
    explained = page.locator("tr[data-residency=gd-population-register]")
    expect(explained.locator("[data-explanation]")).to_have_text(
        "Core data never moves: a job reading gd-population-register runs only on a cluster holding a copy "
        f"(prov-guangdong). Not Ready now: {FAILED}."
    )
    expect(explained).to_contain_text("核心数据不出域")
    expect(explained).to_contain_text("May run on 1 of 42 clusters")
    important = console.get("/v1/datasets/gd-social-insurance/residency")
    page.locator("tr[data-dataset=gd-social-insurance]").get_by_role("button", name="Explain").click()
    expect(page.locator("tr[data-residency=gd-social-insurance]")).to_contain_text(
        f"May run on {len(important['may_run_on'])} of 42 clusters"
    )
    assert set(important["may_run_on"]) == {FAILED, "national-primary", "national-backup"}
    ctab.shot("data-1280", doc=True)

    # The owner (Guangdong's token) decides: Hubei's pending request is approved with confirmation.
    ctab.set_token(console.tokens["guangdong"])
    page.reload()
    hubei = page.locator("tr[data-grant][data-dataset=gd-open-statistics][data-tenant=hubei]")
    expect(hubei.locator("[data-status]")).to_have_text("Pending 待审批")
    expect(page.locator("tr[data-grant][data-dataset=nhc-health-statistics]")).to_contain_text(
        "decided by nhc"
    )
    expect(page.locator("tr[data-grant][data-dataset=nhc-health-statistics] button")).to_have_count(0)

    def decide(verb: str, says: str, shown: str, status: str) -> None:
        """Hubei's grant decided through its row's button and the confirmation dialog."""
        hubei.get_by_role("button", name=f"{verb} hubei for gd-open-statistics").click()
        dialog = page.get_by_role("dialog")
        expect(dialog).to_contain_text(says)
        dialog.get_by_role("button", name=verb).click()
        expect(hubei.locator("[data-status]")).to_have_text(shown)
        grants = console.get("/v1/datasets/gd-open-statistics/grants")["items"]
        assert {g["tenant"]: g["status"] for g in grants}["hubei"] == status

    decide(
        "Approve",
        "Tenant hubei will be able to read gd-open-statistics (general)",
        "Approved 已批准",
        "approved",
    )

    # Hubei now sees the data set in its catalogue, and decides nothing of Guangdong's.
    ctab.set_token(console.tokens["hubei"])
    page.reload()
    expect(page.locator("tr[data-dataset=gd-open-statistics]").first).to_be_visible()
    expect(page.locator("tr[data-dataset=gd-population-register]")).to_have_count(0)
    expect(page.locator(".grants-table button")).to_have_count(0)

    narrow = cnarrow.open("#/data")
    expect(narrow.locator("tr[data-dataset=gd-population-register]")).to_contain_text("core")
    cnarrow.fits()
    cnarrow.shot("data-390", doc=True)

    # The owner withdraws it: the confirmation says the grantee's unfinished readers stop now.
    ctab.set_token(console.tokens["guangdong"])
    page.reload()
    decide("Withdraw", "its unfinished jobs reading it stop now", "Rejected 已拒绝", "rejected")


# ---- 6. the audit log ----------------------------------------------------------------------------------------------
def test_the_audit_log_filters_and_links_what_happened(ctab: Page, cnarrow: Page, console: Console) -> None:
    page = ctab.open("#/audit")
    rows = page.locator("tr[data-audit]")
    expect(rows.first).to_be_visible()
    expect(page.locator("tr[data-action='placement.decided']")).to_have_count(0)  # hidden by default
    expect(page.locator("tr[data-action='cluster.drained']")).to_contain_text(f"cluster/{DRAINED}")
    page.get_by_label("Action").select_option("cluster.cordoned")
    expect(page).to_have_url(re.compile(r"#/audit\?action=cluster\.cordoned"))
    api = console.get("/v1/audit", action="cluster.cordoned", order="desc")["items"]
    expect(rows).to_have_count(len(api))
    expect(rows.first).to_contain_text(api[0]["target"])
    ctab.shot("audit-1280", doc=True)
    page.locator(f"tr[data-action='cluster.cordoned'] a[href='#/clusters/{CORDONED}']").first.click()
    expect(page.locator("h1")).to_contain_text(CORDONED)

    page.goto(f"{console.url}/ui#/audit?placements=1")
    expect(page.locator("tr[data-action='placement.decided']").first).to_be_visible()
    expect(page.get_by_label("Include placement decisions", exact=False)).to_be_checked()

    narrow = cnarrow.open("#/audit?action=cluster.drained")
    expect(narrow.locator("tr[data-audit]")).to_have_count(1)
    cnarrow.fits()
    cnarrow.shot("audit-390", doc=True)


# ---- 7. drill runs --------------------------------------------------------------------------------------------------
def test_drill_runs_show_budgets_met_and_missed_from_the_folder_and_from_a_file(
    ctab: Page, cnarrow: Page, console: Console, tmp_path: Path
) -> None:
    console.drills_done()
    api = {d["name"]: d for d in console.get("/v1/drills")["items"]}
    assert set(api) == {"small-kill", "tight-rto"}
    broken = [r["message"] for r in api["small-kill"]["results"] if not r["passed"]]
    assert api["small-kill"]["passed"], f"the small drill failed: {api['small-kill']['error'] or broken}"
    page = ctab.open("#/drills")
    ok = page.locator("tr[data-drill=small-kill]")
    expect(ok.locator("[data-verdict]")).to_have_text("Passed 通过")
    met = api["small-kill"]["budgets_met"]
    expect(ok.locator("[data-budgets]")).to_have_text(f"{met} met · 0 missed")
    bad = page.locator("tr[data-drill=tight-rto]")
    expect(bad.locator("[data-verdict]")).to_have_text("Failed 未通过")
    expect(bad.locator("[data-budgets]")).to_have_text(f"{api['tight-rto']['budgets_met']} met · 1 missed")
    rto = next(r for r in api["tight-rto"]["results"] if r["name"] == "rto_s")["measured"]
    expect(bad).to_contain_text(f"{num(rto, 2)} s")
    expect(page.locator(".summary-line")).to_have_text("2 runs · 1 passed · 1 failed")
    ctab.shot("drills-1280", doc=True)

    bad.get_by_role("link", name="tight-rto").click()
    missed = page.locator("tr[data-budget=rto_s]")
    expect(missed.locator("[data-result]")).to_have_text("Missed 未达标")
    expect(missed).to_contain_text("> budget 0.001 s")
    expect(page.locator("tr[data-budget=detection_s] [data-result]")).to_have_text("Met 达标")
    fault = page.locator(".fault").first
    expect(fault).to_contain_text("kill_agent on prov-hainan")
    expect(fault.locator("[data-field=moved]")).to_contain_text("×3")
    ctab.shot("drill-detail-1280", doc=True)

    # A report from elsewhere (a CI artifact), opened in the browser: read here, not uploaded.
    report = console.get("/v1/drills/small-kill")
    report["scenario"] = "ci-province-partition"
    good, junk = tmp_path / "ci-run.json", tmp_path / "notes.json"
    good.write_text(json.dumps(report))
    junk.write_text('{"hello": "world"}')
    page.goto(f"{console.url}/ui#/drills")
    page.get_by_label("Open a report file").set_input_files([str(good), str(junk)])
    expect(page.locator("#drill-file-msg")).to_contain_text("ci-run.json: ci-province-partition")
    expect(page.locator("#drill-file-msg")).to_contain_text("notes.json: not a drill report")
    uploaded = page.locator("tr[data-drill^=upload-]")
    expect(uploaded).to_contain_text("ci-province-partition")
    expect(uploaded).to_contain_text("(opened in this tab)")
    expect(page.locator(".summary-line")).to_have_text("3 runs · 2 passed · 1 failed")

    narrow = cnarrow.open("#/drills/tight-rto")
    expect(narrow.locator("tr[data-budget=rto_s] [data-result]")).to_have_text("Missed 未达标")
    cnarrow.fits()
    cnarrow.shot("drill-detail-390", doc=True)


# ---- 8. time series -----------------------------------------------------------------------------------------------------
def test_charts_follow_the_controller_live(ctab: Page, cnarrow: Page, console: Console) -> None:
    series = {s["name"]: s for s in console.get("/v1/metrics/series", window_s=900)["series"]}
    failed_over = sum(v for _, v in series["failovers"]["points"])
    assert failed_over >= 5, "the fixture's failover shows in the controller's samples"
    page = ctab.open("#/charts")
    expect(page.locator("figure[data-series]")).to_have_count(9)
    expect(page.locator("[data-source]")).to_contain_text("this controller's own samples")
    expect(page.locator("figure[data-series=failovers] .chart-value")).to_have_text(
        f"{num(failed_over)} jobs in 15 min"
    )
    expect(page.locator("figure[data-series=unreachable] svg")).to_have_attribute(
        "aria-label", re.compile(r"^Unreachable clusters: now 1 cluster;")
    )

    def running_now() -> int:
        now = {s["name"]: s for s in console.get("/v1/metrics/series", window_s=300)["series"]}
        return int(now["running"]["points"][-1][1])

    before = running_now()
    expect(page.locator("figure[data-series=running] .chart-value")).to_have_text(f"{before} jobs")
    extra = [
        console.post(
            "/v1/jobs", {"name": f"chart-probe-{i}", "tenant": "sichuan", "resources": {"cpu": 1}, **LONG}
        )["id"]
        for i in range(3)
    ]
    try:
        # No reload: the view polls, so the new jobs show up as the agents start them.
        expect(page.locator("figure[data-series=running] .chart-value")).to_have_text(
            f"{before + 3} jobs", timeout=30_000
        )
        ctab.shot("charts-1280", doc=True)
    finally:
        for job_id in extra:
            console.post(f"/v1/jobs/{job_id}/cancel")

    narrow = cnarrow.open("#/charts?window=300")
    expect(narrow.locator("figure[data-series]")).to_have_count(9)
    expect(narrow.get_by_label("Window")).to_have_value("300")
    cnarrow.fits()
    cnarrow.shot("charts-390", doc=True)


# ---- 9. every view: phone width, keyboard, both languages ---------------------------------------------------------
VIEWS = [
    ("#/map", "Federation map 联邦地图"),
    ("#/clusters", "Clusters 集群"),
    (f"#/clusters/{FAILED}", "Guangdong 广东省"),
    ("#/jobs", "Jobs 作业"),
    ("#/tenants", "Tenants and quotas 租户与配额"),
    ("#/data", "Data sets and grants 数据目录与共享授权"),
    ("#/charts", "Federation over time 联邦运行趋势"),
    ("#/audit", "Audit log 审计日志"),
    ("#/drills", "Drill runs 容灾演练"),
    ("#/submit", "Submit / Plan 提交 / 预演"),
]


def test_every_view_fits_a_phone_and_is_reached_by_keyboard(cnarrow: Page) -> None:
    page = cnarrow.open("#/map")
    for fragment, heading in VIEWS:
        page.goto(f"{cnarrow.live.url}/ui{fragment}")
        expect(page.locator("h1")).to_contain_text(heading)
        expect(page.locator("h1 [lang=zh-CN]")).to_be_attached()
        page.wait_for_load_state("networkidle")
        cnarrow.fits()
    # The navigation is links in order; Tab reaches each and Enter opens it.
    page.goto(f"{cnarrow.live.url}/ui#/map")
    expect(page.locator("h1")).to_contain_text("Federation map")
    nav = page.locator("nav a[data-view]")
    expect(nav).to_have_count(9)
    page.locator("nav a[data-view=tenants]").focus()
    page.keyboard.press("Enter")
    expect(page.locator("h1")).to_contain_text("Tenants and quotas")
    expect(page.locator("nav a[aria-current=page]")).to_have_attribute("data-view", "tenants")
    expect(page.locator("h1")).to_be_focused()
