"""The garbage collector and long-lived server processes."""

from __future__ import annotations

import gc


def freeze_heap() -> None:
    """Move everything alive after startup (modules, the app, templates, SQLAlchemy's caches) out
    of the garbage collector's sight, so its full collections scan only what the work creates: in
    the app under load those took 70–90 ms each (the resident page's p99), in a webhook worker 70
    ms each (a stall while it may hold the ledger's chain head). For long-lived server processes
    only (``nofu serve``, ``nofu demo``, ``nofu worker``, the benchmarks): a process that builds
    many apps (the tests) would keep their leftovers forever."""
    gc.collect()
    gc.freeze()
