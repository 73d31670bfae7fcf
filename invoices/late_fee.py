"""Late-payment interest (延滞金) on local taxes.

Rules (地方税法 and the municipal pages that apply it):

* Day 1 is the day after the due date; the payment day is the last day counted.
* Days in the lower-rate period (``first`` period, normally one month, three for some premiums)
  are charged at the first-period rate, every later day at the after-period rate.
* Each day is charged at the rate of its own calendar year, so the late period is split at every
  31 December as well as at the end of the first period.
* The year always has 365 days, leap years too.
* The principal is rounded down to ¥1,000; under ¥2,000 there is no late fee.
* Each segment is ``floor(base × rate × days / 365)`` yen, the segments are summed, the sum is
  rounded down to ¥100, and a total under ¥1,000 is not charged.

Errors carry a stable ``code``:

    LateFeeError
        late_fee.invalid_principal           principal is not an int (bools are refused too)
        late_fee.negative_principal          principal < 0
        late_fee.invalid_date                not a ``datetime.date`` (a ``datetime`` is refused)
        late_fee.invalid_first_period_months not an int in 1..12
        late_fee.invalid_rate_table          ``rates`` is not a RateTable
        late_fee.bad_rate_table              the rate data is malformed
        late_fee.rate_missing                a late day falls before the table's first year
"""

from __future__ import annotations

import calendar
import functools
import tomllib
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from importlib import resources
from typing import Any

DAYS_PER_YEAR = 365
BASE_UNIT = 1_000
MIN_BASE = 2_000
FEE_UNIT = 100
MIN_FEE = 1_000
MAX_FIRST_PERIOD_MONTHS = 12

_ONE_DAY = timedelta(days=1)


class LateFeeError(ValueError):
    """Bad input or bad rate data; ``code`` is stable, ``message`` is for humans."""

    def __init__(self, code: str, message: str, /, **detail: Any) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.detail = detail


class Period(StrEnum):
    FIRST = "first"
    AFTER = "after"


@dataclass(frozen=True)
class YearRates:
    """Annual rates in percent for the days of one calendar year.

    Attributes:
        year: the calendar year.
        first_period: percent per year for days inside the lower-rate period.
        after_period: percent per year for later days.
    """

    year: int
    first_period: Decimal
    after_period: Decimal

    def rate(self, period: Period) -> Decimal:
        return self.first_period if period is Period.FIRST else self.after_period


@dataclass(frozen=True)
class RateTable:
    """Rates per calendar year, contiguous from ``years[0].year`` to ``years[-1].year``.

    Invariant (checked on construction): years ascend without gaps; every rate is a finite,
    non-negative Decimal not above its statutory cap; the first-period rate does not exceed the
    after-period rate of the same year.
    """

    years: tuple[YearRates, ...]
    first_period_cap: Decimal
    after_period_cap: Decimal

    def __post_init__(self) -> None:
        if not self.years:
            raise _bad_table("the table has no years")
        for cap_name in ("first_period_cap", "after_period_cap"):
            cap = getattr(self, cap_name)
            if not isinstance(cap, Decimal) or not cap.is_finite() or cap <= 0:
                raise _bad_table(f"{cap_name} must be a positive Decimal", value=str(cap))
        for index, row in enumerate(self.years):
            expected = self.years[0].year + index
            if row.year != expected:
                raise _bad_table("years must ascend without gaps", year=row.year, expected=expected)
            for period, cap in (
                (Period.FIRST, self.first_period_cap),
                (Period.AFTER, self.after_period_cap),
            ):
                rate = row.rate(period)
                if not isinstance(rate, Decimal) or not rate.is_finite() or rate < 0:
                    raise _bad_table("rates must be non-negative Decimals", year=row.year)
                # Published rates are already capped; a larger number is a typo, not a rate.
                if rate > cap:
                    raise _bad_table(
                        f"{period} rate {rate} % is above the statutory cap {cap} %",
                        year=row.year,
                    )
            if row.first_period > row.after_period:
                raise _bad_table("first-period rate above after-period rate", year=row.year)

    @property
    def first_year(self) -> int:
        return self.years[0].year

    @property
    def last_year(self) -> int:
        return self.years[-1].year

    def for_year(self, year: int) -> tuple[YearRates, bool]:
        """The rates for ``year`` and whether they are provisional.

        A year after the table carries the newest year forward, provisionally: the next year's
        rate is announced only in late November, and bills must still be computed in between.
        A year before the table has no honest answer and raises ``late_fee.rate_missing``.
        """
        if year < self.first_year:
            raise LateFeeError(
                "late_fee.rate_missing",
                f"no late-fee rate for {year}; the table starts in {self.first_year}",
                year=year,
            )
        if year > self.last_year:
            return self.years[-1], True
        return self.years[year - self.first_year], False

    @classmethod
    def from_toml(cls, text: str) -> RateTable:
        """Parse the TOML format of ``invoices/data/late_fee_rates.toml``."""
        try:
            data = tomllib.loads(text)
        except (tomllib.TOMLDecodeError, TypeError) as exc:
            raise _bad_table(f"not valid TOML: {exc}") from exc
        statutory = _table(data, "statutory")
        years = _table(data, "years")
        rows = []
        for key, value in years.items():
            if not (key.isascii() and key.isdigit() and len(key) == 4):
                raise _bad_table("year keys must be four digits", key=key)
            if not isinstance(value, dict) or set(value) != {"first_period", "after_period"}:
                raise _bad_table("each year needs exactly first_period and after_period", key=key)
            rows.append(
                YearRates(
                    year=int(key),
                    first_period=_percent(value["first_period"], f"years.{key}.first_period"),
                    after_period=_percent(value["after_period"], f"years.{key}.after_period"),
                )
            )
        unknown = set(statutory) - {"first_period_cap", "after_period_cap"}
        if unknown:
            raise _bad_table("unknown keys in [statutory]", keys=sorted(unknown))
        return cls(
            years=tuple(sorted(rows, key=lambda row: row.year)),
            first_period_cap=_percent(statutory.get("first_period_cap"), "first_period_cap"),
            after_period_cap=_percent(statutory.get("after_period_cap"), "after_period_cap"),
        )

    @classmethod
    def load_default(cls) -> RateTable:
        """The packaged table (``invoices/data/late_fee_rates.toml``), parsed once."""
        return _default_table()


