"""Re-encrypting payer data under the active PII key (key rotation).

Rotate by putting a new key first in ``NOFU_PII_KEYS`` (new rows use it at once), run
:func:`reencrypt_payers` until it reports nothing left, then drop the old key. Each batch is its
own short transaction, so the work can be stopped and resumed; a row written meanwhile is
already under the new key. The invoice's version is not changed: the payer data is the same.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from invoices.model import pii_aad
from invoices.pii import PiiCipher
from invoices.records import PII_FIELDS
from invoices.schema import invoices
from ledger.db import run_transaction

BATCH = 500


def reencrypt_batch(
    conn: Connection, cipher: PiiCipher, *, after_id: int = 0, limit: int = BATCH
) -> tuple[int, int]:
    """Re-encrypt up to ``limit`` rows with id > ``after_id`` not under the active key.

    Returns (rows re-encrypted, last id seen; 0 when none was left). Tampered blobs raise
    ``PiiDecryptError``: rotation never re-seals data it cannot authenticate.
    """
    rows = conn.execute(
        sa.select(invoices.c.id, invoices.c.public_id, *(invoices.c[f] for f in PII_FIELDS))
        .where(invoices.c.id > after_id, invoices.c.pii_key_id != cipher.active_key_id)
        .order_by(invoices.c.id)
        .limit(limit)
        .with_for_update()
    ).all()
    for row in rows:
        values: dict[str, object] = {"pii_key_id": cipher.active_key_id}
        for field_name in PII_FIELDS:
            blob = getattr(row, field_name)
            if blob is not None:
                values[field_name] = cipher.reencrypt(blob, pii_aad(row.public_id, field_name))
        conn.execute(invoices.update().where(invoices.c.id == row.id).values(**values))
    return len(rows), (rows[-1].id if rows else 0)


def reencrypt_payers(
    engine: Engine, cipher: PiiCipher, *, progress: Callable[[int], None] | None = None
) -> int:
    """Re-encrypt every invoice's payer data under the active key; returns the rows changed."""
    total, after = 0, 0
    while True:
        done, after = run_transaction(engine, lambda conn: reencrypt_batch(conn, cipher, after_id=after))
        if not done:
            return total
        total += done
        if progress is not None:
            progress(total)
