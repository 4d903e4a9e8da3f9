// A cluster's page: capacity (declared, effective, allocated), health history, jobs placed there
// and its tenant's queue, the data sets it holds, its backup group, failovers from and to it, the
// operators' actions on it (audit log), and cordon / uncordon / drain with confirmation.
import { ApiError, get, post } from "./api.js";
import {
  ago, bar, bytes, card, classBadge, clear, clusterLink, fill, h, num, pct, phaseBadge, stateBadges, td, th, time, zh,
} from "./dom.js";

const SOURCE_TEXT = { prometheus: "Prometheus", heartbeat: "the agent's heartbeat", topology: "the declared topology" };
const RES = [
  ["cpu", "CPU", "cores", 1],
  ["memory_gib", "Memory", "GiB", 1],
  ["gpu", "GPU", "", 0],
];

export function create(ctx, name) {
  const title = h("h1", { id: "cluster-title" }, h("code", {}, name));
  const badges = h("p", { class: "badges cluster-badges" });
  const actions = h("div", { class: "actions cluster-actions" });
  const capacity = h("div", { class: "capacity" });
  const history = h("ol", { class: "timeline health-history" });
  const jobsBox = h("div", { class: "cluster-jobs" });
  const queueBox = h("div", { class: "cluster-queue" });
  const datasets = h("div", { class: "cluster-datasets" });
  const backups = h("div", { class: "cluster-backups" });
  const flows = h("ul", { class: "flow-list" });
  const ops = h("ul", { class: "ops-list" });
  const el = h(
    "section",
    { class: "view cluster-page", "aria-labelledby": "cluster-title" },
    h("p", { class: "back" }, h("a", { href: "#/map" }, "← Map"), " · ", h("a", { href: "#/clusters" }, "All clusters")),
    h("div", { class: "view-head" }, title, actions),
    badges,
    h("div", { class: "cluster-grid" },
      card("capacity-title", "Capacity", "容量", capacity),
      card("history-title", "Health history", "健康历史", h("p", { class: "muted small" }, "Changes seen by this controller since it started, newest first."), history),
      card("cluster-jobs-title", "Jobs here", "本集群作业", jobsBox),
      card("queue-title", "Tenant's queue", "租户排队", queueBox),
      card("datasets-title", "Data sets held", "持有的数据集", datasets),
      card("backups-title", "Backup group", "备份组", backups),
      card("cluster-flows-title", "Failovers and drains, last hour", "故障转移与排空", flows),
      card("ops-title", "Operator actions", "运维操作", ops),
    ),
  );
  let view = null;

  async function act(action) {
    const c = view.cluster;
    const who = `${c.name}${c.display_name_zh ? ` (${c.display_name_zh})` : ""}`;
    const texts = {
      cordon: ["Cordon", `No new jobs will be placed on ${who}. Jobs already there keep running.`],
      uncordon: ["Uncordon", `${who} will take new jobs again.`],
      drain: ["Drain", `${who} will be cordoned and every job on it (${view.activity.running + view.activity.scheduled} now) sent back to Pending to be placed elsewhere.`],
    };
    const [verb, body] = texts[action];
    const ok = await ctx.confirm({ title: `${verb} ${c.name}?`, body, action: verb, danger: action === "drain" });
    if (!ok) return;
    try {
      const { data } = await post(`/v1/clusters/${encodeURIComponent(c.name)}/${action}`);
      const extra = action === "drain" ? `; ${data.requeued_jobs} job(s) sent back to Pending` : "";
      ctx.announce(`${{ cordon: "Cordoned", uncordon: "Uncordoned", drain: "Drained" }[action]} ${c.name}${extra}`);
      await ctx.refresh();
    } catch (err) {
      ctx.showError(err);
    }
    actions.querySelector("button")?.focus();
  }

  function drawCapacity(c) {
    const eff = c.effective_capacity || c.capacity;
    const rows = RES.map(([key, label, unit, digits]) => {
      const alloc = c.allocated[key];
      const free = Math.max(0, eff[key] - alloc);
      return h(
        "tr",
        { "data-resource": key },
        th({ scope: "row", "data-label": "Resource" }, label, unit ? h("span", { class: "muted small" }, ` (${unit})`) : null),
        td({ "data-label": "Declared", class: "num", "data-col": "declared" }, num(c.capacity[key], digits)),
        td({ "data-label": "Effective", class: "num", "data-col": "effective" }, num(eff[key], digits)),
        td({ "data-label": "Allocated", class: "num", "data-col": "allocated" }, num(alloc, digits)),
        td({ "data-label": "Free", class: "num", "data-col": "free" }, num(free, digits)),
        td({ "data-label": "Used", class: "used" }, bar(alloc, eff[key], `${label} ${pct(alloc, eff[key])} of the effective capacity allocated`), h("span", { class: "num small" }, pct(alloc, eff[key]))),
      );
    });
    fill(capacity, 
      h("div", { class: "table-wrap" }, h("table", { class: "stack capacity-table" },
        h("caption", { class: "visually-hidden" }, "Capacity declared in the topology, effective (what the scheduler uses) and allocated to placed jobs"),
        h("thead", {}, h("tr", {}, ["Resource", "Declared", "Effective", "Allocated", "Free", "Used"].map((x) => h("th", { scope: "col" }, x)))),
        h("tbody", {}, rows))),
      h("p", { class: "muted small", "data-capacity-source": c.capacity_source || "" },
        `The effective capacity (what the scheduler uses) comes from ${SOURCE_TEXT[c.capacity_source] || c.capacity_source || "–"}`,
        c.capacity_note ? ` (${c.capacity_note})` : "", c.last_heartbeat ? `. Last heartbeat ${time(c.last_heartbeat)}, ${ago(c.last_heartbeat)}.` : ". No heartbeat yet."),
    );
  }

  function drawHistory(changes) {
    clear(history);
    if (!changes.length) history.append(h("li", { class: "muted" }, "No change recorded yet."));
    for (const ch of [...changes].reverse()) {
      history.append(h(
        "li",
        { "data-health": ch.health, "data-cordoned": String(ch.cordoned), "data-draining": String(ch.draining) },
        h("time", { datetime: ch.at }, `${time(ch.at)} · ${ago(ch.at)}`),
        h("div", {}, stateBadges(ch)),
        ch.reason ? h("p", { class: "reason" }, ch.reason) : null,
      ));
    }
  }

  function jobTable(items, caption, empty) {
    if (!items.length) return h("p", { class: "muted" }, empty);
    return h("div", { class: "table-wrap" }, h("table", { class: "stack" },
      h("caption", { class: "visually-hidden" }, caption),
      h("thead", {}, h("tr", {}, ["Job", "Tenant", "Phase", "Attempt", "Updated"].map((x) => h("th", { scope: "col" }, x)))),
      h("tbody", {}, items.map((j) => h("tr", { "data-job": j.id },
        td({ "data-label": "Job" }, h("a", { href: `#/jobs/${encodeURIComponent(j.id)}` }, j.spec.name)),
        td({ "data-label": "Tenant" }, j.spec.tenant),
        td({ "data-label": "Phase" }, phaseBadge(j.phase)),
        td({ "data-label": "Attempt", class: "num" }, String(j.attempt)),
        td({ "data-label": "Updated" }, ago(j.updated_at)))))));
  }

  function drawDatasets(items) {
    clear(datasets);
    if (!items.length) {
      datasets.append(h("p", { class: "muted" }, "No data set you may read has a copy here."));
      return;
    }
    datasets.append(h("ul", { class: "plain-list" }, items.map((d) => h("li", { "data-dataset": d.id },
      h("a", { href: `#/data?focus=${encodeURIComponent(d.id)}` }, h("code", {}, d.id)), " ", classBadge(d.classification),
      h("span", { class: "muted small" }, ` · owner ${d.owner} · ${bytes(d.size_bytes)} · ${d.locations.length} cop${d.locations.length === 1 ? "y" : "ies"}`)))));
  }

  function drawBackups(v) {
    fill(backups, 
      h("p", { "data-backups": v.backups.join(",") }, h("strong", {}, "Its jobs fail over to: "),
        v.backups.length ? v.backups.flatMap((b, i) => [i ? " → " : "", clusterLink(ctx, b)]) : "no backup group (any legal cluster)"),
      h("p", { "data-backup-for": v.backup_for.join(",") }, h("strong", {}, "Backs up: "),
        v.backup_for.length ? v.backup_for.flatMap((b, i) => [i ? ", " : "", clusterLink(ctx, b)]) : "no cluster"),
    );
  }

  function drawFlows(items) {
    clear(flows);
    if (!items.length) flows.append(h("li", { class: "muted" }, "None in the last hour."));
    for (const f of items) {
      flows.append(h("li", { "data-flow": `${f.from_cluster}>${f.to_cluster || ""}` },
        h("span", { class: `badge flow-${f.kind}` }, f.kind === "failover" ? "Failover" : "Drain"), " ",
        clusterLink(ctx, f.from_cluster), " → ", f.to_cluster ? clusterLink(ctx, f.to_cluster) : h("em", {}, "not placed again yet"),
        `: ${f.jobs} job${f.jobs === 1 ? "" : "s"}, last ${ago(f.last_at)}`));
    }
  }

  async function drawOps() {
    try {
      const page = await get(`/v1/audit?target=${encodeURIComponent(`cluster/${name}`)}&order=desc&limit=10`);
      clear(ops);
      if (!page.items.length) ops.append(h("li", { class: "muted" }, "No operator action on this cluster in the audit log."));
      for (const a of page.items) {
        ops.append(h("li", { "data-action": a.action }, h("time", { datetime: a.at }, time(a.at)), " ", h("strong", {}, a.action), ` by ${a.actor} (${a.role})`));
      }
      ops.append(h("li", {}, h("a", { href: `#/audit?target=${encodeURIComponent(`cluster/${name}`)}` }, "All of this cluster's audit entries")));
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 403)) throw err;
      fill(ops, h("li", { class: "muted" }, "The audit log is for operators."));
    }
  }

  return {
    el,
    title: `Cluster ${name}`,
    async refresh() {
      await ctx.clusters();
      const v = await get(`/v1/clusters/${encodeURIComponent(name)}/overview`);
      view = v;
      const c = v.cluster;
      fill(title, c.display_name, " ", zh(c.display_name_zh), " ", h("code", { class: "small muted" }, c.name));
      fill(badges, ...stateBadges(c), h("span", { class: "muted small" }, ` · ${c.tier} · tenant ${c.tenant} · ${c.region}${c.hub ? ` · hub ${c.hub}` : ""}`));
      const buttons = [c.cordoned
        ? h("button", { type: "button", "data-action": "uncordon", onclick: () => act("uncordon") }, "Uncordon ", zh("解除封锁", "zh-inline"))
        : h("button", { type: "button", "data-action": "cordon", onclick: () => act("cordon") }, "Cordon ", zh("封锁", "zh-inline"))];
      if (!c.draining) buttons.push(h("button", { type: "button", class: "danger-outline", "data-action": "drain", onclick: () => act("drain") }, "Drain ", zh("排空", "zh-inline")));
      const focusedAction = document.activeElement?.closest?.(".cluster-actions") ? document.activeElement.dataset.action : null;
      fill(actions, ...buttons);
      if (focusedAction) (actions.querySelector(`[data-action="${focusedAction}"]`) || actions.querySelector("button"))?.focus();
      drawCapacity(c);
      drawHistory(v.health_history);
      const [running, scheduled] = await Promise.all([
        get(`/v1/jobs?cluster=${encodeURIComponent(name)}&phase=Running&limit=50`),
        get(`/v1/jobs?cluster=${encodeURIComponent(name)}&phase=Scheduled&limit=50`),
      ]);
      const here = [...scheduled.items, ...running.items];
      fill(jobsBox, 
        h("p", { class: "summary-line", "data-jobs-summary": "" }, `${v.activity.running} running, ${v.activity.scheduled} scheduled (placed, not started)`),
        jobTable(here, `Jobs placed on ${name}`, "No job is placed here now."),
        running.next_cursor || scheduled.next_cursor ? h("p", {}, h("a", { href: `#/jobs?cluster=${encodeURIComponent(name)}` }, "All jobs on this cluster")) : null,
      );
      if (v.activity.pending === null) {
        fill(queueBox, h("p", { class: "muted" }, `The queue of ${c.tenant} is not yours to see.`));
      } else {
        const pending = await get(`/v1/jobs?tenant=${encodeURIComponent(c.tenant)}&phase=Pending&limit=20`);
        fill(queueBox, 
          h("p", { class: "summary-line", "data-queue": String(v.activity.pending) }, `${v.activity.pending} pending job${v.activity.pending === 1 ? "" : "s"} of tenant ${c.tenant}`),
          pending.items.length
            ? h("ul", { class: "plain-list" }, pending.items.map((j) => h("li", { "data-job": j.id },
              h("a", { href: `#/jobs/${encodeURIComponent(j.id)}` }, j.spec.name), h("span", { class: "muted small" }, ` · waiting since ${ago(j.created_at)} · ${j.message}`))))
            : null,
          v.activity.pending > pending.items.length ? h("p", {}, h("a", { href: `#/jobs?tenant=${encodeURIComponent(c.tenant)}&phase=Pending` }, "The whole queue")) : null,
        );
      }
      drawDatasets(v.datasets);
      drawBackups(v);
      drawFlows(v.flows);
      await drawOps();
    },
  };
}
