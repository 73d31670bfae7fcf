"""The audit log: who changed money or access, what, on which subject, when, in which request.

Invariants:
- Append-only. The database refuses UPDATE and DELETE on ``audit_log`` (and TRUNCATE on
  PostgreSQL) with triggers created by migration 0003, so no code path can rewrite history.
- Written in the same transaction as the change it records: :func:`record` takes the caller's
  connection and refuses one that is not inside a transaction. If the change rolls back, so does
  its audit row; if the audit row cannot be written, the change does not happen.
- ``detail`` is stored as canonical JSON text (sorted keys, no NaN), exactly as recorded.

Action codes are ``area.verb`` (``token.create``, ``token.revoke``, ``invoice.issue``,
``refund.create``, ``reconciliation.signoff``, ``webhook.replay`` …); subjects are ``kind:id``
(``invoice:2026-0001234``, ``payment:17``, ``staff_token:k7q2m4x9abcd``).

Errors (stable codes)::

    AuditError
    ├── InvalidAction   audit.invalid_action   not ``area.verb`` or longer than 64
    ├── InvalidSubject  audit.invalid_subject  not ``kind:id`` or longer than 200
    ├── InvalidActor    audit.invalid_actor    empty or too long id / name
    ├── InvalidDetail   audit.invalid_detail   not a JSON object, or larger than 16 KiB
    ├── NoTransaction   audit.no_transaction   the connection is not inside a transaction
    ├── InvalidFilter   audit.invalid_filter   naive datetimes, since after until
    ├── InvalidCursor   audit.invalid_cursor
    └── InvalidLimit    audit.invalid_limit    outside 1 … 500
"""

from __future__ import annotations

import getpass
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ledger.clock import to_utc, utc_now
from ledger.db import execute
from ledger.schema import BigId, metadata

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("actor_id", sa.String(200), nullable=False),
    sa.Column("actor_name", sa.String(200), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("subject", sa.String(200), nullable=False),
    sa.Column("request_id", sa.String(64), nullable=True),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Index("ix_audit_log_subject", "subject", "id"),
    sa.Index("ix_audit_log_actor", "actor_id", "id"),
    sa.Index("ix_audit_log_action", "action", "id"),
    sa.Index("ix_audit_log_occurred_at", "occurred_at"),
)

ACTION = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+")
SUBJECT = re.compile(r"[a-z][a-z0-9_]*:[^\s].*")
MAX_DETAIL_BYTES = 16 * 1024
MAX_LIMIT = 500


class AuditError(Exception):
    code = "audit.error"

    def __init__(self, message: str, **detail: Any) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


class InvalidAction(AuditError):
    code = "audit.invalid_action"


class InvalidSubject(AuditError):
    code = "audit.invalid_subject"


class InvalidActor(AuditError):
    code = "audit.invalid_actor"


class InvalidDetail(AuditError):
    code = "audit.invalid_detail"


class NoTransaction(AuditError):
    code = "audit.no_transaction"


class InvalidFilter(AuditError):
    code = "audit.invalid_filter"


class InvalidCursor(AuditError):
    code = "audit.invalid_cursor"


class InvalidLimit(AuditError):
    code = "audit.invalid_limit"


@dataclass(frozen=True)
class Actor:
    """Who acts. ``id`` is namespaced: ``staff:<token id>``, ``cli:<os user>``, ``system:<part>``.

    Attributes:
        id: stable identifier, what audit queries filter on.
        name: the human name at the time of the action (kept even if the token is revoked).
        request_id: the HTTP request the action came in on, if any.
    """

    id: str
    name: str
    request_id: str | None = None

    @classmethod
    def cli(cls) -> Actor:
        """The operator running ``nofu`` on this machine."""
        try:
            user = getpass.getuser()
        except Exception:  # no login name (e.g. a container with an unnamed uid)
            user = f"uid{os.getuid()}"
        return cls(id=f"cli:{user}", name=user)


@dataclass(frozen=True)
class AuditEntry:
    id: int
    occurred_at: datetime
    actor_id: str
    actor_name: str
    action: str
    subject: str
    request_id: str | None
    detail: Mapping[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "occurred_at": self.occurred_at.isoformat(),
            "actor": {"id": self.actor_id, "name": self.actor_name},
            "action": self.action,
            "subject": self.subject,
            "request_id": self.request_id,
            "detail": dict(self.detail),
        }


@dataclass(frozen=True)
class AuditFilter:
    """Every given field must match; ``since`` is inclusive, ``until`` exclusive (aware datetimes)."""

    actor_id: str | None = None
    action: str | None = None
    subject: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class AuditPage:
    """Newest first. ``next_cursor`` continues with older entries; ``None`` when there are none."""

    entries: tuple[AuditEntry, ...]
    next_cursor: str | None = field(default=None)


