// A small time-series chart in SVG, drawn by hand (no library): a line with a light area for
// gauges and rates, columns for counts per interval; a 0 / half / max scale on the left and the
// window's start and end times below. The chart is one image to assistive technology, described
// by a sentence (latest, lowest and highest value over the window).
import { bytes, clock, num, svg } from "./dom.js";

const W = 360;
const H = 132;
const PAD = { left: 44, right: 8, top: 8, bottom: 20 };

/** The smallest 1, 2 or 5 x 10^k at or above v (at least `floor`). */
export function niceMax(v, floor = 1) {
  if (!(v > floor)) return floor;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

export function formatValue(v, unit) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  if (unit === "%") return `${num(v)}%`;
  if (unit === "B/s") return `${bytes(v)}/s`;
  if (unit === "1/s") return `${num(v, 2)}/s`;
  return `${num(v)} ${v === 1 && unit.endsWith("s") ? unit.slice(0, -1) : unit}`;
}

function axisLabel(v, unit) {
  if (unit === "B/s") return bytes(v);
  if (unit === "%") return `${num(v)}%`;
  return num(v, 2);
}

/**
 * points: [[unixSeconds, value], ...] oldest first; start/end: the window in Unix seconds.
 * kind: "line" or "bars". Returns the <svg>.
 */
export function timeChart(points, { start, end, unit, kind = "line", label }) {
  const inWindow = points.filter(([t]) => t >= start && t <= end);
  const values = inWindow.map(([, v]) => v);
  const max = values.length ? Math.max(...values) : 0;
  const min = values.length ? Math.min(...values) : 0;
  const yMax = unit === "%" ? Math.min(100, niceMax(max, 10)) : niceMax(max, unit === "1/s" ? 0.1 : 1);
  const x = (t) => PAD.left + ((t - start) / Math.max(1, end - start)) * (W - PAD.left - PAD.right);
  const y = (v) => PAD.top + (1 - Math.min(v, yMax) / yMax) * (H - PAD.top - PAD.bottom);
  const last = inWindow.length ? inWindow[inWindow.length - 1][1] : null;
  const desc = inWindow.length
    ? `${label}: now ${formatValue(last, unit)}; lowest ${formatValue(min, unit)}, highest ${formatValue(max, unit)} from ${clock(new Date(start * 1000).toISOString())} to ${clock(new Date(end * 1000).toISOString())}`
    : `${label}: no samples in this window yet`;
  const chart = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: `chart chart-${kind}`, role: "img", "aria-label": desc, "data-max": String(max), "data-last": last === null ? "" : String(last) });
  for (const frac of [0, 0.5, 1]) {
    const gy = y(yMax * frac);
    chart.append(
      svg("line", { x1: PAD.left, x2: W - PAD.right, y1: gy.toFixed(1), y2: gy.toFixed(1), class: frac === 0 ? "axis" : "grid" }),
      svg("text", { x: PAD.left - 4, y: (gy + 3.5).toFixed(1), "text-anchor": "end", class: "tick", text: axisLabel(yMax * frac, unit) }),
    );
  }
  chart.append(
    svg("text", { x: PAD.left, y: H - 5, class: "tick", text: clock(new Date(start * 1000).toISOString()) }),
    svg("text", { x: W - PAD.right, y: H - 5, "text-anchor": "end", class: "tick", text: clock(new Date(end * 1000).toISOString()) }),
  );
  if (!inWindow.length) {
    chart.append(svg("text", { x: (W + PAD.left) / 2, y: H / 2, "text-anchor": "middle", class: "empty", text: "no samples yet" }));
    return chart;
  }
  if (kind === "bars") {
    const step = inWindow.length > 1 ? (x(inWindow[inWindow.length - 1][0]) - x(inWindow[0][0])) / (inWindow.length - 1) : 6;
    const bw = Math.max(1.5, Math.min(12, step * 0.8));
    for (const [t, v] of inWindow) {
      if (v <= 0) continue;
      chart.append(svg("rect", { x: (x(t) - bw / 2).toFixed(1), y: y(v).toFixed(1), width: bw.toFixed(1), height: (y(0) - y(v)).toFixed(1), class: "col" }));
    }
  } else {
    const line = inWindow.map(([t, v], i) => `${i ? "L" : "M"}${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
    const area = `${line} L${x(inWindow[inWindow.length - 1][0]).toFixed(1)},${y(0).toFixed(1)} L${x(inWindow[0][0]).toFixed(1)},${y(0).toFixed(1)} Z`;
    chart.append(svg("path", { d: area, class: "area" }), svg("path", { d: line, class: "line" }));
    const [lt, lv] = inWindow[inWindow.length - 1];
    chart.append(svg("circle", { cx: x(lt).toFixed(1), cy: y(lv).toFixed(1), r: "2.5", class: "dot" }));
  }
  return chart;
}
