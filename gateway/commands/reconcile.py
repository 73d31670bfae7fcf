"""nofu reconcile --date YYYY-MM-DD [--bank-statement FILE] [--no-pull] [--out FILE]

Reconciles one business day (JST): imports the bank statement first when given (CSV or 全銀
入出金取引明細, see docs/reconciliation.md), pulls the provider's statement (unless ``--no-pull``),
matches, heals lost payments through the webhook inbox, prints a summary and writes the report
as CSV for Excel (UTF-8 with BOM; default ``var/reconciliation/reconciliation-<date>.csv``).

Exit status: 0 after a run (open breaks are listed, not an error), 1 when the run is refused
(``reconciliation.*`` code printed), 2 for settings or schema problems.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gateway.audit import Actor
from gateway.audit import record as audit
from gateway.commands import common
from gateway.providers.statements import build_wiring
from gateway.services import build_services
from gateway.webhook_handlers import build_processor
from ledger.clock import utc_now
from ledger.db import read_transaction, run_transaction
from reconciliation import (
    CATEGORY_NAMES_JA,
    BankStatementInvalid,
    BreakCategory,
    csv_chunks,
    import_statement,
    parse_day,
    parse_statement,
    reconcile_day,
    report,
)

DEFAULT_DIR = Path("var/reconciliation")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("reconcile", help="reconcile a business day (消込): provider ↔ ledger ↔ bank")
    p.add_argument("--date", required=True, help="the business day, YYYY-MM-DD (JST)")
    p.add_argument("--bank-statement", type=Path, help="the designated account's statement (CSV or 全銀 入出金取引明細)")
    p.add_argument("--no-pull", action="store_true", help="do not call the provider: use what was pulled before")
    p.add_argument("--out", type=Path, help="where to write the CSV report (default var/reconciliation/)")
    p.set_defaults(run=run)


def _yen(amount: int) -> str:
    return f"-¥{-amount:,}" if amount < 0 else f"¥{amount:,}"


def print_summary(body: dict, healed: list) -> None:  # type: ignore[type-arg]
    s = body["summary"]
    p, c = s["provider"], s["clearing"]
    print(f"reconciliation {body['date']} (run {body['runs']}, {body['status']}) report {body['report_sha256'][:16]}")
    print(f"  charges   {p['charges']:>7}  gross {_yen(p['gross']):>16}  refunds {_yen(p['refunds'])}")
    print(f"  fees      {_yen(p['fees']):>16} (contract {_yen(p['expected_fees'])})  net {_yen(p['net'])}")
    print(f"  clearing 1200: opening {_yen(c['opening'])}, closing {_yen(c['closing'])}, "
          f"day's money not yet at the bank {_yen(c['day_outstanding'])}")  # fmt: skip
    for row in s["collections"]:
        print(f"  {row['account']:<22} {row['name']:<20} {row['count']:>7}  {_yen(row['amount']):>16}")
    for payout in s["payouts"]:
        where = f"at the bank {payout['bank_date']} ({payout['rule']})" if payout["bank_date"] else "not at the bank"
        print(f"  payout {payout['id']} {payout['status']} {_yen(payout['amount'])} fees {_yen(payout['fees'])}: {where}")
    for item in healed:
        print(f"  healed through the webhook inbox: {item.match_ref}" if item.healed else
              f"  could not heal {item.match_ref}: {item.note}")  # fmt: skip
    if not s["breaks"]:
        print("  no breaks")
    for category, totals in sorted(s["breaks"].items()):
        print(f"  break {CATEGORY_NAMES_JA[BreakCategory(category)]} ({category}): {totals['count']} {_yen(totals['amount'])}")
    print(f"  open breaks: {body['open_breaks']}")


def run(args: argparse.Namespace) -> int:
    actor = Actor.cli()
    settings = common.settings()
    engine = common.engine()
    try:
        day = parse_day(args.date)
        if args.bank_statement is not None:
            try:
                data = args.bank_statement.read_bytes()
            except OSError as exc:
                print(f"nofu: cannot read {args.bank_statement}: {exc.strerror}", file=sys.stderr)
                return 2
            statement = parse_statement(data)

            def store(conn):  # type: ignore[no-untyped-def]
                done = import_statement(conn, statement, actor=actor.id, now=utc_now())
                if not done.already_imported:
                    audit(conn, actor, "reconciliation.bank_import", f"reconciliation:{day.isoformat()}",
                          {"import_id": done.import_id, "format": done.format, "lines": done.lines,
                           "new_lines": done.new_lines, "sha256": statement.sha256})  # fmt: skip
                return done

            done = run_transaction(engine, store)
            print(f"bank statement {args.bank_statement} ({done.format}): {done.lines} lines, {done.new_lines} new"
                  + (" (already imported)" if done.already_imported else ""))  # fmt: skip
        services = build_services(settings, engine)
        processor = build_processor(engine, services.payments, settings) if services.payments.provider else None
        wiring = build_wiring(engine, services.payments.provider, processor)
        pull = not args.no_pull
        if pull and wiring.source is None:
            print("nofu: error [reconciliation.provider_not_configured]: no provider is configured "
                  "(NOFU_STRIPE_SECRET_KEY or NOFU_STRIPE_API_BASE); use --no-pull", file=sys.stderr)  # fmt: skip
            return 1
        outcome = reconcile_day(engine, day, actor=actor.id, source=wiring.source if pull else None,
                                links=wiring.links, healer=wiring.healer if pull else None)  # fmt: skip
        run_transaction(engine, lambda conn: audit(conn, actor, "reconciliation.run", f"reconciliation:{day.isoformat()}", {
            "run": outcome.run_number, "report_sha256": outcome.report_sha256,
            "healed": [h.match_ref for h in outcome.healed if h.healed], "payouts_posted": list(outcome.posted_payouts),
        }))  # fmt: skip
    except BankStatementInvalid as exc:
        print(f"nofu: error [{exc.code}]: {exc.message}", file=sys.stderr)
        for error in exc.errors:
            column = f", {error.column}" if error.column else ""
            print(f"  line {error.line}{column}: [{error.code}] {error.message}", file=sys.stderr)
        return 1
    out = args.out or DEFAULT_DIR / f"reconciliation-{day.isoformat()}.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    with read_transaction(engine) as conn:
        body = report(conn, day, limit=1)
        with open(partial, "wb") as stream:
            stream.writelines(csv_chunks(conn, day))
    partial.replace(out)
    print_summary(body, list(outcome.healed))
    print(f"report written to {out}")
    return 0
