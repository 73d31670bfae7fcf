"""In-memory storage of records, ordered as Stripe lists them (newest first).

A test double: nothing is persisted, a restart loses every object. Callers hold the
sandbox lock; the store itself does no locking.
"""

from __future__ import annotations

import itertools
from typing import TypeVar

from gateway.sandbox.records import Record

R = TypeVar("R", bound=Record)


class Store:
    def __init__(self) -> None:
        self._by_id: dict[str, Record] = {}
        self._by_kind: dict[type, list[Record]] = {}
        self._seq = itertools.count(1)

    def next_seq(self) -> int:
        """Creation order, the tie-breaker between objects created in the same second."""
        return next(self._seq)

    def add(self, record: R) -> R:
        self._by_id[record.id] = record
        self._by_kind.setdefault(type(record), []).append(record)
        return record

    def get(self, object_id: str, kind: type[R]) -> R | None:
        record = self._by_id.get(object_id)
        return record if isinstance(record, kind) else None

    def find(self, object_id: str) -> Record | None:
        return self._by_id.get(object_id)

    def newest_first(self, kind: type[R]) -> list[R]:
        records: list[R] = list(self._by_kind.get(kind, []))  # type: ignore[arg-type]
        records.sort(key=lambda record: (record.created, record.seq), reverse=True)
        return records
