// The local status page: one page of the dev user's jobs (GET /v1/jobs with status, limit, cursor),
// kept current by the live-update socket (/v1/stream, `mine: true`). When the socket cannot open
// it polls each unfinished job with If-None-Match (an unchanged job costs a 304) and tries the
// socket again with a growing delay. No build step, no framework.
"use strict";

const TERMINAL = new Set(["COMPLETED", "FAILED"]);
const RANK = { QUEUED: 0, PROCESSING: 1, COMPLETED: 2, FAILED: 2 };
const MODEL = "fal-ai/kling-video/v2/master/text-to-video";
const POLL_MS = 1000;
const RECONNECT_MS = [500, 1000, 2000, 5000, 10000];
const params = new URLSearchParams(location.search);
const PAGE_SIZE = Math.min(100, Math.max(1, Number(params.get("limit")) || 10));

const known = new Map(); // jobId -> {job, version, etag}: the newest state seen of each job
let pageIds = []; // the jobs the list API gave for this page, newest first
let cursors = [null]; // cursor of each page visited; the last is this page's
let nextCursor = null;
let loaded = false;
let token = null;
let socket = null;
let live = false;
let reconnects = 0;
let pollTimer = null;
const counts = { gets: 0, notModified: 0, messages: 0 };

// --- state: a job's view only moves forward ------------------------------------------------

// A socket message carries the item's version: keep the greatest (byte-wise order, as the
// server compares). A REST body has none: it wins only over an older or equal `updatedAt`.
function keep(job, version = null, etag = null) {
  const had = known.get(job.jobId);
  if (had) {
    if (version && had.version && version <= had.version) return false;
    if (!(version && had.version)) {
      const older = RANK[job.status] < RANK[had.job.status] || (job.updatedAt || "") < (had.job.updatedAt || "");
      if (older) return false;
    }
    job = Object.assign({}, had.job, job); // keep what the 202 told (model, prompt) if the body lacks it
  }
  known.set(job.jobId, { job, version: version || (had && had.version) || null, etag: etag || null });
  return true;
}

function filter() {
  return document.getElementById("status-filter").value;
}

// The rows: this page's listed jobs, plus on the first page any newer job heard of since.
function visibleJobs() {
  const ids = new Set(pageIds);
  if (cursors.length === 1) {
    const newest = pageIds.length ? known.get(pageIds[0]).job.createdAt : "";
    for (const [jobId, entry] of known) {
      if (entry.job.createdAt > newest || !pageIds.length) ids.add(jobId);
    }
  }
  const wanted = filter();
  return [...ids]
    .map((jobId) => known.get(jobId).job)
    .filter((job) => !wanted || job.status === wanted)
    .sort((a, b) => (a.createdAt < b.createdAt ? 1 : -1));
}

// --- rendering --------------------------------------------------------------------------------

function say(text) {
  document.getElementById("message").textContent = text;
}

function setConnection(state, text) {
  const badge = document.getElementById("connection");
  badge.dataset.state = state;
  badge.textContent = text;
}

function ago(iso, now) {
  if (!iso) return "";
  const seconds = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (seconds < 10) return "just now";
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  return `${Math.floor(seconds / 86400)} d ago`;
}

function cell(row, text, className) {
  const td = row.insertCell();
  td.textContent = text == null ? "" : String(text);
  if (className) td.className = className;
  return td;
}

function timeCell(row, iso, className, now) {
  const td = row.insertCell();
  td.className = className;
  if (iso) {
    const time = document.createElement("time");
    time.dateTime = iso;
    time.title = new Date(iso).toString();
    time.textContent = ago(iso, now);
    td.append(time);
  }
}

function render() {
  const tbody = document.querySelector("#jobs tbody");
  if (!loaded) return;
  const now = Date.now();
  const rows = visibleJobs();
  tbody.replaceChildren();
  for (const job of rows) {
    const row = tbody.insertRow();
    row.dataset.jobId = job.jobId;
    row.dataset.status = job.status;
    cell(row, job.jobId.slice(0, 8), "job").title = job.jobId;
    cell(row, job.model || "", "model").title = job.model || "";
    const prompt = job.input && typeof job.input.prompt === "string" ? job.input.prompt : "";
    cell(row, prompt, "prompt").title = prompt;
    cell(row, job.status, `status status-${job.status}`);
    cell(row, job.progress == null ? "" : `${job.progress}%`, "progress");
    timeCell(row, job.createdAt, "created", now);
    timeCell(row, job.updatedAt, "updated", now);
    const out = row.insertCell();
    out.className = "output";
    if (job.outputUrl) {
      const link = document.createElement("a");
      link.href = job.outputUrl;
      link.target = "_blank";
      link.rel = "noopener noreferrer";
      link.textContent = "video ↗";
      link.title = job.outputUrl;
      out.append(link);
    } else if (job.error) {
      out.textContent = `${job.error.code}: ${job.error.message}`;
    }
  }
  document.getElementById("empty").hidden = rows.length > 0;
  document.getElementById("newer").disabled = cursors.length === 1;
  document.getElementById("older").disabled = !nextCursor;
  document.getElementById("page-number").textContent = `page ${cursors.length}`;
  document.getElementById("gets").textContent = counts.gets;
  document.getElementById("not-modified").textContent = counts.notModified;
  document.getElementById("messages").textContent = counts.messages;
}

// --- REST ---------------------------------------------------------------------------------------

