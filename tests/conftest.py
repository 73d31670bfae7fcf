"""Database fixtures: every test that takes ``engine`` runs on SQLite and on PostgreSQL.

PostgreSQL tests skip when the server is unreachable, unless NOFU_REQUIRE_POSTGRES=1 (set by
.ci/run), in which case they fail. Each test gets its own database: SQLite copies a migrated
template file; PostgreSQL clones a migrated template database (CREATE DATABASE … TEMPLATE).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import Engine

from gateway.bootstrap import prepare_database
from ledger.db import create_engine

PG_ADMIN_URL = os.environ.get("NOFU_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REQUIRE_PG = os.environ.get("NOFU_REQUIRE_POSTGRES") == "1"
RUN_ID = uuid.uuid4().hex[:8]


@cache
def postgres_reachable() -> bool:
    try:
        psycopg.connect(PG_ADMIN_URL, connect_timeout=3).close()
        return True
    except psycopg.Error:
        return False


def require_postgres() -> None:
    if not postgres_reachable():
        if REQUIRE_PG:
            pytest.fail(f"PostgreSQL is required (NOFU_REQUIRE_POSTGRES=1) but {PG_ADMIN_URL} is unreachable")
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL}")


def _admin(sql: str) -> None:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql)  # type: ignore[arg-type]


def pg_url(database: str) -> str:
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    return f"{base}/{database}"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "nofu.sqlite3"
    engine = create_engine(f"sqlite:///{path}")
    prepare_database(engine)
    engine.dispose()  # the last connection closing checkpoints the WAL into the file
    assert not path.with_name(path.name + "-wal").exists()
    return path


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    require_postgres()
    name = f"nofu_tmpl_{RUN_ID}_{os.getpid()}"
    _admin(f"DROP DATABASE IF EXISTS {name}")
    _admin(f"CREATE DATABASE {name}")
    engine = create_engine(pg_url(name))
    prepare_database(engine)
    engine.dispose()
    yield name
    _admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def make_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[str], str]:
    """A factory: a fresh, migrated database URL of the given kind ("sqlite" / "postgresql")."""
    created: list[str] = []

    def make(kind: str) -> str:
        if kind == "sqlite":
            template = request.getfixturevalue("sqlite_template")
            target = tmp_path / f"nofu-{len(created)}.sqlite3"
            shutil.copyfile(template, target)
            created.append(str(target))
            return f"sqlite:///{target}"
        template = request.getfixturevalue("pg_template")
        name = f"nofu_t_{RUN_ID}_{uuid.uuid4().hex[:10]}"
        _admin(f"CREATE DATABASE {name} TEMPLATE {template}")
        created.append(name)
        return pg_url(name)

    yield make  # type: ignore[misc]
    for item in created:
        if not item.startswith("/"):
            _admin(f"DROP DATABASE IF EXISTS {item} WITH (FORCE)")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, make_db_url: Callable[[str], str]) -> str:
    """A fresh migrated database, once on SQLite and once on PostgreSQL."""
    if request.param == "postgresql":
        require_postgres()
    return make_db_url(request.param)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = create_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def pg_engine(make_db_url: Callable[[str], str]) -> Iterator[Engine]:
    """PostgreSQL only: for tests that race real concurrent writers."""
    require_postgres()
    engine = create_engine(make_db_url("postgresql"), pool_size=20)
    yield engine
    engine.dispose()
