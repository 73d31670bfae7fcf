"""CSV bulk import: all rows or none, every bad row reported, re-import issues nothing twice."""

from __future__ import annotations

import io
import logging

import pytest
import sqlalchemy as sa

import ledger
from invoices.errors import ImportRejected, ImportTooLarge
from invoices.notice_number import make_notice_number
from invoices.service import get_invoice, import_invoices_csv, list_invoices
from tests.invoices._support import CTX, HEADER, counts, csv_bytes, net, row


def run_import(engine, data, **kw):
    stream = data if hasattr(data, "read") else io.BytesIO(data)
    return import_invoices_csv(engine, stream, ctx=CTX, actor="batch:tax-system", **kw)


def rejected(engine, data, **kw) -> ImportRejected:
    before = counts(engine)
    with pytest.raises(ImportRejected) as caught:
        run_import(engine, data, **kw)
    assert counts(engine) == before, "a refused file must write nothing"
    return caught.value


def codes(exc: ImportRejected):
    return [(e.line, e.column, e.code) for e in exc.errors]


def all_invoices(engine):
    with engine.connect() as conn:
        return list(list_invoices(conn, limit=500).items)


def test_a_good_file_issues_every_row_with_its_ledger_entry(engine):
    rows = [row(i) for i in range(1, 6)]
    report = run_import(engine, csv_bytes(rows))
    assert (report.rows, report.issued, report.skipped, report.encoding) == (5, 5, 0, "utf-8")
    invoices = all_invoices(engine)
    assert [i.sequence for i in invoices] == [1, 2, 3, 4, 5]  # allocated in file order
    assert [i.external_ref for i in invoices] == [r["external_ref"] for r in rows]
    assert {i.import_id for i in invoices} == {report.import_id}
    total = sum(r["amount"] for r in rows)
    assert net(engine, "1100:FIXED_ASSET") == total
    assert invoices[2].payer(CTX.pii).name == "納税 者3"
    with engine.connect() as conn:
        assert ledger.trial_balance(conn).balanced and ledger.verify(conn).ok
        imported = conn.execute(
            sa.text("SELECT actor, rows_total, rows_issued, file_sha256 FROM invoice_imports")
        ).one()
    assert tuple(imported)[:3] == ("batch:tax-system", 5, 5)
    assert imported.file_sha256 == report.file_sha256


def test_reimporting_the_same_file_issues_nothing_twice(engine):
    data = csv_bytes([row(i) for i in range(1, 4)])
    run_import(engine, data)
    before = counts(engine)
    again = run_import(engine, data)
    assert (again.issued, again.skipped) == (0, 3)
    after = counts(engine)
    assert after.pop("invoice_imports") == before.pop("invoice_imports") + 1
    assert after == before
    # A longer export of the same system: only the new rows are issued.
    more = run_import(engine, csv_bytes([row(i) for i in range(1, 6)]))
    assert (more.issued, more.skipped) == (2, 3)
    assert len(all_invoices(engine)) == 5


def test_reimport_with_changed_content_is_refused_row_by_row(engine):
    run_import(engine, csv_bytes([row(i) for i in range(1, 4)]))
    changed = [row(1), row(2, amount=9), row(3, payer_name="別人")]
    exc = rejected(engine, csv_bytes(changed))
    assert codes(exc) == [
        (3, "external_ref", "invoice.external_ref_conflict"),
        (4, "external_ref", "invoice.external_ref_conflict"),
    ]


def test_shift_jis_file_is_read_as_shift_jis(engine):
    rows = [row(1, payer_name="髙橋 ①郎", payer_address="大阪府大阪市北区"), row(2)]
    report = run_import(engine, csv_bytes(rows, encoding="cp932"))
    assert report.encoding == "cp932"
    first = all_invoices(engine)[0].payer(CTX.pii)
    assert (first.name, first.address) == ("髙橋 ①郎", "大阪府大阪市北区")


def test_utf8_with_bom_is_accepted(engine):
    report = run_import(engine, b"\xef\xbb\xbf" + csv_bytes([row(1)]))
    assert (report.encoding, report.issued) == ("utf-8-sig", 1)


