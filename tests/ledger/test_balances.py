"""Balances now, as of a business date and at an instant; the trial balance; period closes;
the chart; and the schema the code queries agreeing with the migration."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from functools import partial

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Engine

import ledger as L
from ledger.db import run_transaction
from ledger.schema import metadata
from tests.ledger.support import DAY, entry, transfer

D1, D2, D3 = DAY, DAY + timedelta(days=1), DAY + timedelta(days=2)
T0 = datetime(2026, 4, 1, 0, 0, tzinfo=timezone.utc)


def _seed(engine: Engine) -> None:
    """調定 on D1 (two 税目), 収納 on D2, payout on D3, each recorded one hour apart."""
    specs = [
        L.AccountSpec("1100:TEST_FIXED", "固定資産税 未収金", "Fixed asset tax receivable", "debit"),
        L.AccountSpec("1100:TEST_PLANNING", "都市計画税 未収金", "City planning tax receivable", "debit"),
        L.AccountSpec("4100:TEST_FIXED", "固定資産税", "Fixed asset tax", "credit"),
        L.AccountSpec("4100:TEST_PLANNING", "都市計画税", "City planning tax", "credit"),
    ]
    run_transaction(engine, lambda c: [L.ensure_account(c, s) for s in specs])
    requests = [
        entry("issue", L.Line.debit("1100:TEST_FIXED", 12_300), L.Line.debit("1100:TEST_PLANNING", 2_600),
              L.Line.credit("4100:TEST_FIXED", 12_300), L.Line.credit("4100:TEST_PLANNING", 2_600), day=D1),
        entry("paid", L.Line.debit("1200", 14_900), L.Line.credit("1100:TEST_FIXED", 12_300),
              L.Line.credit("1100:TEST_PLANNING", 2_600), day=D2),
        entry("payout", L.Line.debit("1300", 14_800), L.Line.debit("5100", 100), L.Line.credit("1200", 14_900),
              day=D3),
    ]
    for hours, request in enumerate(requests, 1):
        run_transaction(engine, partial(L.post, request=request, now=T0 + timedelta(hours=hours)))


def test_balances_now_as_of_and_at_an_instant(engine: Engine) -> None:
    _seed(engine)
    with engine.begin() as conn:
        # Parent accounts roll up their sub-accounts; amounts read on the normal side.
        assert L.balance(conn, "4100").amount == 14_900
        assert L.balance(conn, "4100").net_debit == -14_900
        assert L.balance(conn, "4100:TEST_FIXED").amount == 12_300
        assert L.balance(conn, "1100").amount == 0
        assert L.balance(conn, "1300").amount == 14_800
        assert L.balance(conn, "1200").amount == 0
        # As of the end of each business day.
        assert L.balance(conn, "1100", as_of=D1 - timedelta(days=1)).amount == 0
        assert L.balance(conn, "1100", as_of=D1).amount == 14_900
        assert L.balance(conn, "1100:TEST_PLANNING", as_of=D1).amount == 2_600
        assert L.balance(conn, "1200", as_of=D2).amount == 14_900
        assert L.balance(conn, "1200", as_of=D3).amount == 0
        assert L.balance(conn, "4100", as_of=D1).amount == 14_900
        # At an instant: the running balance carried by the last line written before it.
        at = {h: L.balance_at(conn, "1200", T0 + timedelta(hours=h, minutes=30)).amount for h in range(4)}
        assert at == {0: 0, 1: 0, 2: 14_900, 3: 0}
        assert L.balance_at(conn, "1200", T0 + timedelta(hours=2)).amount == 14_900  # inclusive
        assert L.balance_at(conn, "1100:TEST_FIXED", T0 + timedelta(hours=1)).amount == 12_300
        # Instants given in JST mean the same moment.
        jst = (T0 + timedelta(hours=2, minutes=30)).astimezone(L.JST)
        assert L.balance_at(conn, "1200", jst).amount == 14_900


def test_trial_balance_now_and_as_of(engine: Engine) -> None:
    _seed(engine)
    with engine.begin() as conn:
        now = L.trial_balance(conn)
        d1 = L.trial_balance(conn, as_of=D1)
    rows = {r.code: r for r in now.rows}
    assert now.balanced and now.as_of is None
    assert (now.total_debit, now.total_credit) == (14_900, 14_900)
    assert (rows["1300"].debit, rows["5100"].debit, rows["4100"].credit) == (14_800, 100, 14_900)
    assert rows["4100"].is_parent and not rows["4100:TEST_FIXED"].is_parent
    assert (rows["4100:TEST_FIXED"].credit, rows["4100:TEST_PLANNING"].credit) == (12_300, 2_600)
    assert rows["1100"].debit == rows["1100"].credit == 0
    assert d1.balanced and d1.as_of == D1
    assert (d1.total_debit, d1.total_credit) == (14_900, 14_900)
    d1_rows = {r.code: r for r in d1.rows}
    assert (d1_rows["1100"].debit, d1_rows["1300"].debit) == (14_900, 0)
    # Every account of the chart is listed, with or without postings.
    assert {s.code for s in L.load_chart()} <= set(rows)


def test_period_close_is_recorded_with_the_chain_head(engine: Engine) -> None:
    with engine.begin() as conn:
        assert L.closed_through(conn) is None and L.list_closes(conn) == []
    run_transaction(engine, lambda c: L.post(c, transfer("a", "1100", "4100", 5, day=D1)))
    second = run_transaction(engine, lambda c: L.post(c, transfer("b", "1100", "4100", 5, day=D2)))
    first_close = run_transaction(engine, lambda c: L.close_day(c, D1, closed_by="会計課 山田"))
    run_transaction(engine, lambda c: L.close_day(c, D2, closed_by="会計課 佐藤"))
    with engine.begin() as conn:
        closes = L.list_closes(conn)
        assert L.closed_through(conn) == D2
    assert [(c.business_date, c.closed_by, c.head_seq, c.head_hash) for c in closes] == [
        (D1, "会計課 山田", 2, second.hash),
        (D2, "会計課 佐藤", 2, second.hash),
    ]
    assert closes[0].closed_at == first_close.closed_at


def test_chart_is_seeded_and_ensure_chart_is_idempotent(engine: Engine) -> None:
    with engine.begin() as conn:
        before = L.list_accounts(conn)
    run_transaction(engine, lambda c: L.ensure_chart(c))
    with engine.begin() as conn:
        after = L.list_accounts(conn)
    assert before == after
    chart = {s.code: s for s in L.load_chart()}
    # Other packages may add their own sub-accounts at bootstrap; the chart's are all there.
    seeded = {a.code: a for a in after}
    assert set(chart) <= set(seeded)
    assert {"1100", "1200", "1300", "2100", "4100", "4200", "4300", "5100"} <= set(chart)
    for code, spec in chart.items():
        account = seeded[code]
        assert (account.normal_side, account.name_ja, account.name_en) == (spec.normal_side, spec.name_ja, spec.name_en)
        assert (account.status, account.balance, account.version, account.parent_id) == ("open", 0, 0, None)
    for account in after:  # sub-accounts share their parent's normal side
        if ":" in account.code:
            assert account.normal_side == seeded[account.code.split(":")[0]].normal_side


def _ledger_only(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:
    # Other packages' migrations add their own tables; this test speaks for the ledger's.
    table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", None)
    return isinstance(table, str) and table.startswith("ledger_")


def test_schema_module_matches_the_migration(engine: Engine) -> None:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "include_object": _ledger_only})
        assert compare_metadata(context, metadata) == []
        assert {t for t in metadata.tables if t.startswith("ledger_")} == {
            "ledger_accounts", "ledger_chain_head", "ledger_entries", "ledger_lines", "ledger_period_closes"
        }
