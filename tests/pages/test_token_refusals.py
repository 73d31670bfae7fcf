"""Every token that is not a genuine, current one is refused with a page that says nothing about
any invoice: forged, altered, truncated, from an unknown key, revoked, naming no invoice."""

from __future__ import annotations

import secrets

import pytest

from invoices.model import Invoice
from invoices.service import revoke_payment_code
from invoices.tokens import KeyRing, generate_key
from ledger.db import run_transaction
from tests.pages.support import Site, html_lang, page_code, site

__all__ = ["site"]


def refused(site: Site, invoice: Invoice, token: str, code: str) -> str:
    response = site.client.get("/p/" + token)
    html = response.text
    assert response.status_code == 404
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert page_code(html) == code
    assert "このURLではお支払いできません" in html
    # Nothing about the invoice, nor anything to help a guesser.
    for leaked in (invoice.display_number, invoice.notice_number, "12,300", "固定資産税", invoice.public_id):
        assert leaked not in html
    assert "Traceback" not in html
    assert response.headers["cache-control"] == "no-store"
    return html


def flip(text: str, index: int) -> str:
    replacement = "B" if text[index] != "B" else "C"
    return text[:index] + replacement + text[index + 1 :]


def test_forged_with_another_key_under_the_same_id(site: Site) -> None:
    invoice = site.issue()
    active = site.services.keys.qr.active_key_id
    forger = KeyRing.from_config(generate_key(active))
    refused(site, invoice, forger.sign(invoice.token_ref, invoice.token_generation), "token.bad_signature")


@pytest.mark.parametrize("where", ["key_id", "generation", "ref", "signature"])
def test_altered_anywhere(site: Site, where: str) -> None:
    invoice = site.issue()
    token = site.code(invoice).token
    # Layout: version, kid length, kid (2), generation (2), ref (12), signature (64), base64url.
    index = {"key_id": 4, "generation": 6, "ref": 12, "signature": 80}[where]
    altered = flip(token, index)
    response = site.client.get("/p/" + altered)
    assert response.status_code == 404
    assert page_code(response.text) in {"token.bad_signature", "token.unknown_key", "token.malformed"}
    refused(site, invoice, altered, page_code(response.text) or "")


@pytest.mark.parametrize("cut", [1, 2, 10, 64, 100])
def test_truncated(site: Site, cut: int) -> None:
    invoice = site.issue()
    token = site.code(invoice).token
    response = site.client.get("/p/" + token[:-cut])
    assert response.status_code == 404
    assert page_code(response.text) in {"token.malformed", "token.bad_signature"}
    refused(site, invoice, token[:-cut], page_code(response.text) or "")


def test_unknown_key(site: Site) -> None:
    invoice = site.issue()
    stranger = KeyRing.from_config(generate_key("zz"))
    refused(site, invoice, stranger.sign(invoice.token_ref, invoice.token_generation), "token.unknown_key")


def test_unsupported_version_and_garbage(site: Site) -> None:
    invoice = site.issue()
    token = site.code(invoice).token
    refused(site, invoice, "Ag" + token[2:], "token.unsupported_version")
    refused(site, invoice, "not-a-token", "token.malformed")
    refused(site, invoice, "A" * 300, "token.malformed")
    refused(site, invoice, token + "=", "token.malformed")


def test_revoked_code_refused_and_new_one_works(site: Site) -> None:
    invoice = site.issue()
    old_token = site.code(invoice).token
    services = site.services
    revoked = run_transaction(
        services.engine,
        lambda conn: revoke_payment_code(conn, invoice.display_number, reason="再発行", actor="cli:test"),
    )
    html = refused(site, invoice, old_token, "token.revoked")
    assert "この二次元コードは無効になりました" in html
    assert site.client.get(site.page_url(revoked)).status_code == 200


def test_genuine_signature_for_no_invoice(site: Site) -> None:
    invoice = site.issue()
    token = site.services.keys.qr.sign(secrets.token_bytes(12), 0)
    refused(site, invoice, token, "token.unknown_invoice")


def test_refusal_page_in_english(site: Site) -> None:
    response = site.client.get("/p/nonsense?lang=en")
    assert response.status_code == 404
    assert html_lang(response.text) == "en"
    assert "This link cannot be used to pay" in response.text
    assert 'href="/p"' in response.text  # the way forward: manual entry
