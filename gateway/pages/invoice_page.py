"""``GET /p/{token}``: read the invoice and its payments, render the page, keep it in the page
cache (``page_cache``) until it could differ, and answer with the requester's CSRF token.

The route opts out of Litestar's CSRF middleware (a GET needs no check) and does its one job
here, the same way: the pay form carries the browser's CSRF cookie value, and a browser
without the cookie gets a new token (Litestar's format, so the middleware accepts the POST).
Pages without a form set no CSRF cookie.
"""

from __future__ import annotations

import asyncio
import html
from collections.abc import Callable, Hashable
from datetime import date
from typing import Any, Final, TypeVar

import anyio
import anyio.to_thread
from litestar import Request
from litestar.config.csrf import CSRFConfig
from litestar.datastructures import Cookie
from litestar.middleware.csrf import generate_csrf_token
from litestar.types import Receive, Scope, Send

from gateway.pages.i18n import Lang
from gateway.pages.invoice_view import invoice_view
from gateway.pages.page_cache import (
    CSRF_MARK,
    CachedPage,
    PageCache,
    change_signal,
    split_page,
)
from gateway.pages.payment_status import PaymentStatus, payment_status
from gateway.pages.render import (
    PAGE_HEADERS,
    frame_context,
    lang_cookie,
    page_lang,
    services_of,
)
from gateway.pages.token_access import token_invoice
from gateway.services import Services
from invoices.model import Invoice
from ledger.db import read_transaction

TEMPLATE: Final = "resident/invoice.html"
T = TypeVar("T")

# Fewer than the engine's pool (10): with the default 40 threads, requests beyond the pool wait
# on its checkout, which is not first-come first-served, and a few waited a second while the
# median was 90 ms. This limiter queues them in arrival order instead.
PAGE_READ_THREADS: Final = 8
_PAGE_READS = "nofu_page_reads"
_PAGE_CACHE = "nofu_page_cache"
_CSRF_SET_COOKIE = "nofu_csrf_set_cookie"
_FLIGHTS = "nofu_page_flights"


def _per_app(state: Any, key: str, make: Callable[[], T]) -> T:
    """``state[key]``, made by ``make`` the first time (one per app, so per event loop)."""
    value = state.get(key)
    if value is None:
        value = state[key] = make()
    return value  # type: ignore[no-any-return]


def page_reads(request: Request[Any, Any, Any]) -> anyio.CapacityLimiter:
    """The app's limiter for invoice page reads."""
    return _per_app(request.app.state, _PAGE_READS, lambda: anyio.CapacityLimiter(PAGE_READ_THREADS))


def open_page_cache(state: Any) -> PageCache:
    """The app's page cache (made at startup, so PostgreSQL is listened to before the first page)."""

    def make() -> PageCache:
        services: Services = state.services
        return PageCache(change_signal(services.engine) if services.settings.page_cache_on else None)

    return _per_app(state, _PAGE_CACHE, make)


def close_page_cache(state: Any) -> None:
    cache = state.get(_PAGE_CACHE)
    if cache is not None:
        cache.close()
        del state[_PAGE_CACHE]


def _read(services: Services, token: str) -> tuple[Invoice, PaymentStatus]:
    with read_transaction(services.engine) as conn:
        invoice, attempted = token_invoice(conn, services.keys.qr, token)
        return invoice, payment_status(services, conn, invoice, attempted=attempted)


