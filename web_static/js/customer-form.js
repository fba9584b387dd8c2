// Create, edit and delete one customer in a modal dialog.
//
// Edits are optimistic-locked: the ETag from GET /customers/{id} goes back as
// If-Match, so a change someone else (or an import) made in between is
// reported (412) instead of silently overwritten.

import { ApiError, createCustomer, deleteCustomer, getCustomer, releaseCustomer, updateCustomer } from "./api.js";
import { announce } from "./announce.js";
import { CustomerHistory } from "./customer-history.js";
import { $, formatTime, setText } from "./dom.js";

// The API's shape check for an email (server/views/customer_models.py): local@domain.tld, no spaces.
const EMAIL = /^[^@\s]+@[^@\s]+\.[^@\s.]+$/;

// The customer fields, as the page renders them from server/fields.py: one control each.
function fieldNames() {
  return Array.from($("customer-fields").querySelectorAll("input[name], textarea[name]"), (control) => control.name);
}

export class CustomerForm {
  constructor({ onSaved, onCreated, onDeleted, onGone, onClosedOn }) {
    Object.assign(this, { onSaved, onCreated, onDeleted, onGone, onClosedOn });
    this.dialog = $("customer-dialog");
    this.form = $("customer-form");
    this.fields = fieldNames();
    this.history = new CustomerHistory(this.form, this.fields);
    this.customer = null; // null while creating
    this.etag = null;
    this.busy = false;
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.save();
    });
    this.saved = {}; // the values as opened, to tell unsaved edits
    $("close-dialog-button").addEventListener("click", () => this.closeAsked());
    // Esc: the same question as Close when something was typed.
    this.dialog.addEventListener("cancel", (event) => {
      event.preventDefault();
      this.closeAsked();
    });
    // Closed after an edit (saved or not): back to that customer's row, not the page body.
    this.dialog.addEventListener("close", () => {
      if (this.customer && this.onClosedOn) this.onClosedOn(this.customer.id);
    });
    $("delete-customer-button").addEventListener("click", () => this.remove());
    // A wrong email is said at its field as soon as the person leaves it, not only on Save.
    for (const name of this.fields) {
      const control = this.input(name);
      if (control.type !== "email") continue;
      control.addEventListener("change", () => {
        const problem = fieldProblem(control);
        setText($(`e-${name}`), problem || "");
        if (problem) control.setAttribute("aria-invalid", "true");
        else control.removeAttribute("aria-invalid");
      });
    }
    $("release-button").addEventListener("click", () => this.release());
  }

  dirty() {
    const now = this.values();
    return this.fields.some((name) => (now[name] ?? null) !== (this.saved[name] ?? null)
      || this.input(name).validity.badInput);
  }

  closeAsked() {
    if (this.dirty() && !window.confirm("Discard your unsaved changes to this customer?")) return;
    this.dialog.close();
  }

  showHandEdit(customer) {
    const note = $("hand-edit-note");
    const release = $("release-button");
    if (customer && customer.updated_manually_at) {
      const by = customer.updated_manually_by ? ` by ${customer.updated_manually_by}` : "";
      setText(note, `Edited by hand${by} on ${formatTime(customer.updated_manually_at)}: `
        + "imports leave this customer alone. Saving keeps it so.");
      release.hidden = false;
    } else {
      setText(note, "Saving marks this customer as edited by hand: later imports leave it alone, "
        + "even when a file has newer values for it.");
      release.hidden = true;
    }
  }

  async release() {
    try {
      const { customer, etag } = await releaseCustomer(this.customer.id, this.etag);
      this.customer = customer;
      this.etag = etag;
      this.showHandEdit(customer);
      this.onSaved(customer);
      setText($("form-message"), "");
      setText($("hand-edit-note"), "Imports update this customer again. Saving an edit would mark it as edited by hand again.");
      $("close-dialog-button").focus();
    } catch (error) {
      if (error instanceof ApiError && error.status === 412) await this.reloadAfterConflict();
      else this.fail(error);
    }
  }

  input(name) {
    return this.form.elements.namedItem(name);
  }

  openNew() {
    this.customer = null;
    this.etag = null;
    this.fill({});
    this.clearErrors();
    this.showHandEdit(null);
    this.history.show(null);
    setText($("customer-dialog-title"), "New customer");
    this.input("customer_id").readOnly = false;
    $("delete-customer-button").hidden = true;
    this.dialog.showModal();
    this.input("customer_id").focus();
  }

  async openEdit(id) {
    this.clearErrors();
    try {
      await this.load(id);
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) this.onGone(id);
      delete $("list-message").dataset.tone;
      setText($("list-message"), `Could not open the customer: ${error.message}`);
      return;
    }
    setText($("customer-dialog-title"), "Edit customer");
    this.showHandEdit(this.customer);
    this.history.show(id);
    // The Customer Id is what imports match on; changing it would detach the row from its source.
    this.input("customer_id").readOnly = true;
    $("delete-customer-button").hidden = false;
    if (!this.dialog.open) this.dialog.showModal();
    // The first field that can change (the Customer Id cannot).
    this.fields.map((name) => this.input(name)).find((control) => !control.readOnly).focus();
  }

  async load(id) {
    const { customer, etag } = await getCustomer(id);
    this.customer = customer;
    this.etag = etag;
    this.fill(customer);
    this.onSaved(customer);
  }

  fill(customer) {
    for (const name of this.fields) this.input(name).value = customer[name] ?? "";
    this.saved = this.values();
  }

  values() {
    const values = {};
    for (const name of this.fields) {
      const text = this.input(name).value.trim();
      values[name] = text === "" ? null : text;
    }
    return values;
  }

  clearErrors() {
    setText($("form-message"), "");
    for (const node of this.form.querySelectorAll(".field-error")) setText(node, "");
    for (const name of this.fields) this.input(name).removeAttribute("aria-invalid");
  }

  // A 422 names fields as pydantic locations ("email" or "body.email"); each
  // message goes under its input, anything unplaceable into the form message.
  showErrors(body) {
    const general = [];
    for (const { field, message } of body.fields || []) {
      const name = String(field ?? "").split(".").reverse().find((part) => this.fields.includes(part));
      if (name) {
        setText($(`e-${name}`), plain(message));
        this.input(name).setAttribute("aria-invalid", "true");
      } else {
        general.push(plain(message));
      }
    }
    // When every problem sits under its field, the summary only points there.
    const summary = general.length ? [body.error, ...general] : ["Please correct the marked fields."];
    setText($("form-message"), summary.filter(Boolean).join(" — "));
    const first = this.form.querySelector("[aria-invalid=true]");
    if (first) first.focus();
  }

  // Refused at the field before anything is sent (see fieldProblem).
  checkLocally() {
    const bad = this.fields.map((name) => ({ field: name, message: fieldProblem(this.input(name)) }))
      .filter((problem) => problem.message);
    if (bad.length) {
      this.showErrors({ fields: bad });
      return false;
    }
    return true;
  }

  async save() {
    if (this.busy) return;
    this.clearErrors();
    if (!this.checkLocally()) return;
    this.busy = true;
    try {
      if (this.customer) await this.saveEdit();
      else await this.saveNew();
    } finally {
      this.busy = false;
    }
  }

  async saveNew() {
    const fields = Object.fromEntries(Object.entries(this.values()).filter(([, v]) => v !== null));
    try {
      const customer = await createCustomer(fields);
      this.dialog.close();
      this.onCreated(customer);
    } catch (error) {
      this.fail(error);
    }
  }

  async saveEdit() {
    const values = this.values();
    const changed = {};
    for (const name of this.fields) {
      if (name !== "customer_id" && values[name] !== (this.customer[name] ?? null)) changed[name] = values[name];
    }
    if (Object.keys(changed).length === 0) {
      this.dialog.close();
      return;
    }
    try {
      const { customer, etag } = await updateCustomer(this.customer.id, changed, this.etag);
      this.customer = customer;
      this.etag = etag;
      this.dialog.close();
      this.onSaved(customer);
      const words = `Saved ${displayName(customer)} (${customer.customer_id}).`;
      announce(words);
      // Seen, not only heard: the list says so until its next change.
      const message = $("list-message");
      setText(message, words);
      message.dataset.tone = "ok";
    } catch (error) {
      if (error instanceof ApiError && error.status === 412) {
        await this.reloadAfterConflict();
      } else {
        this.fail(error);
      }
    }
  }

  async reloadAfterConflict() {
    try {
      await this.load(this.customer.id);
      setText($("form-message"), "Someone else changed this customer after you opened it. "
        + "The form now shows the current values; make your change again and save.");
    } catch (error) {
      this.fail(error);
    }
  }

  fail(error) {
    if (error instanceof ApiError && error.status === 409 && error.body.field === "customer_id") {
      this.showErrors({ fields: [{ field: "customer_id",
        message: "Another customer already has this Customer Id; choose another one." }] });
    } else if (!(error instanceof ApiError)) {
      setText($("form-message"), "The server could not be reached, so nothing was saved. "
        + "Your input is still here: try again in a moment.");
    } else if (error instanceof ApiError && error.status === 404 && this.customer) {
      setText($("form-message"), "This customer no longer exists.");
      this.onGone(this.customer.id);
    } else if (error instanceof ApiError && (error.body.fields || []).length) {
      this.showErrors(error.body);
    } else {
      setText($("form-message"), error.message);
    }
  }

  async remove() {
    if (!this.customer) return;
    const who = displayName(this.customer);
    if (!window.confirm(`Delete ${who} (${this.customer.customer_id})? This cannot be undone.`)) return;
    try {
      await deleteCustomer(this.customer.id, this.etag);
      this.dialog.close();
      this.onDeleted(this.customer.id);
    } catch (error) {
      if (error instanceof ApiError && error.status === 412) await this.reloadAfterConflict();
      else this.fail(error);
    }
  }
}

function displayName(customer) {
  return [customer.first_name, customer.last_name].filter(Boolean).join(" ") || customer.customer_id;
}

// What the browser can tell is wrong before the server is asked: a date input
// holding no date of the calendar (its value is then "", which would save as
// no date at all), an email not shaped like one.
function fieldProblem(control) {
  if (control.validity.badInput) {
    return "This is not a date of the calendar (check the day and the month), or leave the field empty.";
  }
  const value = control.value.trim();
  if (control.type === "email" && value !== "" && !EMAIL.test(value)) {
    return "This is not an email address: it should look like name@example.com, without spaces.";
  }
  return null;
}

// pydantic's words as a person would say them: "Value error, is not an email
// address" becomes "Not an email address."
export function plain(message) {
  let text = String(message || "").replace(/^(Value|Assertion) error,\s*/i, "").trim();
  if (!text) return "This value is not accepted.";
  if (/^(is|must) /.test(text)) text = `This value ${text}`;
  text = text[0].toUpperCase() + text.slice(1);
  return /[.!?]$/.test(text) ? text : `${text}.`;
}
