"""The operator dashboard in a real browser against a real controller: federation tiles and
cordoning, submitting a job and reading its decision, field errors from problem+json, and a plan
that creates nothing. Each view is also photographed at 1280 and 390 px into reports/ui/."""

from __future__ import annotations

import re
import time
from typing import Any

from playwright.sync_api import expect

from tests.ui.conftest import ADMIN_TOKEN, WAIT_MS, WIDE, Live, Page

CLUSTERS = 42


def test_federation_shows_every_cluster_and_cordons_one(tab: Page, narrow_tab: Page) -> None:
    # Some load, so the bars show something: big jobs pinned to three clusters.
    load = {"prov-guangdong": 1000, "national-primary": 1500, "prov-sichuan": 2300}  # cores a replica
    for i, (where, cpu) in enumerate(load.items()):
        job = {
            "name": f"load-{i}",
            "tenant": "national",
            "resources": {"cpu": cpu, "gpu": 2 * (i + 1)},
            "replicas": 2,
            "constraints": {"allow_clusters": [where]},
        }
        assert tab.live.http.post("/v1/jobs", json=job).status_code == 201
    assert tab.live.controller.schedule_pending() == 3
    page = tab.open("#/federation")
    tiles = page.locator("article.tile")
    expect(tiles).to_have_count(CLUSTERS)
    expect(page.locator("section[data-tier=national] article.tile")).to_have_count(2)
    expect(page.locator("section[data-tier=province] article.tile")).to_have_count(32)
    expect(page.locator("section[data-tier=department] article.tile")).to_have_count(8)
    expect(page.locator("[data-health=Ready]")).to_have_count(CLUSTERS)
    hubei = page.locator("article[data-cluster=prov-hubei]")
    expect(hubei).to_contain_text("湖北")
    expect(hubei.get_by_role("img", name=re.compile(r"^CPU 0 \/ [\d,]+ cores allocated$"))).to_be_visible()
    tab.shot("federation-1280", doc=True)

    hubei.get_by_role("button", name="Cordon prov-hubei").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Cordon prov-hubei?")
    tab.shot("federation-confirm-1280", full_page=False)
    dialog.get_by_role("button", name="Cordon").click()
    expect(hubei.locator(".state-cordoned")).to_have_text("Cordoned")
    expect(hubei.get_by_role("button", name="Uncordon prov-hubei")).to_be_visible()
    expect(hubei.locator("[data-health]")).to_have_attribute("data-health", "Ready")
    expect(page.locator(".summary-line")).to_contain_text("42 Ready")
    expect(page.locator(".summary-line")).to_contain_text("1 cordoned")

    api = tab.live.get("/v1/clusters/prov-hubei")
    assert api["cordoned"] is True and api["health"] == "Ready"
    others = [c for c in tab.live.get("/v1/clusters")["items"] if c["name"] != "prov-hubei"]
    assert not any(c["cordoned"] for c in others)

    # Auto-refresh follows the API: an uncordon made elsewhere shows up without a reload.
    assert tab.live.http.post("/v1/clusters/prov-hubei/uncordon").status_code == 200
    expect(hubei.get_by_role("button", name="Cordon prov-hubei")).to_be_visible(timeout=WAIT_MS)
    expect(page.locator(".summary-line")).to_contain_text("0 cordoned")

    narrow = narrow_tab.open("#/federation")
    expect(narrow.locator("article.tile")).to_have_count(CLUSTERS)
    narrow_tab.shot("federation-390", doc=True)


