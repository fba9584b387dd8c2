// Choosing or dropping a file, uploading it resumably (bytes, percent, speed,
// time left), then starting its import with POST /import {"upload": ID}.
// "Preview" uploads it first and shows what the import would do (settings,
// every column with a select for its field, the first rows, rejects marked);
// "Start import" then imports that same upload with the fields chosen.

import { ApiError, importUpload, previewUpload } from "./api.js";
import { $, el, formatBytes, formatDuration, formatNumber, setText } from "./dom.js";
import { uploadFile } from "./upload.js";

const SPEED_WINDOW_MS = 5000; // speed over the last few seconds, not since the start

export class UploadPanel {
  constructor({ onJob }) {
    this.onJob = onJob;
    this.jobActive = false;
    this.uploading = false;
    this.chunkSize = Number($("upload-form").dataset.chunkBytes) || 16 * 1024 * 1024;
    this.input = $("file-input");
    this.preview = null; // {file, uploadId, detected: {column: field}, options}
    this.input.addEventListener("change", () => {
      this.clearPreview();
      this.update();
    });
    $("preview-button").addEventListener("click", () => this.showPreview());
    $("upload-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.start();
    });
    this.bindDrop($("dropzone"));
    this.cancel = null;
    $("upload-cancel").addEventListener("click", () => this.cancel && this.cancel());
    // A reload or a closed tab would stop the upload: the browser asks first.
    window.addEventListener("beforeunload", (event) => {
      if (!this.uploading) return;
      event.preventDefault();
      event.returnValue = "";
    });
    // A file dropped beside the zone would make the browser open it and leave the page.
    for (const type of ["dragover", "drop"]) {
      document.addEventListener(type, (event) => {
        if (!$("dropzone").contains(event.target)) event.preventDefault();
      });
    }
  }

  bindDrop(zone) {
    zone.addEventListener("dragover", (event) => {
      event.preventDefault();
      zone.classList.add("over");
    });
    zone.addEventListener("dragleave", () => zone.classList.remove("over"));
    zone.addEventListener("drop", (event) => {
      event.preventDefault();
      zone.classList.remove("over");
      if (event.dataTransfer && event.dataTransfer.files.length) {
        this.input.files = event.dataTransfer.files;
        this.clearPreview();
        this.update();
      }
    });
  }

  setJobActive(active) {
    this.jobActive = active;
    this.update();
  }

  update() {
    const chosen = this.input.files && this.input.files.length > 0;
    // One import at a time: the server refuses a second one with 409 anyway.
    $("start-button").disabled = this.jobActive || this.uploading || !chosen;
    $("start-button").title = this.jobActive ? "An import is already queued, running or paused" : "";
    $("preview-button").disabled = this.uploading || !chosen;
    this.input.disabled = this.uploading;
  }

  // Start applies what Preview would: the same detection, a misspelled column
  // sent to its suggested field. When a column matches no field but looks like
  // one, the import does not start: the preview opens with the suggestion
  // chosen, for the person to confirm with a second Start.
  async start() {
    const file = this.input.files && this.input.files[0];
    if (!file || this.jobActive || this.uploading) return;
    const previewed = this.preview && this.preview.file === file ? this.preview : null;
    await this.withUpload(file, async (uploadId) => {
      if (!previewed) {
        setText($("upload-label"), "Reading the file");
        const preview = await previewUpload(uploadId);
        this.preview = { file, uploadId, detected: detectedFields(preview), options: {} };
        const unplaced = preview.columns.filter((column) => !column.field && column.suggestions.length);
        if (unplaced.length) {
          this.renderPreview(preview, true);
          $("preview-heading").focus();
          return `Not started: ${unplaced.map((c) => `column ${c.name} matches no field (suggested: ${
            c.suggestions.map((name) => fieldLabel(preview, name)).join(", ")})`).join("; ")}. `
            + "Check where each column goes below, then press Start import again.";
        }
      }
      setText($("upload-label"), "Starting the import");
      this.onJob(await importUpload(uploadId, previewed ? this.chosenOptions() : {}));
      this.input.value = "";
      this.clearPreview();
      return "";
    }, previewed && previewed.uploadId);
  }

  async showPreview() {
    const file = this.input.files && this.input.files[0];
    if (!file || this.uploading) return;
    await this.withUpload(file, async (uploadId) => {
      setText($("upload-label"), "Reading the file");
      const preview = await previewUpload(uploadId);
      this.preview = { file, uploadId, detected: detectedFields(preview), options: {} };
      this.renderPreview(preview, true);
      return "";
    });
  }

  // Upload `file` (unless it is uploaded already), then `then(uploadId)`; its words (or the error) shown under the form.
  async withUpload(file, then, uploadedId = null) {
    const message = $("upload-message");
    setText(message, "");
    this.uploading = true;
    this.update();
    $("upload-progress").hidden = false;
    const progress = new Progress($("upload-bar"));
    try {
      const uploadId = uploadedId || await uploadFile(file, {
        chunkSize: this.chunkSize,
        onResume: (offset, total) => {
          progress.resumedAt(offset, total);
          if (offset > 0) {
            setText(message, `Continuing an earlier upload of this file from ${formatBytes(offset)} of ${formatBytes(total)}`);
          }
        },
        onProgress: (sent, total) => progress.show(sent, total),
        onStart: (cancel) => { this.cancel = cancel; },
      });
      this.cancel = null;
      setText(message, await then(uploadId));
    } catch (error) {
      setText(message, error.message);
      if (error instanceof ApiError && error.status === 409 && error.body.job) this.onJob(error.body.job);
    } finally {
      this.cancel = null;
      this.uploading = false;
      $("upload-progress").hidden = true;
      setText($("upload-label"), "Uploading");
      this.update();
    }
  }

  clearPreview() {
    this.preview = null;
    $("preview").hidden = true;
  }

  // The mapping the person chose: every column whose select differs from what the server found.
  chosenOptions() {
    const mapping = {};
    for (const select of $("preview-columns").querySelectorAll("select")) {
      const column = select.dataset.column;
      const field = select.value || null;
      if (field !== this.preview.detected[column]) mapping[column] = field;
    }
    const options = { ...this.preview.options };
    if (Object.keys(mapping).length) options.mapping = mapping;
    return options;
  }

  async refreshRows() {
    const preview = this.preview;
    try {
      const fresh = await previewUpload(preview.uploadId, this.chosenOptions());
      if (this.preview === preview) this.renderPreview(fresh, false);
    } catch (error) {
      setText($("upload-message"), error.message);
    }
  }

  renderPreview(preview, withColumns) {
    const tab = preview.delimiter === "\t" ? "tab" : `"${preview.delimiter}"`;
    const dates = preview.date_format === "auto"
      ? `dates unclear (${preview.date_formats.join(" or ") || "no layout fits"})`
      : `dates ${preview.date_format}`;
    setText($("preview-settings"),
      `${preview.encoding}, delimiter ${tab}, ${dates}; about ${formatNumber(preview.estimated_rows)} rows`);
    const examples = preview.non_ascii_examples || [];
    const accents = $("preview-examples");
    accents.hidden = examples.length === 0;
    setText(accents, examples.length ? `Letters beyond ASCII, as they will be stored: ${examples.join(", ")}` : "");
    if (withColumns) this.renderColumns(preview);
    const rows = $("preview-rows");
    rows.replaceChildren();
    for (const row of preview.rows) {
      if (row.reject) {
        // The raw line has its own full-width row: it is the whole record, not one field.
        rows.append(el("tr", { className: "rejected" },
          el("td", { className: "num", text: row.line_no ?? "" }),
          el("td", { colspan: "5", text: row.reject })));
        rows.append(el("tr", { className: "rejected raw" },
          el("td", {}), el("td", { colspan: "5" }, el("code", { text: row.raw || "" }))));
      } else {
        const cells = [row.customer_id, row.first_name, row.last_name, row.email, row.subscription_date];
        rows.append(el("tr", {}, el("td", { className: "num", text: row.line_no ?? "" }),
          ...cells.map((v) => el("td", { text: v ?? "" }))));
      }
    }
    $("preview").hidden = false;
    if (withColumns && this.preview) this.refreshRows();
  }

  renderColumns(preview) {
    const body = $("preview-columns");
    body.replaceChildren();
    // The values column only when the server checked values (an older server does not).
    body.closest("table").dataset.checks = String(preview.columns.some((column) => column.check));
    for (const column of preview.columns) {
      const select = el("select", { "aria-label": `Field for column ${column.name}`, dataset: { column: column.name } });
      select.append(el("option", { value: "", text: "— ignore —" }));
      for (const field of preview.fields) select.append(el("option", { value: field.name, text: field.label }));
      // A column the rules did not place gets the closest field, for the person to confirm or change.
      select.value = column.field || column.suggestions[0] || "";
      const hint = !column.field && column.suggestions.length
        ? ` (suggested: ${column.suggestions.map((name) => fieldLabel(preview, name)).join(", ")})` : "";
      const check = checkCell(column.check);
      const row = el("tr", {}, el("td", { text: column.name + hint }), el("td", {}, select), check);
      const mark = () => { row.dataset.ignored = String(select.value === ""); };
      select.addEventListener("change", () => {
        mark();
        this.refreshRows();
      });
      mark();
      body.append(row);
    }
  }
}

