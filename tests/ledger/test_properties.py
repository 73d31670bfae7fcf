"""Properties of the ledger over any sequence of valid postings (hypothesis).

The examples of one test share its database, so each example opens fresh sub-accounts (one per
parent in ``PARENTS``) and uses keys no other example uses, and asserts on its own accounts; the
whole-journal checks (trial balance, verify) hold across examples too.
"""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import timedelta
from functools import partial

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

import ledger as L
from ledger.db import run_transaction
from ledger.schema import accounts, lines
from tests.ledger.support import DAY, fresh_accounts, lines_net, snapshot, unique

PARENTS = ("1100", "1200", "4100", "2100")  # two debit-normal, two credit-normal
DAYS = 10

SETTINGS = settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Mostly everyday yen, sometimes amounts near the top (three still fit one line).
amounts = st.one_of(st.integers(1, 100_000), st.integers(1, L.MAX_AMOUNT // 3))
Leg = tuple[int, str, int]  # (index into the example's accounts, side, amount)


@st.composite
def balanced_legs(draw: st.DrawFn) -> list[Leg]:
    """1–3 debits; their total split into 1–3 credits; shuffled. Accounts may repeat."""
    debits = draw(st.lists(st.tuples(st.integers(0, len(PARENTS) - 1), amounts), min_size=1, max_size=3))
    total = sum(amount for _, amount in debits)
    parts = draw(st.integers(1, min(3, total)))
    cuts = sorted(draw(st.sets(st.integers(1, total - 1), min_size=parts - 1, max_size=parts - 1))) if parts > 1 else []
    bounds = [0, *cuts, total]
    credits = [(draw(st.integers(0, len(PARENTS) - 1)), bounds[i + 1] - bounds[i]) for i in range(parts)]
    legs = [(i, "debit", a) for i, a in debits] + [(i, "credit", a) for i, a in credits]
    return draw(st.permutations(legs))


# (legs, day offset) of one entry
entry_specs = st.tuples(balanced_legs(), st.integers(0, DAYS - 1))


def build(codes: list[str], spec: tuple[list[Leg], int]) -> L.EntryRequest:
    legs, offset = spec
    return L.EntryRequest(
        DAY + timedelta(days=offset),
        "property",
        "test:property",
        unique("p"),
        tuple(L.Line(codes[i], side, amount) for i, side, amount in legs),  # type: ignore[arg-type]
    )


def net_of(request: L.EntryRequest) -> dict[str, int]:
    net: dict[str, int] = defaultdict(int)
    for line in request.lines:
        net[line.account] += line.amount if line.side == "debit" else -line.amount
    return net


def model_balances(codes: list[str], requests: list[L.EntryRequest], through: object = None) -> dict[str, int]:
    totals = dict.fromkeys(codes, 0)
    for request in requests:
        if through is None or request.effective_date <= through:  # type: ignore[operator]
            for code, amount in net_of(request).items():
                totals[code] += amount
    return totals


def post_all(engine: Engine, requests: list[L.EntryRequest], batched: bool) -> list[L.PostedEntry]:
    if batched:
        return run_transaction(engine, lambda c: L.post_many(c, requests))
    return [run_transaction(engine, partial(L.post, request=r)) for r in requests]


def assert_books(engine: Engine, codes: list[str], expected: dict[str, int]) -> None:
    """Each account as the model says, from three sources; the whole journal balanced and intact."""
    signed = sa.case((lines.c.side == "D", lines.c.amount), else_=-lines.c.amount)
    with engine.begin() as conn:
        for code in codes:
            row = conn.execute(sa.select(accounts.c.id, accounts.c.balance, accounts.c.version).where(accounts.c.code == code)).one()
            line_count = conn.scalar(sa.select(sa.func.count()).select_from(lines).where(lines.c.account_id == row.id))
            assert L.balance(conn, code).net_debit == row.balance == lines_net(conn, code) == expected[code], code
            assert row.version == line_count, code
        unbalanced = conn.execute(
            sa.select(lines.c.entry_id).group_by(lines.c.entry_id).having(sa.func.sum(signed) != 0)
        ).all()
        assert unbalanced == []
        assert int(conn.execute(sa.select(sa.func.coalesce(sa.func.sum(signed), 0))).scalar_one()) == 0
        trial = L.trial_balance(conn)
        assert trial.balanced and trial.total_debit >= sum(v for v in expected.values() if v > 0)
        report = L.verify(conn)
        assert report.ok, report.problems


@SETTINGS
@given(specs=st.lists(entry_specs, min_size=1, max_size=8), batched=st.booleans())
def test_any_valid_postings_keep_the_books_balanced(engine: Engine, specs: list, batched: bool) -> None:
    codes = run_transaction(engine, lambda c: fresh_accounts(c, *PARENTS))
    requests = [build(codes, spec) for spec in specs]
    posted = post_all(engine, requests, batched)
    assert [p.id for p in posted] == list(range(posted[0].id, posted[0].id + len(posted)))
    assert not any(p.replayed for p in posted)
    for request in requests:  # Σdebits = Σcredits per entry (the model side of the check)
        assert sum(net_of(request).values()) == 0
    assert_books(engine, codes, model_balances(codes, requests))


@SETTINGS
@given(specs=st.lists(entry_specs, min_size=1, max_size=6), data=st.data())
def test_reversal_restores_balances(engine: Engine, specs: list, data: st.DataObject) -> None:
    codes = run_transaction(engine, lambda c: fresh_accounts(c, *PARENTS))
    requests = [build(codes, spec) for spec in specs]
    posted = post_all(engine, requests, batched=True)
    chosen = data.draw(st.lists(st.booleans(), min_size=len(posted), max_size=len(posted)))
    kept = [r for r, undo in zip(requests, chosen) if not undo]
    for entry, undo in zip(posted, chosen):
        if undo:
            run_transaction(
                engine,
                partial(L.reverse, entry_id=entry.id, effective_date=DAY + timedelta(days=DAYS), idempotency_key=unique("r")),
            )
    assert_books(engine, codes, model_balances(codes, kept))
    for entry, undo in zip(posted, chosen):
        if not undo:
            run_transaction(
                engine,
                partial(L.reverse, entry_id=entry.id, effective_date=DAY + timedelta(days=DAYS), idempotency_key=unique("r")),
            )
    assert_books(engine, codes, dict.fromkeys(codes, 0))


@SETTINGS
@given(specs=st.lists(entry_specs, min_size=1, max_size=6), batched=st.booleans(), seed=st.integers(0, 2**32))
def test_replays_change_nothing(engine: Engine, specs: list, batched: bool, seed: int) -> None:
    codes = run_transaction(engine, lambda c: fresh_accounts(c, *PARENTS))
    requests = [build(codes, spec) for spec in specs]
    posted = post_all(engine, requests, batched)
    before = snapshot(engine)
    shuffled = list(zip(requests, posted))
    random.Random(seed).shuffle(shuffled)
    replayed = post_all(engine, [r for r, _ in shuffled], batched=not batched)
    assert [(p.id, p.hash, p.recorded_at, p.replayed) for p in replayed] == [
        (p.id, p.hash, p.recorded_at, True) for _, p in shuffled
    ]
    assert snapshot(engine) == before
    assert_books(engine, codes, model_balances(codes, requests))


@SETTINGS
@given(specs=st.lists(entry_specs, min_size=1, max_size=8))
def test_balance_as_of_and_at_an_instant_follow_the_lines(engine: Engine, specs: list) -> None:
    codes = run_transaction(engine, lambda c: fresh_accounts(c, *PARENTS))
    requests = [build(codes, spec) for spec in specs]
    posted = post_all(engine, requests, batched=False)
    with engine.begin() as conn:
        for offset in range(-1, DAYS):
            day = DAY + timedelta(days=offset)
            expected = model_balances(codes, requests, through=day)
            for code in codes:
                assert L.balance(conn, code, as_of=day).net_debit == lines_net(conn, code, through=day) == expected[code]
            assert L.trial_balance(conn, as_of=day).balanced
        # balance_at(t): the running balance after the last entry recorded at or before t.
        first = posted[0].recorded_at
        assert all(L.balance_at(conn, code, first - timedelta(microseconds=1)).net_debit == 0 for code in codes)
        for count, entry in enumerate(posted, 1):
            running = model_balances(codes, requests[:count])
            for code in codes:
                assert L.balance_at(conn, code, entry.recorded_at).net_debit == running[code], (count, code)
