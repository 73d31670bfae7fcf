"""The invoice page cache (gateway/pages/page_cache.py): a page is served again only while
nothing it shows could differ, on both engines, whoever wrote the change."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from gateway.pages import invoice_page
from gateway.pages.page_cache import PostgresChanges, SQLiteChanges
from invoices.model import Invoice
from invoices.service import amend_invoice, cancel_invoice
from ledger.db import run_transaction
from tests.pages.support import (
    Site,
    by_testid,
    csrf_field,
    make_site,
    page_state,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def site(paying_site: Site) -> Site:
    return paying_site


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The tokens of every database read the invoice page makes."""
    calls: list[str] = []
    real = invoice_page._read

    def counting(services: Any, token: str) -> Any:
        calls.append(token)
        return real(services, token)

    monkeypatch.setattr(invoice_page, "_read", counting)
    return calls


def tap_pay(site: Site, invoice: Invoice) -> None:
    page = site.client.get(site.page_url(invoice)).text
    response = site.client.post(
        site.page_url(invoice) + "/pay",
        data={"_csrf_token": csrf_field(page), "amount": by_testid(page, "total").replace(",", "").rstrip("円")},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text


def until(check: Callable[[], bool], seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def settle(site: Site) -> None:
    """Wait until the cache sees changes (PostgreSQL: it listens, from app startup) and the
    notification of the last write has arrived, so the next stamp is the one pages get."""
    cache = invoice_page.open_page_cache(site.app.state)

    def steady() -> bool:
        before = cache.stamp()
        time.sleep(0.2)
        return before is not None and cache.stamp() == before

    assert until(steady)


def test_an_unchanged_page_is_served_without_reading_again(site: Site, reads: list[str]) -> None:
    invoice = site.issue()
    settle(site)
    url = site.page_url(invoice)
    first, second = site.client.get(url), site.client.get(url)
    assert first.status_code == second.status_code == 200
    assert len(reads) == 1
    assert page_state(second.text) == "unpaid" and by_testid(second.text, "total") == "12,300円"
    # Each language (and query) is its own page.
    english = site.client.get(url + "?lang=en")
    assert "¥12,300" in english.text and len(reads) == 2


def test_concurrent_misses_read_once(site: Site, reads: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    invoice = site.issue()
    settle(site)
    counting = invoice_page._read

    def slow(services: Any, token: str) -> Any:
        time.sleep(0.3)  # the read is still running when the other requests arrive
        return counting(services, token)

    monkeypatch.setattr(invoice_page, "_read", slow)

    async def twenty() -> list[int]:
        # The app is running already (the site's client): no second lifespan, just requests.
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=site.app), base_url="http://test") as client:
            responses = await asyncio.gather(*(client.get(site.page_url(invoice)) for _ in range(20)))
        return [r.status_code for r in responses]

    assert asyncio.run(twenty()) == [200] * 20
    assert len(reads) == 1


def test_pages_read_while_amendments_commit_converge_on_the_last(site: Site) -> None:
    """Readers race a writer (a thread amending the invoice 15 times): every page shows an amount
    that was committed at some point, and once the writer is done every page shows the last one
    (SQLite at once; PostgreSQL once the notification of the last commit has arrived)."""
    invoice = site.issue()
    services = site.services
    amounts = [12_300 + 100 * i for i in range(1, 16)]

    def write() -> None:
        for amount in amounts:
            run_transaction(services.engine, lambda conn, amount=amount: amend_invoice(
                conn, services.invoices, invoice.display_number, amount, reason="更正", actor="cli:test"))  # fmt: skip

    def total(html: str) -> int:
        return int(by_testid(html, "total").replace(",", "").rstrip("円"))

    async def race() -> tuple[set[int], int]:
        seen: set[int] = set()
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=site.app), base_url="http://test") as client:
            writer = asyncio.get_running_loop().run_in_executor(None, write)
            while not writer.done():
                pages = await asyncio.gather(*(client.get(site.page_url(invoice)) for _ in range(8)))
                seen.update(total(page.text) for page in pages)
            await writer
            deadline = time.monotonic() + 5
            while (last := total((await client.get(site.page_url(invoice))).text)) != amounts[-1]:
                assert not db_is_sqlite, "SQLite sees the last commit at once"
                assert time.monotonic() < deadline
                await asyncio.sleep(0.02)
        return seen, last

    db_is_sqlite = services.engine.dialect.name == "sqlite"
    seen, last = asyncio.run(race())
    assert last == amounts[-1]
    assert seen <= {12_300, *amounts} and len(seen) > 1


def test_a_write_by_this_process_shows_at_once(site: Site, reads: list[str]) -> None:
    invoice = site.issue()
    url = site.page_url(invoice)
    assert page_state(site.client.get(url).text) == "unpaid"
    tap_pay(site, invoice)  # a payment attempt: written by this app
    assert page_state(site.client.get(url).text) == "in_progress"
    services = site.services
    run_transaction(
        services.engine,
        lambda conn: cancel_invoice(conn, services.invoices, invoice.display_number, reason="課税取消", actor="cli:test"),
    )
    assert page_state(site.client.get(url).text) == "cancelled"


AMEND = """
import sys
from gateway.settings import Settings
from gateway.services import build_services
from invoices.service import amend_invoice
from ledger.db import run_transaction
services = build_services(Settings(database_url=sys.argv[1], dev_keys_file=sys.argv[2]))
run_transaction(services.engine, lambda conn: amend_invoice(
    conn, services.invoices, sys.argv[3], 15_000, reason="更正", actor="cli:test"))
"""


