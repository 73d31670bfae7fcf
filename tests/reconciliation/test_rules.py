"""The rules of a run without a database: the expected fee in Python and in SQL agree, and a
configuration that cannot be applied is refused."""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_HALF_EVEN, ROUND_HALF_UP, ROUND_UP, Decimal

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from reconciliation import ReconciliationConfig
from reconciliation.detection import expected_fee_sql


@pytest.mark.parametrize(("amount", "fee"), [(1000, 36), (2000, 72), (12300, 443), (125, 5), (50, 2), (0, 0)])
def test_the_contracted_fee_is_3_6_percent_rounded_half_up(amount: int, fee: int) -> None:
    assert ReconciliationConfig().expected_fee(amount) == fee


@given(
    amount=st.integers(min_value=1, max_value=99_999_999),
    rate=st.decimals(min_value=Decimal(0), max_value=Decimal("0.2"), places=4),
    rounding=st.sampled_from((ROUND_HALF_UP, ROUND_DOWN, ROUND_UP)),
)
def test_the_sql_fee_equals_the_python_fee(amount: int, rate: Decimal, rounding: str) -> None:
    config = ReconciliationConfig(fee_rate=rate, fee_rounding=rounding)
    engine = sa.create_engine("sqlite://")
    with engine.connect() as conn:
        value = conn.scalar(sa.select(expected_fee_sql(sa.literal(amount, sa.BigInteger), config)))
    assert value == config.expected_fee(amount)


def test_configurations_that_cannot_be_applied_are_refused() -> None:
    with pytest.raises(ValueError, match="fee_rounding"):
        ReconciliationConfig(fee_rounding=ROUND_HALF_EVEN)
    with pytest.raises(ValueError, match="fee_rate"):
        ReconciliationConfig(fee_rate=Decimal("1.5"))
    with pytest.raises(ValueError, match="bank_days_after"):
        ReconciliationConfig(bank_days_after=-1)
