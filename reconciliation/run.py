"""A reconciliation run of one business day (JST): pull, match, post landed payouts, find
breaks, heal lost payments through the webhook inbox, merge into the queue, total, record.

Invariants:
- re-running a day is idempotent: the same provider, bank and ledger data give the same matches,
  the same breaks and the same report digest (``report_sha256``); resolved breaks stay resolved;
- the analysis of a day is one transaction (its matches, postings, breaks and run record commit
  together); the day's run row is locked first, so two runs of one day queue up;
- a signed-off day is not run again (``reconciliation.day_signed_off``);
- healing happens between two analyses and outside any transaction of ours: the healer goes
  through the webhook inbox, which commits on its own; the second analysis then finds the
  payment in the ledger and its break is marked ``healed``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from ledger.clock import business_date, utc_now
from ledger.db import run_transaction
from reconciliation import breaks as queue_breaks
from reconciliation.detection import detect
from reconciliation.errors import DaySignedOff, InvalidDate
from reconciliation.matching import match_ledger, match_payouts
from reconciliation.model import (
    HealResult,
    ProviderTransaction,
    ReconciliationConfig,
    RunOutcome,
)
from reconciliation.payouts import Compositions, post_payouts
from reconciliation.schema import provider_txns, runs
from reconciliation.sources import Healer, LedgerLinks, NoLinks, StatementSource
from reconciliation.staging import (
    create_temp_tables,
    drop_temp_tables,
    stage_ledger,
    tmp_breaks,
)
from reconciliation.statements import pull_day
from reconciliation.totals import day_totals

log = logging.getLogger("nofu.reconciliation")


@dataclass(frozen=True)
class _Analysis:
    run_number: int
    summary: dict[str, Any]
    digest: str
    posted: tuple[str, ...]
    heal_candidates: tuple[ProviderTransaction, ...]


def check_day(day: object, *, today: date | None = None) -> date:
    """A business date that has begun (JST)."""
    if not isinstance(day, date) or isinstance(day, datetime):
        raise InvalidDate("the business date must be a date (YYYY-MM-DD)")
    if day > (today or business_date(utc_now())):
        raise InvalidDate(f"{day.isoformat()} has not begun yet (JST)", date=day.isoformat())
    return day


def parse_day(text: str, *, today: date | None = None) -> date:
    try:
        day = date.fromisoformat(text)
    except (TypeError, ValueError):
        raise InvalidDate(f"{text!r} is not a date (YYYY-MM-DD)") from None
    return check_day(day, today=today)


def canonical(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)


def _lock_run(conn: Connection, day: date, *, actor: str, now: datetime) -> sa.Row[Any]:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    conn.execute(
        dialect.insert(runs)
        .values(business_date=day, status="reconciled", runs=0, first_run_at=now, last_run_at=now,
                last_run_by=actor, report_sha256="", summary="{}")  # fmt: skip
        .on_conflict_do_nothing(index_elements=["business_date"])
    )
    return conn.execute(sa.select(runs).where(runs.c.business_date == day).with_for_update()).one()


def _digest(conn: Connection, summary: dict[str, Any]) -> str:
    """SHA-256 over the totals and every finding (key, category, amounts), streamed in key order."""
    sha = hashlib.sha256(canonical(summary).encode())
    rows = conn.execute(
        sa.select(
            tmp_breaks.c.break_key, tmp_breaks.c.category, tmp_breaks.c.amount, tmp_breaks.c.provider_amount,
            tmp_breaks.c.ledger_amount,
        ).order_by(tmp_breaks.c.break_key)  # fmt: skip
    )
    for row in rows:
        sha.update(canonical(list(row)).encode())
    return sha.hexdigest()


def _heal_candidates(conn: Connection, limit: int) -> tuple[ProviderTransaction, ...]:
    """Charges the provider took that the ledger lacks (their key is known, so the inbox can
    look the payment up)."""
    txn = provider_txns
    rows = conn.execute(
        sa.select(txn)
        .join(tmp_breaks, tmp_breaks.c.provider_txn_id == txn.c.id)
        .where(tmp_breaks.c.category == "missing_in_ledger", txn.c.type.in_(("charge", "payment")),
               txn.c.match_ref.is_not(None), txn.c.amount > 0)  # fmt: skip
        .order_by(txn.c.created_at, txn.c.id)
        .limit(limit)
    ).all()
    return tuple(
        ProviderTransaction(
            id=r.id, type=r.type, amount=r.amount, fee=r.fee, net=r.net, created=r.created_at,
            available_on=r.available_on, reporting_category=r.reporting_category, source=r.source_id,
            match_ref=r.match_ref, payment_ref=r.payment_ref, notice_number=r.notice_number,
            attempt_ref=r.attempt_ref, payout_id=r.payout_id, currency=r.currency,
        )  # fmt: skip
        for r in rows
    )


def _analyse(
    conn: Connection,
    day: date,
    config: ReconciliationConfig,
    links: LedgerLinks,
    *,
    actor: str,
    now: datetime,
    run_number: int | None,
    healed_keys: Collection[str],
) -> _Analysis:
    run = _lock_run(conn, day, actor=actor, now=now)
    if run.status == "signed_off":
        raise DaySignedOff(f"{day.isoformat()} is signed off", date=day.isoformat())
    number = run_number if run_number is not None else int(run.runs) + 1
    # Temporary tables live in this transaction: a failure rolls their creation back with it.
    create_temp_tables(conn)
    stage_ledger(conn, day, config, links)
    match_ledger(conn, day, config)
    match_payouts(conn, day, config)
    compositions = Compositions()
    posted = post_payouts(conn, config, now=now, compositions=compositions)
    detect(conn, day, config, compositions)
    queue_breaks.merge(conn, day, number, healed_keys=healed_keys, now=now)
    summary = day_totals(conn, day, config, compositions)
    digest = _digest(conn, summary)
    candidates = _heal_candidates(conn, config.max_heals)
    conn.execute(
        runs.update()
        .where(runs.c.business_date == day)
        .values(runs=number, last_run_at=now, last_run_by=actor, report_sha256=digest, summary=canonical(summary))
    )
    drop_temp_tables(conn)
    return _Analysis(number, summary, digest, posted, candidates)


def reconcile_day(
    engine: Engine,
    day: date,
    *,
    actor: str,
    source: StatementSource | None = None,
    links: LedgerLinks | None = None,
    healer: Healer | None = None,
    config: ReconciliationConfig | None = None,
    now: datetime | None = None,
    today: date | None = None,
) -> RunOutcome:
    """Reconcile ``day`` (see the module docstring). Without ``source`` the provider's statement
    is taken as already pulled (tests, and a re-run that must not call the provider)."""
    config = config or ReconciliationConfig()
    links = links or NoLinks()
    day = check_day(day, today=today)
    now = now or utc_now()
    pulled_txns = pulled_payouts = 0
    if source is not None:
        # Refuse a signed-off day before calling the provider.
        with engine.connect() as conn:
            status = conn.scalar(sa.select(runs.c.status).where(runs.c.business_date == day))
        if status == "signed_off":
            raise DaySignedOff(f"{day.isoformat()} is signed off", date=day.isoformat())
        pulled = pull_day(engine, source, day, now=now)
        pulled_txns, pulled_payouts = pulled.transactions, pulled.payouts

    def analyse(run_number: int | None, healed: Collection[str]) -> _Analysis:
        return run_transaction(
            engine,
            lambda conn: _analyse(
                conn, day, config, links, actor=actor, now=now, run_number=run_number, healed_keys=healed
            ),
        )

    first = analyse(None, ())
    result = first
    healed: list[HealResult] = []
    if healer is not None and first.heal_candidates:
        for candidate in first.heal_candidates:
            assert candidate.match_ref is not None
            try:
                outcome = healer.heal(candidate.match_ref, candidate)
            except Exception as exc:  # one payment that cannot be healed must not stop the others
                log.exception("healing %s failed", candidate.match_ref)
                outcome = HealResult(candidate.match_ref, False, f"failed: {type(exc).__name__}")
            healed.append(outcome)
        keys = {
            f"missing_in_ledger:{candidate.id}"
            for candidate, outcome in zip(first.heal_candidates, healed, strict=True)
            if outcome.healed
        }
        result = analyse(first.run_number, keys)
    log.info(
        "reconciled %s: run %d, %d breaks",
        day,
        result.run_number,
        sum(v["count"] for v in result.summary["breaks"].values()),
    )
    return RunOutcome(
        business_date=day,
        run_number=result.run_number,
        summary=result.summary,
        report_sha256=result.digest,
        healed=tuple(healed),
        pulled_transactions=pulled_txns,
        pulled_payouts=pulled_payouts,
        posted_payouts=first.posted + result.posted if result is not first else first.posted,
    )
