"""The ledger sub-accounts the catalog needs: 1100:CODE (receivable) and 4100:CODE / 4200:CODE
(revenue) for every tax and fee."""

from __future__ import annotations

from sqlalchemy.engine import Connection

from invoices.catalog import Catalog, CatalogEntry
from ledger import AccountSpec, ensure_account


def catalog_accounts(entry: CatalogEntry) -> tuple[AccountSpec, AccountSpec]:
    return (
        AccountSpec(
            entry.receivable_account, f"未収金 {entry.name_ja}", f"Receivable: {entry.name_en}", "debit"
        ),
        AccountSpec(entry.revenue_account, entry.name_ja, entry.name_en, "credit"),
    )


def ensure_catalog_accounts(conn: Connection, catalog: Catalog | None = None) -> None:
    """Create the missing sub-accounts; idempotent (existing ones must match exactly)."""
    for entry in catalog or Catalog.load_default():
        for spec in catalog_accounts(entry):
            ensure_account(conn, spec)
