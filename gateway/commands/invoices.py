"""nofu invoices import FILE [--actor NAME] [--codes-out FILE] | nofu invoices reencrypt-pii

Keys come from the settings (``NOFU_PII_KEYS`` encrypts payer data, ``NOFU_QR_SIGNING_KEYS``
signs the payment codes written by ``--codes-out``); see ``gateway/keys.py``.
"""

from __future__ import annotations

import argparse
import csv
import getpass
import sys
from pathlib import Path

from gateway.commands import common
from gateway.keys import load_keys
from invoices.catalog import Catalog
from invoices.errors import ImportRejected
from invoices.late_fee import RateTable
from invoices.pii_rotation import reencrypt_payers
from invoices.service import InvoiceContext, IssuedSlip, import_invoices_csv


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    cmd = sub.add_parser("invoices", help="tax and fee invoices (調定)").add_subparsers(
        dest="invoices_command", required=True
    )
    p = cmd.add_parser("import", help="issue invoices from a CSV file (UTF-8 or Shift_JIS): all rows or none")
    p.add_argument("file", type=Path)
    p.add_argument("--actor", help="who imports (recorded with every invoice); default cli:$USER")
    p.add_argument(
        "--codes-out",
        type=Path,
        help="write notice number, payment URL and confirmation code of each new invoice (CSV)",
    )
    p.set_defaults(run=import_file)
    p = cmd.add_parser(
        "reencrypt-pii", help="re-encrypt payer data under the first NOFU_PII_KEYS key (rotation)"
    )
    p.set_defaults(run=reencrypt_pii)


def context() -> InvoiceContext:
    """The service context from the configured keys (development keys are generated if unset)."""
    keys = load_keys(common.settings())
    return InvoiceContext(
        catalog=Catalog.load_default(), pii=keys.pii, rates=RateTable.load_default(), keyring=keys.qr
    )


def import_file(args: argparse.Namespace) -> int:
    actor = args.actor or f"cli:{getpass.getuser()}"
    ctx = context()
    base = common.settings().public_base_url.rstrip("/")
    engine = common.engine()
    partial = args.codes_out.with_name(args.codes_out.name + ".partial") if args.codes_out else None
    try:
        with open(args.file, "rb") as stream:
            if partial is None:
                report = import_invoices_csv(engine, stream, ctx=ctx, actor=actor)
            else:
                with open(partial, "w", encoding="utf-8", newline="") as out:
                    writer = csv.writer(out)
                    writer.writerow(["notice_number", "external_ref", "payment_url", "confirmation_code"])

                    def write(slip: IssuedSlip) -> None:
                        writer.writerow(
                            [
                                slip.code.notice_number,
                                slip.external_ref or "",
                                f"{base}/p/{slip.code.token}",
                                slip.code.confirmation_code,
                            ]
                        )

                    report = import_invoices_csv(engine, stream, ctx=ctx, actor=actor, on_issued=write)
                partial.replace(args.codes_out)
    except OSError as exc:
        print(f"nofu: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    except ImportRejected as exc:
        print(f"nofu: error [{exc.code}]: {exc.message}", file=sys.stderr)
        for error in exc.errors:
            column = f", column {error.column}" if error.column else ""
            print(f"  line {error.line}{column}: [{error.code}] {error.message}", file=sys.stderr)
        return 1
    finally:
        if partial is not None and partial.exists():
            partial.unlink()
    print(
        f"imported {args.file}: {report.rows} rows, {report.issued} invoices issued, "
        f"{report.skipped} already imported (unchanged); encoding {report.encoding}; "
        f"import #{report.import_id}, {report.seconds:.1f} s"
    )
    if args.codes_out:
        print(f"payment codes written to {args.codes_out}")
    return 0


def reencrypt_pii(args: argparse.Namespace) -> int:
    keys = load_keys(common.settings())
    changed = reencrypt_payers(common.engine(), keys.pii)
    print(f"re-encrypted the payer data of {changed} invoices under key {keys.pii.active_key_id}")
    return 0