def test_japanese_headers_and_tax_names_and_full_width_digits(engine):
    header = ["連携番号", "税目コード", "年度", "期別", "納期限", "金額", "宛名番号", "氏名", "住所"]
    data = "\r\n".join(
        [",".join(header), "R-1,固定資産税,２０２６,1,2026/4/30,１２３００,000001,山田 太郎,東京都"]
    ).encode("cp932")
    run_import(engine, data)
    (invoice,) = all_invoices(engine)
    assert (invoice.tax_code, invoice.amount, invoice.fiscal_year) == ("FIXED_ASSET", 12_300, 2026)


def test_assigned_notice_numbers_are_kept_and_allocation_goes_past_them(engine):
    rows = [
        row(1, notice_number=make_notice_number(2026, 40)),
        row(2),
        row(3, notice_number="2026-00000041-" + make_notice_number(2026, 41)[-1]),
    ]
    run_import(engine, csv_bytes(rows))
    assert [i.sequence for i in all_invoices(engine)] == [40, 42, 41]


def test_every_bad_row_is_reported_with_line_column_and_code(engine):
    run_import(engine, csv_bytes([row(900, notice_number=make_notice_number(2026, 77))]))
    rows = [
        row(1),  # line 2: good
        row(2, tax_code="NOPE"),  # 3
        row(3, amount=0),  # 4
        row(4, amount=-100),  # 5
        row(5, amount="12.5"),  # 6
        row(6, amount="1,000"),  # 7
        row(7, amount=100_000_000),  # 8
        row(8, due_date="2026-02-30"),  # 9
        row(9, due_date="2026-03-31"),  # 10: before the issue date
        row(10, notice_number=make_notice_number(2026, 5)),  # 11
        row(11, notice_number=make_notice_number(2026, 5)),  # 12: repeats line 11
        row(12, notice_number=make_notice_number(2026, 77)),  # 13: used in the database
        row(13, external_ref="TX-000001"),  # 14: repeats line 2
        row(14, payer_name=""),  # 15
        row(15, installment=9),  # 16
        row(16, notice_number="2026-00000001-0"),  # 17: bad check digit
        row(17, fiscal_year="20x6"),  # 18
        row(18, amount=""),  # 19
    ]
    data = csv_bytes(rows) + b"TX-9,,FIXED_ASSET,2026\r\n"  # 20: too few fields
    exc = rejected(engine, data)
    assert codes(exc) == [
        (3, "tax_code", "invoice.unknown_tax_code"),
        (4, "amount", "invoice.amount_zero"),
        (5, "amount", "invoice.amount_negative"),
        (6, "amount", "invoice.amount_not_integer"),
        (7, "amount", "invoice.amount_not_integer"),
        (8, "amount", "invoice.amount_too_large"),
        (9, "due_date", "invoice.invalid_date"),
        (10, "due_date", "invoice.due_before_issue"),
        (12, "notice_number", "invoice.duplicate_notice_number"),
        (13, "notice_number", "invoice.duplicate_notice_number"),
        (14, "external_ref", "invoice_import.duplicate_external_ref"),
        (15, "payer_name", "invoice.missing_value"),
        (16, "installment", "invoice.invalid_installment"),
        (17, "notice_number", "invoice.invalid_notice_number"),
        (18, "fiscal_year", "invoice.invalid_fiscal_year"),
        (19, "amount", "invoice.missing_value"),
        (20, None, "invoice_import.wrong_field_count"),
    ]
    assert exc.error_count == 17
    assert "12" not in " ".join(e.message for e in exc.errors if e.line == 12).split("line")[0]


def test_problems_are_counted_beyond_the_listed_ones(engine):
    exc = rejected(engine, csv_bytes([row(i, amount=0) for i in range(30)]), max_errors=10)
    assert (len(exc.errors), exc.error_count) == (10, 30)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (
            [h for h in HEADER if h not in ("amount", "payer_ref")],
            [
                (1, "amount", "invoice_import.missing_columns"),
                (1, "payer_ref", "invoice_import.missing_columns"),
            ],
        ),
        ([*HEADER, "amount_due"], [(1, "amount_due", "invoice_import.unknown_column")]),
        ([*HEADER, "amount"], [(1, "amount", "invoice_import.duplicate_column")]),
    ],
)
def test_header_problems(engine, header, expected):
    exc = rejected(engine, csv_bytes([row(1)], header=header))
    assert codes(exc) == expected


def test_empty_file_and_header_only_file(engine):
    assert codes(rejected(engine, b"")) == [(0, None, "invoice_import.empty_file")]
    report = run_import(engine, csv_bytes([]))
    assert (report.rows, report.issued) == (0, 0)


