"""No stack trace ever reaches a resident; pages carry the security headers; the staff API is
outside CSRF (it is token-authenticated)."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.pages import invoice_page
from tests.pages.support import Site, page_code, site

__all__ = ["site"]


def test_unexpected_error_is_a_page_with_a_reference(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    invoice = site.issue()

    def boom(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(invoice_page, "invoice_view", boom)
    response = site.client.get(site.page_url(invoice))
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("text/html")
    assert page_code(response.text) == "page.internal_error"
    assert "secret internal detail" not in response.text
    assert "Traceback" not in response.text and "RuntimeError" not in response.text
    assert "お問い合わせ番号" in response.text


def test_security_headers_on_resident_pages(site: Site) -> None:
    invoice = site.issue()
    headers = site.client.get(site.page_url(invoice)).headers
    assert "script-src 'self' https://js.stripe.com" in headers["content-security-policy"]
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"  # the token never leaks in a Referer
    assert "noindex" in headers["x-robots-tag"]
    # No provider here, so no pay form: nothing to protect, no CSRF cookie (tests/pages/test_page_cache.py
    # checks the cookie on a page with the form).
    assert "nofu_csrf=" not in headers.get("set-cookie", "")


def test_staff_api_is_not_subject_to_csrf(site: Site) -> None:
    # No CSRF token, no cookie: the API answers its own 401 problem, not the CSRF 403 page.
    response = site.client.post("/api/v1/invoices/", json={})
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")


def test_stylesheet_is_served(site: Site) -> None:
    response = site.client.get("/static/resident.css")
    assert response.status_code == 200
    assert "text/css" in response.headers["content-type"]
