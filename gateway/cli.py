"""The ``nofu`` command. Errors an operator can act on print one line (no stack trace)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from gateway.commands import db, keys, ledger as ledger_commands, sandbox, serve, tokens as token_commands
from gateway.commands import demo, invoices as invoice_commands, reconcile, webhooks as webhook_commands, worker
from gateway.schema_version import SchemaOutdated
from gateway.settings import SettingsError

COMMAND_MODULES = (
    demo,
    db,
    ledger_commands,
    invoice_commands,
    keys,
    token_commands,
    serve,
    sandbox,
    webhook_commands,
    worker,
    reconcile,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nofu", description="nofu 納付: cashless tax and fee payments")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except (SettingsError, SchemaOutdated) as exc:
        print(f"nofu: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        # Every domain error (ledger, invoices, auth, webhooks, reconciliation…) carries a stable
        # code and a message for people: one line, exit 1. Anything else is a bug: let it raise.
        code, message = getattr(exc, "code", None), getattr(exc, "message", None)
        if not (isinstance(code, str) and isinstance(message, str)):
            raise
        print(f"nofu: error [{code}]: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
