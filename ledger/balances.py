"""Balances: per account (with its sub-accounts) now, as of a business date, or at an instant;
and the trial balance (試算表).

Balances are signed debit-positive internally; :class:`Balance` also gives them on the account's
normal side, which is how people read them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ledger.accounts import Account, list_accounts
from ledger.clock import to_utc
from ledger.errors import UnknownAccount
from ledger.schema import accounts, entries, lines


@dataclass(frozen=True)
class Balance:
    code: str
    normal_side: str
    net_debit: int  # Σdebits − Σcredits

    @property
    def amount(self) -> int:
        """The balance on the account's normal side (positive when it stands where it should)."""
        return self.net_debit if self.normal_side == "debit" else -self.net_debit


@dataclass(frozen=True)
class TrialBalanceRow:
    code: str
    name_ja: str
    name_en: str
    normal_side: str
    is_parent: bool
    debit: int  # the balance when it stands on the debit side, else 0
    credit: int


@dataclass(frozen=True)
class TrialBalance:
    as_of: date | None
    rows: tuple[TrialBalanceRow, ...]
    total_debit: int
    total_credit: int

    @property
    def balanced(self) -> bool:
        return self.total_debit == self.total_credit


def _own_net(conn: Connection, as_of: date | None) -> dict[int, int]:
    """Each account's own net (debit-positive), from running balances or, as of a date, from lines."""
    if as_of is None:
        return {row.id: row.balance for row in conn.execute(sa.select(accounts.c.id, accounts.c.balance))}
    signed = sa.case((lines.c.side == "D", lines.c.amount), else_=-lines.c.amount)
    query = (
        sa.select(lines.c.account_id, sa.func.sum(signed))
        .where(lines.c.effective_date <= as_of)
        .group_by(lines.c.account_id)
    )
    return {account_id: int(total) for account_id, total in conn.execute(query)}


def _rolled_up(all_accounts: list[Account], own: dict[int, int]) -> dict[int, int]:
    """Own net plus every descendant's."""
    total = {a.id: own.get(a.id, 0) for a in all_accounts}
    parent = {a.id: a.parent_id for a in all_accounts}
    for account in all_accounts:
        ancestor = parent[account.id]
        while ancestor is not None:
            total[ancestor] += own.get(account.id, 0)
            ancestor = parent[ancestor]
    return total


def balance(conn: Connection, code: str, *, as_of: date | None = None) -> Balance:
    """Balance of an account and its sub-accounts, now or at the end of business day ``as_of``."""
    all_accounts = list_accounts(conn)
    by_code = {a.code: a for a in all_accounts}
    if code not in by_code:
        raise UnknownAccount(f"account {code!r} does not exist", account=code)
    totals = _rolled_up(all_accounts, _own_net(conn, as_of))
    account = by_code[code]
    return Balance(code, account.normal_side, totals[account.id])


def balance_at(conn: Connection, code: str, moment: datetime) -> Balance:
    """The account's own balance as recorded at an instant: one indexed look-up of the last line
    written before it (each line carries the running balance)."""
    row = conn.execute(
        sa.select(accounts.c.id, accounts.c.normal_side).where(accounts.c.code == code)
    ).first()
    if row is None:
        raise UnknownAccount(f"account {code!r} does not exist", account=code)
    value = conn.scalar(
        sa.select(lines.c.balance_after)
        .join(entries, entries.c.id == lines.c.entry_id)
        .where(lines.c.account_id == row.id, entries.c.recorded_at <= to_utc(moment))
        .order_by(lines.c.account_version.desc())
        .limit(1)
    )
    return Balance(code, row.normal_side, int(value or 0))


def trial_balance(conn: Connection, *, as_of: date | None = None) -> TrialBalance:
    """Every account with its balance on the side it stands. Leaf accounts sum to the totals;
    parent rows show their roll-up and are not added again."""
    all_accounts = list_accounts(conn)
    own = _own_net(conn, as_of)
    totals = _rolled_up(all_accounts, own)
    parents = {a.parent_id for a in all_accounts if a.parent_id is not None}
    rows = []
    total_debit = total_credit = 0
    for account in all_accounts:
        net = totals[account.id]
        is_parent = account.id in parents
        rows.append(
            TrialBalanceRow(
                account.code,
                account.name_ja,
                account.name_en,
                account.normal_side,
                is_parent,
                debit=max(net, 0),
                credit=max(-net, 0),
            )
        )
        own_net = own.get(account.id, 0)
        total_debit += max(own_net, 0)
        total_credit += max(-own_net, 0)
    return TrialBalance(as_of, tuple(rows), total_debit, total_credit)
