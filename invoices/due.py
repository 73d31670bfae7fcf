"""What a resident is asked to pay on a given day: outstanding principal plus 延滞金."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from invoices.late_fee import LateFee, compute_late_fee
from invoices.model import Invoice, InvoiceContext


@dataclass(frozen=True)
class AmountDue:
    """The amount due on ``on_date`` (JST).

    Attributes:
        principal: outstanding principal (0 unless the invoice is open).
        late_fee: the 延滞金 with its segments, or None where the code carries no late fee or
            nothing is outstanding.
        total: principal + late fee amount, in yen.
    """

    on_date: date
    principal: int
    late_fee: LateFee | None
    total: int

    @property
    def late_fee_amount(self) -> int:
        return 0 if self.late_fee is None else self.late_fee.amount


def amount_due(invoice: Invoice, on_date: date, *, ctx: InvoiceContext) -> AmountDue:
    """Outstanding principal + late fee as of ``on_date``.

    The late fee is computed on the outstanding principal from the invoice's due date, with the
    catalog's lower-rate period for its code (a simplification for invoices amended upwards after
    a payment: the statute dates the increase from its own notice).
    """
    principal = invoice.outstanding
    entry = ctx.catalog.get(invoice.tax_code)
    if principal == 0 or not entry.late_fee_applies:
        return AmountDue(on_date, principal, None, principal)
    fee = compute_late_fee(
        principal,
        invoice.due_date,
        on_date,
        rates=ctx.rates,
        first_period_months=entry.late_fee_first_period_months,
    )
    return AmountDue(on_date, principal, fee, principal + fee.amount)
