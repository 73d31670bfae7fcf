"""nofu serve — run the app (resident pages, staff API) with uvicorn."""

from __future__ import annotations

import argparse

from gateway.commands import common


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the web app")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1)
    p.set_defaults(run=serve)


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    common.engine()  # fail fast, with one line, on bad settings or an outdated schema
    uvicorn.run(
        "gateway.app:serve_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level="info",
        proxy_headers=True,
    )
    return 0
