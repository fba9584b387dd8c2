// Import history: the jobs of GET /import/jobs, newest first, a page at a time
// (keyset on the job id). Read when opened and again whenever a job ends.

import { importJobs, rejectsUrl } from "./api.js";
import { $, el, formatNumber, setText } from "./dom.js";
import { undoButton } from "./undo.js";

const PAGE = 10;

export class JobHistory {
  constructor({ onFilterJob }) {
    this.onFilterJob = onFilterJob;
    this.next = null;
    this.loaded = false;
    $("history").addEventListener("toggle", () => {
      if ($("history").open && !this.loaded) this.reload();
    });
    $("history-more").addEventListener("click", () => this.load(this.next));
  }

  // A job ended or started: what is shown is stale, but only read it again if someone looks.
  refresh() {
    this.loaded = false;
    if ($("history").open) this.reload();
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

  row(job) {
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
    return el("tr", { dataset: { job: String(job.id) } },
      el("td", { className: "num", text: String(job.id) }),
      el("td", { className: "filename", text: job.filename }),
      el("td", { text: job.created_by ?? "command line" }),
      el("td", { text: job.started_at ? formatWhen(job.started_at) : "not yet" }),
      el("td", {}, el("span", { className: "badge", dataset: { status: job.status }, text: job.status })),
      el("td", { className: "num", text: formatNumber(job.inserted + job.updated) }),
      el("td", { className: "num", text: formatNumber(job.rejected) }),
      links);
  }
}

function formatWhen(iso) {
  return new Date(iso).toLocaleString("en", { dateStyle: "medium", timeStyle: "short" });
}