function detectedFields(preview) {
  return Object.fromEntries(preview.columns.map((c) => [c.name, c.field]));
}

function fieldLabel(preview, name) {
  const field = (preview.fields || []).find((f) => f.name === name);
  return field ? field.label : name;
}

const CHECK_WORDS = { email: "emails", date: "dates", phone: "phone numbers", url: "web addresses" };

// How many sampled values look like what the field holds; a warning when most do not.
function checkCell(check) {
  if (!check) return el("td", { className: "check", text: "" });
  const what = CHECK_WORDS[check.kind] || check.kind;
  const cell = el("td", { className: "check" },
    `${formatNumber(check.matching)} of ${formatNumber(check.sampled)} look like ${what}`);
  if (check.warning) {
    cell.dataset.warning = "true";
    cell.append(el("span", { className: "check-warning", text: check.warning }));
  }
  return cell;
}

// The byte bar and its figures: bytes, percent, speed and time left.
class Progress {
  constructor(bar) {
    this.bar = bar;
    this.samples = [];
    bar.value = 0;
    for (const id of ["upload-text", "upload-percent", "upload-speed", "upload-eta"]) setText($(id), "");
  }

  resumedAt(offset, total) {
    this.samples = [];
    this.show(offset, total);
  }

  show(sent, total) {
    const now = performance.now();
    this.samples.push([now, sent]);
    while (this.samples.length > 2 && now - this.samples[0][0] > SPEED_WINDOW_MS) this.samples.shift();
    const [since, from] = this.samples[0];
    const speed = now > since ? ((sent - from) * 1000) / (now - since) : 0;
    this.bar.max = total || 1;
    this.bar.value = sent;
    this.bar.dataset.sent = String(sent);
    setText($("upload-text"), `${formatBytes(sent)} of ${formatBytes(total)}`);
    setText($("upload-percent"), `${total ? ((100 * sent) / total).toFixed(1) : "0.0"}%`);
    setText($("upload-speed"), speed > 0 ? `${formatBytes(speed)}/s` : "");
    setText($("upload-eta"), speed > 0 && sent < total ? `${formatDuration((total - sent) / speed)} left` : "");
  }
}
