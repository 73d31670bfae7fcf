"""Staff API tokens: issue, verify, list, revoke. Only a hash of each token is stored.

A token reads ``nofu_<id>_<secret>``: ``id`` is 12 characters (public: lookup key and what
``nofu token list`` shows), ``secret`` 40 characters (200 random bits), both from an alphabet
without look-alikes (no 0/o, 1/l). The fixed ``nofu_`` prefix lets secret scanners spot a leaked
token. Because the secret is random and long, a plain SHA-256 of the whole token is a safe
verifier (a slow password hash only matters for guessable secrets); the comparison is constant
time.

Invariants (also enforced by triggers from migration 0003): tokens are never deleted; a token's
id, name, role, hash, creation and expiry never change; a revocation is final. Creating and
revoking a token writes an audit row in the same transaction.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway import audit
from gateway.audit import Actor
from gateway.auth.errors import InvalidExpiry, InvalidName, InvalidRole, TokenNotFound, Unauthorized
from gateway.auth.identity import StaffIdentity
from gateway.auth.permissions import Role
from ledger.clock import to_utc, utc_now
from ledger.schema import metadata

ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"  # 32 symbols: 5 bits each
ID_LENGTH = 12
SECRET_LENGTH = 40
PREFIX = "nofu_"
_SYMBOL = "[a-km-np-z2-9]"
TOKEN = re.compile(rf"nofu_({_SYMBOL}{{{ID_LENGTH}}})_{_SYMBOL}{{{SECRET_LENGTH}}}")

DEFAULT_LIFETIME = timedelta(days=90)
MAX_LIFETIME = timedelta(days=3650)
MAX_NAME = 100

staff_tokens = sa.Table(
    "staff_tokens",
    metadata,
    sa.Column("id", sa.String(16), primary_key=True),
    sa.Column("name", sa.String(MAX_NAME), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("secret_sha256", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("created_by", sa.String(200), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("revoked_by", sa.String(200), nullable=True),
    sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("role IN ('treasury', 'clerk', 'auditor')", name="role"),
    sa.CheckConstraint("(revoked_at IS NULL) = (revoked_by IS NULL)", name="revoked_pair"),
)


@dataclass(frozen=True)
class TokenInfo:
    """What is known about a token, without its secret."""

    id: str
    name: str
    role: Role
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    revoked_at: datetime | None
    revoked_by: str | None
    last_used_at: datetime | None

    def status(self, now: datetime | None = None) -> str:
        """``active``, ``revoked`` or ``expired`` at ``now``."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= (now or utc_now()):
            return "expired"
        return "active"

    def identity(self, request_id: str | None = None) -> StaffIdentity:
        return StaffIdentity(id=self.id, name=self.name, role=self.role, request_id=request_id)


@dataclass(frozen=True)
class IssuedToken:
    """A freshly created token. ``secret`` is the full bearer token: show it once, never store it."""

    info: TokenInfo
    secret: str = field(repr=False)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _random(length: int) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


def _info(row: sa.Row) -> TokenInfo:  # type: ignore[type-arg]
    def aware(moment: datetime | None) -> datetime | None:
        return None if moment is None else to_utc(moment)

    return TokenInfo(
        id=row.id,
        name=row.name,
        role=Role(row.role),
        created_at=to_utc(row.created_at),
        created_by=row.created_by,
        expires_at=aware(row.expires_at),
        revoked_at=aware(row.revoked_at),
        revoked_by=row.revoked_by,
        last_used_at=aware(row.last_used_at),
    )


