// Clusters: the 42 member clusters by tier, with health, cordon/drain state, CPU and GPU
// allocated of capacity, where the capacity figure comes from, and the operator actions. Each
// tile's name opens the cluster's page (cluster.js); the map (map.js) shows the same clusters
// placed as the country.
import { post } from "./api.js";
import { bar, clear, h, num, zh } from "./dom.js";

const TIERS = [
  { tier: "national", title: "National nodes", zh: "国家节点" },
  { tier: "province", title: "Provinces", zh: "省级平台" },
  { tier: "department", title: "Ministries", zh: "部委平台" },
];
const HEALTH_ZH = { Ready: "就绪", Unknown: "未知", Unreachable: "不可达" };
const SOURCE_TEXT = { prometheus: "Prometheus", heartbeat: "agent heartbeat", topology: "topology (declared)" };

export function create(ctx) {
  let filterText = "";
  let clusters = [];
  const summary = h("p", { class: "summary-line", "aria-live": "off" });
  const filter = h("input", {
    id: "cluster-filter",
    type: "search",
    placeholder: "name, 中文名, tenant…",
    autocomplete: "off",
    oninput: () => {
      filterText = filter.value.trim().toLowerCase();
      draw();
    },
  });
  const sections = h("div", { class: "tiers" });
  const el = h(
    "section",
    { class: "view federation", "aria-labelledby": "federation-title" },
    h(
      "div",
      { class: "view-head" },
      h("h1", { id: "federation-title" }, "Clusters ", zh("集群")),
      h("div", { class: "filter" }, h("label", { for: "cluster-filter" }, "Filter clusters"), filter),
    ),
    summary,
    sections,
  );

  async function act(cluster, action) {
    const who = [cluster.name, cluster.display_name_zh ? ` (${cluster.display_name_zh})` : ""].join("");
    const texts = {
      cordon: ["Cordon", `No new jobs will be placed on ${who}. Jobs already there keep running.`],
      uncordon: ["Uncordon", `${who} will take new jobs again.`],
      drain: ["Drain", `${who} will be cordoned and every job on it sent back to Pending to be placed elsewhere.`],
    };
    const [verb, body] = texts[action];
    const ok = await ctx.confirm({ title: `${verb} ${cluster.name}?`, body, action: verb, danger: action === "drain" });
    if (!ok) return;
    try {
      const { data } = await post(`/v1/clusters/${encodeURIComponent(cluster.name)}/${action}`);
      const extra = action === "drain" ? `; ${data.requeued_jobs} job(s) sent back to Pending` : "";
      const done = { cordon: "Cordoned", uncordon: "Uncordoned", drain: "Drained" }[action];
      ctx.announce(`${done} ${cluster.name}${extra}`);
      await ctx.refresh();
    } catch (err) {
      ctx.showError(err);
    }
    const again = sections.querySelector(`[data-cluster="${cluster.name}"] button[data-action]`);
    if (again && !document.activeElement?.closest?.("dialog")) again.focus();
  }

  function tile(c) {
    const cap = c.effective_capacity || c.capacity;
    const id = `tile-${c.name}`;
    const badges = [h("span", { class: `badge health-${c.health.toLowerCase()}`, "data-health": c.health }, c.health, " ", zh(HEALTH_ZH[c.health], "zh-inline"))];
    if (c.draining) badges.push(h("span", { class: "badge state-draining" }, "Draining"));
    else if (c.cordoned) badges.push(h("span", { class: "badge state-cordoned" }, "Cordoned"));
    const cpuLabel = `${num(c.allocated.cpu)} / ${num(cap.cpu)} cores`;
    const gpuLabel = `${num(c.allocated.gpu, 0)} / ${num(cap.gpu, 0)}`;
    const actions = c.cordoned
      ? [h("button", { type: "button", "data-action": "uncordon", "aria-label": `Uncordon ${c.name}`, onclick: () => act(c, "uncordon") }, "Uncordon")]
      : [h("button", { type: "button", "data-action": "cordon", "aria-label": `Cordon ${c.name}`, onclick: () => act(c, "cordon") }, "Cordon")];
    if (!c.draining) {
      actions.push(h("button", { type: "button", class: "danger-outline", "data-action": "drain", "aria-label": `Drain ${c.name}`, onclick: () => act(c, "drain") }, "Drain"));
    }
    return h(
      "article",
      { class: `tile health-${c.health.toLowerCase()}${c.cordoned ? " is-cordoned" : ""}`, "data-cluster": c.name, "aria-labelledby": id },
      h("header", {}, h("h3", { id }, h("a", { href: `#/clusters/${encodeURIComponent(c.name)}`, class: "tile-link" }, h("span", { class: "en" }, c.display_name), " ", zh(c.display_name_zh))), h("code", { class: "cluster-id" }, c.name)),
      h("div", { class: "badges" }, badges),
      h(
        "dl",
        { class: "usage" },
        h("dt", {}, "CPU"),
        h("dd", {}, bar(c.allocated.cpu, cap.cpu, `CPU ${cpuLabel} allocated`), h("span", { class: "num" }, cpuLabel)),
        h("dt", {}, "GPU"),
        h("dd", {}, bar(c.allocated.gpu, cap.gpu, `GPU ${gpuLabel} allocated`), h("span", { class: "num" }, gpuLabel)),
      ),
      h("p", { class: "source", title: c.capacity_note || "" }, "Capacity: ", SOURCE_TEXT[c.capacity_source] || c.capacity_source || "–"),
      h("div", { class: "actions" }, actions),
    );
  }

  function matches(c) {
    if (!filterText) return true;
    return [c.name, c.display_name, c.display_name_zh, c.tenant, c.region, c.hub]
      .filter(Boolean)
      .some((v) => String(v).toLowerCase().includes(filterText));
  }

  function draw() {
    const focused = document.activeElement;
    const focusKey = focused && focused.closest && focused.closest("[data-cluster]") && focused.dataset.action
      ? [focused.closest("[data-cluster]").dataset.cluster, focused.dataset.action]
      : null;
    const count = (pred) => clusters.filter(pred).length;
    clear(summary).append(
      h("strong", {}, `${clusters.length} clusters`),
      ` · ${count((c) => c.health === "Ready")} Ready · ${count((c) => c.health === "Unknown")} Unknown · `,
      `${count((c) => c.health === "Unreachable")} Unreachable · ${count((c) => c.cordoned)} cordoned · ${count((c) => c.draining)} draining`,
    );
    clear(sections);
    for (const t of TIERS) {
      const all = clusters.filter((c) => c.tier === t.tier);
      const shown = all.filter(matches);
      if (!all.length) continue;
      const headingId = `tier-${t.tier}`;
      sections.append(
        h(
          "section",
          { class: "tier", "aria-labelledby": headingId, "data-tier": t.tier },
          h("h2", { id: headingId }, t.title, " ", zh(t.zh), h("span", { class: "count" }, ` ${shown.length === all.length ? all.length : `${shown.length} of ${all.length}`}`)),
          shown.length ? h("div", { class: "tiles" }, shown.map(tile)) : h("p", { class: "muted" }, "No cluster matches the filter."),
        ),
      );
    }
    if (focusKey) {
      const again = sections.querySelector(`[data-cluster="${focusKey[0]}"] [data-action="${focusKey[1]}"]`)
        || sections.querySelector(`[data-cluster="${focusKey[0]}"] button`);
      if (again) again.focus();
    }
  }

  return {
    el,
    title: "Clusters",
    async refresh() {
      clusters = await ctx.clusters(true);
      draw();
    },
  };
}
