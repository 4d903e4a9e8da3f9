// Drill runs: the JSON reports `yiwang drill run` writes, read from the controller's configured
// folder (GET /v1/drills, YIWANG_DRILL_REPORTS_DIR) or opened from a file in this browser tab
// (read here, never sent anywhere). Each run: passed or failed, budgets met and missed, and per
// fault its detection time and RTO; a run's page shows every budget against what was measured.
import { ApiError, get } from "./api.js";
import { ago, clear, fill, h, num, seconds, td, th, time, zh } from "./dom.js";

const uploaded = new Map(); // "upload-<n>" -> report, for this tab's session
let uploads = 0;
const BUDGET_TEXT = {
  detection_s: "Detection time", rto_s: "Recovery time (RTO)", jobs_lost: "Jobs lost", jobs_run_twice: "Jobs run twice",
  gbt20988_level: "GB/T 20988 level", residency_violations: "Residency violations", stale_reports_accepted: "Stale reports accepted",
  stale_attempts_running: "Stale attempts running", late_self_stops: "Late self-stops", early_replacements: "Early re-placements",
};

/** The summary the API computes, for a report opened from a file. */
export function summarise(name, report) {
  if (!report || typeof report !== "object" || !Array.isArray(report.results) || typeof report.scenario !== "string") {
    throw new Error("not a drill report (it needs scenario and results)");
  }
  const results = report.results.filter((r) => r && typeof r.name === "string");
  const missed = results.filter((r) => !r.passed && !r.skipped).length;
  const met = results.filter((r) => r.passed && !r.skipped).length;
  return {
    ...report,
    name,
    results,
    timeline: Array.isArray(report.timeline) ? report.timeline : [],
    passed: typeof report.passed === "boolean" ? report.passed : !report.error && missed === 0,
    budgets_met: met,
    budgets_missed: missed,
  };
}

function verdict(d) {
  return d.passed
    ? h("span", { class: "badge verdict-passed", "data-verdict": "passed" }, "Passed ", zh("通过", "zh-inline"))
    : h("span", { class: "badge verdict-failed", "data-verdict": "failed" }, d.error ? "Error " : "Failed ", zh(d.error ? "出错" : "未通过", "zh-inline"));
}

function measured(results, name) {
  const r = results.find((x) => x.name === name);
  return r && r.measured !== null && r.measured !== undefined ? r.measured : null;
}

function runRow(d, source) {
  const det = measured(d.results, "detection_s");
  const rto = measured(d.results, "rto_s");
  return h(
    "tr",
    { "data-drill": d.name, "data-passed": String(d.passed) },
    th({ scope: "row", "data-label": "Drill" }, h("a", { href: `#/drills/${encodeURIComponent(d.name)}` }, d.scenario),
      h("span", { class: "small muted block" }, source === "upload" ? `${d.name.replace(/^upload-\d+:/, "")} (opened in this tab)` : `${d.name}.json`)),
    td({ "data-label": "Started" }, time(d.started_at), h("span", { class: "small muted block" }, ago(d.started_at))),
    td({ "data-label": "Result" }, verdict(d)),
    td({ "data-label": "Budgets", "data-budgets": `${d.budgets_met}/${d.budgets_missed}` },
      h("span", { class: "met" }, `${d.budgets_met} met`), " · ", h("span", { class: d.budgets_missed ? "missed" : "" }, `${d.budgets_missed} missed`)),
    td({ "data-label": "Detection", class: "num" }, det === null ? "–" : `${num(det, 2)} s`),
    td({ "data-label": "RTO", class: "num" }, rto === null ? "–" : `${num(rto, 2)} s`),
    td({ "data-label": "Duration", class: "num" }, seconds(d.duration_s)),
  );
}

