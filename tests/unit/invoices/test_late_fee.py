from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from invoices.late_fee import (
    LateFee,
    LateFeeError,
    Period,
    RateTable,
    chargeable_base,
    compute_late_fee,
    lower_rate_period_end,
)

RATES = RateTable.load_default()


def fee(principal: int, due: date, paid: date, months: int = 1) -> LateFee:
    return compute_late_fee(principal, due, paid, rates=RATES, first_period_months=months)


def table(years: str, caps: str = 'first_period_cap = "7.3"\nafter_period_cap = "14.6"') -> str:
    return f"[statutory]\n{caps}\n[years]\n{years}\n"


# --- published worked examples -------------------------------------------------------------


def test_toyohashi_example_three_segments() -> None:
    # Toyohashi's page (https://www.city.toyohashi.lg.jp/dd.aspx?menuid=10874, read through the
    # cache at www-city-toyohashi-lg-jp.cache.yimg.jp): 固定資産税 1期 ¥65,000 due 2021-05-31,
    # paid 2022-01-31. The segments follow from the rates: 6/1–6/30 (30 days, 2021 first period
    # 2.5 %) = 65,000×2.5 %×30/365 = 133.56 → 133; 7/1–12/31 (184 days, 2021 after 8.8 %)
    # = 2,883.5 → 2,883; 2022-01-01–01-31 (31 days, 2022 after 8.7 %) = 480.3 → 480.
    result = fee(65_000, date(2021, 5, 31), date(2022, 1, 31))
    assert [(s.start, s.end, s.days, s.rate, s.amount) for s in result.segments] == [
        (date(2021, 6, 1), date(2021, 6, 30), 30, Decimal("2.5"), 133),
        (date(2021, 7, 1), date(2021, 12, 31), 184, Decimal("8.8"), 2_883),
        (date(2022, 1, 1), date(2022, 1, 31), 31, Decimal("8.7"), 480),
    ]
    assert result.segments_total == 3_496
    assert result.amount == 3_400
    assert result.base == 65_000
    assert not result.provisional


def test_year_end_splits_the_first_period() -> None:
    # domain.md: 4 days at 2.5 % in 2021, then 27 days at 2.4 % in 2022. Due 2021-12-27 gives
    # 12/28–12/31 (4 days) and 2022-01-01–01-27 (27 days), the first month ending 2022-01-27.
    result = fee(1_000_000, date(2021, 12, 27), date(2022, 1, 27))
    assert [(s.days, s.rate, s.period) for s in result.segments] == [
        (4, Decimal("2.5"), Period.FIRST),
        (27, Decimal("2.4"), Period.FIRST),
    ]
    # 1,000,000×2.5 %×4/365 = 273.97 → 273; 1,000,000×2.4 %×27/365 = 1,775.3 → 1,775.
    assert [s.amount for s in result.segments] == [273, 1_775]
    assert result.amount == 2_000


def test_miyakonojo_example_due_on_month_end() -> None:
    # https://www.city.miyakonojo.miyazaki.jp/site/mizu/2414.html — ¥45,000 due 2017-04-30
    # paid 2017-08-31: 5/1–5/31 (31 days) ×2.7 % = 103, 6/1–8/31 (92 days) ×9.0 % = 1,020,
    # total 1,123 → ¥1,100. It also pins the month-end rule: the first month after a 4/30 due
    # date is all of May (民法 143条), not 5/1–5/30.
    result = fee(45_000, date(2017, 4, 30), date(2017, 8, 31))
    assert [(s.start, s.end, s.days, s.amount) for s in result.segments] == [
        (date(2017, 5, 1), date(2017, 5, 31), 31, 103),
        (date(2017, 6, 1), date(2017, 8, 31), 92, 1_020),
    ]
    assert result.amount == 1_100


def test_kitami_example() -> None:
    # http://www.city.kitami.lg.jp/docs/1933/ (2017 rates) — 市道民税 2期 ¥75,000 due 8/31 paid
    # 11/15: first month 9/1–9/30, 75,000×30×2.7 %/365 ≈ 166; the page states ¥1,000 in total
    # (the stored excerpt stops before the second line: 10/1–11/15, 46 days ×9.0 % = 850).
    result = fee(75_000, date(2017, 8, 31), date(2017, 11, 15))
    assert result.segments[0].amount == 166
    assert (result.segments[1].start, result.segments[1].days) == (date(2017, 10, 1), 46)
    assert result.amount == 1_000


