"""Notice numbers (通知書番号): fiscal year + sequence + check digit, e.g. ``2026-00012345-7``.

The 13 digits are the fiscal year (4), a sequence unique within that year (8, zero-padded) and
one Damm check digit computed over the first 12.

Why Damm: its table is a totally anti-symmetric quasigroup of order 10. Being a quasigroup
(every row and every column a permutation of 0–9) means changing any one digit changes the
final interim digit, so every single-digit error is caught. Weak total anti-symmetry
(``(c∗x)∗y = (c∗y)∗x`` only when ``x = y``) means swapping two different adjacent digits, the
check digit included, changes it too, so every adjacent transposition is caught. Both are
properties of the table alone, checked exhaustively in the tests. It needs no eleventh symbol:
weighted mod 11 leaves remainder 10 without a digit (an ``X``, or refusing ~9 % of sequences),
and Luhn misses the transposition 09 ↔ 90. Verhoeff catches the same errors as Damm with three
tables instead of one.

Input from residents is forgiving: full-width digits (``２０２６``), spaces (also U+3000),
and hyphen look-alikes (``－``, ``ー``, ``−``, ``–`` …) anywhere are accepted.

Errors carry a stable ``code``:

    NoticeNumberError
        notice_number.invalid           not 13 digits after normalising, or out of range
        notice_number.bad_check_digit   the check digit does not match (a typo)
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Any

MIN_FISCAL_YEAR = 1000
MAX_FISCAL_YEAR = 9999
MIN_SEQUENCE = 1
MAX_SEQUENCE = 99_999_999
DIGITS = 13
# Anything longer is not a mistyped notice number; refuse before normalising it.
MAX_INPUT_LENGTH = 64

# Damm's totally anti-symmetric quasigroup of order 10 (H. M. Damm, 2004), zero diagonal.
DAMM_TABLE: tuple[tuple[int, ...], ...] = (
    (0, 3, 1, 7, 5, 9, 8, 6, 4, 2),
    (7, 0, 9, 2, 1, 5, 4, 8, 6, 3),
    (4, 2, 0, 6, 8, 7, 1, 3, 5, 9),
    (1, 7, 5, 0, 9, 8, 3, 4, 2, 6),
    (6, 1, 2, 3, 0, 4, 5, 9, 7, 8),
    (3, 6, 7, 4, 2, 0, 9, 5, 8, 1),
    (5, 8, 6, 9, 7, 2, 0, 1, 3, 4),
    (8, 9, 4, 5, 3, 6, 2, 0, 1, 7),
    (9, 4, 3, 8, 6, 1, 7, 2, 0, 5),
    (2, 5, 8, 1, 4, 3, 6, 7, 9, 0),
)

# Dashes residents type for "-": ASCII, Unicode hyphens and dashes, minus sign, and the
# katakana prolonged sound mark that Japanese IMEs produce for "-" (NFKC turns ｰ and － into
# ー and -).
_SEPARATORS = frozenset("-\u2010\u2011\u2012\u2013\u2014\u2015\u2212\u30fc")


class NoticeNumberError(ValueError):
    """A notice number that cannot be accepted; ``code`` is stable, ``message`` is for humans."""

    def __init__(self, code: str, message: str, /, **detail: Any) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.detail = detail


@dataclass(frozen=True)
class NoticeNumber:
    """A valid notice number; ``check_digit`` always matches the other twelve digits.

    Attributes:
        fiscal_year: four-digit fiscal year (年度).
        sequence: 1..99,999,999, unique within the fiscal year.
        check_digit: Damm check digit over ``fiscal_year`` and ``sequence``.
    """

    fiscal_year: int
    sequence: int
    check_digit: int

    def __post_init__(self) -> None:
        _check_parts(self.fiscal_year, self.sequence)
        if self.check_digit != damm_check_digit(self._payload):
            raise NoticeNumberError(
                "notice_number.bad_check_digit", "check digit does not match", value=self.digits
            )

    @property
    def _payload(self) -> str:
        return f"{self.fiscal_year:04d}{self.sequence:08d}"

    @property
    def digits(self) -> str:
        """The 13 digits without separators, for storage and QR payloads."""
        return f"{self._payload}{self.check_digit}"

    @property
    def display(self) -> str:
        return f"{self.fiscal_year:04d}-{self.sequence:08d}-{self.check_digit}"

    def __str__(self) -> str:
        return self.display


def damm_check_digit(digits: str) -> int:
    """The digit that, appended to ``digits``, makes the Damm interim digit 0."""
    interim = 0
    for char in digits:
        if not ("0" <= char <= "9"):
            raise NoticeNumberError("notice_number.invalid", "only ASCII digits are allowed")
        interim = DAMM_TABLE[interim][ord(char) - 48]
    return interim


def make_notice_number(fiscal_year: int, sequence: int) -> str:
    """Display form ``YYYY-SSSSSSSS-C`` for a (fiscal year, sequence) pair."""
    _check_parts(fiscal_year, sequence)
    payload = f"{fiscal_year:04d}{sequence:08d}"
    return NoticeNumber(fiscal_year, sequence, damm_check_digit(payload)).display


def parse_notice_number(text: str) -> NoticeNumber:
    """Read a notice number as typed, with or without separators, half- or full-width.

    The check digit is verified before the ranges, so a typo always reports
    ``notice_number.bad_check_digit``.
    """
    if not isinstance(text, str) or len(text) > MAX_INPUT_LENGTH:
        raise NoticeNumberError("notice_number.invalid", "not a notice number")
    normalised = unicodedata.normalize("NFKC", text)
    compact = "".join(char for char in "".join(normalised.split()) if char not in _SEPARATORS)
    if len(compact) != DIGITS or not all("0" <= char <= "9" for char in compact):
        raise NoticeNumberError(
            "notice_number.invalid", f"a notice number has {DIGITS} digits", value=text
        )
    if damm_check_digit(compact) != 0:
        raise NoticeNumberError(
            "notice_number.bad_check_digit", "check digit does not match", value=text
        )
    fiscal_year, sequence = int(compact[:4]), int(compact[4:12])
    _check_parts(fiscal_year, sequence)
    return NoticeNumber(fiscal_year, sequence, int(compact[12]))


def _check_parts(fiscal_year: object, sequence: object) -> None:
    for name, value, low, high in (
        ("fiscal_year", fiscal_year, MIN_FISCAL_YEAR, MAX_FISCAL_YEAR),
        ("sequence", sequence, MIN_SEQUENCE, MAX_SEQUENCE),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise NoticeNumberError(
                "notice_number.invalid", f"{name} must be an int in {low}..{high}", field=name
            )
