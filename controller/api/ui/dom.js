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
