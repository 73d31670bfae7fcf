"""Rendering a resident page: language, frame context, the language cookie, no caching.

Every resident page is personal (an amount owed, a receipt), so none is stored by a browser
cache or a shared proxy (``Cache-Control: no-store``) nor indexed (``X-Robots-Tag``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import urlencode

from litestar import Request
from litestar.datastructures import Cookie
from litestar.response import Template

from gateway.pages.i18n import COOKIE, COOKIE_MAX_AGE, Lang, Translator, choose_lang
from gateway.pages.token_access import TokenRefused
from gateway.services import Services

log = logging.getLogger("nofu.pages")

PAGE_HEADERS: Final = {"Cache-Control": "no-store", "X-Robots-Tag": "noindex, nofollow"}


def services_of(request: Request[Any, Any, Any]) -> Services:
    services: Services = request.app.state.services
    return services


def page_lang(request: Request[Any, Any, Any]) -> tuple[Lang, bool]:
    return choose_lang(request.query_params.get("lang"), request.cookies.get(COOKIE))


def translator(request: Request[Any, Any, Any]) -> Translator:
    return Translator(page_lang(request)[0])


def switch_url(request: Request[Any, Any, Any], lang: Lang) -> str:
    """This page's URL in the other language (other query parameters kept)."""
    params = [(k, v) for k, v in request.query_params.multi_items() if k != "lang"]
    params.append(("lang", lang))
    return f"{request.url.path}?{urlencode(params)}"


def lang_cookie(services: Services, lang: Lang) -> Cookie:
    """Remembers the language the resident chose with the switch."""
    return Cookie(
        key=COOKIE,
        value=lang,
        max_age=COOKIE_MAX_AGE,
        path="/",
        samesite="lax",
        httponly=True,
        secure=services.settings.public_base_url.startswith("https://"),
    )


def frame_context(request: Request[Any, Any, Any], lang: Lang, code: str | None = None) -> dict[str, Any]:
    """What ``resident/base.html`` needs: language, the switch link, the municipality."""
    other: Lang = "en" if lang == "ja" else "ja"
    return {
        "t": Translator(lang),
        "lang": lang,
        "other_lang": other,
        "switch_url": switch_url(request, other),
        "municipality": services_of(request).settings.municipality_name,
        "code": code,
    }


def render(
    request: Request[Any, Any, Any],
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    status: int = 200,
    code: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Template:
    """``resident/<template>`` in the request's language.

    ``code`` is a stable refusal code written into the page's ``<meta name="nofu-code">`` (tests
    and support staff read it; residents read the words).
    """
    lang, set_cookie = page_lang(request)
    return Template(
        template_name=f"resident/{template}",
        context={**frame_context(request, lang, code), **(context or {})},
        status_code=status,
        cookies=[lang_cookie(services_of(request), lang)] if set_cookie else [],
        headers={**PAGE_HEADERS, **(headers or {})},
    )


def refusal(request: Request[Any, Any, Any], refused: TokenRefused) -> Template:
    """The 404 page for a payment token that does not open an invoice (no invoice data on it)."""
    log.info("payment token refused: %s", refused.code)
    return render(request, "refused.html", {"message_key": refused.message_key}, status=404, code=refused.code)