def test_undecodable_bytes_are_reported_at_their_line(engine):
    good = csv_bytes([row(i) for i in range(1, 6)])
    lines = good.split(b"\r\n")
    lines[3] = lines[3].replace("者".encode(), b"\xe8\x80")  # a truncated UTF-8 character on line 4
    assert codes(rejected(engine, b"\r\n".join(lines))) == [(4, None, "invoice_import.undecodable")]
    binary = bytes(range(256)) * 4
    assert rejected(engine, csv_bytes([]) + binary).errors[0].code == "invoice_import.undecodable"
    utf16 = csv_bytes([row(1)]).decode().encode("utf-16")
    assert codes(rejected(engine, utf16)) == [(0, None, "invoice_import.unsupported_encoding")]


def test_malformed_csv_is_refused(engine):
    data = csv_bytes([row(1)]) + b'TX-2,,FIXED_ASSET,2026,1,2026-04-30,100,1,"unterminated\r\n'
    exc = rejected(engine, data)
    assert [e.code for e in exc.errors] == ["invoice_import.malformed_csv"]
    # NUL bytes are legal CSV since Python 3.11; the field rules refuse them.
    nul = csv_bytes([row(1)]).replace(b"TX-", b"T\x00X-").replace("納税".encode(), b"\x00")
    assert codes(rejected(engine, nul)) == [
        (2, "external_ref", "invoice.invalid_external_ref"),
        (2, "payer_name", "invoice.invalid_text"),
    ]


def test_quoted_newlines_and_blank_lines_keep_line_numbers_right(engine):
    data = (
        csv_bytes([row(1, payer_address="東京都\n港区")])  # lines 2-3
        + b"\r\n"  # line 4: blank
        + csv_bytes([row(2, amount=0)]).split(b"\r\n", 1)[1]  # line 5
    )
    assert codes(rejected(engine, data)) == [(5, "amount", "invoice.amount_zero")]
    report = run_import(engine, data.replace(b",0,", b",10,"))
    assert report.issued == 2
    assert all_invoices(engine)[0].payer(CTX.pii).address == "東京都\n港区"


class _Endless(io.RawIOBase):
    """A non-seekable stream of ``size`` bytes that counts what was read."""

    def __init__(self, size: int) -> None:
        self.left = size
        self.read_bytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        n = min(len(buffer), self.left)
        buffer[:n] = b"a" * n
        self.left -= n
        self.read_bytes += n
        return n


def test_a_100_mb_stream_is_refused_without_reading_it_all(engine):
    stream = _Endless(100 * 1024 * 1024)
    before = counts(engine)
    with pytest.raises(ImportTooLarge) as caught:
        run_import(engine, stream)
    assert caught.value.code == "invoice_import.too_large"
    assert stream.read_bytes <= 64 * 1024 * 1024 + 1024 * 1024
    assert counts(engine) == before


def test_a_100_mb_file_is_refused_from_its_size(engine, tmp_path):
    path = tmp_path / "big.csv"
    with open(path, "wb") as f:
        f.truncate(100 * 1024 * 1024)  # sparse: no disk used
    with open(path, "rb") as f, pytest.raises(ImportTooLarge):
        run_import(engine, f)


