"""A real headless Chromium pays an invoice on a phone-sized screen, end to end: nofu served by
uvicorn on a free port (SQLite), the Stripe-compatible sandbox beside it, ``tests/browser/pay.mjs``
driving the browser through playwright-core. The test asserts on what the browser saw (the
script's JSON) and on the database (the invoice is paid, the receipt is the service's).

Skipped only when node or Chromium is missing. ``npm ci`` runs the first time (node_modules is
not committed; package-lock.json is). Screenshots land in tests/artifacts/ (gitignored).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

import pytest
import uvicorn
from litestar import Litestar

from gateway.app import create_app
from gateway.sandbox import SandboxConfig, SandboxServer
from gateway.services import Services
from gateway.settings import Settings
from invoices.model import IssueRequest, Status, invoice_payment_code
from invoices.queries import get_invoice
from invoices.service import issue_invoice
from ledger.db import read_transaction, run_transaction

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
ARTIFACTS = ROOT / "tests" / "artifacts" / "browser"
CHROMIUM = os.environ.get("NOFU_CHROMIUM", "/usr/bin/chromium")
NODE = shutil.which("node")

pytestmark = pytest.mark.skipif(
    NODE is None or not Path(CHROMIUM).exists(), reason="node or Chromium is not installed"
)


def ensure_node_modules() -> None:
    if (HERE / "node_modules" / "playwright-core" / "package.json").exists():
        return
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm is needed to install playwright-core (tests/browser/package-lock.json)")
    env = {**os.environ, "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD": "1"}
    subprocess.run(
        [npm, "ci", "--prefix", str(HERE), "--no-audit", "--no-fund"], check=True, env=env, timeout=300
    )


class AppServer:
    """The app under uvicorn in a thread, on a port chosen before the app is built (the
    public base URL, used for return URLs, must name it)."""

    def __init__(self, app: Litestar, sock: socket.socket) -> None:
        self._sock = sock
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on"))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True)

    def __enter__(self) -> AppServer:
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the app did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(SandboxConfig()) as running:
        yield running


def test_pay_on_a_phone_and_get_a_receipt(
    make_db_url: Callable[[str], str], tmp_path: Path, sandbox: SandboxServer
) -> None:
    ensure_node_modules()
    sock = free_socket()
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    app = create_app(
        Settings(
            database_url=make_db_url("sqlite"),
            dev_keys_file=str(tmp_path / "dev-keys.env"),
            public_base_url=base,
            municipality_name="サンプル市",
            stripe_api_base=sandbox.url,
            payment_sweep_seconds="0",
        )
    )
    services: Services = app.state.services
    # Overdue by months, so the page shows a late fee (延滞金) as of today.
    request = IssueRequest(
        tax_code="FIXED_ASSET", fiscal_year=2025, installment=1, due_date=date(2025, 4, 30), amount=123_400,
        payer_ref="000123", payer_name="山田 太郎", issue_date=date(2025, 4, 1),
    )  # fmt: skip
    invoice = run_transaction(
        services.engine, lambda conn: issue_invoice(conn, services.invoices, request, actor="cli:test")
    ).invoice
    code = invoice_payment_code(services.keys.qr, invoice)
    page_url = base + "/p/" + code.token
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    with AppServer(app, sock):
        run = subprocess.run(
            [NODE or "node", str(HERE / "pay.mjs"), page_url, str(ARTIFACTS), code.notice_number,
             code.confirmation_code],
            capture_output=True, text=True, timeout=180, cwd=ROOT,
        )  # fmt: skip
    assert run.returncode == 0, run.stderr
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    assert seen["ok"], seen.get("error")

    # What the resident saw, in order.
    assert seen["refused"] == {"status": 404, "code": seen["refused"]["code"], "title": "このURLではお支払いできません"}
    assert seen["refused"]["code"] in {"token.malformed", "token.bad_signature"}
    assert seen["enteredToPage"] is True
    assert seen["htmlLang"] == "ja"
    assert seen["stateBefore"] == "unpaid"
    due = services.payments.attempts_for_invoice(invoice.display_number)[-1]  # the one that paid
    assert due.late_fee > 0
    assert seen["lateFee"] == f"{due.late_fee:,}円"
    assert seen["total"] == f"{due.amount:,}円"
    assert seen["payButton"]["text"] == f"{due.amount:,}円を支払う"
    assert seen["payButton"]["height"] >= 44
    assert seen["focus"]["first"] == "skip"
    assert seen["focus"]["outline"]["outlineStyle"] == "solid"
    assert seen["attemptState"] == "attempt-created"
    assert seen["methods"] == ["card_success", "card_declined", "insufficient_funds", "expired_card", "paypay"]
    assert seen["declinedState"] == "attempt-failed"
    assert seen["declinedMessage"].startswith("カードが承認されませんでした")
    assert seen["retryIsNewAttempt"] is True
    assert seen["doneState"] == "attempt-succeeded" and seen["doneTitle"] == "お支払いが完了しました"
    assert seen["receipt"]["title"] == "支払完了証明"
    assert seen["receipt"]["amount"] == f"{due.amount:,}円"
    assert seen["receipt"]["paidAt"].endswith("（日本時間）")
    assert seen["receipt"]["printVisible"] is True
    assert seen["englishLang"] == "en" and seen["englishTitle"] == "Proof of payment"
    assert seen["verify"] == "genuine"
    assert seen["stateAfter"] == "paid" and seen["paidOn"].endswith("に納付済みです。")
    # Phone-sized: nothing scrolls sideways; no script errors; nothing loaded from elsewhere.
    assert all(extra <= 0 for extra in seen["overflow"].values()), seen["overflow"]
    assert seen["consoleErrors"] == []
    assert seen["foreignRequests"] == []
    assert len(seen["screenshots"]) == 10 and all(Path(p).stat().st_size > 10_000 for p in seen["screenshots"])

    # What the database says: paid, once, by the provider's confirmation.
    with read_transaction(services.engine) as conn:
        paid = get_invoice(conn, invoice.display_number)
    assert paid.status is Status.PAID and paid.amount_paid == 123_400
    attempts = services.payments.attempts_for_invoice(invoice.display_number)
    assert [a.status.value for a in attempts] == ["failed", "succeeded"]
    receipt = services.payments.get_receipt(seen["receipt"]["number"], seen["receipt"]["code"])
    assert receipt.amount == due.amount and receipt.provider_reference == seen["receipt"]["providerRef"]
    assert receipt.provider_reference.startswith("pi_")
