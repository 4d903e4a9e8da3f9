// Data sets and grants: the catalogue (classification under the Data Security Law, owner, size,
// the clusters holding a copy) with each data set's residency rule explained on request, and the
// sharing requests (grants) with Approve / Reject for the data set's owner (a tenant token) or an
// admin. GET /v1/datasets, /v1/datasets/{id}/residency, /v1/grants.
import { get, post } from "./api.js";
import { ago, bytes, classBadge, clear, clusterLink, fill, h, td, th, time, zh } from "./dom.js";

const RULE = {
  none: { text: "never moves", zh: "不出域" },
  owner_or_national: { text: "owner or national nodes", zh: "属主或国家节点" },
  anywhere: { text: "may move", zh: "可流动" },
};
const STATUS = { pending: ["Pending", "待审批"], approved: ["Approved", "已批准"], rejected: ["Rejected", "已拒绝"] };

export function create(ctx, params) {
  const focus = params.get("focus");
  let statusFilter = params.get("status") || "";
  const open = new Set(focus ? [focus] : []); // data sets whose residency is shown
  const explained = new Map();
  const catalogue = h("tbody");
  const grants = h("tbody");
  const count = h("p", { class: "summary-line" });
  const grantCount = h("p", { class: "summary-line" });
  const status = h("select", { id: "grant-status" }, h("option", { value: "" }, "All"),
    Object.entries(STATUS).map(([k, [t]]) => h("option", { value: k, selected: k === statusFilter }, t)));
  status.addEventListener("change", () => {
    statusFilter = status.value;
    history.replaceState(null, "", statusFilter ? `#/data?status=${statusFilter}` : "#/data");
    ctx.refresh();
  });
  const el = h(
    "section",
    { class: "view data", "aria-labelledby": "data-title" },
    h("div", { class: "view-head" }, h("h1", { id: "data-title" }, "Data sets and grants ", zh("数据目录与共享授权"))),
    h("section", { class: "card", "aria-labelledby": "catalogue-title" },
      h("h2", { id: "catalogue-title" }, "Catalogue ", zh("数据目录")),
      count,
      h("div", { class: "table-wrap" }, h("table", { class: "stack catalogue-table" },
        h("caption", { class: "visually-hidden" }, "Data sets with classification, owner, size, copies and residency rule"),
        h("thead", {}, h("tr", {}, ["Data set", "Classification", "Owner", "Size", "Copies", "Residency"].map((c) => h("th", { scope: "col" }, c)))),
        catalogue))),
    h("section", { class: "card", "aria-labelledby": "grants-title" },
      h("div", { class: "view-head" }, h("h2", { id: "grants-title" }, "Sharing requests ", zh("共享授权申请")),
        h("div", { class: "filter" }, h("label", { for: "grant-status" }, "Status"), status)),
      grantCount,
      h("div", { class: "table-wrap" }, h("table", { class: "stack grants-table" },
        h("caption", { class: "visually-hidden" }, "Grant requests: which tenant asks to read which data set, and the owner's decision"),
        h("thead", {}, h("tr", {}, ["Data set", "Requested by", "Owner", "Status", "Requested", "Reason", "Decision"].map((c) => h("th", { scope: "col" }, c)))),
        grants))),
  );

  async function toggle(id, button) {
    if (open.has(id)) open.delete(id);
    else open.add(id);
    button.setAttribute("aria-expanded", String(open.has(id)));
    await ctx.refresh();
    el.querySelector(`tr[data-dataset="${CSS.escape(id)}"] button[data-explain]`)?.focus();
  }

  function residencyRow(d) {
    const r = explained.get(d.id);
    if (!r) return h("tr", { class: "residency-row" }, td({ colspan: "6", class: "full" }, h("p", { class: "muted" }, "Loading…")));
    return h("tr", { class: "residency-row", "data-residency": d.id },
      td({ colspan: "6", class: "full" },
        h("div", { class: "residency" },
          h("p", { "data-explanation": "" }, r.explanation),
          h("p", { lang: "zh-CN", class: "zh-block" }, r.explanation_zh),
          h("p", { class: "small" }, h("strong", {}, `May run on ${r.may_run_on.length} of ${r.clusters_total} clusters: `),
            r.may_run_on.length === r.clusters_total ? "every cluster" : r.may_run_on.flatMap((c, i) => [i ? ", " : "", clusterLink(ctx, c)])),
          h("p", { class: "small muted" }, `Rule ${r.rule}; legal floor ${r.legal_floor}${r.tightened ? " (the policy is stricter)" : ""}.`))));
  }

  function datasetRow(d) {
    const expanded = open.has(d.id);
    const button = h("button", { type: "button", class: "link", "data-explain": d.id, "aria-expanded": String(expanded), onclick: () => toggle(d.id, button) },
      expanded ? "Hide" : "Explain");
    const rule = explained.get(d.id)?.rule || { general: "anywhere", important: "owner_or_national", core: "none" }[d.classification];
    return h("tr", { "data-dataset": d.id, class: focus === d.id ? "is-focus" : "" },
      th({ scope: "row", "data-label": "Data set" }, h("code", {}, d.id), d.description ? h("span", { class: "small muted block" }, d.description) : null),
      td({ "data-label": "Classification" }, classBadge(d.classification)),
      td({ "data-label": "Owner" }, d.owner),
      td({ "data-label": "Size", class: "num" }, bytes(d.size_bytes)),
      td({ "data-label": "Copies", "data-copies": d.locations.join(",") }, h("span", {}, d.locations.flatMap((c, i) => [i ? ", " : "", clusterLink(ctx, c)]))),
      td({ "data-label": "Residency" }, h("span", { "data-rule": rule }, RULE[rule].text, " ", zh(RULE[rule].zh, "zh-inline")), " ", button),
    );
  }

  async function decide(g, approve) {
    const verb = approve ? "Approve" : g.status === "approved" ? "Withdraw" : "Reject";
    const body = approve
      ? `Tenant ${g.tenant} will be able to read ${g.dataset_id} (${g.classification}) in its jobs. Residency still applies.`
      : g.status === "approved"
        ? `Tenant ${g.tenant} will no longer be able to submit jobs reading ${g.dataset_id}, and its unfinished jobs reading it stop now: those not started fail, running ones are cancelled.`
        : `Tenant ${g.tenant} will not be able to read ${g.dataset_id}.`;
    const ok = await ctx.confirm({ title: `${verb} ${g.tenant}'s request for ${g.dataset_id}?`, body, action: verb, danger: !approve });
    if (!ok) return;
    try {
      const { data } = await post(`/v1/datasets/${encodeURIComponent(g.dataset_id)}/grants/${encodeURIComponent(g.id)}/${approve ? "approve" : "reject"}`);
      const stopped = Object.keys(data.stopped_jobs || {}).length;
      ctx.announce(`${data.status === "approved" ? "Approved" : "Rejected"}: ${g.tenant} for ${g.dataset_id}${stopped ? ` (${stopped} job${stopped === 1 ? "" : "s"} stopped)` : ""}`);
      await ctx.refresh();
    } catch (err) {
      ctx.showError(err);
    }
  }

  function grantRow(g) {
    const [text, textZh] = STATUS[g.status];
    const buttons = [];
    if (g.can_decide && g.status !== "approved") buttons.push(h("button", { type: "button", class: "primary", "data-decide": "approve", "aria-label": `Approve ${g.tenant} for ${g.dataset_id}`, onclick: () => decide(g, true) }, "Approve"));
    if (g.can_decide && g.status !== "rejected") buttons.push(h("button", { type: "button", class: "danger-outline", "data-decide": "reject", "aria-label": `${g.status === "approved" ? "Withdraw" : "Reject"} ${g.tenant} for ${g.dataset_id}`, onclick: () => decide(g, false) }, g.status === "approved" ? "Withdraw" : "Reject"));
    return h("tr", { "data-grant": g.id, "data-dataset": g.dataset_id, "data-tenant": g.tenant },
      th({ scope: "row", "data-label": "Data set" }, h("code", {}, g.dataset_id), " ", classBadge(g.classification)),
      td({ "data-label": "Requested by" }, g.tenant),
      td({ "data-label": "Owner" }, g.dataset_owner),
      td({ "data-label": "Status" }, h("span", { class: `badge grant-${g.status}`, "data-status": g.status }, text, " ", zh(textZh, "zh-inline")),
        g.decided_at ? h("span", { class: "small muted block" }, `by ${g.decided_by} ${ago(g.decided_at)}`) : null),
      td({ "data-label": "Requested" }, time(g.requested_at)),
      td({ "data-label": "Reason", class: "message" }, g.reason || "–"),
      td({ "data-label": "Decision" }, buttons.length ? h("span", { class: "row" }, buttons) : h("span", { class: "muted small" }, g.can_decide ? "–" : `decided by ${g.dataset_owner}`)),
    );
  }

  return {
    el,
    title: "Data sets",
    async refresh() {
      await ctx.clusters();
      const [sets, gs] = await Promise.all([
        get("/v1/datasets"),
        get(`/v1/grants${statusFilter ? `?status=${encodeURIComponent(statusFilter)}` : ""}`),
      ]);
      await Promise.all([...open].filter((id) => !explained.has(id) && sets.items.some((d) => d.id === id))
        .map(async (id) => explained.set(id, await get(`/v1/datasets/${encodeURIComponent(id)}/residency`))));
      const focused = document.activeElement?.dataset?.explain;
      clear(catalogue);
      for (const d of sets.items) {
        catalogue.append(datasetRow(d));
        if (open.has(d.id)) catalogue.append(residencyRow(d));
      }
      if (!sets.items.length) catalogue.append(h("tr", {}, td({ colspan: "6", class: "empty" }, "The catalogue has no data set you may read.")));
      if (focused) catalogue.querySelector(`button[data-explain="${CSS.escape(focused)}"]`)?.focus();
      const by = (c) => sets.items.filter((d) => d.classification === c).length;
      count.textContent = `${sets.items.length} data sets · ${by("core")} core · ${by("important")} important · ${by("general")} general`;
      const focusedGrant = document.activeElement?.closest?.("tr[data-grant]")?.dataset.grant;
      fill(grants, ...gs.items.map(grantRow));
      if (!gs.items.length) grants.append(h("tr", {}, td({ colspan: "7", class: "empty" }, "No sharing request.")));
      if (focusedGrant) grants.querySelector(`tr[data-grant="${CSS.escape(focusedGrant)}"] button`)?.focus();
      const pending = gs.items.filter((g) => g.status === "pending");
      grantCount.textContent = `${gs.items.length} request${gs.items.length === 1 ? "" : "s"} · ${pending.length} pending · ${pending.filter((g) => g.can_decide).length} yours to decide`;
    },
  };
}
