// The live job: bar, figures, badge, controls and the recent-rows table.
//
// Jobs arrive from three places (GET /import, SSE events, control answers)
// in any order, so every job passes through accept(), which drops news older
// than what is on screen and keeps the bar from moving backwards.

import { ApiError, controlJob, recentRows, rejectsUrl } from "./api.js";
import { $, el, formatBytes, formatDuration, formatNumber, setText } from "./dom.js";

export const ACTIVE = new Set(["queued", "running", "paused"]);
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
    if (previous && previous.id === job.id && ACTIVE.has(previous.status) && !this.active) this.onFinished(job);
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
    setText(badge, job.status);
    badge.dataset.status = job.status;

    const total = Number(job.bytes_total) || 0;
    this.shownBytes = Math.max(this.shownBytes, Number(job.bytes_done) || 0);
    const percent = job.status === "completed" ? 100
      : Number(job.percent ?? (total ? (100 * this.shownBytes) / total : 0));
    this.shownPercent = Math.max(this.shownPercent, percent);

    const bar = $("job-bar");
    bar.setAttribute("aria-valuemax", String(total));
    bar.setAttribute("aria-valuenow", String(this.shownBytes));
    bar.setAttribute("aria-valuetext", `${this.shownPercent.toFixed(1)}% (${formatBytes(this.shownBytes)} of ${formatBytes(total)})`);
    bar.dataset.status = job.status;
    $("job-bar-fill").style.width = `${Math.min(100, this.shownPercent)}%`;

    setText($("job-percent"), `${this.shownPercent.toFixed(1)}%`);
    setText($("job-bytes"), `${formatBytes(this.shownBytes)} / ${formatBytes(total)}`);
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

    $("pause-button").disabled = !(job.status === "queued" || job.status === "running");
    $("resume-button").disabled = job.status !== "paused";
    $("cancel-button").disabled = !ACTIVE.has(job.status);
    const link = $("rejects-link");
    const href = rejectsUrl(job.id);
    if (link.getAttribute("href") !== href) link.setAttribute("href", href);
    setText(link, `Download rejected rows (${formatNumber(job.rejected)}, CSV)`);
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
