"""Audit: recompute the hash chain and every balance from the journal, and name the first
thing that does not match (an edited amount, a deleted or inserted row, a forged balance)."""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ledger.chain import content_digest, entry_hash
from ledger.schema import GENESIS_HASH, accounts, chain_head, entries, lines, period_closes


@dataclass(frozen=True)
class Problem:
    kind: str  # chain_gap, hash_mismatch, prev_hash_mismatch, digest_mismatch, unbalanced, closed_period_entry, line_*, account_*, head_*, anchor_*
    entry_id: int | None
    detail: str


@dataclass
class VerifyReport:
    entries_checked: int = 0
    lines_checked: int = 0
    head_seq: int = 0
    head_hash: str = GENESIS_HASH
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_problem(self) -> Problem | None:
        return self.problems[0] if self.problems else None


def verify(conn: Connection, *, max_problems: int = 20) -> VerifyReport:
    """Stream the journal in chain order and check it against itself and the account rows."""
    report = VerifyReport()

    def problem(kind: str, entry_id: int | None, detail: str) -> None:
        if len(report.problems) < max_problems:
            report.problems.append(Problem(kind, entry_id, detail))

    codes = {row.id: row.code for row in conn.execute(sa.select(accounts.c.id, accounts.c.code))}
    running: dict[int, list[int]] = {}  # account id -> [balance, version]

    query = (
        sa.select(
            entries.c.id,
            entries.c.effective_date,
            entries.c.recorded_at,
            entries.c.description,
            entries.c.source_ref,
            entries.c.idempotency_key,
            entries.c.content_digest,
            entries.c.reverses_entry_id,
            entries.c.prev_hash,
            entries.c.hash,
            lines.c.line_no,
            lines.c.account_id,
            lines.c.side,
            lines.c.amount,
            lines.c.effective_date.label("line_date"),
            lines.c.balance_after,
            lines.c.account_version,
        )
        .select_from(entries.outerjoin(lines, lines.c.entry_id == entries.c.id))
        .order_by(entries.c.id, lines.c.line_no)
        .execution_options(stream_results=True, yield_per=5000)
    )

    expected_id, prev_hash = 1, GENESIS_HASH
    # Each close applies to the entries written after it (ids above its head_seq): none of them
    # may be dated on or before the closed day, whatever the chain head says now.
    closes = conn.execute(
        sa.select(period_closes.c.head_seq, period_closes.c.business_date).order_by(
            period_closes.c.head_seq, period_closes.c.business_date
        )
    ).all()
    close_index, closed_before = 0, None
    current = None
    current_lines: list = []

    def finish(entry) -> None:  # type: ignore[no-untyped-def]
        nonlocal expected_id, prev_hash, close_index, closed_before
        report.entries_checked += 1
        if entry.id != expected_id:
            problem("chain_gap", entry.id, f"expected entry {expected_id}, found {entry.id}")
        if entry.prev_hash != prev_hash:
            problem("prev_hash_mismatch", entry.id, "prev_hash does not link to the entry before")
        legs = [
            (r.line_no, codes.get(r.account_id, f"#{r.account_id}"), r.side, r.amount)
            for r in current_lines
        ]
        computed = entry_hash(
            entry_id=entry.id,
            prev_hash=entry.prev_hash,
            effective_date=entry.effective_date,
            recorded_at=entry.recorded_at,
            description=entry.description,
            source_ref=entry.source_ref,
            idempotency_key=entry.idempotency_key,
            reverses_entry_id=entry.reverses_entry_id,
            lines=legs,
        )
        if computed != entry.hash:
            problem("hash_mismatch", entry.id, "content or lines differ from what was recorded")
        # The digest is outside the hash but decides what a replay of the key returns.
        digest = content_digest(
            entry.effective_date,
            entry.description,
            entry.source_ref,
            entry.reverses_entry_id,
            [(code, "debit" if side == "D" else "credit", amount) for _, code, side, amount in legs],
        )
        if digest != entry.content_digest:
            problem("digest_mismatch", entry.id, "the idempotency digest does not match the entry")
        net = sum(r.amount if r.side == "D" else -r.amount for r in current_lines)
        if len(current_lines) < 2 or net != 0:
            problem("unbalanced", entry.id, f"{len(current_lines)} lines, debits − credits = {net}")
        for r in current_lines:
            report.lines_checked += 1
            if r.line_date != entry.effective_date:
                problem("line_date_mismatch", entry.id, f"line {r.line_no} has another date")
            state = running.setdefault(r.account_id, [0, 0])
            state[0] += r.amount if r.side == "D" else -r.amount
            state[1] += 1
            if r.account_version != state[1] or r.balance_after != state[0]:
                problem(
                    "line_running_balance",
                    entry.id,
                    f"line {r.line_no} on {codes.get(r.account_id)}: recorded balance "
                    f"{r.balance_after} v{r.account_version}, recomputed {state[0]} v{state[1]}",
                )
        while close_index < len(closes) and closes[close_index].head_seq < entry.id:
            day = closes[close_index].business_date
            closed_before = day if closed_before is None else max(closed_before, day)
            close_index += 1
        if closed_before is not None and entry.effective_date <= closed_before:
            problem("closed_period_entry", entry.id, f"dated in a period closed through {closed_before}")
        expected_id = entry.id + 1
        prev_hash = entry.hash

    for row in conn.execute(query):
        if current is None or row.id != current.id:
            if current is not None:
                finish(current)
            current, current_lines = row, []
        if row.line_no is not None:
            current_lines.append(row)
    if current is not None:
        finish(current)

    head = conn.execute(sa.select(chain_head.c.seq, chain_head.c.hash).where(chain_head.c.id == 1)).one()
    report.head_seq, report.head_hash = head.seq, head.hash
    if head.seq != expected_id - 1 or head.hash != prev_hash:
        problem("head_mismatch", None, f"chain head at {head.seq}, journal ends at {expected_id - 1}")

    orphans = conn.scalar(
        sa.select(sa.func.count())
        .select_from(lines.outerjoin(entries, entries.c.id == lines.c.entry_id))
        .where(entries.c.id.is_(None))
    )
    if orphans:
        problem("orphan_lines", None, f"{orphans} lines belong to no entry")

    for row in conn.execute(sa.select(accounts.c.id, accounts.c.code, accounts.c.balance, accounts.c.version)):
        balance, version = running.get(row.id, [0, 0])
        if (row.balance, row.version) != (balance, version):
            problem(
                "account_balance",
                None,
                f"account {row.code}: stored {row.balance} v{row.version}, "
                f"journal gives {balance} v{version}",
            )

    for close in conn.execute(sa.select(period_closes)):
        # A close before the first entry is anchored at the genesis hash, and is checked too.
        recorded = (
            GENESIS_HASH
            if close.head_seq == 0
            else conn.scalar(sa.select(entries.c.hash).where(entries.c.id == close.head_seq))
        )
        if recorded != close.head_hash:
            problem(
                "anchor_mismatch",
                close.head_seq,
                f"close of {close.business_date} anchored entry {close.head_seq} at another hash",
            )
    return report
