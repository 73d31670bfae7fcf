"""An app on a fresh database (both engines) with a fake provider statement wired in, and staff
tokens of each role (import the fixtures into a test module)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from litestar.testing import TestClient

from gateway.app import create_app
from gateway.audit import Actor
from gateway.auth import Role, create_token
from gateway.providers.statements import ReconciliationWiring
from gateway.settings import Settings
from ledger.db import run_transaction
from reconciliation import NoLinks
from tests.reconciliation.support import FakeSource


@pytest.fixture
def source() -> FakeSource:
    return FakeSource()


@pytest.fixture
def app_settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(database_url=db_url, dev_keys_file=str(tmp_path / "dev-keys.env"), webhook_inprocess="0",
                    payment_sweep_seconds="0")  # fmt: skip


@pytest.fixture
def client(app_settings: Settings, source: FakeSource) -> Iterator[TestClient]:
    app = create_app(app_settings)
    app.state["reconciliation_wiring"] = ReconciliationWiring(source, NoLinks(), None)  # type: ignore[arg-type]
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def token(client: TestClient) -> Callable[[str], str]:
    engine = client.app.state.services.engine

    def issue(role: str) -> str:
        issued = run_transaction(
            engine, lambda conn: create_token(conn, role=Role(role), name=f"会計課 {role}", actor=Actor.cli())
        )
        return issued.secret

    return issue


@pytest.fixture
def auth(token: Callable[[str], str]) -> Callable[[str], dict[str, str]]:
    return lambda role: {"Authorization": f"Bearer {token(role)}"}
