"""The migration (DDL source of truth) and ``reconciliation.schema`` agree, and the database
itself enforces what the reconciliation promises: each record matches at most once, one break
per day and key, a resolved break has its reason, the queue's history is append-only."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError

from reconciliation import schema

TABLES = (schema.provider_txns, schema.payouts, schema.bank_imports, schema.bank_lines, schema.matches,
          schema.payout_matches, schema.runs, schema.breaks, schema.break_notes)  # fmt: skip
NOW = datetime(2026, 6, 2, tzinfo=UTC)
DAY = date(2026, 6, 1)


def test_migration_matches_the_table_definitions(engine: Engine) -> None:
    inspector = sa.inspect(engine)
    for table in TABLES:
        columns = {c["name"]: c for c in inspector.get_columns(table.name)}
        assert list(columns) == [c.name for c in table.columns], table.name
        for column in table.columns:
            assert columns[column.name]["nullable"] == column.nullable, (table.name, column.name)
        assert set(inspector.get_pk_constraint(table.name)["constrained_columns"]) == {c.name for c in table.primary_key.columns}
        reflected_fks = {(tuple(fk["constrained_columns"]), fk["referred_table"]) for fk in inspector.get_foreign_keys(table.name)}
        assert reflected_fks == {((fk.parent.name,), fk.column.table.name) for fk in table.foreign_keys}, table.name
        reflected_unique = {tuple(u["column_names"]) for u in inspector.get_unique_constraints(table.name)}
        defined_unique = {tuple(c.name for c in con.columns) for con in table.constraints if isinstance(con, sa.UniqueConstraint)}
        assert defined_unique | {(c.name,) for c in table.columns if c.unique} <= reflected_unique, table.name
        reflected_indexes = {i["name"]: tuple(i["column_names"]) for i in inspector.get_indexes(table.name)}
        for index in table.indexes:
            assert reflected_indexes.get(index.name) == tuple(c.name for c in index.columns), index.name


def _txn(conn: sa.Connection, txn_id: str) -> None:
    conn.execute(schema.provider_txns.insert().values(
        id=txn_id, type="charge", amount=1000, fee=36, net=964, currency="jpy", created_at=NOW, business_date=DAY,
        created_hour=9, match_ref=f"pi_{txn_id}", pulled_at=NOW,
    ))  # fmt: skip


def _match(conn: sa.Connection, ref: str, txn_id: str) -> None:
    conn.execute(schema.matches.insert().values(business_date=DAY, match_ref=ref, provider_txn_id=txn_id, rule="key",
                                                ledger_amount=1000, provider_amount=1000))  # fmt: skip


def test_a_record_matches_at_most_once_whatever_the_code_does(engine: Engine) -> None:
    with engine.begin() as conn:
        _txn(conn, "t1")
        _txn(conn, "t2")
        _match(conn, "pi_a", "t1")
    for ref, txn in (("pi_a", "t2"), ("pi_b", "t1")):  # the same ledger item again; the same provider record again
        with pytest.raises(IntegrityError), engine.begin() as conn:
            _match(conn, ref, txn)


def test_a_payout_and_a_bank_line_match_at_most_once(engine: Engine) -> None:
    with engine.begin() as conn:
        for po in ("po_1", "po_2"):
            conn.execute(schema.payouts.insert().values(id=po, amount=964, currency="jpy", status="paid", created_at=NOW,
                                                        arrival_date=DAY, pulled_at=NOW))  # fmt: skip
        imported = conn.execute(schema.bank_imports.insert().values(sha256="x", format="csv", account="designated",
                                lines_total=2, lines_new=2, imported_by="t", imported_at=NOW)).inserted_primary_key[0]  # fmt: skip
        ids = [conn.execute(schema.bank_lines.insert().values(account="designated", line_key=f"k{i}", value_date=DAY,
               amount=964, description="STRIPE", import_id=imported)).inserted_primary_key[0] for i in (1, 2)]  # fmt: skip
        conn.execute(schema.payout_matches.insert().values(business_date=DAY, payout_id="po_1", bank_line_id=ids[0],
                                                           rule="same_day", days_apart=0))  # fmt: skip
    for payout, line in (("po_1", ids[1]), ("po_2", ids[0])):
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(schema.payout_matches.insert().values(business_date=DAY, payout_id=payout, bank_line_id=line,
                                                               rule="same_day", days_apart=0))  # fmt: skip


def _break(conn: sa.Connection, key: str, **values: object) -> int:
    row = {"business_date": DAY, "break_key": key, "category": "missing_in_ledger", "status": "open", "amount": 1,
           "detail": "x", "detected": True, "first_run": 1, "last_run": 1, "version": 1, "created_at": NOW,
           "updated_at": NOW, **values}  # fmt: skip
    return int(conn.execute(schema.breaks.insert().values(**row)).inserted_primary_key[0])


def test_breaks_are_one_per_day_and_key_and_a_resolution_needs_its_reason(engine: Engine) -> None:
    with engine.begin() as conn:
        break_id = _break(conn, "k")
    with pytest.raises(IntegrityError), engine.begin() as conn:
        _break(conn, "k")
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(schema.breaks.update().where(schema.breaks.c.id == break_id).values(status="resolved"))
    with pytest.raises(IntegrityError), engine.begin() as conn:
        _break(conn, "other", category="lost")


def test_the_queue_history_is_append_only(engine: Engine) -> None:
    with engine.begin() as conn:
        break_id = _break(conn, "k")
        conn.execute(schema.break_notes.insert().values(break_id=break_id, kind="comment", actor_id="staff:x",
                                                        actor_name="x", body="確認中", created_at=NOW))  # fmt: skip
    for statement in (schema.break_notes.update().values(body="改ざん"), schema.break_notes.delete()):
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(statement)
