"""What the resident sees of one invoice: the facts printed on the notice, the amount due today
(JST) with its late fee, and the state (unpaid / payment in progress / paid / cancelled).

Only what a holder of the paper notice already knows is shown: no payer name or address (the URL
may be forwarded or seen over a shoulder), no internal ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

from invoices.catalog import CatalogEntry
from invoices.due import AmountDue, amount_due
from invoices.model import Invoice, InvoiceContext, Status


class PageState(StrEnum):
    UNPAID = "unpaid"
    IN_PROGRESS = "in_progress"
    PAID = "paid"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class InvoiceView:
    """Everything the invoice page shows.

    Attributes:
        state: the state shown; ``in_progress`` only while an attempt is live and nothing is paid.
        due: the amount due on ``due.on_date`` (today in JST).
        overdue: today is after the due date.
        paid_at: the provider's success time of the payment, when paid and known.
        attempt_id: the live attempt to continue, when in progress.
        receipt_attempt_id: the attempt whose receipt to link to, when paid through this gateway.
    """

    invoice: Invoice
    entry: CatalogEntry
    state: PageState
    due: AmountDue
    overdue: bool
    paid_at: datetime | None = None
    attempt_id: str | None = None
    receipt_attempt_id: str | None = None

    @property
    def late_fee_days(self) -> int:
        return 0 if self.due.late_fee is None else self.due.late_fee.days_late

    @property
    def late_fee_segments(self) -> tuple[object, ...]:
        if self.due.late_fee is None:
            return ()
        return tuple(s for s in self.due.late_fee.segments if s.days)


def invoice_view(
    ctx: InvoiceContext,
    invoice: Invoice,
    today: date,
    *,
    live_attempt_id: str | None = None,
    paid_at: datetime | None = None,
    receipt_attempt_id: str | None = None,
) -> InvoiceView:
    """The view of ``invoice`` on ``today``.

    Invariant: the state follows the invoice's money first (paid or overpaid → paid; cancelled →
    cancelled); a live attempt only turns an open invoice into "in progress".
    """
    if invoice.status is Status.CANCELLED:
        state = PageState.CANCELLED
    elif invoice.status in (Status.PAID, Status.OVERPAID):
        state = PageState.PAID
    elif live_attempt_id is not None:
        state = PageState.IN_PROGRESS
    else:
        state = PageState.UNPAID
    return InvoiceView(
        invoice=invoice,
        entry=ctx.catalog.get(invoice.tax_code),
        state=state,
        due=amount_due(invoice, today, ctx=ctx),
        overdue=today > invoice.due_date,
        paid_at=paid_at if state is PageState.PAID else None,
        attempt_id=live_attempt_id if state is PageState.IN_PROGRESS else None,
        receipt_attempt_id=receipt_attempt_id if state is PageState.PAID else None,
    )
