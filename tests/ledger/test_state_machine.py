"""A model of the ledger (hypothesis rule-based state machine) checked against the real one.

The model is a few dicts: balances per account, the entries with their dates, which entries are
reversed, which accounts are closed and the day closed through. Every rule does the same thing
to the model and to the ledger and expects the same outcome, refusals included; the invariants
compare balances after every step and the teardown runs ``verify``.

Runs of one test share its database: each run opens fresh sub-accounts and starts its dates after
whatever earlier runs closed.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy.engine import Engine

import ledger as L
from ledger.db import run_transaction
from tests.ledger.support import DAY, fresh_accounts, head_seq, unique

PARENTS = ("1100", "1200", "4100", "2100")
DAYS = 16
CLOSABLE_DAYS = 4  # close_day only touches the start of the window, so most postings stay possible

amounts = st.integers(1, 1_000_000)


@st.composite
def balanced_legs(draw: st.DrawFn) -> list[tuple[int, str, int]]:
    debits = draw(st.lists(st.tuples(st.integers(0, len(PARENTS) - 1), amounts), min_size=1, max_size=2))
    total = sum(a for _, a in debits)
    parts = draw(st.integers(1, min(2, total)))
    cut = draw(st.integers(1, total - 1)) if parts == 2 else total
    credits = [(draw(st.integers(0, len(PARENTS) - 1)), a) for a in ([cut, total - cut] if parts == 2 else [total])]
    return draw(st.permutations([(i, "debit", a) for i, a in debits] + [(i, "credit", a) for i, a in credits]))


@dataclass
class ModelEntry:
    id: int
    day: date
    net: dict[str, int]  # account code -> signed amount
    posted: L.PostedEntry
    request: L.EntryRequest | None  # None for a reversal (made by ``reverse``)
    reverses: int | None = None
    reversed_by: int | None = None


def machine_for(engine: Engine) -> type[RuleBasedStateMachine]:
    class LedgerMachine(RuleBasedStateMachine):
        entries = Bundle("entries")

        @initialize()
        def open_books(self) -> None:
            self.codes: list[str] = run_transaction(engine, lambda c: fresh_accounts(c, *PARENTS, tag="M"))
            with engine.begin() as conn:
                closed = L.closed_through(conn)
                self.next_id = head_seq(conn) + 1
            self.base = max(DAY, closed + timedelta(days=1)) if closed else DAY
            self.closed_through: date | None = closed
            self.closed_accounts: set[str] = set()
            self.balances: dict[str, int] = dict.fromkeys(self.codes, 0)
            self.model: dict[int, ModelEntry] = {}

        # -- helpers ---------------------------------------------------------------------------
        def day(self, offset: int) -> date:
            return self.base + timedelta(days=offset)

        def is_closed(self, day: date) -> bool:
            return self.closed_through is not None and day <= self.closed_through

        def expect_refusal(self, errors: list[type[L.LedgerError]], work: Any) -> None:
            """The ledger refuses with one of ``errors`` and writes nothing."""
            with pytest.raises(tuple(errors)) as info:
                run_transaction(engine, work)
            event(f"refused: {info.value.code}")  # shown by --hypothesis-show-statistics
            with engine.begin() as conn:
                assert head_seq(conn) == self.next_id - 1

        def record(self, posted: L.PostedEntry, day: date, net: dict[str, int], **extra: Any) -> int:
            assert not posted.replayed
            event("posted" if "reverses" not in extra else "reversed")
            assert posted.id == self.next_id, "ids are gapless in commit order"
            self.next_id += 1
            for code, amount in net.items():
                self.balances[code] += amount
            self.model[posted.id] = ModelEntry(posted.id, day, net, posted, **extra)
            return posted.id

        # -- rules -----------------------------------------------------------------------------
        @rule(target=entries, legs=balanced_legs(), offset=st.integers(0, DAYS - 1))
        def post(self, legs: list[tuple[int, str, int]], offset: int) -> Any:
            day = self.day(offset)
            request = L.EntryRequest(
                day, "model", "test:model", unique("m"),
                tuple(L.Line(self.codes[i], side, amount) for i, side, amount in legs),  # type: ignore[arg-type]
            )
            net: dict[str, int] = defaultdict(int)
            for line in request.lines:
                net[line.account] += line.amount if line.side == "debit" else -line.amount
            errors: list[type[L.LedgerError]] = []
            if self.is_closed(day):
                errors.append(L.ClosedPeriod)
            if self.closed_accounts & set(net):
                errors.append(L.ClosedAccount)
            if errors:
                self.expect_refusal(errors, lambda c: L.post(c, request))
                return multiple()
            posted = run_transaction(engine, lambda c: L.post(c, request))
            return self.record(posted, day, dict(net), request=request)

        @rule(entry_id=entries)
        def replay(self, entry_id: int) -> None:
            entry = self.model[entry_id]
            if entry.request is not None:
                again = run_transaction(engine, lambda c: L.post(c, entry.request))  # type: ignore[arg-type]
            else:
                assert entry.reverses is not None
                again = run_transaction(
                    engine,
                    lambda c: L.reverse(
                        c, entry.reverses, effective_date=entry.day, idempotency_key=entry.posted.idempotency_key  # type: ignore[arg-type]
                    ),
                )
            assert (again.id, again.hash, again.recorded_at, again.replayed) == (
                entry.id, entry.posted.hash, entry.posted.recorded_at, True
            )
            with engine.begin() as conn:
                assert head_seq(conn) == self.next_id - 1

        @rule(entry_id=entries, how=st.sampled_from(["amount", "description", "other"]))
        def conflict(self, entry_id: int, how: str) -> None:
            entry = self.model[entry_id]
            key = entry.posted.idempotency_key
            if how == "amount" and entry.request is not None:
                other = replace(entry.request, lines=tuple(replace(line, amount=line.amount * 2) for line in entry.request.lines))
            elif how == "description" and entry.request is not None:
                other = replace(entry.request, description="model, edited")
            else:
                other = L.EntryRequest(
                    entry.day, "other", "test:model", key,
                    (L.Line.debit(self.codes[0], 1), L.Line.credit(self.codes[1], 1)),
                )
            self.expect_refusal([L.IdempotencyConflict], lambda c: L.post(c, other))

        @rule(target=entries, entry_id=entries, offset=st.integers(0, DAYS - 1))
        def reverse(self, entry_id: int, offset: int) -> Any:
            entry = self.model[entry_id]
            day = self.day(offset)
            key = unique("mr")
            errors: list[type[L.LedgerError]] = []
            if entry.reversed_by is not None:
                errors.append(L.AlreadyReversed)
            if self.is_closed(day):
                errors.append(L.ClosedPeriod)
            if self.closed_accounts & set(entry.net):
                errors.append(L.ClosedAccount)
            if errors:
                self.expect_refusal(errors, lambda c: L.reverse(c, entry_id, effective_date=day, idempotency_key=key))
                return multiple()
            posted = run_transaction(engine, lambda c: L.reverse(c, entry_id, effective_date=day, idempotency_key=key))
            entry.reversed_by = posted.id
            return self.record(
                posted, day, {code: -amount for code, amount in entry.net.items()}, request=None, reverses=entry_id
            )

        @precondition(lambda self: any(e.reversed_by is not None for e in self.model.values()))
        @rule(pick=st.integers(0, 1000), offset=st.integers(0, DAYS - 1))
        def reverse_again(self, pick: int, offset: int) -> None:
            done = sorted(e.id for e in self.model.values() if e.reversed_by is not None)
            entry = self.model[done[pick % len(done)]]
            day = self.day(offset)
            errors: list[type[L.LedgerError]] = [L.AlreadyReversed]
            if self.is_closed(day):
                errors.append(L.ClosedPeriod)
            if self.closed_accounts & set(entry.net):
                errors.append(L.ClosedAccount)
            key = unique("mr")
            self.expect_refusal(errors, lambda c: L.reverse(c, entry.id, effective_date=day, idempotency_key=key))

        @precondition(lambda self: len(self.model) % 5 == 4)  # now and then
        @rule()
        def reverse_a_missing_entry(self) -> None:
            missing = self.next_id + 1000
            self.expect_refusal(
                [L.EntryNotFound], lambda c: L.reverse(c, missing, effective_date=self.day(DAYS - 1), idempotency_key=unique("x"))
            )

        @rule(offset=st.integers(0, CLOSABLE_DAYS - 1))
        def close_day(self, offset: int) -> None:
            day = self.day(offset)
            if self.is_closed(day):
                with pytest.raises(L.ClosedPeriod):
                    run_transaction(engine, lambda c: L.close_day(c, day, closed_by="model"))
                return
            record = run_transaction(engine, lambda c: L.close_day(c, day, closed_by="model"))
            assert (record.business_date, record.head_seq) == (day, self.next_id - 1)
            self.closed_through = day

        @precondition(lambda self: len(self.closed_accounts) < 2)
        @rule(index=st.integers(0, len(PARENTS) - 1))
        def close_account(self, index: int) -> None:
            code = self.codes[index]
            account = run_transaction(engine, lambda c: L.close_account(c, code))
            assert account.status == "closed"
            self.closed_accounts.add(code)

        @rule(offset=st.integers(-1, DAYS))
        def balances_as_of(self, offset: int) -> None:
            day = self.day(offset)
            expected = dict.fromkeys(self.codes, 0)
            for entry in self.model.values():
                if entry.day <= day:
                    for code, amount in entry.net.items():
                        expected[code] += amount
            with engine.begin() as conn:
                assert {code: L.balance(conn, code, as_of=day).net_debit for code in self.codes} == expected

        @rule(entry_id=entries)
        def balances_at_the_time_of(self, entry_id: int) -> None:
            expected = dict.fromkeys(self.codes, 0)
            for entry in self.model.values():
                if entry.id <= entry_id:
                    for code, amount in entry.net.items():
                        expected[code] += amount
            moment = self.model[entry_id].posted.recorded_at
            with engine.begin() as conn:
                assert {code: L.balance_at(conn, code, moment).net_debit for code in self.codes} == expected

        @rule()
        def audit(self) -> None:
            with engine.begin() as conn:
                report = L.verify(conn)
            assert report.ok, report.problems

        # -- invariants ------------------------------------------------------------------------
        @invariant()
        def balances_match_the_model(self) -> None:
            if not hasattr(self, "codes"):
                return
            with engine.begin() as conn:
                real = {code: L.balance(conn, code).net_debit for code in self.codes}
                status = {code: L.find_account(conn, code).status for code in self.codes}  # type: ignore[union-attr]
                assert L.closed_through(conn) == self.closed_through
            assert real == self.balances
            assert {code for code, s in status.items() if s == "closed"} == self.closed_accounts

        def teardown(self) -> None:
            if not hasattr(self, "codes"):
                return
            with engine.begin() as conn:
                report = L.verify(conn)
                assert L.trial_balance(conn).balanced
            assert report.ok, report.problems

    return LedgerMachine


def test_ledger_behaves_like_its_model(engine: Engine) -> None:
    run_state_machine_as_test(
        machine_for(engine),
        settings=settings(
            max_examples=15,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        ),
    )
