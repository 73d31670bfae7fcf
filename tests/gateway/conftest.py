"""App-level fixtures: a running app on a fresh database (both engines) and staff tokens."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from litestar.testing import TestClient

from gateway.app import create_app
from gateway.audit import Actor
from gateway.auth import Role, create_token
from gateway.settings import Settings
from ledger.db import run_transaction


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(database_url=db_url, dev_keys_file=str(tmp_path / "dev-keys.env"))


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def auth(client: TestClient) -> Callable[[str], dict[str, str]]:
    """``auth("treasury")`` → headers carrying a fresh token of that role."""
    engine = client.app.state.services.engine

    def headers(role: str) -> dict[str, str]:
        issued = run_transaction(
            engine, lambda conn: create_token(conn, role=Role(role), name=f"test {role}", actor=Actor.cli())
        )
        return {"Authorization": f"Bearer {issued.secret}"}

    return headers
