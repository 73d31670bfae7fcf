"""The Litestar application: assembled here, and only here.

``create_app(settings)`` builds the shared services (database engine, keys, invoice context),
registers controllers, error handling and security headers; tests build one app per test with
their own database URL.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar import Litestar, get
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.openapi import OpenAPIConfig
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig
from sqlalchemy.engine import Engine

from gateway.api.invoices import InvoiceController
from gateway.api.payments import PaymentController
from gateway.api.reconciliation import ReconciliationController
from gateway.api.webhooks import WebhookController, stripe_webhook
from gateway.auth import StaffAuthPlugin
from gateway.auth.audit_api import audit_log_endpoint
from gateway.heap import freeze_heap
from gateway.pages.invoice_page import close_page_cache, open_page_cache
from gateway.pages.limits import csrf_config
from gateway.pages.reconciliation import StaffReconciliationPages
from gateway.pages.resident import ResidentController
from gateway.problems import EXCEPTION_HANDLERS
from gateway.payments.sweeper import PaymentSweeper
from gateway.schema_version import ensure_current
from gateway.security import security_headers_middleware
from gateway.services import Services, build_services
from gateway.settings import Settings
from gateway.webhook_handlers import build_webhooks

HERE = Path(__file__).parent


@get("/healthz", include_in_schema=False, sync_to_thread=False)
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@get("/.well-known/nofu-qr-keys.json", sync_to_thread=False, tags=["public"], cache=300)
def qr_public_keys(services: NamedDependency[Services]) -> dict[str, Any]:
    """The public keys that sign QR payment codes (JWKS, RFC 8037), for offline verification."""
    return services.keys.qr.jwks()


def create_app(
    settings: Settings | None = None, *, engine: Engine | None = None, check_schema: bool = True
) -> Litestar:
    settings = settings or Settings.from_env()
    services = build_services(settings, engine)
    if check_schema:
        ensure_current(services.engine)

    # Expires abandoned payment attempts and retries pending refunds (gateway/payments/sweeper.py).
    sweeper = PaymentSweeper(services.payments, settings.sweep_seconds)
    # Webhook intake, and the event processor on a thread unless NOFU_WEBHOOK_INPROCESS=0.
    webhooks = build_webhooks(settings, services.engine, services.payments)

    def provide_services(state: State) -> Services:
        return state.services

    state = State({"services": services, "webhooks": webhooks})
    route_handlers: list[Any] = [
        healthz,
        qr_public_keys,
        audit_log_endpoint,
        InvoiceController,
        PaymentController,
        ReconciliationController,
        StaffReconciliationPages,
        WebhookController,
        stripe_webhook,
        ResidentController,
        create_static_files_router(path="/static", directories=[HERE / "static"], include_in_schema=False),
    ]
    return Litestar(
        route_handlers=route_handlers,
        dependencies={"services": Provide(provide_services, sync_to_thread=False)},
        plugins=[StaffAuthPlugin(services.engine)],
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        middleware=[security_headers_middleware(settings)],
        csrf_config=csrf_config(services),
        template_config=TemplateConfig(
            directory=HERE / "templates",
            engine=JinjaTemplateEngine,
            # Templates ship with the code: do not stat their files on every render.
            engine_callback=lambda jinja: setattr(jinja.engine, "auto_reload", False),
        ),
        openapi_config=OpenAPIConfig(title="nofu staff API", version="1", path="/schema"),
        state=state,
        signature_namespace={"Services": Services},
        on_startup=[sweeper.start, webhooks.start, lambda: open_page_cache(state)],
        on_shutdown=[sweeper.stop, webhooks.stop, lambda: close_page_cache(state), lambda: services.engine.dispose()],
        debug=False,
    )


def serve_app(settings: Settings | None = None, *, engine: Engine | None = None) -> Litestar:
    """The app as a server process runs it (``nofu serve``, ``nofu demo``, the benchmark)."""
    app = create_app(settings, engine=engine)
    app.on_startup.append(freeze_heap)
    return app
