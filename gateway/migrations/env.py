"""Alembic environment: runs every pending migration in one transaction on the given connection."""

from __future__ import annotations

from alembic import context

from ledger.schema import metadata


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(connection=connection, target_metadata=metadata)
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is None:
    from gateway.settings import Settings
    from ledger.db import create_engine

    engine = create_engine(Settings.from_env().database_url)
    with engine.begin() as conn:
        _run(conn)
else:
    _run(connection)
