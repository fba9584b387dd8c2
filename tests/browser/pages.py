"""What the tests read from the page and put in the database, in one place."""
from __future__ import annotations

from playwright.async_api import Page

# Records every value the import bar shows, so a test can see it never went back.
WATCH_BAR = """() => {
  window.__barValues = [];
  const bar = document.getElementById('job-bar');
  const note = () => window.__barValues.push([bar.dataset.status || '',
      Number(bar.getAttribute('aria-valuenow'))]);
  new MutationObserver(note).observe(bar, {attributes: true, attributeFilter: ['aria-valuenow']});
}"""

# Records the largest number of customer rows ever present at once.
WATCH_ROWS = """() => {
  const spacer = document.getElementById('list-spacer');
  window.__maxRows = spacer.children.length;
  new MutationObserver(() => {
    window.__maxRows = Math.max(window.__maxRows, spacer.children.length);
  }).observe(spacer, {childList: true});
}"""


async def bar(page: Page) -> dict:
    return await page.evaluate("""() => {
      const bar = document.getElementById('job-bar');
      const text = (id) => document.getElementById(id).textContent;
      return {now: Number(bar.getAttribute('aria-valuenow')), max: Number(bar.getAttribute('aria-valuemax')),
              min: Number(bar.getAttribute('aria-valuemin')), status: text('job-status'),
              percent: text('job-percent'), inserted: text('job-inserted'), updated: text('job-updated'),
              skipped: text('job-skipped'), rejected: text('job-rejected'), visible: !document.getElementById('job').hidden};
    }""")


def count(text: str) -> int:
    return int(text.replace(",", ""))


async def wait_for_status(page: Page, statuses: tuple[str, ...], timeout: float = 60_000) -> None:
    await page.wait_for_function(
        "(statuses) => statuses.includes(document.getElementById('job-status').textContent)",
        arg=list(statuses), timeout=timeout)


async def wait_for_bar_between(page: Page, low: float, high: float, timeout: float = 30_000) -> None:
    """Until the bar shows more than `low` and less than `high` of the bytes (fractions)."""
    await page.wait_for_function("""([low, high]) => {
      const bar = document.getElementById('job-bar');
      const now = Number(bar.getAttribute('aria-valuenow')), max = Number(bar.getAttribute('aria-valuemax'));
      return max > 0 && now > low * max && now < high * max;
    }""", arg=[low, high], timeout=timeout, polling=20)


async def insert_customers(db, rows: int) -> None:
    """`rows` customers straight into the table, fast (no import needed to fill a list)."""
    await db.all("""
        INSERT INTO customers (customer_id, first_name, last_name, company, city, country, email,
                               subscription_date)
        SELECT 'C' || lpad(n::text, 8, '0'), 'First' || n, 'Last' || n, 'Company ' || mod(n, 97),
               'City ' || mod(n, 31), 'Norway', 'user' || n || '@example.com',
               date '2021-01-01' + mod(n, 700)
        FROM generate_series(1, %(rows)s) AS n
    """, {"rows": rows})