def test_submitting_the_form_creates_a_job_and_its_decision_is_explained(tab: Page, narrow_tab: Page) -> None:
    page = tab.open("#/submit")
    keys: list[str | None] = []
    page.on(
        "request",
        lambda r: keys.append(r.headers.get("idempotency-key")) if r.url.endswith("/v1/jobs") else None,
    )
    page.get_by_label("Tenant").fill("guangdong")
    page.get_by_label("Job name").fill("ui-census-report")
    page.get_by_label("CPU (cores)").fill("8")
    page.get_by_label("Memory (GiB)").fill("32")
    page.get_by_label("Replicas (gang)").fill("2")
    expect(page.locator("#f-inputs option")).to_have_count(1)
    page.get_by_label("Input data sets").select_option(["gd-census-sample"])
    page.get_by_label("Never these clusters").select_option(["national-primary"])
    page.get_by_role("button", name=re.compile("^Submit")).click()

    created = page.locator("[data-created]")
    expect(created).to_be_visible()
    job_id = created.get_attribute("data-created")
    assert keys and keys[0] and keys[0].startswith("ui-"), keys

    job = tab.live.get(f"/v1/jobs/{job_id}")
    assert job["phase"] == "Pending"
    assert job["spec"]["resources"] == {"cpu": 8.0, "memory_gib": 32.0, "gpu": 0, "gpu_milli": 0}
    assert job["spec"]["replicas"] == 2 and job["spec"]["inputs"] == ["gd-census-sample"]
    assert job["spec"]["constraints"]["deny_clusters"] == ["national-primary"]
    assert [j["id"] for j in tab.live.get("/v1/jobs")["items"]] == [job_id]

    created.click()
    expect(page.locator("[data-no-decision]")).to_be_visible()
    assert tab.live.controller.schedule_pending() == 1
    cluster = tab.live.get(f"/v1/jobs/{job_id}")["cluster"]
    assert cluster and cluster != "national-primary"

    page.reload()  # or wait for the auto-refresh; a reload is quicker and just as real
    decision = page.locator(".decision")
    expect(decision).to_have_attribute("data-decision", cluster)
    expect(decision.locator("[data-chosen]")).to_contain_text(cluster)
    expect(decision.locator("[data-summary]")).to_contain_text(f"chose {cluster}")
    chosen_row = decision.locator(f"tr[data-cluster={cluster}]")
    expect(chosen_row).to_have_class(re.compile("is-chosen"))
    expect(chosen_row.locator("td.score")).not_to_have_count(0)
    expect(chosen_row.get_by_role("img", name=re.compile(r"^locality score"))).to_be_visible()
    expect(decision.locator(".reject-groups li[data-plugin=constraints]").first).to_contain_text(
        "1 constraints"
    )
    expect(page.locator(".timeline li[data-event=Scheduled]")).to_contain_text(cluster)
    expect(page.locator("dd[data-field=phase]")).to_have_text("Scheduled")
    tab.shot("job-detail-1280", doc=True)

    page.goto(f"{tab.live.url}/ui#/jobs?tenant=guangdong")
    row = page.locator(f"tr[data-job='{job_id}']")
    expect(row).to_contain_text("Scheduled")
    expect(row).to_contain_text(cluster)
    tab.shot("jobs-1280", doc=True)

    narrow = narrow_tab.open(f"#/jobs/{job_id}")
    expect(narrow.locator(".decision")).to_have_attribute("data-decision", cluster)
    narrow_tab.shot("job-detail-390", doc=True)
    narrow_tab.open("#/jobs")
    expect(narrow.locator(f"tr[data-job='{job_id}']")).to_be_visible()
    narrow_tab.shot("jobs-390", doc=True)


def test_jobs_filters_and_load_more_follow_the_cursor(tab: Page) -> None:
    for i in range(55):
        tenant = "hubei" if i % 5 == 0 else "sichuan"
        body = {"name": f"batch-{i}", "tenant": tenant, "resources": {"cpu": 1}}
        assert tab.live.http.post("/v1/jobs", json=body).status_code == 201
    page = tab.open("#/jobs")
    rows = page.locator("tr[data-job]")
    expect(rows).to_have_count(50)
    page.get_by_role("button", name="Load more").click()
    expect(rows).to_have_count(55)
    expect(page.get_by_role("button", name="Load more")).to_be_hidden()

    page.get_by_label("Tenant").fill("hubei")
    page.get_by_role("button", name="Apply").click()
    expect(rows).to_have_count(11)
    page.get_by_label("Phase").select_option("Running")
    expect(page.locator("td.empty")).to_have_text("No jobs match these filters.")


def test_an_invalid_form_shows_the_field_error_from_problem_json(tab: Page, narrow_tab: Page) -> None:
    for t in (tab, narrow_tab):
        page = t.open("#/submit")
        page.get_by_label("Tenant").fill("hubei")
        page.get_by_label("Job name").fill("zero-cpu")
        page.get_by_label("CPU (cores)").fill("0")
        page.get_by_role("button", name=re.compile("^Submit")).click()
        error = page.locator("#f-cpu-error")
        expect(error).to_be_visible()
        expect(error).to_contain_text("greater than 0")
        expect(page.get_by_label("CPU (cores)")).to_have_attribute("aria-invalid", "true")
        expect(page.locator("#form-errors")).to_contain_text("resources.cpu")
        expect(page.locator("#f-name-error")).to_be_hidden()
        t.shot(f"submit-error-{page.viewport_size['width']}")
    assert tab.live.get("/v1/jobs")["items"] == []


