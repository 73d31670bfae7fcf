"""The migration (DDL source of truth) and ``gateway.payments.schema`` agree, and the database
itself refuses what the payment rules forbid — even to code that bypasses the service."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from gateway.payments import PaymentService
from gateway.payments import schema
from tests.payments.support import RETURN_URL, clock, issue, sandbox, service  # noqa: F401 (fixtures)

TABLES = (schema.attempts, schema.overpayments, schema.refunds, schema.receipts)


def test_migration_matches_the_table_definitions(engine: Engine) -> None:
    inspector = sa.inspect(engine)
    for table in TABLES:
        columns = {c["name"]: c for c in inspector.get_columns(table.name)}
        assert list(columns) == [c.name for c in table.columns], table.name
        for column in table.columns:
            assert columns[column.name]["nullable"] == column.nullable, (table.name, column.name)
        reflected_fks = {
            (tuple(fk["constrained_columns"]), fk["referred_table"]) for fk in inspector.get_foreign_keys(table.name)
        }
        assert reflected_fks == {((fk.parent.name,), fk.column.table.name) for fk in table.foreign_keys}, table.name
        reflected_unique = {tuple(u["column_names"]) for u in inspector.get_unique_constraints(table.name)}
        assert {(c.name,) for c in table.columns if c.unique} <= reflected_unique, table.name
        reflected_indexes = {i["name"]: (tuple(i["column_names"]), bool(i["unique"])) for i in inspector.get_indexes(table.name)}
        for index in table.indexes:
            assert reflected_indexes.get(index.name) == (tuple(c.name for c in index.columns), index.unique), index.name


def test_money_checks_are_named(engine: Engine) -> None:
    inspector = sa.inspect(engine)
    expected = {
        "payment_attempts": {"ck_payment_attempts_amount_parts", "ck_payment_attempts_received_parts",
                             "ck_payment_attempts_succeeded_received", "ck_payment_attempts_status"},
        "refunds": {"ck_refunds_amount_parts", "ck_refunds_status"},
        "overpayments": {"ck_overpayments_amount_range", "ck_overpayments_status_matches_money"},
        "receipts": {"ck_receipts_amount_parts"},
    }  # fmt: skip
    for table, names in expected.items():
        found = {c["name"] for c in inspector.get_check_constraints(table)}
        if engine.dialect.name == "sqlite":
            names = names | {f"ck_{table}_money_integer"}
        assert names <= found, (table, names - found)


def _row(engine: Engine, attempt_id: int) -> dict[str, Any]:
    with engine.connect() as conn:
        return dict(conn.execute(sa.select(schema.attempts).where(schema.attempts.c.id == attempt_id)).one()._mapping)


def _refused(engine: Engine, statement: Any, values: dict[str, Any] | None = None) -> None:
    with pytest.raises(sa.exc.DBAPIError):
        with engine.begin() as conn:
            conn.execute(statement, values or {})


def test_the_database_allows_one_active_attempt_per_invoice(engine: Engine, service: PaymentService) -> None:
    attempt = service.start_or_join(issue(engine).public_id)
    row = _row(engine, attempt.id)
    second = {**row, "public_id": "pa_" + "1" * 24, "idempotency_key": "other", "provider_payment_id": None}
    del second["id"]
    for status in ("created", "requires_action", "processing"):
        _refused(engine, schema.attempts.insert().values(**{**second, "status": status}))
    # An attempt that is over does not hold the bill.
    with engine.begin() as conn:
        conn.execute(schema.attempts.insert().values(**{**second, "status": "expired"}))


def test_the_database_keeps_terminal_attempts_and_received_money(engine: Engine, service: PaymentService) -> None:
    attempt = service.start_or_join(issue(engine).public_id)
    paid = service.confirm_with_test_method(attempt.public_id, "pm_card_visa", return_url=RETURN_URL)
    table = schema.attempts
    where = table.c.id == paid.id
    _refused(engine, table.update().where(where).values(status="created"))
    _refused(engine, table.update().where(where).values(status="failed"))
    _refused(engine, table.update().where(where).values(amount_received=0, principal_applied=0, late_fee_applied=0))
    _refused(engine, table.update().where(where).values(version=1))
    _refused(engine, table.update().where(where).values(amount=paid.amount + 1))


@pytest.mark.parametrize(
    "change",
    [
        {"amount": 12_301},  # ≠ principal + late fee
        {"principal": 0, "amount": 0},
        {"late_fee": -1, "amount": 12_299},
        {"amount": 100_000_000, "principal": 100_000_000},
        {"currency": "usd"},
        {"status": "paid"},
        {"provider": "paypal"},
        {"public_id": "pa_XYZ"},
        {"amount_received": 5},  # neither 0 nor the amount
        {"amount_received": 12_300, "principal_applied": 12_000},  # parts do not add up
        {"status": "succeeded"},  # succeeded without its money
    ],
)
def test_the_database_refuses_bad_attempt_rows(engine: Engine, service: PaymentService, change: dict[str, Any]) -> None:
    attempt = service.start_or_join(issue(engine).public_id)
    row = _row(engine, attempt.id)
    del row["id"]
    row.update(public_id="pa_" + "2" * 24, idempotency_key="k2", provider_payment_id=None, status="expired")
    row.update(change)
    _refused(engine, schema.attempts.insert().values(**row))


def test_sqlite_refuses_money_that_is_not_an_integer(engine: Engine, service: PaymentService) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL's BIGINT cannot hold a fraction")
    attempt = service.start_or_join(issue(engine).public_id)
    _refused(
        engine,
        sa.text("UPDATE payment_attempts SET late_fee = 0.5, amount = principal + 0.5 WHERE id = :i"),
        {"i": attempt.id},
    )
