"""Database engines and transactions for SQLite (embedded default) and PostgreSQL (production).

Invariants this module keeps:
- SQLite runs in WAL mode with foreign keys on, and every write transaction starts with
  ``BEGIN IMMEDIATE`` so a read-then-write can never lose an update (pysqlite's own deferred
  ``BEGIN`` lets two writers read the same row and both write).
- Read-only work can use :func:`read_transaction`, which starts a deferred transaction on SQLite
  so readers do not queue behind writers.
- :func:`run_transaction` retries a whole unit of work on serialization failures, deadlocks and
  a busy SQLite database; the unit of work must therefore be safe to re-run from the start.
"""

from __future__ import annotations

import contextlib
import random
import re
import time
from collections import namedtuple
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

T = TypeVar("T")

_READ_ONLY = "nofu_read_only"

# PostgreSQL SQLSTATEs worth retrying: serialization failure, deadlock detected.
_RETRY_SQLSTATES = {"40001", "40P01"}


def is_sqlite(bind: Connection | Engine) -> bool:
    return bind.dialect.name == "sqlite"


def create_engine(url: str, *, echo: bool = False, pool_size: int = 10) -> Engine:
    """An engine configured for nofu's transaction discipline on either engine."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            parsed,
            echo=echo,
            connect_args={"timeout": 30, "check_same_thread": False},
            pool_size=pool_size,
            max_overflow=pool_size,
        )
        _configure_sqlite(engine)
        return engine
    if parsed.get_backend_name() == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        return sa.create_engine(
            parsed, echo=echo, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True
        )
    raise ValueError(f"unsupported database {parsed.get_backend_name()!r}: use sqlite or postgresql")


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        # Take transaction control away from pysqlite; we emit BEGIN ourselves.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        # FULL: a commit that returned survives a power cut (public money; see docs/benchmarks.md).
        cursor.execute("PRAGMA synchronous=FULL")
        # 16 MiB of page cache (default 2 MB): a batched import otherwise re-reads the lines'
        # index pages it just evicted (see docs/benchmarks.md). Grows only as pages are used.
        cursor.execute("PRAGMA cache_size=-16384")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        if is_read_only(conn):
            conn.exec_driver_sql("BEGIN")
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")


@contextlib.contextmanager
def read_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction for reads only: deferred on SQLite, ordinary on PostgreSQL."""
    with engine.connect() as conn:
        conn = conn.execution_options(**{_READ_ONLY: True})
        with conn.begin():
            yield conn


def is_read_only(conn: Connection) -> bool:
    """Whether ``conn`` runs a ``read_transaction``."""
    return bool(conn.get_execution_options().get(_READ_ONLY))


def is_retryable(exc: BaseException) -> bool:
    if not isinstance(exc, DBAPIError):
        return False
    orig = exc.orig
    sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if sqlstate in _RETRY_SQLSTATES:
        return True
    message = str(orig).lower()
    return "database is locked" in message or "database is busy" in message


def run_transaction(bind: Engine | Connection, work: Callable[[Connection], T], *, attempts: int = 8) -> T:
    """Run ``work`` in one write transaction, committing at the end; retry transient conflicts.

    ``bind`` is an engine (a pooled connection per try) or a connection the caller keeps open
    between transactions (it must not be in one). The commit happens here, explicitly, so a
    failed commit raises instead of being swallowed.
    """
    for attempt in range(1, attempts + 1):
        try:
            if isinstance(bind, Engine):
                with bind.begin() as conn:
                    return work(conn)
            with bind.begin():
                return work(bind)
        except DBAPIError as exc:
            if attempt == attempts or not is_retryable(exc):
                raise
            time.sleep(min(0.5, 0.005 * 2**attempt) * (0.5 + random.random()))
    raise AssertionError("unreachable")


# --- prebuilt statements on the driver's cursor ----------------------------------------------------


class Rows(list):  # type: ignore[type-arg]
    """What :func:`execute` returns: the rows (named tuples: ``row.id``, ``row[0]``) and the
    driver's ``rowcount``, with the few ``Result`` methods nofu's hot paths use."""

    rowcount: int = -1

    def first(self) -> Any:
        return self[0] if self else None

    def one(self) -> Any:
        if len(self) != 1:
            raise (sa.exc.NoResultFound if not self else sa.exc.MultipleResultsFound)(f"{len(self)} rows, one expected")
        return self[0]

    def scalar(self) -> Any:
        return self[0][0] if self else None

    def scalar_one(self) -> Any:
        return self.one()[0]


