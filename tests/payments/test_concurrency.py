"""Real concurrent writers on PostgreSQL (``pg_engine``): double taps, clerks and the provider's
answers racing each other. Each race is run several times."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from gateway.payments import (
    AttemptNotActive,
    AttemptStatus,
    PaymentService,
    RefundableMismatch,
    RefundStatus,
)
from gateway.payments.schema import attempts, receipts
from gateway.providers import ProviderError
from gateway.sandbox import SandboxServer
from tests.payments.support import (  # noqa: F401 (fixtures)
    API_KEY,
    CLERK,
    OTHER_CLERK,
    RETURN_URL,
    Clock,
    assert_books_ok,
    books,
    issue,
    make_provider,
    make_service,
    sandbox,
)

pytestmark = pytest.mark.postgres
ROUNDS = 4


def race(workers: list[Callable[[], Any]]) -> list[Any]:
    """Run the callables at once (a barrier releases them together); results or exceptions."""
    barrier = threading.Barrier(len(workers))
    results: list[Any] = [None] * len(workers)

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = workers[index]()
        except Exception as exc:  # collected and asserted on by the test
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(workers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_racing_start_or_join_makes_one_attempt_and_one_intent(pg_engine: Engine, sandbox: SandboxServer) -> None:
    service = make_service(pg_engine, sandbox)
    client = sandbox.stripe_client(api_key=API_KEY)
    for _ in range(ROUNDS):
        invoice = issue(pg_engine)
        results = race([lambda: service.start_or_join(invoice.public_id)] * 8)
        assert not [r for r in results if isinstance(r, Exception)], results
        assert len({r.public_id for r in results}) == 1
        assert len({r.provider_payment_id for r in results}) == 1
        with pg_engine.connect() as conn:
            rows = conn.execute(sa.select(attempts.c.id).where(attempts.c.invoice_id == invoice.id)).all()
        assert len(rows) == 1
        intents = [pi for pi in client.v1.payment_intents.list(params={"limit": 100}).auto_paging_iter()
                   if pi.metadata["attempt_id"] == results[0].public_id]  # fmt: skip
        assert len(intents) == 1


def test_two_clerks_refunding_at_once_refund_exactly_once(pg_engine: Engine, sandbox: SandboxServer) -> None:
    service = make_service(pg_engine, sandbox)
    for _ in range(ROUNDS):
        attempt = service.start_or_join(issue(pg_engine).public_id)
        paid = service.confirm_with_test_method(attempt.public_id, "pm_card_visa", return_url=RETURN_URL)
        results = race([
            lambda actor=actor: service.refund(paid.public_id, amount=paid.amount, expected_refundable=paid.amount,
                                               reason="二重還付の防止", actor=actor)
            for actor in (CLERK, OTHER_CLERK)
        ])  # fmt: skip
        done = [r for r in results if not isinstance(r, Exception)]
        refused = [r for r in results if isinstance(r, Exception)]
        assert len(done) == 1 and done[0].status is RefundStatus.SUCCEEDED
        assert len(refused) == 1 and isinstance(refused[0], RefundableMismatch), refused
        assert [r.status for r in service.refunds_of(paid.public_id)] == [RefundStatus.SUCCEEDED]
        refunds = sandbox.stripe_client(api_key=API_KEY).v1.refunds.list(params={"payment_intent": paid.provider_payment_id})
        assert len(refunds.data) == 1
    assert books(pg_engine).clearing == 0
    assert_books_ok(pg_engine)


def test_the_same_success_reported_at_once_by_several_paths_is_recorded_once(
    pg_engine: Engine, sandbox: SandboxServer
) -> None:
    service = make_service(pg_engine, sandbox)
    provider = make_provider(sandbox)
    total = 0
    for _ in range(ROUNDS):
        invoice = issue(pg_engine)
        attempt = service.start_or_join(invoice.public_id)
        assert attempt.provider_payment_id
        sandbox.stripe_client(api_key=API_KEY).v1.payment_intents.confirm(
            attempt.provider_payment_id, params={"payment_method": "pm_card_visa", "return_url": RETURN_URL}
        )
        succeeded = provider.retrieve_payment(attempt.provider_payment_id)
        # The return page, a webhook, its duplicate, and the sweep's refresh, all at once.
        results = race([lambda: service.apply_provider_outcome(succeeded)] * 4 + [lambda: service.refresh(attempt.public_id)] * 2)
        assert not [r for r in results if isinstance(r, Exception)], results
        assert {r.status for r in results} == {AttemptStatus.SUCCEEDED}
        total += invoice.amount
        with pg_engine.connect() as conn:
            count = conn.execute(sa.select(sa.func.count()).select_from(receipts).where(receipts.c.attempt_id == attempt.id))
            assert count.scalar_one() == 1
    assert books(pg_engine).clearing == total
    assert_books_ok(pg_engine)


def test_paying_while_the_attempt_expires_either_pays_or_expires_never_both(
    pg_engine: Engine, sandbox: SandboxServer
) -> None:
    clock = Clock()
    service = make_service(pg_engine, sandbox, clock)
    client = sandbox.stripe_client(api_key=API_KEY)
    for _ in range(ROUNDS * 2):
        invoice = issue(pg_engine)
        attempt = service.start_or_join(invoice.public_id)
        clock.advance(minutes=31)
        results = race([
            lambda: service.confirm_with_test_method(attempt.public_id, "pm_card_visa", return_url=RETURN_URL),
            lambda: service.expire_stale(),
        ])  # fmt: skip
        for result in results:
            assert not isinstance(result, Exception) or isinstance(result, AttemptNotActive | ProviderError), result
        final = service.get_attempt(attempt.public_id)
        intent = client.v1.payment_intents.retrieve(attempt.provider_payment_id)
        # Either may win (both do, over the rounds); money is recorded exactly when the provider took it.
        assert (final.amount_received > 0) == (intent.status == "succeeded")
        assert final.status in (AttemptStatus.SUCCEEDED, AttemptStatus.EXPIRED)
        assert (final.status is AttemptStatus.EXPIRED) == (intent.status == "canceled")
        clock.advance(minutes=1)
    assert_books_ok(pg_engine)
