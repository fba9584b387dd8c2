"""The date layouts a Subscription Date may come in, and which of them a file's dates fit."""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import MAXYEAR, MINYEAR, date

ISO = "YYYY-MM-DD"
# Layout -> (pattern, order of year, month, day among its groups).
LAYOUTS: dict[str, tuple[re.Pattern, tuple[int, int, int]]] = {
    ISO: (re.compile(r"(\d{4})-(\d{2})-(\d{2})"), (0, 1, 2)),
    "DD-MM-YYYY": (re.compile(r"(\d{1,2})-(\d{1,2})-(\d{4})"), (2, 1, 0)),
    "MM-DD-YYYY": (re.compile(r"(\d{1,2})-(\d{1,2})-(\d{4})"), (2, 0, 1)),
    "DD/MM/YYYY": (re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})"), (2, 1, 0)),
    "MM/DD/YYYY": (re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})"), (2, 0, 1)),
    "DD.MM.YYYY": (re.compile(r"(\d{1,2})\.(\d{1,2})\.(\d{4})"), (2, 1, 0)),
    "YYYY/MM/DD": (re.compile(r"(\d{4})/(\d{1,2})/(\d{1,2})"), (0, 1, 2)),
}
# English whatever the server's locale (calendar.month_name follows it).
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December")


class DateFormatUnclear(Exception):
    """No single layout reads the sampled dates; `fits` names those that read the most of them."""

    def __init__(self, fits: list[str], sampled: int):
        self.fits = fits
        if fits:
            message = (f"the Subscription Date layout is ambiguous: {', '.join(fits)} all read the "
                       f"{sampled} dates sampled; choose one with date_format")
        else:
            message = (f"no date layout reads the {sampled} Subscription Dates sampled; "
                       f"choose one of {', '.join(LAYOUTS)} with date_format")
        super().__init__(message)


def reader(layout: str) -> Callable[[str], str | None]:
    """text -> the ISO date it stands for in `layout`, or None when it is none."""
    pattern, (y, m, d) = LAYOUTS[layout]

    def read(text: str) -> str | None:
        found = pattern.fullmatch(text)
        if found is None:
            return None
        parts = found.groups()
        try:
            return date(int(parts[y]), int(parts[m]), int(parts[d])).isoformat()
        except ValueError:
            return None

    return read


def problem(layout: str, text: str) -> str:
    """Why `text` (which reader(layout) refused) is no date, in a person's words.

    In the layout but no day of the calendar: what does not exist ("February has no
    day 30"); not in the layout at all: that it does not match it.
    """
    pattern, (y, m, d) = LAYOUTS[layout]
    found = pattern.fullmatch(text)
    if found is None:
        return f"does not match the date layout {layout}"
    parts = found.groups()
    year, month, day = int(parts[y]), int(parts[m]), int(parts[d])
    if not MINYEAR <= year <= MAXYEAR:
        return f"is not a date: there is no year {year}"
    if not 1 <= month <= 12:
        return f"is not a date: there is no month {month}"
    return f"is not a date: {MONTHS[month - 1]} has no day {day}" + (
        f" in {year}" if month == 2 and day == 29 else "")


def fitting(values: Iterable[str]) -> tuple[list[str], int]:
    """(the layouts that read the most of `values`, how many values there were)."""
    readers = {layout: reader(layout) for layout in LAYOUTS}
    counts = dict.fromkeys(LAYOUTS, 0)
    sampled = 0
    for value in dict.fromkeys(values):
        sampled += 1
        for layout, read in readers.items():
            if read(value) is not None:
                counts[layout] += 1
    best = max(counts.values(), default=0)
    return ([layout for layout, n in counts.items() if n == best] if best else []), sampled


def choose(values: Iterable[str]) -> tuple[str, list[str]]:
    """(the layout, the layouts that fit); DateFormatUnclear when there is not exactly one.

    No dates at all: ISO, the layout the export writes. A layout that reads
    most but not all dates is still the one: the rest become rejects.
    """
    fits, sampled = fitting(values)
    if sampled == 0:
        return ISO, [ISO]
    if len(fits) != 1:
        raise DateFormatUnclear(fits, sampled)
    return fits[0], fits
