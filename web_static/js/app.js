// Wires the page together: one live job feed, the upload form, the list.

import { $, debounce, setText } from "./dom.js";
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
    onCreated: () => list.reset(),
    onDeleted: (id) => list.remove(id),
    onGone: (id) => list.remove(id),
  });
  const history = new JobHistory({ onFilterJob: null });
  const upload = new UploadPanel({
    onJob: (job) => {
      panel.accept(job, "upload");
      history.refresh();
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
      if (job.status === "running") list.refreshIfEmpty();
    },
    onConnection: (state) => {
      const node = $("connection");
      node.dataset.state = state;
      setText(node, CONNECTION_TEXT[state] || state);
    },
  });

  const search = $("search-input");
  search.addEventListener("input", debounce(() => list.reset(search.value.trim()), SEARCH_DELAY_MS));
  $("new-customer-button").addEventListener("click", () => form.openNew());

  feed.start();
  list.render();
}

main();
