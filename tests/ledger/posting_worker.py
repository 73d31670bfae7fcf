"""A posting process for the multi-process test (not a test module).

    python -m tests.ledger.posting_worker URL WORKER COUNT HOT_CODES OWN_DEBIT OWN_CREDIT

Prints ``ready``, waits for a line on stdin (so every process starts together), posts COUNT
entries (alternating among the comma-separated hot accounts and this worker's own two), each in
its own transaction, and prints one JSON line: the ids, the net per account and lines per account.
"""

from __future__ import annotations

import json
import random
import sys
from collections import Counter
from datetime import date
from functools import partial

import ledger as L
from ledger.db import create_engine, run_transaction


def requests(worker: int, count: int, hot: list[str], own: tuple[str, str]) -> list[L.EntryRequest]:
    rng = random.Random(worker)
    made = []
    for number in range(count):
        amount = rng.randint(1, 50_000)
        if number % 2:
            debit, credit = rng.sample(hot, 2)
        else:
            debit, credit = own if number % 4 else (rng.choice(hot), own[1])
        made.append(
            L.EntryRequest(
                date(2026, 4, 1), f"worker {worker} #{number}", f"test:worker:{worker}", f"w{worker}:{number}",
                (L.Line.debit(debit, amount), L.Line.credit(credit, amount)),
            )
        )
    return made


def main(argv: list[str]) -> int:
    url, worker, count, hot, own_debit, own_credit = argv
    engine = create_engine(url, pool_size=1)
    todo = requests(int(worker), int(count), hot.split(","), (own_debit, own_credit))
    print("ready", flush=True)
    sys.stdin.readline()
    ids: list[int] = []
    net: Counter[str] = Counter()
    lines: Counter[str] = Counter()
    for request in todo:
        posted = run_transaction(engine, partial(L.post, request=request))
        ids.append(posted.id)
        for line in request.lines:
            net[line.account] += line.amount if line.side == "debit" else -line.amount
            lines[line.account] += 1
    engine.dispose()
    print(json.dumps({"ids": ids, "net": net, "lines": lines}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
