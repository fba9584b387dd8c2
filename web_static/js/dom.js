// Small DOM helpers. Data from the server is hostile (imported CSV text), so
// text goes in through textContent only; nothing here ever parses HTML.

export const $ = (id) => document.getElementById(id);

export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "text") node.textContent = value ?? "";
    else if (key === "className") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

export function setText(node, value) {
  const text = value == null ? "" : String(value);
  // Skip identical writes so screen readers and layout are not disturbed by every event.
  if (node.textContent !== text) node.textContent = text;
}

const numberFormat = new Intl.NumberFormat("en");

export function formatNumber(value) {
  return value == null ? "—" : numberFormat.format(value);
}

export function formatBytes(bytes) {
  if (bytes == null) return "—";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}

// Short jobs to the tenth of a second ("Took 0 s" for 10,000 rows says nothing).
export function formatDuration(seconds) {
  if (seconds == null || !Number.isFinite(seconds)) return "—";
  if (seconds < 10) return `${Math.max(0, seconds).toFixed(1)} s`;
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (h > 0) return `${h} h ${m} min`;
  if (m > 0) return `${m} min ${s % 60} s`;
  return `${s} s`;
}

// One way to write dates on the whole page: the person's own (the browser's locale).
const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium" });
const timeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

// An ISO date ("2021-05-03", a calendar day: no time zone moves it) in the person's format.
export function formatDate(iso) {
  const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(iso || "");
  return match ? dateFormat.format(new Date(Number(match[1]), Number(match[2]) - 1, Number(match[3]))) : (iso ?? "");
}

// An ISO timestamp in the person's format and time zone.
export function formatTime(iso) {
  return iso ? timeFormat.format(new Date(iso)) : "";
}

export function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}
