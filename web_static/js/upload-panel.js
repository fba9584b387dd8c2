// Choosing or dropping a file and sending it to POST /import with a byte bar.

import { $, formatBytes, setText } from "./dom.js";
import { uploadFile } from "./upload.js";

export class UploadPanel {
  constructor({ onJob }) {
    this.onJob = onJob;
    this.jobActive = false;
    this.uploading = false;
    this.input = $("file-input");
    this.input.addEventListener("change", () => this.update());
    $("upload-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.start();
    });
    this.bindDrop($("dropzone"));
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
    const bar = $("upload-bar");
    bar.value = 0;
    try {
      const { status, body } = await uploadFile(file, {
        onProgress: (loaded, total) => {
          bar.max = total;
          bar.value = loaded;
          setText($("upload-text"), `${formatBytes(loaded)} of ${formatBytes(total)}`);
        },
      });
      if (status === 202 || status === 200 || status === 201) {
        this.input.value = "";
        this.onJob(body);
      } else {
        setText(message, body.error || `the server refused the file (status ${status})`);
        if (status === 409 && body.job) this.onJob(body.job);
      }
    } catch (error) {
      setText(message, error.message);
    } finally {
      this.uploading = false;
      $("upload-progress").hidden = true;
      this.update();
    }
  }
}
