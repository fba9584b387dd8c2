"""axe-core (vendor/axe-core, MPL-2.0) run inside the page by the tests; the app never serves it."""
from __future__ import annotations

from pathlib import Path

from playwright.async_api import Page

AXE = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"
BLOCKING = ("serious", "critical")


async def violations(page: Page, context: str | None = None) -> list[str]:
    """The serious and critical WCAG A/AA violations axe finds in `context` (a selector) or the page."""
    if not await page.evaluate("typeof window.axe !== 'undefined'"):
        await page.add_script_tag(path=str(AXE))
    found = await page.evaluate("""async (context) => {
      const result = await axe.run(context ? document.querySelector(context) : document,
        {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa']}});
      return result.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
        nodes: v.nodes.slice(0, 3).map(n => n.target.join(' ') + ': ' + n.failureSummary)}));
    }""", context)
    return [f"{v['impact']} {v['id']}: {v['help']} {v['nodes']}" for v in found if v["impact"] in BLOCKING]