def _canonical_detail(detail: Mapping[str, Any] | None) -> str:
    if detail is None:
        detail = {}
    if not isinstance(detail, Mapping):
        raise InvalidDetail("the audit detail must be a JSON object (a mapping)")
    try:
        text = json.dumps(dict(detail), ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidDetail(f"the audit detail is not plain JSON: {exc}") from None
    if len(text.encode("utf-8")) > MAX_DETAIL_BYTES:
        raise InvalidDetail(f"the audit detail is larger than {MAX_DETAIL_BYTES} bytes")
    return text


def _check_actor(actor: Actor) -> None:
    for label, value in (("id", actor.id), ("name", actor.name)):
        if not isinstance(value, str) or not value.strip() or len(value) > 200:
            raise InvalidActor(f"the actor's {label} must be 1 to 200 characters", field=label)
    if actor.request_id is not None and (not actor.request_id or len(actor.request_id) > 64):
        raise InvalidActor("the request id must be 1 to 64 characters", field="request_id")


# Built once (every money path writes a row; see ledger/posting.py).
_INSERT = audit_log.insert().returning(audit_log.c.id)


def record(
    conn: Connection,
    actor: Actor,
    action: str,
    subject: str,
    detail: Mapping[str, Any] | None = None,
    *,
    now: datetime | None = None,
) -> int:
    """Append one audit row inside the caller's transaction and return its id.

    Call it with the connection that makes the change, before that transaction commits.
    """
    if not ACTION.fullmatch(action) or len(action) > 64:
        raise InvalidAction(f"{action!r} is not an action code like 'refund.create'", action=action)
    if not SUBJECT.fullmatch(subject) or len(subject) > 200:
        raise InvalidSubject(f"{subject!r} is not a subject like 'invoice:2026-0001234'", subject=subject)
    _check_actor(actor)
    text = _canonical_detail(detail)
    if not conn.in_transaction():
        raise NoTransaction("audit rows are written inside the transaction of the change they record")
    values = {
        "occurred_at": to_utc(now) if now is not None else utc_now(),
        "actor_id": actor.id,
        "actor_name": actor.name,
        "action": action,
        "subject": subject,
        "request_id": actor.request_id,
        "detail": text,
    }
    return int(execute(conn, _INSERT, values).scalar_one())


def _parse_cursor(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    if not cursor.isascii() or not cursor.isdigit() or len(cursor) > 19 or int(cursor) < 1:
        raise InvalidCursor(f"{cursor!r} is not a cursor this endpoint returned")
    return int(cursor)


def _check_filter(filters: AuditFilter) -> None:
    for label, moment in (("since", filters.since), ("until", filters.until)):
        if moment is not None and moment.tzinfo is None:
            raise InvalidFilter(f"{label} needs a time zone (e.g. 2026-11-26T09:00:00+09:00)", field=label)
    if filters.since is not None and filters.until is not None and filters.since >= filters.until:
        raise InvalidFilter("since must be before until", field="since")


def list_audit(
    conn: Connection, filters: AuditFilter = AuditFilter(), cursor: str | None = None, limit: int = 50
) -> AuditPage:
    """One page of audit entries matching ``filters``, newest first, continuing after ``cursor``.

    Paging is by id (insertion order), so a page never repeats or skips an entry already
    committed when the first page was read.
    """
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
        raise InvalidLimit(f"limit must be 1 to {MAX_LIMIT}", limit=limit)
    _check_filter(filters)
    after = _parse_cursor(cursor)
    query = sa.select(audit_log).order_by(audit_log.c.id.desc()).limit(limit + 1)
    if after is not None:
        query = query.where(audit_log.c.id < after)
    if filters.actor_id is not None:
        query = query.where(audit_log.c.actor_id == filters.actor_id)
    if filters.action is not None:
        query = query.where(audit_log.c.action == filters.action)
    if filters.subject is not None:
        query = query.where(audit_log.c.subject == filters.subject)
    if filters.since is not None:
        query = query.where(audit_log.c.occurred_at >= to_utc(filters.since))
    if filters.until is not None:
        query = query.where(audit_log.c.occurred_at < to_utc(filters.until))
    rows = conn.execute(query).all()
    more = len(rows) > limit
    entries = tuple(
        AuditEntry(
            id=row.id,
            occurred_at=to_utc(row.occurred_at),
            actor_id=row.actor_id,
            actor_name=row.actor_name,
            action=row.action,
            subject=row.subject,
            request_id=row.request_id,
            detail=MappingProxyType(json.loads(row.detail)),
        )
        for row in rows[:limit]
    )
    return AuditPage(entries=entries, next_cursor=str(entries[-1].id) if more else None)
