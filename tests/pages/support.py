"""Shared helpers for the resident page tests: an app on a fresh database (both engines) whose
business date is fixed, invoices issued into it, and HTML probes (import the fixtures)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from gateway.app import create_app
from gateway.services import Services
from gateway.settings import Settings
from invoices.model import Invoice, IssueRequest, PaymentCode, invoice_payment_code
from invoices.service import issue_invoice
from ledger.db import run_transaction

TODAY = date(2026, 6, 15)
MUNICIPALITY = "テスト市"


def issue_request(**overrides: Any) -> IssueRequest:
    values: dict[str, Any] = {
        "tax_code": "FIXED_ASSET",
        "fiscal_year": 2026,
        "installment": 2,
        "due_date": date(2026, 7, 31),
        "amount": 12_300,
        "payer_ref": "000123",
        "payer_name": "山田 太郎",
        "payer_address": "東京都千代田区霞が関1-2-3",
        "issue_date": date(2026, 4, 1),
    }
    values.update(overrides)
    return IssueRequest(**values)


@dataclass
class Site:
    """The app under test and its client; ``today`` is the business date handlers see."""

    app: Litestar
    client: TestClient[Litestar]

    @property
    def services(self) -> Services:
        services: Services = self.app.state.services
        return services

    def set_today(self, day: date) -> None:
        services = self.services
        self.app.state.services = dataclasses.replace(
            services, invoices=dataclasses.replace(services.invoices, today=lambda: day)
        )

    def issue(self, **overrides: Any) -> Invoice:
        services = self.services
        request = issue_request(**overrides)
        return run_transaction(
            services.engine, lambda conn: issue_invoice(conn, services.invoices, request, actor="cli:test")
        ).invoice

    def code(self, invoice: Invoice) -> PaymentCode:
        return invoice_payment_code(self.services.keys.qr, invoice)

    def page_url(self, invoice: Invoice) -> str:
        return "/p/" + self.code(invoice).token

    def csrf(self, path: str = "/p") -> str:
        """A CSRF form token (the client keeps the matching cookie)."""
        return csrf_field(self.client.get(path).text)

    def post_form(self, path: str, data: dict[str, str], *, csrf: bool = True, **kwargs: Any) -> httpx.Response:
        body = dict(data)
        if csrf:
            body["_csrf_token"] = self.csrf()
        return self.client.post(path, data=body, follow_redirects=False, **kwargs)


def make_site(db_url: str, tmp_path: Path, **settings: Any) -> Iterator[Site]:
    app = create_app(
        Settings(
            database_url=db_url,
            dev_keys_file=str(tmp_path / "dev-keys.env"),
            municipality_name=MUNICIPALITY,
            **settings,
        )
    )
    with TestClient(app) as client:
        site = Site(app, client)
        site.set_today(TODAY)
        yield site


@pytest.fixture
def site(db_url: str, tmp_path: Path) -> Iterator[Site]:
    yield from make_site(db_url, tmp_path)


# --- HTML probes ----------------------------------------------------------------------------


def page_code(html: str) -> str | None:
    """The stable refusal code a page carries in ``<meta name="nofu-code">``."""
    match = re.search(r'<meta name="nofu-code" content="([^"]+)">', html)
    return match.group(1) if match else None


def html_lang(html: str) -> str:
    match = re.search(r'<html lang="([a-z]+)">', html)
    assert match, "page has no <html lang>"
    return match.group(1)


def csrf_field(html: str) -> str:
    match = re.search(r'name="_csrf_token" value="([^"]+)"', html)
    assert match, "page has no CSRF field"
    return match.group(1)


def by_testid(html: str, name: str) -> str:
    """Text of the element carrying ``data-testid="name"``."""
    match = re.search(rf'data-testid="{name}"[^>]*>([^<]*)<', html)
    assert match, f"no element data-testid={name}"
    return match.group(1).strip()


def page_state(html: str) -> str:
    match = re.search(r'data-state="([a-z_]+)"', html)
    assert match, "page shows no state"
    return match.group(1)
