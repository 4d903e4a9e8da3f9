// Submit / Plan: a job form. "Plan" asks POST /v1/plan where the job would go (nothing is
// created); "Submit" creates it with an Idempotency-Key that is new for each form fill, so a
// retried or double submission never creates two jobs. Problem+json errors are shown on the
// field each errors[].path names. The form does no validation of its own: the API decides.
import { ApiError, newIdempotencyKey, post, get } from "./api.js";
import { renderDecision } from "./decision.js";
import { clear, h, bytes, zh } from "./dom.js";

// errors[].path prefix -> field id
const FIELDS = [
  ["tenant", "f-tenant"],
  ["name", "f-name"],
  ["resources.cpu", "f-cpu"],
  ["resources.memory_gib", "f-memory"],
  ["resources.gpu", "f-gpu"],
  ["replicas", "f-replicas"],
  ["inputs", "f-inputs"],
  ["constraints.allow_clusters", "f-allow"],
  ["constraints.deny_clusters", "f-deny"],
];

let draft = null; // the form's values survive a visit to another view

function fieldFor(path) {
  const hit = FIELDS.find(([prefix]) => path === prefix || path.startsWith(`${prefix}[`) || path.startsWith(`${prefix}.`));
  return hit ? hit[1] : null;
}

export function create(ctx) {
  let key = newIdempotencyKey();
  const keyText = h("code", { id: "idem-key" }, key);

  function field(id, label, control, hint) {
    const hintId = hint ? `${id}-hint` : null;
    control.id = id;
    if (hintId) control.setAttribute("aria-describedby", hintId);
    return h("div", { class: "field", "data-field": id },
      h("label", { for: id }, label),
      control,
      hint ? h("p", { class: "hint", id: hintId }, hint) : null,
      h("p", { class: "field-error", id: `${id}-error`, hidden: true }));
  }

  const tenantList = h("datalist", { id: "submit-tenants" });
  const inputs = h("select", { name: "inputs", multiple: true, size: "6" });
  const allow = h("select", { name: "allow", multiple: true, size: "6" });
  const deny = h("select", { name: "deny", multiple: true, size: "6" });
  const multiHint = "Ctrl/⌘-click or Shift+arrows to choose several.";
  const form = h(
    "form",
    { class: "job-form", novalidate: true, "aria-labelledby": "submit-title", onsubmit: (e) => { e.preventDefault(); send(e.submitter?.value || "plan"); } },
    h("div", { class: "errors-summary", id: "form-errors", role: "alert", tabindex: "-1", hidden: true }),
    h("fieldset", {}, h("legend", {}, "Who and what ", zh("作业")),
      h("div", { class: "grid2" },
        field("f-tenant", "Tenant (province, ministry or national)", h("input", { name: "tenant", type: "text", list: "submit-tenants", autocomplete: "off", spellcheck: "false", required: true })),
        field("f-name", "Job name", h("input", { name: "name", type: "text", autocomplete: "off", spellcheck: "false", required: true }), "lower case letters, digits and -")),
      tenantList),
    h("fieldset", {}, h("legend", {}, "Resources per replica ", zh("资源")),
      h("div", { class: "grid4" },
        field("f-cpu", "CPU (cores)", h("input", { name: "cpu", type: "number", inputmode: "decimal", step: "any", value: "1" })),
        field("f-memory", "Memory (GiB)", h("input", { name: "memory", type: "number", inputmode: "decimal", step: "any", value: "1" })),
        field("f-gpu", "GPU", h("input", { name: "gpu", type: "number", inputmode: "numeric", step: "1", value: "0" })),
        field("f-replicas", "Replicas (gang)", h("input", { name: "replicas", type: "number", inputmode: "numeric", step: "1", value: "1" })))),
    h("fieldset", {}, h("legend", {}, "Data and placement ", zh("数据与放置")),
      h("div", { class: "grid3" },
        field("f-inputs", "Input data sets", inputs, multiHint),
        field("f-allow", "Allow only these clusters", allow, "None chosen: any cluster."),
        field("f-deny", "Never these clusters", deny, "None chosen: no cluster excluded."))),
    h("div", { class: "form-actions" },
      h("button", { type: "submit", name: "action", value: "plan", class: "secondary" }, "Plan ", zh("预演", "zh-inline")),
      h("button", { type: "submit", name: "action", value: "submit", class: "primary" }, "Submit ", zh("提交", "zh-inline")),
      h("button", { type: "button", onclick: reset }, "Reset"),
      h("p", { class: "hint key" }, "Idempotency-Key for this form fill: ", keyText)),
  );
  const result = h("div", { class: "result", id: "submit-result", "aria-live": "polite" });
  const el = h(
    "section",
    { class: "view submit", "aria-labelledby": "submit-title" },
    h("div", { class: "view-head" }, h("h1", { id: "submit-title" }, "Submit / Plan ", zh("提交 / 预演"))),
    h("p", { class: "muted" }, "Plan shows where the job would go and why, creating nothing. Submit creates the job."),
    form,
    result,
  );
  // The multi-selects' hints say what is chosen, since a chosen option may be scrolled out of view.
  const hints = [[inputs, "f-inputs", multiHint], [allow, "f-allow", "None chosen: any cluster."], [deny, "f-deny", "None chosen: no cluster excluded."]];
  function describeChoices() {
    for (const [sel, id, empty] of hints) {
      const chosen = selected(sel);
      const hint = form.querySelector(`#${id}-hint`);
      if (hint) hint.textContent = chosen.length ? `${chosen.length} chosen: ${chosen.join(", ")}` : empty;
    }
  }
  form.addEventListener("change", describeChoices);
  form.addEventListener("input", () => saveDraft());
  form.addEventListener("change", () => saveDraft());

  const $ = (id) => form.querySelector(`#${id}`);
  const selected = (sel) => [...sel.selectedOptions].map((o) => o.value);

  function saveDraft() {
    draft = {
      key,
      values: Object.fromEntries(["f-tenant", "f-name", "f-cpu", "f-memory", "f-gpu", "f-replicas"].map((id) => [id, $(id).value])),
      inputs: selected(inputs),
      allow: selected(allow),
      deny: selected(deny),
    };
  }

  function restoreDraft() {
    if (!draft) return;
    key = draft.key;
    keyText.textContent = key;
    for (const [id, v] of Object.entries(draft.values)) $(id).value = v;
  }

  function reset() {
    form.reset();
    for (const sel of [inputs, allow, deny]) for (const o of sel.options) o.selected = false;
    newKey();
    clearErrors();
    clear(result);
    draft = null;
    describeChoices();
  }

  function newKey() {
    key = newIdempotencyKey();
    keyText.textContent = key;
    if (draft) draft.key = key;
  }

  function number(id) {
    const raw = $(id).value.trim();
    if (raw === "") return undefined;
    const n = Number(raw);
    return Number.isFinite(n) ? n : raw; // an unparsable value goes to the API, which says why
  }

  function body() {
    const resources = {};
    for (const [k, id] of [["cpu", "f-cpu"], ["memory_gib", "f-memory"], ["gpu", "f-gpu"]]) {
      const v = number(id);
      if (v !== undefined) resources[k] = v;
    }
    const job = { tenant: $("f-tenant").value.trim(), name: $("f-name").value.trim(), resources, inputs: selected(inputs), constraints: {} };
    const replicas = number("f-replicas");
    if (replicas !== undefined) job.replicas = replicas;
    if (selected(allow).length) job.constraints.allow_clusters = selected(allow);
    if (selected(deny).length) job.constraints.deny_clusters = selected(deny);
    return job;
  }

  function clearErrors() {
    const summary = form.querySelector("#form-errors");
    summary.hidden = true;
    clear(summary);
    for (const p of form.querySelectorAll(".field-error")) {
      p.hidden = true;
      p.textContent = "";
    }
    for (const c of form.querySelectorAll("[aria-invalid]")) {
      c.removeAttribute("aria-invalid");
      const hint = c.id && form.querySelector(`#${c.id}-hint`);
      if (hint) c.setAttribute("aria-describedby", hint.id);
      else c.removeAttribute("aria-describedby");
    }
  }

  function showProblem(err) {
    const p = err.problem || {};
    const summary = form.querySelector("#form-errors");
    clear(summary).append(h("p", {}, h("strong", {}, p.title || "Error"), p.status ? ` (${p.status})` : "", p.detail ? `: ${p.detail}` : ""));
    const items = [];
    for (const e of p.errors || []) {
      const id = fieldFor(e.path || "");
      const text = `${e.path}: ${e.message}`;
      if (id) {
        const control = $(id);
        const msg = form.querySelector(`#${id}-error`);
        msg.textContent = msg.textContent ? `${msg.textContent}; ${e.message}` : e.message;
        msg.hidden = false;
        control.setAttribute("aria-invalid", "true");
        const hint = form.querySelector(`#${id}-hint`);
        control.setAttribute("aria-describedby", [msg.id, hint ? hint.id : null].filter(Boolean).join(" "));
        items.push(h("li", {}, h("a", { href: `#${id}`, onclick: (ev) => { ev.preventDefault(); control.focus(); } }, text)));
      } else {
        items.push(h("li", {}, text));
      }
    }
    if (items.length) summary.append(h("ul", {}, items));
    if (err.status === 401 || err.status === 403) summary.append(h("p", {}, "Enter an operator bearer token under “Token”."));
    summary.hidden = false;
    summary.focus();
  }

  async function send(action) {
    clearErrors();
    const buttons = form.querySelectorAll("button");
    buttons.forEach((b) => (b.disabled = true));
    clear(result).append(h("p", { class: "muted" }, action === "plan" ? "Planning…" : "Submitting…"));
    try {
      await ctx.clusters();
      if (action === "plan") {
        const { data } = await post("/v1/plan", body());
        clear(result).append(h("h2", {}, "Plan ", zh("预演"), h("span", { class: "muted small" }, " — nothing created")), renderDecision(ctx, data, { plan: true }));
      } else {
        const { status, data } = await post("/v1/jobs", body(), { "Idempotency-Key": key });
        const link = h("a", { href: `#/jobs/${encodeURIComponent(data.id)}`, "data-created": data.id }, `${data.spec.name} (${data.id})`);
        const what = status === 201 ? "Created job " : "Already submitted with this key: job ";
        clear(result).append(h("div", { class: "notice success", role: "status" }, h("p", {}, what, link, " — ", data.phase, ". "), h("p", { class: "small" }, "The next submission is a new form fill with a new Idempotency-Key.")));
        ctx.announce(`${what}${data.id}`);
        newKey();
      }
    } catch (err) {
      clear(result);
      if (err instanceof ApiError) showProblem(err);
      else ctx.showError(err);
    } finally {
      buttons.forEach((b) => (b.disabled = false));
    }
  }

  let loaded = false;
  return {
    el,
    title: "Submit / Plan",
    async refresh() {
      if (loaded) return; // never redraw a form being filled in
      const [clusters, datasets] = await Promise.all([ctx.clusters(), get("/v1/datasets")]);
      loaded = true;
      tenantList.append(...[...new Set(clusters.map((c) => c.tenant))].sort().map((t) => h("option", { value: t })));
      if (!datasets.items.length) inputs.append(h("option", { disabled: true, value: "" }, "The catalogue has no data sets"));
      inputs.append(...datasets.items.map((d) =>
        h("option", { value: d.id, selected: draft?.inputs.includes(d.id) }, `${d.id} — ${d.classification}, ${d.owner}, ${bytes(d.size_bytes)}`)));
      const tiers = [["national", "National"], ["province", "Provinces"], ["department", "Ministries"]];
      for (const [sel, chosen] of [[allow, draft?.allow || []], [deny, draft?.deny || []]]) {
        sel.append(...tiers.map(([tier, label]) => h("optgroup", { label },
          clusters.filter((c) => c.tier === tier).map((c) => h("option", { value: c.name, selected: chosen.includes(c.name) }, `${c.name} ${c.display_name_zh || ""}`.trim())))));
      }
      restoreDraft();
      describeChoices();
    },
  };
}
