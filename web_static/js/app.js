// Wires the page together: one live job feed, the upload form, the list.

import { announce } from "./announce.js";
import { $, debounce, el, setText } from "./dom.js";
import { CustomerForm } from "./customer-form.js";
import { CustomerList } from "./customer-list.js";
import { ImportPanel } from "./import-panel.js";
import { JobHistory } from "./job-history.js";
import { JobFeed } from "./sse.js";
import { UploadPanel } from "./upload-panel.js";

const SEARCH_DELAY_MS = 300;
const CONNECTION_TEXT = {
  live: "Live",
  reconnecting: "Reconnecting…",
  offline: "Server unreachable, retrying…",
};

function main() {
  const list = new CustomerList({ onEdit: (id) => form.openEdit(id) });
  const form = new CustomerForm({
    onSaved: (customer) => list.replace(customer),
    onCreated: (customer) => {
      const name = [customer.first_name, customer.last_name].filter(Boolean).join(" ") || customer.customer_id;
      const words = `Customer ${name} (${customer.customer_id}) created; it is the first row, newest first.`;
      announce(words);
      list.showCreated(customer, words);
    },
    onDeleted: (id) => list.remove(id),
    onGone: (id) => list.remove(id),
    onClosedOn: (id) => list.focusEdit(id),
  });
  const history = new JobHistory({ onFilterJob: (jobId) => showJob(jobId) });
  const upload = new UploadPanel({
    onJob: (job) => {
      panel.accept(job, "upload");
      history.refresh();
      // The Start button is disabled now; the person goes on where the job is shown.
      $("job-title").focus();
    },
  });
  const panel = new ImportPanel({
    onActiveChange: (active) => upload.setJobActive(active),
    // A finished import changed the table; show it from the top.
    onFinished: () => {
      list.reset();
      history.refresh();
    },
  });
  const feed = new JobFeed({
    onJob: (job, kind, eventId) => {
      panel.accept(job, kind, eventId);
      setText($("tab-import-status"), job.status && job.status !== "idle" ? `(${job.status})` : "");
      if (job.status === "running") list.refreshIfEmpty();
    },
    onConnection: (state) => {
      const node = $("connection");
      node.dataset.state = state;
      setText(node, CONNECTION_TEXT[state] || state);
    },
  });

  const sort = $("list-sort");
  const filter = $("list-filter");
  const steer = () => {
    const value = filter.value;
    list.steer({ sort: sort.value, edited: value === "edited",
      job: value.startsWith("job:") ? Number(value.slice(4)) : null });
  };
  sort.addEventListener("change", steer);
  filter.addEventListener("change", steer);
  // "Its customers" in the history: a filter option of its own, chosen.
  function showJob(jobId) {
    const value = `job:${jobId}`;
    if (![...filter.options].some((option) => option.value === value)) {
      filter.append(el("option", { value, text: `From import ${jobId}` }));
    }
    filter.value = value;
    steer();
    $("customers-heading").scrollIntoView({ block: "start" });
    filter.focus();
  }

  const search = $("search-input");
  search.addEventListener("input", debounce(() => list.reset(search.value.trim()), SEARCH_DELAY_MS));
  $("new-customer-button").addEventListener("click", () => form.openNew());

  // The phone's tabs (hidden on wider screens, where both panels show).
  function showTab(name) {
    document.body.dataset.tab = name;
    $("tab-customers").setAttribute("aria-selected", String(name === "customers"));
    $("tab-import").setAttribute("aria-selected", String(name === "import"));
  }
  $("tab-customers").addEventListener("click", () => showTab("customers"));
  $("tab-import").addEventListener("click", () => showTab("import"));
  // The empty list points to the import that fills it.
  $("empty-import-button").addEventListener("click", () => {
    showTab("import");
    $("import-heading").scrollIntoView({ block: "start" });
    $("file-input").focus();
  });

  feed.start();
  list.render();
}

main();
