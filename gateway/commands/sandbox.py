"""nofu sandbox — run the Stripe-compatible sandbox provider in the foreground."""

from __future__ import annotations

import argparse
import dataclasses
import os


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sandbox", help="run the local Stripe-compatible sandbox")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=12111)
    p.add_argument("--webhook-url", help="where to deliver signed events (default: NOFU_SANDBOX_WEBHOOK_URL)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from gateway.sandbox import SandboxConfig, serve

    config = SandboxConfig.from_env(os.environ)
    if args.webhook_url:
        config = dataclasses.replace(config, webhook_url=args.webhook_url)
    serve(config, host=args.host, port=args.port)
    return 0
