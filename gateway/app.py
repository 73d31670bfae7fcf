"""The Litestar application: assembled here, and only here.

``create_app(settings)`` wires the database, the domain services and the controllers; tests build
one app per test with their own database URL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar import Litestar, Request, get
from litestar.config.response_cache import ResponseCacheConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from sqlalchemy.engine import Engine

from gateway.auth import StaffAuthPlugin
from gateway.auth.audit_api import audit_log_endpoint
from gateway.problems import EXCEPTION_HANDLERS
from gateway.security import security_headers_middleware
from gateway.settings import Settings
from ledger.db import create_engine


@dataclass
class Services:
    """Everything a handler may need, built once per app."""

    settings: Settings
    engine: Engine


@get("/healthz", include_in_schema=False, sync_to_thread=False)
def healthz() -> dict[str, str]:
    return {"status": "ok"}


def create_app(settings: Settings | None = None, *, engine: Engine | None = None, check_schema: bool = True) -> Litestar:
    from gateway.schema_version import ensure_current

    settings = settings or Settings.from_env()
    engine = engine or create_engine(settings.database_url)
    if check_schema:
        ensure_current(engine)
    services = Services(settings=settings, engine=engine)

    def provide_services(state: State) -> Services:
        return state.services

    route_handlers: list[Any] = [healthz, audit_log_endpoint]
    return Litestar(
        route_handlers=route_handlers,
        dependencies={"services": Provide(provide_services, sync_to_thread=False)},
        plugins=[StaffAuthPlugin(engine)],
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        middleware=[security_headers_middleware(settings)],
        openapi_config=OpenAPIConfig(title="nofu staff API", version="1", path="/schema"),
        state=State({"services": services}),
        on_shutdown=[lambda: engine.dispose()],
        debug=False,
    )
