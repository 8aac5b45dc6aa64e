// autolabel review page: plain JavaScript, no build step, no third-party code.
// Everything a record contains is put into the page as text (textContent), never as HTML.
"use strict";

const REASONS = {
  audit: ["Audit", "A random check of a label the model would have accepted on its own. Answer what is true: audits measure the error of auto-accepted labels."],
  uncertain: ["Uncertain", "The model was not sure enough to label this itself."],
  drift: ["Drift", "Acceptance is paused while the service checks that the model still holds after a change in the data."],
  cold_start: ["Cold start", "The model is still learning: every record is reviewed until its labels can be certified."],
};
const STATS_EVERY_MS = 2000;
const LONG_POLL_S = 20;

const state = {
  csrf: null,
  token: null,
  request: null,
  labels: [],
  busy: false,
  undoWindow: 0,
  lastAnswer: null, // {id, label, until (ms timestamp), sent}
  poll: null, // AbortController of the pending GET /api/next
  active: -1, // highlighted suggestion
};

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else node.setAttribute(name, value);
  }
  for (const child of children) node.append(child);
  return node;
}

// ------------------------------------------------------------------ API

class ApiFailure extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(path, { method = "GET", body, signal } = {}) {
  const options = { method, signal, credentials: "same-origin", headers: {} };
  if (method === "POST") {
    options.headers["Content-Type"] = "application/json";
    options.headers["X-CSRF-Token"] = state.csrf;
    options.body = JSON.stringify(body || {});
  }
  const response = await fetch(path, options);
  if (response.status === 401) {
    window.location.assign("/login");
    throw new ApiFailure(401, "signed out");
  }
  let payload = null;
  try { payload = await response.json(); } catch (_) { payload = null; }
  if (!response.ok) {
    throw new ApiFailure(response.status, (payload && payload.error) || `the server answered ${response.status}`);
  }
  return payload;
}

// ------------------------------------------------------------------ rendering

function showOnly(which) {
  $("record").hidden = which !== "record";
  $("empty").hidden = which !== "empty";
  $("loading").hidden = which !== "loading";
}

function render(next) {
  state.request = next.request;
  state.token = next.token;
  state.labels = next.labels || [];
  const r = next.request;
  const hasRequest = r !== null;
  $("accept").disabled = !hasRequest || !r.predicted_label;
  $("skip").disabled = !hasRequest;
  $("other").disabled = !hasRequest;
  if (!hasRequest) {
    showOnly("empty");
    $("predicted").textContent = "–";
    $("predicted-p").textContent = "";
    $("choices").replaceChildren(el("li", { class: "choices-empty", text: "Waiting for the next request." }));
    return;
  }
  const [reasonName, reasonHelp] = REASONS[r.reason] || [r.reason, ""];
  const badge = $("reason");
  badge.className = `badge badge-${r.reason}`;
  badge.textContent = reasonName;
  $("reason-help").textContent = reasonHelp;
  $("priority-fill").style.width = `${Math.round(r.priority * 100)}%`;
  $("priority-value").textContent = r.priority.toFixed(2);
  $("record-id").textContent = r.id;
  const meta = [`model v${r.model_version}`, `requested ${ago(r.requested_at)}`];
  if (r.reason === "audit" && r.sample_weight > 1) meta.push(`stands for ${Math.round(r.sample_weight)} records`);
  $("record-meta").textContent = meta.join(" · ");
  renderDisplay(r.display);
  renderPayload(r);
  renderMetadata(r.metadata);
  renderPrediction(r);
  showOnly("record");
}

function renderDisplay(display) {
  const figure = $("display");
  figure.replaceChildren();
  figure.hidden = !display;
  if (!display) return;
  if (display.kind === "image") {
    figure.append(el("img", { src: display.src, alt: display.alt, referrerpolicy: "no-referrer" }));
  } else {
    figure.append(el("div", { class: "display-text", text: display.text }));
  }
  if (display.caption) figure.append(el("figcaption", { text: display.caption }));
}