@functools.cache
def _default_table() -> RateTable:
    text = resources.files("invoices.data").joinpath("late_fee_rates.toml").read_text("utf-8")
    return RateTable.from_toml(text)


@dataclass(frozen=True)
class LateFeeSegment:
    """Consecutive late days sharing one rate; never crosses 31 December or the period end.

    Attributes:
        start, end: first and last day of the segment, both counted.
        days: ``(end - start).days + 1``.
        rate: annual percent applied.
        amount: ``floor(base × rate × days / 365)`` yen (0 when the base is 0).
        period: lower-rate (``first``) or later (``after``) period.
        provisional: the rate was carried forward from the newest year in the table.
    """

    start: date
    end: date
    days: int
    rate: Decimal
    amount: int
    period: Period
    provisional: bool


@dataclass(frozen=True)
class LateFee:
    """Result of :func:`compute_late_fee`.

    Attributes:
        amount: yen charged: 0, or a multiple of ¥100 of at least ¥1,000.
        base: the principal rounded down to ¥1,000, or 0 when under ¥2,000 (nothing chargeable).
        segments: the late days split by rate, in date order; empty when not late.
        provisional: some chargeable day used a carried-forward rate, so the amount may change
            once that year's rate is published.
    """

    amount: int
    base: int
    segments: tuple[LateFeeSegment, ...]
    provisional: bool

    @property
    def days_late(self) -> int:
        return sum(segment.days for segment in self.segments)

    @property
    def segments_total(self) -> int:
        """Sum of the segment amounts before rounding to ¥100 and the ¥1,000 threshold."""
        return sum(segment.amount for segment in self.segments)


def chargeable_base(principal: int) -> int:
    """The principal rounded down to ¥1,000, or 0 when under ¥2,000."""
    _check_principal(principal)
    base = principal // BASE_UNIT * BASE_UNIT
    return base if base >= MIN_BASE else 0


def lower_rate_period_end(due_date: date, months: int = 1) -> date:
    """Last day of the lower-rate period: ``months`` months counted from the day after due_date.

    Periods follow 民法 第143条 (地方税法 第20条の5 applies it): a period of months that starts
    on the 1st ends on the last day of its last month; otherwise it ends the day before the
    start date's number in the last month, or on that month's last day if that number does not
    exist. Examples: due 8/1 → 9/1; due 2024-01-31 → 2024-02-29; due 4/30 → 5/31.

    domain.md words this as "the same date one month after the due date, or that month's last
    day"; the two agree except when the due date is the last day of a month shorter than the
    period's last month (due 4/30: 5/31, not 5/30). The statute wins, as domain.md itself says,
    and Miyakonojo's published example counts 5/1–5/31 for a 4/30 due date.
    """
    _check_date(due_date, "due_date")
    _check_months(months)
    if due_date >= date.max - timedelta(days=1):
        return date.max
    start = due_date + _ONE_DAY
    if start.day == 1:
        year, month = _add_months(start.year, start.month, months - 1)
        if year > date.max.year:
            return date.max
        return date(year, month, _month_length(year, month))
    year, month = _add_months(start.year, start.month, months)
    if year > date.max.year:
        return date.max
    if start.day <= _month_length(year, month):
        return date(year, month, start.day) - _ONE_DAY
    return date(year, month, _month_length(year, month))


