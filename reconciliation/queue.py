"""The exceptions queue: staff assign, comment, resolve (with a reason) or escalate each break,
and sign a day off.

Invariants:
- every action is written together with a note in the break's history (``recon_break_notes``,
  append-only) in the caller's transaction; the API layer adds the audit row in that same
  transaction;
- an action may name the version the clerk saw (``expected_version``): if someone acted
  meanwhile it is refused (``reconciliation.stale_break``) instead of silently overwriting;
- resolving needs a reason; a resolved break can only be commented on;
- a signed-off day takes no action;
- sign-off needs a run, no open or escalated break, and every earlier reconciled day signed off;
  it closes the business day in the ledger (``ledger.close_day``), so nothing can be posted on
  or before it afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ledger import close_day
from reconciliation.breaks import get_break
from reconciliation.errors import (
    BreakClosed,
    DaySignedOff,
    EarlierDayOpen,
    InvalidAssignee,
    OpenBreaks,
    ReasonRequired,
    RunNotFound,
    StaleBreak,
)
from reconciliation.model import OPEN_STATUSES, Break, BreakStatus
from reconciliation.schema import break_notes, breaks, runs

MAX_TEXT = 500
MAX_COMMENT = 2000


@dataclass(frozen=True)
class Staff:
    """Who acts: ``id`` as in the audit log (``staff:<token>``, ``cli:<user>``), and a name."""

    id: str
    name: str


@dataclass(frozen=True)
class SignOff:
    business_date: date
    signed_off_by: str
    signed_off_at: datetime
    close_head_seq: int
    close_head_hash: str


def _text(value: object, *, limit: int, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ReasonRequired(f"a {what} is required", field=what)
    text = value.strip()
    if len(text) > limit:
        raise ReasonRequired(f"the {what} is longer than {limit} characters", field=what)
    return text


def run_status(conn: Connection, day: date, *, lock: bool = False) -> str:
    query = sa.select(runs.c.status).where(runs.c.business_date == day)
    status = conn.scalar(query.with_for_update() if lock else query)
    if status is None:
        raise RunNotFound(f"{day.isoformat()} has not been reconciled", date=day.isoformat())
    return str(status)


def _acting_on(conn: Connection, day: date, break_id: int, expected_version: int | None) -> Break:
    if run_status(conn, day) == "signed_off":
        raise DaySignedOff(f"{day.isoformat()} is signed off: its breaks are final", date=day.isoformat())
    found = get_break(conn, day, break_id, lock=True)
    if expected_version is not None and expected_version != found.version:
        raise StaleBreak(
            f"break {break_id} is at version {found.version}, not {expected_version}: reload it",
            version=found.version,
            expected_version=expected_version,
        )
    return found


def _apply(
    conn: Connection, found: Break, staff: Staff, kind: str, body: str, now: datetime, **values: object
) -> Break:
    conn.execute(
        breaks.update()
        .where(breaks.c.id == found.id)
        .values(**values, version=breaks.c.version + 1, updated_at=now)
    )
    conn.execute(
        break_notes.insert().values(
            break_id=found.id, kind=kind, actor_id=staff.id, actor_name=staff.name, body=body, created_at=now
        )
    )
    return get_break(conn, found.business_date, found.id)


def assign(
    conn: Connection, day: date, break_id: int, assignee: object, *, staff: Staff, now: datetime,
    expected_version: int | None = None,
) -> Break:  # fmt: skip
    """Give the break to someone (their name as staff know it); open or escalated breaks only."""
    if not isinstance(assignee, str) or not assignee.strip() or len(assignee.strip()) > 200:
        raise InvalidAssignee("assignee must be a name of 1 to 200 characters", field="assignee")
    found = _acting_on(conn, day, break_id, expected_version)
    if not found.status.blocks_signoff:
        raise BreakClosed(f"break {break_id} is {found.status.value}; only open breaks are assigned")
    return _apply(conn, found, staff, "assign", assignee.strip(), now, assignee=assignee.strip())


def comment(
    conn: Connection, day: date, break_id: int, body: object, *, staff: Staff, now: datetime,
    expected_version: int | None = None,
) -> Break:  # fmt: skip
    text = _text(body, limit=MAX_COMMENT, what="comment")
    found = _acting_on(conn, day, break_id, expected_version)
    return _apply(conn, found, staff, "comment", text, now)


def resolve(
    conn: Connection, day: date, break_id: int, reason: object, *, staff: Staff, now: datetime,
    expected_version: int | None = None,
) -> Break:  # fmt: skip
    """Close the break with the reason (e.g. "timing: booked on 6/2", "refunded by bank transfer")."""
    text = _text(reason, limit=MAX_TEXT, what="reason")
    found = _acting_on(conn, day, break_id, expected_version)
    if not found.status.blocks_signoff:
        raise BreakClosed(f"break {break_id} is already {found.status.value}")
    return _apply(
        conn, found, staff, "resolve", text, now,
        status=BreakStatus.RESOLVED.value, resolution=text, resolved_by=staff.id, resolved_at=now,
    )  # fmt: skip


def escalate(
    conn: Connection, day: date, break_id: int, reason: object, *, staff: Staff, now: datetime,
    expected_version: int | None = None,
) -> Break:  # fmt: skip
    """Hand the break up (to the section chief, the provider, the bank); it stays blocking."""
    text = _text(reason, limit=MAX_TEXT, what="reason")
    found = _acting_on(conn, day, break_id, expected_version)
    if found.status is not BreakStatus.OPEN:
        raise BreakClosed(f"break {break_id} is {found.status.value}; only open breaks are escalated")
    return _apply(conn, found, staff, "escalate", text, now, status=BreakStatus.ESCALATED.value)


def sign_off(conn: Connection, day: date, *, staff: Staff, now: datetime) -> SignOff:
    """Sign the day off and close it in the ledger (see the module invariants)."""
    status = run_status(conn, day, lock=True)
    if status == "signed_off":
        raise DaySignedOff(f"{day.isoformat()} is already signed off", date=day.isoformat())
    blocking = conn.execute(
        sa.select(breaks.c.status, sa.func.count())
        .where(breaks.c.business_date == day, breaks.c.status.in_(OPEN_STATUSES))
        .group_by(breaks.c.status)
    ).all()
    if blocking:
        counts = {s: int(n) for s, n in blocking}
        raise OpenBreaks(
            f"{sum(counts.values())} break(s) are still open on {day.isoformat()}: resolve them first",
            open=counts.get("open", 0),
            escalated=counts.get("escalated", 0),
        )
    earlier = conn.scalar(
        sa.select(sa.func.min(runs.c.business_date)).where(runs.c.business_date < day, runs.c.status != "signed_off")
    )
    if earlier is not None:
        raise EarlierDayOpen(
            f"{earlier.isoformat()} is reconciled but not signed off; closing {day.isoformat()} would close it too",
            earliest=earlier.isoformat(),
        )
    closed = close_day(conn, day, closed_by=staff.id)
    conn.execute(
        runs.update()
        .where(runs.c.business_date == day)
        .values(status="signed_off", signed_off_at=now, signed_off_by=staff.id,
                close_head_seq=closed.head_seq, close_head_hash=closed.head_hash)  # fmt: skip
    )
    return SignOff(day, staff.id, now, closed.head_seq, closed.head_hash)
