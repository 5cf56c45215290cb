"""Listing dates: reading a printed date label and resolving it to a calendar date."""

from __future__ import annotations

import calendar
import datetime as dt
import re

_MONTHS = {name.lower(): i for i, name in enumerate(calendar.month_abbr) if name}
_MONTHS |= {name.lower(): i for i, name in enumerate(calendar.month_name) if name}
_LABEL = re.compile(r"^([A-Za-z]+)\.? (\d{1,2})(?:,? (\d{4}))?$")


def parse_label(label: str) -> tuple[int, int, int | None] | None:
    """Read a printed label such as `Mar 11` or `March 11, 2024` as (month, day, year or None)."""
    match = _LABEL.match(label.strip())
    if not match or match.group(1).lower() not in _MONTHS:
        return None
    month, day = _MONTHS[match.group(1).lower()], int(match.group(2))
    year = int(match.group(3)) if match.group(3) else None
    # Feb 29 is a real label in leap years, so validate against a leap year when no year is printed.
    try:
        dt.date(2000 if year is None else year, month, day)
    except ValueError:
        return None
    return month, day, year


def resolve(
    label: str | None,
    *,
    year: int | None = None,
    source_date: dt.date | None = None,
    today: dt.date | None = None,
) -> dt.date | None:
    """Resolve a listing's date.

    `--year` with the label, else a date in the source, else the latest such day not after today.
    """
    parsed = parse_label(label) if label else None
    if parsed is None:
        return source_date
    month, day, printed_year = parsed
    if year is not None:
        return _safe_date(year, month, day)
    if printed_year is not None:
        return _safe_date(printed_year, month, day)
    if source_date is not None:
        return source_date
    today = today or dt.date.today()
    for candidate_year in range(today.year, today.year - 8, -1):
        candidate = _safe_date(candidate_year, month, day)
        if candidate is not None and candidate <= today:
            return candidate
    return None


def _safe_date(year: int, month: int, day: int) -> dt.date | None:
    try:
        return dt.date(year, month, day)
    except ValueError:
        return None
