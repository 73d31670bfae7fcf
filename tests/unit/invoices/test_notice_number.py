from __future__ import annotations

from itertools import product

import pytest
from hypothesis import given
from hypothesis import strategies as st

from invoices.notice_number import (
    DAMM_TABLE,
    NoticeNumber,
    NoticeNumberError,
    damm_check_digit,
    make_notice_number,
    parse_notice_number,
)

fiscal_years = st.integers(min_value=1000, max_value=9999)
sequences = st.integers(min_value=1, max_value=99_999_999)


def compact(display: str) -> str:
    return display.replace("-", "")


# --- the table's properties, which are what make the guarantees hold -----------------------


def test_damm_table_is_a_quasigroup() -> None:
    # Every row and column is a permutation: a single changed digit changes the result.
    for row in DAMM_TABLE:
        assert sorted(row) == list(range(10))
    for column in zip(*DAMM_TABLE):
        assert sorted(column) == list(range(10))


def test_damm_table_is_weakly_totally_antisymmetric() -> None:
    # (c*x)*y == (c*y)*x only when x == y: swapping two different adjacent digits is caught.
    for c, x, y in product(range(10), repeat=3):
        if x != y:
            assert DAMM_TABLE[DAMM_TABLE[c][x]][y] != DAMM_TABLE[DAMM_TABLE[c][y]][x]


def test_damm_known_value() -> None:
    # The worked example from Damm's algorithm descriptions: 572 → check digit 4.
    assert damm_check_digit("572") == 4
    assert damm_check_digit("5724") == 0


# --- format and round trip -----------------------------------------------------------------


def test_display_form() -> None:
    number = make_notice_number(2026, 12_345)
    assert number.startswith("2026-00012345-")
    assert len(number) == 15
    assert int(number[-1]) == damm_check_digit("202600012345")


@given(fiscal_years, sequences)
def test_round_trip(fiscal_year: int, sequence: int) -> None:
    display = make_notice_number(fiscal_year, sequence)
    parsed = parse_notice_number(display)
    assert (parsed.fiscal_year, parsed.sequence) == (fiscal_year, sequence)
    assert str(parsed) == parsed.display == display
    assert parse_notice_number(parsed.digits) == parsed


@given(fiscal_years, sequences)
def test_distinct_pairs_give_distinct_numbers(fiscal_year: int, sequence: int) -> None:
    other = sequence + 1 if sequence < 99_999_999 else sequence - 1
    assert make_notice_number(fiscal_year, sequence) != make_notice_number(fiscal_year, other)


@pytest.mark.parametrize(
    "typed",
    [
        "{y}-{s}-{c}",
        "{y}{s}{c}",
        "{y} {s} {c}",
        " {y}-{s}-{c}\n",
        "{y}　{s}　{c}",  # ideographic spaces
        "{Y}－{S}－{C}",  # full-width digits and hyphen
        "{Y}ー{S}ー{C}",  # katakana prolonged sound mark, what IMEs give for "-"
        "{y}−{s}–{c}",  # minus sign, en dash
        "{y}-{s1} {s2}-{c}",  # grouped however the resident likes
    ],
)
def test_parse_accepts_what_residents_type(typed: str) -> None:
    display = make_notice_number(2026, 12_345)
    year, sequence, check = display.split("-")
    wide = str.maketrans("0123456789", "０１２３４５６７８９")
    text = typed.format(
        y=year,
        s=sequence,
        c=check,
        Y=year.translate(wide),
        S=sequence.translate(wide),
        C=check.translate(wide),
        s1=sequence[:4],
        s2=sequence[4:],
    )
    parsed = parse_notice_number(text)
    assert (parsed.fiscal_year, parsed.sequence, parsed.display) == (2026, 12_345, display)


# --- error detection -----------------------------------------------------------------------


@given(fiscal_years, sequences)
def test_every_single_digit_change_is_detected(fiscal_year: int, sequence: int) -> None:
    digits = compact(make_notice_number(fiscal_year, sequence))
    for position, replacement in product(range(len(digits)), "0123456789"):
        if digits[position] == replacement:
            continue
        typo = digits[:position] + replacement + digits[position + 1 :]
        with pytest.raises(NoticeNumberError) as error:
            parse_notice_number(typo)
        assert error.value.code == "notice_number.bad_check_digit"


@given(fiscal_years, sequences)
def test_every_adjacent_transposition_is_detected(fiscal_year: int, sequence: int) -> None:
    digits = compact(make_notice_number(fiscal_year, sequence))
    for position in range(len(digits) - 1):
        a, b = digits[position], digits[position + 1]
        if a == b:
            continue
        swapped = digits[:position] + b + a + digits[position + 2 :]
        with pytest.raises(NoticeNumberError) as error:
            parse_notice_number(swapped)
        assert error.value.code == "notice_number.bad_check_digit"


def test_transposition_that_luhn_misses_is_caught() -> None:
    # 09 ↔ 90 keeps a Luhn sum unchanged; Damm catches it.
    digits = compact(make_notice_number(2026, 9_000))  # ...0009000…
    index = digits.index("09")
    swapped = digits[:index] + "90" + digits[index + 2 :]
    with pytest.raises(NoticeNumberError) as error:
        parse_notice_number(swapped)
    assert error.value.code == "notice_number.bad_check_digit"


# --- refusals ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "",
        "2026-00012345",  # check digit missing
        "2026-00012345-22",  # one digit too many
        "2026-0001234a-2",
        "2026/00012345/2",
        "2026-٠٠٠١٢٣٤٥-2",  # Arabic-Indic digits are digits, but not ours
        "1" * 65,
    ],
)
def test_malformed_text_is_refused(text: str) -> None:
    with pytest.raises(NoticeNumberError) as error:
        parse_notice_number(text)
    assert error.value.code == "notice_number.invalid"


@pytest.mark.parametrize("value", [None, 2026000123452, b"2026000123452"])
def test_non_string_is_refused(value: object) -> None:
    with pytest.raises(NoticeNumberError) as error:
        parse_notice_number(value)  # type: ignore[arg-type]
    assert error.value.code == "notice_number.invalid"


def test_valid_check_digit_but_sequence_zero_is_refused() -> None:
    digits = "2026" + "00000000"
    with pytest.raises(NoticeNumberError) as error:
        parse_notice_number(digits + str(damm_check_digit(digits)))
    assert error.value.code == "notice_number.invalid"


def test_valid_check_digit_but_three_digit_year_is_refused() -> None:
    digits = "0999" + "00000001"
    with pytest.raises(NoticeNumberError) as error:
        parse_notice_number(digits + str(damm_check_digit(digits)))
    assert error.value.code == "notice_number.invalid"


@pytest.mark.parametrize(
    ("fiscal_year", "sequence"),
    [
        (999, 1),
        (10_000, 1),
        (2026, 0),
        (2026, 100_000_000),
        (2026, -1),
        (True, 1),
        (2026, True),
        ("2026", 1),
        (2026, 1.0),
    ],
)
def test_make_refuses_out_of_range_parts(fiscal_year: object, sequence: object) -> None:
    with pytest.raises(NoticeNumberError) as error:
        make_notice_number(fiscal_year, sequence)  # type: ignore[arg-type]
    assert error.value.code == "notice_number.invalid"


def test_constructing_with_a_wrong_check_digit_is_refused() -> None:
    right = parse_notice_number(make_notice_number(2026, 1))
    with pytest.raises(NoticeNumberError) as error:
        NoticeNumber(2026, 1, (right.check_digit + 1) % 10)
    assert error.value.code == "notice_number.bad_check_digit"
