// A scheduling Decision, explained: the summary sentence, the chosen cluster, the feasible
// clusters with each plugin's score, the rejected clusters grouped by plugin and reason, and the
// estimated data transfer.
import { bar, bytes, h, num, phaseBadge, seconds, time, zh } from "./dom.js";

const TOP = 10;

// What the decision did, in words that do not collide with job phases: a decision "places" a job
// (status Scheduled in the API); the job's own phase (Scheduled, Running, ...) is another matter,
// shown beside it. A Running job's panel therefore reads "Placed … the job is now Running there".
const OUTCOME = {
  Scheduled: { text: "Placed", zh: "已放置", cls: "outcome-placed" },
  Unschedulable: { text: "Unschedulable", zh: "暂无可用集群", cls: "outcome-waiting" },
  UnschedulableAndUnresolvable: { text: "Unschedulable (needs a change)", zh: "无法调度", cls: "outcome-failed" },
};

export function renderDecision(ctx, d, { plan = false, job = null } = {}) {
  const chosen = d.feasible.find((f) => f.cluster === d.cluster);
  const total = d.feasible.length + new Set(d.rejected.map((r) => r.cluster)).size;
  const outcome = OUTCOME[d.status] || { text: d.status, zh: "", cls: "outcome-failed" };
  const label = plan && d.status === "Scheduled" ? { ...outcome, text: "Would place", zh: "将放置" } : outcome;
  const head = h(
    "div",
    { class: "decision-head" },
    h("p", {}, h("span", { class: `badge ${label.cls}`, "data-outcome": d.status }, label.text, " ", zh(label.zh, "zh-inline")), " ",
      d.cluster ? [plan ? "on " : "Chosen cluster: ", h("strong", { class: "chosen", "data-chosen": d.cluster }, ctx.clusterName(d.cluster))] : h("strong", {}, "No cluster chosen")),
    job ? jobNow(ctx, d, job) : null,
    h("p", { class: "summary", "data-summary": "" }, d.summary),
    chosen
      ? h("p", { class: "muted" }, `Data to move to ${d.cluster}: ${bytes(chosen.transfer_bytes)}, about ${seconds(chosen.transfer_seconds)}.`)
      : null,
    h("p", { class: "muted small" }, plan ? "Plan only: nothing was created or reserved." : `Attempt ${d.attempt} · decided ${time(d.created_at)} · epoch ${d.epoch}`),
  );
  return h("div", { class: "decision", "data-decision": d.cluster || "" }, head, feasibleTable(ctx, d, total), rejectedGroups(ctx, d, total));
}

/** Where the job stands now, relative to this decision. */
function jobNow(ctx, d, job) {
  const attrs = { class: "job-now", "data-job-now": job.phase };
  const where = job.cluster ? [" on ", ctx.clusterName(job.cluster)] : null;
  if (job.attempt !== d.attempt) {
    return h("p", attrs, `This decision was for attempt ${d.attempt}; the job is now at attempt ${job.attempt}, `, phaseBadge(job.phase), where, ".");
  }
  if (d.cluster && job.cluster === d.cluster) return h("p", attrs, "The job is now ", phaseBadge(job.phase), " there.");
  return h("p", attrs, "The job is now ", phaseBadge(job.phase), where, ".");
}

function feasibleTable(ctx, d, total) {
  const section = h("section", { class: "feasible", "aria-labelledby": "feasible-title" });
  section.append(h("h3", { id: "feasible-title" }, `Feasible clusters (${d.feasible.length} of ${total})`));
  if (!d.feasible.length) {
    section.append(h("p", { class: "muted" }, "No cluster passed every filter."));
    return section;
  }
  const plugins = [...new Set(d.feasible.flatMap((f) => Object.keys(f.scores)))];
  // Each plugin's bar is scaled to 100 (plugins normalise to 0–100) or to its largest score.
  const scale = Object.fromEntries(plugins.map((p) => [p, Math.max(100, ...d.feasible.map((f) => Math.abs(f.scores[p] || 0)))]));
  const body = h("tbody");
  const rows = d.feasible.map((f, i) =>
    h(
      "tr",
      { class: f.cluster === d.cluster ? "is-chosen" : "", "data-cluster": f.cluster, hidden: i >= TOP },
      h("td", { "data-label": "#", class: "rank" }, String(i + 1)),
      h("th", { scope: "row", "data-label": "Cluster" },
        h("span", {}, ctx.clusterName(f.cluster), f.cluster === d.cluster ? [" ", h("span", { class: "badge phase-scheduled" }, "chosen")] : null)),
      h("td", { "data-label": "Total", class: "num" }, num(f.total, 2)),
      plugins.map((p) =>
        h(
          "td",
          { "data-label": p, class: "score", "data-plugin": p },
          bar(f.scores[p] || 0, scale[p], `${p} score ${num(f.scores[p] || 0, 2)}`, { warnAt: 2 }),
          h("span", { class: "num" }, num(f.scores[p] || 0, 1)),
        ),
      ),
      h("td", { "data-label": "Transfer", class: "num" }, `${bytes(f.transfer_bytes)} · ${seconds(f.transfer_seconds)}`),
    ),
  );
  body.append(...rows);
  const table = h(
    "table",
    { class: "stack scores" },
    h("caption", { class: "visually-hidden" }, "Feasible clusters, best first, with each plugin's score"),
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "#"), h("th", { scope: "col" }, "Cluster"), h("th", { scope: "col" }, "Total"),
      plugins.map((p) => h("th", { scope: "col" }, p)), h("th", { scope: "col" }, "Transfer"))),
    body,
  );
  section.append(h("div", { class: "table-wrap" }, table));
  if (rows.length > TOP) {
    const toggle = h("button", {
      type: "button",
      class: "link",
      "aria-expanded": "false",
      onclick: () => {
        const expanded = toggle.getAttribute("aria-expanded") === "true";
        rows.forEach((r, i) => (r.hidden = expanded && i >= TOP));
        toggle.setAttribute("aria-expanded", String(!expanded));
        toggle.textContent = expanded ? `Show all ${rows.length}` : `Show the best ${TOP}`;
      },
    }, `Show all ${rows.length}`);
    section.append(toggle);
  }
  return section;
}

function rejectedGroups(ctx, d, total) {
  const section = h("section", { class: "rejected", "aria-labelledby": "rejected-title" });
  section.append(h("h3", { id: "rejected-title" }, `Rejected clusters (${d.rejected.length} of ${total})`));
  if (!d.rejected.length) {
    section.append(h("p", { class: "muted" }, "No cluster was rejected."));
    return section;
  }
  const groups = new Map();
  for (const r of d.rejected) {
    const key = `${r.plugin}\u0000${r.reason}`;
    if (!groups.has(key)) groups.set(key, { plugin: r.plugin, reason: r.reason, clusters: [] });
    groups.get(key).clusters.push(r.cluster);
  }
  const sorted = [...groups.values()].sort((a, b) => b.clusters.length - a.clusters.length || a.plugin.localeCompare(b.plugin));
  section.append(
    h(
      "ul",
      { class: "reject-groups" },
      sorted.map((g) =>
        h(
          "li",
          { "data-plugin": g.plugin },
          h(
            "details",
            {},
            h("summary", {}, h("span", { class: "count-pill" }, String(g.clusters.length)), " ", h("span", { class: "plugin" }, g.plugin), " — ", g.reason),
            h("ul", { class: "chips" }, g.clusters.map((c) => h("li", {}, ctx.clusterName(c)))),
          ),
        ),
      ),
    ),
  );
  return section;
}
