// The live job: bar, figures, badge, controls and the recent-rows table.
//
// Jobs arrive from three places (GET /import, SSE events, control answers)
// in any order, so every job passes through accept(), which drops news older
// than what is on screen and keeps the bar from moving backwards.

import { ApiError, controlJob, recentRows, rejectReasons, rejectsUrl } from "./api.js";
import { announce } from "./announce.js";
import { $, el, formatBytes, formatDuration, formatNumber, formatTime, setText } from "./dom.js";

export const ACTIVE = new Set(["queued", "running", "paused"]);
const SETTLED = new Set(["paused", "completed", "failed", "cancelled"]);
const RECENT_INTERVAL_MS = 1000;

function sequence(job, eventId) {
  if (job.event_seq != null) return Number(job.event_seq);
  const fromId = Number(eventId);
  return Number.isFinite(fromId) && eventId !== "" ? fromId : -1;
}

export class ImportPanel {
  constructor({ onActiveChange, onFinished }) {
    this.onActiveChange = onActiveChange;
    this.onFinished = onFinished;
    this.job = null;
    this.seq = -1;
    this.shownBytes = 0;
    this.shownPercent = 0;
    this.recent = { rowsDone: null, inFlight: false, again: false, timer: null, lastAt: -Infinity };
    this.reasonsFor = null; // "job id:rejected" whose reasons are on screen
    this.bindControls();
  }

  get active() {
    return this.job != null && ACTIVE.has(this.job.status);
  }

  bindControls() {
    for (const action of ["pause", "resume", "cancel"]) {
      $(`${action}-button`).addEventListener("click", () => this.control(action));
    }
  }

  async control(action) {
    if (!this.job) return;
    if (action === "cancel" && !window.confirm(`Cancel the import of ${this.job.filename}? Rows already imported stay.`)) return;
    setText($("control-message"), "");
    try {
      this.accept(await controlJob(this.job.id, action), "control");
    } catch (error) {
      setText($("control-message"), error.message);
      if (error instanceof ApiError && error.body.job) this.accept(error.body.job, "control");
    }
  }

  accept(job, kind = "read", eventId = "") {
    if (!job || job.status === "idle" || job.id == null) {
      if (!this.job) this.renderIdle();
      return;
    }
    const seq = sequence(job, eventId);
    if (this.job) {
      if (job.id < this.job.id) return; // a late word about an older job
      if (job.id === this.job.id && seq !== -1 && seq < this.seq) return; // older news
    }
    const wasActive = this.active;
    const previous = this.job;
    if (!previous || previous.id !== job.id) {
      this.shownBytes = 0;
      this.shownPercent = 0;
      this.recent.rowsDone = null;
    }
    this.job = job;
    this.seq = Math.max(seq, previous && previous.id === job.id ? this.seq : -1);
    this.render(job);
    if (wasActive !== this.active || !previous) this.onActiveChange(this.active);
    if (previous && previous.id === job.id && ACTIVE.has(previous.status) && !this.active) {
      announce(`Import of ${job.filename} ${outcome(job).text}`);
      this.onFinished(job);
    }
    this.refreshRecent();
  }

  renderIdle() {
    $("job").hidden = true;
    this.onActiveChange(false);
  }

