// The federation map: the 32 provincial platforms as a tile-grid cartogram (each on the grid cell
// nearest its capital's coordinates, computed by the controller: GET /v1/federation/map), the two
// national nodes and the ministries beside it. Each tile shows health, CPU allocated and the
// cluster's jobs and its tenant's queue, coloured when Unreachable, cordoned or draining, and
// opens the cluster's page. Failovers and drains of the last hour are arrows from the cluster
// the jobs left to where they were placed next (from the job events). Arrow keys move between
// tiles by position.
import { get } from "./api.js";
import { ago, bar, clear, clock, fill, h, HEALTH_ZH, pct, shortZh, svg, zh } from "./dom.js";

const STATES = [
  { key: "unreachable", text: "Unreachable", zh: "不可达" },
  { key: "draining", text: "Draining", zh: "排空中" },
  { key: "cordoned", text: "Cordoned", zh: "已封锁" },
  { key: "unknown", text: "Unknown", zh: "未知" },
  { key: "ready", text: "Ready", zh: "就绪" },
];
const KIND = { failover: { text: "Failover", zh: "故障转移" }, drain: { text: "Drain", zh: "排空" } };

/** The one state a tile is coloured by: Unreachable first, then draining, cordoned, Unknown. */
export function tileState(c) {
  if (c.health === "Unreachable") return "unreachable";
  if (c.draining) return "draining";
  if (c.cordoned) return "cordoned";
  if (c.health === "Unknown") return "unknown";
  return "ready";
}

function stateInfo(key) {
  return STATES.find((s) => s.key === key);
}

