// A customer's history in its dialog: every recorded change, newest first
// (GET /customers/{id}/history), a page at a time.

import { customerHistory } from "./api.js";
import { el, formatTime, setText } from "./dom.js";

const PAGE = 20;

export class CustomerHistory {
  // `fields`: the customer's field names in the form's order, which the changes follow.
  constructor(form, fields) {
    this.fields = fields;
    this.label = (name) => form.querySelector(`label[for="f-${name}"]`)?.textContent.trim() || name;
    this.list = el("ol", { className: "history-items", id: "customer-history-list" });
    this.more = el("button", { type: "button", className: "link-button", text: "Older changes" });
    this.message = el("p", { className: "message", role: "status" });
    this.details = el("details", { className: "customer-history", id: "customer-history" },
      el("summary", { text: "History" }), this.list, this.more, this.message);
    form.querySelector(".dialog-actions").before(this.details);
    this.more.addEventListener("click", () => this.load(this.next));
    this.id = null;
  }

  show(id) {
    this.id = id;
    this.details.hidden = id == null;
    this.list.replaceChildren();
    this.more.hidden = true;
    setText(this.message, "");
    if (id != null) this.load(null);
  }

  async load(after) {
    const id = this.id;
    try {
      const page = await customerHistory(id, { after, limit: PAGE });
      if (id !== this.id) return;  // another customer was opened meanwhile
      this.list.append(...page.items.map((entry) => this.item(entry)));
      this.next = page.next;
      this.more.hidden = page.next == null;
      if (page.items.length === 0 && after == null) setText(this.message, "No recorded changes.");
    } catch (error) {
      setText(this.message, `The history could not be read: ${error.message}`);
    }
  }

  item(entry) {
    const when = formatTime(entry.at);
    const order = (field) => this.fields.indexOf(field);
    const changes = Object.entries(entry.changes || {}).sort(([a], [b]) => order(a) - order(b));
    return el("li", { dataset: { action: entry.action } },
      el("span", { className: "what", text: `${describe(entry)}, ${when}` }),
      changes.length === 0 ? "" : el("ul", { className: "changes" },
        ...changes.map(([field, [before, after]]) =>
          el("li", { text: `${this.label(field)}: ${show(before)} → ${show(after)}` }))));
  }
}

function describe(entry) {
  const verb = { insert: "Added", update: "Changed", delete: "Deleted", undo: "Undone" }[entry.action];
  if (entry.job_id != null && entry.action === "undo") return `${verb} by undo job ${entry.job_id}`;
  if (entry.job_id != null) return `${verb} by import ${entry.job_id}, line ${entry.line_no}`;
  return `${verb} by ${entry.by ?? "another program"}`;
}

function show(value) {
  return value == null ? "(empty)" : String(value);
}