def test_a_non_seekable_stream_is_spooled_and_imported(engine):
    class Pipe(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self.inner = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
            chunk = self.inner.read(min(len(buffer), 7))
            buffer[: len(chunk)] = chunk
            return len(chunk)

    report = run_import(engine, Pipe(csv_bytes([row(i) for i in range(3)])))
    assert report.issued == 3


def test_payment_codes_are_handed_out_after_commit(engine):
    slips = []
    run_import(engine, csv_bytes([row(i) for i in range(1, 4)]), on_issued=slips.append)
    invoices = all_invoices(engine)
    assert [s.external_ref for s in slips] == [i.external_ref for i in invoices]
    for slip, invoice in zip(slips, invoices, strict=True):
        claims = CTX.keyring.verify(slip.code.token)
        assert claims.ref.hex() == invoice.public_id == slip.public_id
        assert slip.code.notice_number == invoice.display_number
    again = []
    run_import(engine, csv_bytes([row(i) for i in range(1, 4)]), on_issued=again.append)
    assert again == []  # a re-import creates nothing, so prints nothing


def test_personal_data_never_reaches_the_logs(engine, caplog):
    caplog.set_level(logging.DEBUG)
    secret = "秘密 花子"
    run_import(engine, csv_bytes([row(1, payer_name=secret, payer_contact="secret@example.jp")]))
    rejected(engine, csv_bytes([row(2, payer_name=secret, amount=0)]))
    with pytest.raises(ImportRejected) as caught:
        run_import(engine, csv_bytes([row(3, payer_name=secret, amount=0)]))
    assert secret not in caplog.text and "secret@example.jp" not in caplog.text
    assert secret not in str(caught.value) and secret not in repr(caught.value.errors)
    with engine.connect() as conn:
        dump = repr(conn.execute(sa.text("SELECT * FROM invoices")).all())
    assert secret not in dump and "secret@example.jp" not in dump
    assert "invoice import done" in caplog.text


def test_get_invoice_after_import(engine):
    run_import(engine, csv_bytes([row(1, notice_number=make_notice_number(2026, 3))]))
    with engine.connect() as conn:
        assert get_invoice(conn, make_notice_number(2026, 3)).external_ref == "TX-000001"


def entry_lines(engine, entry_id):
    with engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                sa.text(
                    "SELECT a.code, l.side, l.amount FROM ledger_lines l JOIN ledger_accounts a "
                    "ON a.id = l.account_id WHERE l.entry_id = :e ORDER BY l.line_no"
                ),
                {"e": entry_id},
            )
        ]


def test_by_default_a_batch_posts_one_entry_with_a_line_pair_per_tax_code(engine):
    rows = [row(1), row(2, tax_code="RESIDENT_COPY", installment=""), row(3)]
    run_import(engine, csv_bytes(rows))
    invoices = all_invoices(engine)
    (entry_id,) = {i.issue_entry_id for i in invoices}
    fixed = rows[0]["amount"] + rows[2]["amount"]
    fee = rows[1]["amount"]
    assert entry_lines(engine, entry_id) == [
        ("1100:FIXED_ASSET", "D", fixed),
        ("4100:FIXED_ASSET", "C", fixed),
        ("1100:RESIDENT_COPY", "D", fee),
        ("4200:RESIDENT_COPY", "C", fee),
    ]


def test_ledger_detail_invoice_posts_one_entry_per_invoice(engine):
    run_import(engine, csv_bytes([row(i) for i in range(1, 4)]), ledger_detail="invoice")
    invoices = all_invoices(engine)
    assert len({i.issue_entry_id for i in invoices}) == 3
    for invoice in invoices:
        assert entry_lines(engine, invoice.issue_entry_id) == [
            ("1100:FIXED_ASSET", "D", invoice.amount),
            ("4100:FIXED_ASSET", "C", invoice.amount),
        ]


def test_many_batches_and_a_partial_reimport(engine, monkeypatch):
    import invoices.importer as importer

    monkeypatch.setattr(importer, "BATCH", 2)
    run_import(engine, csv_bytes([row(i) for i in range(1, 6)]))
    invoices = all_invoices(engine)
    assert len({i.issue_entry_id for i in invoices}) == 3  # batches of 2, 2 and 1
    report = run_import(engine, csv_bytes([row(i) for i in range(1, 9)]))
    assert (report.issued, report.skipped) == (3, 5)
    invoices = all_invoices(engine)
    assert [i.sequence for i in invoices] == list(range(1, 9))
    assert net(engine, "1100:FIXED_ASSET") == sum(1000 + i for i in range(1, 9))
    with engine.connect() as conn:
        assert ledger.verify(conn).ok


def test_import_and_single_issue_agree_on_what_is_the_same_invoice(engine):
    from datetime import date

    from invoices.model import IssueRequest
    from invoices.service import issue_invoice
    from ledger.db import run_transaction

    run_import(engine, csv_bytes([row(1, payer_address=" 東京都\r\n港区 ", payer_contact="")]))
    same = IssueRequest(
        tax_code="FIXED_ASSET",
        fiscal_year=2026,
        installment=1,
        due_date=date(2026, 4, 30),
        amount=1001,
        payer_ref="00000001",
        payer_name="納税 者1",
        payer_address="東京都\n港区",
        issue_date=date(2026, 4, 1),
        external_ref="TX-000001",
    )
    replay = run_transaction(engine, lambda c: issue_invoice(c, CTX, same, actor="api"))
    assert not replay.created
    assert replay.invoice.payer(CTX.pii).address == "東京都\n港区"
