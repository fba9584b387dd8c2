// The one live feed of the page: GET /import first, then one EventSource.
//
// The contract wants the persisted job read and drawn before every
// (re)subscription, so on any error the EventSource is closed (not left to
// its built-in retry) and the whole read-then-subscribe step runs again.

import { currentJob } from "./api.js";

const EVENT_TYPES = ["snapshot", "progress", "state"];
const MIN_DELAY_MS = 500;
const MAX_DELAY_MS = 3000;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export class JobFeed {
  constructor({ onJob, onConnection }) {
    this.onJob = onJob;
    this.onConnection = onConnection;
    this.source = null;
    this.delay = MIN_DELAY_MS;
    this.connecting = false;
  }

  start() {
    this.connect();
  }

  async connect() {
    if (this.connecting) return;
    this.connecting = true;
    try {
      await this.readCurrent();
      this.subscribe();
    } finally {
      this.connecting = false;
    }
  }

  async readCurrent() {
    for (;;) {
      try {
        this.onJob(await currentJob(), "read");
        return;
      } catch (error) {
        this.onConnection("offline", error.message);
        await sleep(this.nextDelay());
      }
    }
  }

  subscribe() {
    const source = new EventSource("/import/events");
    this.source = source;
    for (const type of EVENT_TYPES) {
      source.addEventListener(type, (event) => {
        let job;
        try {
          job = JSON.parse(event.data);
        } catch {
          return; // a malformed event is dropped; the next snapshot corrects everything
        }
        this.onJob(job, type, event.lastEventId);
      });
    }
    source.addEventListener("open", () => {
      this.delay = MIN_DELAY_MS;
      this.onConnection("live");
    });
    source.addEventListener("error", () => {
      if (this.source !== source) return;
      source.close();
      this.source = null;
      this.onConnection("reconnecting");
      setTimeout(() => this.connect(), this.nextDelay());
    });
  }

  nextDelay() {
    const delay = this.delay;
    this.delay = Math.min(this.delay * 2, MAX_DELAY_MS);
    return delay;
  }
}
