"""JST business-day arithmetic for fund availability and payout arrival dates."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

JST = ZoneInfo("Asia/Tokyo")


def jst_date(unix: int) -> date:
    """The calendar date in Japan at the instant `unix`."""
    return datetime.fromtimestamp(unix, JST).date()


def is_business_day(day: date, holidays: frozenset[date]) -> bool:
    return day.weekday() < 5 and day not in holidays


def add_business_days(day: date, count: int, holidays: frozenset[date]) -> date:
    """The `count`-th business day after `day` (count 0 = `day` itself if it is one)."""
    current = day
    if count == 0:
        while not is_business_day(current, holidays):
            current += timedelta(days=1)
        return current
    remaining = count
    while remaining > 0:
        current += timedelta(days=1)
        if is_business_day(current, holidays):
            remaining -= 1
    return current


def stripe_date_stamp(day: date) -> int:
    """Stripe encodes a date (`available_on`, `arrival_date`) as 00:00 UTC of that date."""
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())
