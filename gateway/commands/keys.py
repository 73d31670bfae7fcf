"""nofu keys generate — new key entries for NOFU_QR_SIGNING_KEYS and NOFU_PII_KEYS."""

from __future__ import annotations

import argparse

from invoices import pii, tokens


def register(sub: argparse._SubParsersAction) -> None:
    cmd = sub.add_parser("keys", help="key material").add_subparsers(dest="keys_command", required=True)
    p = cmd.add_parser("generate", help="print new key entries (prepend them to rotate)")
    p.add_argument("--id", default="k1", help="key id (1-8 characters)")
    p.set_defaults(run=generate)


def generate(args: argparse.Namespace) -> int:
    qr = tokens.generate_key(args.id)
    print(f"NOFU_QR_SIGNING_KEYS entry: {qr}")
    print(f"  its verify-only form (NOFU_QR_VERIFY_KEYS, after retiring it): {tokens.verify_only_entry(qr)}")
    print(f"NOFU_PII_KEYS entry:        {pii.generate_key(args.id)}")
    print("Rotate by putting the new entry first; keep old entries while data or printed codes use them.")
    return 0
