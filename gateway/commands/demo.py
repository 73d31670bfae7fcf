"""nofu demo — everything a newcomer needs to pay a tax within a minute of cloning.

Migrates the SQLite database, seeds a municipality's invoices, starts the Stripe-compatible
sandbox and the app, and prints a staff token, the payment URLs and a QR code in the terminal.
``--check`` pays the first invoice through the resident pages and the sandbox (with the webhook
delivered back), prints the books, and exits: the demo's own smoke test.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import socket
import sys
import threading
import time
from datetime import date, timedelta

import sqlalchemy as sa

from gateway.settings import Settings

DEMO_INVOICES = (
    # external_ref, code, installment, amount, due date (None: end of next month), payer
    ("demo-1", "FIXED_ASSET", 1, 123_400, date(2026, 4, 30), "山田 太郎"),
    ("demo-2", "RESIDENT_TAX", 3, 38_500, None, "佐藤 花子"),
    ("demo-3", "LIGHT_VEHICLE", 1, 10_800, None, "鈴木 一郎"),
    ("demo-4", "NHI_TAX", 5, 21_900, None, "高橋 美咲"),
    ("demo-5", "RESIDENT_COPY", None, 300, None, "田中 健"),
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="seed invoices, start the sandbox and the app, print payment URLs")
    p.add_argument("--host", default="127.0.0.1", help="0.0.0.0 to pay from a phone on the same network")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--sandbox-port", type=int, default=12111)
    p.add_argument("--check", action="store_true", help="pay one invoice end to end, print the books, exit")
    p.set_defaults(run=run)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _end_of_next_month(today: date) -> date:
    first_after_next = date(today.year + (today.month + 1) // 12, (today.month + 1) % 12 + 1, 1)
    return first_after_next - timedelta(days=1)


def _seed(services) -> list:  # type: ignore[no-untyped-def]
    from invoices import service
    from invoices.schema import invoices as invoice_table
    from ledger.db import run_transaction

    today = services.invoices.today()
    seeded = []
    for ref, code, installment, amount, due, payer in DEMO_INVOICES:
        def work(conn, ref=ref, code=code, installment=installment, amount=amount, due=due, payer=payer):  # type: ignore[no-untyped-def]
            existing = conn.scalar(sa.select(invoice_table.c.notice_number).where(invoice_table.c.external_ref == ref))
            if existing is not None:
                return service.get_invoice(conn, existing)
            due_date = due or _end_of_next_month(today)
            request = service.IssueRequest(
                tax_code=code,
                fiscal_year=2026,
                installment=installment,
                due_date=due_date,
                issue_date=min(today, due_date - timedelta(days=20)),
                amount=amount,
                payer_ref=f"DEMO-{ref[-1]}",
                payer_name=payer,
                payer_address="サンプル市中央町1-2-3",
                external_ref=ref,
            )
            return service.issue_invoice(conn, services.invoices, request, actor="cli:demo").invoice

        seeded.append(run_transaction(services.engine, work))
    return seeded


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from gateway.app import serve_app
    from gateway.audit import Actor
    from gateway.auth import Role, create_token
    from gateway.bootstrap import prepare_database
    from gateway.sandbox import SandboxConfig, SandboxServer
    from gateway.services import build_services
    from invoices.model import invoice_payment_code
    from ledger.db import create_engine, run_transaction

    import logging

    for noisy in ("httpx", "stripe", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    port = _free_port() if args.check else args.port
    sandbox_port = _free_port() if args.check else args.sandbox_port
    settings = Settings.from_env()
    public_host = socket.gethostbyname(socket.gethostname()) if args.host == "0.0.0.0" else args.host
    base = f"http://{public_host}:{port}"
    sandbox_config = SandboxConfig(
        webhook_url=f"http://127.0.0.1:{port}/webhooks/stripe",
        public_base_url=f"http://{public_host}:{sandbox_port}",
    )
    if not settings.stripe_secret_key:
        settings = dataclasses.replace(
            settings,
            public_base_url=settings.public_base_url if "NOFU_PUBLIC_BASE_URL" in os.environ else base,
            stripe_secret_key=sandbox_config.api_key,
            stripe_api_base=f"http://127.0.0.1:{sandbox_port}",
            stripe_webhook_secret=sandbox_config.webhook_secret,
        )
    settings.validate()

    engine = create_engine(settings.database_url)
    prepare_database(engine)
    services = build_services(settings, engine)
    seeded = _seed(services)
    token = run_transaction(
        engine, lambda conn: create_token(conn, role=Role.TREASURY, name="demo", actor=Actor.cli())
    )

    sandbox = SandboxServer(sandbox_config, host=args.host, port=sandbox_port)
    sandbox.start()
    app = serve_app(settings, engine=engine)
    server = uvicorn.Server(uvicorn.Config(app, host=args.host, port=port, log_level="warning"))

    print(f"\nnofu demo — {settings.municipality_name} (database {engine.url.render_as_string()})")
    print(f"  sandbox provider:  {sandbox.url}  (Stripe API, test cards; webhooks → /webhooks/stripe)")
    print(f"  staff API token:   {token.secret}   (role treasury; shown once)")
    print(f"  staff API:         curl -H 'Authorization: Bearer {token.secret}' {base}/api/v1/invoices")
    print(f"  OpenAPI:           {base}/schema")
    print("\n  Invoices to pay (open on a phone or a desktop browser):")
    for invoice in seeded:
        code = invoice_payment_code(services.keys.qr, invoice)
        print(f"   {invoice.display_number}  {invoice.tax_code:<14} ¥{invoice.amount:>9,}  {invoice.status.value:<9} {services.payment_url(code.token)}")
    print(f"\n  No camera? Open {base}/p and type the notice number with its confirmation code, e.g. "
          f"{seeded[0].display_number} / {invoice_payment_code(services.keys.qr, seeded[0]).confirmation_code}")
    if not args.check:
        _print_qr(services.payment_url(invoice_payment_code(services.keys.qr, seeded[0]).token))
        print(f"  Staff reconciliation page: {base}/staff/reconciliation (needs the token)\n  Ctrl-C stops.\n", flush=True)
        try:
            server.run()
        finally:
            sandbox.stop()
        return 0
    open_ones = [invoice for invoice in seeded if invoice.status.value == "open"]
    if not open_ones:
        sandbox.stop()
        print("demo check: every demo invoice is already paid; delete the demo database to start afresh")
        return 1
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        return _check(base, services, open_ones[-1], sandbox)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sandbox.stop()


def _print_qr(url: str) -> None:
    import qrcode

    qr = qrcode.QRCode(border=2)
    qr.add_data(url)
    print("\n  Scan this with a phone (first invoice):")
    qr.print_ascii(out=sys.stdout, invert=True)


def _check(base: str, services, invoice, sandbox) -> int:  # type: ignore[no-untyped-def]
    """Pay ``invoice`` as a resident would, through HTTP; wait for the webhook; print the books."""
    import httpx

    import ledger
    from invoices import service
    from invoices.model import invoice_payment_code
    from ledger.db import read_transaction

    for _ in range(100):
        try:
            httpx.get(base + "/healthz", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    page_url = services.payment_url(invoice_payment_code(services.keys.qr, invoice).token).replace(
        services.settings.public_base_url.rstrip("/"), base
    )
    with httpx.Client(follow_redirects=False, timeout=30) as client:
        page = client.get(page_url)
        page.raise_for_status()
        response = client.post(page_url + "/pay", data={"_csrf_token": _csrf(page.text)})
        attempt_path = response.headers["location"]
        attempt_page = client.get(base + attempt_path if attempt_path.startswith("/") else attempt_path)
        client.post(
            str(attempt_page.url) + "/confirm",
            data={"_csrf_token": _csrf(attempt_page.text), "method": "card_success"},
        )
    sandbox.control.wait_for_deliveries(timeout=10)
    deadline = time.monotonic() + 20
    while True:
        with read_transaction(services.engine) as conn:
            paid = service.get_invoice(conn, invoice.display_number)
            entries = conn.scalar(sa.text("SELECT count(*) FROM webhook_events"))
        if paid.status.value == "paid" and entries:
            break
        if time.monotonic() > deadline:
            print(f"demo check FAILED: invoice {paid.display_number} is {paid.status.value}", file=sys.stderr)
            return 1
        time.sleep(0.2)
    with read_transaction(services.engine) as conn:
        balance = ledger.trial_balance(conn)
        report = ledger.verify(conn)
    print(f"\n  demo check: paid {paid.display_number} ¥{paid.amount_paid:,} through the sandbox; "
          f"{entries} webhook event(s) received")
    print(f"  trial balance {'balanced' if balance.balanced else 'NOT BALANCED'} "
          f"(¥{balance.total_debit:,} = ¥{balance.total_credit:,}); ledger verify: {'OK' if report.ok else 'FAILED'}")
    return 0 if balance.balanced and report.ok else 1


def _csrf(html: str) -> str:
    match = re.search(r'name="_csrf_token" value="([^"]+)"', html)
    if match is None:
        raise RuntimeError("no CSRF field on the page")
    return match.group(1)
