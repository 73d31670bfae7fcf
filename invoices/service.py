"""The invoice service: everything the HTTP API and the CLI call, in one import.

Functions take a SQLAlchemy ``Connection`` inside the caller's write transaction (use
``ledger.db.run_transaction``) and an :class:`InvoiceContext`; they post to the ledger in that
same transaction. The bulk importer takes an ``Engine`` because it owns its transaction.

    from invoices.service import InvoiceContext, IssueRequest, issue_invoice
    issued = run_transaction(engine, lambda conn: issue_invoice(conn, ctx, request, actor="staff:42"))

Errors: see ``invoices.errors`` (every one has a stable ``code``).
"""

from __future__ import annotations

from invoices.accounts import ensure_catalog_accounts
from invoices.amend import amend_invoice, cancel_invoice, revoke_payment_code
from invoices.due import AmountDue, amount_due
from invoices.importer import MAX_BYTES, ImportReport, IssuedSlip, import_invoices_csv
from invoices.issue import Issued, issue_invoice
from invoices.model import (
    Invoice,
    InvoiceContext,
    IssueRequest,
    Payer,
    PaymentCode,
    Status,
    invoice_payment_code,
)
from invoices.payments import record_payment
from invoices.pii_rotation import reencrypt_payers
from invoices.queries import (
    Change,
    InvoicePage,
    get_invoice,
    get_invoice_by_public_id,
    invoice_history,
    list_invoices,
)

__all__ = [
    "MAX_BYTES",
    "AmountDue",
    "Change",
    "ImportReport",
    "Invoice",
    "InvoiceContext",
    "InvoicePage",
    "IssueRequest",
    "Issued",
    "IssuedSlip",
    "Payer",
    "PaymentCode",
    "Status",
    "amend_invoice",
    "amount_due",
    "cancel_invoice",
    "ensure_catalog_accounts",
    "get_invoice",
    "get_invoice_by_public_id",
    "import_invoices_csv",
    "invoice_history",
    "invoice_payment_code",
    "issue_invoice",
    "list_invoices",
    "record_payment",
    "reencrypt_payers",
    "revoke_payment_code",
]
