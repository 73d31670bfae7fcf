"""The database enforces the books by itself: raw SQL that skips every Python check is refused.

Each refusal runs in its own transaction and the database is compared before and after. The
first test is the control: the raw-SQL writer used by the refusals does write a well-formed entry,
so a refusal below is the database's doing, not a broken statement.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

import ledger as L
from ledger.db import is_sqlite, run_transaction
from ledger.schema import entries, lines
from tests.ledger.support import DAY, account_id, head_seq, insert_raw_entry, snapshot, transfer


def refused(engine: Engine, work: Callable[[Connection], object], match: str) -> None:
    """``work`` fails with an integrity error (at the statement or at commit); nothing changes."""
    before = snapshot(engine)
    with pytest.raises(sa.exc.IntegrityError, match=match):
        with engine.begin() as conn:
            work(conn)
    assert snapshot(engine) == before


def sql(statement: str) -> Callable[[Connection], object]:
    return lambda conn: conn.exec_driver_sql(statement)


@pytest.fixture
def books(engine: Engine) -> Engine:
    """Two posted entries and one closed day (2026-03-31) to attack."""
    run_transaction(engine, lambda c: L.post(c, transfer("e1", "1100", "4100", 500, day=DAY - timedelta(days=1))))
    run_transaction(engine, lambda c: L.close_day(c, DAY - timedelta(days=1), closed_by="test"))
    run_transaction(engine, lambda c: L.post(c, transfer("e2", "1200", "1100", 300)))
    return engine


def ids(conn: Connection) -> dict[str, int]:
    return {code: account_id(conn, code) for code in ("1100", "1200", "4100", "5100")}


def test_control_a_well_formed_raw_entry_is_accepted(books: Engine) -> None:
    with books.begin() as conn:
        a = ids(conn)
        insert_raw_entry(conn, head_seq(conn) + 1, [(a["1100"], "D", 700), (a["4100"], "C", 700)])
    with books.begin() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(entries)) == 3
        # The database accepted it; the audit notices it bypassed the ledger (made-up hash).
        assert not L.verify(conn).ok


def test_journal_rows_cannot_be_updated_or_deleted(books: Engine) -> None:
    for statement in (
        "UPDATE ledger_entries SET description = 'edited' WHERE id = 1",
        "UPDATE ledger_entries SET idempotency_key = 'other' WHERE id = 2",
        "UPDATE ledger_lines SET amount = amount + 1 WHERE entry_id = 1",
        "UPDATE ledger_lines SET line_no = line_no",  # even a no-op update
        "UPDATE ledger_period_closes SET closed_by = 'someone else'",
        "DELETE FROM ledger_entries WHERE id = 2",
        "DELETE FROM ledger_lines WHERE entry_id = 2",
        "DELETE FROM ledger_period_closes",
    ):
        refused(books, sql(statement), "append-only")


@pytest.mark.postgres
def test_truncate_is_refused_on_postgresql(pg_engine: Engine) -> None:
    run_transaction(pg_engine, lambda c: L.post(c, transfer("e1", "1100", "4100", 500)))
    run_transaction(pg_engine, lambda c: L.close_day(c, DAY, closed_by="test"))
    # CASCADE, or the foreign keys would refuse before the triggers are asked.
    for table in ("ledger_entries", "ledger_lines", "ledger_period_closes", "ledger_accounts", "ledger_chain_head"):
        refused(pg_engine, sql(f"TRUNCATE {table} CASCADE"), "refused")
    for table in ("ledger_lines", "ledger_period_closes"):  # nothing references these
        refused(pg_engine, sql(f"TRUNCATE {table}"), "refused")


def test_accounts_cannot_be_deleted_renamed_or_reopened(books: Engine) -> None:
    refused(books, sql("DELETE FROM ledger_accounts WHERE code = '5100'"), "ledger")  # never used
    refused(books, sql("UPDATE ledger_accounts SET code = '5101' WHERE code = '5100'"), "identity")
    refused(books, sql("UPDATE ledger_accounts SET normal_side = 'credit' WHERE code = '5100'"), "identity")
    run_transaction(books, lambda c: L.close_account(c, "5100"))
    refused(books, sql("UPDATE ledger_accounts SET status = 'open' WHERE code = '5100'"), "reopen")


def test_chain_head_only_moves_forward(books: Engine) -> None:
    refused(books, sql("UPDATE ledger_chain_head SET seq = 1"), "forward")
    refused(books, sql("UPDATE ledger_chain_head SET closed_through = NULL"), "forward")
    refused(books, sql("UPDATE ledger_chain_head SET closed_through = '2026-01-01'"), "forward")
    refused(books, sql("DELETE FROM ledger_chain_head"), "chain head|refused")


# Raw entries the database must refuse: name -> (legs as (account code, side, amount), options,
# what the error says). Each is written as lines then the entry, exactly as the control above.
RAW_REFUSALS: dict[str, tuple[list[tuple[str, str, object]], dict[str, object], str]] = {
    "unbalanced": ([("1100", "D", 500), ("4100", "C", 499)], {}, "debits equal"),
    "no lines": ([], {}, "two or more lines"),
    "one line": ([("1100", "D", 500)], {}, "two or more lines"),
    # Σ signed = 0 needs debits AND credits: 500 D + 500 D is not balanced.
    "same side": ([("1100", "D", 500), ("4100", "D", 500)], {}, "debits equal"),
    "lines without their entry": ([("1100", "D", 5), ("4100", "C", 5)], {"with_entry": False}, "(?i)foreign key"),
    "closed account": ([("5100", "D", 500), ("1200", "C", 500)], {}, "closed account|open account"),
    "closed day": ([("1100", "D", 5), ("4100", "C", 5)], {"day": DAY - timedelta(days=1)}, "closed period"),
    "long closed day": ([("1100", "D", 5), ("4100", "C", 5)], {"day": DAY - timedelta(days=30)}, "closed period"),
    "zero amount": ([("1100", "D", 0), ("4100", "C", 0)], {}, "amount"),
    "negative amount": ([("1100", "D", -500), ("4100", "C", -500)], {}, "amount"),
    "amount above MAX_AMOUNT": ([("1100", "D", L.MAX_AMOUNT + 1), ("4100", "C", L.MAX_AMOUNT + 1)], {}, "amount"),
    "reused idempotency key": ([("1100", "D", 5), ("4100", "C", 5)], {"key": "e2"}, "idempotency_key|UNIQUE|unique"),
}
# SQLite would store 1.5 or text in a BIGINT column; the migration adds typeof() checks there.
# (PostgreSQL's BIGINT cannot hold anything but an integer.)
SQLITE_ONLY: dict[str, tuple[list[tuple[str, str, object]], dict[str, object], str]] = {
    f"non-integer {value!r}": ([("1100", "D", value), ("4100", "C", value)], {}, "amount")
    for value in (1.5, "500.5", "five hundred", b"\x01\xf4")
}


def test_raw_entries_breaking_the_rules_are_refused(books: Engine) -> None:
    run_transaction(books, lambda c: L.close_account(c, "5100"))
    cases = {**RAW_REFUSALS, **(SQLITE_ONLY if is_sqlite(books) else {})}
    for name, (legs, options, match) in cases.items():

        def work(conn: Connection, legs: list[tuple[str, str, object]] = legs, options: dict[str, object] = options) -> None:
            a = ids(conn)
            insert_raw_entry(conn, head_seq(conn) + 1, [(a[code], side, amount) for code, side, amount in legs], **options)  # type: ignore[arg-type]

        try:
            refused(books, work, match)
        except BaseException as exc:  # name the case that let the database down
            raise AssertionError(f"case {name!r}: {exc}") from exc


def test_lines_cannot_be_added_to_a_written_entry(books: Engine) -> None:
    # Even a balanced pair, which would keep the entry balanced, is refused.
    def work(conn: Connection) -> None:
        a = ids(conn)
        conn.execute(
            lines.insert(),
            [
                {"entry_id": 2, "line_no": 3 + n, "account_id": a[code], "side": side, "amount": 100,
                 "effective_date": DAY, "balance_after": 0, "account_version": 900 + n}
                for n, (code, side) in enumerate((("1100", "D"), ("4100", "C")))
            ],
        )

    refused(books, work, "written entry|new entry")


def test_a_second_reversal_of_one_entry_is_refused(books: Engine) -> None:
    run_transaction(books, lambda c: L.reverse(c, 2, effective_date=DAY, idempotency_key="r1"))

    def second_reversal(conn: Connection) -> None:
        a = ids(conn)
        n = head_seq(conn) + 1
        insert_raw_entry(conn, n, [(a["1100"], "D", 300), (a["1200"], "C", 300)], with_entry=False)
        conn.execute(
            entries.insert().values(
                id=n, effective_date=DAY, recorded_at=sa.func.now(), description="r", source_ref="r",
                idempotency_key="r2", content_digest="0" * 64, reverses_entry_id=2, prev_hash="0" * 64,
                hash="f" * 64,
            )
        )

    refused(books, second_reversal, "reverses_entry_id|UNIQUE|unique")
