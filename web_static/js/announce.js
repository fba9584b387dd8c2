// One polite live region for the page's news (an import ended, a customer saved),
// so a screen reader hears it once instead of every figure that changes.

import { $ } from "./dom.js";

export function announce(text) {
  const region = $("announcer");
  // Cleared first so the same words twice are still read twice.
  region.textContent = "";
  setTimeout(() => { region.textContent = text; }, 50);
}
