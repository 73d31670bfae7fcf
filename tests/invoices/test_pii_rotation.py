"""Key rotation: payer data re-encrypted under the new key, old key no longer needed."""

from __future__ import annotations

import base64

import pytest
import sqlalchemy as sa

from invoices.pii import PiiCipher, PiiDecryptError
from invoices.pii_rotation import reencrypt_payers
from invoices.service import get_invoice, issue_invoice
from ledger.db import run_transaction
from tests.invoices._support import CTX, NAME, PII_KEY, request

NEW = "t2:" + base64.urlsafe_b64encode(bytes(range(64, 96))).decode().rstrip("=")


def test_rotation_reencrypts_every_row_once(engine):
    made = [
        run_transaction(
            engine, lambda c: issue_invoice(c, CTX, request(payer_contact=None), actor="s")
        ).invoice
        for _ in range(3)
    ]
    rotated = PiiCipher.from_config(f"{NEW},{PII_KEY}")
    assert reencrypt_payers(engine, rotated) == 3
    assert reencrypt_payers(engine, rotated) == 0
    only_new = PiiCipher.from_config(NEW)
    with engine.connect() as conn:
        for invoice in made:
            stored = get_invoice(conn, invoice.notice_number)
            assert stored.pii_key_id == "t2" and stored.version == invoice.version
            payer = stored.payer(only_new)
            assert (payer.name, payer.contact) == (NAME, None)


def test_rotation_refuses_a_tampered_row(engine):
    a = run_transaction(engine, lambda c: issue_invoice(c, CTX, request(), actor="s")).invoice
    b = run_transaction(engine, lambda c: issue_invoice(c, CTX, request(), actor="s")).invoice
    with engine.begin() as conn:  # a blob copied from another row must not be blessed
        conn.execute(
            sa.text("UPDATE invoices SET payer_name = :blob WHERE id = :id"),
            {"blob": a.payer_name_blob, "id": b.id},
        )
    with pytest.raises(PiiDecryptError):
        reencrypt_payers(engine, PiiCipher.from_config(f"{NEW},{PII_KEY}"))
    with engine.connect() as conn:
        assert get_invoice(conn, a.notice_number).pii_key_id == "t1"  # the batch rolled back
