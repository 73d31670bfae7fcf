"""Fixtures shared by the resident page tests that take payments."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.sandbox import SandboxConfig, SandboxServer
from tests.pages.support import Site, make_site


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    """The sandbox provider, one per test module (reset by ``paying_site``)."""
    with SandboxServer(SandboxConfig()) as running:
        yield running


@pytest.fixture
def paying_site(db_url: str, tmp_path: Path, sandbox: SandboxServer) -> Iterator[Site]:
    """A site that takes payments through the sandbox (no expiry sweep running)."""
    sandbox.sandbox.reset()
    yield from make_site(db_url, tmp_path, stripe_api_base=sandbox.url, payment_sweep_seconds="0")