class _Plan:
    """One statement compiled for one dialect and one set of parameter names: its SQL, how
    parameters are converted and ordered, and how result rows are made."""

    __slots__ = ("compiled", "sql", "names", "converters", "row", "readers", "statement")

    def __init__(self, statement: Any, dialect: sa.Dialect, keys: list[str], many: bool) -> None:
        self.statement = statement  # kept alive: plans are found by the statement's id()
        compiled = statement.compile(dialect=dialect, column_keys=keys, for_executemany=many)
        self.compiled = compiled
        self.sql = str(compiled)
        if compiled.positional:
            self.names: tuple[str, ...] | None = tuple(compiled.positiontup or ())
        elif dialect.paramstyle == "pyformat":
            # %(name)s → %s with a tuple: the driver then has no dictionary to reorder per call.
            names: list[str] = []
            self.sql = _PYFORMAT.sub(lambda m: names.append(m.group(1)) or "%s", self.sql)
            self.names = tuple(names)
        else:
            self.names = None
        self.converters = tuple(
            (name, convert)
            for name, bind in compiled.binds.items()
            if (convert := bind.type.dialect_impl(dialect).bind_processor(dialect)) is not None
        )
        columns = list(statement.exported_columns)  # a SELECT's columns, a DML statement's RETURNING
        self.row = namedtuple("Row", [c.key for c in columns]) if columns else None  # type: ignore[misc]
        readers = [c.type.dialect_impl(dialect).result_processor(dialect, None) for c in columns]
        self.readers = readers if any(readers) else None

    @classmethod
    def usable(cls, statement: Any, dialect: sa.Dialect, keys: list[str], many: bool) -> _Plan | None:
        """A plan, or None for what stays with Core: expanding IN lists (their SQL depends on
        the values), row-returning executemany, result columns that cannot be tuple fields."""
        try:
            plan = cls(statement, dialect, keys, many)
        except ValueError:  # a column key that is not a name (or twice the same): Core's Row copes
            return None
        if any(bind.expanding for bind in plan.compiled.binds.values()) or (many and plan.row is not None):
            return None
        return plan

    def parameters(self, given: Mapping[str, Any]) -> Any:
        values = self.compiled.construct_params(given)
        assert values is not None
        for name, convert in self.converters:
            value = values[name]
            if value is not None:
                values[name] = convert(value)
        return values if self.names is None else tuple(values[name] for name in self.names)

    def rows(self, raw: list[Any]) -> Rows:
        make = self.row._make  # type: ignore[union-attr]
        readers = self.readers
        if readers is None:
            return Rows(map(make, raw))
        return Rows(make([read(v) if read is not None and v is not None else v for read, v in zip(readers, r)]) for r in raw)


_PLANS: dict[tuple[int, str, tuple[str, ...], bool], _Plan | None] = {}
_PYFORMAT = re.compile(r"%\((\w+)\)s")
_CURSOR = "nofu_cursor"


def plan_for(statement: Any, dialect: sa.Dialect, keys: Sequence[str], many: bool) -> _Plan | None:
    """The plan for a prebuilt ``statement`` (a module constant) with parameters named ``keys``
    (sorted), made once; None when the statement stays with Core (see ``_Plan.usable``)."""
    key = (id(statement), dialect.name, tuple(keys), many)
    try:
        return _PLANS[key]
    except KeyError:
        plan = _PLANS[key] = _Plan.usable(statement, dialect, list(keys), many)
        return plan


def _cursor(conn: Connection) -> Any:
    """The driver cursor kept with ``conn``'s driver connection (making one per statement cost
    about a tenth of a short statement's client CPU)."""
    info = conn.connection.info
    dbapi_connection = conn.connection.dbapi_connection
    kept = info.get(_CURSOR)
    if kept is None or kept[0] is not dbapi_connection:
        # psycopg: answers in binary (a stored event's payload comes back as its bytes, not as
        # hex text to decode: 4 % of a webhook worker's instructions).
        binary = {"binary": True} if conn.dialect.driver == "psycopg" else {}
        kept = info[_CURSOR] = (dbapi_connection, dbapi_connection.cursor(**binary))  # type: ignore[union-attr]
    return kept[1]


def execute(conn: Connection, statement: Any, params: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None) -> Rows:
    """Run a prebuilt Core statement (a module constant) in ``conn``'s transaction, as Core would
    — same SQL, same parameter conversions, same exception types — but on the driver's cursor.

    Core spends about as much client CPU per statement as the driver and PostgreSQL's answer
    together (cache key, execution context, result metadata; psycopg builds column descriptions
    for every answer it is asked about): a webhook worker runs a third fewer instructions per
    event this way (docs/webhooks.md). Statements Core must render per call (expanding ``IN``)
    still go through Core, and so does everything while the engine has cursor listeners (tests
    and benchmarks that count statements with ``before_cursor_execute`` see every one) or
    outside a transaction. A list of parameter sets is an executemany (no rows back).

    Two private SQLAlchemy names are used, for Core's own behaviour rather than a copy of it:
    ``_has_events`` (a cheap first look before the listener collections) and
    ``_handle_dbapi_exception``. SQLAlchemy is pinned; ``tests/ledger/test_execute.py`` fails if
    either changes.
    """
    many = isinstance(params, list)
    first = (params[0] if params else {}) if many else (params or {})  # type: ignore[index]
    keys = sorted(first)
    plan = None
    watched = (conn._has_events or conn.engine._has_events) and (
        conn.dispatch.before_cursor_execute or conn.dispatch.after_cursor_execute
    )
    if conn.in_transaction() and not watched:
        plan = plan_for(statement, conn.dialect, keys, many)
    if plan is None:
        result = conn.execute(statement, params)
        rows = Rows(result.all() if result.returns_rows else ())
        rows.rowcount = result.rowcount
        return rows
    cursor = _cursor(conn)
    try:
        if many:
            bound: Any = [plan.parameters(p) for p in params]  # type: ignore[union-attr]
            cursor.executemany(plan.sql, bound)
            rows = Rows()
        else:
            bound = plan.parameters(first)
            cursor.execute(plan.sql, bound)
            rows = Rows() if plan.row is None else plan.rows(cursor.fetchall())
        rows.rowcount = cursor.rowcount
        return rows
    except conn.dialect.loaded_dbapi.Error as exc:
        # Core's own handling: the same wrapped exception (IntegrityError, OperationalError …,
        # which run_transaction's retry reads), and a lost connection invalidated. It closes the
        # cursor, so the next statement takes a new one.
        conn.connection.info.pop(_CURSOR, None)
        conn._handle_dbapi_exception(exc, plan.sql, bound, cursor, None)
        raise  # not reached: the call above raises
