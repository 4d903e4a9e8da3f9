// Time series of the federation (GET /v1/metrics/series): queue, running jobs, placements per
// second, CPU and GPU allocated, jobs failed over, fenced executions, estimated WAN bytes and
// unreachable clusters, over the last 5 minutes to an hour; redrawn on every refresh (5 s), so the
// charts follow the controller live. The points come from the controller's own samples or, when
// configured, from Prometheus; the note under the heading says which.
import { get } from "./api.js";
import { formatValue, timeChart } from "./chart.js";
import { fill, h, zh } from "./dom.js";

const WINDOWS = [[300, "5 min"], [900, "15 min"], [3600, "1 h"]];
const BARS = new Set(["failovers", "fenced"]);

export function create(ctx, params) {
  let windowS = Number(params.get("window")) || 900;
  if (!WINDOWS.some(([w]) => w === windowS)) windowS = 900;
  const select = h("select", { id: "chart-window" }, WINDOWS.map(([w, t]) => h("option", { value: String(w), selected: w === windowS }, t)));
  select.addEventListener("change", () => {
    windowS = Number(select.value);
    history.replaceState(null, "", `#/charts?window=${windowS}`);
    ctx.refresh();
  });
  const note = h("p", { class: "muted small", "data-source": "" });
  const grid = h("div", { class: "charts-grid" });
  const el = h(
    "section",
    { class: "view charts", "aria-labelledby": "charts-title" },
    h("div", { class: "view-head" }, h("h1", { id: "charts-title" }, "Federation over time ", zh("联邦运行趋势")),
      h("div", { class: "filter" }, h("label", { for: "chart-window" }, "Window"), select)),
    note,
    grid,
  );

  function draw(data) {
    const end = Date.now() / 1000;
    const start = end - data.window_s;
    note.textContent = `Source: ${data.source === "prometheus" ? "Prometheus" : "this controller's own samples"} — ${data.note}.`;
    note.dataset.source = data.source;
    fill(grid, ...data.series.map((s) => {
      const pts = s.points.filter(([t]) => t >= start);
      const last = pts.length ? pts[pts.length - 1][1] : null;
      const total = BARS.has(s.name) ? pts.reduce((sum, [, v]) => sum + v, 0) : null;
      const id = `chart-${s.name}`;
      return h(
        "figure",
        { class: "chart-card", "data-series": s.name, "aria-labelledby": id },
        h("figcaption", { id },
          h("span", { class: "chart-title" }, s.title, " ", zh(s.title_zh, "zh-inline")),
          h("span", { class: "chart-value", "data-value": last === null ? "" : String(last) },
            total === null ? formatValue(last, s.unit) : `${formatValue(total, s.unit)} in ${WINDOWS.find(([w]) => w === windowS)[1]}`)),
        timeChart(s.points, { start, end, unit: s.unit, kind: BARS.has(s.name) ? "bars" : "line", label: s.title }),
      );
    }));
  }

  return {
    el,
    title: "Charts",
    async refresh() {
      draw(await get(`/v1/metrics/series?window_s=${windowS}`));
    },
  };
}