async def invoice_page(request: Request[Any, Any, Any], token: str) -> PageResponse:
    """The page for a genuine token (``TokenRefused`` otherwise), from the cache when unchanged.

    Requests that miss the same page at the same stamp wait for the first one's read and render
    instead of each doing their own (after a change, every open tab polling an invoice would).
    """
    services = services_of(request)
    cache = open_page_cache(request.app.state)
    lang, set_lang = page_lang(request)
    key = (token, lang, request.scope["query_string"])
    today = services.invoices.today()
    stamp = cache.stamp()  # before the read: a commit after this makes the page stale
    page = cache.get(key, stamp, today, services.payments.clock())
    if page is None and stamp is not None:
        flights: dict[Hashable, asyncio.Future[CachedPage | None]] = request.app.state.setdefault(_FLIGHTS, {})
        flight = (key, stamp, today)
        leader = flights.get(flight)
        if leader is not None:
            page = await asyncio.shield(leader)  # None: the first one failed; read on our own
        else:
            flights[flight] = future = asyncio.get_running_loop().create_future()
            try:
                page = await _build(request, services, token, lang, today, stamp)
                cache.put(key, page)
            finally:
                del flights[flight]
                future.set_result(page)
    if page is None:
        page = await _build(request, services, token, lang, today, stamp)
    return _respond(request, page, lang_cookie(services, lang) if set_lang else None)


async def _build(
    request: Request[Any, Any, Any], services: Services, token: str, lang: Lang, today: date, stamp: Hashable | None
) -> CachedPage:
    invoice, status = await anyio.to_thread.run_sync(_read, services, token, limiter=page_reads(request))
    view = invoice_view(
        services.invoices, invoice, today,
        live_attempt_id=status.live_attempt_id, paid_at=status.paid_at,
        receipt_attempt_id=status.receipt_attempt_id,
    )  # fmt: skip
    failure = None if status.last_failure is None else status.last_failure.failure_text(lang)
    context = {
        **frame_context(request, lang),
        "view": view, "token": token, "can_pay": status.can_pay, "last_failure": failure,
        "csrf_input": CSRF_MARK,
    }  # fmt: skip
    head, tail = split_page(request.app.template_engine.get_template(TEMPLATE).render(**context))
    return CachedPage(stamp, today, status.live_until if view.attempt_id else None, head, tail)


class PageResponse:
    """The page as a plain ASGI response: on the hottest route, Litestar's ``Response`` (header
    containers, content negotiation) cost more than everything else the cached page does. The
    security headers are still added by ``gateway.security`` around it."""

    __slots__ = ("body", "headers")

    def __init__(self, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        self.body = body
        self.headers = headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.headers})
        await send({"type": "http.response.body", "body": self.body})


_FIXED_HEADERS: Final = [(b"content-type", b"text/html; charset=utf-8")] + [
    (name.lower().encode(), value.encode()) for name, value in PAGE_HEADERS.items()
]


_TOKEN_SLOT: Final = "0" * 64  # CSRF tokens are hex: nothing to quote in a cookie


def _csrf_set_cookie(request: Request[Any, Any, Any], config: CSRFConfig) -> tuple[bytes, bytes, bytes]:
    """The middleware's Set-Cookie header, split around the token, made once per app
    (``Cookie.to_encoded_header`` costs more than the rest of a cached page's response)."""

    def make() -> tuple[bytes, bytes, bytes]:
        name, value = Cookie(
            key=config.cookie_name, value=_TOKEN_SLOT, path=config.cookie_path, secure=config.cookie_secure,
            httponly=config.cookie_httponly, samesite=config.cookie_samesite, domain=config.cookie_domain,
        ).to_encoded_header()  # fmt: skip
        before, _, after = value.partition(_TOKEN_SLOT.encode())
        return name, before, after

    return _per_app(request.app.state, _CSRF_SET_COOKIE, make)


def _respond(request: Request[Any, Any, Any], page: CachedPage, cookie: Cookie | None) -> PageResponse:
    headers = [*_FIXED_HEADERS]
    if cookie is not None:
        headers.append(cookie.to_encoded_header())
    body = page.head
    if page.tail is not None:
        config = request.app.csrf_config
        assert config is not None  # the app always has one (gateway.pages.limits)
        token = request.cookies.get(config.cookie_name)
        if not token:
            token = generate_csrf_token(secret=config.secret)
            name, before, after = _csrf_set_cookie(request, config)
            headers.append((name, before + token.encode() + after))
        field = f'<input type="hidden" name="_csrf_token" value="{html.escape(token)}" />'
        body = b"".join((page.head, field.encode(), page.tail))
    headers.append((b"content-length", str(len(body)).encode()))
    return PageResponse(body, headers)
