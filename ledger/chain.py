"""The hash chain: each entry's hash covers its content, its lines and the previous hash.

Both the writer (``posting``) and the auditor (``verify``) compute hashes here, from values as
they are stored, so a row edited in the database no longer hashes to what was recorded.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import date, datetime

from ledger.clock import to_utc


def canonical_time(moment: datetime) -> str:
    """UTC, microseconds, 'Z': the same text whichever engine gave the value back."""
    return to_utc(moment).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _digest(payload: object) -> str:
    text = json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def content_digest(
    effective_date: date,
    description: str,
    source_ref: str,
    reverses_entry_id: int | None,
    lines: Sequence[tuple[str, str, int]],
) -> str:
    """What an idempotent replay must repeat: the entry's meaning, lines in any order."""
    return _digest(
        {
            "effective_date": effective_date.isoformat(),
            "description": description,
            "source_ref": source_ref,
            "reverses": reverses_entry_id,
            "lines": sorted([list(line) for line in lines]),
        }
    )


def entry_hash(
    *,
    entry_id: int,
    prev_hash: str,
    effective_date: date,
    recorded_at: datetime,
    description: str,
    source_ref: str,
    idempotency_key: str,
    reverses_entry_id: int | None,
    lines: Sequence[tuple[int, str, str, int]],
) -> str:
    """Hash of one entry; ``lines`` are (line_no, account_code, side 'D'/'C', amount)."""
    return _digest(
        {
            "v": 1,
            "id": entry_id,
            "prev": prev_hash,
            "effective_date": effective_date.isoformat(),
            "recorded_at": canonical_time(recorded_at),
            "description": description,
            "source_ref": source_ref,
            "idempotency_key": idempotency_key,
            "reverses": reverses_entry_id,
            "lines": [list(line) for line in lines],
        }
    )