def test_a_write_by_another_process_shows(site: Site, db_url: str, tmp_path: Path, reads: list[str]) -> None:
    invoice = site.issue()
    url = site.page_url(invoice)
    assert by_testid(site.client.get(url).text, "total") == "12,300円"
    subprocess.run(
        [sys.executable, "-c", AMEND, db_url, str(tmp_path / "dev-keys.env"), invoice.display_number],
        check=True, cwd=ROOT, capture_output=True,
    )  # fmt: skip
    if db_url.startswith("sqlite"):
        # data_version: exact, the very next request sees it.
        assert by_testid(site.client.get(url).text, "total") == "15,000円"
    else:
        # PostgreSQL tells the page cache after the commit, within milliseconds.
        assert until(lambda: by_testid(site.client.get(url).text, "total") == "15,000円")


def test_the_late_fee_follows_the_date(site: Site, reads: list[str]) -> None:
    invoice = site.issue(amount=500_000, due_date=date(2026, 4, 30))
    url = site.page_url(invoice)
    settle(site)
    site.set_today(date(2026, 6, 1))
    before = by_testid(site.client.get(url).text, "late-fee")
    site.set_today(date(2026, 9, 1))
    after = by_testid(site.client.get(url).text, "late-fee")
    assert before != after and len(reads) == 2


def test_an_attempt_past_its_time_leaves_the_page(site: Site, reads: list[str]) -> None:
    invoice = site.issue()
    url = site.page_url(invoice)
    tap_pay(site, invoice)
    assert page_state(site.client.get(url).text) == "in_progress"
    payments = site.services.payments
    real_clock = payments.clock
    payments.clock = lambda: real_clock() + timedelta(hours=2)  # no write: only time passed
    try:
        assert page_state(site.client.get(url).text) == "unpaid"
    finally:
        payments.clock = real_clock


def test_every_browser_gets_its_own_csrf_token(site: Site) -> None:
    invoice = site.issue()
    url = site.page_url(invoice)
    site.client.cookies.clear()
    first = site.client.get(url)
    cookie = first.headers["set-cookie"]
    assert "nofu_csrf=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
    token = site.client.cookies["nofu_csrf"]
    assert csrf_field(first.text) == token
    again = site.client.get(url)  # the browser sends its cookie: the form carries it, no new cookie
    assert "set-cookie" not in again.headers and csrf_field(again.text) == token
    site.client.cookies.clear()
    other = site.client.get(url)  # another browser, the same cached page
    assert csrf_field(other.text) != token and csrf_field(other.text) == site.client.cookies["nofu_csrf"]
    tap_pay(site, invoice)  # and its token is accepted by the CSRF check of the form post


def test_a_page_without_a_form_sets_no_csrf_cookie(site: Site) -> None:
    invoice = site.issue()
    services = site.services
    run_transaction(
        services.engine,
        lambda conn: cancel_invoice(conn, services.invoices, invoice.display_number, reason="課税取消", actor="cli:test"),
    )
    site.client.cookies.clear()
    response = site.client.get(site.page_url(invoice))
    assert page_state(response.text) == "cancelled" and "nofu_csrf" not in response.headers.get("set-cookie", "")


def test_the_cache_can_be_turned_off(db_url: str, tmp_path: Path, reads: list[str]) -> None:
    for plain in make_site(db_url, tmp_path, page_cache="0"):
        invoice = plain.issue()
        for _ in range(3):
            assert plain.client.get(plain.page_url(invoice)).status_code == 200
        assert len(reads) == 3


@pytest.mark.postgres
def test_postgres_changes_stop_caching_while_not_listening(pg_engine: sa.Engine) -> None:
    signal = PostgresChanges(pg_engine)
    try:
        assert until(lambda: signal.stamp() is not None)
        before = signal.stamp()
        with pg_engine.begin() as conn:  # the listening connection is cut
            conn.execute(sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE query = 'LISTEN nofu_pages' AND pid <> pg_backend_pid() AND datname = current_database()"
            ))  # fmt: skip
        assert until(lambda: signal.stamp() is None, 3)
        # Back after a reconnect, with a stamp no page cached before can have.
        assert until(lambda: signal.stamp() is not None)
        assert signal.stamp() != before
    finally:
        signal.close()


@pytest.mark.parametrize("journal", ["wal", "delete"])
def test_sqlite_changes_see_every_commit_of_any_connection(tmp_path: Path, journal: str) -> None:
    path = str(tmp_path / "changes.sqlite3")
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute(f"PRAGMA journal_mode={journal}")
    writer.execute("CREATE TABLE t (x INTEGER)")
    signal = SQLiteChanges(path)
    try:
        assert (signal._shm is not None) == (journal == "wal")  # the header map, or the pragma
        seen = {signal.stamp()}
        assert signal.stamp() in seen  # nothing committed: the same stamp
        for value in range(20):
            writer.execute("INSERT INTO t VALUES (?)", (value,))
            stamp = signal.stamp()
            assert stamp is not None and stamp not in seen  # each commit: a stamp never seen before
            seen.add(stamp)
        writer.execute("BEGIN")
        writer.execute("INSERT INTO t VALUES (99)")
        pending = signal.stamp()
        writer.execute("ROLLBACK")  # nothing committed
        if journal == "wal":
            writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the WAL starts over ...
            writer.execute("INSERT INTO t VALUES (100)")  # ... and a commit there is still new
            assert signal.stamp() not in seen
        else:
            assert signal.stamp() == pending
    finally:
        signal.close()
        writer.close()
    assert signal.stamp() is None  # closed: nothing may be cached
