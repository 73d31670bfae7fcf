from datetime import date

import ledger as L
from ledger.db import run_transaction


def test_post_and_verify(engine):
    req = L.EntryRequest(
        date(2026, 11, 26), "issue", "invoice:1", "k1", (L.Line.debit("1100", 500), L.Line.credit("4100", 500))
    )
    posted = run_transaction(engine, lambda c: L.post(c, req))
    assert posted.id == 1
    with engine.begin() as c:
        assert L.balance(c, "1100").amount == 500
        assert L.verify(c).ok
