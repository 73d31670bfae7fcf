"""Bring a database to a usable state: schema at head, then reference data (chart of accounts).
Idempotent: run it as often as you like (``nofu db upgrade`` does)."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from gateway.schema_version import upgrade
from invoices.accounts import ensure_catalog_accounts
from ledger import ensure_chart
from ledger.db import run_transaction


def prepare_database(engine: Engine) -> None:
    upgrade(engine)
    run_transaction(engine, lambda conn: ensure_chart(conn))
    # The receivable and revenue sub-accounts of every catalog tax and fee (1100:CODE, 4x00:CODE).
    run_transaction(engine, lambda conn: ensure_catalog_accounts(conn))
