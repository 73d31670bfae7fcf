"""The day's report: the run's findings (stored at run time) with the queue as it stands now,
as a structure for the API and the staff page, and as CSV for Excel.

The CSV is UTF-8 with a byte-order mark and CRLF line ends, which Excel as used in Japanese
offices opens without garbling (Excel reads BOM-less UTF-8 as Shift_JIS). It is written row by
row, so a day with many breaks is streamed, not built in memory.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Sequence
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ledger.clock import to_utc
from reconciliation.breaks import counts_by_status, to_break
from reconciliation.errors import RunNotFound
from reconciliation.model import CATEGORY_NAMES_JA, Break, BreakCategory
from reconciliation.schema import breaks, runs

BOM = "\ufeff"
HEADER = ["区分", "項目", "状態", "金額", "件数", "税目", "決済取引ID", "決済キー", "通知書番号", "仕訳番号",
          "送金ID", "銀行明細ID", "担当者", "理由・詳細"]  # fmt: skip
STATUS_JA = {"open": "未対応", "escalated": "エスカレーション", "resolved": "解決済", "healed": "自動修復", "cleared": "解消"}


def run_record(conn: Connection, day: date) -> dict[str, Any]:
    row = conn.execute(sa.select(runs).where(runs.c.business_date == day)).first()
    if row is None or row.runs == 0:
        raise RunNotFound(f"{day.isoformat()} has not been reconciled", date=day.isoformat())
    return {
        "date": day.isoformat(),
        "status": row.status,
        "runs": row.runs,
        "first_run_at": to_utc(row.first_run_at).isoformat(),
        "last_run_at": to_utc(row.last_run_at).isoformat(),
        "last_run_by": row.last_run_by,
        "report_sha256": row.report_sha256,
        "signed_off_at": to_utc(row.signed_off_at).isoformat() if row.signed_off_at else None,
        "signed_off_by": row.signed_off_by,
        "ledger_close": {"head_seq": row.close_head_seq, "head_hash": row.close_head_hash} if row.close_head_seq else None,
        "summary": json.loads(row.summary),
    }


def break_json(item: Break) -> dict[str, Any]:
    return {
        "id": item.id,
        "key": item.key,
        "category": item.category.value,
        "category_ja": CATEGORY_NAMES_JA[item.category],
        "status": item.status.value,
        "amount": item.amount,
        "provider_amount": item.provider_amount,
        "ledger_amount": item.ledger_amount,
        "provider_txn_id": item.provider_txn_id,
        "match_ref": item.match_ref,
        "ledger_entry_id": item.ledger_entry_id,
        "payout_id": item.payout_id,
        "bank_line_id": item.bank_line_id,
        "tax_code": item.tax_code,
        "notice_number": item.notice_number,
        "detail": item.detail,
        "detected": item.detected,
        "assignee": item.assignee,
        "resolution": item.resolution,
        "resolved_by": item.resolved_by,
        "resolved_at": item.resolved_at.isoformat() if item.resolved_at else None,
        "version": item.version,
    }


def _ordered(day: date) -> sa.Select[Any]:
    order = sa.case((breaks.c.status.in_(("open", "escalated")), 0), else_=1)
    return sa.select(breaks).where(breaks.c.business_date == day).order_by(order, breaks.c.category, breaks.c.id)


def report(conn: Connection, day: date, *, limit: int = 1000, after: int | None = None) -> dict[str, Any]:
    """The run with its summary, the queue's counts, and up to ``limit`` breaks (open first)."""
    body = run_record(conn, day)
    query = _ordered(day).limit(limit + 1)
    rows = [to_break(r) for r in conn.execute(query)]
    body["break_counts"] = counts_by_status(conn, day)
    body["open_breaks"] = sum(n for s, n in body["break_counts"].items() if s in ("open", "escalated"))
    body["breaks"] = [break_json(b) for b in rows[:limit]]
    body["breaks_truncated"] = len(rows) > limit
    return body


def csv_rows(conn: Connection, day: date) -> Iterator[Sequence[object]]:
    """The report as rows: totals, 税目, payouts, then every break."""
    record = run_record(conn, day)
    summary = record["summary"]
    provider = summary["provider"]
    clearing = summary["clearing"]
    yield HEADER
    yield ["日付", day.isoformat(), record["status"], "", "", "", "", "", "", "", "", "", "", f"run {record['runs']}"]
    for label, amount, count in (
        ("決済総額(gross)", provider["gross"], provider["charges"]),
        ("返金", provider["refunds"], provider["refund_count"]),
        ("手数料(実額)", provider["fees"], ""),
        ("手数料(契約料率)", provider["expected_fees"], ""),
        ("手取り(net)", provider["net"], ""),
        ("決済代行預け金 前日残高", clearing["opening"], ""),
        ("決済代行預け金 当日残高", clearing["closing"], ""),
        ("当日分 未入金額", clearing["day_outstanding"], ""),
    ):
        yield ["合計", label, "", amount, count, "", "", "", "", "", "", "", "", ""]
    for row in summary["collections"]:
        yield ["税目別", row["name"], "", row["amount"], row["count"], row["tax_code"], "", "", "", "", "", "", "", row["account"]]
    for payout in summary["payouts"]:
        yield ["送金", payout["status"], "", payout["amount"], payout["transactions"], "", "", "", "",
               payout["ledger_entry"] or "", payout["id"], payout["bank_line"] or "", "",
               f"手数料 {payout['fees']}"]  # fmt: skip
    for category, totals in sorted(summary["breaks"].items()):
        yield ["差異合計", CATEGORY_NAMES_JA[BreakCategory(category)], "", totals["amount"], totals["count"],
               "", "", "", "", "", "", "", "", category]  # fmt: skip
    for row in conn.execute(_ordered(day)):
        item = to_break(row)
        yield [
            "差異", CATEGORY_NAMES_JA[item.category], STATUS_JA[item.status.value], item.amount, 1, item.tax_code or "",
            item.provider_txn_id or "", item.match_ref or "", item.notice_number or "", item.ledger_entry_id or "",
            item.payout_id or "", item.bank_line_id or "", item.assignee or "",
            item.resolution or item.detail,
        ]  # fmt: skip


def _safe(value: object) -> object:
    # A cell starting with = + - @ is a formula to Excel; text from outside is quoted with '.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def csv_chunks(conn: Connection, day: date, *, rows_per_chunk: int = 500) -> Iterator[bytes]:
    """The report as UTF-8 CSV with BOM, in chunks."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    buffer.write(BOM)
    for number, row in enumerate(csv_rows(conn, day), 1):
        writer.writerow([_safe(v) for v in row])
        if number % rows_per_chunk == 0:
            yield buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode("utf-8")


def csv_bytes(conn: Connection, day: date) -> bytes:
    return b"".join(csv_chunks(conn, day))
