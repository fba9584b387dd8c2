// Choosing or dropping a file, uploading it resumably (bytes, percent, speed,
// time left), then starting its import with POST /import {"upload": ID}.

import { ApiError, importUpload } from "./api.js";
import { $, formatBytes, formatDuration, setText } from "./dom.js";
import { uploadFile } from "./upload.js";

const SPEED_WINDOW_MS = 5000; // speed over the last few seconds, not since the start

export class UploadPanel {
  constructor({ onJob }) {
    this.onJob = onJob;
    this.jobActive = false;
    this.uploading = false;
    this.chunkSize = Number($("upload-form").dataset.chunkBytes) || 16 * 1024 * 1024;
    this.input = $("file-input");
    this.input.addEventListener("change", () => this.update());
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
    this.input.disabled = this.uploading;
  }

  async start() {
    const file = this.input.files && this.input.files[0];
    if (!file || this.jobActive || this.uploading) return;
    const message = $("upload-message");
    setText(message, "");
    this.uploading = true;
    this.update();
    $("upload-progress").hidden = false;
    const progress = new Progress($("upload-bar"));
    try {
      const uploadId = await uploadFile(file, {
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
      setText($("upload-label"), "Starting the import");
      this.input.value = "";
      this.onJob(await importUpload(uploadId));
      setText(message, "");
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
