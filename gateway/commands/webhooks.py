"""nofu webhooks list | show | stats | replay | backfill — the webhook inbox for operators.

``replay`` is audited with the actor ``cli:<os user>`` (as the staff API's replay is with the
staff member). ``backfill`` pages through the provider's ``GET /v1/events`` (Stripe keeps 30
days) and stores every event the inbox lacks; the processor (in the app, or ``nofu worker``)
then applies them like any delivery. ``--process`` applies them right away in this process.
Times are shown in JST.
"""

from __future__ import annotations

import argparse
import re
import sys
from datetime import date, datetime, time, timedelta

from sqlalchemy.engine import Connection

from gateway.audit import Actor
from gateway.audit import record as audit
from gateway.commands import common
from gateway.services import build_services
from gateway.webhook_handlers import build_processor, provider_events
from ledger.clock import JST, utc_now
from ledger.db import read_transaction, run_transaction
from webhooks import (
    StoredEvent,
    backfill,
    get_event,
    list_events,
    replay,
    state_counts,
)
from webhooks.schema import STATES

_RELATIVE = re.compile(r"([1-9][0-9]{0,3})([dhm])")
PROVIDER_RETENTION = timedelta(days=30)


def since_value(text: str) -> datetime:
    """``3d`` / ``12h`` / ``90m`` ago, a JST date (``2026-11-20`` = its 00:00 JST), or an ISO time
    (naive means JST)."""
    match = _RELATIVE.fullmatch(text.strip())
    if match:
        amount, unit = int(match.group(1)), match.group(2)
        return utc_now() - timedelta(**{{"d": "days", "h": "hours", "m": "minutes"}[unit]: amount})
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(0), tzinfo=JST)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: use 3d, 12h, a date (2026-11-20) or an ISO time") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=JST)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    cmd = sub.add_parser("webhooks", help="the provider webhook inbox").add_subparsers(
        dest="webhooks_command", required=True
    )
    p = cmd.add_parser("list", help="stored events, newest first")
    p.add_argument("--state", choices=STATES, help="e.g. dead (dead letters) or poison")
    p.add_argument("--type", dest="event_type", help="an event type, e.g. payment_intent.succeeded")
    p.add_argument("--object", dest="object_id", help="the provider object, e.g. pi_…")
    p.add_argument("--limit", type=int, default=50, help="1..500 (default 50)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=list_command)
    p = cmd.add_parser("show", help="one stored event with its raw payload")
    p.add_argument("id", help="inbox id or provider event id (evt_…)")
    p.set_defaults(run=show)
    p = cmd.add_parser("stats", help="how many events are in each state")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=stats)
    p = cmd.add_parser("replay", help="process stored events again (dead letters, once the cause is fixed)")
    p.add_argument("ids", nargs="+", metavar="id", help="inbox id or provider event id (evt_…)")
    p.set_defaults(run=replay_command)
    p = cmd.add_parser("backfill", help="store every provider event since a time that the inbox lacks")
    p.add_argument("--since", required=True, type=since_value, help="3d, 12h, 2026-11-20 (JST) or an ISO time")
    p.add_argument("--process", action="store_true", help="also apply everything due now, in this process")
    p.set_defaults(run=backfill_command)


def _jst(moment: datetime | None) -> str:
    return "-" if moment is None else moment.astimezone(JST).strftime("%Y-%m-%d %H:%M:%S")


def _line(event: StoredEvent) -> str:
    note = event.last_error if event.state in ("dead", "pending") and event.last_error else event.outcome or ""
    return (
        f"{event.id:>8} {event.event_id:<30} {(event.event_type or '-'):<34} {event.state:<10} "
        f"{event.attempts:>3} {_jst(event.received_at)}  {note[:80]}"
    )


def list_command(args: argparse.Namespace) -> int:
    with read_transaction(common.engine()) as conn:
        items, _ = list_events(
            conn, state=args.state, event_type=args.event_type, object_id=args.object_id, limit=args.limit
        )
    if args.json:
        common.print_json([item.as_json() for item in items])
        return 0
    print(f"{'id':>8} {'event':<30} {'type':<34} {'state':<10} {'try':>3} {'received (JST)':<19}  note")
    for item in items:
        print(_line(item))
    return 0


def show(args: argparse.Namespace) -> int:
    with read_transaction(common.engine()) as conn:
        common.print_json(get_event(conn, args.id).as_json())
    return 0


def stats(args: argparse.Namespace) -> int:
    with read_transaction(common.engine()) as conn:
        counts = state_counts(conn)
    if args.json:
        common.print_json(counts)
    else:
        for state, count in counts.items():
            print(f"{state:<11} {count:>9,}")
    return 0


def replay_command(args: argparse.Namespace) -> int:
    actor = Actor.cli()
    engine = common.engine()
    def record(conn, event: StoredEvent) -> None:  # type: ignore[no-untyped-def]
        audit(conn, actor, "webhook.replay", f"webhook_event:{event.event_id}",
              {"type": event.event_type, "previous_state": event.state, "attempts": event.attempts})  # fmt: skip

    for key in args.ids:

        def work(conn: Connection, key: str = key) -> StoredEvent:
            return replay(conn, key, now=utc_now(), on_replay=record)

        done = run_transaction(engine, work)
        print(f"replayed {done.event_id} ({done.event_type}): pending again")
    return 0


def backfill_command(args: argparse.Namespace) -> int:
    settings = common.settings()
    engine = common.engine()
    if args.since < utc_now() - PROVIDER_RETENTION:
        print("nofu: note: the provider keeps events for 30 days; older ones cannot be fetched", file=sys.stderr)
    services = build_services(settings, engine)
    report = backfill(engine, provider_events(services.payments, args.since))
    print(
        f"backfill since {_jst(args.since)} JST: {report.seen} events listed, {report.added} added, "
        f"{report.present} already stored, {report.unreadable} unreadable"
    )
    if args.process:
        processed = build_processor(engine, services.payments, settings).drain()
        print(f"processed {processed} events")
    return 0
