// The customer list, windowed: only the rows in view (plus a few) exist in
// the DOM, each at a fixed height, however many customers are loaded.
//
// Keyset paging has no count (the total shown above the list is the table's,
// an estimate when large), so the scroll height is what is loaded plus one
// "loading" row, and grows as pages arrive. Pages can
// only be fetched forwards by cursor, and every loaded item stays cached, so
// scrolling back never asks the server again.

import { ApiError, customersPage } from "./api.js";
import { $, el, formatDate, formatNumber, formatTime, setText } from "./dom.js";

// The row height comes from the CSS (--row-height: taller on a phone, for 44 px targets).
const DEFAULT_ROW_HEIGHT = 40;
const OVERSCAN = 6;          // rows drawn above and below the viewport
const PREFETCH_ROWS = 60;    // fetch the next page when this close to the end
const FIRST_PAGE_SIZE = 500;
const MIN_PAGE_SIZE = 50;
// Browsers cap an element's height (Chromium near 33.5 million px, Firefox
// near 17.9 million); 2 million rows at 40 px would pass it. Past this
// height the scroll bar maps proportionally onto the rows instead.
const MAX_SCROLL_PX = 10_000_000;

export class CustomerList {
  constructor({ onEdit }) {
    this.onEdit = onEdit;
    this.viewport = $("list-viewport");
    this.spacer = $("list-spacer");
    this.rows = new Map(); // item index -> row element
    this.pageSize = FIRST_PAGE_SIZE;
    this.q = "";
    this.view = { sort: "id", job: null, edited: false }; // order and filter, when not searching
    this.freshId = null; // a customer just created, shown marked at the top
    this.notice = ""; // what the list message says once a page has loaded
    this.generation = 0;
    this.frame = 0;
    this.clear();
    this.viewport.addEventListener("scroll", () => this.schedule(), { passive: true });
    this.rowHeight = DEFAULT_ROW_HEIGHT;
    new ResizeObserver(() => {
      this.rowHeight = parseFloat(getComputedStyle(this.viewport).getPropertyValue("--row-height")) || DEFAULT_ROW_HEIGHT;
      for (const row of this.rows.values()) row.dataset.stale = "1"; // positioned for the old height
      this.schedule();
    }).observe(this.viewport);
  }

  clear() {
    this.items = [];
    this.next = null;
    this.done = false;
    this.loading = false;
    this.failed = false;
    if (this.controller) this.controller.abort();
    this.controller = null;
  }

  // A new search (or a reload after a create or an import) starts from the top.
  reset(q = this.q) {
    this.q = q;
    this.notice = "";
    delete $("list-message").dataset.tone;
    $("list-note").hidden = !q || (this.view.sort === "id" && this.view.job == null && !this.view.edited);
    this.generation += 1;
    this.clear();
    for (const row of this.rows.values()) row.remove();
    this.rows.clear();
    this.viewport.scrollTop = 0;
    this.render();
  }

  // While an import fills an empty table, an empty list would look wrong;
  // look again now and then (an already filled list is left alone: no jumps).
  refreshIfEmpty() {
    const now = performance.now();
    if (!this.done || this.items.length > 0 || this.q || now - (this.emptyCheckedAt || 0) < 1000) return;
    this.emptyCheckedAt = now;
    this.reset();
  }

