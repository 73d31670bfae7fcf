"""``GET /api/v1/audit``: the audit log for auditors and treasury (permission ``audit:read``).

Query: ``actor`` (e.g. ``staff:k7q2m4x9abcd``, ``cli:yamada``), ``action``, ``subject``,
``since`` / ``until`` (ISO 8601 with offset), ``cursor`` (from the previous page), ``limit``
(1–500, default 50). Answers ``{"items": [...], "next_cursor": str | null}``, newest first.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from litestar import Request, get
from litestar.params import FromQuery

from gateway.audit import AuditFilter, list_audit
from gateway.auth.guard import authenticator_of, require
from ledger.db import read_transaction


@get("/api/v1/audit", guards=[require("audit:read")], sync_to_thread=True, tags=["audit"])
def audit_log_endpoint(
    request: Request,  # type: ignore[type-arg]
    actor: FromQuery[str | None] = None,
    action: FromQuery[str | None] = None,
    subject: FromQuery[str | None] = None,
    since: FromQuery[datetime | None] = None,
    until: FromQuery[datetime | None] = None,
    cursor: FromQuery[str | None] = None,
    limit: FromQuery[int] = 50,
) -> dict[str, Any]:
    filters = AuditFilter(actor_id=actor, action=action, subject=subject, since=since, until=until)
    with read_transaction(authenticator_of(request).engine) as conn:
        page = list_audit(conn, filters, cursor, limit)
    return {"items": [entry.as_json() for entry in page.entries], "next_cursor": page.next_cursor}
