"""The rules an invoice to issue must meet, shared by single issue and CSV import.

``check`` returns every broken rule (the importer reports them all); ``validated`` raises the
first. Messages name the field, never its value: values can be personal data.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import replace
from datetime import date, datetime
from typing import Any

from invoices.catalog import Catalog, CatalogEntry
from invoices.errors import InvalidInvoice
from invoices.model import IssueRequest
from invoices.notice_number import NoticeNumber, NoticeNumberError, parse_notice_number
from invoices.schema import MAX_FISCAL_YEAR, MAX_INSTALLMENT, MAX_INVOICE_AMOUNT, MIN_FISCAL_YEAR

PAYER_REF = re.compile(r"[0-9A-Za-z-]{1,32}")
# The tax system's own row id: printable ASCII without spaces.
EXTERNAL_REF = re.compile(r"[\x21-\x7e]{1,64}")
MAX_LENGTHS = {"payer_name": 200, "payer_address": 500, "payer_contact": 200}


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _optional(value: Any) -> Any:
    """Stripped text, or None when empty; anything that is not text is left for ``check``."""
    if isinstance(value, str):
        return value.replace("\r\n", "\n").replace("\r", "\n").strip() or None
    return value


def normalize(request: IssueRequest) -> IssueRequest:
    """Surrounding spaces removed; empty optional text becomes None."""
    return replace(
        request,
        tax_code=_strip(request.tax_code),
        payer_ref=_strip(request.payer_ref),
        payer_name=_strip(request.payer_name),
        payer_address=_optional(request.payer_address),
        payer_contact=_optional(request.payer_contact),
        notice_number=_optional(request.notice_number),
        external_ref=_optional(request.external_ref),
    )


def check_amount(amount: object, field: str = "amount") -> InvalidInvoice | None:
    if isinstance(amount, bool) or not isinstance(amount, int):
        return InvalidInvoice(
            "invoice.amount_not_integer", f"{field} must be a whole number of yen", field=field
        )
    if amount == 0:
        return InvalidInvoice("invoice.amount_zero", f"{field} must not be zero", field=field)
    if amount < 0:
        return InvalidInvoice("invoice.amount_negative", f"{field} must not be negative", field=field)
    if amount > MAX_INVOICE_AMOUNT:
        return InvalidInvoice(
            "invoice.amount_too_large",
            f"{field} must be at most ¥{MAX_INVOICE_AMOUNT:,}",
            field=field,
            limit=MAX_INVOICE_AMOUNT,
        )
    return None


def _is_date(value: object) -> bool:
    return isinstance(value, date) and not isinstance(value, datetime)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _bad_text(value: str, allowed: str = "") -> bool:
    # Control and format characters have no place on a printed notice (an address may break lines).
    if value.isprintable():  # fast path: no Cc/Cf/Cs/Co (nor Zs other than the space) at all
        return False
    return any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co") and ch not in allowed for ch in value)


def check_text(field: str, value: object, *, required: bool) -> InvalidInvoice | None:
    if value is None:
        if required:
            return InvalidInvoice("invoice.missing_value", f"{field} is required", field=field)
        return None
    if not isinstance(value, str):
        return InvalidInvoice("invoice.invalid_text", f"{field} must be text", field=field)
    if required and not value:
        return InvalidInvoice("invoice.missing_value", f"{field} is required", field=field)
    limit = MAX_LENGTHS[field]
    if len(value) > limit:
        return InvalidInvoice(
            "invoice.value_too_long", f"{field} is longer than {limit} characters", field=field
        )
    if _bad_text(value, "\n" if field == "payer_address" else ""):
        return InvalidInvoice("invoice.invalid_text", f"{field} contains control characters", field=field)
    return None


def check_installment(entry: CatalogEntry, installment: object) -> InvalidInvoice | None:
    if installment is None:
        if entry.installments:
            return InvalidInvoice(
                "invoice.invalid_installment",
                f"installment (期別) is required for {entry.code}",
                field="installment",
            )
        return None
    if not _is_int(installment) or not 1 <= installment <= MAX_INSTALLMENT:  # type: ignore[operator]
        return InvalidInvoice(
            "invoice.invalid_installment",
            f"installment must be a whole number in 1..{MAX_INSTALLMENT}",
            field="installment",
        )
    if entry.installments and installment not in {i.period for i in entry.installments}:
        return InvalidInvoice(
            "invoice.invalid_installment",
            f"{entry.code} has installments 1..{len(entry.installments)}",
            field="installment",
        )
    return None


def parse_number(text: str, fiscal_year: object) -> tuple[NoticeNumber | None, InvalidInvoice | None]:
    try:
        number = parse_notice_number(text)
    except NoticeNumberError as exc:
        return None, InvalidInvoice(
            "invoice.invalid_notice_number",
            f"notice_number is not valid ({exc.code})",
            field="notice_number",
            reason=exc.code,
        )
    if _is_int(fiscal_year) and number.fiscal_year != fiscal_year:
        return None, InvalidInvoice(
            "invoice.notice_number_year_mismatch",
            "notice_number belongs to another fiscal year",
            field="notice_number",
        )
    return number, None


def check(
    request: IssueRequest, catalog: Catalog, today: date
) -> tuple[NoticeNumber | None, list[InvalidInvoice]]:
    """Every rule ``request`` (normalised) breaks, and its parsed notice number if it has one."""
    errors: list[InvalidInvoice] = []

    def add(error: InvalidInvoice | None) -> None:
        if error is not None:
            errors.append(error)

    entry: CatalogEntry | None = None
    if not isinstance(request.tax_code, str) or request.tax_code not in catalog:
        add(InvalidInvoice("invoice.unknown_tax_code", "tax_code is not in the catalog", field="tax_code"))
    else:
        entry = catalog.get(request.tax_code)
    if not _is_int(request.fiscal_year) or not MIN_FISCAL_YEAR <= request.fiscal_year <= MAX_FISCAL_YEAR:
        add(
            InvalidInvoice(
                "invoice.invalid_fiscal_year",
                f"fiscal_year must be in {MIN_FISCAL_YEAR}..{MAX_FISCAL_YEAR}",
                field="fiscal_year",
            )
        )
    if entry is not None:
        add(check_installment(entry, request.installment))
    add(check_amount(request.amount))
    dates_ok = True
    for name in ("due_date", "issue_date"):
        value = getattr(request, name)
        if (value is not None or name == "due_date") and not _is_date(value):
            dates_ok = False
            add(InvalidInvoice("invoice.invalid_date", f"{name} must be a date", field=name))
    if dates_ok and request.due_date < (request.issue_date or today):
        add(
            InvalidInvoice(
                "invoice.due_before_issue",
                "due_date is before the issue date"
                + ("" if request.issue_date else " (today, as issue_date is not given)"),
                field="due_date",
            )
        )
    if not isinstance(request.payer_ref, str) or not PAYER_REF.fullmatch(request.payer_ref):
        add(
            InvalidInvoice(
                "invoice.invalid_payer_ref",
                "payer_ref (宛名番号) must be 1-32 characters of 0-9, A-Z, a-z and -",
                field="payer_ref",
            )
        )
    add(check_text("payer_name", request.payer_name, required=True))
    add(check_text("payer_address", request.payer_address, required=False))
    add(check_text("payer_contact", request.payer_contact, required=False))
    if request.external_ref is not None and (
        not isinstance(request.external_ref, str) or not EXTERNAL_REF.fullmatch(request.external_ref)
    ):
        add(
            InvalidInvoice(
                "invoice.invalid_external_ref",
                "external_ref must be 1-64 printable ASCII characters without spaces",
                field="external_ref",
            )
        )
    number = None
    if request.notice_number is not None:
        if not isinstance(request.notice_number, str):
            add(
                InvalidInvoice(
                    "invoice.invalid_notice_number", "notice_number must be text", field="notice_number"
                )
            )
        else:
            number, error = parse_number(request.notice_number, request.fiscal_year)
            add(error)
    return number, errors


def validated(
    request: IssueRequest, catalog: Catalog, today: date
) -> tuple[IssueRequest, NoticeNumber | None]:
    """The normalised request and its notice number; raises the first broken rule."""
    request = normalize(request)
    number, errors = check(request, catalog, today)
    if errors:
        raise errors[0]
    return request, number