export function list(ctx) {
  const body = h("tbody");
  const note = h("p", { class: "muted small" });
  const summary = h("p", { class: "summary-line" });
  const unreadable = h("div");
  const file = h("input", { type: "file", id: "drill-file", accept: ".json,application/json", multiple: true });
  const fileMsg = h("p", { class: "small", "aria-live": "polite", id: "drill-file-msg" });
  file.addEventListener("change", async () => {
    const done = [];
    for (const f of file.files) {
      try {
        const report = JSON.parse(await f.text());
        uploads += 1;
        const name = `upload-${uploads}:${f.name.replace(/\.json$/i, "")}`;
        uploaded.set(name, summarise(name, report));
        done.push(`${f.name}: ${report.scenario}`);
      } catch (err) {
        done.push(`${f.name}: not a drill report (${err.message})`);
      }
    }
    fileMsg.textContent = `Opened ${done.join("; ")}.`;
    file.value = "";
    ctx.refresh();
  });
  const el = h(
    "section",
    { class: "view drills", "aria-labelledby": "drills-title" },
    h("div", { class: "view-head" }, h("h1", { id: "drills-title" }, "Drill runs ", zh("容灾演练")),
      h("div", { class: "filter" }, h("label", { for: "drill-file" }, "Open a report file"), file)),
    fileMsg,
    summary,
    h("div", { class: "table-wrap" }, h("table", { class: "stack drills-table" },
      h("caption", { class: "visually-hidden" }, "Drill runs, newest first, with budgets met and missed"),
      h("thead", {}, h("tr", {}, ["Drill", "Started", "Result", "Budgets", "Detection", "RTO", "Duration"].map((c) => h("th", { scope: "col" }, c)))),
      body)),
    note,
    unreadable,
  );

  return {
    el,
    title: "Drill runs",
    async refresh() {
      let data = { folder: null, items: [], unreadable: [] };
      try {
        data = await get("/v1/drills");
      } catch (err) {
        if (!(err instanceof ApiError && err.status === 403)) throw err;
        note.textContent = "Reading the controller's drill reports needs an operator token; files opened here still show.";
      }
      const runs = [...[...uploaded.values()].map((d) => [d, "upload"]), ...data.items.map((d) => [d, "folder"])];
      fill(body, ...runs.map(([d, source]) => runRow(d, source)));
      if (!runs.length) body.append(h("tr", {}, td({ colspan: "7", class: "empty" }, "No drill report yet.")));
      const failed = runs.filter(([d]) => !d.passed).length;
      summary.textContent = `${runs.length} run${runs.length === 1 ? "" : "s"} · ${runs.length - failed} passed · ${failed} failed`;
      if (data.folder) note.textContent = `Reports read from ${data.folder} on the controller (yiwang drill run --out ${data.folder}).`;
      else if (!note.textContent) note.textContent = "The controller has no drill reports folder (set YIWANG_DRILL_REPORTS_DIR to where `yiwang drill run --out` writes); open report files above instead.";
      clear(unreadable);
      if (data.unreadable.length) {
        unreadable.append(h("details", {}, h("summary", {}, `${data.unreadable.length} file(s) in the folder are not drill reports`),
          h("ul", {}, data.unreadable.map((u) => h("li", {}, h("code", {}, u.file), `: ${u.reason}`)))));
      }
    },
  };
}