def test_plan_shows_a_decision_and_creates_nothing(tab: Page, narrow_tab: Page) -> None:
    for t in (tab, narrow_tab):
        page = t.open("#/submit")
        page.get_by_label("Tenant").fill("hubei")
        page.get_by_label("Job name").fill("what-if")
        page.get_by_label("CPU (cores)").fill("16")
        page.get_by_label("Allow only these clusters").select_option(["prov-hubei", "prov-hunan"])
        page.get_by_role("button", name=re.compile("^Plan")).click()
        decision = page.locator(".decision")
        expect(decision).to_be_visible()
        chosen = decision.get_attribute("data-decision")
        assert chosen in ("prov-hubei", "prov-hunan")
        expect(decision.locator("tr[data-cluster]")).to_have_count(2)
        expect(decision.locator(".reject-groups li[data-plugin=constraints]")).to_contain_text(
            "40 constraints"
        )
        expect(page.locator(".result")).to_contain_text("nothing was created")
        t.shot(f"plan-{page.viewport_size['width']}", doc=True)
    assert tab.live.get("/v1/jobs")["items"] == []
    assert tab.live.controller.schedule_pending() == 0
    assert all(c["allocated"]["cpu"] == 0 for c in tab.live.get("/v1/clusters")["items"])


def test_auto_refresh_pauses_while_the_tab_is_hidden(tab: Page) -> None:
    """Playwright's fake clock drives the page's timers, and an init script counts the page's
    polls of /v1/clusters (the fetch starts synchronously inside the timer), so nothing here
    waits on the wall clock."""
    page = tab.page
    page.clock.install()
    page.add_init_script(
        """window.__polls = 0;
        window.__shown = 0;
        const realFetch = window.fetch;
        window.fetch = (url, init) => {
            if (String(url).endsWith('/v1/clusters')) window.__polls += 1;
            return realFetch(url, init);
        };
        document.addEventListener('DOMContentLoaded', () => {
            new MutationObserver(() => { window.__shown += 1; }).observe(
                document.getElementById('refresh-state'),
                {childList: true, characterData: true, subtree: true});
        });"""
    )
    tab.open("#/federation")
    expect(page.locator("article.tile")).to_have_count(CLUSTERS)
    expect(page.locator("#refresh-state")).to_contain_text("Every 5 s")

    def polls() -> int:
        n: int = page.evaluate("window.__polls")
        return n

    def set_hidden(hidden: bool) -> None:
        page.evaluate(
            """hidden => {
                Object.defineProperty(document, 'hidden', {value: hidden, configurable: true});
                Object.defineProperty(document, 'visibilityState',
                    {value: hidden ? 'hidden' : 'visible', configurable: true});
                document.dispatchEvent(new Event('visibilitychange'));
            }""",
            hidden,
        )

    before, shown = polls(), page.evaluate("window.__shown")
    page.clock.run_for(5_100)
    assert polls() == before + 1, "a visible tab refreshes every 5 s"
    # The refresh's requests run on the real network; it is over when it shows the state again.
    # Not waited for, the refresh on showing the tab below could find it still in flight and
    # (rightly) wait for it instead of polling again. Polled from here on the wall clock: the
    # page's own timers are the fake clock's.
    deadline = time.monotonic() + 10
    while page.evaluate("window.__shown") <= shown and time.monotonic() < deadline:
        time.sleep(0.02)
    assert page.evaluate("window.__shown") > shown, "the poll's refresh finished"
    expect(page.locator("#refresh-state")).to_contain_text("updated")

    set_hidden(True)
    expect(page.locator("#refresh-state")).to_contain_text("Paused while hidden")
    hidden_from = polls()
    page.clock.run_for(30_000)
    assert polls() == hidden_from, "a hidden tab does not poll"

    set_hidden(False)
    assert polls() == hidden_from + 1, "showing the tab again refreshes at once"
    expect(page.locator("#refresh-state")).to_contain_text("Every 5 s")


def test_escape_cancels_a_drain(tab: Page) -> None:
    page = tab.open("#/federation")
    page.get_by_role("button", name="Drain prov-sichuan").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("every job on it sent back to Pending")
    expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(page.get_by_role("button", name="Drain prov-sichuan")).to_be_visible()
    api = tab.live.get("/v1/clusters/prov-sichuan")
    assert api["cordoned"] is False and api["draining"] is False


def test_with_an_operator_token_the_dashboard_asks_for_it_and_uses_it(
    browser: Any, live_with_token: Live
) -> None:
    t = Page(browser, live_with_token, WIDE)
    try:
        page = t.open("#/federation")
        expect(page.locator("#banner")).to_contain_text("bearer token")
        expect(page.locator("article.tile")).to_have_count(0)
        page.get_by_text("Token", exact=True).click()
        page.get_by_label("Bearer token").fill(ADMIN_TOKEN)
        page.get_by_role("button", name="Save").click()
        expect(page.locator("article.tile")).to_have_count(CLUSTERS)
        expect(page.locator("#banner")).to_be_hidden()
        assert page.evaluate("sessionStorage.getItem('yiwang.token')") == ADMIN_TOKEN
        page.reload()  # kept for the tab's session
        expect(page.locator("article.tile")).to_have_count(CLUSTERS)
    finally:
        t.close()
    assert not t.errors, f"the dashboard logged errors: {t.errors}"
