"""The chart of accounts: accounts are added (from data) and closed, never deleted."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from importlib import resources
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ledger.clock import utc_now
from ledger.errors import AccountConflict, InvalidEntry, UnknownAccount
from ledger.schema import accounts

NormalSide = Literal["debit", "credit"]

# "1100" or "1100:FIXED_ASSET": a parent code, optionally a sub-account code after a colon.
CODE_PATTERN = re.compile(r"^[0-9]{4}(:[A-Z][A-Z0-9_]{0,31})?$")


@dataclass(frozen=True)
class AccountSpec:
    """An account as the chart describes it.

    Attributes:
        code: "1100", or "1100:FIXED_ASSET" for a sub-account of 1100.
        name_ja, name_en: display names.
        normal_side: "debit" or "credit"; a sub-account shares its parent's.
    """

    code: str
    name_ja: str
    name_en: str
    normal_side: NormalSide

    @property
    def parent_code(self) -> str | None:
        return self.code.split(":", 1)[0] if ":" in self.code else None


@dataclass(frozen=True)
class Account:
    id: int
    code: str
    parent_id: int | None
    name_ja: str
    name_en: str
    normal_side: NormalSide
    status: str
    balance: int
    version: int


def load_chart(text: str | None = None) -> tuple[AccountSpec, ...]:
    """The chart from TOML text (default: the packaged ``chart.toml``)."""
    if text is None:
        text = resources.files("ledger").joinpath("chart.toml").read_text(encoding="utf-8")
    return tuple(AccountSpec(**item) for item in tomllib.loads(text)["account"])


def _validate(spec: AccountSpec) -> None:
    if not CODE_PATTERN.match(spec.code):
        raise InvalidEntry(f"account code {spec.code!r} is not NNNN or NNNN:SUBCODE", code=spec.code)
    if spec.normal_side not in ("debit", "credit"):
        raise InvalidEntry(f"normal side {spec.normal_side!r} is not debit or credit")
    if not spec.name_ja.strip() or not spec.name_en.strip():
        raise InvalidEntry(f"account {spec.code} needs a Japanese and an English name")


def ensure_account(conn: Connection, spec: AccountSpec) -> Account:
    """Create the account if it is new; an existing one must match the spec exactly."""
    _validate(spec)
    existing = find_account(conn, spec.code)
    if existing is not None:
        if (existing.name_ja, existing.name_en, existing.normal_side) != (
            spec.name_ja,
            spec.name_en,
            spec.normal_side,
        ):
            raise AccountConflict(
                f"account {spec.code} exists with other names or normal side", code=spec.code
            )
        return existing
    parent_id = None
    if spec.parent_code is not None:
        parent = find_account(conn, spec.parent_code)
        if parent is None:
            raise UnknownAccount(f"parent account {spec.parent_code} does not exist")
        if parent.normal_side != spec.normal_side:
            raise AccountConflict(f"sub-account {spec.code} must share its parent's normal side")
        parent_id = parent.id
    conn.execute(
        accounts.insert().values(
            code=spec.code,
            parent_id=parent_id,
            name_ja=spec.name_ja,
            name_en=spec.name_en,
            normal_side=spec.normal_side,
            status="open",
            balance=0,
            version=0,
            created_at=utc_now(),
        )
    )
    created = find_account(conn, spec.code)
    assert created is not None
    return created


def ensure_chart(conn: Connection, chart: tuple[AccountSpec, ...] | None = None) -> None:
    """Add every account of the chart that is missing (parents first)."""
    for spec in sorted(chart or load_chart(), key=lambda s: (s.parent_code is not None, s.code)):
        ensure_account(conn, spec)


def _row_to_account(row: sa.Row) -> Account:
    return Account(
        id=row.id,
        code=row.code,
        parent_id=row.parent_id,
        name_ja=row.name_ja,
        name_en=row.name_en,
        normal_side=row.normal_side,
        status=row.status,
        balance=row.balance,
        version=row.version,
    )


def find_account(conn: Connection, code: str) -> Account | None:
    row = conn.execute(sa.select(accounts).where(accounts.c.code == code)).first()
    return None if row is None else _row_to_account(row)


def list_accounts(conn: Connection) -> list[Account]:
    return [_row_to_account(r) for r in conn.execute(sa.select(accounts).order_by(accounts.c.code))]


def close_account(conn: Connection, code: str) -> Account:
    """Close an account: it keeps its history and balance but refuses further postings."""
    account = find_account(conn, code)
    if account is None:
        raise UnknownAccount(f"account {code} does not exist", code=code)
    if account.status == "open":
        conn.execute(
            accounts.update()
            .where(accounts.c.id == account.id)
            .values(status="closed", closed_at=utc_now())
        )
    closed = find_account(conn, code)
    assert closed is not None
    return closed
