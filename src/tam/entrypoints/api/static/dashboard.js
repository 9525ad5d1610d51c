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
  for (const list of Object.values(lists)) {
    list.offset = 0;
    list.expanded.clear();
  }
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
  for (const [name, td] of Object.entries(cells)) if (name !== "action") td.dataset.label = name; // narrow screens
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

// Resolves true when the user confirms in the page's <dialog>; Escape or "Keep it running" is false.
function confirmDialog(text) {
  const dialog = $("confirm");
  $("confirm-text").textContent = text;
  return new Promise((resolve) => {
    const done = (answer) => {
      $("confirm-yes").onclick = $("confirm-no").onclick = dialog.onclose = null;
      if (dialog.open) dialog.close();
      resolve(answer);
    };
    $("confirm-yes").onclick = () => done(true);
    $("confirm-no").onclick = () => done(false);
    dialog.onclose = () => done(false);
    dialog.showModal();
  });
}

async function cancelJob(id, button) {
  const step = state.jobRows.get(id)?.cells.step.textContent || "this job";
  if (!(await confirmDialog(`Cancel ${step}? Items already finished stay done.`))) return;
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

// --- companies and contacts: server-side pages, a status filter, a search --------------------------

const PAGE_SIZE = 50;
const REASON_FITS = 80; // a reason up to this long shows whole (one line on a laptop)...
const REASON_CUT = 64; // ...a longer one is cut at a word near here, with a button for the full text

function linkTo(url, text) {
  // Only web links: a stored value like "javascript:..." stays plain text.
  if (!/^https?:\/\//i.test(url || "")) return el("span", text);
  const a = el("a", text);
  a.href = url;
  a.target = "_blank";
  a.rel = "noopener noreferrer";
  return a;
}

function reasonCell(list, id, reason) {
  const td = el("td", null, "reason");
  if (!reason) return td;
  if (reason.length <= REASON_FITS) {
    td.textContent = reason;
    return td;
  }
  const open = list.expanded.has(id);
  const space = reason.lastIndexOf(" ", REASON_CUT);
  const cut = reason.slice(0, space > REASON_CUT / 2 ? space : REASON_CUT).trimEnd();
  const text = el("span", open ? reason : cut + "…");
  const more = el("button", open ? "less" : "more", "link inline");
  more.type = "button";
  more.setAttribute("aria-expanded", String(open));
  more.addEventListener("click", () => {
    if (list.expanded.has(id)) list.expanded.delete(id);
    else list.expanded.add(id);
    list.render();
  });
  td.title = reason;
  td.append(text, " ", more);
  return td;
}

function linkedinText(c) {
  return c.linkedinActive === null ? "unchecked" : c.linkedinActive ? "active" : "inactive";
}

// Each list keeps its own page, filter and search; `row` turns an item into table cells
// (strings, or nodes for cells that hold more than text).
const lists = {
  companies: {
    path: "companies",
    filters: () => ({ status: $("company-status").value, q: $("company-search").value.trim() }),
    row: (list, c) => [
      c.name,
      c.domain,
      el("span", c.qualificationStatus, `badge ${c.qualificationStatus}`),
      reasonCell(list, c.id, c.qualificationReason),
    ],
    labels: ["name", "domain", "status", "reason"],
  },
  contacts: {
    path: "contacts",
    filters: () => ({ emailStatus: $("contact-status").value, q: $("contact-search").value.trim() }),
    row: (list, c) => [
      c.fullName,
      c.title,
      c.email ? `${c.email} (${c.emailStatus})` : "",
      c.linkedinUrl ? linkTo(c.linkedinUrl, linkedinText(c)) : "no profile",
    ],
    labels: ["name", "title", "email", "LinkedIn"],
  },
};

for (const [name, list] of Object.entries(lists)) {
  Object.assign(list, { name, offset: 0, page: { items: [], total: 0 }, expanded: new Set() });
  list.render = () => renderList(list);
}

function listQuery(list, limit, offset) {
  const params = new URLSearchParams({ limit: String(limit), offset: String(offset) });
  for (const [key, value] of Object.entries(list.filters())) if (value) params.set(key, value);
  return `/api/tam/projects/${encodeURIComponent(state.projectId)}/${list.path}?${params}`;
}

function fetchList(list) {
  return api("GET", listQuery(list, PAGE_SIZE, list.offset));
}

function renderList(list) {
  const { items, total } = list.page;
  const tbody = $(list.name).tBodies[0];
  tbody.replaceChildren(
    ...items.map((item) => {
      const tr = el("tr");
      list.row(list, item).forEach((cell, i) => {
        const td = cell instanceof HTMLTableCellElement ? cell : el("td", cell instanceof Node ? null : (cell ?? ""));
        if (cell instanceof Node && td !== cell) td.append(cell);
        td.dataset.label = list.labels[i];
        tr.append(td);
      });
      return tr;
    }),
  );
  $(`${list.name}-shown`).textContent = items.length
    ? `${list.offset + 1}–${list.offset + items.length} of ${total.toLocaleString()}`
    : "none";
  $(`${list.name}-prev`).disabled = list.offset === 0;
  $(`${list.name}-next`).disabled = list.offset + items.length >= total;
}

// Polling asks for the same page every few seconds: the table is rebuilt only when it changed.
function showPage(list, page) {
  const key = JSON.stringify([list.offset, page]);
  if (key === list.shown) return;
  list.shown = key;
  list.page = page;
  list.render();
}

async function loadList(list) {
  const id = state.projectId;
  try {
    const page = await fetchList(list);
    if (id !== state.projectId) return;
    // A page emptied by a filter or by rows going away: go back to the last page that has rows.
    if (!page.items.length && page.total && list.offset) {
      list.offset = Math.max(0, Math.floor((page.total - 1) / PAGE_SIZE) * PAGE_SIZE);
      return loadList(list);
    }
    showPage(list, page);
  } catch (error) {
    handle(error);
  }
}

function resetList(list) {
  list.offset = 0;
  list.expanded.clear();
  loadList(list);
}

function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

for (const list of Object.values(lists)) {
  $(`${list.name}-prev`).addEventListener("click", () => {
    list.offset = Math.max(0, list.offset - PAGE_SIZE);
    loadList(list);
  });
  $(`${list.name}-next`).addEventListener("click", () => {
    list.offset += PAGE_SIZE;
    loadList(list);
  });
}
$("company-status").addEventListener("change", () => resetList(lists.companies));
$("company-search").addEventListener("input", debounce(() => resetList(lists.companies), 250));
$("contact-status").addEventListener("change", () => resetList(lists.contacts));
$("contact-search").addEventListener("input", debounce(() => resetList(lists.contacts), 250));

// --- CSV export: every row that matches the list's filter, with the CLI export's rules ---------------

const COMPANY_COLUMNS = [
  "id", "name", "domain", "description", "country", "employee_range", "linkedin_url", "source", "similarity",
  "qualification_status", "qualification_reason", "qualified_at", "contacts_searched_at", "created_at",
];
const CONTACT_COLUMNS = [
  "id", "company_id", "company_name", "company_domain", "full_name", "first_name", "last_name", "title",
  "linkedin_url", "email", "email_status", "linkedin_active", "linkedin_checked_at", "linkedin_detail", "created_at",
];
const EXPORT_PAGE = 1000; // the API's largest page

const camel = (column) => column.replace(/_([a-z])/g, (_, c) => c.toUpperCase());

// A cell as a spreadsheet should see it, by the rules of `tam export`: text starting with = + - @ (or a
// tab or CR) gets a leading apostrophe (OWASP "CSV injection": no formula runs), ranges read 51-200 and
// an open one 10001+ (never a date or a thousands separator).
function csvCell(column, value) {
  if (value === null || value === undefined) return "";
  let text = typeof value === "boolean" ? (value ? "true" : "false") : String(value);
  if (column === "employee_range") {
    text = text.replace(/^\s*(\d+)\s*,\s*(\d*)\s*$/, (_, low, high) => (high ? `${low}-${high}` : `${low}+`));
  }
  if (/^[=+\-@\t\r]/.test(text)) text = "'" + text;
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

function toCsv(columns, records) {
  const lines = [columns.join(","), ...records.map((r) => columns.map((c) => csvCell(c, r[c])).join(","))];
  return "\ufeff" + lines.join("\r\n") + "\r\n"; // UTF-8 with a BOM, so that Excel reads Müller and 東京
}

async function fetchAll(list) {
  const items = [];
  for (;;) {
    const page = await api("GET", listQuery(list, EXPORT_PAGE, items.length));
    items.push(...page.items);
    setStatus(`Exporting ${list.name}: ${items.length.toLocaleString()} of ${page.total.toLocaleString()}`);
    if (!page.items.length || items.length >= page.total) return items;
  }
}

async function exportRecords(list) {
  const items = await fetchAll(list);
  const columns = list.name === "companies" ? COMPANY_COLUMNS : CONTACT_COLUMNS;
  let companies = new Map();
  if (list.name === "contacts" && items.length) {
    const all = await fetchAll({ ...lists.companies, filters: () => ({}) });
    companies = new Map(all.map((c) => [c.id, c]));
  }
  const records = items.map((item) => {
    const record = Object.fromEntries(columns.map((c) => [c, item[camel(c)]]));
    const company = companies.get(item.companyId);
    if (list.name === "contacts") Object.assign(record, { company_name: company?.name, company_domain: company?.domain });
    return record;
  });
  return { columns, records };
}

function download(filename, text) {
  const url = URL.createObjectURL(new Blob([text], { type: "text/csv;charset=utf-8" }));
  const a = el("a");
  a.href = url;
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

async function exportList(list, button) {
  button.disabled = true;
  try {
    const { columns, records } = await exportRecords(list);
    const project = state.projects.find((p) => p.id === state.projectId);
    const slug = (project?.name || "project").toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "");
    download(`${slug || "project"}-${list.name}.csv`, toCsv(columns, records));
    setStatus(`Exported ${records.length.toLocaleString()} ${list.name}`);
    showError("");
  } catch (error) {
    handle(error);
  } finally {
    button.disabled = false;
  }
}

$("company-export").addEventListener("click", (event) => exportList(lists.companies, event.currentTarget));
$("contact-export").addEventListener("click", (event) => exportList(lists.contacts, event.currentTarget));

// --- new project and CSV import -------------------------------------------------------------------

const splitList = (text) => text.split(",").map((s) => s.trim()).filter(Boolean);

$("new-project").addEventListener("click", () => {
  $("project-form").hidden = false;
  $("new-project").hidden = true;
  $("project-name-input").focus();
});

function closeProjectForm() {
  $("project-form").reset();
  $("project-form").hidden = true;
  $("new-project").hidden = false;
}

$("project-form-close").addEventListener("click", closeProjectForm);

$("project-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const body = {
    name: $("project-name-input").value.trim(),
    icp: $("project-icp-input").value.trim(),
    targetTitles: splitList($("project-titles-input").value),
    countries: splitList($("project-countries-input").value),
  };
  try {
    const project = await api("POST", "/api/tam/projects", body);
    closeProjectForm();
    setStatus(`Created project ${project.name}`);
    showError("");
    await loadProjects();
    selectProject(project.id);
  } catch (error) {
    handle(error);
  }
});

// The header names the CLI import accepts (lower case, punctuation as spaces).
const IMPORT_COLUMNS = {
  domain: ["domain", "website", "url", "company domain", "company website", "company url", "web", "site"],
  name: ["name", "company", "company name", "organization", "organisation", "account name"],
  description: ["description", "company description", "about"],
  country: ["country", "country code", "hq country"],
  employeeRange: ["employee range", "employees", "size", "company size", "employee count", "headcount"],
  linkedinUrl: ["linkedin", "linkedin url", "company linkedin", "company linkedin url", "linkedin page"],
};
const IMPORT_BATCH_BYTES = 512 * 1024; // well under the API's 1 MiB body limit

const headerKey = (text) => text.toLowerCase().replace(/[^a-z0-9]+/g, " ").trim();

// The delimiter (comma, semicolon or tab) that splits the header line into the most fields.
function sniffDelimiter(text) {
  const header = text.split(/\r?\n/, 1)[0];
  let best = ",";
  for (const d of [",", ";", "\t"]) if (header.split(d).length > header.split(best).length) best = d;
  return best;
}

// RFC 4180 fields: quotes around a field allow the delimiter, newlines and doubled quotes inside it.
// Returns [lineNumber, cells] per record, line numbers counted as in the file.
function parseCsv(text, delimiter) {
  const records = [];
  let cells = [];
  let cell = "";
  let quoted = false;
  let line = 1;
  let start = 1;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else {
        if (ch === "\n") line++;
        cell += ch;
      }
    } else if (ch === '"' && cell === "") quoted = true;
    else if (ch === delimiter) {
      cells.push(cell);
      cell = "";
    } else if (ch === "\n" || ch === "\r") {
      if (ch === "\r" && text[i + 1] === "\n") i++;
      cells.push(cell);
      records.push([start, cells]);
      cells = [];
      cell = "";
      start = ++line;
    } else cell += ch;
  }
  if (cell !== "" || cells.length) {
    cells.push(cell);
    records.push([start, cells]);
  }
  return records;
}

