"""全銀協 入出金取引明細 (種別コード 03): the Japanese banks' fixed-length statement of an account.

Layout (200-byte records in Shift_JIS, with or without CR LF between them; field widths in bytes)
as published by the banks (e.g. きらぼし銀行 「入出金明細（全銀）明細ファイル・フォーマット
（全銀協規定形式）」) and implemented by the open-source reader ``diva-osaka/Diva.Zengin``
(``Records/入出金取引明細Header.cs``, ``…Data1.cs``, ``…Trailer.cs``, ``…End.cs``):

- header ``1``: 種別コード N2 (``03``) · コード区分 N1 · 作成日 N6 · 勘定日(自) N6 · 勘定日(至) N6 ·
  銀行コード N4 · 銀行名 C15 · 支店コード N3 · 支店名 C15 · ダミー N3 · 預金種目 N1 · 口座番号 N10 ·
  口座名 C40 · 貸越区分 N1 · 通帳・証書区分 N1 · 取引前残高 N14 · ダミー C71
- data ``2`` (普通・当座・貯蓄預金): 照会番号 N8 · 勘定日 N6 · 預入・払出日 N6 · 入払区分 N1
  (1 入金, 2 出金) · 取引区分 N2 · 取引金額 N12 · うち他店券金額 N12 · 交換呈示日 N6 · 不渡返還日 N6 ·
  手形・小切手区分 N1 · 手形・小切手番号 N7 · 僚店番号 N3 · 振込依頼人コード N10 ·
  振込依頼人名又は契約者番号 C48 · 仕向銀行名 C15 · 仕向店名 C15 · 摘要内容 C20 · EDI情報 C20 · ダミー C1
- trailer ``8``: 入金件数 N6 · 入金額合計 N13 · 出金件数 N6 · 出金額合計 N13 · 貸越区分 N1 ·
  取引後残高 N14 · データ・レコード件数 N7 · ダミー C139
- end ``9``: レコード総件数 N10 · 口座数 N5 · ダミー C184

Dates are 和暦 YYMMDD without the era: read as 令和 (2018 + YY), or as 平成 (1988 + YY) when the
令和 reading falls before 令和 began (2019-05-01) or more than a year in the future (a statement
lists the past). The trailer's counts and totals are checked against the data records. The
account is written ``BBBB-SSS-NNNNNNN`` (bank, branch, account number as 7 digits). A line's key
is (勘定日, 照会番号, amount), unique per account.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from reconciliation.errors import BankStatementInvalid, LineError
from reconciliation.model import BankLine

RECORD = 200
REIWA_START = date(2019, 5, 1)


def _field(record: bytes, start: int, end: int) -> str:
    return record[start:end].decode("cp932", errors="replace").strip()


def _number(record: bytes, start: int, end: int, line: int, name: str) -> int:
    text = _field(record, start, end)
    if not text.isdigit():
        raise BankStatementInvalid(
            f"record {line}: {name} is not a number", (LineError(line, "zengin.invalid_number", f"{name}: {text!r}", column=name),)
        )
    return int(text)


def wareki_date(text: str, *, today: date | None = None) -> date:
    """和暦 YYMMDD → date: 令和, or 平成 when 令和 cannot be meant (see the module docstring)."""
    if len(text) != 6 or not text.isdigit():
        raise ValueError(text)
    yy, mm, dd = int(text[:2]), int(text[2:4]), int(text[4:])
    latest = (today or date.today()) + timedelta(days=366)
    try:
        reiwa: date | None = date(2018 + yy, mm, dd) if yy >= 1 else None
    except ValueError:
        reiwa = None  # 29 February of a year that is not leap in this reading
    if reiwa is not None and REIWA_START <= reiwa <= latest:
        return reiwa
    return date(1988 + yy, mm, dd)


def _date(record: bytes, start: int, line: int, name: str) -> date:
    text = _field(record, start, start + 6)
    try:
        return wareki_date(text)
    except ValueError:
        raise BankStatementInvalid(
            f"record {line}: {name} is not a date", (LineError(line, "zengin.invalid_date", f"{name}: {text!r}", column=name),)
        ) from None


def records(data: bytes) -> list[bytes]:
    """The file's 200-byte records (CR LF separated, or one unbroken stream)."""
    if b"\n" in data or b"\r" in data:
        parts = [part for part in data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n") if part.strip()]
    else:
        parts = [data[i : i + RECORD] for i in range(0, len(data), RECORD)]
    for number, part in enumerate(parts, 1):
        if len(part) != RECORD and not (part.startswith(b"\x1a") or part.strip(b"\x1a ") == b""):
            raise BankStatementInvalid(
                f"record {number} is {len(part)} bytes, not {RECORD}",
                (LineError(number, "zengin.record_length", f"{len(part)} bytes"),),
            )
    return [part for part in parts if len(part) == RECORD]


def looks_like_zengin(data: bytes) -> bool:
    """A 全銀 入出金取引明細 file starts with a header record ``1`` and 種別コード ``03``."""
    return len(data) >= RECORD and data[:3] == b"103" and data[3:4] in (b"0", b"1")


@dataclass
class _Group:
    account: str
    lines: list[BankLine]
    deposits: int = 0
    deposit_total: int = 0
    withdrawals: int = 0
    withdrawal_total: int = 0


def parse_zengin(data: bytes) -> tuple[BankLine, ...]:
    """Every data record of every account in the file; refuses a malformed file whole."""
    groups: list[_Group] = []
    current: _Group | None = None
    ended = False
    for number, record in enumerate(records(data), 1):
        kind = record[:1]
        if ended:
            raise BankStatementInvalid("records after the end record", (LineError(number, "zengin.after_end", "after 9"),))
        if kind == b"1":
            if record[1:3] != b"03":
                raise BankStatementInvalid(
                    "not a 入出金取引明細 (種別コード 03)",
                    (LineError(number, "zengin.unsupported_kind", f"種別コード {_field(record, 1, 3)}"),),
                )
            if record[3:4] != b"0":
                raise BankStatementInvalid("only JIS code (コード区分 0) is read", (LineError(number, "zengin.code", "EBCDIC"),))
            bank = _field(record, 22, 26)
            branch = _field(record, 41, 44)
            account_number = _field(record, 63, 73).lstrip("0").rjust(7, "0")
            current = _Group(account=f"{bank}-{branch}-{account_number}", lines=[])
            groups.append(current)
        elif kind == b"2":
            if current is None:
                raise BankStatementInvalid("data before any header", (LineError(number, "zengin.no_header", "data first"),))
            reference = _number(record, 1, 9, number, "照会番号")
            value_date = _date(record, 9, number, "勘定日")
            direction = _field(record, 21, 22)
            amount = _number(record, 24, 36, number, "取引金額")
            if direction not in ("1", "2"):
                raise BankStatementInvalid(
                    f"record {number}: 入払区分 must be 1 or 2",
                    (LineError(number, "zengin.invalid_direction", direction, column="入払区分"),),
                )
            signed = amount if direction == "1" else -amount
            if direction == "1":
                current.deposits += 1
                current.deposit_total += amount
            else:
                current.withdrawals += 1
                current.withdrawal_total += amount
            payer = _field(record, 81, 129)
            memo = _field(record, 159, 179)
            description = " ".join(part for part in (payer, memo) if part)[:200]
            key = f"z:{value_date.isoformat()}:{reference:08d}:{signed}"
            current.lines.append(
                BankLine(current.account, value_date, signed, description, key, f"{reference:08d}" if reference else None)
            )
        elif kind == b"8":
            if current is None:
                raise BankStatementInvalid("trailer before any header", (LineError(number, "zengin.no_header", "trailer"),))
            expected = (
                _number(record, 1, 7, number, "入金件数"),
                _number(record, 7, 20, number, "入金額合計"),
                _number(record, 20, 26, number, "出金件数"),
                _number(record, 26, 39, number, "出金額合計"),
            )
            found = (current.deposits, current.deposit_total, current.withdrawals, current.withdrawal_total)
            if expected != found:
                raise BankStatementInvalid(
                    "the trailer's counts or totals differ from the data records",
                    (LineError(number, "zengin.trailer_mismatch", f"trailer {expected}, data {found}"),),
                )
            current = None
        elif kind == b"9":
            ended = True
        else:
            raise BankStatementInvalid(
                f"record {number}: unknown データ区分", (LineError(number, "zengin.unknown_record", repr(kind)),)
            )
    if current is not None:
        raise BankStatementInvalid("the last account has no trailer", (LineError(0, "zengin.no_trailer", "missing 8"),))
    if not groups:
        raise BankStatementInvalid("no header record", (LineError(1, "zengin.no_header", "missing 1"),))
    return tuple(line for group in groups for line in group.lines)


def _n(value: int, width: int) -> bytes:
    return str(value).rjust(width, "0").encode("ascii")


def _c(text: str, width: int) -> bytes:
    raw = text.encode("cp932")[:width]
    return raw + b" " * (width - len(raw))


def _wareki(day: date) -> bytes:
    year = day.year - 2018 if day >= REIWA_START else day.year - 1988
    return f"{year:02d}{day.month:02d}{day.day:02d}".encode("ascii")


@dataclass(frozen=True)
class ZenginEntry:
    """One line to write with :func:`write_zengin` (tests and tools make statements with it)."""

    value_date: date
    amount: int  # deposits positive
    payer: str = ""
    memo: str = ""
    reference: int = 0


def write_zengin(
    entries: list[ZenginEntry], *, bank: str = "0597", branch: str = "123", account_number: str = "0001234",
    created: date | None = None, newline: bool = True,
) -> bytes:
    """A 入出金取引明細 file for one account, in the layout :func:`parse_zengin` reads."""
    first = min((e.value_date for e in entries), default=created or date(2026, 1, 1))
    last = max((e.value_date for e in entries), default=first)
    header = (
        b"1" + b"03" + b"0" + _wareki(created or last) + _wareki(first) + _wareki(last) + _n(int(bank), 4)
        + _c("ｷﾗﾎﾞｼ", 15) + _n(int(branch), 3) + _c("ﾎﾝﾃﾝ", 15) + b"000" + b"1" + _n(int(account_number), 10)
        + _c("ｻﾝﾌﾟﾙｼ ｶｲｹｲｶﾝﾘｼｬ", 40) + b"1" + b"1" + _n(0, 14) + b" " * 71
    )  # fmt: skip
    rows = [header]
    for entry in entries:
        direction = b"1" if entry.amount >= 0 else b"2"
        rows.append(
            b"2" + _n(entry.reference, 8) + _wareki(entry.value_date) + _wareki(entry.value_date) + direction
            + b"11" + _n(abs(entry.amount), 12) + _n(0, 12) + b"000000" + b"000000" + b"0" + _n(0, 7) + b"000"
            + _n(0, 10) + _c(entry.payer, 48) + _c("", 15) + _c("", 15) + _c(entry.memo, 20) + _c("", 20) + b" "
        )  # fmt: skip
    deposits = [e.amount for e in entries if e.amount >= 0]
    withdrawals = [-e.amount for e in entries if e.amount < 0]
    rows.append(
        b"8" + _n(len(deposits), 6) + _n(sum(deposits), 13) + _n(len(withdrawals), 6) + _n(sum(withdrawals), 13)
        + b"1" + _n(0, 14) + _n(len(entries), 7) + b" " * 139
    )  # fmt: skip
    rows.append(b"9" + _n(len(rows) + 1, 10) + _n(1, 5) + b" " * 184)
    for row in rows:
        assert len(row) == RECORD, len(row)
    return (b"\r\n" if newline else b"").join(rows) + (b"\r\n" if newline else b"")
