"""The staff reconciliation page in a real headless Chromium (``staff_page.mjs``, playwright-core
from tests/browser), served by uvicorn on SQLite with a fake provider statement wired in: sign in,
run, charts, the queue's actions, sign-off, a bank statement upload. Asserts on what the browser
saw and on the database (ledger closed, audit trail)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest
import uvicorn

from gateway.app import create_app
from gateway.audit import Actor, AuditFilter, list_audit
from gateway.auth import Role, create_token
from gateway.providers.statements import ReconciliationWiring
from gateway.settings import Settings
from ledger import closed_through
from ledger.db import read_transaction, run_transaction
from reconciliation import NoLinks
from tests.reconciliation.support import Day, payment

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
BROWSER_DIR = ROOT / "tests" / "browser"
ARTIFACTS = ROOT / "tests" / "artifacts" / "staff"
CHROMIUM = os.environ.get("NOFU_CHROMIUM", "/usr/bin/chromium")
NODE = shutil.which("node")
DAY = date(2026, 11, 2)

pytestmark = pytest.mark.skipif(NODE is None or not Path(CHROMIUM).exists(), reason="node or Chromium is not installed")


def ensure_playwright() -> None:
    if (BROWSER_DIR / "node_modules" / "playwright-core" / "package.json").exists():
        return
    npm = shutil.which("npm")
    if npm is None or not (BROWSER_DIR / "package-lock.json").exists():
        pytest.fail("playwright-core is needed: npm ci --prefix tests/browser")
    subprocess.run([npm, "ci", "--prefix", str(BROWSER_DIR), "--no-audit", "--no-fund"], check=True, timeout=300,
                   env={**os.environ, "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD": "1"})  # fmt: skip


def test_treasury_works_a_day_in_the_browser(make_db_url: Callable[[str], str], tmp_path: Path) -> None:
    ensure_playwright()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    app = create_app(Settings(database_url=make_db_url("sqlite"), dev_keys_file=str(tmp_path / "k.env"),
                              public_base_url=base, municipality_name="サンプル市", webhook_inprocess="0",
                              payment_sweep_seconds="0"))  # fmt: skip
    engine = app.state.services.engine
    day = Day(DAY, [payment(12_300, tax_code="FIXED_ASSET", hour=9), payment(5_000, tax_code="NHI_TAX", hour=14),
                    payment(8_800, tax_code="LIGHT_VEHICLE", hour=20)]).build()  # fmt: skip
    lost = day.payments[2]
    day.ledger = [e for e in day.ledger if e.source_ref != f"stripe:{lost.ref}"]
    day.pay_out()
    assert day.payout is not None
    bank_line = day.bank.pop()
    day.write(engine)
    app.state["reconciliation_wiring"] = ReconciliationWiring(day.source(), NoLinks(), None)  # type: ignore[arg-type]
    tokens = {role: run_transaction(engine, lambda conn, r=role: create_token(
        conn, role=Role(r), name=f"会計課 {r}", actor=Actor.cli())).secret for role in ("auditor", "treasury")}  # fmt: skip
    bank_csv = tmp_path / "statement.csv"
    bank_csv.write_bytes(f"取引日,金額,摘要\r\n{bank_line.value_date.isoformat()},{bank_line.amount},ｽﾄﾗｲﾌﾟ\r\n".encode("cp932"))

    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the app did not start"
        time.sleep(0.02)
    try:
        run = subprocess.run(
            [NODE or "node", str(HERE / "staff_page.mjs"), base, str(ARTIFACTS), DAY.isoformat(),
             day.payout_day.isoformat(), tokens["auditor"], tokens["treasury"], str(bank_csv)],
            check=False, capture_output=True, text=True, timeout=240, cwd=ROOT,
        )  # fmt: skip
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
    assert run.returncode == 0, run.stderr
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    assert seen["ok"], seen.get("error")

    assert seen["badLogin"].endswith("(auth.unauthorized)")
    assert seen["redirectedToLogin"] == "/staff/login"
    assert seen["auditor"] == {"status": "この日はまだ照合されていません。", "runButtons": 0, "signoffButtons": 0}
    after = seen["afterRun"]
    assert after["notice"] == "照合を実行しました" and after["openCount"] == "1"
    assert "決済総額(gross)\t¥26,100\t3件" in after["totals"]
    assert after["taxBars"] == 2 and after["taxLabels"] == ["固定資産税", "国民健康保険税"]
    assert after["hourBars"] == [9, 14, 20]
    assert after["breaks"] == [[f"missing_in_ledger:txn_{lost.ref}", "open"]]
    assert after["categories"] == ["missing_in_ledger"]
    assert after["barColour"] == "rgb(11, 87, 164)"  # staff.css applied: the page's CSP allows it
    assert seen["refusedSignoff"] == "reconciliation.open_breaks"
    resolved = seen["afterResolve"]
    assert (resolved["status"], resolved["assignee"], resolved["openCount"]) == ("resolved", "収納係 田中", "0")
    assert resolved["resolution"] == "窓口で現金収納済のため二重計上なし"
    assert [h.split("[")[1].split("]")[0] for h in resolved["history"]] == ["担当", "コメント", "解決"]
    assert seen["signedOff"]["notice"] == "承認し、帳簿を締めました" and seen["signedOff"]["runButtons"] == 0
    assert seen["signedOff"]["status"].startswith("承認済(締め済)")
    assert seen["uploadNotice"] == "銀行明細を取り込みました"
    [payout_row] = seen["payoutDay"]["payouts"]
    assert day.payout.id in payout_row and bank_line.value_date.isoformat() in payout_row
    assert seen["payoutDay"]["noBreaks"] == 1
    assert seen["consoleErrors"] == [] and seen["foreignRequests"] == []
    assert seen["refusedStatuses"] == [401, 409]  # the wrong token, the sign-off with a break open
    assert len(seen["screenshots"]) == 4 and all(Path(p).stat().st_size > 10_000 for p in seen["screenshots"])

    with read_transaction(engine) as conn:
        assert closed_through(conn) == DAY
        actions = [e.action for e in list_audit(conn, AuditFilter(subject=f"reconciliation:{DAY.isoformat()}")).entries]
    assert actions[::-1] == ["reconciliation.run", "reconciliation.break_assign", "reconciliation.break_comment",
                             "reconciliation.break_resolve", "reconciliation.signoff"]  # fmt: skip
