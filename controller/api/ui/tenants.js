// Tenants and quotas: per tenant its nominal quota, what it borrows, what it uses, its queue, its
// place in the fair-share order (dominant resource share, DRF) and its jobs preempted in the last
// hour. GET /v1/tenants; a tenant token sees its own row only.
import { get } from "./api.js";
import { ago, fill, h, num, td, th, zh } from "./dom.js";

const RES = [["cpu", "CPU", "cores"], ["gpu", "GPU", ""], ["memory_gib", "Memory", "GiB"]];

/** Used against nominal (and what may be borrowed): a bar with the nominal marked. */
function quotaCell(t, key, label, unit) {
  const used = t.used[key];
  const nominal = t.nominal ? t.nominal[key] : null;
  const borrowLimit = t.borrowing_limit ? t.borrowing_limit[key] : null;
  const borrowed = t.borrowed[key];
  const u = unit ? ` ${unit}` : "";
  let text;
  if (nominal === null) text = `${num(used)}${u} used (no quota)`;
  else text = `${num(used)} / ${num(nominal)}${u}${borrowed > 0 ? ` (${num(borrowed)} borrowed)` : ""}`;
  const ceiling = nominal === null ? Math.max(used, 1) : nominal + (borrowLimit === null ? nominal : borrowLimit);
  const within = Math.min(used, nominal === null ? used : nominal);
  const track = h("span", { class: "qbar", role: "img", "aria-label": `${label} ${text}${nominal !== null && borrowLimit !== null ? `; may borrow up to ${num(borrowLimit)}${u}` : ""}` });
  const fill = h("span", { class: "qfill" });
  fill.style.width = `${((100 * within) / ceiling).toFixed(1)}%`;
  track.append(fill);
  if (borrowed > 0) {
    const b = h("span", { class: "qborrow" });
    b.style.left = `${((100 * within) / ceiling).toFixed(1)}%`;
    b.style.width = `${((100 * borrowed) / ceiling).toFixed(1)}%`;
    track.append(b);
  }
  if (nominal !== null) {
    const mark = h("span", { class: "qnominal" });
    mark.style.left = `${((100 * nominal) / ceiling).toFixed(1)}%`;
    track.append(mark);
  }
  return td({ "data-label": label, class: "quota", "data-res": key }, track, h("span", { class: "num small" }, text));
}

export function create(ctx, params) {
  let showAll = params.get("all") === "1";
  const all = h("input", { type: "checkbox", id: "tenants-all", checked: showAll });
  all.addEventListener("change", () => {
    showAll = all.checked;
    history.replaceState(null, "", showAll ? "#/tenants?all=1" : "#/tenants");
    draw();
  });
  const summary = h("p", { class: "summary-line" });
  const body = h("tbody");
  const table = h(
    "table",
    { class: "stack tenants-table" },
    h("caption", { class: "visually-hidden" }, "Tenants in fair-share order, with quota, usage, queue and preemptions"),
    h("thead", {}, h("tr", {}, ["Fair share", "Tenant", "CPU", "GPU", "Memory", "Queue", "Placed", "Preempted (1 h)"].map((c) => h("th", { scope: "col" }, c)))),
    body,
  );
  const note = h("p", { class: "muted small" });
  const el = h(
    "section",
    { class: "view tenants", "aria-labelledby": "tenants-title" },
    h("div", { class: "view-head" }, h("h1", { id: "tenants-title" }, "Tenants and quotas ", zh("租户与配额")),
      h("label", { class: "check", for: "tenants-all" }, all, " Show tenants without jobs")),
    summary,
    h("div", { class: "table-wrap" }, table),
    note,
  );
  let data = null;

  function row(t) {
    const share = `${num(100 * t.dominant_share)}%`;
    return h(
      "tr",
      { "data-tenant": t.tenant, class: t.borrowing ? "is-borrowing" : "" },
      td({ "data-label": "Fair share", class: "num" }, h("strong", { "data-rank": String(t.fair_share_rank) }, `#${t.fair_share_rank}`),
        h("span", { class: "small muted", "data-share": "" }, ` · ${share}${t.weight !== 1 ? ` · weight ${num(t.weight)}` : ""}`)),
      th({ scope: "row", "data-label": "Tenant" }, h("a", { href: `#/jobs?tenant=${encodeURIComponent(t.tenant)}` }, t.tenant),
        t.borrowing ? [" ", h("span", { class: "badge state-borrowing" }, "Borrowing ", zh("借用", "zh-inline"))] : null),
      RES.map(([key, label, unit]) => quotaCell(t, key, label, unit)),
      td({ "data-label": "Queue", class: "num", "data-col": "pending" },
        t.pending ? [h("a", { href: `#/jobs?tenant=${encodeURIComponent(t.tenant)}&phase=Pending` }, `${t.pending} pending`), h("br"), h("span", { class: "small muted" }, `oldest ${ago(t.oldest_pending_at)}`)] : "0"),
      td({ "data-label": "Placed", class: "num", "data-col": "placed" }, `${t.running} running`, t.scheduled ? `, ${t.scheduled} scheduled` : ""),
      td({ "data-label": "Preempted (1 h)", class: "num", "data-col": "preempted" }, t.preempted ? [String(t.preempted), h("br"), h("span", { class: "small muted" }, `last ${ago(t.last_preempted_at)}`)] : "0"),
    );
  }

  function draw() {
    if (!data) return;
    const active = (t) => t.pending || t.running || t.scheduled || t.preempted || t.used.cpu || t.used.gpu || t.used.memory_gib;
    const items = data.items.filter((t) => showAll || active(t)).sort((a, b) => a.fair_share_rank - b.fair_share_rank);
    fill(body, ...items.map(row));
    if (!items.length) body.append(h("tr", {}, td({ colspan: "8", class: "empty" }, "No tenant has jobs now.")));
    const cap = data.federation_capacity;
    fill(summary, 
      h("strong", {}, `${data.items.length === data.tenants_total ? data.tenants_total : `${data.items.length} of ${data.tenants_total}`} tenants`),
      ` · ${data.items.filter(active).length} with jobs · ${data.items.filter((t) => t.borrowing).length} borrowing · `,
      `${data.items.reduce((s, t) => s + t.pending, 0)} jobs queued · ${data.items.reduce((s, t) => s + t.preempted, 0)} preempted in the last hour · `,
      `federation capacity ${num(cap.cpu)} cores, ${num(cap.gpu)} GPU`,
    );
    note.textContent = `Fair share: when tenants compete, the one with the smallest dominant share (its largest share of any resource, over its nominal quota or the federation, divided by its weight) is served first (#1). The bar marks the nominal quota; orange is borrowed from other tenants' unused quota. Preemption is ${data.preemption ? "on" : "off"}.`;
  }

  return {
    el,
    title: "Tenants",
    async refresh() {
      data = await get("/v1/tenants");
      draw();
    },
  };
}
