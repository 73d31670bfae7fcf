"""Stripe's cursor pagination over a newest-first collection.

`limit` (1..100, default 10), `starting_after` (older than the cursor), `ending_before`
(newer than the cursor, the `limit` nearest to it), `has_more` and `url`, so the SDK's
`auto_paging_iter()` walks either direction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from gateway.sandbox.errors import invalid_request, resource_missing
from gateway.sandbox.forms import Params
from gateway.sandbox.params import exclusive, get_int, get_str
from gateway.sandbox.records import Record
from gateway.sandbox.store import Store

R = TypeVar("R", bound=Record)
PAGE_PARAMS = ("limit", "starting_after", "ending_before")


def page(
    store: Store,
    records: Sequence[R],
    params: Params,
    url: str,
    render: Callable[[R], dict[str, Any]],
) -> dict[str, Any]:
    """One page of `records` (already filtered, newest first) as a Stripe list object.

    Invariant: walking pages with starting_after = last id visits every record exactly once.
    """
    limit = get_int(params, "limit")
    if limit is None:
        limit = 10
    if not 1 <= limit <= 100:
        raise invalid_request(
            "This value must be between 1 and 100 (inclusive).", param="limit", code="parameter_invalid_integer"
        )
    exclusive(params, "starting_after", "ending_before")
    after = get_str(params, "starting_after")
    before = get_str(params, "ending_before")

    def position(cursor: str, param: str) -> tuple[int, int]:
        found = store.find(cursor)
        if found is None:
            raise resource_missing("object", cursor, param=param)
        return (found.created, found.seq)

    if after:
        key = position(after, "starting_after")
        older = [r for r in records if (r.created, r.seq) < key]
        chosen, has_more = older[:limit], len(older) > limit
    elif before:
        key = position(before, "ending_before")
        newer = [r for r in records if (r.created, r.seq) > key]
        chosen, has_more = newer[-limit:], len(newer) > limit
    else:
        chosen, has_more = list(records[:limit]), len(records) > limit
    return {"object": "list", "data": [render(r) for r in chosen], "has_more": has_more, "url": url}
