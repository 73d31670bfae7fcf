"""Fees, business days and the controllable clock (pure functions)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.sandbox.business_days import add_business_days, jst_date, stripe_date_stamp
from gateway.sandbox.clock import SandboxClock
from gateway.sandbox.fees import processing_fee

RATE = Decimal("0.036")


@pytest.mark.parametrize(
    ("amount", "fee"),
    [(1000, 36), (12300, 443), (125, 5), (50, 2), (300, 11), (99_999_999, 3_600_000)],
)
def test_card_fee_is_3_6_percent_rounded_half_up(amount: int, fee: int) -> None:
    assert processing_fee(amount, RATE, ROUND_HALF_UP) == fee


def test_rounding_mode_is_configurable() -> None:
    assert processing_fee(125, RATE, ROUND_HALF_EVEN) == 4  # 4.5 → 4 with banker's rounding


@given(st.integers(min_value=1, max_value=99_999_999))
def test_fee_is_the_nearest_yen_and_never_exceeds_the_amount(amount: int) -> None:
    fee = processing_fee(amount, RATE, ROUND_HALF_UP)
    assert 0 <= fee <= amount
    assert abs(Decimal(fee) - Decimal(amount) * RATE) <= Decimal("0.5")


def test_negative_amounts_are_refused() -> None:
    with pytest.raises(ValueError):
        processing_fee(-1, RATE, ROUND_HALF_UP)


def test_business_days_skip_weekends_and_configured_holidays() -> None:
    friday = date(2026, 6, 5)
    assert add_business_days(friday, 1, frozenset()) == date(2026, 6, 8)
    assert add_business_days(friday, 1, frozenset({date(2026, 6, 8)})) == date(2026, 6, 9)
    assert add_business_days(date(2026, 6, 6), 0, frozenset()) == date(2026, 6, 8)
    assert add_business_days(friday, 0, frozenset()) == friday


def test_jst_date_and_stripe_date_stamp() -> None:
    # 2026-06-01 23:30 UTC is already 2 June in Japan
    assert jst_date(int(datetime(2026, 6, 1, 23, 30, tzinfo=UTC).timestamp())) == date(2026, 6, 2)
    assert datetime.fromtimestamp(stripe_date_stamp(date(2026, 6, 2)), UTC) == datetime(2026, 6, 2, tzinfo=UTC)


def test_clock_freezes_advances_and_refuses_going_back() -> None:
    clock = SandboxClock()
    clock.set(1_000)
    assert clock.now() == 1_000 and clock.frozen
    assert clock.advance(60) == 1_060
    with pytest.raises(ValueError):
        clock.advance(-1)
    clock.set(2_000, frozen=False)
    assert not clock.frozen and 2_000 <= clock.now() <= 2_002
    clock.reset()
    assert clock.now() > 1_700_000_000
