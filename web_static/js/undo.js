// "Undo this import" in the import history: a dry run first, its counts shown,
// and the undo starts only when the person says so. The undo is a job like an
// import, so the import panel shows its progress over the one event stream.

import { ApiError, getJob, undoJob } from "./api.js";
import { el, formatNumber } from "./dom.js";

const ENDED = ["completed", "failed", "cancelled"];
const POLL_MS = 300;

export function undoButton(job, { onMessage }) {
  if (job.kind === "undo" || job.status !== "completed" || job.options?.dry_run) return null;
  const button = el("button", { type: "button", className: "link-button needs-admin", text: "Undo this import" });
  button.addEventListener("click", () => offerUndo(job, button, onMessage));
  return button;
}

async function offerUndo(job, button, onMessage) {
  button.disabled = true;
  try {
    onMessage(`Counting what undoing import ${job.id} would do…`);
    const dry = await finished(await undoJob(job.id, { dryRun: true }));
    onMessage("");
    if (dry.status !== "completed") throw new Error(dry.error || `the count ended ${dry.status}`);
    if (await ask(job, dry)) {
      const undo = await undoJob(job.id);
      onMessage(`Undo of import ${job.id} started (job ${undo.id}).`);
    }
  } catch (error) {
    const reason = error instanceof ApiError ? error.message : `it could not start: ${error.message}`;
    onMessage(`Import ${job.id} cannot be undone: ${reason}`);
  } finally {
    button.disabled = false;
  }
}

async function finished(job) {
  while (!ENDED.includes(job.status)) {
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    job = await getJob(job.id);
  }
  return job;
}

// The dry run's counts, and two ways out; resolves true when the undo should start.
function ask(job, dry) {
  const dialog = el("dialog", { className: "undo-dialog", "aria-labelledby": "undo-dialog-title" },
    el("h2", { id: "undo-dialog-title", text: `Undo import ${job.id}?` }),
    el("p", { text: job.filename }),
    el("ul", {},
      el("li", { text: `${formatNumber(dry.deleted)} customers it added would be deleted` }),
      el("li", { text: `${formatNumber(dry.updated)} customers it changed would get their values back` }),
      el("li", { text: `${formatNumber(dry.rejected)} customers changed since would be left as they are` })));
  const keep = el("button", { type: "button", text: "Keep the import" });
  const go = el("button", { type: "button", className: "danger", text: "Undo this import" });
  dialog.append(el("div", { className: "dialog-actions" }, keep, go));
  document.body.append(dialog);
  return new Promise((resolve) => {
    const close = (answer) => {
      dialog.close();
      dialog.remove();
      resolve(answer);
    };
    keep.addEventListener("click", () => close(false));
    go.addEventListener("click", () => close(true));
    dialog.addEventListener("cancel", (event) => {
      event.preventDefault();
      close(false);
    });
    dialog.showModal();
    keep.focus();
  });
}