  render(job) {
    $("job").hidden = false;
    setText($("job-file"), job.filename);
    setText($("job-id"), `job ${job.id}`);
    const badge = $("job-status");
    // The pause is asked for at once but lands after the batch in hand: until
    // the runner lets go of the job (worker cleared), it is only pausing.
    const shownStatus = job.status === "paused" && job.worker ? "pausing" : job.status;
    setText(badge, shownStatus === "pausing" ? "pausing…" : shownStatus);
    badge.dataset.status = shownStatus;
    badge.dataset.problems = String(hasProblems(job));

    const total = Number(job.bytes_total) || 0;
    this.shownBytes = Math.max(this.shownBytes, Number(job.bytes_done) || 0);
    const percent = job.status === "completed" ? 100
      : Number(job.percent ?? (total ? (100 * this.shownBytes) / total : 0));
    this.shownPercent = Math.max(this.shownPercent, percent);

    // An undo counts customers where an import counts bytes (docs/history.md).
    const size = job.kind === "undo" ? (n) => `${formatNumber(n)} customers` : formatBytes;
    const bar = $("job-bar");
    bar.setAttribute("aria-valuemax", String(total));
    bar.setAttribute("aria-valuenow", String(this.shownBytes));
    bar.setAttribute("aria-valuetext", `${this.shownPercent.toFixed(1)}% (${size(this.shownBytes)} of ${size(total)})`);
    bar.dataset.status = job.status;
    bar.dataset.problems = String(hasProblems(job));
    $("job-bar-fill").style.width = `${Math.min(100, this.shownPercent)}%`;

    setText($("job-percent"), `${this.shownPercent.toFixed(1)}%`);
    setText($("job-bytes"), `${size(this.shownBytes)} / ${size(total)}`);
    const running = job.status === "running";
    setText($("job-rate"), running && job.rows_per_second != null ? formatNumber(Math.round(job.rows_per_second)) : "—");
    setText($("job-eta"), running ? formatDuration(job.eta_seconds) : "—");
    setText($("job-inserted"), formatNumber(job.inserted));
    setText($("job-updated"), formatNumber(job.updated));
    setText($("job-skipped"), formatNumber(job.skipped_manual));
    setText($("job-rejected"), formatNumber(job.rejected));

    const error = $("job-error");
    error.hidden = !job.error;
    setText(error, job.error || "");

    // Only the controls that apply now are shown; a finished job has none.
    $("pause-button").hidden = !(job.status === "queued" || job.status === "running");
    $("resume-button").hidden = job.status !== "paused";
    $("cancel-button").hidden = !ACTIVE.has(job.status);
    const link = $("rejects-link");
    link.hidden = !(job.rejected > 0);
    const href = rejectsUrl(job.id);
    if (link.getAttribute("href") !== href) link.setAttribute("href", href);
    setText(link, `Download rejected rows (${formatNumber(job.rejected)}, CSV)`);
    this.renderOutcome(job);
  }

  // Words for what the job did, once it stands still; the reasons come from the API.
  renderOutcome(job) {
    const box = $("job-outcome");
    const settled = SETTLED.has(job.status) && !job.worker;
    box.hidden = !settled;
    if (!settled) return;
    const { text, tone } = outcome(job);
    box.dataset.tone = tone;
    setText($("job-outcome-text"), text[0].toUpperCase() + text.slice(1));
    const seconds = jobSeconds(job);
    setText($("job-duration"), seconds == null ? "" : `Took ${formatDuration(seconds)}, from ${formatTime(job.started_at)}.`);
    const ignored = $("job-ignored");
    ignored.dataset.tone = "warning";
    const unknown = job.unknown_columns || [];
    ignored.hidden = unknown.length === 0;
    setText(ignored, unknown.length === 0 ? ""
      : `Ignored ${unknown.length === 1 ? "column" : "columns"} (not customer fields): ${unknown.join(", ")}.`);
    this.loadReasons(job);
  }

  async loadReasons(job) {
    const key = `${job.id}:${job.rejected}`;
    if (this.reasonsFor === key) return;
    this.reasonsFor = key;
    const box = $("job-reasons");
    if (!(job.rejected > 0)) {
      box.hidden = true;
      return;
    }
    try {
      const reasons = await rejectReasons(job.id);
      if (this.reasonsFor !== key) return;
      $("job-reasons-list").replaceChildren(...reasons.map((r) => el("li", {},
        el("span", { className: "num", text: formatNumber(r.rows) }), ` ${r.rows === 1 ? "row" : "rows"}: ${r.reason} (first on line ${r.first_line})`)));
      box.hidden = reasons.length === 0;
    } catch {
      this.reasonsFor = null; // asked again at the next event
    }
  }

