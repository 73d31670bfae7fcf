"""Processing fees Stripe deducts from a charge before it reaches the balance."""

from __future__ import annotations

from decimal import Decimal


def processing_fee(amount: int, rate: Decimal, rounding: str) -> int:
    """Fee in whole yen for a JPY charge of `amount`.

    Stripe does not publish its rounding rule for zero-decimal currencies; the sandbox
    rounds `amount × rate` to the nearest yen with `rounding` (default half up), so
    ¥1,000 → ¥36, ¥125 → ¥4.5 → ¥5, ¥50 → ¥1.8 → ¥2. Invariant: 0 ≤ fee ≤ amount.
    """
    if amount < 0:
        raise ValueError("fees are computed on positive charge amounts")
    fee = int((Decimal(amount) * rate).quantize(Decimal(1), rounding=rounding))
    return min(max(fee, 0), amount)