  schedule() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.render();
    });
  }

  async loadMore() {
    if (this.loading || this.done || this.failed) return;
    const generation = this.generation;
    this.loading = true;
    this.controller = new AbortController();
    try {
      // A search comes in id order only (the API says so): order and filter wait for an empty box.
      const view = this.q ? {} : this.view;
      const first = this.next == null && this.items.length === 0;
      const page = await customersPage({ limit: this.pageSize, after: this.next, q: this.q, ...view,
        total: first }, this.controller.signal);
      if (generation !== this.generation) return;
      if (page.total != null) this.showTotal(page);
      this.items.push(...(page.items || []));
      this.next = page.next ?? null;
      this.done = this.next == null;
      const empty = this.done && this.items.length === 0;
      const filtered = this.q || this.view.job != null || this.view.edited;
      // An empty table (not an empty search) points to the import that fills it.
      $("list-empty").hidden = !(empty && !filtered);
      setText($("list-message"), empty && this.q ? `No customer matches “${this.q}”.`
        : empty && filtered ? "No customer matches this filter." : this.notice);
    } catch (error) {
      if (generation !== this.generation || error.name === "AbortError") return;
      if (error instanceof ApiError && error.status === 422 && this.pageSize > MIN_PAGE_SIZE) {
        this.pageSize = Math.max(MIN_PAGE_SIZE, Math.floor(this.pageSize / 2)); // the server caps limit lower
      } else {
        this.failed = true;
        setText($("list-message"), `Could not load customers: ${error.message}`);
        setTimeout(() => { if (generation === this.generation) { this.failed = false; this.schedule(); } }, 3000);
      }
    } finally {
      if (generation === this.generation) {
        this.loading = false;
        this.controller = null;
        this.schedule();
      }
    }
  }

  render() {
    const count = this.items.length;
    const pending = this.done ? 0 : 1; // room for the "loading" row at the end
    const rowHeight = this.rowHeight;
    const total = (count + pending) * rowHeight;
    const physical = Math.min(total, MAX_SCROLL_PX);
    const height = `${physical}px`;
    if (this.spacer.style.height !== height) this.spacer.style.height = height;
    // What is loaded, for people reading the DOM (and the browser tests).
    this.viewport.dataset.loaded = String(count);
    this.viewport.dataset.done = String(this.done);

    const top = this.viewport.scrollTop;
    const view = this.viewport.clientHeight;
    const scale = physical > view && total > physical ? (total - view) / (physical - view) : 1;
    const virtualTop = top * scale;
    // Rows sit at their virtual offset, moved so the viewport's top shows virtualTop.
    this.shift = top - virtualTop;
    const first = Math.max(0, Math.floor(virtualTop / rowHeight) - OVERSCAN);
    const last = Math.min(count + pending, Math.ceil((virtualTop + view) / rowHeight) + OVERSCAN);

    for (const [index, row] of this.rows) {
      if (index < first || index >= last || (index >= count && this.done) || row.dataset.stale) {
        row.remove();
        this.rows.delete(index);
      }
    }
    for (let index = first; index < last; index += 1) {
      const existing = this.rows.get(index);
      if (existing && !(existing.dataset.placeholder && index < count)) continue;
      if (existing) existing.remove();
      const row = index < count ? this.buildRow(this.items[index], index) : this.placeholderRow(index);
      this.rows.set(index, row);
      this.insertInOrder(row, index);
    }
    for (const [index, row] of this.rows) this.position(row, index);
    if (!this.done && last + PREFETCH_ROWS >= count) this.loadMore();
  }

  // Rows stay in the DOM in their order on screen, so Tab goes from one row to
  // the next below it. Existing rows are never moved (moving one drops its focus).
  insertInOrder(row, index) {
    let before = null;
    for (const child of this.spacer.children) {
      if (Number(child.dataset.index) > index) {
        before = child;
        break;
      }
    }
    this.spacer.insertBefore(row, before);
  }

  // Order or filter changed: from the top.
  steer(view) {
    Object.assign(this.view, view);
    this.freshId = null;
    this.reset();
  }

  // What the words above the list count is what the list shows: the matches
  // of a search or a filter (capped, or a floor when the search stopped at its
  // work budget), else the table (an estimate when large).
  showTotal(page) {
    if (page.matches != null) {
      // A search over millions of customers stops at its work budget (matches_partial):
      // what it counted so far is a floor, and the list goes on as it scrolls.
      const words = page.matches_capped
        ? `More than ${formatNumber(page.matches)} matches`
        : page.matches_partial
          ? `At least ${formatNumber(page.matches)} ${page.matches === 1 ? "match" : "matches"} so far; `
            + "more may follow as you scroll (type more to narrow the search)"
          : `${formatNumber(page.matches)} ${page.matches === 1 ? "match" : "matches"}`;
      setText($("list-total"), words);
      return;
    }
    const words = page.total_is_estimate
      ? `About ${formatNumber(page.total)} customers in all (an estimate from table statistics)`
      : `${formatNumber(page.total)} ${page.total === 1 ? "customer" : "customers"} in all`;
    setText($("list-total"), words);
  }

  // A customer just created: newest first, so it is the first row, marked, with focus on its Edit button.
  async showCreated(customer, notice) {
    this.freshId = customer.id;
    Object.assign(this.view, { sort: "newest", job: null, edited: false });
    $("list-sort").value = "newest";
    $("list-filter").value = "";
    const search = $("search-input");
    search.value = "";
    this.reset("");
    this.notice = notice;
    setText($("list-message"), notice);
    const edit = await this.waitForRow(customer.id);
    if (edit) edit.querySelector("button").focus();
  }

  async focusEdit(id) {
    const row = await this.waitForRow(id, 10);
    if (row) row.querySelector("button").focus();
  }

  async waitForRow(id, tries = 50) {
    for (let i = 0; i < tries; i += 1) {
      const row = this.spacer.querySelector(`.list-row[data-id="${id}"]:not([data-stale])`);
      if (row) return row;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    return null;
  }

  placeholderRow(index) {
    const row = el("div", { className: "list-row placeholder", role: "row", "aria-rowindex": String(index + 2) },
      el("span", { role: "cell", className: "c-name", text: this.failed ? "Could not load more" : "Loading…" }));
    row.dataset.placeholder = "1";
    return this.position(row, index);
  }

  buildRow(customer, index) {
    const name = [customer.first_name, customer.last_name].filter(Boolean).join(" ") || customer.customer_id;
    // The whole name in its title: a narrow column cuts it, the mark beside it never does.
    const nameCell = el("span", { role: "cell", className: "c-name" },
      el("span", { className: "name", text: name, title: name }));
    if (customer.updated_manually_at) {
      // The mark says imports will leave this row alone from now on.
      nameCell.append(el("span", {
        className: "mark-manual", text: "edited",
        title: `Edited by hand${customer.updated_manually_by ? ` by ${customer.updated_manually_by}` : ""} on `
          + `${formatTime(customer.updated_manually_at)}; imports skip this customer`,
      }));
    }
    const edit = el("button", { type: "button", className: "small", text: "Edit", "aria-label": `Edit ${name}` });
    edit.addEventListener("click", (event) => {
      event.stopPropagation();
      this.onEdit(customer.id);
    });
    const place = [customer.city, customer.country].filter(Boolean).join(", ");
    const row = el("div", { className: "list-row", role: "row", "aria-rowindex": String(index + 2) },
      nameCell,
      el("span", { role: "cell", className: "c-cid mono", text: customer.customer_id ?? "" }),
      el("span", { role: "cell", className: "c-company", text: customer.company ?? "" }),
      el("span", { role: "cell", className: "c-email", text: customer.email ?? "" }),
      el("span", { role: "cell", className: "c-place", text: place }),
      el("span", { role: "cell", className: "c-date num", text: formatDate(customer.subscription_date) }),
      el("span", { role: "cell", className: "c-actions" }, edit));
    // A click anywhere on the row opens the customer (the Edit button is its keyboard way in).
    row.addEventListener("click", () => this.onEdit(customer.id));
    row.dataset.id = String(customer.id);
    if (customer.updated_manually_at) row.classList.add("manual");
    if (customer.id === this.freshId) row.classList.add("fresh");
    return this.position(row, index);
  }

  position(row, index) {
    row.dataset.index = String(index);
    const transform = `translateY(${index * this.rowHeight + (this.shift || 0)}px)`;
    if (row.style.transform !== transform) row.style.transform = transform;
    return row;
  }

  indexOf(id) {
    return this.items.findIndex((item) => item.id === id);
  }

  // An edit changes one cached item; its row is redrawn in place.
  replace(customer) {
    const index = this.indexOf(customer.id);
    if (index < 0) return;
    this.items[index] = customer;
    this.markStale(index);
  }

  remove(id) {
    const index = this.indexOf(id);
    if (index < 0) return;
    this.items.splice(index, 1);
    // Every row from here down now shows a different item.
    for (const i of this.rows.keys()) if (i >= index) this.markStale(i);
  }

  markStale(index) {
    const row = this.rows.get(index);
    if (row) row.dataset.stale = "1";
    this.schedule();
  }
}
