// Import history: the jobs of GET /import/jobs, newest first, a page at a time
// (keyset on the job id). Read when opened and again whenever a job ends.
// Statuses wear the job card's colours (amber: completed with problems).

import { importJobs, rejectsUrl } from "./api.js";
import { $, el, formatDuration, formatNumber, formatTime, setText } from "./dom.js";
import { hasProblems, jobSeconds } from "./import-panel.js";
import { undoButton } from "./undo.js";

const PAGE = 10;

export class JobHistory {
  constructor({ onFilterJob }) {
    this.onFilterJob = onFilterJob;
    this.next = null;
    this.loaded = false;
    this.toggle = $("history-toggle");
    this.toggle.addEventListener("click", () => this.setOpen(!this.open));
    $("history-more").addEventListener("click", () => this.load(this.next));
  }

  get open() {
    return this.toggle.getAttribute("aria-expanded") === "true";
  }

  setOpen(open) {
    this.toggle.setAttribute("aria-expanded", String(open));
    $("history-content").hidden = !open;
    if (open && !this.loaded) this.reload();
  }

  // A job ended or started: what is shown is stale, but only read it again if someone looks.
  refresh() {
    this.loaded = false;
    if (this.open) this.reload();
  }

  reload() {
    this.loaded = true;
    $("history-body").replaceChildren();
    return this.load(null);
  }

  async load(before) {
    try {
      const page = await importJobs({ before, limit: PAGE });
      $("history-body").append(...page.items.map((job) => this.row(job)));
      this.next = page.next;
      $("history-more").hidden = page.next == null;
      setText($("history-message"), page.items.length === 0 && before == null ? "No imports yet." : "");
    } catch (error) {
      this.loaded = false;
      setText($("history-message"), `The history could not be read: ${error.message}`);
    }
  }

  // The links cell: what can be done with a job (more controls may join here).
  links(job) {
    const links = el("td", { className: "links" });
    if (this.onFilterJob && job.inserted + job.updated > 0) {
      const show = el("button", { type: "button", className: "link-button", text: "Its customers" });
      show.addEventListener("click", () => this.onFilterJob(job.id));
      links.append(show);
    }
    if (job.rejected > 0) {
      links.append(el("a", { href: rejectsUrl(job.id), download: "", text: "Rejected rows (CSV)" }));
    }
    const undo = undoButton(job, { onMessage: (text) => setText($("history-message"), text) });
    if (undo) links.append(undo);
    return links;
  }

  row(job) {
    // The job card's badge: its words, its colour (amber when it completed with problems).
    const badge = el("span", { className: "badge", dataset: { status: job.status, problems: String(hasProblems(job)) },
      text: job.status });
    const seconds = job.finished_at ? jobSeconds(job) : null;
    // Counters first, beside the status, so they stay in view on a narrow panel.
    return el("tr", { dataset: { job: String(job.id) } },
      el("td", { className: "num", text: String(job.id) }),
      el("td", {}, badge),
      el("td", { className: "num", text: formatNumber(job.inserted + job.updated) }),
      el("td", { className: "num", text: formatNumber(job.rejected) }),
      el("td", { className: "filename", text: job.filename }),
      el("td", { text: job.started_at ? formatTime(job.started_at) : "not yet" }),
      el("td", { className: "num", text: seconds == null ? "" : formatDuration(seconds) }),
      el("td", { text: job.created_by ?? "command line" }),
      this.links(job));
  }
}
