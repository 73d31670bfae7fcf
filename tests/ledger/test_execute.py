"""``ledger.db.execute``: prebuilt Core statements on the driver's cursor give what Core gives —
rows, conversions, rowcounts and exception types — on both engines, and fall back to Core
where it must."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

import ledger as L
from ledger.clock import to_utc
from ledger.db import Rows, _PLANS, execute, run_transaction
from ledger.schema import accounts, chain_head, entries

from .support import fresh_accounts, transfer, unique

_ENTRY = sa.select(
    entries.c.id, entries.c.effective_date, entries.c.recorded_at, entries.c.hash.label("digest")
).where(entries.c.id == sa.bindparam("p_id"))
_ACCOUNTS_IN = sa.select(accounts.c.code, accounts.c.balance).where(
    accounts.c.code.in_(sa.bindparam("p_codes", expanding=True))
).order_by(accounts.c.code)
_TOUCH = accounts.update().where(accounts.c.code == sa.bindparam("p_code")).values(closed_at=sa.bindparam("p_at"))
_CLOSED_AT = sa.select(accounts.c.closed_at).where(accounts.c.code == sa.bindparam("p_code"))
_ACCOUNT = sa.select(accounts).where(accounts.c.code == sa.bindparam("p_code"))
_ADD_ACCOUNT = accounts.insert()
_HEAD = sa.select(chain_head.c.seq, chain_head.c.hash).where(chain_head.c.id == 1)


def _posted(engine: Engine) -> tuple[list[str], L.PostedEntry]:
    codes = run_transaction(engine, lambda c: fresh_accounts(c, "1100", "4100"))
    return codes, run_transaction(engine, lambda c: L.post(c, transfer(unique(), codes[0], codes[1], 1_234)))


def test_rows_are_cores_rows(engine: Engine) -> None:
    """The same values of the same types as Core (SQLite's dates and datetimes parsed), by name and by index."""
    _, posted = _posted(engine)

    def both(conn: sa.Connection) -> tuple[Rows, list[sa.Row]]:
        return execute(conn, _ENTRY, {"p_id": posted.id}), conn.execute(_ENTRY, {"p_id": posted.id}).all()

    fast, core = run_transaction(engine, both)
    assert _PLANS[(id(_ENTRY), engine.dialect.name, ("p_id",), False)] is not None  # the driver's cursor ran it
    assert [tuple(r) for r in fast] == [tuple(r) for r in core]
    row = fast.one()
    assert (row.id, row.digest, to_utc(row.recorded_at)) == (posted.id, posted.hash, posted.recorded_at)
    assert row[1] == posted.effective_date and isinstance(row.recorded_at, datetime)
    assert run_transaction(engine, lambda c: execute(c, _HEAD).scalar_one()) == posted.id
    assert run_transaction(engine, lambda c: execute(c, _ENTRY, {"p_id": -1})).first() is None
    with pytest.raises(sa.exc.NoResultFound):
        run_transaction(engine, lambda c: execute(c, _ENTRY, {"p_id": -1}).one())


def test_parameters_are_converted_and_executemany_counts_rows(engine: Engine) -> None:
    codes, _ = _posted(engine)
    at = datetime(2026, 12, 3, 9, 30, 15, 123456, tzinfo=UTC)
    many = [{"p_code": code, "p_at": at} for code in codes] + [{"p_code": "no-such-account", "p_at": at}]
    assert run_transaction(engine, lambda c: execute(c, _TOUCH, many)).rowcount == 2
    for code in codes:
        assert to_utc(run_transaction(engine, lambda c: c.execute(_CLOSED_AT, {"p_code": code}).scalar_one())) == at
    assert run_transaction(engine, lambda c: execute(c, _TOUCH, {"p_code": codes[0], "p_at": None})).rowcount == 1
    assert run_transaction(engine, lambda c: execute(c, _CLOSED_AT, {"p_code": codes[0]}).scalar()) is None


def test_a_refusal_is_cores_exception_and_nothing_is_written(engine: Engine) -> None:
    codes, _ = _posted(engine)
    account = run_transaction(engine, lambda c: c.execute(_ACCOUNT, {"p_code": codes[0]}).one())
    twin = {k: v for k, v in account._mapping.items() if k != "id"}

    def touch_then_duplicate(c: sa.Connection) -> None:
        execute(c, _TOUCH, {"p_code": codes[0], "p_at": datetime.now(UTC)})
        execute(c, _ADD_ACCOUNT, twin)  # the account code is unique

    with engine.connect() as conn:
        with pytest.raises(sa.exc.IntegrityError):
            run_transaction(conn, touch_then_duplicate)
        # nothing of it was written, and the connection serves the next transaction
        assert run_transaction(conn, lambda c: execute(c, _CLOSED_AT, {"p_code": codes[0]}).scalar()) is None
    assert _PLANS[(id(_ADD_ACCOUNT), engine.dialect.name, tuple(sorted(twin)), False)] is not None  # not Core's


def test_what_core_must_render_or_watch_goes_through_core(engine: Engine) -> None:
    """Expanding IN lists, engines with cursor listeners, and no transaction: Core runs them."""
    codes, _ = _posted(engine)
    rows = run_transaction(engine, lambda c: execute(c, _ACCOUNTS_IN, {"p_codes": codes}))
    assert [(r.code, r.balance) for r in rows] == [(codes[0], 1_234), (codes[1], -1_234)]
    assert _PLANS[(id(_ACCOUNTS_IN), engine.dialect.name, ("p_codes",), False)] is None
    seen: list[str] = []

    def listen(conn: sa.Connection, cursor: object, sql: str, *rest: object) -> None:
        seen.append(sql)

    sa.event.listen(engine, "before_cursor_execute", listen)
    try:
        assert run_transaction(engine, lambda c: execute(c, _HEAD).one()).seq >= 1
    finally:
        sa.event.remove(engine, "before_cursor_execute", listen)
    assert any("ledger_chain_head" in sql for sql in seen)
    with engine.connect() as conn:
        assert execute(conn, _HEAD).one().seq >= 1  # autobegun by Core
        conn.rollback()
