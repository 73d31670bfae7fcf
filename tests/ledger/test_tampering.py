"""Tamper evidence: rows edited directly in the database, past the append-only triggers, are
named by ``verify`` (the entry and the kind of problem); undoing the edit makes it clean again.

The tamperer has superuser rights on PostgreSQL (``session_replication_role = replica``) and
drops and recreates the triggers on SQLite: see ``support.past_the_guards``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

import ledger as L
from ledger.db import run_transaction
from ledger.schema import entries, lines
from tests.ledger.support import DAY, account_id, entry, past_the_guards, transfer

JOURNAL = ("ledger_entries", "ledger_lines", "ledger_period_closes")
D0, D1, D2 = DAY - timedelta(days=3), DAY - timedelta(days=1), DAY


def seed(engine: Engine) -> None:
    """Five entries; a close before the first (anchored at genesis) and one after entry 3."""
    run_transaction(engine, lambda c: L.close_day(c, D0, closed_by="test"))
    requests = [
        transfer("e1", "1100", "4100", 12_300, day=D1),
        transfer("e2", "1200", "1100", 12_300, day=D1),
        entry("e3", L.Line.debit("1300", 12_000), L.Line.debit("5100", 300), L.Line.credit("1200", 12_300), day=D1),
    ]
    run_transaction(engine, lambda c: L.post_many(c, requests))
    run_transaction(engine, lambda c: L.close_day(c, D1, closed_by="test"))
    run_transaction(engine, lambda c: L.post(c, transfer("e4", "1100", "4200", 5_000, day=D2)))
    run_transaction(engine, lambda c: L.post(c, transfer("e5", "1200", "1100", 5_000, day=D2)))


def run_sql(*statements: str) -> Callable[[Connection], None]:
    def work(conn: Connection) -> None:
        for statement in statements:
            conn.exec_driver_sql(statement)

    return work


@dataclass
class Deleted:
    """Delete entries (and their lines) by id, keeping the rows to put them back."""

    ids: tuple[int, ...]
    saved_entries: list | None = None
    saved_lines: list | None = None

    def delete(self, conn: Connection) -> None:
        self.saved_entries = [dict(r) for r in conn.execute(sa.select(entries).where(entries.c.id.in_(self.ids))).mappings()]
        self.saved_lines = [dict(r) for r in conn.execute(sa.select(lines).where(lines.c.entry_id.in_(self.ids))).mappings()]
        conn.execute(lines.delete().where(lines.c.entry_id.in_(self.ids)))
        conn.execute(entries.delete().where(entries.c.id.in_(self.ids)))

    def restore(self, conn: Connection) -> None:
        conn.execute(lines.insert(), self.saved_lines)
        conn.execute(entries.insert(), self.saved_entries)


Edit = Callable[[Connection], None]


def tamper_cases(conn: Connection) -> list[tuple[str, Edit, Edit | None, str, int | None]]:
    """(name, tamper, undo, first problem kind, entry it names)."""
    bank, unused = account_id(conn, "1300"), account_id(conn, "2100")
    middle, last = Deleted((3,)), Deleted((5,))
    return [
        ("line amount", run_sql("UPDATE ledger_lines SET amount = amount + 1 WHERE entry_id = 3 AND line_no = 1"),
         run_sql("UPDATE ledger_lines SET amount = amount - 1 WHERE entry_id = 3 AND line_no = 1"), "hash_mismatch", 3),
        ("balanced amount edit", run_sql("UPDATE ledger_lines SET amount = amount + 100 WHERE entry_id = 2"),
         run_sql("UPDATE ledger_lines SET amount = amount - 100 WHERE entry_id = 2"), "hash_mismatch", 2),
        ("line moved to another account",
         run_sql(f"UPDATE ledger_lines SET account_id = {unused} WHERE entry_id = 3 AND account_id = {bank}"),
         run_sql(f"UPDATE ledger_lines SET account_id = {bank} WHERE entry_id = 3 AND line_no = 1"), "hash_mismatch", 3),
        ("line side flipped", run_sql("UPDATE ledger_lines SET side = 'C' WHERE entry_id = 4 AND side = 'D'"),
         run_sql("UPDATE ledger_lines SET side = 'D' WHERE entry_id = 4 AND line_no = 1"), "hash_mismatch", 4),
        ("description", run_sql("UPDATE ledger_entries SET description = 'nothing to see' WHERE id = 4"),
         run_sql("UPDATE ledger_entries SET description = 'test entry' WHERE id = 4"), "hash_mismatch", 4),
        ("effective date", run_sql("UPDATE ledger_entries SET effective_date = '2026-05-01' WHERE id = 5"),
         run_sql(f"UPDATE ledger_entries SET effective_date = '{D2.isoformat()}' WHERE id = 5"), "hash_mismatch", 5),
        ("line date", run_sql("UPDATE ledger_lines SET effective_date = '2026-05-01' WHERE entry_id = 4"),
         run_sql(f"UPDATE ledger_lines SET effective_date = '{D2.isoformat()}' WHERE entry_id = 4"),
         "line_date_mismatch", 4),
        ("running balance", run_sql("UPDATE ledger_lines SET balance_after = balance_after + 7 WHERE entry_id = 2 AND line_no = 1"),
         run_sql("UPDATE ledger_lines SET balance_after = balance_after - 7 WHERE entry_id = 2 AND line_no = 1"),
         "line_running_balance", 2),
        ("idempotency digest", run_sql("UPDATE ledger_entries SET content_digest = '" + "0" * 64 + "' WHERE id = 2"),
         None, "digest_mismatch", 2),
        ("entry deleted from the middle", middle.delete, middle.restore, "chain_gap", 4),
        ("last entry deleted", last.delete, last.restore, "head_mismatch", None),
        ("account balance forged", run_sql("UPDATE ledger_accounts SET balance = balance + 1000 WHERE code = '1300'"),
         run_sql("UPDATE ledger_accounts SET balance = balance - 1000 WHERE code = '1300'"), "account_balance", None),
        ("close anchor hash", run_sql("UPDATE ledger_period_closes SET head_hash = '" + "f" * 64 + "' WHERE head_seq = 3"),
         None, "anchor_mismatch", 3),
        ("close anchor moved", run_sql("UPDATE ledger_period_closes SET head_seq = 4 WHERE head_seq = 3"),
         run_sql("UPDATE ledger_period_closes SET head_seq = 3 WHERE head_seq = 4"), "anchor_mismatch", 4),
        # Moved back, the close also claims entry 3 came after it: entry 3 is then "backdated".
        ("close anchor moved back", run_sql("UPDATE ledger_period_closes SET head_seq = 2 WHERE head_seq = 3"),
         run_sql("UPDATE ledger_period_closes SET head_seq = 3 WHERE head_seq = 2"), "closed_period_entry", 3),
        ("genesis anchor hash", run_sql("UPDATE ledger_period_closes SET head_hash = '" + "e" * 64 + "' WHERE head_seq = 0"),
         run_sql("UPDATE ledger_period_closes SET head_hash = '" + "0" * 64 + "' WHERE head_seq = 0"), "anchor_mismatch", 0),
    ]


def test_verify_names_each_direct_edit(engine: Engine) -> None:
    seed(engine)
    with engine.begin() as conn:
        assert L.verify(conn).ok
        cases = tamper_cases(conn)
        original = {
            "digest": conn.scalar(sa.select(entries.c.content_digest).where(entries.c.id == 2)),
            "anchor": conn.scalar(sa.text("SELECT head_hash FROM ledger_period_closes WHERE head_seq = 3")),
        }
    undo_for = {
        "idempotency digest": run_sql(f"UPDATE ledger_entries SET content_digest = '{original['digest']}' WHERE id = 2"),
        "close anchor hash": run_sql(f"UPDATE ledger_period_closes SET head_hash = '{original['anchor']}' WHERE head_seq = 3"),
    }
    for name, tamper, undo, kind, entry_id in cases:
        with past_the_guards(engine, *JOURNAL) as conn:
            tamper(conn)
        with engine.begin() as conn:
            report = L.verify(conn)
        assert not report.ok, name
        first = report.first_problem
        assert first is not None and (first.kind, first.entry_id) == (kind, entry_id), (name, report.problems)
        with past_the_guards(engine, *JOURNAL) as conn:
            (undo_for[name] if undo is None else undo)(conn)
        with engine.begin() as conn:
            assert L.verify(conn).ok, f"{name}: undoing the edit should leave a clean ledger"


def test_an_unbalancing_edit_is_reported_as_unbalanced_too(engine: Engine) -> None:
    seed(engine)
    with past_the_guards(engine, *JOURNAL) as conn:
        conn.exec_driver_sql("UPDATE ledger_lines SET amount = 1 WHERE entry_id = 1 AND side = 'D'")
    with engine.begin() as conn:
        report = L.verify(conn)
    kinds = {(p.kind, p.entry_id) for p in report.problems}
    assert {("hash_mismatch", 1), ("unbalanced", 1), ("line_running_balance", 1)} <= kinds
    assert ("account_balance", None) in kinds
    # Later entries are untouched and are not blamed for the hash.
    assert not any(kind == "hash_mismatch" and entry_id != 1 for kind, entry_id in kinds)


def test_a_rewritten_hash_breaks_the_link_to_the_next_entry(engine: Engine) -> None:
    # The tamperer edits an entry and recomputes its hash: the next entry's prev_hash still
    # points at the old one.
    seed(engine)
    with past_the_guards(engine, *JOURNAL) as conn:
        conn.exec_driver_sql("UPDATE ledger_entries SET description = 'edited', hash = '" + "a" * 64 + "' WHERE id = 4")
    with engine.begin() as conn:
        report = L.verify(conn)
    kinds = [(p.kind, p.entry_id) for p in report.problems]
    assert kinds[0] == ("hash_mismatch", 4)
    assert ("prev_hash_mismatch", 5) in kinds


def test_an_entry_slipped_into_a_closed_period_is_named(engine: Engine) -> None:
    # With the chain-head guard bypassed, the period is reopened, an entry is posted through the
    # ledger itself (so it is properly chained) and the period closed again: the close records
    # that day D1 was closed after entry 3, so an entry after 3 dated on or before D1 is a breach.
    seed(engine)
    with past_the_guards(engine, "ledger_chain_head") as conn:
        conn.exec_driver_sql("UPDATE ledger_chain_head SET closed_through = NULL")
    run_transaction(engine, lambda c: L.post(c, transfer("backdated", "1100", "4100", 777, day=D1)))
    with past_the_guards(engine, "ledger_chain_head") as conn:
        conn.exec_driver_sql(f"UPDATE ledger_chain_head SET closed_through = '{D1.isoformat()}'")
    with engine.begin() as conn:
        report = L.verify(conn)
    assert [(p.kind, p.entry_id) for p in report.problems] == [("closed_period_entry", 6)]
