"""GET/POST /p: the notice number and the confirmation code together find an invoice; nothing
else does, and guessing is bounded per client and per notice number."""

from __future__ import annotations

from collections.abc import Callable

import re

import anyio
import httpx
import pytest

from gateway.pages.manual_entry import FAILURES_PER_NUMBER, STORE_NAME
from invoices.notice_number import make_notice_number
from invoices.service import revoke_payment_code
from ledger.db import run_transaction
from tests.pages.support import Site, html_lang, page_code, site

__all__ = ["site"]


def submit(site: Site, number: str, code: str) -> httpx.Response:
    return site.post_form("/p", {"notice_number": number, "confirmation_code": code})


def test_form_is_labelled_and_protected(site: Site) -> None:
    html = site.client.get("/p").text
    assert '<label for="notice_number">' in html and 'id="notice_number"' in html
    assert '<label for="confirmation_code">' in html and 'id="confirmation_code"' in html
    assert 'name="_csrf_token"' in html
    assert html_lang(html) == "ja"
    assert "Notice number" in site.client.get("/p?lang=en").text


@pytest.mark.parametrize(
    "spell_number, spell_code",
    [
        (lambda n: n, lambda c: c),
        (lambda n: n.replace("-", ""), lambda c: c.lower()),
        # Typed with a Japanese IME: full-width digits, dashes and letters.
        (lambda n: n.translate(str.maketrans("0123456789-", "０１２３４５６７８９－")),
         lambda c: c.translate(str.maketrans("ABCDEFGHJKLMNPQRSTUVWXYZ23456789",
                                             "ＡＢＣＤＥＦＧＨＪＫＬＭＮＰＱＲＳＴＵＶＷＸＹＺ２３４５６７８９"))),
    ],
)
def test_both_numbers_redirect_to_the_invoice_page(
    site: Site, spell_number: Callable[[str], str], spell_code: Callable[[str], str]
) -> None:
    invoice = site.issue()
    code = site.code(invoice)
    response = submit(site, spell_number(code.notice_number), spell_code(code.confirmation_code))
    assert response.status_code == 303
    assert response.headers["location"] == "/p/" + code.token
    page = site.client.get(response.headers["location"])
    assert page.status_code == 200 and invoice.display_number in page.text


def test_wrong_code_and_unknown_number_look_the_same(site: Site) -> None:
    invoice = site.issue()
    other = site.issue(payer_ref="000999")
    code = site.code(invoice)
    wrong = submit(site, code.notice_number, site.code(other).confirmation_code)
    # A well-formed number (valid check digit) that no invoice has.
    nobody = make_notice_number(2026, 99_999_999)
    unknown = submit(site, nobody, code.confirmation_code)
    for response in (wrong, unknown):
        assert response.status_code == 400
        assert page_code(response.text) == "entry.no_match"
        assert "通知書番号または確認番号が正しくありません" in response.text
        assert "/p/" + code.token not in response.text

    def comparable(html: str) -> str:
        # The only differences allowed: the number the resident typed, and the CSRF token.
        html = html.replace(nobody, "N").replace(code.notice_number, "N")
        return re.sub(r'value="[0-9a-f]{128}"', "", html)

    assert comparable(wrong.text) == comparable(unknown.text)


def test_malformed_number_and_missing_fields(site: Site) -> None:
    invoice = site.issue()
    code = site.code(invoice)
    bad_check = code.notice_number[:-1] + str((int(code.notice_number[-1]) + 1) % 10)
    response = submit(site, bad_check, code.confirmation_code)
    assert response.status_code == 400
    assert page_code(response.text) == "entry.invalid_notice_number"
    assert page_code(submit(site, "12345", "ABCDEF").text) == "entry.invalid_notice_number"
    assert page_code(submit(site, "", "").text) == "entry.missing_fields"
    assert page_code(submit(site, code.notice_number, " ").text) == "entry.missing_fields"


def test_revoked_confirmation_code_no_longer_matches(site: Site) -> None:
    invoice = site.issue()
    old = site.code(invoice)
    services = site.services
    revoked = run_transaction(
        services.engine,
        lambda conn: revoke_payment_code(conn, invoice.display_number, reason="再発行", actor="cli:test"),
    )
    assert page_code(submit(site, old.notice_number, old.confirmation_code).text) == "entry.no_match"
    new = site.code(revoked)
    assert new.confirmation_code != old.confirmation_code
    response = submit(site, new.notice_number, new.confirmation_code)
    assert response.headers["location"] == "/p/" + new.token


def test_number_locked_after_too_many_wrong_codes(site: Site) -> None:
    invoice = site.issue()
    code = site.code(invoice)
    digits = invoice.notice_number
    store = site.app.stores.get(STORE_NAME)
    # Wrong codes from many clients (the per-client limit is tested separately).
    anyio.run(store.set, digits, str(FAILURES_PER_NUMBER - 1))
    assert submit(site, code.notice_number, "ZZZZZZ").status_code == 400
    assert anyio.run(store.get, digits) == str(FAILURES_PER_NUMBER).encode()
    response = submit(site, code.notice_number, code.confirmation_code)
    assert response.status_code == 429
    assert page_code(response.text) == "entry.locked"
    assert "/p/" + code.token not in response.text
    # Another notice number is not affected.
    other = site.issue(payer_ref="000777")
    assert submit(site, site.code(other).notice_number, site.code(other).confirmation_code).status_code == 303


def test_per_client_rate_limit(site: Site) -> None:
    invoice = site.issue()
    code = site.code(invoice)
    token = site.csrf()
    for _ in range(10):
        response = site.client.post("/p", data={"_csrf_token": token, "notice_number": code.notice_number,
                                                "confirmation_code": "ZZZZZZ"}, follow_redirects=False)
        assert response.status_code == 400
    # The 11th within the hour is refused, even with the right code.
    response = site.client.post("/p", data={"_csrf_token": token, "notice_number": code.notice_number,
                                            "confirmation_code": code.confirmation_code}, follow_redirects=False)
    assert response.status_code == 429
    assert page_code(response.text) == "page.rate_limited"
    assert "しばらく時間をおいてから" in response.text
    assert 0 < int(response.headers["retry-after"]) <= 3600
    assert "/p/" + code.token not in response.text
    # Reading pages is not limited by it.
    assert site.client.get(site.page_url(invoice)).status_code == 200


def test_missing_or_wrong_csrf_token(site: Site) -> None:
    invoice = site.issue()
    code = site.code(invoice)
    data = {"notice_number": code.notice_number, "confirmation_code": code.confirmation_code}
    missing = site.client.post("/p", data=data, follow_redirects=False)
    assert missing.status_code == 403
    assert page_code(missing.text) == "page.csrf_failed"
    assert "画面の有効期限が切れました" in missing.text
    site.client.get("/p")  # the client now holds a CSRF cookie
    forged = site.client.post("/p", data={**data, "_csrf_token": "0" * 128}, follow_redirects=False)
    assert forged.status_code == 403 and page_code(forged.text) == "page.csrf_failed"
