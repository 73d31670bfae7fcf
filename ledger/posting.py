"""Posting journal entries: balanced, append-only, idempotent, hash-chained.

Call these inside the caller's transaction (a SQLAlchemy ``Connection`` in a write
transaction); the entry commits or rolls back with whatever else the caller does.

Order of work for a batch, which is what makes concurrent writers safe:
1. validate every request in Python (nothing touches the database before that);
2. lock the chain head (``SELECT … FOR UPDATE``; on SQLite the write transaction already holds
   the database lock) — every writer queues here, so ids are gapless in commit order, the chain
   cannot fork, and an idempotency key or a reversal checked next cannot be raced;
3. look up keys already used, the closed-through date, reversal targets, and the accounts;
4. write lines, then entries (the database re-checks balance and periods), then the accounts'
   running balances and the chain head.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from ledger.chain import content_digest, entry_hash
from ledger.clock import to_utc, utc_now
from ledger.db import execute, plan_for
from ledger.errors import (
    AlreadyReversed,
    BalanceOverflow,
    ClosedAccount,
    ClosedPeriod,
    EntryNotFound,
    IdempotencyConflict,
    InvalidAmount,
    InvalidEntry,
    TooFewLines,
    UnbalancedEntry,
    UnknownAccount,
)
from ledger.schema import MAX_AMOUNT, MAX_BALANCE, accounts, chain_head, entries, lines

Side = Literal["debit", "credit"]
MAX_LINES = 1000  # per entry; 1,000 × MAX_AMOUNT still sums inside 64 bits
_CHUNK = 500  # IN-list size for look-ups

# Statements are built once: building a Core statement and its cache key on every call cost more
# than executing it (see docs/benchmarks.md).
_LOCK_HEAD = (
    sa.select(chain_head.c.seq, chain_head.c.hash, chain_head.c.closed_through)
    .where(chain_head.c.id == 1)
    .with_for_update()
)
_STORED_COLUMNS = (
    entries.c.id,
    entries.c.hash,
    entries.c.effective_date,
    entries.c.recorded_at,
    entries.c.idempotency_key,
    entries.c.content_digest,
)
_STORED_KEYS = sa.select(*_STORED_COLUMNS).where(
    entries.c.idempotency_key.in_(sa.bindparam("keys", expanding=True))
)
_BATCH_KEYS = (
    sa.func.unnest(sa.bindparam("keys", type_=postgresql.ARRAY(sa.String)))
    .table_valued("key")
    .render_derived()
)
_STORED_KEYS_PG = sa.select(*_STORED_COLUMNS).join(
    _BATCH_KEYS, entries.c.idempotency_key == _BATCH_KEYS.c.key
)
_STORED_KEY = sa.select(*_STORED_COLUMNS).where(entries.c.idempotency_key == sa.bindparam("key"))


def _lock_accounts(codes: Any) -> sa.Select:
    return (
        sa.select(accounts.c.id, accounts.c.code, accounts.c.status, accounts.c.balance, accounts.c.version)
        .where(accounts.c.code.in_(codes))
        .order_by(accounts.c.id)
        .with_for_update()
    )


_LOCK_ACCOUNTS = _lock_accounts(sa.bindparam("codes", expanding=True))
# A posting's few accounts: one statement per count, so that it runs on the driver's cursor
# (an expanding IN is rendered by Core on every call).
_FEW = 4
_LOCK_FEW_ACCOUNTS = {n: _lock_accounts([sa.bindparam(f"c{i}") for i in range(n)]) for n in range(1, _FEW + 1)}
_LINE_COLUMNS = (
    "entry_id", "line_no", "account_id", "side", "amount", "effective_date", "balance_after",
    "account_version",
)
_ENTRY_COLUMNS = (
    "id", "effective_date", "recorded_at", "description", "source_ref", "idempotency_key",
    "content_digest", "reverses_entry_id", "prev_hash", "hash",
)
_INSERT_LINES = lines.insert()
_INSERT_ENTRIES = entries.insert()
_UPDATE_BALANCE = (
    accounts.update()
    .where(accounts.c.id == sa.bindparam("b_id"))
    .values(balance=sa.bindparam("b_balance"), version=sa.bindparam("b_version"))
)
_ADVANCE_HEAD = (
    chain_head.update()
    .where(chain_head.c.id == 1)
    .values(seq=sa.bindparam("b_seq"), hash=sa.bindparam("b_hash"))
)


@dataclass(frozen=True)
class Line:
    """One leg of an entry: ``amount`` yen (a positive int) on ``side`` of ``account``."""

    account: str
    side: Side
    amount: int

    @classmethod
    def debit(cls, account: str, amount: int) -> Line:
        return cls(account, "debit", amount)

    @classmethod
    def credit(cls, account: str, amount: int) -> Line:
        return cls(account, "credit", amount)


@dataclass(frozen=True)
class EntryRequest:
    """An entry to post.

    Attributes:
        effective_date: the business date (JST) the entry belongs to.
        description: what happened, for people.
        source_ref: where it came from, e.g. ``invoice:2026-00000001-3`` or ``stripe:evt_…``.
        idempotency_key: posting the same key again returns the original entry.
        lines: two or more legs whose debits equal credits.
        reverses_entry_id: set on a reversal (see :func:`reverse`).
    """

    effective_date: date
    description: str
    source_ref: str
    idempotency_key: str
    lines: tuple[Line, ...]
    reverses_entry_id: int | None = None

    def digest(self) -> str:
        return content_digest(
            self.effective_date,
            self.description,
            self.source_ref,
            self.reverses_entry_id,
            [(line.account, line.side, line.amount) for line in self.lines],
        )


@dataclass(frozen=True)
class PostedEntry:
    id: int
    hash: str
    effective_date: date
    recorded_at: datetime
    idempotency_key: str
    replayed: bool = False


def _storable(text: str) -> bool:
    """Text both engines store and the hash can encode: PostgreSQL refuses NUL (SQLite keeps it,
    so the engines would disagree) and UTF-8 cannot encode a lone surrogate."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def validate(request: EntryRequest) -> None:
    """Refuse a malformed request before anything is read or written."""
    if not isinstance(request.effective_date, date) or isinstance(request.effective_date, datetime):
        raise InvalidEntry("effective_date must be a date (the JST business day)")
    for name, limit in (("description", 500), ("source_ref", 200), ("idempotency_key", 255)):
        value = getattr(request, name)
        if not isinstance(value, str) or not value.strip():
            raise InvalidEntry(f"{name} must be a non-empty string", field=name)
        if len(value) > limit:
            raise InvalidEntry(f"{name} is longer than {limit} characters", field=name)
        if not _storable(value):
            raise InvalidEntry(f"{name} contains NUL or text that is not valid Unicode", field=name)
    if not isinstance(request.lines, tuple | list) or len(request.lines) < 2:
        raise TooFewLines("an entry needs at least two lines")
    if len(request.lines) > MAX_LINES:
        raise InvalidEntry(f"an entry has at most {MAX_LINES} lines")
    debits = credits = 0
    for number, line in enumerate(request.lines, 1):
        if not isinstance(line, Line) or not isinstance(line.account, str) or not _storable(line.account):
            raise InvalidEntry(f"line {number} is not a ledger Line", line=number)
        if line.side not in ("debit", "credit"):
            raise InvalidEntry(f"line {number}: side must be debit or credit", line=number)
        amount = line.amount
        if type(amount) is not int:  # bool, float, Decimal and str are all refused
            raise InvalidAmount(
                f"line {number}: amount must be an integer number of yen, not {type(amount).__name__}",
                line=number,
            )
        if amount <= 0:
            raise InvalidAmount(f"line {number}: amount must be positive, got {amount}", line=number)
        if amount > MAX_AMOUNT:
            raise InvalidAmount(
                f"line {number}: amount {amount} is above the limit {MAX_AMOUNT}", line=number
            )
        if line.side == "debit":
            debits += amount
        else:
            credits += amount
    if debits != credits:
        raise UnbalancedEntry(
            f"debits ¥{debits:,} do not equal credits ¥{credits:,}", debits=debits, credits=credits
        )


