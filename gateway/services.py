"""What handlers and commands share, built once from the settings."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine

from gateway.keys import Keys, load_keys
from gateway.payments.service import PaymentService
from gateway.payments.setup import build_payments
from gateway.settings import Settings
from invoices.catalog import Catalog
from invoices.late_fee import RateTable
from invoices.model import InvoiceContext
from invoices.qr import QrRenderer, payment_url
from ledger.db import create_engine


@dataclass(frozen=True)
class Services:
    settings: Settings
    engine: Engine
    keys: Keys
    invoices: InvoiceContext
    qr: QrRenderer
    payments: PaymentService

    def payment_url(self, token: str) -> str:
        return payment_url(self.settings.public_base_url, token)


def build_services(settings: Settings, engine: Engine | None = None) -> Services:
    keys = load_keys(settings)
    context = InvoiceContext(
        catalog=Catalog.load_default(), pii=keys.pii, rates=RateTable.load_default(), keyring=keys.qr
    )
    engine = engine or create_engine(settings.database_url)
    return Services(
        settings=settings,
        engine=engine,
        keys=keys,
        invoices=context,
        qr=QrRenderer(),
        payments=build_payments(settings, engine, context),
    )