export function create(ctx) {
  let clusters = [];
  let layout = null;
  const summary = h("p", { class: "summary-line" });
  const grid = h("div", { class: "province-grid", role: "group", "aria-label": "Provincial platforms, placed by their capitals' coordinates" });
  const national = h("div", { class: "side-tiles national-tiles" });
  const ministries = h("div", { class: "side-tiles ministry-tiles" });
  const layer = svg("svg", { class: "flow-layer", "aria-hidden": "true", focusable: "false" });
  const board = h(
    "div",
    { class: "map-board", onkeydown: onKey },
    h("div", { class: "map-provinces" }, grid),
    h(
      "div",
      { class: "map-side" },
      h("h2", { id: "map-national" }, "National nodes ", zh("国家节点")),
      national,
      h("h2", { id: "map-ministries" }, "Ministries ", zh("部委平台")),
      ministries,
    ),
    layer,
  );
  const flowList = h("ul", { class: "flow-list" });
  const attention = h("ul", { class: "attention-list" });
  const legend = h(
    "ul",
    { class: "legend", "aria-label": "Legend" },
    STATES.map((s) => h("li", {}, h("span", { class: `swatch st-${s.key}`, "aria-hidden": "true" }), s.text, " ", zh(s.zh, "zh-inline"))),
    h("li", {}, h("span", { class: "swatch-arrow failover", "aria-hidden": "true" }), "Failover ", zh("故障转移", "zh-inline")),
    h("li", {}, h("span", { class: "swatch-arrow drain", "aria-hidden": "true" }), "Drain ", zh("排空", "zh-inline")),
  );
  const el = h(
    "section",
    { class: "view map", "aria-labelledby": "map-title" },
    h("div", { class: "view-head" }, h("h1", { id: "map-title" }, "Federation map ", zh("联邦地图")), legend),
    summary,
    h("div", { class: "map-wrap" }, board),
    h(
      "div",
      { class: "map-lists" },
      h("section", { class: "card", "aria-labelledby": "flows-title" }, h("h2", { id: "flows-title" }, "Failovers and drains, last hour ", zh("故障转移与排空")), flowList),
      h("section", { class: "card", "aria-labelledby": "attention-title" }, h("h2", { id: "attention-title" }, "Needs attention ", zh("需关注")), attention),
    ),
  );

  const resize = new ResizeObserver(() => drawFlows());
  resize.observe(board);

  function tile(c, where) {
    const act = layout.activity[c.name] || { scheduled: 0, running: 0, pending: null };
    const cap = c.effective_capacity || c.capacity;
    const state = tileState(c);
    const info = stateInfo(state);
    const cpu = pct(c.allocated.cpu, cap.cpu);
    const running = act.running + act.scheduled;
    const queue = act.pending === null ? null : act.pending;
    const flags = [c.health === "Unreachable" ? null : c.health, c.draining ? "draining" : c.cordoned ? "cordoned" : null].filter(Boolean);
    const label = `${c.display_name} ${c.display_name_zh || ""}: ${c.health === "Unreachable" ? "Unreachable" : flags.join(", ")}; CPU ${cpu} allocated; `
      + `${running} job${running === 1 ? "" : "s"} placed${queue === null ? "" : `, ${queue} queued for ${c.tenant}`}`;
    const a = h(
      "a",
      {
        class: `mtile st-${state}`,
        href: `#/clusters/${encodeURIComponent(c.name)}`,
        "data-cluster": c.name,
        "data-state": state,
        "aria-label": label,
        title: `${c.name} — ${label}`,
      },
      h("span", { class: "mt-name" },
        h("span", { class: "mt-zh", lang: "zh-CN" }, where === "province" ? shortZh(c.display_name_zh) : c.display_name_zh || c.name),
        " ", h("span", { class: "mt-en" }, where === "province" ? c.display_name : c.name)),
      state === "ready" ? null : h("span", { class: "mt-state" }, info.text, " ", h("span", { lang: "zh-CN" }, info.zh)),
      bar(c.allocated.cpu, cap.cpu, `CPU ${cpu} allocated`),
      h("span", { class: "mt-nums" }, h("span", { "data-num": "cpu" }, cpu), " · ", h("span", { "data-num": "running", title: "jobs placed (Scheduled or Running)" }, `R${running}`),
        queue === null ? null : [" · ", h("span", { "data-num": "queue", title: `Pending jobs of ${c.tenant}` }, `Q${queue}`)]),
    );
    return a;
  }

  function draw() {
    const focused = document.activeElement?.closest?.(".mtile")?.dataset.cluster;
    const byName = new Map(clusters.map((c) => [c.name, c]));
    grid.style.gridTemplateColumns = `repeat(${layout.cols}, minmax(0, 1fr))`;
    grid.style.gridTemplateRows = `repeat(${layout.rows}, auto)`;
    clear(grid);
    for (const t of layout.tiles) {
      const c = byName.get(t.cluster);
      if (!c) continue;
      const a = tile(c, "province");
      a.dataset.row = String(t.row);
      a.dataset.col = String(t.col);
      a.style.gridRow = String(t.row + 1);
      a.style.gridColumn = String(t.col + 1);
      grid.append(a);
    }
    fill(national, ...layout.national.filter((n) => byName.has(n)).map((n) => tile(byName.get(n), "national")));
    fill(ministries, ...layout.departments.filter((n) => byName.has(n)).map((n) => tile(byName.get(n), "department")));
    if (focused) board.querySelector(`.mtile[data-cluster="${CSS.escape(focused)}"]`)?.focus();

    const count = (pred) => clusters.filter(pred).length;
    const acts = Object.values(layout.activity);
    const queued = acts.some((a) => a.pending !== null)
      ? [...new Set(clusters.map((c) => c.tenant))].reduce((sum, t) => {
        const c = clusters.find((x) => x.tenant === t);
        return sum + (layout.activity[c.name]?.pending || 0);
      }, 0)
      : null;
    const placed = acts.reduce((s, a) => s + a.running + a.scheduled, 0);
    fill(summary, 
      h("strong", {}, `${clusters.length} clusters`),
      ` · ${count((c) => c.health === "Ready")} Ready · ${count((c) => c.health === "Unknown")} Unknown · ${count((c) => c.health === "Unreachable")} Unreachable`,
      ` · ${count((c) => c.cordoned && !c.draining)} cordoned · ${count((c) => c.draining)} draining · ${placed} jobs placed`,
      queued === null ? "" : ` · ${queued} queued`,
    );

    clear(flowList);
    if (!layout.flows.length) flowList.append(h("li", { class: "muted" }, "No failovers or drains in the last hour."));
    for (const f of layout.flows) {
      const k = KIND[f.kind];
      flowList.append(
        h(
          "li",
          { "data-flow": `${f.from_cluster}>${f.to_cluster || ""}`, "data-kind": f.kind },
          h("span", { class: `badge flow-${f.kind}` }, k.text, " ", zh(k.zh, "zh-inline")), " ",
          h("a", { href: `#/clusters/${encodeURIComponent(f.from_cluster)}` }, ctx.clusterName(f.from_cluster)),
          " → ",
          f.to_cluster ? h("a", { href: `#/clusters/${encodeURIComponent(f.to_cluster)}` }, ctx.clusterName(f.to_cluster)) : h("em", {}, "not placed again yet"),
          `: ${f.jobs} job${f.jobs === 1 ? "" : "s"}, last at ${clock(f.last_at)} (${ago(f.last_at)})`,
        ),
      );
    }

    clear(attention);
    const odd = clusters.filter((c) => tileState(c) !== "ready");
    if (!odd.length) attention.append(h("li", { class: "muted" }, "Every cluster is Ready and schedulable."));
    for (const c of odd) {
      const info = stateInfo(tileState(c));
      attention.append(
        h("li", { "data-cluster": c.name },
          h("span", { class: `swatch st-${tileState(c)}`, "aria-hidden": "true" }),
          h("a", { href: `#/clusters/${encodeURIComponent(c.name)}` }, ctx.clusterName(c.name)),
          ` — ${info.text} `, zh(info.zh, "zh-inline"),
          c.health !== "Ready" && tileState(c) !== "unreachable" && tileState(c) !== "unknown" ? ` (${c.health} ${HEALTH_ZH[c.health] || ""})` : "",
          c.last_heartbeat ? h("span", { class: "muted small" }, ` · last heartbeat ${ago(c.last_heartbeat)}`) : null),
      );
    }
    requestAnimationFrame(drawFlows);
  }

  function centre(name, box) {
    const t = board.querySelector(`.mtile[data-cluster="${CSS.escape(name)}"]`);
    if (!t) return null;
    const r = t.getBoundingClientRect();
    return { x: r.left - box.left + r.width / 2, y: r.top - box.top + r.height / 2, w: r.width, hgt: r.height };
  }

  function drawFlows() {
    if (!layout || !board.isConnected) return;
    const box = board.getBoundingClientRect();
    layer.setAttribute("viewBox", `0 0 ${Math.max(1, box.width)} ${Math.max(1, box.height)}`);
    layer.setAttribute("width", String(box.width));
    layer.setAttribute("height", String(box.height));
    clear(layer);
    layer.append(
      svg("defs", {},
        ["failover", "drain"].map((k) =>
          svg("marker", { id: `arrow-${k}`, viewBox: "0 0 10 10", refX: "8", refY: "5", markerWidth: "5", markerHeight: "5", orient: "auto-start-reverse" },
            svg("path", { d: "M0,0 L10,5 L0,10 z", class: `arrowhead ${k}` })))),
    );
    for (const f of layout.flows) {
      if (!f.to_cluster || f.to_cluster === f.from_cluster) continue; // placed again on the same cluster: listed, not drawn
      const a = centre(f.from_cluster, box);
      const b = centre(f.to_cluster, box);
      if (!a || !b) continue;
      const dx = b.x - a.x;
      const dy = b.y - a.y;
      const len = Math.hypot(dx, dy) || 1;
      const ux = dx / len;
      const uy = dy / len;
      // Start and end a little inside each tile's edge, bend to one side so opposite flows differ.
      const inset = Math.min(a.w, a.hgt) * 0.3;
      const x1 = a.x + ux * inset;
      const y1 = a.y + uy * inset;
      const x2 = b.x - ux * inset;
      const y2 = b.y - uy * inset;
      const bend = Math.min(60, len * 0.2);
      const cx = (x1 + x2) / 2 - uy * bend;
      const cy = (y1 + y2) / 2 + ux * bend;
      const width = Math.min(8, 2 + Math.log2(f.jobs + 1));
      const path = svg("path", {
        d: `M${x1.toFixed(1)},${y1.toFixed(1)} Q${cx.toFixed(1)},${cy.toFixed(1)} ${x2.toFixed(1)},${y2.toFixed(1)}`,
        class: `flow ${f.kind}`,
        "stroke-width": width.toFixed(1),
        "marker-end": `url(#arrow-${f.kind})`,
        "data-from": f.from_cluster,
        "data-to": f.to_cluster,
      });
      const mx = 0.25 * x1 + 0.5 * cx + 0.25 * x2;
      const my = 0.25 * y1 + 0.5 * cy + 0.25 * y2;
      layer.append(path, svg("g", { class: `flow-count ${f.kind}` },
        svg("circle", { cx: mx.toFixed(1), cy: my.toFixed(1), r: "10" }),
        svg("text", { x: mx.toFixed(1), y: (my + 4).toFixed(1), "text-anchor": "middle", text: String(f.jobs) })));
    }
  }

  /** Arrow keys: to the nearest tile in that direction (by position on screen). */
  function onKey(e) {
    const dirs = { ArrowRight: [1, 0], ArrowLeft: [-1, 0], ArrowDown: [0, 1], ArrowUp: [0, -1] };
    const dir = dirs[e.key];
    const from = e.target.closest?.(".mtile");
    if (!dir || !from) return;
    const r0 = from.getBoundingClientRect();
    const x0 = r0.left + r0.width / 2;
    const y0 = r0.top + r0.height / 2;
    let best = null;
    for (const t of board.querySelectorAll(".mtile")) {
      if (t === from) continue;
      const r = t.getBoundingClientRect();
      const dx = r.left + r.width / 2 - x0;
      const dy = r.top + r.height / 2 - y0;
      const along = dx * dir[0] + dy * dir[1];
      if (along < 4) continue;
      const across = Math.abs(dx * dir[1] + dy * dir[0]);
      const score = along + 2 * across;
      if (!best || score < best.score) best = { t, score };
    }
    if (best) {
      e.preventDefault();
      best.t.focus();
    }
  }

  return {
    el,
    title: "Federation map",
    async refresh() {
      const [cs, m] = await Promise.all([ctx.clusters(true), get("/v1/federation/map")]);
      clusters = cs;
      layout = m;
      draw();
    },
    dispose() {
      resize.disconnect();
    },
  };
}
