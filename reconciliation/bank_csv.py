"""Bank statements as CSV (the format treasury staff can always produce from internet banking).

Columns (a header row is required; English or Japanese names, any order, extra columns ignored):

=================================  ========================================================
column                             meaning
=================================  ========================================================
``date`` / ``取引日`` / ``勘定日``     value date, ``YYYY-MM-DD`` or ``YYYY/MM/DD``
``amount`` / ``金額``                signed whole yen: deposits positive, withdrawals negative
``deposit`` / ``入金`` / ``入金金額``  instead of ``amount``: the deposit (yen, ≥ 0) …
``withdrawal`` / ``出金`` / ``出金金額`` … and the withdrawal (yen, ≥ 0); one of them per line
``description`` / ``摘要`` / ``振込依頼人名``  optional text
``reference`` / ``照会番号``           optional: the bank's reference, unique per account
=================================  ========================================================

Amounts may carry thousands separators (``"1,234,567"``) and a leading ``¥``/``￥``. The file is
UTF-8 (with or without BOM) or Shift_JIS (cp932). A line's key is its reference when given, else
its date, amount, description and how many identical lines came before it in the file — so
re-importing the same file, or an overlapping one, adds nothing.
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from datetime import date

from reconciliation.errors import BankStatementInvalid, LineError
from reconciliation.model import BankLine

ALIASES = {
    "date": ("date", "取引日", "勘定日", "日付"),
    "amount": ("amount", "金額", "取引金額"),
    "deposit": ("deposit", "入金", "入金金額", "入金額"),
    "withdrawal": ("withdrawal", "出金", "出金金額", "出金額"),
    "description": ("description", "摘要", "振込依頼人名", "内容"),
    "reference": ("reference", "照会番号"),
}
MAX_LINES = 200_000
_AMOUNT = re.compile(r"[+-]?[0-9]{1,15}")
_DATE = re.compile(r"([0-9]{4})[-/]([0-9]{1,2})[-/]([0-9]{1,2})")


def decode(data: bytes) -> str:
    for encoding in ("utf-8-sig", "cp932"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise BankStatementInvalid(
        "the file is neither UTF-8 nor Shift_JIS", (LineError(0, "csv.encoding", "cannot decode the file"),)
    )


def _columns(header: list[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for index, name in enumerate(header):
        cleaned = name.strip().lower()
        for field, names in ALIASES.items():
            if cleaned in names and field not in found:
                found[field] = index
    return found


def _amount(text: str) -> int | None:
    cleaned = text.strip().replace(",", "").lstrip("¥￥").strip()
    if not cleaned:
        return None
    if not _AMOUNT.fullmatch(cleaned):
        raise ValueError(text)
    return int(cleaned)


def _date(text: str) -> date:
    match = _DATE.fullmatch(text.strip())
    if match is None:
        raise ValueError(text)
    return date(int(match[1]), int(match[2]), int(match[3]))


def parse_csv(data: bytes, *, account: str = "") -> tuple[BankLine, ...]:
    """Every line of a CSV statement; refuses the whole file (naming each bad line) if any is bad."""
    rows = csv.reader(io.StringIO(decode(data), newline=""))
    header = next(rows, None)
    if header is None:
        raise BankStatementInvalid("the file is empty", (LineError(1, "csv.empty", "no header row"),))
    columns = _columns(header)
    missing = [name for name in ("date",) if name not in columns]
    if "amount" not in columns and not ("deposit" in columns or "withdrawal" in columns):
        missing.append("amount")
    if missing:
        raise BankStatementInvalid(
            f"the header lacks {', '.join(missing)}",
            tuple(LineError(1, "csv.missing_column", f"no {name} column", column=name) for name in missing),
        )
    errors: list[LineError] = []
    parsed: list[tuple[date, int, str, str | None]] = []
    for number, row in enumerate(rows, start=2):
        if not any(cell.strip() for cell in row):
            continue
        if number > MAX_LINES:
            raise BankStatementInvalid(f"more than {MAX_LINES:,} lines: split the file")

        def cell(field: str, row: list[str] = row) -> str:
            index = columns.get(field)
            return row[index] if index is not None and index < len(row) else ""

        try:
            value_date = _date(cell("date"))
        except ValueError:
            errors.append(LineError(number, "csv.invalid_date", f"{cell('date')!r} is not a date", column="date"))
            continue
        try:
            if "amount" in columns:
                amount = _amount(cell("amount"))
            else:
                deposit, withdrawal = _amount(cell("deposit")), _amount(cell("withdrawal"))
                if (deposit is None) == (withdrawal is None) or (deposit or 0) < 0 or (withdrawal or 0) < 0:
                    raise ValueError("one of deposit / withdrawal, not negative")
                amount = deposit if deposit is not None else -(withdrawal or 0)
            if amount is None:
                raise ValueError("empty")
        except ValueError:
            errors.append(LineError(number, "csv.invalid_amount", "the amount is not whole yen", column="amount"))
            continue
        reference = cell("reference").strip() or None
        parsed.append((value_date, amount, " ".join(cell("description").split())[:200], reference))
    if errors:
        raise BankStatementInvalid(f"{len(errors)} line(s) cannot be read", tuple(errors))
    seen: Counter[tuple[date, int, str]] = Counter()
    lines = []
    for value_date, amount, description, reference in parsed:
        if reference is not None:
            key = f"ref:{reference}"
        else:
            identity = (value_date, amount, description)
            key = f"{value_date.isoformat()}|{amount}|{description}|{seen[identity]}"[:200]
            seen[identity] += 1
        lines.append(BankLine(account, value_date, amount, description, key, reference))
    return tuple(lines)
