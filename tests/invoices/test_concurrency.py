"""Real concurrent writers (PostgreSQL): idempotency keys and number allocation cannot race."""

from __future__ import annotations

import threading

import pytest

from invoices.errors import IdempotencyConflict
from invoices.service import issue_invoice, list_invoices
from ledger.db import run_transaction
from tests.invoices._support import CTX, net, request

WRITERS = 8


def _race(work):
    barrier = threading.Barrier(WRITERS)
    results: list[object] = [None] * WRITERS

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = work(index)
        except Exception as exc:  # noqa: BLE001 - collected for the assertions
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


@pytest.mark.postgres
def test_one_idempotency_key_used_at_once_creates_one_invoice(pg_engine):
    results = _race(
        lambda i: run_transaction(
            pg_engine, lambda c: issue_invoice(c, CTX, request(), actor="s", idempotency_key="same")
        )
    )
    assert all(not isinstance(r, Exception) for r in results), results
    assert sum(r.created for r in results) == 1
    assert len({r.invoice.id for r in results}) == 1
    assert net(pg_engine, "1100:FIXED_ASSET") == 12_300


@pytest.mark.postgres
def test_the_same_key_with_other_requests_at_once_conflicts_cleanly(pg_engine):
    results = _race(
        lambda i: run_transaction(
            pg_engine,
            lambda c: issue_invoice(c, CTX, request(amount=1000 + i), actor="s", idempotency_key="k"),
        )
    )
    created = [r for r in results if not isinstance(r, Exception)]
    assert len(created) == 1
    assert all(isinstance(r, IdempotencyConflict) for r in results if isinstance(r, Exception))


@pytest.mark.postgres
def test_concurrent_issues_get_distinct_consecutive_numbers(pg_engine):
    _race(
        lambda i: run_transaction(
            pg_engine, lambda c: issue_invoice(c, CTX, request(payer_ref=f"P{i}"), actor="s")
        )
    )
    with pg_engine.connect() as conn:
        items = list_invoices(conn).items
    assert sorted(i.sequence for i in items) == list(range(1, WRITERS + 1))
    assert net(pg_engine, "1100:FIXED_ASSET") == 12_300 * WRITERS
