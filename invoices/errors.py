"""Errors the invoice service raises. Each carries a stable ``code`` an API client can rely on;
messages never contain personal data (names, addresses, contacts) nor echo CSV cell values.

    InvoiceError                    invoice.error
    ├── InvalidInvoice              invoice.<specific>   bad input, 400; ``code`` names the rule:
    │       invoice.unknown_tax_code, invoice.amount_zero, invoice.amount_negative,
    │       invoice.amount_not_integer, invoice.amount_too_large, invoice.invalid_date,
    │       invoice.due_before_issue, invoice.invalid_fiscal_year, invoice.invalid_installment,
    │       invoice.invalid_notice_number, invoice.notice_number_year_mismatch,
    │       invoice.missing_value, invoice.value_too_long, invoice.invalid_payer_ref,
    │       invoice.invalid_external_ref, invoice.invalid_text, invoice.missing_reason,
    │       invoice.missing_actor, invoice.amount_unchanged, invoice.invalid_cursor,
    │       invoice.invalid_filter, invoice.invalid_idempotency_key
    ├── InvoiceNotFound             invoice.not_found                       404
    ├── InvoiceConflict             409
    │   ├── IdempotencyConflict     invoice.idempotency_conflict   same key, other request
    │   ├── DuplicateNoticeNumber   invoice.duplicate_notice_number
    │   ├── ExternalRefConflict     invoice.external_ref_conflict  same external_ref, other content
    │   ├── InvoiceCancelled        invoice.cancelled              no change to a cancelled invoice
    │   ├── NotCancellable          invoice.not_cancellable        money was received: amend instead
    │   ├── StaleVersion            invoice.stale_version          expected_version did not match
    │   └── SequenceExhausted       invoice.sequence_exhausted     no notice numbers left this year
    └── ImportError_                invoice_import.<specific>            (named to avoid the builtin)
        ├── ImportTooLarge          invoice_import.too_large        413, nothing read past the limit
        └── ImportRejected          invoice_import.rejected         400, ``errors`` lists every bad
                                                                    row (line, column, code)
    File-level codes inside ImportRejected.errors: invoice_import.missing_columns,
    invoice_import.unknown_column, invoice_import.duplicate_column, invoice_import.empty_file,
    invoice_import.wrong_field_count, invoice_import.malformed_csv, invoice_import.undecodable,
    invoice_import.unsupported_encoding, invoice_import.duplicate_external_ref, plus every
    row-level ``invoice.*`` code above.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar


class InvoiceError(Exception):
    """Base class; ``code`` is stable, ``message`` is for people and free of personal data."""

    code: ClassVar[str] = "invoice.error"

    def __init__(self, message: str, /, **detail: Any) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


class InvalidInvoice(InvoiceError):
    """Input that breaks a rule. The instance's ``code`` says which (see the module docstring)."""

    code = "invoice.invalid"

    def __init__(self, code: str, message: str, /, *, field: str | None = None, **detail: Any) -> None:
        super().__init__(message, field=field, **detail)
        self.code = code  # type: ignore[misc]
        self.field = field


class InvoiceNotFound(InvoiceError):
    code = "invoice.not_found"


class InvoiceConflict(InvoiceError):
    code = "invoice.conflict"


class IdempotencyConflict(InvoiceConflict):
    code = "invoice.idempotency_conflict"


class DuplicateNoticeNumber(InvoiceConflict):
    code = "invoice.duplicate_notice_number"


class ExternalRefConflict(InvoiceConflict):
    code = "invoice.external_ref_conflict"


class InvoiceCancelled(InvoiceConflict):
    code = "invoice.cancelled"


class NotCancellable(InvoiceConflict):
    code = "invoice.not_cancellable"


class StaleVersion(InvoiceConflict):
    code = "invoice.stale_version"


class SequenceExhausted(InvoiceConflict):
    code = "invoice.sequence_exhausted"


@dataclass(frozen=True)
class RowError:
    """One problem in an import file.

    Attributes:
        line: physical line (1-based) where the record starts; 1 is the header; 0 for the file.
        column: the CSV column concerned, or None for the whole row or file.
        code: a stable code (``invoice.*`` or ``invoice_import.*``).
        message: for people; never contains a cell's value.
    """

    line: int
    column: str | None
    code: str
    message: str


class ImportError_(InvoiceError):  # noqa: N801 - the builtin ImportError means something else
    code = "invoice_import.error"


class ImportTooLarge(ImportError_):
    code = "invoice_import.too_large"


class ImportRejected(ImportError_):
    """The file was refused and nothing was written.

    Attributes:
        errors: the problems found, in file order (at most ``max_errors`` of them).
        error_count: how many problems there were in all.
    """

    code = "invoice_import.rejected"

    def __init__(self, errors: tuple[RowError, ...], error_count: int) -> None:
        rows = len({e.line for e in errors})
        more = f" (first {len(errors)} listed)" if error_count > len(errors) else ""
        super().__init__(
            f"the file was refused, nothing was written: {error_count} problem(s) in {rows} line(s){more}",
            error_count=error_count,
        )
        self.errors = errors
        self.error_count = error_count
