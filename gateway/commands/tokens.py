"""nofu token create | list | revoke: staff API tokens.

``create`` prints the token alone on stdout (so ``TOKEN=$(nofu token create …)`` works) and what
it is on stderr; the token is shown this once and only its SHA-256 is kept. Creating and revoking
are audited with the actor ``cli:<os user>``. Times are shown in JST.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timedelta

from gateway.audit import Actor
from gateway.auth import Role, create_token, list_tokens, revoke_token
from gateway.auth.tokens import DEFAULT_LIFETIME, TokenInfo
from gateway.commands import common
from ledger.clock import JST, utc_now
from ledger.db import read_transaction, run_transaction



def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    cmd = sub.add_parser("token", help="staff API tokens").add_subparsers(dest="token_command", required=True)
    roles = "{" + ",".join(r.value for r in Role) + "}"
    p = cmd.add_parser("create", help="issue a token for a staff member (shown once)")
    p.add_argument("--role", required=True, metavar=roles, help="treasury: everything; clerk: invoices, read "
                   "payments; auditor: read only")
    p.add_argument("--name", required=True, help="who holds it, e.g. '会計課 山田'")
    p.add_argument("--expires-in-days", type=int, default=DEFAULT_LIFETIME.days, metavar="DAYS",
                   help=f"lifetime, 1 to 3650 days (default {DEFAULT_LIFETIME.days})")
    p.set_defaults(run=create)
    p = cmd.add_parser("list", help="every token issued, without secrets")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=list_command)
    p = cmd.add_parser("revoke", help="revoke a token for good (effective within seconds)")
    p.add_argument("id", help="the token id shown by `nofu token list`")
    p.set_defaults(run=revoke)


def _jst(moment: datetime | None) -> str:
    return "-" if moment is None else moment.astimezone(JST).strftime("%Y-%m-%d %H:%M")


def create(args: argparse.Namespace) -> int:
    actor = Actor.cli()
    lifetime = timedelta(days=args.expires_in_days)
    issued = run_transaction(
        common.engine(),
        lambda conn: create_token(conn, role=args.role, name=args.name, actor=actor, lifetime=lifetime),
    )
    info = issued.info
    print(
        f"staff token {info.id} for {info.name} ({info.role.value}), expires {_jst(info.expires_at)} JST.\n"
        "Shown once: hand it over now; nofu keeps only its hash. Send it as 'Authorization: Bearer <token>'.",
        file=sys.stderr,
    )
    print(issued.secret)
    return 0


def _as_json(info: TokenInfo, now: datetime) -> dict[str, object]:
    return {
        "id": info.id,
        "name": info.name,
        "role": info.role.value,
        "status": info.status(now),
        "created_at": info.created_at.isoformat(),
        "created_by": info.created_by,
        "expires_at": info.expires_at.isoformat() if info.expires_at else None,
        "revoked_at": info.revoked_at.isoformat() if info.revoked_at else None,
        "revoked_by": info.revoked_by,
        "last_used_at": info.last_used_at.isoformat() if info.last_used_at else None,
    }


def list_command(args: argparse.Namespace) -> int:
    with read_transaction(common.engine()) as conn:
        found = list_tokens(conn)
    now = utc_now()
    if args.json:
        common.print_json([_as_json(info, now) for info in found])
        return 0
    print(f"{'id':<13} {'role':<9} {'status':<8} {'created (JST)':<17} {'expires':<17} {'last used':<17} name")
    for info in found:
        print(
            f"{info.id:<13} {info.role.value:<9} {info.status(now):<8} {_jst(info.created_at):<17} "
            f"{_jst(info.expires_at):<17} {_jst(info.last_used_at):<17} {info.name}"
        )
    if not found:
        print("(no tokens: create one with `nofu token create --role treasury --name …`)")
    return 0


def revoke(args: argparse.Namespace) -> int:
    actor = Actor.cli()
    now = utc_now()
    info = run_transaction(common.engine(), lambda conn: revoke_token(conn, args.id, actor=actor, now=now))
    if info.revoked_at is not None and info.revoked_at < now:
        print(f"staff token {info.id} ({info.name}) was already revoked {_jst(info.revoked_at)} JST by {info.revoked_by}")
    else:
        print(f"revoked staff token {info.id} ({info.name}, {info.role.value}); refused everywhere within seconds")
    return 0
