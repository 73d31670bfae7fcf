"""nofu ledger accounts | trial-balance | verify | post | close-day"""

from __future__ import annotations

import argparse
import json
from datetime import date
from pathlib import Path

import ledger
from gateway.commands import common
from ledger.db import read_transaction, run_transaction


def register(sub: argparse._SubParsersAction) -> None:
    cmd = sub.add_parser("ledger", help="the double-entry ledger").add_subparsers(
        dest="ledger_command", required=True
    )
    p = cmd.add_parser("accounts", help="list the chart of accounts with balances")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=accounts)
    p = cmd.add_parser("trial-balance", help="試算表: every account's balance")
    p.add_argument("--as-of", type=date.fromisoformat, help="end of business day YYYY-MM-DD (JST)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=trial_balance)
    p = cmd.add_parser("verify", help="recompute the hash chain and balances")
    p.set_defaults(run=verify)
    p = cmd.add_parser("post", help="post journal entries from a JSON file (all or nothing)")
    p.add_argument("file", type=Path)
    p.set_defaults(run=post)
    p = cmd.add_parser("close-day", help="close business days through DATE")
    p.add_argument("date", type=date.fromisoformat)
    p.add_argument("--by", required=True, help="who closes the day")
    p.set_defaults(run=close_day)


def accounts(args: argparse.Namespace) -> int:
    with read_transaction(common.engine()) as conn:
        rows = ledger.list_accounts(conn)
    if args.json:
        common.print_json([row.__dict__ for row in rows])
        return 0
    print(f"{'code':<22} {'side':<6} {'status':<6} {'balance':>18}  name")
    for row in rows:
        shown = row.balance if row.normal_side == "debit" else -row.balance
        print(
            f"{row.code:<22} {row.normal_side:<6} {row.status:<6} {common.yen(shown):>18}  "
            f"{row.name_ja} / {row.name_en}"
        )
    return 0


def trial_balance(args: argparse.Namespace) -> int:
    with read_transaction(common.engine()) as conn:
        tb = ledger.trial_balance(conn, as_of=args.as_of)
    if args.json:
        common.print_json(
            {
                "as_of": tb.as_of,
                "rows": [r.__dict__ for r in tb.rows],
                "total_debit": tb.total_debit,
                "total_credit": tb.total_credit,
            }
        )
        return 0 if tb.balanced else 1
    print(f"試算表 Trial balance as of {tb.as_of or 'now'}")
    print(f"{'code':<22} {'debit 借方':>18} {'credit 貸方':>18}  name")
    for r in tb.rows:
        indent = "" if ":" not in r.code else "  "
        print(
            f"{indent + r.code:<22} {common.yen(r.debit) if r.debit else '':>18} "
            f"{common.yen(r.credit) if r.credit else '':>18}  {r.name_ja}"
        )
    print(f"{'total':<22} {common.yen(tb.total_debit):>18} {common.yen(tb.total_credit):>18}")
    print("balanced" if tb.balanced else "NOT BALANCED")
    return 0 if tb.balanced else 1


def verify(args: argparse.Namespace) -> int:
    with read_transaction(common.engine()) as conn:
        report = ledger.verify(conn)
    print(
        f"checked {report.entries_checked} entries, {report.lines_checked} lines; "
        f"chain head {report.head_seq} {report.head_hash}"
    )
    if report.ok:
        print("OK: hash chain, entry balances, running balances and account balances all match")
        return 0
    first = report.first_problem
    assert first is not None
    where = f"entry {first.entry_id}" if first.entry_id is not None else "ledger"
    print(f"TAMPERED OR CORRUPT: first problem at {where}: {first.kind}: {first.detail}")
    for problem in report.problems[1:]:
        print(f"  also: {problem.kind} at {problem.entry_id}: {problem.detail}")
    return 1


def _request(item: dict) -> ledger.EntryRequest:
    return ledger.EntryRequest(
        effective_date=date.fromisoformat(item["effective_date"]),
        description=item["description"],
        source_ref=item["source_ref"],
        idempotency_key=item["idempotency_key"],
        lines=tuple(
            ledger.Line(line["account"], line["side"], line["amount"]) for line in item["lines"]
        ),
    )


def post(args: argparse.Namespace) -> int:
    try:
        items = json.loads(args.file.read_text(encoding="utf-8"))
        requests = [_request(item) for item in items]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ledger.InvalidEntry(f"{args.file}: not a JSON list of entries ({exc})") from None
    posted = run_transaction(common.engine(), lambda conn: ledger.post_many(conn, requests))
    fresh = sum(1 for p in posted if not p.replayed)
    print(f"posted {fresh} entries ({len(posted) - fresh} already posted, unchanged)")
    return 0


def close_day(args: argparse.Namespace) -> int:
    record = run_transaction(
        common.engine(), lambda conn: ledger.close_day(conn, args.date, closed_by=args.by)
    )
    print(
        f"closed business days through {record.business_date} by {record.closed_by}; "
        f"anchor: entry {record.head_seq} {record.head_hash}"
    )
    return 0
