// The local status page: lists the dev user's jobs (GET /v1/jobs) and polls each unfinished one
// with If-None-Match, so an unchanged job costs a 304 with no body. No build step, no framework.
"use strict";

const TERMINAL = new Set(["COMPLETED", "FAILED"]);
const POLL_MS = 1000;
const LIST_MS = 5000;
const jobs = new Map(); // jobId -> {job, etag}
let token = null;
let gets = 0;
let notModified = 0;

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

function say(text) {
  document.getElementById("message").textContent = text;
}

function cell(row, text, className) {
  const td = row.insertCell();
  td.textContent = text == null ? "" : String(text);
  if (className) td.className = className;
  return td;
}

function render() {
  const tbody = document.querySelector("#jobs tbody");
  const sorted = [...jobs.values()].map((e) => e.job).sort((a, b) => (a.createdAt < b.createdAt ? 1 : -1));
  tbody.replaceChildren();
  for (const job of sorted) {
    const row = tbody.insertRow();
    row.dataset.jobId = job.jobId;
    row.dataset.status = job.status;
    cell(row, job.jobId, "job");
    cell(row, job.status, `status status-${job.status}`);
    cell(row, job.progress == null ? "" : `${job.progress}%`);
    cell(row, job.createdAt);
    cell(row, job.updatedAt);
    const error = job.error ? `${job.error.code}: ${job.error.message}` : "";
    cell(row, job.outputUrl || error);
  }
  document.getElementById("empty").hidden = jobs.size > 0;
  document.getElementById("gets").textContent = gets;
  document.getElementById("not-modified").textContent = notModified;
}

async function listJobs() {
  let cursor = null;
  do {
    const query = new URLSearchParams({ limit: "100" });
    if (cursor) query.set("cursor", cursor);
    const answer = await api(`/v1/jobs?${query}`);
    gets += 1;
    if (!answer.ok) throw new Error(`GET /v1/jobs: HTTP ${answer.status}`);
    const page = await answer.json();
    for (const job of page.items) {
      const known = jobs.get(job.jobId);
      // A listed item never carries an ETag; keep the one the last GET gave.
      jobs.set(job.jobId, { job, etag: known && known.job.updatedAt === job.updatedAt ? known.etag : null });
    }
    cursor = page.nextCursor;
  } while (cursor);
  render();
}

async function pollJob(entry) {
  const headers = entry.etag ? { "If-None-Match": entry.etag } : {};
  const answer = await api(`/v1/jobs/${encodeURIComponent(entry.job.jobId)}`, { headers });
  gets += 1;
  if (answer.status === 304) {
    notModified += 1;
    return;
  }
  if (answer.status === 404) return; // not projected yet
  if (!answer.ok) throw new Error(`GET /v1/jobs/${entry.job.jobId}: HTTP ${answer.status}`);
  entry.job = await answer.json();
  entry.etag = answer.headers.get("ETag");
}

async function pollUnfinished() {
  const unfinished = [...jobs.values()].filter((e) => !TERMINAL.has(e.job.status));
  await Promise.all(unfinished.map(pollJob));
  render();
}

async function submitJob(event) {
  event.preventDefault();
  const prompt = document.getElementById("prompt").value;
  const answer = await api("/v1/jobs", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ model: "fal-ai/kling-video/v2/master/text-to-video", input: { prompt } }),
  });
  const body = await answer.json();
  if (answer.status !== 202) {
    say(`Submit refused: HTTP ${answer.status} ${JSON.stringify(body)}`);
    return;
  }
  jobs.set(body.jobId, { job: { jobId: body.jobId, status: body.status, createdAt: body.createdAt }, etag: null });
  say(`Submitted ${body.jobId}`);
  render();
}

function every(ms, work) {
  const run = async () => {
    try {
      await work();
    } catch (error) {
      say(String(error));
    }
    setTimeout(run, ms);
  };
  run();
}

async function main() {
  token = await devToken();
  document.getElementById("submit-form").addEventListener("submit", (e) => submitJob(e).catch((x) => say(String(x))));
  await listJobs();
  every(LIST_MS, listJobs);
  every(POLL_MS, pollUnfinished);
}

main().catch((error) => say(String(error)));
