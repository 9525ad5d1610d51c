// The tam dashboard: polls the JSON API with the key kept in sessionStorage. Every piece of data is
// put into the page with textContent or element properties, never as HTML.
"use strict";

const KEY = "tam.apiKey";
const FAST = 1000; // poll interval while a job of the shown project is pending or running
const SLOW = 5000;
const ACTIVE = new Set(["pending", "running"]);
const STEP_NAMES = {
  sourceCompanies: "Source companies",
  qualify: "Qualify",
  findContacts: "Find contacts",
  checkLinkedin: "Check LinkedIn",
  refineDiscolike: "Find lookalikes",
};

const $ = (id) => document.getElementById(id);
const state = { projectId: null, projects: [], jobRows: new Map(), samples: new Map(), timer: null, lastProjects: 0 };

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function api(method, path, body) {
  const headers = { "x-api-key": sessionStorage.getItem(KEY) || "" };
  if (body !== undefined) headers["content-type"] = "application/json";
  let response;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    throw new ApiError(0, "Cannot reach the tam server.");
  }
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new ApiError(response.status, data.error || `HTTP ${response.status}`);
  return data;
}

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

// An error from polling clears itself once a poll succeeds; one from an action stays until the next action.
function showError(message, transient = false) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
  box.dataset.transient = transient ? "1" : "";
}

function setStatus(text) {
  $("status").textContent = text;
}

function handle(error, transient = false) {
  if (error.status === 401) {
    sessionStorage.removeItem(KEY);
    showError(`The API key was refused (${error.message}). Enter the value of SERVICE_API_KEY.`);
    askForKey();
    return;
  }
  showError(error.message, transient);
}

// --- key --------------------------------------------------------------------------------------

function askForKey() {
  clearTimeout(state.timer);
  $("app").hidden = true;
  $("forget").hidden = true;
  $("key-form").hidden = false;
  $("api-key").value = "";
  $("api-key").focus();
}

$("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(KEY, $("api-key").value.trim());
  showError("");
  start();
});

$("forget").addEventListener("click", () => {
  sessionStorage.removeItem(KEY);
  showError("");
  askForKey();
});

// --- projects -----------------------------------------------------------------------------------

async function loadProjects() {
  const list = await api("GET", "/api/tam/projects");
  state.projects = list.items;
  state.lastProjects = Date.now();
  const wanted = new URLSearchParams(location.hash.slice(1)).get("project");
  const ids = list.items.map((p) => p.id);
  if (!state.projectId || !ids.includes(state.projectId)) {
    state.projectId = ids.includes(wanted) ? wanted : ids[ids.length - 1] || null;
  }
  renderProjects();
}

function renderProjects() {
  const ul = $("projects");
  ul.replaceChildren(
    ...state.projects.map((p) => {
      const a = el("a", p.name, p.id === state.projectId ? "selected" : "");
      a.href = `#project=${encodeURIComponent(p.id)}`;
      a.title = p.name;
      a.addEventListener("click", (event) => {
        event.preventDefault();
        selectProject(p.id);
      });
      const li = el("li");
      li.append(a);
      return li;
    }),
  );
  $("no-projects").hidden = state.projects.length > 0;
}

function selectProject(id) {
  state.projectId = id;
  history.replaceState(null, "", `#project=${encodeURIComponent(id)}`);
  state.jobRows.clear();
  $("jobs").tBodies[0].replaceChildren();
  renderProjects();
  refresh();
}

function renderCounts(dl, pairs) {
  dl.replaceChildren(...pairs.flatMap(([label, value]) => [el("dt", label), el("dd", value)]));
}

function renderProject(project) {
  $("project").hidden = false;
  $("project-name").textContent = project.name;
  $("project-icp").textContent = project.icp;
  const c = project.companies;
  renderCounts($("company-counts"), [
    ["pending", c.pending],
    ["qualified", c.qualified],
    ["disqualified", c.disqualified],
    ["error", c.error],
    ["total", c.total],
  ]);
  const k = project.contacts;
  renderCounts($("contact-counts"), [
    ["total", k.total],
    ["with email", k.withEmail],
    ["LinkedIn active", k.linkedinActive],
    ["LinkedIn inactive", k.linkedinInactive],
  ]);
}

// --- jobs ---------------------------------------------------------------------------------------

function processed(job) {
  return job.itemsDone + job.itemsFailed;
}

// ETA from the rate seen over the last half minute of polls (or since the job started).
function eta(job) {
  if (!ACTIVE.has(job.status) || job.itemsTotal <= 0) return "";
  const now = Date.now();
  const samples = state.samples.get(job.id) || [];
  samples.push([now, processed(job)]);
  while (samples.length > 2 && now - samples[0][0] > 30000) samples.shift();
  state.samples.set(job.id, samples);
  const [t0, p0] = samples[0];
  let rate = (processed(job) - p0) / ((now - t0) / 1000);
  if (!(rate > 0) && job.startedAt) {
    rate = processed(job) / ((now - Date.parse(job.startedAt)) / 1000);
  }
  if (!(rate > 0) || !isFinite(rate)) return "…";
  return "~" + duration((job.itemsTotal - processed(job)) / rate);
}

function duration(seconds) {
  if (seconds < 60) return `${Math.max(1, Math.round(seconds))} s`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
  return `${Math.floor(seconds / 3600)} h ${Math.round((seconds % 3600) / 60)} min`;
}

function usageText(usage) {
  const entries = Object.entries(usage || {}).filter(([, v]) => v);
  return entries.map(([unit, v]) => `${unit.replaceAll("_", " ")}: ${v.toLocaleString()}`).join(" · ");
}