function renderPayload(r) {
  const box = $("payload");
  box.replaceChildren();
  if (r.features) {
    const items = r.features.map(([name, value]) => el("div", { class: "feature" }, el("dt", { text: name }), el("dd", { text: value })));
    box.append(el("h3", { class: "section-title", id: "features-title", text: `Features · ${r.features.length}` }),
      el("dl", { class: "features", "aria-labelledby": "features-title" }, ...items));
  } else if (r.text !== null) {
    box.append(el("h3", { class: "section-title", text: "Text" }), el("div", { class: "payload-text", text: r.text }));
  } else if (r.embedding) {
    const head = r.embedding.head.join(", ");
    box.append(el("h3", { class: "section-title", text: "Embedding" }),
      el("p", { class: "payload-text mono", text: `${r.embedding.size} dimensions: [${head}${r.embedding.size > r.embedding.head.length ? ", …" : ""}]` }));
  }
}

function renderMetadata(metadata) {
  const details = $("metadata");
  details.hidden = !metadata.length;
  $("metadata-rows").replaceChildren(
    ...metadata.map(([key, value]) => el("tr", {}, el("th", { scope: "row", text: key }), el("td", { text: value }))));
}

function renderPrediction(r) {
  const top = r.choices[0];
  $("predicted").textContent = r.predicted_label || "no prediction yet";
  $("predicted").classList.toggle("predicted-none", !r.predicted_label);
  $("predicted-p").textContent = top && top.label === r.predicted_label ? percent(top.probability) : "";
  const list = $("choices");
  if (!r.choices.length) {
    list.replaceChildren(el("li", { class: "choices-empty", text: "The model has no prediction yet: type the label." }));
    return;
  }
  list.replaceChildren(...r.choices.map((choice, i) => {
    const fill = el("span");
    fill.style.width = `${Math.max(2, Math.round(choice.probability * 100))}%`;
    const button = el("button", {
      type: "button",
      class: `choice${i === 0 ? " choice-top" : ""}`,
      "aria-label": `${choice.label}, ${percent(choice.probability)}, key ${choice.key}`,
      "data-label": choice.label,
    },
    el("kbd", { text: choice.key }),
    el("span", { class: "choice-body" }, el("span", { class: "choice-label", text: choice.label }), el("span", { class: "bar", "aria-hidden": "true" }, fill)),
    el("span", { class: "choice-p", text: percent(choice.probability) }));
    button.addEventListener("click", () => give(choice.label));
    return el("li", {}, button);
  }));
}

function percent(p) {
  return `${(p * 100).toFixed(p >= 0.995 || p < 0.1 ? 1 : 0)}%`;
}