export function detail(ctx, name) {
  const title = h("h1", { id: "drill-title" }, "Drill ", h("code", {}, name));
  const head = h("div", { class: "drill-head" });
  const budgets = h("tbody");
  const faults = h("div", { class: "faults" });
  const jobs = h("dl", { class: "facts" });
  const el = h(
    "section",
    { class: "view drill-detail", "aria-labelledby": "drill-title" },
    h("p", { class: "back" }, h("a", { href: "#/drills" }, "← All drill runs")),
    title,
    head,
    h("section", { class: "card", "aria-labelledby": "budgets-title" }, h("h2", { id: "budgets-title" }, "Budgets ", zh("指标预算")),
      h("div", { class: "table-wrap" }, h("table", { class: "stack budgets-table" },
        h("caption", { class: "visually-hidden" }, "Each budget of the drill against what was measured"),
        h("thead", {}, h("tr", {}, ["Budget", "Limit", "Measured", "Result", "Message"].map((c) => h("th", { scope: "col" }, c)))),
        budgets))),
    h("section", { class: "card", "aria-labelledby": "faults-title" }, h("h2", { id: "faults-title" }, "Faults ", zh("故障注入")), faults),
    h("section", { class: "card", "aria-labelledby": "drill-jobs-title" }, h("h2", { id: "drill-jobs-title" }, "Jobs ", zh("作业")), jobs),
  );

  function value(v, unit) {
    if (v === null || v === undefined) return "–";
    return unit === "s" ? `${num(v, 2)} s` : `${num(v, 2)} ${unit}`;
  }

  function draw(d) {
    fill(title, "Drill ", d.scenario, " ", h("code", { class: "small muted" }, d.name));
    fill(head, 
      h("p", {}, verdict(d), ` ${d.budgets_met} budget${d.budgets_met === 1 ? "" : "s"} met, ${d.budgets_missed} missed · started ${time(d.started_at)} · ran ${seconds(d.duration_s)}`),
      d.error ? h("p", { class: "notice error" }, `The drill did not complete: ${d.error}`) : null,
      d.federation && d.federation.clusters ? h("p", { class: "muted small" },
        `${d.federation.mode || "embedded"} federation of ${d.federation.clusters} clusters (${d.federation.executor || "simulated"} executor, time scale ${d.federation.time_scale}), lease ${d.federation.lease_s} s, heartbeat grace ${d.federation.heartbeat_grace_s} s`) : null,
      d.source ? h("p", { class: "muted small" }, `Scenario ${d.source}`) : null,
    );
    fill(budgets, ...d.results.map((r) => h(
      "tr",
      { "data-budget": r.name, class: r.passed || r.skipped ? "" : "is-missed" },
      th({ scope: "row", "data-label": "Budget" }, BUDGET_TEXT[r.name] || r.name, h("code", { class: "small muted block" }, r.name)),
      td({ "data-label": "Limit", class: "num" }, value(r.budget, r.unit)),
      td({ "data-label": "Measured", class: "num" }, value(r.measured, r.unit)),
      td({ "data-label": "Result" }, r.skipped
        ? h("span", { class: "badge phase-cancelled" }, "Skipped")
        : r.passed ? h("span", { class: "badge verdict-passed", "data-result": "met" }, "Met ", zh("达标", "zh-inline"))
          : h("span", { class: "badge verdict-failed", "data-result": "missed" }, "Missed ", zh("未达标", "zh-inline"))),
      td({ "data-label": "Message", class: "message" }, r.message || ""),
    )));
    clear(faults);
    if (!d.timeline.length) faults.append(h("p", { class: "muted" }, "No fault was injected."));
    faults.append(...d.timeline.map((f, i) => {
      const moved = Object.values(f.moved_to || {});
      const dest = {};
      for (const c of moved) dest[c] = (dest[c] || 0) + 1;
      return h("div", { class: "fault", "data-fault": String(i) },
        h("h3", {}, `${i + 1}. ${f.fault}`, f.cluster ? [" on ", h("code", {}, f.cluster)] : null,
          f.injected_s !== null && f.injected_s !== undefined ? h("span", { class: "muted small" }, ` at ${seconds(f.injected_s)}`) : null),
        f.skipped ? h("p", { class: "muted" }, `Skipped: ${f.skipped}`) : h("dl", { class: "facts" },
          h("div", {}, h("dt", {}, "Detected after"), h("dd", { "data-field": "detection" }, f.detection_s === null || f.detection_s === undefined ? "–" : `${num(f.detection_s, 2)} s`)),
          h("div", {}, h("dt", {}, "Every affected job running again after (RTO)"), h("dd", { "data-field": "rto" }, f.rto_s === null || f.rto_s === undefined ? "–" : `${num(f.rto_s, 2)} s`)),
          h("div", {}, h("dt", {}, "Affected jobs"), h("dd", {}, `${f.affected_jobs ?? "–"} (${f.recovered_jobs ?? 0} recovered${f.finished_in_place ? `, ${f.finished_in_place} finished in place` : ""})`)),
          h("div", {}, h("dt", {}, "Moved to"), h("dd", { "data-field": "moved" }, moved.length ? Object.entries(dest).map(([c, n]) => `${c} ×${n}`).join(", ") : "–")),
          f.waiting_for_residency && f.waiting_for_residency.length
            ? h("div", {}, h("dt", {}, "Waiting (residency)"), h("dd", {}, `${f.waiting_for_residency.length} job(s) may not move`)) : null));
    }));
    const j = d.jobs || {};
    fill(jobs, ...Object.entries(j).map(([k, v]) => h("div", {}, h("dt", {}, k.replaceAll("_", " ")), h("dd", {}, typeof v === "object" ? Object.entries(v).map(([a, b]) => `${a} ${b}`).join(", ") : String(v)))));
  }

  return {
    el,
    title: `Drill ${name}`,
    async refresh() {
      const d = uploaded.get(name) || (await get(`/v1/drills/${encodeURIComponent(name)}`));
      draw(d);
    },
  };
}
