"""Time in the treasury's terms: business dates are Japanese calendar dates (JST)."""

from __future__ import annotations

from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

JST = ZoneInfo("Asia/Tokyo")


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def to_utc(moment: datetime) -> datetime:
    """Aware UTC datetime; a naive value (as SQLite returns it) is taken to be UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def business_date(moment: datetime) -> date:
    """The JST calendar date of an instant: the business day it belongs to."""
    return to_utc(moment).astimezone(JST).date()


def today_jst() -> date:
    return business_date(utc_now())