def test_obu_example_first_month() -> None:
    # https://www.city.obu.aichi.jp/kurashi/zeikin/noufu/1001720.html — 市県民税 ¥100,000 due
    # 2023-08-31 paid 2024-02-10: first month 100,000×2.4 %×30/365 = 197.260 → 197 (the
    # stored excerpt ends there). The later days split at 31 December: 92 days in 2023, 41 in
    # 2024, both at 8.7 %.
    result = fee(100_000, date(2023, 8, 31), date(2024, 2, 10))
    assert (result.segments[0].days, result.segments[0].amount) == (30, 197)
    assert [(s.start, s.days) for s in result.segments[1:]] == [
        (date(2023, 10, 1), 92),
        (date(2024, 1, 1), 41),
    ]


# --- lower-rate period end -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("due", "months", "end"),
    [
        (date(2025, 8, 1), 1, date(2025, 9, 1)),  # domain.md
        (date(2024, 1, 31), 1, date(2024, 2, 29)),  # domain.md, leap year
        (date(2023, 1, 31), 1, date(2023, 2, 28)),
        (date(2023, 1, 30), 1, date(2023, 2, 28)),  # 2/30 does not exist: last day of Feb
        (date(2024, 1, 28), 1, date(2024, 2, 28)),
        (date(2017, 4, 30), 1, date(2017, 5, 31)),  # starts on the 1st: whole calendar month
        (date(2023, 2, 28), 1, date(2023, 3, 31)),
        (date(2021, 12, 27), 1, date(2022, 1, 27)),
        (date(2024, 1, 31), 3, date(2024, 4, 30)),  # three-month premiums
        (date(2024, 11, 30), 3, date(2025, 2, 28)),  # Dec, Jan, Feb
        (date(2024, 11, 29), 3, date(2025, 2, 28)),  # 2/30 does not exist
        (date(2025, 4, 30), 3, date(2025, 7, 31)),
    ],
)
def test_lower_rate_period_end(due: date, months: int, end: date) -> None:
    assert lower_rate_period_end(due, months) == end


def test_three_month_first_period_charges_the_lower_rate_longer() -> None:
    one = fee(500_000, date(2024, 1, 31), date(2024, 4, 30), months=1)
    three = fee(500_000, date(2024, 1, 31), date(2024, 4, 30), months=3)
    assert [s.period for s in three.segments] == [Period.FIRST]
    assert [s.period for s in one.segments] == [Period.FIRST, Period.AFTER]
    assert three.amount < one.amount


def test_leap_day_is_counted_on_a_365_day_year() -> None:
    result = fee(365_000, date(2024, 2, 27), date(2024, 2, 29))
    # 2 days ×2.4 %: 365,000×2.4 %×2/365 = 48 exactly; leap years are not /366.
    assert result.segments[0].days == 2
    assert result.segments[0].amount == 48


# --- thresholds and rounding ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("principal", "base"), [(0, 0), (1_999, 0), (2_000, 2_000), (2_999, 2_000), (65_432, 65_000)]
)
def test_chargeable_base(principal: int, base: int) -> None:
    assert chargeable_base(principal) == base


def test_principal_under_2000_is_never_charged() -> None:
    result = fee(1_999, date(2015, 1, 31), date(2025, 1, 31))
    assert result.amount == 0
    assert result.base == 0
    assert result.days_late == (date(2025, 1, 31) - date(2015, 1, 31)).days


def test_total_under_1000_is_not_charged_and_1000_is() -> None:
    # 2022 after-period 8.7 %: 100,000×8.7 %×d/365 per day ≈ 23.8; the total crosses ¥1,000
    # between day 43 and day 44 of the year (the first month adds 197).
    due = date(2021, 12, 31)  # first month = January 2022 (31 days ×2.4 % = 203)
    below = fee(100_000, due, date(2022, 2, 13))  # 203 + 13 days ×8.7 % (309) = 512
    assert below.segments_total < 1_000
    assert below.amount == 0
    crossing = [fee(100_000, due, due + timedelta(days=n)) for n in range(30, 80)]
    first_charged = next(r for r in crossing if r.amount)
    assert first_charged.segments_total >= 1_000
    assert first_charged.amount == first_charged.segments_total // 100 * 100


def test_zero_on_and_before_due_date() -> None:
    for paid in (date(2025, 5, 30), date(2025, 5, 31)):
        result = fee(1_000_000, date(2025, 5, 31), paid)
        assert (result.amount, result.segments, result.provisional) == (0, (), False)


