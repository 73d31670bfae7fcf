"""Paying through the resident pages against the Stripe-compatible sandbox, on both engines:
start or join the one attempt, test methods, declines and another try, PayPay's redirect,
completion, the receipt and its public check. The money's state is always the provider's."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from litestar.testing import TestClient

from gateway.providers import StripeProvider
from gateway.sandbox import SandboxServer
from invoices.model import Invoice, Status
from invoices.queries import get_invoice
from invoices.service import cancel_invoice
from ledger.db import read_transaction, run_transaction
from tests.pages.support import (
    Site,
    by_testid,
    csrf_field,
    make_site,
    page_code,
    page_state,
)

ATTEMPT = re.compile(r"/attempts/(pa_[0-9a-f]{24})")


@pytest.fixture
def site(paying_site: Site) -> Site:
    return paying_site


def start(site: Site, invoice: Invoice, client: TestClient[Any] | None = None) -> str:
    """Tap "pay" on the invoice page; the attempt page's path."""
    client = client or site.client
    page = client.get(site.page_url(invoice)).text
    response = client.post(
        site.page_url(invoice) + "/pay",
        data={"_csrf_token": csrf_field(page), "amount": by_testid(page, "total").replace(",", "").rstrip("円")},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert ATTEMPT.search(location)
    return location


def confirm(site: Site, attempt_path: str, method: str) -> Any:
    page = site.client.get(attempt_path).text
    return site.client.post(
        attempt_path + "/confirm", data={"_csrf_token": csrf_field(page), "method": method}, follow_redirects=False
    )


def invoice_status(site: Site, invoice: Invoice) -> Invoice:
    with read_transaction(site.services.engine) as conn:
        return get_invoice(conn, invoice.display_number)


def test_pay_by_card_then_receipt(site: Site) -> None:
    invoice = site.issue(amount=12_300)
    html = site.client.get(site.page_url(invoice)).text
    assert by_testid(html, "pay") == "12,300円を支払う"
    path = start(site, invoice)
    attempt_page = site.client.get(path).text
    assert 'data-state="attempt-created"' in attempt_page
    for method in ("card_success", "card_declined", "insufficient_funds", "expired_card", "paypay"):
        assert f'value="{method}"' in attempt_page
    assert "<script" not in attempt_page  # the sandbox needs no script at all
    assert by_testid(attempt_page, "total") == "12,300円"

    response = confirm(site, path, "card_success")
    assert response.status_code == 303 and response.headers["location"] == path
    done = site.client.get(path).text
    assert "お支払いが完了しました" in done
    assert by_testid(done, "amount-paid") == "12,300円"
    number = by_testid(done, "receipt-number")

    receipt = site.client.get(path + "/receipt")
    assert receipt.status_code == 200
    assert "支払完了証明" in receipt.text and "（日本時間）" in receipt.text
    assert by_testid(receipt.text, "receipt-number") == number
    assert by_testid(receipt.text, "provider-ref").startswith("pi_")
    code = by_testid(receipt.text, "verification-code")
    assert re.fullmatch(r"[0-9A-Z]{4}(-[0-9A-Z]{4}){3}", code)
    assert invoice.display_number in receipt.text and "固定資産税" in receipt.text

    paid = invoice_status(site, invoice)
    assert paid.status is Status.PAID and paid.amount_paid == 12_300
    after = site.client.get(site.page_url(invoice)).text
    assert page_state(after) == "paid"
    assert by_testid(after, "paid-on").endswith("に納付済みです。")
    assert f"{path}/receipt" in after
    # A second tap on the card button (the old page, still on screen) changes nothing.
    again = site.client.post(path + "/confirm", data={"_csrf_token": csrf_field(attempt_page), "method": "card_success"},
                             follow_redirects=False)
    assert again.status_code == 303 and again.headers["location"] == path
    assert invoice_status(site, invoice).amount_paid == 12_300


def tap_pay(site: Site, invoice: Invoice, page: str, client: TestClient[Any]) -> str:
    response = client.post(site.page_url(invoice) + "/pay", data={"_csrf_token": csrf_field(page)},
                           follow_redirects=False)
    assert response.status_code == 303
    return str(response.headers["location"])


def test_double_tap_second_tab_and_second_device_join_one_attempt(site: Site) -> None:
    invoice = site.issue()
    with TestClient(site.app) as phone:  # another device: its own cookies
        on_laptop = site.client.get(site.page_url(invoice)).text
        on_phone = phone.get(site.page_url(invoice)).text
        first = tap_pay(site, invoice, on_laptop, site.client)
        assert tap_pay(site, invoice, on_laptop, site.client) == first  # double tap
        second_tab = site.client.get(site.page_url(invoice)).text  # opened after the tap
        assert page_state(second_tab) == "in_progress" and f'href="{first}"' in second_tab
        assert tap_pay(site, invoice, on_phone, phone) == first  # the phone's stale page
        page = phone.get(site.page_url(invoice)).text
    assert page_state(page) == "in_progress"
    assert "二重に請求されることはありません" in page
    assert f'href="{first}"' in page
    assert 'data-testid="pay"' not in page
    assert len(site.services.payments.attempts_for_invoice(invoice.display_number)) == 1


@pytest.mark.parametrize(
    "method, ja, en",
    [
        ("card_declined", "カードが承認されませんでした", "Your card was declined"),
        ("insufficient_funds", "利用可能額が不足しています", "insufficient funds"),
        ("expired_card", "有効期限が切れています", "has expired"),
    ],
)
def test_decline_shows_the_mapped_message_and_allows_another_try(site: Site, method: str, ja: str, en: str) -> None:
    invoice = site.issue()
    path = start(site, invoice)
    assert confirm(site, path, method).status_code == 303
    failed = site.client.get(path).text
    assert 'data-state="attempt-failed"' in failed
    assert ja in failed
    assert en in site.client.get(path + "?lang=en").text
    site.client.get(path + "?lang=ja")
    assert 'data-testid="try-again"' in failed
    invoice_page = site.client.get(site.page_url(invoice)).text
    assert page_state(invoice_page) == "unpaid"
    assert "前回のお支払いはできませんでした" in invoice_page and ja in invoice_page
    assert invoice_status(site, invoice).amount_paid == 0
    # Another try is a new attempt, and it can succeed.
    retry = start(site, invoice)
    assert retry != path
    confirm(site, retry, "card_success")
    assert invoice_status(site, invoice).status is Status.PAID
    assert site.client.get(path + "/receipt").status_code == 404  # the declined one has no receipt


def test_paypay_redirect_and_return(site: Site) -> None:
    invoice = site.issue(amount=4_500)
    path = start(site, invoice)
    assert confirm(site, path, "paypay").headers["location"] == path
    waiting = site.client.get(path).text
    assert 'data-state="attempt-requires_action"' in waiting
    approval_url = re.search(r'href="([^"]+)" data-testid="open-redirect"', waiting).group(1)  # type: ignore[union-attr]
    assert approval_url.startswith("http://127.0.0.1:")
    assert page_state(site.client.get(site.page_url(invoice)).text) == "in_progress"

    approved = httpx.post(approval_url.replace("&amp;", "&") + "/approve", data={"decision": "approve"})
    assert approved.status_code == 303
    back = urlsplit(approved.headers["location"])
    assert back.path == path + "/return" and "redirect_status=succeeded" in back.query
    returned = site.client.get(f"{back.path}?{back.query}", follow_redirects=False)
    assert returned.status_code == 303 and returned.headers["location"] == path
    assert "お支払いが完了しました" in site.client.get(path).text
    assert invoice_status(site, invoice).status is Status.PAID


def test_return_url_never_takes_the_browsers_word(site: Site) -> None:
    invoice = site.issue()
    path = start(site, invoice)
    forged = site.client.get(
        path + "/return?payment_intent=pi_fake&redirect_status=succeeded", follow_redirects=False
    )
    assert forged.status_code == 303
    assert 'data-state="attempt-created"' in site.client.get(path).text
    assert invoice_status(site, invoice).amount_paid == 0
    assert site.client.get(path + "/receipt").status_code == 404


def test_attempts_are_bound_to_their_invoice(site: Site) -> None:
    mine, other = site.issue(), site.issue(payer_ref="000999")
    path = start(site, mine)
    attempt_id = ATTEMPT.search(path).group(1)  # type: ignore[union-attr]
    foreign = site.page_url(other) + f"/attempts/{attempt_id}"
    for suffix in ("", "/receipt"):
        response = site.client.get(foreign + suffix)
        assert response.status_code == 404 and page_code(response.text) == "payment.not_found"
    assert site.client.get(site.page_url(mine) + "/attempts/pa_nothere").status_code == 404
    forged_token = site.client.get("/p/garbage/attempts/" + attempt_id)
    assert forged_token.status_code == 404 and page_code(forged_token.text) == "token.malformed"


def test_paid_or_cancelled_invoice_cannot_start_a_payment(site: Site) -> None:
    invoice = site.issue()
    services = site.services
    page = site.client.get(site.page_url(invoice)).text
    run_transaction(
        services.engine,
        lambda conn: cancel_invoice(conn, services.invoices, invoice.display_number, reason="課税取消", actor="cli:test"),
    )
    response = site.client.post(site.page_url(invoice) + "/pay", data={"_csrf_token": csrf_field(page)},
                                follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == site.page_url(invoice)
    assert page_state(site.client.get(site.page_url(invoice)).text) == "cancelled"
    assert site.services.payments.attempts_for_invoice(invoice.display_number) == []


def test_pay_needs_csrf(site: Site) -> None:
    invoice = site.issue()
    response = site.client.post(site.page_url(invoice) + "/pay", data={}, follow_redirects=False)
    assert response.status_code == 403 and page_code(response.text) == "page.csrf_failed"
    assert site.services.payments.attempts_for_invoice(invoice.display_number) == []


def test_only_offered_methods_are_accepted(site: Site) -> None:
    invoice = site.issue()
    path = start(site, invoice)
    response = confirm(site, path, "pm_card_visa")  # a raw provider id is not a button here
    assert response.status_code == 400 and page_code(response.text) == "payment.invalid_method"
    assert invoice_status(site, invoice).amount_paid == 0


def test_receipt_check(site: Site) -> None:
    invoice = site.issue()
    path = start(site, invoice)
    confirm(site, path, "card_success")
    receipt = site.client.get(path + "/receipt").text
    number, code = by_testid(receipt, "receipt-number"), by_testid(receipt, "verification-code")

    form = site.client.get(f"/receipts?number={number.lower()}&code={code}", follow_redirects=False)
    assert form.status_code == 303
    genuine = site.client.get(form.headers["location"])
    assert genuine.status_code == 200 and page_code(genuine.text) == "receipt.genuine"
    assert by_testid(genuine.text, "amount-paid") == "12,300円"
    # Typed loosely: lower case, no dashes.
    assert page_code(site.client.get(f"/receipts/{number}?code={code.replace('-', '').lower()}").text) == "receipt.genuine"

    altered = code[:-1] + ("A" if code[-1] != "A" else "B")
    for url in (f"/receipts/{number}?code={altered}", f"/receipts/R20990101-AAAAAAAA?code={code}",
                f"/receipts/not-a-number?code={code}"):  # fmt: skip
        response = site.client.get(url)
        assert response.status_code == 404 and page_code(response.text) == "receipt.not_genuine"
        assert "この番号の組み合わせに一致する支払完了証明はありません" in response.text
        assert "12,300" not in response.text
    assert 'data-result' not in site.client.get("/receipts").text


def test_receipt_check_is_rate_limited(site: Site) -> None:
    for _ in range(30):
        assert site.client.get("/receipts/R20990101-AAAAAAAA?code=AAAA").status_code == 404
    limited = site.client.get("/receipts/R20990101-AAAAAAAA?code=AAAA")
    assert limited.status_code == 429 and page_code(limited.text) == "page.rate_limited"
    assert "retry-after" in limited.headers


def test_payment_posts_are_rate_limited(site: Site) -> None:
    invoice = site.issue()
    page = site.client.get(site.page_url(invoice)).text
    token = csrf_field(page)
    statuses = [
        site.client.post(site.page_url(invoice) + "/pay", data={"_csrf_token": token}, follow_redirects=False).status_code
        for _ in range(31)
    ]
    assert statuses[:30] == [303] * 30
    assert statuses[30] == 429


def test_without_a_provider_there_is_no_pay_button(db_url: str, tmp_path: Path) -> None:
    for plain in make_site(db_url, tmp_path):
        invoice = plain.issue()
        page = plain.client.get(plain.page_url(invoice)).text
        assert page_state(page) == "unpaid" and 'data-testid="pay"' not in page
        response = plain.client.post(plain.page_url(invoice) + "/pay", data={"_csrf_token": plain.csrf()},
                                     follow_redirects=False)
        assert response.status_code == 503 and page_code(response.text) == "payment.provider_not_configured"
        assert "現在オンラインでのお支払いを受け付けていません" in response.text


def test_real_stripe_keys_mount_the_payment_element(site: Site, sandbox: SandboxServer) -> None:
    # The real Stripe adapter's page, with its intents made by the sandbox (no network here):
    # the same StripeProvider class, told it is "stripe" and given a publishable key.
    provider = StripeProvider("sk_test_nofu_sandbox", publishable_key="pk_test_nofu", api_base=sandbox.url)
    provider.name = "stripe"
    site.services.payments.provider = provider
    invoice = site.issue(due_date=date(2026, 7, 31))
    path = start(site, invoice)
    html = site.client.get(path).text
    assert '<script src="https://js.stripe.com/v3/" defer></script>' in html
    assert '<script src="/static/resident.js" defer></script>' in html
    assert 'data-publishable-key="pk_test_nofu"' in html
    assert re.search(r'data-client-secret="pi_[A-Za-z0-9]+_secret_[A-Za-z0-9]+"', html)
    assert f'data-return-url="http://127.0.0.1:8000{path}/return"' in html
    assert 'name="method"' not in html  # no test buttons with real keys
    assert "<script>" not in html  # nothing inline
    js = site.client.get("/static/resident.js")
    assert js.status_code == 200 and "confirmPayment" in js.text
