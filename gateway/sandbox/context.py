"""Who asked for a change: stamped on the events the change records."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RequestContext:
    """Attributes:
        request_id: the `req_…` id of the API request (None for control/automatic changes).
        idempotency_key: the key the client sent, if any.
        base_url: scheme://host[:port] the client reached the sandbox at, for browser links.
        api_key: the key the request authenticated with (idempotency scope).
    """

    request_id: str | None = None
    idempotency_key: str | None = None
    base_url: str = "http://127.0.0.1"
    api_key: str | None = None


AUTOMATIC = RequestContext()
