"""GET /p/{token}: the facts of the notice, the amount due today (JST) with its late fee, the
state, in Japanese and in English."""

from __future__ import annotations

from datetime import date

from invoices.service import cancel_invoice, record_payment
from invoices.late_fee import compute_late_fee
from ledger.db import run_transaction
from tests.pages.support import MUNICIPALITY, TODAY, Site, html_lang, page_code, page_state, site, by_testid

__all__ = ["site"]


def test_unpaid_invoice_in_japanese(site: Site) -> None:
    invoice = site.issue(amount=12_300, due_date=date(2026, 7, 31), installment=2)
    response = site.client.get(site.page_url(invoice))
    html = response.text
    assert response.status_code == 200
    assert html_lang(html) == "ja"
    assert page_state(html) == "unpaid"
    assert page_code(html) is None
    for text in (MUNICIPALITY, "固定資産税", "2026年度", "第2期", "2026年7月31日", invoice.display_number, "未納"):
        assert text in html, text
    assert by_testid(html, "principal") == "12,300円"
    assert by_testid(html, "late-fee") == "0円"
    assert by_testid(html, "total") == "12,300円"
    assert "2026年6月15日にお支払いの場合" in html
    assert "納期限内のため、延滞金はかかりません。" in html
    # Nothing personal on a page whose URL may be forwarded.
    assert "山田" not in html and "霞が関" not in html and "000123" not in html
    assert response.headers["cache-control"] == "no-store"


def test_english_switch_sets_a_cookie_that_sticks(site: Site) -> None:
    invoice = site.issue()
    url = site.page_url(invoice)
    response = site.client.get(url + "?lang=en")
    html = response.text
    assert html_lang(html) == "en"
    assert "nofu_lang=en" in response.headers["set-cookie"]
    for text in ("Fixed asset tax", "FY2026", "Installment 2", "31 July 2026", "¥12,300", "Unpaid", "Due date"):
        assert text in html, text
    assert "固定資産税" not in html
    # The switch back is offered, in Japanese, marked as Japanese.
    assert f'href="{url}?lang=ja" lang="ja"' in html
    # The cookie keeps English without the query …
    assert html_lang(site.client.get(url).text) == "en"
    # … until the resident switches back.
    assert html_lang(site.client.get(url + "?lang=ja").text) == "ja"
    assert html_lang(site.client.get(url).text) == "ja"


def test_unknown_language_falls_back_to_japanese(site: Site) -> None:
    invoice = site.issue()
    response = site.client.get(site.page_url(invoice) + "?lang=fr")
    assert response.status_code == 200
    assert html_lang(response.text) == "ja"
    assert "nofu_lang" not in response.headers.get("set-cookie", "")


def test_late_fee_as_of_today_with_its_explanation(site: Site) -> None:
    # Due 2025-12-25, paid 2026-06-15 (domain.md rules, computed by hand):
    #   12/26–12/31  6 days at 2.4 % (2025): 500,000 × 0.024 × 6 / 365  =    197
    #   1/1–1/25    25 days at 2.8 % (2026): 500,000 × 0.028 × 25 / 365 =    958
    #   1/26–6/15  141 days at 9.1 % (2026): 500,000 × 0.091 × 141 / 365 = 17,576
    #   sum 18,731 → rounded down to ¥100: 18,700
    invoice = site.issue(fiscal_year=2025, installment=3, due_date=date(2025, 12, 25), amount=500_000,
                         issue_date=date(2025, 4, 1))
    html = site.client.get(site.page_url(invoice)).text
    assert by_testid(html, "principal") == "500,000円"
    assert by_testid(html, "late-fee") == "18,700円"
    assert by_testid(html, "total") == "518,700円"
    assert "（172日分）" in by_testid(html, "late-fee-explain")
    assert "納期限を過ぎています" in html
    assert "2025年12月26日〜2025年12月31日（6日・年2.4%）: 197円" in html
    assert "2026年1月26日〜2026年6月15日（141日・年9.1%）: 17,576円" in html
    english = site.client.get(site.page_url(invoice) + "?lang=en").text
    assert by_testid(english, "late-fee") == "¥18,700"
    assert "(172 days)" in english


def test_late_fee_follows_the_business_date(site: Site) -> None:
    invoice = site.issue(fiscal_year=2025, installment=3, due_date=date(2025, 12, 25), amount=500_000,
                         issue_date=date(2025, 4, 1))
    later = date(2026, 9, 30)
    site.set_today(later)
    expected = compute_late_fee(500_000, date(2025, 12, 25), later, rates=site.services.invoices.rates)
    html = site.client.get(site.page_url(invoice)).text
    assert expected.amount > 18_700
    assert by_testid(html, "late-fee") == f"{expected.amount:,}円"
    assert "2026年9月30日にお支払いの場合" in html


def test_overdue_but_under_the_late_fee_threshold(site: Site) -> None:
    invoice = site.issue(due_date=date(2026, 5, 31), installment=1, amount=12_300)
    html = site.client.get(site.page_url(invoice)).text
    assert by_testid(html, "late-fee") == "0円"
    assert "延滞金は1,000円未満のためかかりません" in html


def test_fee_without_late_fee(site: Site) -> None:
    invoice = site.issue(tax_code="RESIDENT_COPY", installment=None, amount=300, due_date=date(2026, 5, 1))
    html = site.client.get(site.page_url(invoice)).text
    assert "住民票の写し" in html or "住民票" in html
    assert 'data-by_testid="late-fee"' not in html
    assert by_testid(html, "total") == "300円"
    assert "この料金には延滞金はかかりません。" in html


def test_paid_invoice_shows_paid_and_no_amount_due(site: Site) -> None:
    invoice = site.issue(amount=12_300)
    services = site.services
    run_transaction(
        services.engine,
        lambda conn: record_payment(conn, services.invoices, invoice.display_number, 12_300,
                                    reference="other-channel-1", actor="cli:test"),
    )
    html = site.client.get(site.page_url(invoice)).text
    assert page_state(html) == "paid"
    assert "納付済み" in html
    assert 'data-by_testid="total"' not in html
    assert 'data-by_testid="pay"' not in html


def test_cancelled_invoice(site: Site) -> None:
    invoice = site.issue()
    services = site.services
    run_transaction(
        services.engine,
        lambda conn: cancel_invoice(conn, services.invoices, invoice.display_number,
                                    reason="課税取消", actor="cli:test"),
    )
    response = site.client.get(site.page_url(invoice))
    assert response.status_code == 200
    assert page_state(response.text) == "cancelled"
    assert "この納付書は取り消されました" in response.text
    assert 'data-by_testid="pay"' not in response.text
    english = site.client.get(site.page_url(invoice) + "?lang=en").text
    assert "This notice has been cancelled" in english


def test_pages_load_no_inline_script_or_style(site: Site) -> None:
    invoice = site.issue(fiscal_year=2025, installment=3, due_date=date(2025, 12, 25), amount=500_000,
                         issue_date=date(2025, 4, 1))
    for path in (site.page_url(invoice), "/p", "/p/not-a-token"):
        html = site.client.get(path).text
        assert "<script" not in html
        assert "style=" not in html and "<style" not in html
        assert "javascript:" not in html


def test_today_is_the_fixed_business_date() -> None:
    # Guard for the fixture: the page tests above depend on it.
    assert TODAY == date(2026, 6, 15)
