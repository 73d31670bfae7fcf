"""Catalog of 税目 (taxes) and fees, loaded from ``invoices/data/catalog.toml``.

Each entry names its ledger sub-accounts (``parent:child`` codes of the chart in domain.md):
the receivable ``1100:<CODE>`` and the revenue ``4100:<CODE>`` (tax) or ``4200:<CODE>`` (fee).

Errors carry a stable ``code``:

    CatalogError
        catalog.unknown_code     ``get`` was asked for a code the catalog does not hold
        catalog.bad_toml         the data file is not valid TOML or has no [[entries]]
        catalog.invalid_entry    a field is missing, unknown, of the wrong type or out of range
        catalog.bad_code         a code does not match ``^[A-Z][A-Z0-9_]{1,15}$``
        catalog.duplicate_code   two entries share a code
        catalog.bad_account      the revenue account does not follow the chart for its kind
        catalog.unknown_installment  ``installment(n)`` for a period the schedule lacks
"""

from __future__ import annotations

import calendar
import functools
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from importlib import resources
from typing import Any

CODE_PATTERN = re.compile(r"[A-Z][A-Z0-9_]{1,15}")
RECEIVABLE_PARENT = "1100"
REVENUE_PARENT = {"tax": "4100", "fee": "4200"}
LATE_FEE_PERIOD_MONTHS = (1, 3)
# Stripe's JPY amount allows at most 8 digits.
MAX_DEFAULT_AMOUNT = 99_999_999

_REQUIRED = {
    "code",
    "name_ja",
    "name_en",
    "kind",
    "revenue_account",
    "late_fee_applies",
    "installments",
}
_OPTIONAL = {"late_fee_first_period_months", "default_amount"}


class CatalogError(ValueError):
    """Unknown code or malformed catalog data; ``code`` is stable, ``message`` is for humans."""

    def __init__(self, code: str, message: str, /, **detail: Any) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.detail = detail


class Kind(StrEnum):
    TAX = "tax"
    FEE = "fee"


@dataclass(frozen=True)
class Installment:
    """One 期別 of a fixed schedule.

    Attributes:
        period: 1-based installment number (第1期 …).
        month: calendar month of the due date; January–March belong to the fiscal year's
            second calendar year.
        day: day of the month; a day past the month's end means its last day (末日).
    """

    period: int
    month: int
    day: int

    def __post_init__(self) -> None:
        for name, low, high in (("period", 1, 12), ("month", 1, 12), ("day", 1, 31)):
            value = getattr(self, name)
            if not _is_int(value) or not low <= value <= high:
                raise _invalid(f"installment {name} must be an int in {low}..{high}", value=value)

    def nominal_due_date(self, fiscal_year: int) -> date:
        """Due date by ordinance for fiscal year ``fiscal_year`` (April to March).

        Not moved off weekends and holidays: that needs the holiday calendar of the year.
        """
        year = fiscal_year if self.month >= 4 else fiscal_year + 1
        return date(year, self.month, min(self.day, calendar.monthrange(year, self.month)[1]))

    @property
    def _fiscal_order(self) -> tuple[int, int]:
        return ((self.month - 4) % 12, self.day)


