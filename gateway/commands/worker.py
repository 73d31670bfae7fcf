"""nofu worker — apply stored webhook events in a process of its own.

Run as many as the database allows: on PostgreSQL workers claim disjoint batches (``FOR UPDATE
SKIP LOCKED``) and a worker killed mid-event leaves its events to the others once their lease
(60 s) runs out. On SQLite the database serialises writers, so one worker (or the app's own
processor) is all that helps. SIGTERM / SIGINT stop it after the event in hand.
With ``NOFU_WEBHOOK_INPROCESS=0`` the app leaves all processing to these workers.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from datetime import timedelta

from gateway.commands import common
from gateway.heap import freeze_heap
from gateway.services import build_services
from gateway.webhook_handlers import build_processor
from webhooks.processor import DEFAULT_BATCH, DEFAULT_LEASE

log = logging.getLogger("nofu.webhooks")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("worker", help="apply stored webhook events (several may run on PostgreSQL)")
    p.add_argument("--batch", type=int, default=DEFAULT_BATCH, help=f"events claimed at a time (default {DEFAULT_BATCH})")
    p.add_argument("--idle", type=float, default=0.5, help="seconds to wait when nothing is due (default 0.5)")
    p.add_argument("--once", action="store_true", help="apply everything due now, then exit")
    p.add_argument("--id", dest="worker_id", help="name shown as the lease owner (default host:pid)")
    p.add_argument("--lease", type=float, default=DEFAULT_LEASE.total_seconds(),
                   help="seconds a claimed event stays this worker's before others may take it over (default 60)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = common.settings()
    engine = common.engine()
    services = build_services(settings, engine)
    if args.batch < 1 or args.lease <= 0:
        print("nofu: --batch must be at least 1 and --lease positive", file=sys.stderr)
        return 2
    processor = build_processor(
        engine, services.payments, settings, worker_id=args.worker_id, batch_size=args.batch,
        lease=timedelta(seconds=args.lease),
    )  # fmt: skip
    if args.once:
        print(f"processed {processor.drain()} events")
        return 0
    stop = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        log.info("worker %s stopping (signal %d)", processor.worker_id, signum)
        stop.set()
        processor.wake()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    freeze_heap()
    log.info("worker %s started", processor.worker_id)
    processor.run(stop, idle_seconds=args.idle)
    engine.dispose()
    log.info("worker %s stopped: %s", processor.worker_id, dict(processor.counts))
    return 0