  // The recent rows follow rows_done, at most about once a second, and once
  // more after the last change so the table ends on the final rows.
  refreshRecent() {
    const job = this.job;
    const state = this.recent;
    if (!job || job.rows_done === state.rowsDone) return;
    if (state.inFlight) {
      state.again = true;
      return;
    }
    const wait = state.lastAt + RECENT_INTERVAL_MS - performance.now();
    if (wait > 0) {
      if (!state.timer) state.timer = setTimeout(() => { state.timer = null; this.refreshRecent(); }, wait);
      return;
    }
    this.fetchRecent(job);
  }

  async fetchRecent(job) {
    const state = this.recent;
    state.inFlight = true;
    state.lastAt = performance.now();
    const rowsDone = job.rows_done;
    try {
      const rows = await recentRows(job.id);
      if (this.job && this.job.id === job.id) {
        state.rowsDone = rowsDone;
        this.renderRecent(rows);
      }
    } catch {
      // Keep the table as it is; the next event asks again.
    } finally {
      state.inFlight = false;
      if (state.again) {
        state.again = false;
        this.refreshRecent();
      }
    }
  }

  renderRecent(rows) {
    // Newest first. The API keeps file order; line numbers, when they are numbers, decide.
    const numbered = rows.every((row) => Number.isFinite(row.line_no));
    const ordered = numbered ? [...rows].sort((a, b) => b.line_no - a.line_no) : [...rows].reverse();
    const body = $("recent-body");
    // Without line numbers an empty column would look broken, so it goes.
    $("recent-table").dataset.lines = String(numbered);
    const name = (row) => [row.first_name, row.last_name].filter(Boolean).join(" ");
    body.replaceChildren(...ordered.map((row) => el("tr", {},
      el("td", { className: "num", text: Number.isFinite(row.line_no) ? row.line_no : "" }),
      el("td", { className: "mono", text: row.customer_id ?? "" }),
      el("td", { text: name(row) }),
      el("td", { text: row.company ?? "" }),
      el("td", { text: row.email ?? "" }),
      el("td", { text: row.country ?? "" }),
    )));
  }
}

// How long a job ran, in seconds (null before it started).
export function jobSeconds(job) {
  if (!job.started_at) return null;
  return (Date.parse(job.finished_at || job.updated_at) - Date.parse(job.started_at)) / 1000;
}

// A finished job that left something out (rejected rows, an ignored column) is amber, never green.
export function hasProblems(job) {
  return job.status === "completed" && (job.rejected > 0 || (job.unknown_columns || []).length > 0);
}

// What the job did, in a sentence that starts lower case; `tone` for its colour.
export function outcome(job) {
  const rows = Number(job.rows_done) || 0;
  const imported = (Number(job.inserted) || 0) + (Number(job.updated) || 0);
  const counted = `${formatNumber(imported)} of ${formatNumber(rows)} ${rows === 1 ? "row" : "rows"} imported`;
  const notes = [];
  if (job.rejected > 0) notes.push(`${formatNumber(job.rejected)} rejected`);
  if (job.unchanged > 0) notes.push(`${formatNumber(job.unchanged)} unchanged`);
  if (job.skipped_manual > 0) notes.push(`${formatNumber(job.skipped_manual)} skipped (edited by hand)`);
  const ignored = (job.unknown_columns || []).length;
  if (ignored > 0) notes.push(`${formatNumber(ignored)} ${ignored === 1 ? "column" : "columns"} ignored`);
  const tail = notes.length ? ` (${notes.join(", ")})` : "";
  switch (job.status) {
    case "completed":
      return hasProblems(job)
        ? { text: `completed with problems: ${counted}${tail}`, tone: "warning" }
        : { text: `completed: ${counted}${tail}`, tone: "ok" };
    case "failed":
      return { text: `failed after ${counted}${tail}`, tone: "error" };
    case "cancelled":
      return { text: `cancelled after ${counted}${tail}`, tone: "error" };
    case "paused":
      return { text: `paused after ${counted}${tail}`, tone: "warning" };
    default:
      return { text: `${job.status}: ${counted}${tail}`, tone: "ok" };
  }
}
