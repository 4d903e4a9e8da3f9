// Jobs: a filtered, cursor-paginated table, and one job's detail with its decision and events.
import { ApiError, get, post } from "./api.js";
import { renderDecision } from "./decision.js";
import { clear, clusterLink, h, num, PHASES, phaseBadge, TERMINAL, time, zh } from "./dom.js";

const PAGE = 50;

function clusterOptions(clusters, selected) {
  const tiers = [["national", "National"], ["province", "Provinces"], ["department", "Ministries"]];
  return tiers.map(([tier, label]) =>
    h("optgroup", { label }, clusters.filter((c) => c.tier === tier).map((c) =>
      h("option", { value: c.name, selected: selected === c.name }, `${c.name} ${c.display_name_zh || ""}`.trim()))),
  );
}

export function list(ctx, params) {
  const filters = { phase: params.get("phase") || "", tenant: params.get("tenant") || "", cluster: params.get("cluster") || "" };
  let items = [];
  let nextCursor = null;

  const phase = h("select", { id: "f-phase", name: "phase" }, h("option", { value: "" }, "All phases"),
    PHASES.map((p) => h("option", { value: p, selected: p === filters.phase }, p)));
  const tenant = h("input", { id: "f-tenant-filter", name: "tenant", type: "text", value: filters.tenant, list: "tenant-list", autocomplete: "off", spellcheck: "false" });
  const tenantList = h("datalist", { id: "tenant-list" });
  const cluster = h("select", { id: "f-cluster", name: "cluster" }, h("option", { value: "" }, "All clusters"));
  const form = h(
    "form",
    { class: "filters", role: "search", "aria-label": "Filter jobs", onsubmit: (e) => { e.preventDefault(); apply(); } },
    h("div", { class: "field" }, h("label", { for: "f-phase" }, "Phase"), phase),
    h("div", { class: "field" }, h("label", { for: "f-tenant-filter" }, "Tenant"), tenant, tenantList),
    h("div", { class: "field" }, h("label", { for: "f-cluster" }, "Cluster"), cluster),
    h("div", { class: "field buttons" }, h("button", { type: "submit", class: "primary" }, "Apply"),
      h("button", { type: "button", onclick: () => { phase.value = ""; tenant.value = ""; cluster.value = ""; apply(); } }, "Reset")),
  );
  phase.addEventListener("change", apply);
  cluster.addEventListener("change", apply);

  const count = h("p", { class: "summary-line", "aria-live": "polite" });
  const body = h("tbody");
  const more = h("button", { type: "button", class: "more", hidden: true, onclick: loadMore }, "Load more");
  const table = h(
    "table",
    { class: "stack jobs-table" },
    h("caption", { class: "visually-hidden" }, "Jobs matching the filters"),
    h("thead", {}, h("tr", {}, ["Job", "Tenant", "Phase", "Cluster", "Attempt", "Created", "Message"].map((c) => h("th", { scope: "col" }, c)))),
    body,
  );
  const el = h(
    "section",
    { class: "view jobs", "aria-labelledby": "jobs-title" },
    h("div", { class: "view-head" }, h("h1", { id: "jobs-title" }, "Jobs ", zh("作业")), h("a", { class: "button primary", href: "#/submit" }, "New job")),
    form,
    count,
    h("div", { class: "table-wrap" }, table),
    more,
  );

  function query(limit, cursor) {
    const q = new URLSearchParams({ limit: String(limit) });
    for (const [k, v] of Object.entries(filters)) if (v) q.set(k, v);
    if (cursor) q.set("cursor", cursor);
    return `/v1/jobs?${q}`;
  }

  function apply() {
    filters.phase = phase.value;
    filters.tenant = tenant.value.trim();
    filters.cluster = cluster.value;
    const q = new URLSearchParams(Object.entries(filters).filter(([, v]) => v));
    const hash = `#/jobs${q.toString() ? `?${q}` : ""}`;
    // Keep the filters in the address (shareable) without re-creating the view.
    history.replaceState(null, "", hash);
    items = [];
    ctx.refresh();
  }

  async function loadMore() {
    more.disabled = true;
    try {
      const page = await get(query(PAGE, nextCursor));
      items = items.concat(page.items);
      nextCursor = page.next_cursor;
      draw();
    } catch (err) {
      ctx.showError(err);
    } finally {
      more.disabled = false;
    }
  }

  function row(j) {
    return h(
      "tr",
      { "data-job": j.id },
      h("td", { "data-label": "Job" },
        h("span", {}, h("a", { href: `#/jobs/${encodeURIComponent(j.id)}` }, j.spec.name), h("br"), h("code", { class: "small muted" }, j.id))),
      h("td", { "data-label": "Tenant" }, j.spec.tenant),
      h("td", { "data-label": "Phase" }, phaseBadge(j.phase)),
      h("td", { "data-label": "Cluster" }, j.cluster ? clusterLink(ctx, j.cluster) : "–"),
      h("td", { "data-label": "Attempt", class: "num" }, String(j.attempt)),
      h("td", { "data-label": "Created" }, time(j.created_at)),
      h("td", { "data-label": "Message", class: "message" }, j.message || ""),
    );
  }

  function draw() {
    const focused = document.activeElement?.closest?.("tr[data-job]")?.dataset.job;
    clear(body).append(...items.map(row));
    if (focused) body.querySelector(`tr[data-job="${CSS.escape(focused)}"] a`)?.focus();
    if (!items.length) body.append(h("tr", {}, h("td", { colspan: "7", class: "empty" }, "No jobs match these filters.")));
    count.textContent = `${items.length} job${items.length === 1 ? "" : "s"} shown${nextCursor ? " · more available" : ""}`;
    more.hidden = !nextCursor;
  }

  return {
    el,
    title: "Jobs",
    async refresh() {
      const clusters = await ctx.clusters();
      if (cluster.options.length === 1) {
        cluster.append(...clusterOptions(clusters, filters.cluster));
        tenantList.append(...[...new Set(clusters.map((c) => c.tenant))].sort().map((t) => h("option", { value: t })));
      }
      // Re-read everything already shown (up to the API's page limit) so rows stay in place.
      const page = await get(query(Math.min(1000, Math.max(PAGE, items.length)), null));
      items = page.items;
      nextCursor = page.next_cursor;
      draw();
    },
  };
}

