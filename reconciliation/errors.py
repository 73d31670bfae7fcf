"""Errors the reconciliation raises. Each carries a stable ``code`` API clients can rely on.

    ReconciliationError
    ├── InvalidDate             reconciliation.invalid_date        not a business date (YYYY-MM-DD), or in the future
    ├── RunNotFound             reconciliation.run_not_found       the day was never reconciled
    ├── BreakNotFound           reconciliation.break_not_found     no such break on that day
    ├── DaySignedOff            reconciliation.day_signed_off      the day is signed off: no re-run, no action
    ├── OpenBreaks              reconciliation.open_breaks         sign-off refused: breaks still open
    ├── EarlierDayOpen          reconciliation.earlier_day_open    sign-off refused: an earlier day is not signed off
    ├── BreakClosed             reconciliation.break_closed        the action needs an open break
    ├── ReasonRequired          reconciliation.reason_required     resolve / escalate / comment without text
    ├── InvalidAssignee         reconciliation.invalid_assignee    empty or too long
    ├── StaleBreak              reconciliation.stale_break         expected_version differs (someone acted meanwhile)
    ├── BankStatementInvalid    reconciliation.bank_statement_invalid   unreadable file; ``errors`` lists lines
    ├── BankAccountMismatch     reconciliation.bank_account_mismatch   a statement of another account
    └── ProviderUnavailable     reconciliation.provider_unavailable    the provider's statement could not be read
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class ReconciliationError(Exception):
    code = "reconciliation.error"
    http_status: int | None = None

    def __init__(self, message: str, **detail: Any) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


class InvalidDate(ReconciliationError):
    code = "reconciliation.invalid_date"
    http_status = 400


class RunNotFound(ReconciliationError):
    code = "reconciliation.run_not_found"
    http_status = 404


class BreakNotFound(ReconciliationError):
    code = "reconciliation.break_not_found"
    http_status = 404


class DaySignedOff(ReconciliationError):
    code = "reconciliation.day_signed_off"
    http_status = 409


class OpenBreaks(ReconciliationError):
    code = "reconciliation.open_breaks"
    http_status = 409


class EarlierDayOpen(ReconciliationError):
    code = "reconciliation.earlier_day_open"
    http_status = 409


class BreakClosed(ReconciliationError):
    code = "reconciliation.break_closed"
    http_status = 409


class ReasonRequired(ReconciliationError):
    code = "reconciliation.reason_required"
    http_status = 400


class InvalidAssignee(ReconciliationError):
    code = "reconciliation.invalid_assignee"
    http_status = 400


class StaleBreak(ReconciliationError):
    code = "reconciliation.stale_break"
    http_status = 409


@dataclass(frozen=True)
class LineError:
    """One refused line of a bank statement (1-based ``line``; ``column`` when one is to blame)."""

    line: int
    code: str
    message: str
    column: str | None = None


class BankStatementInvalid(ReconciliationError):
    code = "reconciliation.bank_statement_invalid"
    http_status = 400

    def __init__(self, message: str, errors: tuple[LineError, ...] = (), **detail: Any) -> None:
        super().__init__(message, **detail)
        self.errors = errors


class BankAccountMismatch(ReconciliationError):
    code = "reconciliation.bank_account_mismatch"
    http_status = 400


class ProviderUnavailable(ReconciliationError):
    code = "reconciliation.provider_unavailable"
    http_status = 502