# --- rate table ----------------------------------------------------------------------------


def test_default_table_covers_2014_to_2026_with_decimal_rates() -> None:
    assert (RATES.first_year, RATES.last_year) == (2014, 2026)
    rates_2026, provisional = RATES.for_year(2026)
    assert (rates_2026.first_period, rates_2026.after_period) == (Decimal("2.8"), Decimal("9.1"))
    assert not provisional
    assert RATES.for_year(2016)[0].after_period == Decimal("9.1")
    assert (RATES.first_period_cap, RATES.after_period_cap) == (Decimal("7.3"), Decimal("14.6"))
    assert RateTable.load_default() is RATES


def test_year_after_table_is_carried_forward_and_provisional() -> None:
    result = fee(1_000_000, date(2026, 12, 20), date(2027, 3, 31))
    assert [(s.start, s.rate, s.period, s.provisional) for s in result.segments] == [
        (date(2026, 12, 21), Decimal("2.8"), Period.FIRST, False),
        (date(2027, 1, 1), Decimal("2.8"), Period.FIRST, True),  # 2026's rate carried forward
        (date(2027, 1, 21), Decimal("9.1"), Period.AFTER, True),
    ]
    assert result.provisional


def test_provisional_rate_is_irrelevant_when_nothing_is_chargeable() -> None:
    result = fee(1_500, date(2026, 12, 20), date(2027, 3, 31))
    assert result.segments[-1].provisional
    assert not result.provisional


def test_year_before_table_is_refused() -> None:
    with pytest.raises(LateFeeError) as error:
        fee(100_000, date(2013, 12, 1), date(2014, 2, 1))
    assert error.value.code == "late_fee.rate_missing"
    assert error.value.detail["year"] == 2013


def test_custom_table_from_toml() -> None:
    rates = RateTable.from_toml(
        table('2030 = { first_period = "7.3", after_period = "14.6" }')
    )
    result = compute_late_fee(365_000, date(2030, 1, 31), date(2030, 3, 2), rates=rates)
    # 2/1–2/28 at 7.3 % (28 days) = 2,044; 3/1–3/2 at 14.6 % = 292.
    assert [s.amount for s in result.segments] == [2_044, 292]
    assert result.amount == 2_300


@pytest.mark.parametrize(
    "text",
    [
        "not = [toml",
        "[years]\n2020 = { first_period = \"1\", after_period = \"2\" }",  # no [statutory]
        table(""),  # no years
        table('2020 = { first_period = 2.6, after_period = "8.9" }'),  # float, not string
        table('2020 = { first_period = "abc", after_period = "8.9" }'),
        table('2020 = { first_period = "NaN", after_period = "8.9" }'),
        table('2020 = { first_period = "-1", after_period = "8.9" }'),
        table('2020 = { first_period = "26", after_period = "8.9" }'),  # above 7.3 cap: typo
        table('2020 = { first_period = "2.6", after_period = "15" }'),  # above 14.6 cap
        table('2020 = { first_period = "7", after_period = "6" }'),  # first above after
        table('2020 = { first_period = "2.6" }'),
        table('2020 = { first_period = "2.6", after_period = "8.9", extra = "1" }'),
        table('20x0 = { first_period = "2.6", after_period = "8.9" }'),
        table(
            '2020 = { first_period = "2.6", after_period = "8.9" }\n'
            '2022 = { first_period = "2.4", after_period = "8.7" }'  # gap: 2021 missing
        ),
        table(
            '2020 = { first_period = "2.6", after_period = "8.9" }',
            caps='first_period_cap = "7.3"',  # after_period_cap missing
        ),
        table(
            '2020 = { first_period = "2.6", after_period = "8.9" }',
            caps='first_period_cap = "7.3"\nafter_period_cap = "14.6"\nother = "1"',
        ),
    ],
)
def test_bad_rate_table_is_refused(text: str) -> None:
    with pytest.raises(LateFeeError) as error:
        RateTable.from_toml(text)
    assert error.value.code == "late_fee.bad_rate_table"


# --- refusals ------------------------------------------------------------------------------


@pytest.mark.parametrize("principal", [1000.0, "1000", True, None, Decimal("1000")])
def test_non_int_principal_is_refused(principal: object) -> None:
    with pytest.raises(LateFeeError) as error:
        fee(principal, date(2025, 1, 31), date(2025, 3, 1))  # type: ignore[arg-type]
    assert error.value.code == "late_fee.invalid_principal"


