"""The migration (DDL source of truth) and ``invoices.schema`` (what the code queries) agree."""

from __future__ import annotations

import sqlalchemy as sa

from invoices import schema

TABLES = (schema.invoices, schema.changes, schema.imports, schema.number_sequences, schema.idempotency_keys)


def test_migration_matches_the_table_definitions(engine):
    inspector = sa.inspect(engine)
    for table in TABLES:
        columns = {c["name"]: c for c in inspector.get_columns(table.name)}
        assert list(columns) == [c.name for c in table.columns], table.name
        for column in table.columns:
            reflected = columns[column.name]
            assert reflected["nullable"] == column.nullable, (table.name, column.name)
            assert reflected["type"]._type_affinity is column.type._type_affinity or (
                isinstance(reflected["type"], sa.Integer) and isinstance(column.type, sa.Integer)
            ), (table.name, column.name, reflected["type"], column.type)
        assert {c for c in inspector.get_pk_constraint(table.name)["constrained_columns"]} == {
            c.name for c in table.primary_key.columns
        }
        reflected_fks = {
            (tuple(fk["constrained_columns"]), fk["referred_table"])
            for fk in inspector.get_foreign_keys(table.name)
        }
        defined_fks = {((fk.parent.name,), fk.column.table.name) for fk in table.foreign_keys}
        assert reflected_fks == defined_fks, table.name
        reflected_unique = {tuple(u["column_names"]) for u in inspector.get_unique_constraints(table.name)}
        defined_unique = {
            tuple(c.name for c in con.columns)
            for con in table.constraints
            if isinstance(con, sa.UniqueConstraint)
        } | {(c.name,) for c in table.columns if c.unique}
        assert defined_unique <= reflected_unique, table.name
        reflected_indexes = {i["name"]: tuple(i["column_names"]) for i in inspector.get_indexes(table.name)}
        for index in table.indexes:
            assert reflected_indexes.get(index.name) == tuple(c.name for c in index.columns), index.name


def test_money_checks_are_named(engine):
    names = {c["name"] for c in sa.inspect(engine).get_check_constraints("invoices")}
    expected = {
        "ck_invoices_amount_range",
        "ck_invoices_amount_paid_range",
        "ck_invoices_status",
        "ck_invoices_status_matches_money",
    }
    if engine.dialect.name == "sqlite":
        expected.add("ck_invoices_money_integer")
    assert expected <= names