def parse_role(role: str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise InvalidRole(
            f"{role!r} is not a role; choose one of {', '.join(r.value for r in Role)}", role=role
        ) from None


def _check_name(name: str) -> str:
    name = name.strip()
    # Spaces (also the ideographic one in 山田　太郎) are fine; control and format characters,
    # line breaks and unassigned code points are not.
    refused = any(unicodedata.category(ch)[0] == "C" or unicodedata.category(ch) in ("Zl", "Zp") for ch in name)
    if not name or len(name) > MAX_NAME or refused:
        raise InvalidName(f"a token name is 1 to {MAX_NAME} printable characters, e.g. '会計課 山田'")
    return name


def create_token(
    conn: Connection,
    *,
    role: str,
    name: str,
    actor: Actor,
    lifetime: timedelta | None = DEFAULT_LIFETIME,
    now: datetime | None = None,
) -> IssuedToken:
    """Issue a token and audit it (``token.create``) in the caller's transaction.

    ``lifetime=None`` issues a token that never expires. Only the token's SHA-256 is stored.
    """
    checked_role = parse_role(role)
    checked_name = _check_name(name)
    if lifetime is not None and not timedelta(days=1) <= lifetime <= MAX_LIFETIME:
        raise InvalidExpiry("a token lives from 1 day to 10 years")
    now = to_utc(now) if now is not None else utc_now()
    token_id, secret = _random(ID_LENGTH), _random(SECRET_LENGTH)
    token = f"{PREFIX}{token_id}_{secret}"
    expires_at = None if lifetime is None else now + lifetime
    conn.execute(
        staff_tokens.insert().values(
            id=token_id,
            name=checked_name,
            role=checked_role.value,
            secret_sha256=digest(token),
            created_at=now,
            created_by=actor.id,
            expires_at=expires_at,
        )
    )
    audit.record(
        conn,
        actor,
        "token.create",
        f"staff_token:{token_id}",
        {
            "name": checked_name,
            "role": checked_role.value,
            "expires_at": expires_at.isoformat() if expires_at else None,
        },
        now=now,
    )
    info = TokenInfo(token_id, checked_name, checked_role, now, actor.id, expires_at, None, None, None)
    return IssuedToken(info=info, secret=token)


def get_token(conn: Connection, token_id: str) -> TokenInfo:
    row = conn.execute(sa.select(staff_tokens).where(staff_tokens.c.id == token_id)).first()
    if row is None:
        raise TokenNotFound(f"no staff token with id {token_id!r}", token_id=token_id)
    return _info(row)


def list_tokens(conn: Connection) -> list[TokenInfo]:
    """Every token ever issued, newest first, without secrets."""
    rows = conn.execute(sa.select(staff_tokens).order_by(staff_tokens.c.created_at.desc(), staff_tokens.c.id))
    return [_info(row) for row in rows]


def revoke_token(conn: Connection, token_id: str, *, actor: Actor, now: datetime | None = None) -> TokenInfo:
    """Revoke a token for good and audit it (``token.revoke``) in the caller's transaction.

    Revoking a revoked token changes nothing and is not audited again: it returns the original
    revocation.
    """
    current = get_token(conn, token_id)
    if current.revoked_at is not None:
        return current
    now = to_utc(now) if now is not None else utc_now()
    revoked = conn.execute(
        staff_tokens.update()
        .where(staff_tokens.c.id == token_id, staff_tokens.c.revoked_at.is_(None))
        .values(revoked_at=now, revoked_by=actor.id)
    )
    if revoked.rowcount != 1:  # a concurrent revocation won; it wrote the audit row
        return get_token(conn, token_id)
    audit.record(
        conn,
        actor,
        "token.revoke",
        f"staff_token:{token_id}",
        {"name": current.name, "role": current.role.value},
        now=now,
    )
    return get_token(conn, token_id)


def verify_token(conn: Connection, token: str, *, now: datetime | None = None) -> TokenInfo:
    """The token's record if ``token`` is a live token; otherwise :class:`Unauthorized`.

    Unknown ids and wrong secrets are the same error (``invalid``); ``revoked`` and ``expired``
    are only reported once the secret matched.
    """
    match = TOKEN.fullmatch(token)
    if match is None:
        raise Unauthorized("the bearer token is malformed", reason="malformed")
    presented = digest(token)
    row = conn.execute(sa.select(staff_tokens).where(staff_tokens.c.id == match.group(1))).first()
    # Compare against a dummy when the id is unknown, so both paths do the same work.
    stored = row.secret_sha256 if row is not None else "0" * 64
    if not hmac.compare_digest(stored, presented) or row is None:
        raise Unauthorized("the bearer token is not valid", reason="invalid")
    info = _info(row)
    status = info.status(to_utc(now) if now is not None else utc_now())
    if status != "active":
        raise Unauthorized(f"the bearer token is {status}", reason=status, token_id=info.id)
    return info


def touch(conn: Connection, token_id: str, *, now: datetime, interval: timedelta) -> bool:
    """Set ``last_used_at`` to ``now`` unless it was set less than ``interval`` ago.

    The condition is in the UPDATE itself, so several processes write at most once per interval.
    """
    now = to_utc(now)
    result = conn.execute(
        staff_tokens.update()
        .where(
            staff_tokens.c.id == token_id,
            sa.or_(staff_tokens.c.last_used_at.is_(None), staff_tokens.c.last_used_at <= now - interval),
        )
        .values(last_used_at=now)
    )
    return result.rowcount == 1
