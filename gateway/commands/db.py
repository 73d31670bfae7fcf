"""nofu db upgrade | current"""

from __future__ import annotations

import argparse

from gateway.bootstrap import prepare_database
from gateway.commands import common
from gateway.schema_version import current_revision, head_revision


def register(sub: argparse._SubParsersAction) -> None:
    db = sub.add_parser("db", help="database schema").add_subparsers(dest="db_command", required=True)
    db.add_parser("upgrade", help="bring the database to the current schema").set_defaults(run=upgrade)
    db.add_parser("current", help="show the schema revision").set_defaults(run=current)


def upgrade(args: argparse.Namespace) -> int:
    engine = common.engine(check_schema=False)
    before = current_revision(engine)
    prepare_database(engine)
    print(f"database at {head_revision()} (was {before or 'empty'}): {engine.url.render_as_string()}")
    return 0


def current(args: argparse.Namespace) -> int:
    engine = common.engine(check_schema=False)
    now, head = current_revision(engine), head_revision()
    state = "up to date" if now == head else "OUTDATED: run `nofu db upgrade`"
    print(f"{now or 'empty'} (code expects {head}): {state}")
    return 0 if now == head else 1
