// The dashboard shell: hash router, shared cluster cache, auto-refresh (paused while the tab is
// hidden), confirm dialog, token field, status and error banners.
import { ApiError, get, getToken, setToken } from "./api.js";
import { clear, clock, h, zh } from "./dom.js";
import * as audit from "./audit.js";
import * as charts from "./charts.js";
import * as cluster from "./cluster.js";
import * as data from "./data.js";
import * as drills from "./drills.js";
import * as federation from "./federation.js";
import * as jobs from "./jobs.js";
import * as map from "./map.js";
import * as submit from "./submit.js";
import * as tenants from "./tenants.js";

const REFRESH_MS = 5000;
const main = document.getElementById("main");
const banner = document.getElementById("banner");
const statusRegion = document.getElementById("status");
const refreshState = document.getElementById("refresh-state");
const autoRefresh = document.getElementById("auto-refresh");

let current = null; // { el, refresh, dispose }
let inflight = null;
let lastUpdated = null;
let clusterCache = { at: 0, items: [], byName: new Map(), promise: null };

const ctx = {
  async clusters(force = false) {
    const fresh = Date.now() - clusterCache.at < 3000;
    if (!force && fresh) return clusterCache.items;
    if (!clusterCache.promise) {
      clusterCache.promise = get("/v1/clusters")
        .then((data) => {
          clusterCache = { at: Date.now(), items: data.items, byName: new Map(data.items.map((c) => [c.name, c])), promise: null };
          return data.items;
        })
        .finally(() => {
          clusterCache.promise = null;
        });
    }
    return clusterCache.promise;
  },
  cluster(name) {
    return clusterCache.byName.get(name);
  },
  /** "prov-hubei 湖北省" as nodes; the Chinese name when the cluster is known. */
  clusterName(name) {
    if (!name) return "–";
    const c = clusterCache.byName.get(name);
    return h("span", { class: "cluster-name" }, h("code", {}, name), c ? [" ", zh(c.display_name_zh)] : null);
  },
  announce(message) {
    statusRegion.textContent = "";
    // A new text node each time so screen readers announce repeated messages too.
    setTimeout(() => (statusRegion.textContent = message), 30);
    const toast = document.getElementById("toast");
    toast.textContent = message;
    toast.hidden = false;
    clearTimeout(ctx._toastTimer);
    ctx._toastTimer = setTimeout(() => (toast.hidden = true), 6000);
  },
  showError(err) {
    if (!(err instanceof ApiError)) {
      console.error(err);
      err = new ApiError(0, { title: "Dashboard error", detail: String(err && err.message ? err.message : err) });
    }
    clear(banner);
    const p = err.problem || {};
    const hint =
      err.status === 401 || err.status === 403
        ? " The API needs an operator bearer token: enter it under “Token”."
        : "";
    banner.append(h("strong", {}, p.title || "Error"), " ", p.detail || "", hint);
    banner.append(h("button", { type: "button", class: "link", onclick: () => (banner.hidden = true) }, "Dismiss"));
    banner.hidden = false;
  },
  clearError() {
    banner.hidden = true;
  },
  confirm({ title, body, action, danger = false }) {
    const dialog = document.getElementById("confirm");
    document.getElementById("confirm-title").textContent = title;
    const bodyEl = clear(document.getElementById("confirm-body"));
    bodyEl.append(body);
    const ok = document.getElementById("confirm-ok");
    ok.textContent = action;
    ok.className = danger ? "danger" : "primary";
    return new Promise((resolve) => {
      const done = (value) => {
        dialog.removeEventListener("close", onClose);
        ok.removeEventListener("click", onOk);
        resolve(value);
      };
      const onOk = () => {
        dialog.returnValue = "ok";
        dialog.close();
      };
      const onClose = () => done(dialog.returnValue === "ok");
      dialog.returnValue = "";
      dialog.addEventListener("close", onClose);
      ok.addEventListener("click", onOk);
      dialog.showModal();
      document.getElementById("confirm-cancel").focus();
    });
  },
  navigate(hash) {
    location.hash = hash;
  },
  refresh: () => refresh(true),
};

