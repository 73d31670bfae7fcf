"""Writing many rows fast on both engines, inside the caller's transaction.

PostgreSQL gets ``COPY … FROM STDIN`` on the transaction's own psycopg connection: constraints and
triggers apply exactly as for INSERT, but the rows travel as one stream instead of a statement
with thousands of placeholders (which psycopg re-parses on every call: most of the cost of a
1,000-row multi-VALUES insert). SQLite gets the driver's executemany.
"""

from __future__ import annotations

import contextlib
import operator
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection


def insert_rows(conn: Connection, table: sa.Table, rows: Sequence[Mapping[str, object]]) -> None:
    """Insert ``rows`` (dicts with the same keys) into ``table``."""
    if not rows:
        return
    if conn.dialect.name != "postgresql":
        _sqlite_executemany(conn, table, rows)
        return
    columns = list(rows[0])
    dbapi = cast(Any, conn.connection.dbapi_connection)  # a psycopg.Connection
    with dbapi.cursor() as cursor:
        with cursor.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row([row[column] for column in columns])


def _sqlite_executemany(conn: Connection, table: sa.Table, rows: Sequence[Mapping[str, object]]) -> None:
    """The driver's executemany with values converted as SQLAlchemy would (its own executemany
    spends more time building parameters per row than SQLite spends inserting them)."""
    columns = list(rows[0])
    dialect = conn.dialect
    converters: list[tuple[int, Callable[[Any], Any], dict[object, object]]] = []
    for index, name in enumerate(columns):
        processor = table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
        if processor is not None:
            converters.append((index, processor, {}))
    getter = operator.itemgetter(*columns)
    values = []
    for row in rows:
        value = list(getter(row))
        for index, process, seen in converters:
            raw = value[index]
            if raw is not None:
                # Dates and times repeat across a batch: convert each distinct value once.
                converted = seen.get(raw)
                if converted is None:
                    converted = seen[raw] = process(raw)
                value[index] = converted
        values.append(tuple(value))
    placeholders = ", ".join("?" for _ in columns)
    conn.exec_driver_sql(f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({placeholders})", values)


def next_ids(conn: Connection, table: sa.Table, count: int) -> list[int]:
    """``count`` fresh ids for ``table``, to insert with the rows (no RETURNING needed).

    PostgreSQL draws them from the table's sequence. On SQLite the caller's write transaction
    (BEGIN IMMEDIATE) already excludes every other writer, so the ids after the largest one are
    free; a ``INTEGER PRIMARY KEY`` without AUTOINCREMENT would hand out the same ones.
    """
    if conn.dialect.name == "postgresql":
        return sorted(
            conn.scalars(
                sa.text("SELECT nextval(pg_get_serial_sequence(:t, 'id')) FROM generate_series(1, :n)"),
                {"t": table.name, "n": count},
            )
        )
    last = conn.execute(sa.select(sa.func.coalesce(sa.func.max(table.c.id), 0))).scalar_one()
    return list(range(last + 1, last + 1 + count))


@contextlib.contextmanager
def unprepared(conn: Connection) -> Iterator[None]:
    """Statements run inside are planned with their values, never as prepared statements.

    Why: psycopg prepares a statement after its fifth run, and PostgreSQL then may reuse a
    generic plan made while the table was small (a first import starts on an empty table): for a
    look-up of 1,000 keys that is a sequential scan, seconds per batch on a large table.
    """
    dbapi = cast(Any, conn.connection.dbapi_connection)  # a psycopg.Connection
    if conn.dialect.name != "postgresql" or dbapi is None:
        yield
        return
    threshold = dbapi.prepare_threshold
    dbapi.prepare_threshold = None
    try:
        yield
    finally:
        dbapi.prepare_threshold = threshold