function jobRow(job) {
  let row = state.jobRows.get(job.id);
  if (row) return row;
  const tr = el("tr");
  tr.dataset.jobId = job.id;
  const cells = {
    step: el("td", STEP_NAMES[job.jobType] || job.jobType, "nowrap"),
    status: el("td"),
    progress: el("td"),
    eta: el("td", "", "nowrap"),
    usage: el("td", "", "usage"),
    created: el("td", job.createdAt ? new Date(job.createdAt).toLocaleTimeString() : "", "nowrap"),
    action: el("td"),
  };
  const badge = el("span", "", "badge");
  cells.status.append(badge);
  const bar = el("progress");
  bar.max = 100;
  const counts = el("div", "", "counts");
  const message = el("div", "", "message");
  const error = el("div", "", "job-error");
  cells.progress.append(bar, counts, message, error);
  const cancel = el("button", "Cancel", "secondary");
  cancel.type = "button";
  cancel.addEventListener("click", () => cancelJob(job.id, cancel));
  cells.action.append(cancel);
  tr.append(...Object.values(cells));
  row = { tr, badge, bar, counts, message, error, cells, cancel };
  state.jobRows.set(job.id, row);
  return row;
}

function renderJobs(jobs) {
  const tbody = $("jobs").tBodies[0];
  const rows = jobs.map((job) => {
    const row = jobRow(job);
    row.tr.dataset.status = job.status;
    row.badge.textContent = job.status;
    row.badge.className = `badge ${job.status}`;
    row.bar.value = job.progress;
    row.bar.textContent = `${job.progress}%`;
    const failed = job.itemsFailed ? `, ${job.itemsFailed} failed` : "";
    row.counts.textContent = `${job.progress}% · ${processed(job)} of ${job.itemsTotal}${failed}`;
    row.message.textContent = job.message || "";
    row.error.textContent = job.error || "";
    row.cells.eta.textContent = eta(job);
    row.cells.usage.textContent = [job.costUsd ? `$${job.costUsd.toFixed(4)}` : "", usageText(job.usage)].filter(Boolean).join(" · ");
    row.cancel.hidden = !ACTIVE.has(job.status);
    return row.tr;
  });
  tbody.replaceChildren(...rows);
  $("no-jobs").hidden = jobs.length > 0;
}

async function cancelJob(id, button) {
  button.disabled = true;
  try {
    const job = await api("POST", `/api/tam/jobs/${encodeURIComponent(id)}/cancel`);
    setStatus(`${STEP_NAMES[job.jobType] || job.jobType}: ${job.status}`);
    showError("");
  } catch (error) {
    handle(error);
  } finally {
    button.disabled = false;
  }
  refresh();
}

$("start-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const jobType = $("step").value;
  $("start").disabled = true;
  try {
    await api("POST", "/api/tam/jobs", { projectId: state.projectId, jobType });
    setStatus(`Started: ${STEP_NAMES[jobType]}`);
    showError("");
  } catch (error) {
    handle(error);
  } finally {
    $("start").disabled = false;
  }
  refresh();
});

// --- companies and contacts ---------------------------------------------------------------------

function renderTable(id, rows) {
  $(id).tBodies[0].replaceChildren(
    ...rows.map((cells) => {
      const tr = el("tr");
      tr.append(...cells.map((cell) => (cell instanceof Node ? wrap(cell) : el("td", cell ?? ""))));
      return tr;
    }),
  );
}

function wrap(node) {
  const td = el("td");
  td.append(node);
  return td;
}

function renderCompanies(page) {
  $("companies-shown").textContent = `${page.items.length} of ${page.total}`;
  renderTable(
    "companies",
    page.items.map((c) => [
      c.name,
      c.domain,
      el("span", c.qualificationStatus, `badge ${c.qualificationStatus}`),
      c.qualificationReason,
    ]),
  );
}

function renderContacts(page) {
  $("contacts-shown").textContent = `${page.items.length} of ${page.total}`;
  const linkedin = (c) => (c.linkedinActive === null ? "unchecked" : c.linkedinActive ? "active" : "inactive");
  renderTable(
    "contacts",
    page.items.map((c) => [c.fullName, c.title, c.email ? `${c.email} (${c.emailStatus})` : "", linkedin(c)]),
  );
}

$("company-status").addEventListener("change", () => refresh());

// --- polling ------------------------------------------------------------------------------------

async function refresh() {
  clearTimeout(state.timer);
  let next = SLOW;
  try {
    if (Date.now() - state.lastProjects > 10000) await loadProjects();
    const id = state.projectId;
    if (id) {
      const base = `/api/tam/projects/${encodeURIComponent(id)}`;
      const status = $("company-status").value;
      const [project, jobs, companies, contacts] = await Promise.all([
        api("GET", base),
        api("GET", `/api/tam/jobs?projectId=${encodeURIComponent(id)}`),
        api("GET", `${base}/companies?limit=50${status ? `&status=${encodeURIComponent(status)}` : ""}`),
        api("GET", `${base}/contacts?limit=50`),
      ]);
      if (id === state.projectId) {
        renderProject(project);
        renderJobs(jobs.items);
        renderCompanies(companies);
        renderContacts(contacts);
        if (jobs.items.some((j) => ACTIVE.has(j.status))) next = FAST;
      }
    } else {
      $("project").hidden = true;
    }
    if ($("error").dataset.transient) showError("");
  } catch (error) {
    handle(error, true);
    if (error.status === 401) return;
  }
  state.timer = setTimeout(refresh, next);
}

async function start() {
  if (!sessionStorage.getItem(KEY)) {
    askForKey();
    return;
  }
  $("key-form").hidden = true;
  try {
    await loadProjects();
  } catch (error) {
    handle(error);
    return;
  }
  $("app").hidden = false;
  $("forget").hidden = false;
  refresh();
}

start();