document.getElementById("confirm-cancel").addEventListener("click", () => document.getElementById("confirm").close());

function route() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [path, query = ""] = raw.split("?");
  const params = new URLSearchParams(query);
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  if (parts[0] === "jobs" && parts[1]) return { view: "jobs", make: () => jobs.detail(ctx, parts[1]) };
  if (parts[0] === "jobs") return { view: "jobs", make: () => jobs.list(ctx, params) };
  if (parts[0] === "submit") return { view: "submit", make: () => submit.create(ctx) };
  if (parts[0] === "clusters" && parts[1]) return { view: "clusters", make: () => cluster.create(ctx, parts[1]) };
  if (parts[0] === "clusters" || parts[0] === "federation") return { view: "clusters", make: () => federation.create(ctx) };
  if (parts[0] === "tenants") return { view: "tenants", make: () => tenants.create(ctx, params) };
  if (parts[0] === "data") return { view: "data", make: () => data.create(ctx, params) };
  if (parts[0] === "charts") return { view: "charts", make: () => charts.create(ctx, params) };
  if (parts[0] === "audit") return { view: "audit", make: () => audit.create(ctx, params) };
  if (parts[0] === "drills" && parts[1]) return { view: "drills", make: () => drills.detail(ctx, parts[1]) };
  if (parts[0] === "drills") return { view: "drills", make: () => drills.list(ctx) };
  return { view: "map", make: () => map.create(ctx) };
}

function show(focus) {
  if (current && current.dispose) current.dispose();
  const { view, make } = route();
  for (const a of document.querySelectorAll("nav a[data-view]")) {
    if (a.dataset.view === view) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  current = make();
  clear(main).append(current.el);
  document.title = `${current.title || "Dashboard"} · Yiwang 一网`;
  if (focus) {
    const heading = main.querySelector("h1");
    if (heading) {
      heading.tabIndex = -1;
      heading.focus();
    }
  }
  refresh(true);
}

async function refresh(force = false) {
  if (!current || !current.refresh) return;
  if (!force && (document.hidden || !autoRefresh.checked)) return;
  if (!force && document.getElementById("confirm").open) return; // never change what a dialog talks about
  if (inflight) return force ? inflight.then(() => refresh(true)) : inflight;
  const view = current;
  inflight = (async () => {
    try {
      await view.refresh();
      if (view === current) {
        lastUpdated = new Date();
        ctx.clearError();
      }
    } catch (err) {
      if (view === current) ctx.showError(err);
    } finally {
      inflight = null;
      showRefreshState();
    }
  })();
  return inflight;
}

function showRefreshState() {
  let text;
  if (!autoRefresh.checked) text = "Auto-refresh off";
  else if (document.hidden) text = "Paused while hidden";
  else text = `Every ${REFRESH_MS / 1000} s`;
  if (lastUpdated) text += ` · updated ${clock(lastUpdated.toISOString())}`;
  refreshState.textContent = text;
}

// Token field: kept for this tab only (sessionStorage).
const tokenInput = document.getElementById("token");
tokenInput.value = getToken();
document.getElementById("token-form").addEventListener("submit", (e) => {
  e.preventDefault();
  setToken(tokenInput.value.trim());
  ctx.announce(tokenInput.value.trim() ? "Token saved for this tab" : "Token cleared");
  clusterCache.at = 0;
  refresh(true);
});
document.getElementById("token-clear").addEventListener("click", () => {
  tokenInput.value = "";
  setToken("");
  ctx.announce("Token cleared");
});

autoRefresh.addEventListener("change", () => {
  showRefreshState();
  if (autoRefresh.checked) refresh(true);
});
document.addEventListener("visibilitychange", () => {
  showRefreshState();
  if (!document.hidden) refresh();
});
window.addEventListener("hashchange", () => show(true));
setInterval(() => refresh(), REFRESH_MS);
show(false);
