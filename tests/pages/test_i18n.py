"""The message catalogue and formats of the resident pages."""

from __future__ import annotations

import re
from datetime import date, datetime, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.pages.i18n import MESSAGES, Translator, choose_lang

TEMPLATES = Path(__file__).resolve().parents[2] / "gateway" / "templates" / "resident"
JA, EN = Translator("ja"), Translator("en")


def test_every_key_used_by_a_template_exists() -> None:
    used: set[str] = set()
    for template in TEMPLATES.glob("*.html"):
        used |= set(re.findall(r"""\bt\(\s*["']([a-z_.]+)["']\s*[,)]""", template.read_text("utf-8")))
    assert used, "templates use no messages?"
    assert not used - set(MESSAGES), sorted(used - set(MESSAGES))
    # Keys built in templates from a value: every value has its message.
    from gateway.pages.invoice_view import PageState

    assert {f"state.{state.value}" for state in PageState} <= set(MESSAGES)


def test_both_languages_for_every_message() -> None:
    for key, (ja, en) in MESSAGES.items():
        assert ja and en, key
        assert re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", ja) or key in {"lang.switch", "method.paypay"}, key


def test_placeholders_fill_in() -> None:
    assert JA("invoice.as_of", date="2026年6月15日") == "2026年6月15日にお支払いの場合"
    assert EN("invoice.pay_amount", amount="¥12,300") == "Pay ¥12,300"
    with pytest.raises(KeyError):
        JA("no.such.key")


def test_yen_is_integer_only() -> None:
    assert JA.yen(1_234_567) == "1,234,567円"
    assert EN.yen(0) == "¥0"
    with pytest.raises(TypeError):
        JA.yen(12.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        JA.yen(True)


def test_dates() -> None:
    assert JA.date(date(2026, 2, 3)) == "2026年2月3日"
    assert EN.date(date(2026, 2, 3)) == "3 February 2026"
    assert JA.fiscal_year(2026) == "2026年度" and EN.fiscal_year(2026) == "FY2026"
    assert JA.installment(3) == "第3期" and EN.installment(3) == "Installment 3"


def test_instants_are_shown_in_japan_time() -> None:
    # 15:30 UTC on 31 March is 00:30 on 1 April in Japan: a different day and fiscal year.
    moment = datetime(2026, 3, 31, 15, 30, tzinfo=timezone.utc)
    assert JA.datetime_jst(moment) == "2026年4月1日 00:30（日本時間）"
    assert EN.datetime_jst(moment) == "1 April 2026, 00:30 (Japan time, JST)"
    assert JA.date_jst(moment) == "2026年4月1日"
    # A naive value (as SQLite returns it) is UTC.
    assert JA.date_jst(moment.replace(tzinfo=None)) == "2026年4月1日"


@given(st.sampled_from([None, "ja", "en", "fr", "", "EN"]), st.sampled_from([None, "ja", "en", "de"]))
def test_choose_lang(query: str | None, cookie: str | None) -> None:
    lang, set_cookie = choose_lang(query, cookie)
    if query in ("ja", "en"):
        assert lang == query and set_cookie == (query != cookie)
    elif cookie in ("ja", "en"):
        assert lang == cookie and not set_cookie
    else:
        assert lang == "ja" and not set_cookie
