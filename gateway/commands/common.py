"""What every command needs: settings, an engine on a current schema, and plain output."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy.engine import Engine

from gateway.schema_version import ensure_current
from gateway.settings import Settings
from ledger.db import create_engine


def settings() -> Settings:
    return Settings.from_env()


def engine(*, check_schema: bool = True) -> Engine:
    engine = create_engine(settings().database_url)
    if check_schema:
        ensure_current(engine)
    return engine


def yen(amount: int) -> str:
    return f"¥{amount:,}"


def print_json(value: Any) -> None:
    print(json.dumps(value, ensure_ascii=False, indent=2, default=str))
