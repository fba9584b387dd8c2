// The HTTP API of CONTRACT.md, as small promise-returning functions.

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error) || `request failed with status ${status}`);
    this.status = status;
    this.body = body || {};
  }
}

async function request(method, url, { json, headers = {}, signal } = {}) {
  const init = { method, headers: { Accept: "application/json", ...headers }, signal };
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  }
  const response = await fetch(url, init);
  if (response.status === 401) signInAgain();
  const body = response.status === 204 ? null : await readJson(response);
  if (!response.ok) throw new ApiError(response.status, body);
  return { body, response };
}

// The session ended (signed out elsewhere, expired, user removed): to the sign-in page, then back.
function signInAgain() {
  const next = window.location.pathname + window.location.search;
  window.location.assign(`/login?next=${encodeURIComponent(next)}`);
}

async function readJson(response) {
  const text = await response.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return { error: text.slice(0, 300) };
  }
}

export async function currentJob() {
  return (await request("GET", "/import")).body;
}

export async function controlJob(id, action) {
  return (await request("POST", `/import/jobs/${encodeURIComponent(id)}/${action}`)).body;
}

export async function recentRows(id, signal) {
  const { body } = await request("GET", `/import/jobs/${encodeURIComponent(id)}/recent`, { signal });
  // Accept a bare list or a wrapped one, newest first either way on screen.
  return Array.isArray(body) ? body : (body && (body.items || body.rows)) || [];
}

export function rejectsUrl(id) {
  return `/import/jobs/${encodeURIComponent(id)}/rejects.csv`;
}

export async function importJobs({ before, limit }) {
  const params = new URLSearchParams({ limit: String(limit) });
  if (before != null) params.set("before", String(before));
  return (await request("GET", `/import/jobs?${params}`)).body;
}

export async function rejectReasons(id, limit = 5) {
  return (await request("GET", `/import/jobs/${encodeURIComponent(id)}/reject-reasons?limit=${limit}`)).body.items;
}

export async function customersPage({ limit, after, q, sort, job, edited, total }, signal) {
  const params = new URLSearchParams({ limit: String(limit) });
  if (after != null) params.set("after", after);
  if (q) params.set("q", q);
  if (sort && sort !== "id") params.set("sort", sort);
  if (job != null) params.set("job", String(job));
  if (edited) params.set("edited", "true");
  if (total) params.set("total", "true");
  return (await request("GET", `/customers?${params}`, { signal })).body;
}

export async function getCustomer(id) {
  const { body, response } = await request("GET", `/customers/${encodeURIComponent(id)}`);
  return { customer: body, etag: response.headers.get("ETag") };
}

export async function createCustomer(fields) {
  return (await request("POST", "/customers", { json: fields })).body;
}

export async function updateCustomer(id, fields, etag) {
  const headers = etag ? { "If-Match": etag } : {};
  const { body, response } = await request("PATCH", `/customers/${encodeURIComponent(id)}`, { json: fields, headers });
  return { customer: body, etag: response.headers.get("ETag") };
}

export async function releaseCustomer(id, etag) {
  const headers = etag ? { "If-Match": etag } : {};
  const { body, response } = await request("POST", `/customers/${encodeURIComponent(id)}/release`, { headers });
  return { customer: body, etag: response.headers.get("ETag") };
}

export async function deleteCustomer(id, etag) {
  // If-Match here too: deleting a version someone changed meanwhile should be a decision, not an accident.
  const headers = etag ? { "If-Match": etag } : {};
  await request("DELETE", `/customers/${encodeURIComponent(id)}`, { headers });
}

// A finished resumable upload (its id: the last part of its /uploads URL) becomes an import job.
export async function importUpload(uploadId, options = {}) {
  return (await request("POST", "/import", { json: { upload: uploadId, ...options } })).body;
}

// What an import of a finished upload would do: settings, columns, the first rows.
export async function previewUpload(uploadId, options = {}) {
  return (await request("POST", "/import/preview", { json: { upload: uploadId, ...options } })).body;
}

// History and undo (docs/history.md).
export async function getJob(id) {
  return (await request("GET", `/import/jobs/${encodeURIComponent(id)}`)).body;
}

export async function undoJob(id, { dryRun = false } = {}) {
  return (await request("POST", `/import/jobs/${encodeURIComponent(id)}/undo`, { json: { dry_run: dryRun } })).body;
}

export async function customerHistory(id, { after, limit = 20 } = {}) {
  const params = new URLSearchParams({ limit: String(limit) });
  if (after != null) params.set("after", after);
  return (await request("GET", `/customers/${encodeURIComponent(id)}/history?${params}`)).body;
}