export function detail(ctx, jobId) {
  const info = h("div", { class: "job-info" });
  const decision = h("div", { class: "decision-box" }, h("p", { class: "muted" }, "Loading…"));
  const events = h("ol", { class: "timeline" });
  const title = h("h1", { id: "job-title" }, "Job ", h("code", {}, jobId));
  const el = h(
    "section",
    { class: "view job-detail", "aria-labelledby": "job-title" },
    h("p", { class: "back" }, h("a", { href: "#/jobs" }, "← All jobs")),
    title,
    info,
    h("section", { class: "card", "aria-labelledby": "decision-title" }, h("h2", { id: "decision-title" }, "Decision ", zh("调度决策")), decision),
    h("section", { class: "card", "aria-labelledby": "events-title" }, h("h2", { id: "events-title" }, "Events ", zh("事件")), events),
  );
  let job = null;
  let lastDecisionKey = null;

  async function cancel() {
    const ok = await ctx.confirm({ title: `Cancel ${job.spec.name}?`, body: `Job ${job.id} will be cancelled; this cannot be undone.`, action: "Cancel job", danger: true });
    if (!ok) return;
    try {
      await post(`/v1/jobs/${encodeURIComponent(job.id)}/cancel`);
      ctx.announce(`Cancelled ${job.id}`);
      await ctx.refresh();
    } catch (err) {
      ctx.showError(err);
    }
  }

  function drawInfo() {
    const s = job.spec;
    const r = s.resources;
    clear(title).append("Job ", s.name, " ", h("code", { class: "small muted" }, job.id));
    const rows = [
      ["Phase", phaseBadge(job.phase)],
      ["Cluster", job.cluster ? clusterLink(ctx, job.cluster) : "–"],
      ["Tenant", s.tenant],
      ["Attempt", String(job.attempt)],
      ["Resources", `${s.replicas} × (${num(r.cpu)} CPU, ${num(r.memory_gib)} GiB${r.gpu ? `, ${r.gpu} GPU` : ""})`],
      ["Inputs", s.inputs.length ? s.inputs.join(", ") : "none"],
      ["Priority", String(s.priority)],
      ["Created", time(job.created_at)],
      ["Updated", time(job.updated_at)],
      ["Message", job.message || "–"],
    ];
    clear(info).append(
      h("dl", { class: "facts" }, rows.map(([k, v]) => h("div", {}, h("dt", {}, k), h("dd", { "data-field": k.toLowerCase() }, v)))),
      TERMINAL.has(job.phase) ? null : h("button", { type: "button", class: "danger-outline", onclick: cancel }, "Cancel job"),
    );
    clear(events).append(
      ...job.events.map((e) =>
        h(
          "li",
          { "data-event": e.type },
          h("time", { datetime: e.at }, time(e.at)),
          h("div", {}, h("strong", {}, e.type), e.to_phase ? [" ", e.from_phase ? `${e.from_phase} → ` : "", phaseBadge(e.to_phase)] : null,
            e.cluster ? [" on ", ctx.clusterName(e.cluster)] : null, ` · attempt ${e.attempt}`),
          h("p", { class: "reason" }, e.reason),
        ),
      ),
    );
    if (!job.events.length) events.append(h("li", { class: "muted" }, "No events yet."));
  }

  return {
    el,
    title: `Job ${jobId}`,
    async refresh() {
      await ctx.clusters();
      job = await get(`/v1/jobs/${encodeURIComponent(jobId)}`);
      drawInfo();
      try {
        const d = await get(`/v1/jobs/${encodeURIComponent(jobId)}/decision`);
        const key = `${d.attempt}|${d.created_at}|${job.phase}|${job.attempt}|${job.cluster}`;
        if (key !== lastDecisionKey) {
          // Redraw only when the decision or the job's phase changes, so open <details> stay open.
          lastDecisionKey = key;
          clear(decision).append(renderDecision(ctx, d, { job }));
        }
      } catch (err) {
        if (!(err instanceof ApiError && err.status === 404)) throw err;
        lastDecisionKey = null;
        clear(decision).append(h("p", { class: "muted", "data-no-decision": "" }, "No scheduling decision yet: the job waits for the next scheduling cycle."));
      }
    },
  };
}