async function devToken() {
  const answer = await fetch("/local/dev-token");
  if (!answer.ok) throw new Error(`dev token: HTTP ${answer.status}`);
  const body = await answer.json();
  document.getElementById("user").textContent = body.user;
  return body.token;
}

function api(path, options = {}) {
  const headers = Object.assign({ Authorization: `Bearer ${token}` }, options.headers || {});
  return fetch(path, Object.assign({}, options, { headers, cache: "no-store" }));
}

async function listPage() {
  const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
  const cursor = cursors[cursors.length - 1];
  if (cursor) query.set("cursor", cursor);
  if (filter()) query.set("status", filter());
  const answer = await api(`/v1/jobs?${query}`);
  counts.gets += 1;
  if (!answer.ok) throw new Error(`GET /v1/jobs: HTTP ${answer.status}`);
  const page = await answer.json();
  for (const job of page.items) keep(job);
  pageIds = page.items.map((job) => job.jobId);
  nextCursor = page.nextCursor;
  loaded = true;
  render();
}

async function pollJob(entry) {
  const headers = entry.etag ? { "If-None-Match": entry.etag } : {};
  const answer = await api(`/v1/jobs/${encodeURIComponent(entry.job.jobId)}`, { headers });
  counts.gets += 1;
  if (answer.status === 304) {
    counts.notModified += 1;
    return;
  }
  if (answer.status === 404) return; // submitted but not readable yet: the row stays QUEUED
  if (!answer.ok) throw new Error(`GET /v1/jobs/${entry.job.jobId}: HTTP ${answer.status}`);
  const job = await answer.json();
  if (keep(job)) known.get(job.jobId).etag = answer.headers.get("ETag");
}

async function pollUnfinished() {
  pollTimer = null;
  if (live) return;
  try {
    const shown = new Set(visibleJobs().map((job) => job.jobId));
    const unfinished = [...known.values()].filter((e) => shown.has(e.job.jobId) && !TERMINAL.has(e.job.status));
    await Promise.all(unfinished.map(pollJob));
    if (!live) setConnection("polling", "polling");
  } catch (error) {
    if (!live) setConnection("offline", "offline");
    say(String(error));
  }
  render();
  if (!live) pollTimer = setTimeout(pollUnfinished, POLL_MS);
}

function startPolling() {
  if (pollTimer === null) pollTimer = setTimeout(pollUnfinished, 0);
}

async function submitJob(event) {
  event.preventDefault();
  const prompt = document.getElementById("prompt").value;
  const answer = await api("/v1/jobs", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ model: MODEL, input: { prompt } }),
  });
  const body = await answer.json();
  if (answer.status !== 202) {
    say(`Submit refused: HTTP ${answer.status} ${JSON.stringify(body)}`);
    return;
  }
  // The 202 is the job's first state: shown at once as QUEUED, never read back as a 404.
  keep({
    jobId: body.jobId,
    status: body.status,
    createdAt: body.createdAt,
    updatedAt: body.createdAt,
    outputUrl: null,
    model: MODEL,
    input: { prompt },
  });
  say(`Submitted ${body.jobId}`);
  render();
}

// --- the live-update socket -----------------------------------------------------------------

function connect() {
  if (typeof WebSocket !== "function") {
    setConnection("polling", "polling");
    startPolling();
    return;
  }
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${scheme}//${location.host}/v1/stream?token=${encodeURIComponent(token)}`);
  socket = ws;
  ws.onopen = () => ws.send(JSON.stringify({ action: "subscribe", mine: true }));
  ws.onmessage = (event) => {
    let message;
    try {
      message = JSON.parse(event.data);
    } catch {
      return;
    }
    counts.messages += 1;
    if (message.type === "subscribed") {
      live = true;
      reconnects = 0;
      setConnection("live", "live");
    } else if (message.type === "job") {
      keep(message.job, message.version);
    } else if (message.type === "error") {
      say(`Live updates: ${message.error.code}: ${message.error.message}`);
    }
    render();
  };
  ws.onclose = () => {
    if (socket !== ws) return;
    socket = null;
    live = false;
    setConnection("polling", "polling");
    startPolling();
    const delay = RECONNECT_MS[Math.min(reconnects, RECONNECT_MS.length - 1)];
    reconnects += 1;
    setTimeout(connect, delay);
  };
}

// --- start ------------------------------------------------------------------------------------

function reload() {
  listPage().catch((error) => {
    setConnection("offline", "offline");
    say(String(error));
  });
}

async function main() {
  try {
    token = await devToken();
  } catch (error) {
    setConnection("offline", "offline");
    throw error;
  }
  document.getElementById("submit-form").addEventListener("submit", (e) => submitJob(e).catch((x) => say(String(x))));
  document.getElementById("status-filter").addEventListener("change", () => {
    cursors = [null];
    reload();
  });
  document.getElementById("older").addEventListener("click", () => {
    if (!nextCursor) return;
    cursors.push(nextCursor);
    reload();
  });
  document.getElementById("newer").addEventListener("click", () => {
    if (cursors.length > 1) cursors.pop();
    reload();
  });
  setInterval(render, 30000); // relative times ("2 min ago") move on without any request
  connect();
  await listPage();
}

// For tests and the curious: the socket in use (closing it shows the fallback and the reconnect).
window.statusPage = { socket: () => socket, known };

main().catch((error) => say(String(error)));
