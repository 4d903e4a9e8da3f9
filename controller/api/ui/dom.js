// Small DOM and formatting helpers. Everything is built with createElement and textContent:
// no markup is parsed from strings, so nothing the API returns can become HTML.

/** h("div", {class: "x", onclick: fn, "aria-label": "y"}, child, "text", [more]) */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "class") {
      el.className = value;
    } else if (key === "dataset") {
      Object.assign(el.dataset, value);
    } else if (key === "text") {
      el.textContent = value;
    } else if (value === true) {
      el.setAttribute(key, "");
    } else {
      el.setAttribute(key, String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Chinese text, marked so screen readers switch language. */
export function zh(text, cls = "zh") {
  return text ? h("span", { lang: "zh-CN", class: cls }, text) : null;
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

/** Replace el's children (null, undefined and false are skipped, arrays flattened, as in h). */
export function fill(el, ...children) {
  clear(el);
  append(el, children);
  return el;
}

const NUM = new Intl.NumberFormat("en-US", { maximumFractionDigits: 1 });
const NUM2 = new Intl.NumberFormat("en-US", { maximumFractionDigits: 2 });

export function num(n, digits = 1) {
  if (n === null || n === undefined || Number.isNaN(n)) return "–";
  return (digits === 2 ? NUM2 : NUM).format(n);
}

export function bytes(n) {
  if (!n) return "0 B";
  const units = ["B", "KB", "MB", "GB", "TB", "PB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i += 1;
  }
  return `${NUM.format(n)} ${units[i]}`;
}

export function seconds(s) {
  if (!s) return "0 s";
  if (s < 60) return `${NUM.format(s)} s`;
  if (s < 3600) return `${NUM.format(s / 60)} min`;
  return `${NUM.format(s / 3600)} h`;
}

export function time(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  // sv-SE gives an ISO-like "2026-11-27 07:52:57" in the browser's time zone.
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString("sv-SE", { hour12: false });
}

export function clock(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleTimeString("en-GB", { hour12: false });
}

/** A horizontal bar: value of max, with a text label; role=img so it is read as one sentence. */
export function bar(value, max, label, { warnAt = 0.85 } = {}) {
  const ratio = max > 0 ? Math.min(1, Math.max(0, value / max)) : 0;
  const fill = h("span", { class: ratio >= warnAt ? "fill warn" : "fill" });
  fill.style.width = `${(ratio * 100).toFixed(1)}%`; // CSSOM, allowed by the CSP (no inline style attribute)
  return h("span", { class: "bar", role: "img", "aria-label": label }, fill);
}

export const PHASES = ["Pending", "Scheduled", "Running", "Succeeded", "Failed", "Cancelled"];
export const TERMINAL = new Set(["Succeeded", "Failed", "Cancelled"]);

export function phaseBadge(phase) {
  return h("span", { class: `badge phase-${String(phase).toLowerCase()}` }, phase);
}

const SVG_NS = "http://www.w3.org/2000/svg";

/** An SVG element (same calling convention as h; attributes are set as they are). */
export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.setAttribute("class", value);
    else if (key === "text") el.textContent = value;
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

export const HEALTH_ZH = { Ready: "就绪", Unknown: "未知", Unreachable: "不可达" };
export const CLASS_ZH = { general: "一般数据", important: "重要数据", core: "核心数据" };

export function healthBadge(health) {
  return h("span", { class: `badge health-${String(health).toLowerCase()}`, "data-health": health }, health, " ", zh(HEALTH_ZH[health], "zh-inline"));
}

/** Health plus cordon/drain as badges, in the words the operator acts on. */
export function stateBadges(c) {
  const out = [healthBadge(c.health)];
  if (c.draining) out.push(h("span", { class: "badge state-draining", "data-state": "draining" }, "Draining ", zh("排空中", "zh-inline")));
  else if (c.cordoned) out.push(h("span", { class: "badge state-cordoned", "data-state": "cordoned" }, "Cordoned ", zh("已封锁", "zh-inline")));
  return out;
}

export function classBadge(classification) {
  return h("span", { class: `badge class-${classification}`, "data-classification": classification }, classification, " ", zh(CLASS_ZH[classification], "zh-inline"));
}

/** The short Chinese name of a province or cluster: 广东省 → 广东, 新疆生产建设兵团 → 兵团. */
export function shortZh(name) {
  if (!name) return "";
  if (name.includes("兵团")) return "兵团";
  for (const suffix of ["维吾尔自治区", "壮族自治区", "回族自治区", "特别行政区", "自治区", "省", "市"]) {
    if (name.endsWith(suffix) && name.length > suffix.length) return name.slice(0, -suffix.length);
  }
  return name;
}

export function pct(value, max) {
  if (!(max > 0)) return "–";
  const p = (100 * value) / max;
  return `${p > 0 && p < 1 ? "<1" : Math.round(p)}%`;
}

/** "3 min ago", from an ISO time (or a Date). */
export function ago(iso) {
  if (!iso) return "–";
  const t = new Date(iso).getTime();
  if (Number.isNaN(t)) return String(iso);
  const s = Math.max(0, (Date.now() - t) / 1000);
  if (s < 60) return `${Math.round(s)} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${NUM.format(s / 3600)} h ago`;
  return `${NUM.format(s / 86400)} d ago`;
}

/** A link to a cluster's page: "prov-hubei 湖北省". */
export function clusterLink(ctx, name) {
  if (!name) return "–";
  return h("a", { href: `#/clusters/${encodeURIComponent(name)}`, class: "cluster-link" }, ctx.clusterName(name));
}

/** Table cells whose content is one box, so a stacked (phone) row keeps it beside its label. */
export function td(attrs, ...children) {
  return h("td", attrs, h("span", { class: "cell" }, ...children));
}

export function th(attrs, ...children) {
  return h("th", attrs, h("span", { class: "cell" }, ...children));
}

/** A card section with a bilingual heading. */
export function card(id, title, titleZh, ...body) {
  return h("section", { class: "card", "aria-labelledby": id }, h("h2", { id }, title, " ", zh(titleZh)), ...body);
}

/** Parameters of the current hash route (#/view?a=1&b=2). */
export function hashParams() {
  const q = location.hash.split("?")[1] || "";
  return new URLSearchParams(q);
}