def compute_late_fee(
    principal: int,
    due_date: date,
    payment_date: date,
    *,
    rates: RateTable,
    first_period_months: int = 1,
) -> LateFee:
    """Late fee for ``principal`` yen due on ``due_date`` and paid on ``payment_date`` (JST dates).

    Invariants: the amount is 0 or a multiple of ¥100 that is at least ¥1,000; it is 0 when
    payment_date <= due_date or the principal is under ¥2,000; it never decreases as the payment
    date or the principal grows; the segments' days sum to the days late.
    """
    base = chargeable_base(principal)
    _check_date(due_date, "due_date")
    _check_date(payment_date, "payment_date")
    _check_months(first_period_months)
    if not isinstance(rates, RateTable):
        raise LateFeeError("late_fee.invalid_rate_table", "rates must be a RateTable")
    if payment_date <= due_date:
        return LateFee(amount=0, base=base, segments=(), provisional=False)

    first_end = lower_rate_period_end(due_date, first_period_months)
    segments: list[LateFeeSegment] = []
    start = due_date + _ONE_DAY
    while start <= payment_date:
        period = Period.FIRST if start <= first_end else Period.AFTER
        end = min(payment_date, date(start.year, 12, 31))
        if period is Period.FIRST:
            end = min(end, first_end)
        year_rates, provisional = rates.for_year(start.year)
        rate = year_rates.rate(period)
        days = (end - start).days + 1
        segments.append(
            LateFeeSegment(
                start=start,
                end=end,
                days=days,
                rate=rate,
                amount=_segment_amount(base, rate, days),
                period=period,
                provisional=provisional,
            )
        )
        if end == date.max:
            break
        start = end + _ONE_DAY

    total = sum(segment.amount for segment in segments) // FEE_UNIT * FEE_UNIT
    return LateFee(
        amount=total if total >= MIN_FEE else 0,
        base=base,
        segments=tuple(segments),
        provisional=base > 0 and any(segment.provisional for segment in segments),
    )


def _segment_amount(base: int, rate: Decimal, days: int) -> int:
    # Exact: the Decimal percentage becomes an integer ratio, so no rounding happens before
    # the single floor the rules ask for.
    numerator, denominator = rate.as_integer_ratio()
    return base * numerator * days // (denominator * 100 * DAYS_PER_YEAR)


def _add_months(year: int, month: int, months: int) -> tuple[int, int]:
    index = year * 12 + (month - 1) + months
    return index // 12, index % 12 + 1


def _month_length(year: int, month: int) -> int:
    return calendar.monthrange(year, month)[1]


def _check_principal(principal: object) -> None:
    if isinstance(principal, bool) or not isinstance(principal, int):
        raise LateFeeError(
            "late_fee.invalid_principal",
            "principal must be an int number of yen",
            type=type(principal).__name__,
        )
    if principal < 0:
        raise LateFeeError(
            "late_fee.negative_principal", "principal must not be negative", principal=principal
        )


def _check_date(value: object, name: str) -> None:
    # A datetime is a date subclass; refusing it forces callers to pick the JST calendar day.
    if type(value) is not date:
        raise LateFeeError(
            "late_fee.invalid_date",
            f"{name} must be a datetime.date (convert datetimes to the JST date first)",
            field=name,
            type=type(value).__name__,
        )


def _check_months(months: object) -> None:
    if (
        isinstance(months, bool)
        or not isinstance(months, int)
        or not 1 <= months <= MAX_FIRST_PERIOD_MONTHS
    ):
        raise LateFeeError(
            "late_fee.invalid_first_period_months",
            f"first_period_months must be an int in 1..{MAX_FIRST_PERIOD_MONTHS}",
            value=repr(months),
        )


def _bad_table(message: str, **detail: Any) -> LateFeeError:
    return LateFeeError("late_fee.bad_rate_table", message, **detail)


def _table(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    if not isinstance(value, dict):
        raise _bad_table(f"missing [{key}] table")
    return value


def _percent(value: object, name: str) -> Decimal:
    # Strings only: a TOML float (2.4) has already passed through binary floating point.
    if not isinstance(value, str):
        raise _bad_table(f"{name} must be a string such as \"2.4\"", field=name)
    try:
        rate = Decimal(value)
    except InvalidOperation as exc:
        raise _bad_table(f"{name} is not a decimal number", field=name, value=value) from exc
    if not rate.is_finite() or rate < 0:
        raise _bad_table(f"{name} must be a finite, non-negative percentage", field=name)
    return rate