function companyRows(text) {
  text = text.replace(/^\ufeff/, "");
  const delimiter = sniffDelimiter(text);
  const [header, ...records] = parseCsv(text, delimiter);
  if (!header) throw new ApiError(0, "The CSV file is empty.");
  const keys = header[1].map(headerKey);
  const index = {};
  for (const [field, aliases] of Object.entries(IMPORT_COLUMNS)) {
    const found = aliases.find((a) => keys.includes(a));
    if (found !== undefined) index[field] = keys.indexOf(found);
  }
  if (index.domain === undefined) {
    throw new ApiError(0, `No domain column in the header (found: ${header[1].join(", ")}); expected one of: domain, website, url.`);
  }
  const rows = [];
  for (const [line, cells] of records) {
    if (!cells.some((c) => c.trim())) continue;
    const get = (field) => (index[field] === undefined ? "" : (cells[index[field]] || "").trim()) || null;
    const domain = get("domain");
    rows.push({
      line,
      row: {
        name: get("name") || domain || "",
        domain,
        description: get("description"),
        country: get("country"),
        employeeRange: get("employeeRange"),
        linkedinUrl: get("linkedinUrl"),
      },
    });
  }
  return rows;
}

// The domain as the API stores it, near enough to find repeats: lower case, no scheme, no www., no path.
function domainKey(domain) {
  return (domain || "")
    .trim()
    .toLowerCase()
    .replace(/^[a-z][a-z0-9+.-]*:\/\//, "")
    .replace(/[/?#:].*$/, "")
    .replace(/^www\./, "")
    .replace(/\.$/, "");
}

// Rows whose domain an earlier row of the file already has are left out and named by line.
function withoutRepeats(rows) {
  const first = new Map();
  const repeated = [];
  const kept = rows.filter((r) => {
    const key = domainKey(r.row.domain);
    if (!key) return true; // the API rejects it, with its reason
    if (first.has(key)) {
      repeated.push({ line: r.line, domain: key, first: first.get(key) });
      return false;
    }
    first.set(key, r.line);
    return true;
  });
  return { rows: kept, repeated };
}

function batches(rows) {
  const out = [];
  let current = [];
  let size = 0;
  for (const r of rows) {
    const bytes = JSON.stringify(r.row).length * 3 + 1; // worst case UTF-8
    if (current.length && size + bytes > IMPORT_BATCH_BYTES) {
      out.push(current);
      current = [];
      size = 0;
    }
    current.push(r);
    size += bytes;
  }
  if (current.length) out.push(current);
  return out;
}

$("import-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const file = $("import-file").files[0];
  if (!file) return;
  const id = state.projectId;
  $("import").disabled = true;
  $("import-result").textContent = `Reading ${file.name}…`;
  try {
    const { rows, repeated } = withoutRepeats(companyRows(await file.text()));
    const total = { inserted: 0, skipped: 0, rejected: [] };
    for (const batch of batches(rows)) {
      const result = await api("POST", `/api/tam/projects/${encodeURIComponent(id)}/companies`, batch.map((r) => r.row));
      total.inserted += result.inserted;
      total.skipped += result.skipped;
      // The API names a rejected row by the domain it was given; the file names it by line.
      const lines = new Map();
      for (const r of batch) lines.set(r.row.domain || "", [...(lines.get(r.row.domain || "") || []), r.line]);
      for (const r of result.rejected) {
        const line = (lines.get(r.domain) || []).shift();
        total.rejected.push(`${line ? `line ${line}: ` : ""}${r.domain || "no domain"}: ${r.reason}`);
      }
      $("import-result").textContent = `Imported ${total.inserted} so far…`;
    }
    const few = (items) => items.slice(0, 5).join("; ") + (items.length > 5 ? "; …" : "");
    const repeats = repeated.map((r) => `line ${r.line}: ${r.domain}, first on line ${r.first}`);
    $("import-result").textContent =
      `${file.name}: imported ${total.inserted}, skipped ${total.skipped} already in the project` +
      (repeats.length ? `, ${repeats.length} repeated in the file (${few(repeats)})` : "") +
      (total.rejected.length ? `, rejected ${total.rejected.length} (${few(total.rejected)})` : "") +
      ".";
    $("import-form").reset();
    showError("");
  } catch (error) {
    $("import-result").textContent = "";
    handle(error);
  } finally {
    $("import").disabled = false;
  }
  refresh();
});

// --- polling ------------------------------------------------------------------------------------

async function refresh() {
  clearTimeout(state.timer);
  let next = SLOW;
  try {
    if (Date.now() - state.lastProjects > 10000) await loadProjects();
    const id = state.projectId;
    if (id) {
      const base = `/api/tam/projects/${encodeURIComponent(id)}`;
      const [project, jobs, companies, contacts] = await Promise.all([
        api("GET", base),
        api("GET", `/api/tam/jobs?projectId=${encodeURIComponent(id)}`),
        fetchList(lists.companies),
        fetchList(lists.contacts),
      ]);
      if (id === state.projectId) {
        renderProject(project);
        renderJobs(jobs.items);
        for (const [list, page] of [[lists.companies, companies], [lists.contacts, contacts]]) {
          if (!page.items.length && list.offset) loadList(list); // rows went away: back to a page with rows
          else showPage(list, page);
        }
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