@dataclass(frozen=True)
class CatalogEntry:
    """A tax or fee the municipality bills.

    Invariant (checked on construction): the code matches ``CODE_PATTERN``; the revenue account
    is ``4100:<code>`` for a tax, ``4200:<code>`` for a fee; installments are numbered 1..n in
    fiscal-year date order; fees have no installments; only fees have a default amount.

    Attributes:
        code: stable identifier, also the ledger sub-account name.
        name_ja, name_en: display names.
        kind: tax or fee.
        revenue_account: the revenue sub-account credited when an invoice is issued.
        late_fee_applies: whether 延滞金 accrues after the due date.
        late_fee_first_period_months: length of the lower-rate period (1, or 3 for premiums).
        installments: the ordinance's fixed schedule; empty when there is none.
        default_amount: yen, for fixed-price fees; None when priced per case.
    """

    code: str
    name_ja: str
    name_en: str
    kind: Kind
    revenue_account: str
    late_fee_applies: bool
    late_fee_first_period_months: int = 1
    installments: tuple[Installment, ...] = ()
    default_amount: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.code, str) or not CODE_PATTERN.fullmatch(self.code):
            raise CatalogError(
                "catalog.bad_code",
                "code must match ^[A-Z][A-Z0-9_]{1,15}$",
                entry=self.code,
            )
        for name in ("name_ja", "name_en"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise _invalid(f"{name} must be a non-empty string", entry=self.code)
        if not isinstance(self.kind, Kind):
            raise _invalid("kind must be a Kind", entry=self.code)
        expected = f"{REVENUE_PARENT[self.kind.value]}:{self.code}"
        if self.revenue_account != expected:
            raise CatalogError(
                "catalog.bad_account",
                f"revenue account of a {self.kind.value} must be {expected}",
                entry=self.code,
                account=self.revenue_account,
            )
        if not isinstance(self.late_fee_applies, bool):
            raise _invalid("late_fee_applies must be true or false", entry=self.code)
        if (
            not _is_int(self.late_fee_first_period_months)
            or self.late_fee_first_period_months not in LATE_FEE_PERIOD_MONTHS
        ):
            raise _invalid("late_fee_first_period_months must be 1 or 3", entry=self.code)
        self._check_installments()
        self._check_default_amount()

    @property
    def receivable_account(self) -> str:
        return f"{RECEIVABLE_PARENT}:{self.code}"

    def installment(self, period: int) -> Installment:
        for installment in self.installments:
            if installment.period == period:
                return installment
        raise CatalogError(
            "catalog.unknown_installment",
            f"{self.code} has no installment {period}",
            entry=self.code,
            period=period,
        )

    def _check_installments(self) -> None:
        if not isinstance(self.installments, tuple) or not all(
            isinstance(item, Installment) for item in self.installments
        ):
            raise _invalid("installments must be a tuple of Installment", entry=self.code)
        if self.kind is Kind.FEE and self.installments:
            raise _invalid("fees have no installment schedule", entry=self.code)
        periods = [item.period for item in self.installments]
        if periods != list(range(1, len(periods) + 1)):
            raise _invalid("installments must be numbered 1..n", entry=self.code, periods=periods)
        order = [item._fiscal_order for item in self.installments]
        if any(later <= earlier for earlier, later in zip(order, order[1:])):
            raise _invalid(
                "installment due dates must ascend through the fiscal year", entry=self.code
            )

    def _check_default_amount(self) -> None:
        if self.default_amount is None:
            return
        if self.kind is not Kind.FEE:
            raise _invalid("only fees have a default amount", entry=self.code)
        if not _is_int(self.default_amount) or not 1 <= self.default_amount <= MAX_DEFAULT_AMOUNT:
            raise _invalid(
                f"default_amount must be an int of yen in 1..{MAX_DEFAULT_AMOUNT}",
                entry=self.code,
            )


@dataclass(frozen=True)
class Catalog:
    """The billable taxes and fees; codes are unique (checked on construction)."""

    entries: tuple[CatalogEntry, ...]

    def __post_init__(self) -> None:
        if not self.entries:
            raise CatalogError("catalog.bad_toml", "the catalog has no entries")
        seen: set[str] = set()
        for entry in self.entries:
            if entry.code in seen:
                raise CatalogError("catalog.duplicate_code", "duplicate code", entry=entry.code)
            seen.add(entry.code)

    def get(self, code: str) -> CatalogEntry:
        for entry in self.entries:
            if entry.code == code:
                return entry
        raise CatalogError("catalog.unknown_code", f"no tax or fee with code {code!r}", entry=code)

    def __iter__(self) -> Iterator[CatalogEntry]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, code: object) -> bool:
        return any(entry.code == code for entry in self.entries)

    @classmethod
    def from_toml(cls, text: str) -> Catalog:
        """Parse the format of ``invoices/data/catalog.toml``, validating every entry."""
        try:
            data = tomllib.loads(text)
        except (tomllib.TOMLDecodeError, TypeError) as exc:
            raise CatalogError("catalog.bad_toml", f"not valid TOML: {exc}") from exc
        raw_entries = data.get("entries")
        if set(data) != {"entries"} or not isinstance(raw_entries, list):
            raise CatalogError("catalog.bad_toml", "expected only an [[entries]] array")
        return cls(entries=tuple(_entry(raw, index) for index, raw in enumerate(raw_entries)))

    @classmethod
    def load_default(cls) -> Catalog:
        """The packaged catalog (``invoices/data/catalog.toml``), parsed once."""
        return _default_catalog()


@functools.cache
def _default_catalog() -> Catalog:
    text = resources.files("invoices.data").joinpath("catalog.toml").read_text("utf-8")
    return Catalog.from_toml(text)


def _entry(raw: object, index: int) -> CatalogEntry:
    if not isinstance(raw, dict):
        raise _invalid("each entry must be a table", index=index)
    code = raw.get("code")
    missing = _REQUIRED - set(raw)
    unknown = set(raw) - _REQUIRED - _OPTIONAL
    if missing or unknown:
        raise _invalid(
            "missing or unknown fields",
            index=index,
            entry=code,
            missing=sorted(missing),
            unknown=sorted(unknown),
        )
    kind = raw["kind"]
    if kind not in {member.value for member in Kind}:
        raise _invalid('kind must be "tax" or "fee"', index=index, entry=code)
    installments = raw["installments"]
    if not isinstance(installments, list):
        raise _invalid("installments must be an array", index=index, entry=code)
    return CatalogEntry(
        code=raw["code"],
        name_ja=raw["name_ja"],
        name_en=raw["name_en"],
        kind=Kind(kind),
        revenue_account=raw["revenue_account"],
        late_fee_applies=raw["late_fee_applies"],
        late_fee_first_period_months=raw.get("late_fee_first_period_months", 1),
        installments=tuple(_installment(item, code) for item in installments),
        default_amount=raw.get("default_amount"),
    )


def _installment(raw: object, code: object) -> Installment:
    if not isinstance(raw, dict) or set(raw) != {"period", "month", "day"}:
        raise _invalid("an installment is exactly {period, month, day}", entry=code)
    try:
        return Installment(period=raw["period"], month=raw["month"], day=raw["day"])
    except CatalogError as exc:
        raise _invalid(exc.message, entry=code, **exc.detail) from exc


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _invalid(message: str, **detail: Any) -> CatalogError:
    return CatalogError("catalog.invalid_entry", message, **detail)
