// The audit log (GET /v1/audit, operators and admins): newest first, filtered by action, actor,
// target and time; the filters are kept in the address (#/audit?action=cluster.cordoned), 50 rows
// at a time with "Load more" following next_cursor.
import { get } from "./api.js";
import { fill, h, td, time, zh } from "./dom.js";

const PAGE = 50;
const ACTIONS = [
  "cluster.cordoned", "cluster.uncordoned", "cluster.drained", "cluster.registered", "cluster.deleted",
  "job.submitted", "job.cancelled", "placement.decided",
  "dataset.registered", "grant.requested", "grant.approved", "grant.rejected",
  "policy.changed", "token.issued", "token.revoked",
  "auth.failed", "access.denied", "audit.sealed",
];

/** A target as a link where the dashboard has a page for it. */
function targetLink(target) {
  const [kind, id] = target.split("/", 2);
  const href = { cluster: `#/clusters/${encodeURIComponent(id)}`, job: `#/jobs/${encodeURIComponent(id)}`, dataset: `#/data?focus=${encodeURIComponent(id)}` }[kind];
  return href && id ? h("a", { href }, target) : h("span", {}, target);
}

function detailText(detail) {
  return Object.entries(detail || {})
    .filter(([, v]) => v !== null && v !== undefined && v !== "")
    .map(([k, v]) => `${k}=${typeof v === "object" ? JSON.stringify(v) : v}`)
    .join(" · ");
}

/** datetime-local value (browser time) -> ISO instant, and back. */
function toIso(local) {
  if (!local) return "";
  const d = new Date(local);
  return Number.isNaN(d.getTime()) ? "" : d.toISOString();
}
function toLocal(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

export function create(ctx, params) {
  const filters = {
    action: params.get("action") || "",
    actor: params.get("actor") || "",
    target: params.get("target") || "",
    since: params.get("since") || "",
    // Placement decisions (one per scheduling attempt) outnumber everything else: hidden unless asked for.
    placements: params.get("placements") === "1" ? "1" : "",
  };
  let items = [];
  let next = null;
  const action = h("select", { id: "a-action", name: "action" }, h("option", { value: "" }, "All actions"),
    ACTIONS.map((a) => h("option", { value: a, selected: a === filters.action }, a)));
  if (filters.action && !ACTIONS.includes(filters.action)) action.append(h("option", { value: filters.action, selected: true }, filters.action));
  const actor = h("input", { id: "a-actor", name: "actor", type: "text", value: filters.actor, autocomplete: "off", spellcheck: "false", placeholder: "token id, scheduler…" });
  const target = h("input", { id: "a-target", name: "target", type: "text", value: filters.target, autocomplete: "off", spellcheck: "false", placeholder: "cluster/prov-hubei" });
  const since = h("input", { id: "a-since", name: "since", type: "datetime-local", value: toLocal(filters.since) });
  const placements = h("input", { id: "a-placements", name: "placements", type: "checkbox", checked: filters.placements === "1" });
  placements.addEventListener("change", apply);
  const form = h(
    "form",
    { class: "filters audit-filters", role: "search", "aria-label": "Filter the audit log", onsubmit: (e) => { e.preventDefault(); apply(); } },
    h("div", { class: "field" }, h("label", { for: "a-action" }, "Action"), action),
    h("div", { class: "field" }, h("label", { for: "a-actor" }, "Actor"), actor),
    h("div", { class: "field" }, h("label", { for: "a-target" }, "Target"), target),
    h("div", { class: "field" }, h("label", { for: "a-since" }, "Since"), since),
    h("div", { class: "field buttons" }, h("button", { type: "submit", class: "primary" }, "Apply"),
      h("button", { type: "button", onclick: () => { action.value = ""; actor.value = ""; target.value = ""; since.value = ""; placements.checked = false; apply(); } }, "Reset")),
    h("label", { class: "check wide", for: "a-placements" }, placements, " Include placement decisions (the scheduler's, one per attempt)"),
  );
  action.addEventListener("change", apply);
  const count = h("p", { class: "summary-line", "aria-live": "polite" });
  const body = h("tbody");
  const more = h("button", { type: "button", class: "more", hidden: true, onclick: loadMore }, "Load more");
  const el = h(
    "section",
    { class: "view audit", "aria-labelledby": "audit-title" },
    h("div", { class: "view-head" }, h("h1", { id: "audit-title" }, "Audit log ", zh("审计日志"))),
    h("p", { class: "muted small" }, "Append-only, hash-chained (SM3): who submitted, changed or cancelled what, and every placement decision. Newest first."),
    form,
    count,
    h("div", { class: "table-wrap" }, h("table", { class: "stack audit-table" },
      h("caption", { class: "visually-hidden" }, "Audit log entries matching the filters, newest first"),
      h("thead", {}, h("tr", {}, ["Time", "Actor", "Action", "Target", "Detail"].map((c) => h("th", { scope: "col" }, c)))),
      body)),
    more,
  );

  function query(limit, cursor) {
    const q = new URLSearchParams({ limit: String(limit), order: "desc" });
    for (const [k, v] of Object.entries(filters)) if (v && k !== "placements") q.set(k, v);
    if (!filters.placements && filters.action !== "placement.decided") q.set("exclude_action", "placement.decided");
    if (cursor) q.set("cursor", cursor);
    return `/v1/audit?${q}`;
  }

  function apply() {
    filters.action = action.value;
    filters.actor = actor.value.trim();
    filters.target = target.value.trim();
    filters.since = toIso(since.value);
    filters.placements = placements.checked ? "1" : "";
    const q = new URLSearchParams(Object.entries(filters).filter(([, v]) => v));
    history.replaceState(null, "", `#/audit${q.toString() ? `?${q}` : ""}`);
    items = [];
    ctx.refresh();
  }

  async function loadMore() {
    more.disabled = true;
    try {
      const page = await get(query(PAGE, next));
      items = items.concat(page.items);
      next = page.next_cursor;
      draw();
    } catch (err) {
      ctx.showError(err);
    } finally {
      more.disabled = false;
    }
  }

  function draw() {
    fill(body, ...items.map((a) => h(
      "tr",
      { "data-audit": String(a.id), "data-action": a.action },
      td({ "data-label": "Time" }, h("time", { datetime: a.at }, time(a.at))),
      td({ "data-label": "Actor" }, h("code", {}, a.actor), h("span", { class: "small muted" }, ` ${a.role}${a.tenant ? ` · ${a.tenant}` : ""}`)),
      td({ "data-label": "Action" }, h("strong", {}, a.action)),
      td({ "data-label": "Target" }, targetLink(a.target)),
      td({ "data-label": "Detail", class: "message" }, detailText(a.detail)),
    )));
    if (!items.length) body.append(h("tr", {}, td({ colspan: "5", class: "empty" }, "No audit entry matches these filters.")));
    count.textContent = `${items.length} entr${items.length === 1 ? "y" : "ies"} shown${next ? " · more available" : ""}`;
    more.hidden = !next;
  }

  return {
    el,
    title: "Audit log",
    async refresh() {
      // Re-read what is shown (newest first), so new entries appear at the top.
      const page = await get(query(Math.min(1000, Math.max(PAGE, items.length)), null));
      items = page.items;
      next = page.next_cursor;
      draw();
    },
  };
}
