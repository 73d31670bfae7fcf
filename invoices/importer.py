"""Bulk issue from a CSV file exported by the tax system: all rows or none.

Order of work, in ONE write transaction (so what was validated is exactly what is written on):
0. refuse a file over ``max_bytes`` before reading it (a non-seekable stream is spooled to a
   temporary file and refused as soon as it passes the limit); detect the encoding;
1. first pass: parse and validate every row, find duplicates inside the file and clashes with
   invoices already in the database; collect every problem (line, column, stable code);
2. any problem: roll back, raise :class:`ImportRejected` listing them — nothing is written;
3. second pass: read the file again and issue the new rows in batches (``ledger.post_many`` and
   executemany inserts), skipping rows already imported with identical content.

Memory is bounded by the batch size, not the file: rows are streamed twice; what is kept across
the file is the set of external refs and notice numbers seen (for duplicates) and the problems
found (at most ``max_errors`` listed, all counted).

Columns (header row required, names in any order, English or the Japanese aliases below):

    column          required  meaning
    external_ref    yes       the tax system's id for the row (1-64 printable ASCII): re-import key
    notice_number   no        通知書番号 when the tax system assigns it; else allocated
    tax_code        yes       catalog code (FIXED_ASSET …) or its Japanese name (固定資産税 …)
    fiscal_year     yes       年度, e.g. 2026
    installment     depends   期別; required for codes with a fixed schedule
    due_date        yes       納期限, YYYY-MM-DD or YYYY/MM/DD
    amount          yes       yen, digits only, 1..99,999,999
    payer_ref       yes       宛名番号
    payer_name      yes       氏名 (encrypted at rest)
    payer_address   no        住所 (encrypted at rest)
    payer_contact   no        連絡先 (encrypted at rest)
    issue_date      no        発行日; empty means the day of import
"""

from __future__ import annotations

import csv
import io
import logging
import re
import tempfile
import time
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import BinaryIO, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from invoices import numbers
from invoices.bulk import unprepared
from invoices.csv_encoding import detect_encoding
from invoices.errors import ImportRejected, ImportTooLarge, RowError
from invoices.issue import NewInvoice, write_invoices
from invoices.model import InvoiceContext, IssueRequest, PaymentCode, issue_digest, payment_code
from invoices.notice_number import NoticeNumber, parse_notice_number
from invoices.records import check_actor, lock_issuing, same_payer
from invoices.schema import imports, invoices
from invoices.validation import check
from ledger.clock import utc_now
from ledger.db import read_transaction, run_transaction

log = logging.getLogger("nofu.invoices")

LedgerDetail = Literal["batch", "invoice"]
MAX_BYTES = 64 * 1024 * 1024
MAX_ERRORS = 10_000
BATCH = 1_000

COLUMNS = (
    "external_ref",
    "notice_number",
    "tax_code",
    "fiscal_year",
    "installment",
    "due_date",
    "amount",
    "payer_ref",
    "payer_name",
    "payer_address",
    "payer_contact",
    "issue_date",
)
REQUIRED = frozenset(
    {"external_ref", "tax_code", "fiscal_year", "due_date", "amount", "payer_ref", "payer_name"}
)
ALIASES = {
    "連携番号": "external_ref",
    "通知書番号": "notice_number",
    "税目コード": "tax_code",
    "年度": "fiscal_year",
    "期別": "installment",
    "納期限": "due_date",
    "金額": "amount",
    "調定額": "amount",
    "宛名番号": "payer_ref",
    "氏名": "payer_name",
    "住所": "payer_address",
    "連絡先": "payer_contact",
    "発行日": "issue_date",
}
_DIGITS = re.compile(r"[0-9]+")
_SIGNED_INT = re.compile(r"-[0-9]+")
_DATE = re.compile(r"([0-9]{4})[-/]([0-9]{1,2})[-/]([0-9]{1,2})")


