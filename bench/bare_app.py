"""The ceiling for the resident page benchmark: a bare Litestar handler on the same route shape,
returning a small HTML page, with nothing behind it (no token check, database or template).
Its startup heap is frozen as nofu's is (``gateway.heap.freeze_heap``), so both pay the same for
garbage collection."""

from __future__ import annotations

from litestar import Litestar, MediaType, get

from gateway.heap import freeze_heap


@get("/p/{token:str}", media_type=MediaType.HTML, sync_to_thread=False)
def page(token: str) -> str:
    return f"<!doctype html><title>nofu</title><p>{len(token)}</p>"


def create_app() -> Litestar:
    return Litestar(route_handlers=[page], debug=False, on_startup=[freeze_heap])
