"""The periodic sweep: expire attempts past their time and finish refunds left pending.

Where it runs: the web app starts one ``PaymentSweeper`` thread per process on start-up and stops
it on shutdown (``gateway/app.py``), every ``NOFU_PAYMENT_SWEEP_SECONDS`` (default 60; 0 turns it
off, e.g. when a separate worker or cron runs ``PaymentService.expire_stale``). Several processes
sweeping at once is safe: every step is a compare-and-set in the database and every provider call
is idempotent.
"""

from __future__ import annotations

import logging
import threading

from gateway.payments.service import PaymentService

log = logging.getLogger("nofu.payments")


class PaymentSweeper:
    def __init__(self, service: PaymentService, interval: float) -> None:
        self.service = service
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.interval <= 0 or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="nofu-payment-sweeper", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                report = self.service.expire_stale()
            except Exception:  # the sweep must outlive a bad run (database restart, …)
                log.exception("payment sweep failed")
                continue
            if report.expired or report.settled or report.refunds_completed or report.left:
                log.info("payment sweep: %s", report)