def post(conn: Connection, request: EntryRequest, *, now: datetime | None = None) -> PostedEntry:
    """Post one entry (or return the original for a replayed idempotency key)."""
    return post_many(conn, [request], now=now)[0]


def _chunks(items: Sequence, size: int = _CHUNK) -> Iterable[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def post_many(
    conn: Connection, requests: Sequence[EntryRequest], *, now: datetime | None = None
) -> list[PostedEntry]:
    """Post a batch of entries under one lock; all are written or none."""
    for index, request in enumerate(requests):
        try:
            validate(request)
        except (InvalidEntry, InvalidAmount, TooFewLines, UnbalancedEntry) as exc:
            if len(requests) > 1:
                exc.detail["entry_index"] = index
            raise
    if not requests:
        return []

    head = execute(conn, _LOCK_HEAD).one()

    # Idempotency: keys already written, and keys repeated inside this batch.
    keys = list(dict.fromkeys(r.idempotency_key for r in requests))
    stored = _stored_entries(conn, keys)

    results: list[PostedEntry | None] = [None] * len(requests)
    fresh: list[tuple[int, EntryRequest]] = []
    first_in_batch: dict[str, tuple[int, str]] = {}
    for index, request in enumerate(requests):
        digest = request.digest()
        key = request.idempotency_key
        if key in stored:
            row = stored[key]
            if row.content_digest != digest:
                raise IdempotencyConflict(
                    f"idempotency key {key!r} was used for entry {row.id} with other content",
                    entry_id=row.id,
                )
            results[index] = PostedEntry(
                row.id, row.hash, row.effective_date, to_utc(row.recorded_at), key, replayed=True
            )
        elif key in first_in_batch:
            if first_in_batch[key][1] != digest:
                raise IdempotencyConflict(
                    f"idempotency key {key!r} appears twice in the batch with other content"
                )
        else:
            first_in_batch[key] = (index, digest)
            fresh.append((index, request))

    closed_through = head.closed_through
    if closed_through is not None:
        for _, request in fresh:
            if request.effective_date <= closed_through:
                raise ClosedPeriod(
                    f"business days through {closed_through} are closed; "
                    f"{request.effective_date} cannot take postings",
                    closed_through=closed_through.isoformat(),
                )

    _check_reversals(conn, [r for _, r in fresh])

    codes = sorted({line.account for _, r in fresh for line in r.lines})
    state: dict[str, list] = {}  # code -> [id, balance, version, original version]
    for chunk in _chunks(codes):
        if len(chunk) <= _FEW:
            locked = execute(conn, _LOCK_FEW_ACCOUNTS[len(chunk)], {f"c{i}": code for i, code in enumerate(chunk)})
        else:
            locked = execute(conn, _LOCK_ACCOUNTS, {"codes": chunk})
        for row in locked:
            if row.status != "open":
                raise ClosedAccount(f"account {row.code} is closed", account=row.code)
            state[row.code] = [row.id, row.balance, row.version, row.version]
    for code in codes:
        if code not in state:
            raise UnknownAccount(f"account {code!r} does not exist", account=code)

    recorded_at = to_utc(now) if now is not None else utc_now()
    seq, prev_hash = head.seq, head.hash
    line_rows: list[tuple] = []  # in _LINE_COLUMNS order
    entry_rows: list[tuple] = []  # in _ENTRY_COLUMNS order
    for index, request in fresh:
        seq += 1
        hashed_lines = []
        for number, line in enumerate(request.lines, 1):
            account = state[line.account]
            account[1] += line.amount if line.side == "debit" else -line.amount
            account[2] += 1
            if abs(account[1]) > MAX_BALANCE:
                raise BalanceOverflow(f"the balance of {line.account} would leave 64 bits")
            side = "D" if line.side == "debit" else "C"
            line_rows.append(
                (seq, number, account[0], side, line.amount, request.effective_date, account[1], account[2])
            )
            hashed_lines.append((number, line.account, side, line.amount))
        digest = first_in_batch[request.idempotency_key][1]
        entry_hash_value = entry_hash(
            entry_id=seq,
            prev_hash=prev_hash,
            effective_date=request.effective_date,
            recorded_at=recorded_at,
            description=request.description,
            source_ref=request.source_ref,
            idempotency_key=request.idempotency_key,
            reverses_entry_id=request.reverses_entry_id,
            lines=hashed_lines,
        )
        entry_rows.append(
            (
                seq,
                request.effective_date,
                recorded_at,
                request.description,
                request.source_ref,
                request.idempotency_key,
                digest,
                request.reverses_entry_id,
                prev_hash,
                entry_hash_value,
            )
        )
        results[index] = PostedEntry(
            seq, entry_hash_value, request.effective_date, recorded_at, request.idempotency_key
        )
        prev_hash = entry_hash_value

    # A key repeated inside the batch returns the entry its first use created.
    for index, request in enumerate(requests):
        if results[index] is None:
            first = results[first_in_batch[request.idempotency_key][0]]
            assert first is not None
            results[index] = PostedEntry(
                first.id, first.hash, first.effective_date, first.recorded_at, first.idempotency_key, True
            )

    if entry_rows:
        _insert_many(conn, _INSERT_LINES, _LINE_COLUMNS, line_rows)
        _insert_many(conn, _INSERT_ENTRIES, _ENTRY_COLUMNS, entry_rows)
        execute(
            conn,
            _UPDATE_BALANCE,
            [
                {"b_id": a[0], "b_balance": a[1], "b_version": a[2]}
                for a in state.values()
                if a[2] != a[3]
            ],
        )
        execute(conn, _ADVANCE_HEAD, {"b_seq": seq, "b_hash": prev_hash})
    return [r for r in results if r is not None]


def _insert_many(conn: Connection, statement: sa.Insert, columns: tuple[str, ...], rows: list[tuple]) -> None:
    """INSERT ``rows`` (tuples in ``columns`` order) with the SQL and the value conversions Core
    would use (``ledger.db.plan_for``, as ``execute`` does), minus Core's bookkeeping per row,
    which cost more than SQLite's own work on batched imports (see docs/benchmarks.md)."""
    plan = plan_for(statement, conn.dialect, sorted(columns), many=True)
    assert plan is not None and plan.names == columns, (columns, plan and plan.names)
    for name, convert in plan.converters:
        index = columns.index(name)
        # A batch repeats few dates and one recorded_at: convert each distinct value once.
        converted: dict = {}
        for row in rows:
            value = row[index]
            if value not in converted:
                converted[value] = convert(value) if value is not None else None
        rows = [(*row[:index], converted[row[index]], *row[index + 1 :]) for row in rows]
    conn.exec_driver_sql(plan.sql, rows if len(rows) > 1 else rows[0])


def _stored_entries(conn: Connection, keys: list[str]) -> dict[str, Any]:
    """The entries already written under any of ``keys``, by key."""
    if len(keys) == 1:
        return {row.idempotency_key: row for row in execute(conn, _STORED_KEY, {"key": keys[0]})}
    if conn.dialect.name == "postgresql":
        # One join for a batch. Not a long IN list: psycopg prepares a statement run five times,
        # and the plan PostgreSQL then keeps may be the one made while the table was empty (a
        # sequential scan testing every key on every row), which made batched imports slow down
        # quadratically. The join stays linear whichever plan it gets.
        rows = execute(conn, _STORED_KEYS_PG, {"keys": keys})
        return {row.idempotency_key: row for row in rows}
    stored: dict[str, Any] = {}
    for chunk in _chunks(keys):
        for row in conn.execute(_STORED_KEYS, {"keys": chunk}):
            stored[row.idempotency_key] = row
    return stored


def _check_reversals(conn: Connection, requests: Sequence[EntryRequest]) -> None:
    targets = [r.reverses_entry_id for r in requests if r.reverses_entry_id is not None]
    if not targets:
        return
    if len(set(targets)) != len(targets):
        raise AlreadyReversed("the batch reverses the same entry twice")
    found = set(conn.scalars(sa.select(entries.c.id).where(entries.c.id.in_(targets))))
    for target in targets:
        if target not in found:
            raise EntryNotFound(f"entry {target} does not exist", entry_id=target)
    reversed_already = conn.execute(
        sa.select(entries.c.reverses_entry_id, entries.c.id).where(
            entries.c.reverses_entry_id.in_(targets)
        )
    ).first()
    if reversed_already is not None:
        raise AlreadyReversed(
            f"entry {reversed_already[0]} was already reversed by entry {reversed_already[1]}",
            entry_id=reversed_already[0],
            reversal_id=reversed_already[1],
        )


def reverse(
    conn: Connection,
    entry_id: int,
    *,
    effective_date: date,
    idempotency_key: str,
    description: str | None = None,
    now: datetime | None = None,
) -> PostedEntry:
    """Post the mirror image of an entry, linked to it. An entry can be reversed once."""
    original = conn.execute(
        sa.select(entries.c.description, entries.c.source_ref).where(entries.c.id == entry_id)
    ).first()
    if original is None:
        raise EntryNotFound(f"entry {entry_id} does not exist", entry_id=entry_id)
    legs = conn.execute(
        sa.select(accounts.c.code, lines.c.side, lines.c.amount)
        .join(accounts, accounts.c.id == lines.c.account_id)
        .where(lines.c.entry_id == entry_id)
        .order_by(lines.c.line_no)
    ).all()
    mirrored = tuple(
        Line(code, "credit" if side == "D" else "debit", amount) for code, side, amount in legs
    )
    return post(
        conn,
        EntryRequest(
            effective_date=effective_date,
            description=(description or f"Reversal of entry {entry_id}: {original.description}")[:500],
            source_ref=original.source_ref,
            idempotency_key=idempotency_key,
            lines=mirrored,
            reverses_entry_id=entry_id,
        ),
        now=now,
    )
