"""Litestar wiring: the ``require(permission)`` guard, the ``staff`` dependency, the plugin.

Use::

    app = Litestar(..., plugins=[StaffAuthPlugin(engine)])

    @post("/api/v1/payments/{payment_id:int}/refunds", guards=[require("payments:refund")])
    def refund(payment_id: int, staff: NamedDependency[StaffIdentity]) -> ...:
        ... audit.record(conn, staff.actor, "refund.create", f"payment:{payment_id}", {...})

The guard authenticates (401 ``auth.unauthorized`` with ``WWW-Authenticate: Bearer``) and then
authorizes (403 ``auth.forbidden``); the identity it establishes is ``request.user`` /
``request.scope["user"]`` and the ``staff`` dependency. Several ``require`` guards on one route
(controller and handler) authenticate once. Every identity carries the request id (the
``X-Request-ID`` header when it is a sane token, else a fresh one) so audit rows name the request.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import uuid
from collections.abc import Callable
from datetime import datetime

from litestar import Request
from litestar.config.app import AppConfig
from litestar.connection import ASGIConnection
from litestar.di import Provide
from litestar.exceptions import ImproperlyConfiguredException
from litestar.handlers.base import BaseRouteHandler
from litestar.plugins import InitPlugin
from litestar.types import Guard
from sqlalchemy.engine import Engine

from gateway.auth.authenticator import StaffAuthenticator
from gateway.auth.errors import Unauthorized
from gateway.auth.identity import StaffIdentity
from gateway.auth.permissions import PERMISSIONS
from gateway.problems import Problem
from ledger.clock import utc_now

log = logging.getLogger("nofu.auth")

STATE_KEY = "staff_authenticator"
REALM = "nofu"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def request_id(connection: ASGIConnection) -> str:  # type: ignore[type-arg]
    """This request's id, fixed on first use: a middleware's, the client's ``X-Request-ID``, or new."""
    state = connection.scope.setdefault("state", {})  # type: ignore[typeddict-item]
    existing = state.get("request_id")
    if isinstance(existing, str):
        return existing
    header = connection.headers.get("x-request-id")
    value = header if header is not None and _REQUEST_ID.fullmatch(header) else uuid.uuid4().hex
    state["request_id"] = value
    return value


def _challenge(error: Unauthorized) -> str:
    # RFC 6750 §3: no error attribute when the request carried no credentials at all.
    if error.reason == "missing":
        return f'Bearer realm="{REALM}"'
    return f'Bearer realm="{REALM}", error="invalid_token"'


def authenticator_of(connection: ASGIConnection) -> StaffAuthenticator:  # type: ignore[type-arg]
    found = connection.app.state.get(STATE_KEY)
    if not isinstance(found, StaffAuthenticator):
        raise ImproperlyConfiguredException("staff auth is not installed: add StaffAuthPlugin(engine) to the app")
    return found


async def authenticate(connection: ASGIConnection) -> StaffIdentity:  # type: ignore[type-arg]
    """The caller's identity, established once per request; 401 problem details otherwise."""
    already = connection.scope.get("user")
    if isinstance(already, StaffIdentity):
        return already
    try:
        identity = await authenticator_of(connection).identify(connection.headers.getall("authorization", []))
    except Unauthorized as exc:
        log.info("staff API refused (%s) on %s %s", exc.reason, connection.scope.get("method"), connection.url.path)
        raise Problem(
            401,
            "auth.unauthorized",
            "Authentication required",
            exc.message,
            headers={"WWW-Authenticate": _challenge(exc)},
            reason=exc.reason,
        ) from None
    identity = dataclasses.replace(identity, request_id=request_id(connection))
    connection.scope["user"] = identity
    return identity


def require(permission: str) -> Guard:
    """A guard admitting only staff whose role holds ``permission`` (see ``permissions.py``).

    An unknown permission name is a programming error and fails when the route is defined.
    """
    if permission not in PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}; known: {', '.join(PERMISSIONS)}")

    async def guard(connection: ASGIConnection, _handler: BaseRouteHandler) -> None:  # type: ignore[type-arg]
        identity = await authenticate(connection)
        if not identity.can(permission):
            log.info("staff %s (%s) lacks %s on %s", identity.id, identity.role, permission, connection.url.path)
            raise Problem(
                403,
                "auth.forbidden",
                "Not allowed",
                f"the {identity.role.value} role does not hold {permission}",
                headers={"WWW-Authenticate": f'Bearer realm="{REALM}", error="insufficient_scope", scope="{permission}"'},
                permission=permission,
                role=identity.role.value,
            )

    guard.__name__ = guard.__qualname__ = f"require({permission!r})"
    return guard


def provide_staff(request: Request) -> StaffIdentity:  # type: ignore[type-arg]
    """The ``staff`` dependency: the identity a ``require`` guard established.

    A handler that asks for ``staff`` without a guard fails closed (401), never runs anonymous.
    """
    identity = request.scope.get("user")
    if not isinstance(identity, StaffIdentity):
        raise Problem(
            401,
            "auth.unauthorized",
            "Authentication required",
            "this route has no require(...) guard",
            headers={"WWW-Authenticate": f'Bearer realm="{REALM}"'},
            reason="missing",
        )
    return identity


class StaffAuthPlugin(InitPlugin):
    """Installs the authenticator in app state and the ``staff`` dependency."""

    def __init__(
        self, engine: Engine, *, cache_seconds: float = 5.0, clock: Callable[[], datetime] = utc_now
    ) -> None:
        self.authenticator = StaffAuthenticator(engine, cache_seconds=cache_seconds, clock=clock)

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        app_config.state[STATE_KEY] = self.authenticator
        app_config.dependencies["staff"] = Provide(provide_staff, sync_to_thread=False)
        app_config.signature_namespace["StaffIdentity"] = StaffIdentity
        return app_config
