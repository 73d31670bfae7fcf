"""The inbox table as the code queries it matches what migration 0005 creates."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Engine

import gateway
from ledger.schema import metadata
from webhooks.schema import STATES


def _webhooks_only(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    table = obj if type_ == "table" else getattr(obj, "table", None)
    return table is not None and table.name == "webhook_events"


def test_schema_module_matches_the_migration(engine: Engine) -> None:
    import webhooks.schema  # noqa: F401  (registers the table on the shared metadata)

    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "include_object": _webhooks_only})
        assert compare_metadata(context, metadata) == []


def test_states_match_the_check_constraint() -> None:
    path = Path(gateway.__file__).parent / "migrations" / "versions" / "0005_webhooks.py"
    spec = importlib.util.spec_from_file_location("migration_0005", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.STATES == "(" + ", ".join(f"'{s}'" for s in STATES) + ")"