function ago(iso) {
  const seconds = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (seconds < 60) return "just now";
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.round(seconds / 3600)} h ago`;
  return `${Math.round(seconds / 86400)} d ago`;
}

// ------------------------------------------------------------------ the flow

// Shows the request on screen (claiming the next one); resolves once something is shown.
// With nothing to review it keeps listening in the background (long polls) until a
// request arrives or another action starts a new load.
async function loadNext() {
  if (state.poll) state.poll.abort();
  const controller = new AbortController();
  state.poll = controller;
  try {
    const next = await api("/api/next?wait=1", { signal: controller.signal });
    if (controller.signal.aborted) return;
    render(next);
    if (next.request === null) listen(controller);
  } catch (error) {
    if (error.name !== "AbortError") retryLater(controller, error);
  }
}

async function listen(controller) {
  try {
    for (;;) {
      const next = await api(`/api/next?wait=${LONG_POLL_S}`, { signal: controller.signal });
      if (controller.signal.aborted) return;
      render(next);
      if (next.request !== null) return;
    }
  } catch (error) {
    if (error.name !== "AbortError") retryLater(controller, error);
  }
}

function retryLater(controller, error) {
  toast(error.message, true);
  setTimeout(() => { if (state.poll === controller) loadNext(); }, 3000);
}

async function act(work) {
  if (state.busy) return;
  state.busy = true;
  document.body.setAttribute("aria-busy", "true");
  try {
    await work();
  } catch (error) {
    if (error.status === 409) { toast(error.message, true); await loadNext(); }
    else toast(error.message, true);
  } finally {
    state.busy = false;
    document.body.removeAttribute("aria-busy");
  }
}

function give(label) {
  if (!state.request || !label) return;
  const request = state.request;
  return act(async () => {
    const { answered } = await api("/api/answer", { method: "POST", body: { token: state.token, label } });
    state.lastAnswer = { ...answered, until: Date.now() + answered.undo_s * 1000 };
    closeSuggestions();
    $("other").value = "";
    if (document.activeElement === $("other")) $("other").blur();
    showAnswered(request.reason === "audit" && label !== request.predicted_label);
    showOnly("loading");
    state.request = null;
    await loadNext();
    refreshStats();
  });
}

function skip() {
  if (!state.request) return;
  return act(async () => {
    const { skipped } = await api("/api/skip", { method: "POST", body: { token: state.token } });
    toast(`Skipped ${skipped}: it comes back after the others.`);
    showOnly("loading");
    state.request = null;
    await loadNext();
    refreshStats();
  });
}

function undo() {
  return act(async () => {
    const { undone } = await api("/api/undo", { method: "POST", body: {} });
    state.lastAnswer = null;
    toast(`Took back the answer for ${undone}. It is on screen again.`);
    updateUndo();
    await loadNext();
    refreshStats();
  });
}

// ------------------------------------------------------------------ toast and undo

let toastTimer = null;
function toast(message, error = false) {
  const box = $("toast");
  clearInterval(toastTimer);
  box.className = `toast${error ? " toast-error" : ""}`;
  box.replaceChildren(el("span", { text: message }));
  box.hidden = false;
  toastTimer = setTimeout(() => { box.hidden = true; }, error ? 6000 : 3500);
}

function showAnswered(disagreedWithAudit) {
  const box = $("toast");
  clearTimeout(toastTimer);
  clearInterval(toastTimer);
  box.className = "toast";
  const tick = () => {
    const a = state.lastAnswer;
    if (!a) { box.hidden = true; clearInterval(toastTimer); return; }
    const left = Math.ceil((a.until - Date.now()) / 1000);
    const parts = [el("span", {}, "Answered ", el("span", { class: "toast-strong", text: a.id }), " as ", el("span", { class: "toast-strong", text: a.label }))];
    if (disagreedWithAudit) parts.push(el("span", { text: " · differs from the model" }));
    if (!a.sent && left > 0) {
      parts.push(el("span", {}, ` · sends in ${left} s · `, el("kbd", { text: "U" }), " undo"));
    } else {
      parts.push(el("span", { text: " · sent" }));
    }
    box.replaceChildren(...parts);
    box.hidden = false;
    updateUndo();
    if (a.sent || left <= -2) { clearInterval(toastTimer); toastTimer = setTimeout(() => { box.hidden = true; updateUndo(); }, 1500); }
  };
  tick();
  toastTimer = setInterval(tick, 250);
}

function updateUndo() {
  const a = state.lastAnswer;
  $("undo").disabled = !(a && !a.sent && a.until > Date.now());
}

// ------------------------------------------------------------------ counts

async function refreshStats() {
  try {
    const s = await api("/api/stats");
    $("count-backlog").textContent = s.backlog.toLocaleString();
    $("count-answered").textContent = s.answered.toLocaleString();
    const audit = $("count-audit");
    if (s.audits_answered) {
      audit.replaceChildren(`${Math.round(s.audit_disagreement_rate * 100)}% `,
        el("span", { class: "muted", text: `${s.audit_disagreements} of ${s.audits_answered}` }));
    } else {
      audit.replaceChildren(el("span", { class: "muted", text: "no audits yet" }));
    }
    const problem = $("problem");
    problem.hidden = !s.problem;
    problem.textContent = s.problem || "";
  } catch (error) {
    if (error.status !== 401) $("count-backlog").textContent = "?";
  }
}

// ------------------------------------------------------------------ type-ahead

function matches(text) {
  const q = text.trim().toLowerCase();
  const labels = state.labels;
  if (!q) return labels.slice(0, 8);
  const starts = labels.filter((l) => l.toLowerCase().startsWith(q));
  const contains = labels.filter((l) => !l.toLowerCase().startsWith(q) && l.toLowerCase().includes(q));
  return starts.concat(contains).slice(0, 8);
}

function openSuggestions() {
  const input = $("other");
  const list = $("suggestions");
  const typed = input.value.trim();
  const found = matches(input.value);
  const items = found.map((label) => ({ label, hint: "" }));
  if (typed && !state.labels.includes(typed)) items.push({ label: typed, hint: "new label" });
  state.active = items.length ? 0 : -1;
  list.replaceChildren(...items.map((item, i) => {
    const li = el("li", { role: "option", id: `suggestion-${i}`, "data-label": item.label, "aria-selected": String(i === state.active) }, item.label);
    if (item.hint) li.append(el("span", { class: "hint", text: `(${item.hint})` }));
    li.addEventListener("mousedown", (event) => { event.preventDefault(); give(item.label); });
    return li;
  }));
  list.hidden = !items.length;
  input.setAttribute("aria-expanded", String(!list.hidden));
  markActive();
}

function markActive() {
  const options = $("suggestions").querySelectorAll("li");
  options.forEach((li, i) => li.setAttribute("aria-selected", String(i === state.active)));
  const input = $("other");
  if (state.active >= 0 && options[state.active]) {
    input.setAttribute("aria-activedescendant", options[state.active].id);
    options[state.active].scrollIntoView({ block: "nearest" });
  } else {
    input.removeAttribute("aria-activedescendant");
  }
}

function closeSuggestions() {
  $("suggestions").hidden = true;
  $("other").setAttribute("aria-expanded", "false");
  $("other").removeAttribute("aria-activedescendant");
  state.active = -1;
}

function onComboKey(event) {
  const options = $("suggestions").querySelectorAll("li");
  if (event.key === "ArrowDown" || event.key === "ArrowUp") {
    event.preventDefault();
    if ($("suggestions").hidden) openSuggestions();
    else if (options.length) {
      const step = event.key === "ArrowDown" ? 1 : -1;
      state.active = (state.active + step + options.length) % options.length;
      markActive();
    }
  } else if (event.key === "Enter") {
    event.preventDefault();
    const chosen = state.active >= 0 && options[state.active] ? options[state.active].dataset.label : $("other").value.trim();
    if (chosen) give(chosen);
  } else if (event.key === "Escape") {
    event.preventDefault();
    $("other").value = "";
    closeSuggestions();
    $("other").blur();
  }
}

// ------------------------------------------------------------------ keyboard

function onKey(event) {
  if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
  const target = event.target;
  if (target instanceof HTMLInputElement || target instanceof HTMLTextAreaElement) return;
  const key = event.key;
  if (key === "Enter" && (target instanceof HTMLButtonElement || target instanceof HTMLAnchorElement || target.tagName === "SUMMARY")) return;
  if (key === "Enter" || key === "a" || key === "A") {
    if (!state.request) return;
    event.preventDefault();
    if (state.request.predicted_label) give(state.request.predicted_label);
    else toast("No prediction to accept yet: press a number or / to type the label.", true);
  } else if (/^[1-9]$/.test(key)) {
    if (!state.request) return;
    const choice = state.request.choices[Number(key) - 1];
    event.preventDefault();
    if (choice) give(choice.label);
    else toast(`There is no label ${key} for this record.`, true);
  } else if (key === "/") {
    if (!state.request) return;
    event.preventDefault();
    $("other").focus();
  } else if (key === "s" || key === "S") {
    event.preventDefault();
    skip();
  } else if (key === "u" || key === "U") {
    event.preventDefault();
    undo();
  }
}

// ------------------------------------------------------------------ start

async function start() {
  const session = await api("/api/session");
  state.csrf = session.csrf;
  state.undoWindow = session.undo_window_s;
  $("reviewer-name").textContent = session.reviewer;
  $("undo-window").textContent = String(session.undo_window_s);
  $("accept").addEventListener("click", () => state.request && give(state.request.predicted_label));
  $("skip").addEventListener("click", skip);
  $("undo").addEventListener("click", undo);
  $("sign-out").addEventListener("click", async () => {
    try { await api("/logout", { method: "POST" }); } finally { window.location.assign("/login"); }
  });
  const other = $("other");
  other.addEventListener("input", openSuggestions);
  other.addEventListener("focus", openSuggestions);
  other.addEventListener("blur", () => setTimeout(closeSuggestions, 100));
  other.addEventListener("keydown", onComboKey);
  document.addEventListener("keydown", onKey);
  document.body.dataset.ready = "true";
  refreshStats();
  setInterval(refreshStats, STATS_EVERY_MS);
  await loadNext();
}

start().catch((error) => toast(error.message, true));