def test_negative_principal_is_refused() -> None:
    with pytest.raises(LateFeeError) as error:
        fee(-1, date(2025, 1, 31), date(2025, 3, 1))
    assert error.value.code == "late_fee.negative_principal"


@pytest.mark.parametrize("months", [0, -1, 13, True, 1.0, "1"])
def test_bad_first_period_months_is_refused(months: object) -> None:
    with pytest.raises(LateFeeError) as error:
        fee(10_000, date(2025, 1, 31), date(2025, 3, 1), months=months)  # type: ignore[arg-type]
    assert error.value.code == "late_fee.invalid_first_period_months"


@pytest.mark.parametrize(
    ("due", "paid"),
    [
        (datetime(2025, 1, 31, 12), date(2025, 3, 1)),
        (date(2025, 1, 31), datetime(2025, 3, 1, 9)),
        ("2025-01-31", date(2025, 3, 1)),
        (date(2025, 1, 31), None),
    ],
)
def test_non_date_is_refused(due: object, paid: object) -> None:
    with pytest.raises(LateFeeError) as error:
        fee(10_000, due, paid)  # type: ignore[arg-type]
    assert error.value.code == "late_fee.invalid_date"


def test_non_table_rates_are_refused() -> None:
    with pytest.raises(LateFeeError) as error:
        compute_late_fee(
            10_000, date(2025, 1, 31), date(2025, 3, 1), rates={}  # type: ignore[arg-type]
        )
    assert error.value.code == "late_fee.invalid_rate_table"


# --- properties ----------------------------------------------------------------------------

due_dates = st.dates(min_value=date(2014, 1, 1), max_value=date(2029, 12, 31))
principals = st.integers(min_value=0, max_value=50_000_000)
delays = st.integers(min_value=-40, max_value=2_500)
months = st.sampled_from([1, 3])


@given(principals, due_dates, delays, months)
def test_amount_is_zero_or_a_charged_multiple_of_100(
    principal: int, due: date, delay: int, n: int
) -> None:
    result = fee(principal, due, due + timedelta(days=delay), n)
    assert result.amount >= 0
    assert result.amount == 0 or (result.amount >= 1_000 and result.amount % 100 == 0)
    assert result.amount <= result.segments_total
    if principal < 2_000 or delay <= 0:
        assert result.amount == 0
    if delay <= 0:
        assert result.segments == ()


@given(principals, due_dates, delays, months)
def test_segments_tile_the_late_days(principal: int, due: date, delay: int, n: int) -> None:
    paid = due + timedelta(days=delay)
    result = fee(principal, due, paid, n)
    assert result.days_late == max(delay, 0)
    first_end = lower_rate_period_end(due, n)
    expected_start = due + timedelta(days=1)
    for segment in result.segments:
        assert segment.start == expected_start
        assert segment.days == (segment.end - segment.start).days + 1 >= 1
        assert segment.start.year == segment.end.year  # split at every 31 December
        assert (segment.period is Period.FIRST) == (segment.end <= first_end)
        assert (segment.start <= first_end) == (segment.end <= first_end)
        year_rates, provisional = RATES.for_year(segment.start.year)
        assert segment.rate == year_rates.rate(segment.period)
        assert segment.provisional == provisional
        expected_start = segment.end + timedelta(days=1)
    if result.segments:
        assert result.segments[-1].end == paid


@given(principals, due_dates, st.integers(0, 2_500), st.integers(0, 400), months)
def test_monotone_in_days(principal: int, due: date, delay: int, more: int, n: int) -> None:
    early = fee(principal, due, due + timedelta(days=delay), n)
    late = fee(principal, due, due + timedelta(days=delay + more), n)
    assert early.amount <= late.amount
    assert early.segments_total <= late.segments_total


@given(principals, st.integers(0, 5_000_000), due_dates, st.integers(0, 2_500), months)
def test_monotone_in_principal(principal: int, extra: int, due: date, delay: int, n: int) -> None:
    paid = due + timedelta(days=delay)
    assert fee(principal, due, paid, n).amount <= fee(principal + extra, due, paid, n).amount


@given(st.dates(min_value=date(1900, 1, 1), max_value=date(9000, 12, 31)), months)
def test_lower_rate_period_length(due: date, n: int) -> None:
    end = lower_rate_period_end(due, n)
    length = (end - due).days
    # n calendar months counted from the day after the due date: 28..31 days per month.
    assert 28 * n <= length <= 31 * n
    assert lower_rate_period_end(due + timedelta(days=1), n) >= end