@dataclass(frozen=True)
class ImportReport:
    """What an accepted import did.

    Attributes:
        import_id: the ``invoice_imports`` row recording it.
        rows: data rows in the file.
        issued: invoices created.
        skipped: rows already imported with identical content (a re-import).
        encoding: ``utf-8``, ``utf-8-sig`` (with BOM) or ``cp932`` (Shift_JIS).
        file_sha256: digest of the file's bytes.
        seconds: wall time of the import, payment codes included.
    """

    import_id: int
    rows: int
    issued: int
    skipped: int
    encoding: str
    file_sha256: str
    seconds: float


@dataclass(frozen=True)
class IssuedSlip:
    """One newly issued invoice as a print shop needs it (no personal data)."""

    external_ref: str | None
    public_id: str
    code: PaymentCode


@dataclass(frozen=True)
class _Row:
    line: int
    request: IssueRequest
    number: NoticeNumber | None
    digest: str


class _Errors:
    """Problems found, in file order; keeps at most ``limit`` and counts them all."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.items: list[RowError] = []
        self.count = 0

    def add(self, error: RowError) -> None:
        self.count += 1
        if len(self.items) < self.limit:
            self.items.append(error)

    def reject(self) -> ImportRejected:
        return ImportRejected(tuple(self.items), self.count)


# --- the file ---------------------------------------------------------------------------------


def _seekable_source(stream: BinaryIO, max_bytes: int) -> tuple[BinaryIO, int, bool]:
    """(file to read, offset of the data, whether we own a temporary copy)."""
    seekable = False
    try:
        seekable = stream.seekable()
    except (AttributeError, ValueError, OSError):
        seekable = False
    if seekable:
        start = stream.tell()
        size = stream.seek(0, io.SEEK_END) - start
        stream.seek(start)
        if size > max_bytes:
            raise ImportTooLarge(
                f"the file has {size:,} bytes; the limit is {max_bytes:,}", size=size, limit=max_bytes
            )
        return stream, start, False
    spool = tempfile.TemporaryFile()
    total = 0
    try:
        while chunk := stream.read(1 << 20):
            total += len(chunk)
            if total > max_bytes:
                raise ImportTooLarge(
                    f"the file has more than {max_bytes:,} bytes, the limit", limit=max_bytes
                )
            spool.write(chunk)
    except BaseException:
        spool.close()
        raise
    return spool, 0, True


def _reader(f: BinaryIO, start: int, encoding: str) -> tuple[io.TextIOWrapper, Iterator[list[str]]]:
    f.seek(start)
    text = io.TextIOWrapper(f, encoding=encoding, newline="", errors="strict")
    return text, csv.reader(text, strict=True)


def _records(reader: Iterator[list[str]]) -> Iterator[tuple[int, list[str]]]:
    """(line where the record starts, fields); blank lines are skipped."""
    previous = reader.line_num  # type: ignore[attr-defined]
    for fields in reader:
        start = previous + 1
        previous = reader.line_num  # type: ignore[attr-defined]
        if fields and any(field.strip() for field in fields):
            yield start, fields


# --- rows -------------------------------------------------------------------------------------


def _fold(text: str) -> str:
    """Full-width digits and signs to ASCII (NFKC), only where the cell is not ASCII already."""
    return text if text.isascii() else unicodedata.normalize("NFKC", text)


class _Parser:
    """Turns a record into a validated request, or into the problems it has.

    The request it builds is already normalised (``validation.normalize`` leaves it unchanged),
    so its digest is the one ``issue_invoice`` computes for the same invoice.
    """

    def __init__(self, header: list[str], ctx: InvoiceContext, today: date) -> None:
        position = {name: index for index, name in enumerate(header)}
        self.positions = tuple(position.get(name) for name in COLUMNS)
        self.width = len(header)
        self.ctx = ctx
        self.today = today
        self.by_name = {entry.name_ja: entry.code for entry in ctx.catalog}

    def parse(
        self, line: int, fields: list[str], *, trusted: bool = False
    ) -> tuple[_Row | None, list[RowError]]:
        """The row's request, or its problems. ``trusted`` skips the rules: the second pass reads
        the very bytes the first pass validated, under the same lock."""
        if len(fields) != self.width:
            return None, [
                RowError(
                    line,
                    None,
                    "invoice_import.wrong_field_count",
                    f"the row has {len(fields)} fields; the header has {self.width}",
                )
            ]
        (
            external_ref,
            notice,
            tax_code,
            fiscal_year_text,
            installment_text,
            due_text,
            amount_text,
            payer_ref,
            payer_name,
            payer_address,
            payer_contact,
            issue_text,
        ) = ("" if p is None else fields[p].strip() for p in self.positions)
        errors: list[RowError] = []
        failed: set[str] = set()

        def bad(column: str, code: str, message: str) -> None:
            failed.add(column)
            errors.append(RowError(line, column, code, message))

        def number(column: str, text: str, code: str, *, required: bool) -> int | None:
            text = _fold(text)
            if not text:
                if required:
                    bad(column, "invoice.missing_value", f"{column} is required")
                return None
            if _DIGITS.fullmatch(text):
                return int(text)
            if column == "amount" and _SIGNED_INT.fullmatch(text):
                return int(text)  # negative: the amount rule names it
            bad(column, code, f"{column} must be a whole number written with digits only")
            return None

        def day(column: str, text: str, *, required: bool) -> date | None:
            text = _fold(text)
            if not text:
                if required:
                    bad(column, "invoice.missing_value", f"{column} is required")
                return None
            match = _DATE.fullmatch(text)
            try:
                if match is None:
                    raise ValueError
                return date(int(match[1]), int(match[2]), int(match[3]))
            except ValueError:
                bad(
                    column,
                    "invoice.invalid_date",
                    f"{column} is not a real date written YYYY-MM-DD or YYYY/MM/DD",
                )
                return None

        if not external_ref:
            bad("external_ref", "invoice.missing_value", "external_ref is required (the re-import key)")
        tax_code = _fold(tax_code)
        tax_code = self.by_name.get(tax_code, tax_code)
        fiscal_year = number("fiscal_year", fiscal_year_text, "invoice.invalid_fiscal_year", required=True)
        installment = number("installment", installment_text, "invoice.invalid_installment", required=False)
        amount = number("amount", amount_text, "invoice.amount_not_integer", required=True)
        due_date = day("due_date", due_text, required=True)
        issue_date = day("issue_date", issue_text, required=False)
        if "\r" in payer_address:
            payer_address = payer_address.replace("\r\n", "\n").replace("\r", "\n")
        request = IssueRequest(
            tax_code=tax_code,
            fiscal_year=fiscal_year if fiscal_year is not None else -1,
            due_date=due_date or self.today,
            amount=amount if amount is not None else 1,
            payer_ref=payer_ref,
            payer_name=payer_name,
            payer_address=payer_address or None,
            payer_contact=payer_contact or None,
            installment=installment,
            issue_date=issue_date,
            notice_number=_fold(notice) or None,
            external_ref=external_ref or None,
        )
        if trusted:
            parsed_number = parse_notice_number(request.notice_number) if request.notice_number else None
            return _Row(
                line,
                request,
                parsed_number,
                issue_digest(request, parsed_number.digits if parsed_number else None),
            ), []
        parsed_number, problems = check(request, self.ctx.catalog, self.today)
        for problem in problems:
            column = problem.field or ""
            if column in failed:
                continue  # already reported as unreadable
            if problem.code == "invoice.due_before_issue" and failed & {"due_date", "issue_date"}:
                continue
            if problem.code == "invoice.notice_number_year_mismatch" and "fiscal_year" in failed:
                continue
            errors.append(RowError(line, column or None, problem.code, problem.message))
        if errors:
            errors.sort(key=lambda e: COLUMNS.index(e.column) if e.column in COLUMNS else -1)
            return None, errors
        digest = issue_digest(request, parsed_number.digits if parsed_number else None)
        return _Row(line, request, parsed_number, digest), []


def _header(fields: list[str] | None) -> tuple[list[str] | None, list[RowError]]:
    if fields is None:
        return None, [
            RowError(0, None, "invoice_import.empty_file", "the file is empty: a header row is required")
        ]
    names = [ALIASES.get(f.strip(), f.strip().lower()) for f in fields]
    errors = []
    seen: set[str] = set()
    for name, raw in zip(names, fields, strict=True):
        if name not in COLUMNS:
            errors.append(
                RowError(
                    1,
                    raw.strip()[:64] or None,
                    "invoice_import.unknown_column",
                    "unknown column (see docs/invoices.md for the columns)",
                )
            )
        elif name in seen:
            errors.append(RowError(1, name, "invoice_import.duplicate_column", "the column appears twice"))
        seen.add(name)
    missing = sorted(REQUIRED - seen, key=COLUMNS.index)
    for name in missing:
        errors.append(
            RowError(1, name, "invoice_import.missing_columns", f"required column {name} is missing")
        )
    return names, errors


# --- clashes with the database ----------------------------------------------------------------


def _classify(
    conn: Connection, ctx: InvoiceContext, batch: list[_Row]
) -> tuple[list[_Row], int, list[RowError]]:
    """(rows to issue, rows already imported identically, clashes) for a batch of valid rows."""
    refs = [row.request.external_ref for row in batch]
    digits = [row.number.digits for row in batch if row.number is not None]
    with unprepared(conn):
        by_ref = {
            stored.external_ref: stored
            for stored in conn.execute(sa.select(invoices).where(invoices.c.external_ref.in_(refs)))
        }
        taken = set(
            conn.scalars(sa.select(invoices.c.notice_number).where(invoices.c.notice_number.in_(digits)))
            if digits
            else ()
        )
    fresh: list[_Row] = []
    skipped = 0
    clashes: list[RowError] = []
    for row in batch:
        stored = by_ref.get(row.request.external_ref)
        if stored is not None:
            if stored.issue_digest == row.digest and same_payer(ctx.pii, stored, row.request):
                skipped += 1
            else:
                clashes.append(
                    RowError(
                        row.line,
                        "external_ref",
                        "invoice.external_ref_conflict",
                        "an invoice with this external_ref was issued before with other content",
                    )
                )
        elif row.number is not None and row.number.digits in taken:
            clashes.append(
                RowError(
                    row.line,
                    "notice_number",
                    "invoice.duplicate_notice_number",
                    "this notice number is already used by another invoice",
                )
            )
        else:
            fresh.append(row)
    return fresh, skipped, clashes


# --- the two passes ---------------------------------------------------------------------------


@dataclass
class _Plan:
    """What the first pass learnt: counts, and the notice numbers the second pass needs."""

    rows: int = 0
    skipped: int = 0
    to_allocate: dict[int, int] = field(default_factory=dict)  # fiscal year -> rows to number
    highest_assigned: dict[int, int] = field(default_factory=dict)  # fiscal year -> sequence


def _first_pass(
    conn: Connection,
    ctx: InvoiceContext,
    f: BinaryIO,
    start: int,
    encoding: str,
    today: date,
    errors: _Errors,
) -> _Plan:
    plan = _Plan()
    text, reader = _reader(f, start, encoding)
    seen_refs: dict[str, int] = {}
    seen_numbers: dict[str, int] = {}
    batch: list[_Row] = []
    # Problems of the lines since the last database check, so all are reported in line order.
    pending: list[RowError] = []

    def flush() -> None:
        fresh, skipped, clashes = _classify(conn, ctx, batch) if batch else ([], 0, [])
        plan.skipped += skipped
        for problem in sorted(pending + clashes, key=lambda e: e.line):
            errors.add(problem)
        for row in fresh:
            fy = row.request.fiscal_year
            if row.number is None:
                plan.to_allocate[fy] = plan.to_allocate.get(fy, 0) + 1
            else:
                plan.highest_assigned[fy] = max(plan.highest_assigned.get(fy, 0), row.number.sequence)
        batch.clear()
        pending.clear()

    try:
        try:
            header, problems = _header(next(reader, None))
        except csv.Error as exc:
            errors.add(
                RowError(1, None, "invoice_import.malformed_csv", f"the header is not valid CSV ({exc})")
            )
            return plan
        for problem in problems:
            errors.add(problem)
        if header is None or problems:
            return plan
        parser = _Parser(header, ctx, today)
        records = _records(reader)
        while True:
            try:
                line, fields = next(records)
            except StopIteration:
                break
            except csv.Error as exc:
                line_num = reader.line_num  # type: ignore[attr-defined]
                pending.append(
                    RowError(
                        line_num, None, "invoice_import.malformed_csv", f"not valid CSV from here on ({exc})"
                    )
                )
                break
            plan.rows += 1
            row, problems = parser.parse(line, fields)
            pending.extend(problems)
            if row is None:
                continue
            ref = row.request.external_ref
            assert ref is not None
            duplicate = False
            if ref in seen_refs:
                pending.append(
                    RowError(
                        line,
                        "external_ref",
                        "invoice_import.duplicate_external_ref",
                        f"external_ref repeats line {seen_refs[ref]}",
                    )
                )
                duplicate = True
            else:
                seen_refs[ref] = line
            if row.number is not None:
                if row.number.digits in seen_numbers:
                    pending.append(
                        RowError(
                            line,
                            "notice_number",
                            "invoice.duplicate_notice_number",
                            f"notice_number repeats line {seen_numbers[row.number.digits]}",
                        )
                    )
                    duplicate = True
                else:
                    seen_numbers[row.number.digits] = line
            if not duplicate:
                batch.append(row)
                if len(batch) >= BATCH:
                    flush()
        flush()
        return plan
    finally:
        text.detach()


def _second_pass(
    conn: Connection,
    ctx: InvoiceContext,
    f: BinaryIO,
    start: int,
    encoding: str,
    today: date,
    plan: _Plan,
    *,
    actor: str,
    import_id: int,
    ledger_detail: LedgerDetail,
) -> int:
    next_sequence = {fy: numbers.allocate(conn, fy, count) for fy, count in sorted(plan.to_allocate.items())}
    text, reader = _reader(f, start, encoding)
    issued = 0
    batches = 0
    now = utc_now()
    try:
        parser = _Parser(_header(next(reader))[0] or [], ctx, today)
        batch: list[_Row] = []

        def flush() -> int:
            if plan.skipped:
                fresh, _, clashes = _classify(conn, ctx, batch)
                if clashes:  # cannot happen: the first pass saw the same data under the same lock
                    raise AssertionError(f"import changed between passes at line {clashes[0].line}")
            else:
                fresh = batch  # the first pass found none of the rows in the database
            items = []
            for row in fresh:
                fy = row.request.fiscal_year
                if row.number is not None:
                    sequence = row.number.sequence
                else:
                    sequence = next_sequence[fy]
                    next_sequence[fy] += 1
                items.append(NewInvoice(row.request, row.digest, fy, sequence))
            nonlocal batches
            batch_entry = None
            if ledger_detail == "batch" and items:
                batches += 1
                batch_entry = (
                    f"invoice_import:{import_id}:batch:{batches}",
                    f"調定 一括取込 #{import_id} 第{batches}群 {len(items)}件",
                )
            write_invoices(
                conn,
                ctx,
                items,
                actor=actor,
                today=today,
                now=now,
                import_id=import_id,
                batch_entry=batch_entry,
            )
            batch.clear()
            return len(items)

        for line, fields in _records(reader):
            row, _ = parser.parse(line, fields, trusted=True)
            assert row is not None
            batch.append(row)
            if len(batch) >= BATCH:
                issued += flush()
        if batch:
            issued += flush()
    finally:
        text.detach()
    return issued


def import_invoices_csv(
    engine: Engine,
    stream: BinaryIO,
    *,
    ctx: InvoiceContext,
    actor: str,
    max_bytes: int = MAX_BYTES,
    max_errors: int = MAX_ERRORS,
    on_issued: Callable[[IssuedSlip], None] | None = None,
    ledger_detail: LedgerDetail = "batch",
) -> ImportReport:
    """Issue every row of a CSV file in one transaction, or nothing.

    ``ledger_detail`` says how the 調定 is posted: ``"batch"`` (default) posts one entry per
    batch of up to 1,000 invoices with a receivable and a revenue line per tax code (the way a
    financial system takes 調定 totals from the tax system; every invoice names its entry), and
    ``"invoice"`` one entry per invoice, as a single issue does.

    Raises :class:`ImportTooLarge` past ``max_bytes`` and :class:`ImportRejected` listing every
    problem (line, column, code) when any row is bad; in both cases nothing is written.
    Re-importing a file issues nothing twice: rows already imported with identical content are
    skipped and counted. After the commit, ``on_issued`` (with ``ctx.keyring``) receives the
    payment code of every invoice this import created, in file order, streamed from the database.
    """
    actor = check_actor(actor)
    if ledger_detail not in ("batch", "invoice"):
        raise ValueError("ledger_detail must be 'batch' or 'invoice'")
    began = time.perf_counter()
    f, start, owned = _seekable_source(stream, max_bytes)
    try:
        detected = detect_encoding(f, start)
        if detected.error is not None:
            raise ImportRejected((detected.error,), 1)
        encoding = detected.encoding
        assert encoding is not None
        today = ctx.today()

        def work(conn: Connection) -> tuple[int, _Plan, int]:
            lock_issuing(conn)
            errors = _Errors(max_errors)
            plan = _first_pass(conn, ctx, f, start, encoding, today, errors)
            if errors.count:
                raise errors.reject()
            for fy, high in sorted(plan.highest_assigned.items()):
                numbers.note_assigned(conn, fy, high)
            to_issue = plan.rows - plan.skipped
            import_id = conn.execute(
                imports.insert()
                .values(
                    file_sha256=detected.sha256,
                    encoding=encoding,
                    actor=actor,
                    rows_total=plan.rows,
                    rows_issued=to_issue,
                    rows_skipped=plan.skipped,
                    created_at=utc_now(),
                )
                .returning(imports.c.id)
            ).scalar_one()
            if not to_issue:  # a re-import of a file already fully imported: nothing to read again
                return import_id, plan, 0
            issued = _second_pass(
                conn,
                ctx,
                f,
                start,
                encoding,
                today,
                plan,
                actor=actor,
                import_id=import_id,
                ledger_detail=ledger_detail,
            )
            if issued != to_issue:
                raise AssertionError(f"issued {issued} rows, planned {to_issue}")
            return import_id, plan, issued

        try:
            import_id, plan, issued = run_transaction(engine, work)
        except ImportRejected as exc:
            log.warning(
                "invoice import refused",
                extra={"actor": actor, "problems": exc.error_count, "file_sha256": detected.sha256},
            )
            raise
    finally:
        if owned:
            f.close()
    if on_issued is not None and ctx.keyring is not None:
        _emit_codes(engine, ctx, import_id, on_issued)
    report = ImportReport(
        import_id=import_id,
        rows=plan.rows,
        issued=issued,
        skipped=plan.skipped,
        encoding=encoding,
        file_sha256=detected.sha256,
        seconds=time.perf_counter() - began,
    )
    log.info(
        "invoice import done",
        extra={
            "actor": actor,
            "import_id": import_id,
            "issued": issued,
            "skipped": plan.skipped,
            "encoding": encoding,
        },
    )
    return report


def _emit_codes(
    engine: Engine, ctx: InvoiceContext, import_id: int, sink: Callable[[IssuedSlip], None]
) -> None:
    """Sign each new invoice's payment code, a page of rows at a time (keyset on id)."""
    assert ctx.keyring is not None
    after = 0
    columns = (
        invoices.c.id,
        invoices.c.public_id,
        invoices.c.notice_number,
        invoices.c.fiscal_year,
        invoices.c.sequence,
        invoices.c.token_generation,
        invoices.c.external_ref,
    )
    while True:
        with read_transaction(engine) as conn:
            rows = conn.execute(
                sa.select(*columns)
                .where(invoices.c.import_id == import_id, invoices.c.id > after)
                .order_by(invoices.c.id)
                .limit(BATCH)
            ).all()
        if not rows:
            return
        for row in rows:
            display = f"{row.fiscal_year:04d}-{row.sequence:08d}-{row.notice_number[-1]}"
            sink(
                IssuedSlip(
                    row.external_ref,
                    row.public_id,
                    payment_code(ctx.keyring, row.public_id, display, row.token_generation),
                )
            )
        after = rows[-1].id
