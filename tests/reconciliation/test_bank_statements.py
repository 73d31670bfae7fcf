"""Bank statements without a database: the 全銀 入出金取引明細 layout and the CSV columns."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciliation import (
    BankAccountMismatch,
    BankStatementInvalid,
    ReconciliationConfig,
    parse_statement,
)
from reconciliation.bank_csv import parse_csv
from reconciliation.zengin import (
    RECORD,
    ZenginEntry,
    looks_like_zengin,
    parse_zengin,
    wareki_date,
    write_zengin,
)


def test_a_zengin_file_reads_back_what_was_written() -> None:
    data = write_zengin([
        ZenginEntry(date(2026, 6, 3), 1_234_567, payer="ｽﾄﾗｲﾌﾟｼﾞﾔﾊﾟﾝ(ｶ", memo="ﾌﾘｺﾐ", reference=12),
        ZenginEntry(date(2026, 6, 3), -5_000, payer="ﾃｽｳﾘﾖｳ", reference=13),
    ])  # fmt: skip
    assert all(len(line) == RECORD for line in data.split(b"\r\n") if line)
    first, second = parse_zengin(data)
    assert (first.value_date, first.amount, first.reference, first.account) == (date(2026, 6, 3), 1_234_567, "00000012", "0597-123-0001234")
    assert first.description == "ｽﾄﾗｲﾌﾟｼﾞﾔﾊﾟﾝ(ｶ ﾌﾘｺﾐ"
    assert second.amount == -5_000 and second.line_key != first.line_key


def test_the_same_layout_without_line_breaks_reads_the_same() -> None:
    entries = [ZenginEntry(date(2026, 6, 3), 100, reference=1), ZenginEntry(date(2026, 6, 4), 200, reference=2)]
    assert parse_zengin(write_zengin(entries, newline=False)) == parse_zengin(write_zengin(entries))


@given(st.lists(st.tuples(st.dates(date(2019, 5, 1), date.today() + timedelta(days=300)), st.integers(-10**11, 10**11).filter(bool)),
                min_size=1, max_size=20))  # fmt: skip
def test_any_statement_round_trips(lines: list[tuple[date, int]]) -> None:
    entries = [ZenginEntry(day, amount, reference=i + 1) for i, (day, amount) in enumerate(lines)]
    parsed = parse_zengin(write_zengin(entries))
    assert [(p.value_date, p.amount) for p in parsed] == lines


def test_wareki_dates_read_as_reiwa_then_heisei() -> None:
    assert wareki_date("080601") == date(2026, 6, 1)  # 令和8年
    assert wareki_date("010501") == date(2019, 5, 1)  # 令和元年5月1日
    assert wareki_date("310430", today=date(2026, 6, 1)) == date(2019, 4, 30)  # 平成31年4月30日
    assert wareki_date("300228", today=date(2026, 6, 1)) == date(2018, 2, 28)  # 平成30年
    assert wareki_date("080601", today=date(2026, 6, 1)) == date(2026, 6, 1)
    with pytest.raises(ValueError):
        wareki_date("08061")


def _codes(data: bytes) -> list[str]:
    with pytest.raises(BankStatementInvalid) as refused:
        parse_statement(data)
    assert refused.value.code == "reconciliation.bank_statement_invalid"
    return [e.code for e in refused.value.errors]


def test_malformed_zengin_files_are_refused_whole_with_the_record_named() -> None:
    good = write_zengin([ZenginEntry(date(2026, 6, 3), 100, reference=1)])
    records = good.split(b"\r\n")
    assert _codes(b"\r\n".join([records[0], records[1][:150], *records[2:]])) == ["zengin.record_length"]
    trailer = records[2][:1] + b"000002" + records[2][7:]
    assert _codes(b"\r\n".join([records[0], records[1], trailer, records[3]])) == ["zengin.trailer_mismatch"]
    assert _codes(b"\r\n".join([records[0], records[1], records[3]])) == ["zengin.no_trailer"]
    bad_direction = records[1][:21] + b"7" + records[1][22:]
    assert _codes(b"\r\n".join([records[0], bad_direction, *records[2:]])) == ["zengin.invalid_direction"]
    bad_date = records[1][:9] + b"081399" + records[1][15:]
    assert _codes(b"\r\n".join([records[0], bad_date, *records[2:]])) == ["zengin.invalid_date"]
    # 振込入金通知 (種別 01) is another layout: not taken for 入出金取引明細.
    other_kind = b"\r\n".join([b"101" + records[0][3:], *records[1:]])
    assert not looks_like_zengin(other_kind)
    with pytest.raises(BankStatementInvalid) as refused:
        parse_zengin(other_kind)
    assert [e.code for e in refused.value.errors] == ["zengin.unsupported_kind"]


def test_a_statement_of_another_account_is_refused() -> None:
    data = write_zengin([ZenginEntry(date(2026, 6, 3), 100, reference=1)], account_number="7654321")
    with pytest.raises(BankAccountMismatch) as refused:
        parse_statement(data, ReconciliationConfig(bank_account_number="0597-123-0001234"))
    assert refused.value.code == "reconciliation.bank_account_mismatch"
    ours = parse_statement(data, ReconciliationConfig(bank_account_number="0597-123-7654321"))
    assert ours.accounts == ("designated",)


def test_csv_with_japanese_headers_in_shift_jis_and_deposit_withdrawal_columns() -> None:
    text = "勘定日,入金金額,出金金額,摘要,照会番号\r\n2026/6/3,\"1,234\",,ｽﾄﾗｲﾌﾟ,A1\r\n2026/06/03,,500,手数料,A2\r\n"
    lines = parse_csv(text.encode("cp932"))
    assert [(l.value_date, l.amount, l.reference, l.line_key) for l in lines] == [
        (date(2026, 6, 3), 1234, "A1", "ref:A1"), (date(2026, 6, 3), -500, "A2", "ref:A2"),
    ]  # fmt: skip


def test_identical_csv_lines_without_reference_keep_distinct_keys() -> None:
    data = "\ufeffdate,amount,description\n2026-06-03,100,X\n2026-06-03,100,X\n2026-06-03,¥-100,X\n".encode("utf-8")
    keys = [l.line_key for l in parse_csv(data)]
    assert len(set(keys)) == 3 and keys[0].endswith("|0") and keys[1].endswith("|1")


def test_csv_refusals_name_each_line_and_column() -> None:
    assert _codes(b"") == ["statement.empty"]
    assert _codes(b"amount,description\n100,x\n") == ["csv.missing_column"]
    assert _codes(b"date,amount\n2026-06-03,1.5\n2026-02-30,100\n") == ["csv.invalid_amount", "csv.invalid_date"]
    assert _codes(b"date,deposit,withdrawal\n2026-06-03,100,100\n") == ["csv.invalid_amount"]
    assert _codes(b"date,amount\n2026-06-03,\n") == ["csv.invalid_amount"]
    assert _codes(b"date,amount\n2026-06-03,\x81\x00") == ["csv.encoding"]
