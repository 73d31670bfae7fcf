"""The peer in the ledger benchmark: python-accounting 2.0.0 posting the same journal entries.

python-accounting (PyPI ``python-accounting``, MIT, SQLAlchemy 2.1) is a double-entry library.
Each posting here is what its README shows for a Journal Entry: the entry names the credited
("main") account, one Line Item names the debited account, both are flushed, the Line Item is
attached and ``JournalEntry.post(session)`` validates it (balance, reporting period, main
account) and writes two hashed Ledger rows, committing once.

Import hazard, and why this module imports the library lazily
    ``python_accounting.database`` registers ``do_orm_execute``, ``transient_to_pending`` and
    ``before_flush`` listeners on ``sqlalchemy.orm.Session`` itself, so once it is imported
    every ORM session in the process expects ``session.entity`` and ``obj.entity_id``; a
    plain session then fails with ``AttributeError``. nofu's ledger must therefore never share
    a process with the peer: the benchmark calls :func:`run_isolated`, which runs one
    scenario in a child interpreter and reads its figures back as JSON.

Installation: ``pip install --no-deps python-accounting==2.0.0 python-dateutil six``. Its
metadata also requires ``mysqlclient`` (needs MySQL headers to build) and ``psycopg2``, but no
module imports either; with SQLAlchemy 2.1 ``postgresql://`` means psycopg 3.

Configuration: none for the URL. The library reads ``site-packages/config.toml`` (installed
by its wheel) for account types, transaction prefixes and the hash salt; its
``config.database["url"]`` only feeds ``python_accounting.database.engine``, which this module
never imports: it builds its own engine and calls ``get_session(engine)``.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

PEER = "python-accounting"
PEER_VERSION = "2.0.0"
ACCOUNTS_PER_WRITER = 10
MAX_AMOUNT = 300_000  # the wallet/konbini ceiling for one slip
DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_SCRATCH_DB = "nofu_bench_peer"
RETRY_BUDGET = 100  # per posting: enough for 8 writers racing for the next entry number
_SUPPORTED_BACKENDS = ("sqlite", "postgresql")
_DB_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


class PeerInputError(ValueError):
    """A benchmark parameter the peer refuses; ``code`` is stable for callers and tests."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


class PeerRunError(RuntimeError):
    """The isolated peer process failed before it could report figures."""

    code = "peer_process_failed"


@dataclass(frozen=True)
class PlannedPosting:
    """One balanced two-line journal entry: Dr ``debit_idx`` / Cr ``credit_idx``, ``amount`` yen.

    Attributes:
        debit_idx: index of the debited account (0-based, into the prepared accounts).
        credit_idx: index of the credited account, never equal to ``debit_idx``.
        amount: positive integer yen.
        key: idempotency key of the posting, unique within one plan.
    """

    debit_idx: int
    credit_idx: int
    amount: int
    key: str


@dataclass(frozen=True)
class PeerState:
    """A prepared peer book: one entity with a JPY currency and ``len(account_ids)`` accounts.

    Attributes:
        engine: SQLAlchemy engine of the peer's database.
        entity_id: the python-accounting Entity every posting belongs to.
        currency_id: its JPY Currency.
        account_ids: python-accounting Account ids; benchmark index i is ``account_ids[i]``.
    """

    engine: Engine
    entity_id: int
    currency_id: int
    account_ids: tuple[int, ...]


# --- the plan: the same journal entries for nofu and for the peer -------------------------


def accounts_needed(writers: int, hot_accounts: int | None) -> int:
    """How many accounts a plan touches: the hot set, or ``ACCOUNTS_PER_WRITER`` per writer."""
    _check_shape(1, writers, hot_accounts)
    return hot_accounts if hot_accounts is not None else writers * ACCOUNTS_PER_WRITER


def plan(
    n_postings: int, writers: int, hot_accounts: int | None, seed: int = 0
) -> tuple[tuple[PlannedPosting, ...], ...]:
    """Deterministic journal entries, one sequence per writer, ``n_postings`` in all.

    Without ``hot_accounts`` writer w only touches its own accounts
    ``[w*ACCOUNTS_PER_WRITER, (w+1)*ACCOUNTS_PER_WRITER)``, so no two writers share an
    account; with it, every writer draws from the same ``hot_accounts`` accounts. The same
    arguments always give the same entries, so nofu and the peer post identical books.
    """
    _check_shape(n_postings, writers, hot_accounts)
    rng = random.Random(seed)
    sequences: list[tuple[PlannedPosting, ...]] = []
    for writer in range(writers):
        count = n_postings // writers + (1 if writer < n_postings % writers else 0)
        if hot_accounts is None:
            first, size = writer * ACCOUNTS_PER_WRITER, ACCOUNTS_PER_WRITER
        else:
            first, size = 0, hot_accounts
        entries = []
        for i in range(count):
            debit, credit = rng.sample(range(first, first + size), 2)
            entries.append(
                PlannedPosting(debit, credit, rng.randint(1, MAX_AMOUNT), f"w{writer}-{i}")
            )
        sequences.append(tuple(entries))
    return tuple(sequences)


def expected_balances(
    postings: Sequence[PlannedPosting], n_accounts: int
) -> list[int]:
    """Debit-positive balance per account index after ``postings``; the list sums to zero."""
    balances = [0] * n_accounts
    for posting in postings:
        balances[posting.debit_idx] += posting.amount
        balances[posting.credit_idx] -= posting.amount
    return balances


def _check_shape(n_postings: int, writers: int, hot_accounts: int | None) -> None:
    if n_postings < 0:
        raise PeerInputError("negative_postings", f"n_postings={n_postings}")
    if writers < 1:
        raise PeerInputError("no_writers", f"writers={writers}")
    if hot_accounts is not None and hot_accounts < 2:
        # a two-line entry needs two different accounts
        raise PeerInputError("too_few_hot_accounts", f"hot_accounts={hot_accounts}")


def _check_retries(retries: int) -> None:
    if retries < 0:
        raise PeerInputError("negative_retries", f"retries={retries}")


def _check_url(db_url: str) -> str:
    backend = make_url(db_url).get_backend_name()
    if backend not in _SUPPORTED_BACKENDS:
        raise PeerInputError("unsupported_database", f"{backend} (use sqlite or postgresql)")
    return backend


# --- the peer's own API --------------------------------------------------------------------


def prepare(db_url: str, n_accounts: int) -> PeerState:
    """Create the peer's tables (if missing), a fresh entity, JPY and ``n_accounts`` accounts.

    Each call makes a new Entity, so books of earlier calls on the same database stay apart
    (python-accounting scopes every query to the session's entity).
    """
    _check_url(db_url)
    if n_accounts < 2:
        raise PeerInputError("too_few_accounts", f"n_accounts={n_accounts}")
    from python_accounting.database.session import get_session
    from python_accounting.models import Account, Base, Currency, Entity

    engine = create_engine(db_url)
    Base.metadata.create_all(engine)
    with get_session(engine) as session:
        # adding the Entity opens its reporting period for the current year (and commits)
        entity = Entity(name="nofu bench peer")
        session.add(entity)
        session.commit()
        currency = Currency(name="Japanese Yen", code="JPY", entity_id=entity.id)
        session.add(currency)
        session.commit()
        entity.currency_id = currency.id
        accounts = [
            Account(
                name=f"bench receivable {i}",
                account_type=Account.AccountType.RECEIVABLE,
                currency_id=currency.id,
                entity_id=entity.id,
            )
            for i in range(n_accounts)
        ]
        session.add_all(accounts)
        session.commit()
        return PeerState(
            engine=engine,
            entity_id=entity.id,
            currency_id=currency.id,
            account_ids=tuple(account.id for account in accounts),
        )


def open_session(state: PeerState) -> Session:
    """A python-accounting session bound to the state's entity.

    The library only learns its entity from the first object added; a fresh session whose
    first object is a Journal Entry autoflushes before that, so the entity is set first.
    """
    from python_accounting.database.session import get_session
    from python_accounting.models import Entity

    session: Session = get_session(state.engine)
    session.entity = session.get(Entity, state.entity_id)  # type: ignore[attr-defined]
    return session


def post_one(
    state: PeerState,
    debit_idx: int,
    credit_idx: int,
    amount: int,
    key: str,
    *,
    session: Session | None = None,
) -> None:
    """Post Dr ``debit_idx`` / Cr ``credit_idx`` for ``amount`` yen through the peer's API.

    One database transaction per call: ``JournalEntry.post`` commits after writing both
    Ledger rows. ``key`` goes into the entry's ``reference`` (the peer has no idempotency
    key; it does not stop a replay). On failure the given session is rolled back and the
    error re-raised; without a session one is opened and closed for this posting.
    """
    n_accounts = len(state.account_ids)
    for name, idx in (("debit_idx", debit_idx), ("credit_idx", credit_idx)):
        if not 0 <= idx < n_accounts:
            raise PeerInputError("unknown_account", f"{name}={idx} of {n_accounts}")
    if debit_idx == credit_idx:
        raise PeerInputError("same_account", f"debit and credit are both {debit_idx}")
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise PeerInputError("invalid_amount", f"amount={amount!r} (positive integer yen)")
    if session is None:
        with open_session(state) as own:
            _post(state, own, debit_idx, credit_idx, amount, key)
        return
    _post(state, session, debit_idx, credit_idx, amount, key)


def _post(
    state: PeerState, session: Session, debit_idx: int, credit_idx: int, amount: int, key: str
) -> None:
    from python_accounting.models import LineItem
    from python_accounting.transactions import JournalEntry

    try:
        # credited=True (its default): the main account is credited, the line item debited.
        # Naive local time, as the library compares with datetime.today() for the period.
        entry = JournalEntry(
            narration=f"bench posting {key}",
            reference=key,
            transaction_date=datetime.now(),
            account_id=state.account_ids[credit_idx],
            entity_id=state.entity_id,
        )
        session.add(entry)
        session.flush()
        line = LineItem(
            narration=f"bench debit {key}",
            account_id=state.account_ids[debit_idx],
            amount=Decimal(amount),
            entity_id=state.entity_id,
        )
        session.add(line)
        session.flush()  # a Line Item must be persisted before it joins an entry
        entry.line_items.add(line)
        session.add(entry)
        entry.post(session)
    except BaseException:
        session.rollback()
        raise


def peer_balances(state: PeerState) -> list[int]:
    """Each account's closing balance as python-accounting reports it (debit positive, yen).

    Read through ``Account.closing_balance``; a balance with a fractional part would mean the
    peer lost integer yen, so it is refused rather than rounded.
    """
    from python_accounting.models import Account

    balances = []
    with open_session(state) as session:
        for account_id in state.account_ids:
            account = session.get(Account, account_id)
            value = Decimal(account.closing_balance(session))
            if value != value.to_integral_value():
                raise PeerInputError("fractional_balance", f"account {account_id}: {value}")
            balances.append(int(value))
    return balances


# --- the benchmark run ---------------------------------------------------------------------


def _error_kind(exc: BaseException) -> tuple[str, str]:
    """(kind, first line of message); a SQLAlchemy error is described by its DBAPI cause."""
    orig = getattr(exc, "orig", None)
    if orig is None:
        return type(exc).__name__, str(exc).strip().split("\n")[0][:300]
    message = " ".join(str(orig).split())[:300]
    return f"{type(exc).__name__}({type(orig).__name__})", message


def run(
    db_url: str,
    n_postings: int,
    writers: int,
    hot_accounts: int | None,
    *,
    seed: int = 0,
    retries: int = 0,
    verify: bool = False,
) -> dict[str, Any]:
    """Post ``plan(n_postings, writers, hot_accounts, seed)``, one thread and session per writer.

    Every posting is its own transaction. A posting that fails with a database error
    (IntegrityError, OperationalError: races, deadlocks, locks) is rolled back and tried again
    up to ``retries`` times (python-accounting itself never retries); one that still fails, or
    fails otherwise, is counted under its error kind. ``seconds`` covers the postings only
    (not table creation or account setup). With ``verify`` the result also holds the keys
    posted, the balances the plan implies for them, and the peer's balances.
    """
    backend = _check_url(db_url)
    _check_retries(retries)
    sequences = plan(n_postings, writers, hot_accounts, seed)
    n_accounts = accounts_needed(writers, hot_accounts)
    state = prepare(db_url, n_accounts)
    start = threading.Barrier(writers + 1)
    lock = threading.Lock()
    posted: list[PlannedPosting] = []
    errors: Counter[str] = Counter()
    samples: dict[str, str] = {}
    retried = 0

    def writer(entries: tuple[PlannedPosting, ...]) -> None:
        nonlocal retried
        done: list[PlannedPosting] = []
        failed: list[tuple[str, str]] = []
        again = 0
        try:
            session = open_session(state)
        except BaseException:
            start.abort()  # release the other writers and the timer instead of hanging
            raise
        with session:
            start.wait()
            for entry in entries:
                for attempt in range(retries + 1):
                    try:
                        post_one(
                            state, entry.debit_idx, entry.credit_idx, entry.amount, entry.key,
                            session=session,
                        )
                    except (IntegrityError, OperationalError) as exc:
                        if attempt == retries:
                            failed.append(_error_kind(exc))
                        else:
                            again += 1
                            continue
                    except Exception as exc:  # counted, not fatal: that is the measurement
                        failed.append(_error_kind(exc))
                    else:
                        done.append(entry)
                    break
        with lock:
            posted.extend(done)
            retried += again
            for kind, message in failed:
                errors[kind] += 1
                samples.setdefault(kind, message)

    threads = [threading.Thread(target=writer, args=(entries,)) for entries in sequences]
    for thread in threads:
        thread.start()
    try:
        start.wait()
    except threading.BrokenBarrierError:
        for thread in threads:
            thread.join()
        raise PeerRunError("a writer could not open its session") from None
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - began

    result: dict[str, Any] = {
        "peer": f"{PEER} {PEER_VERSION}",
        "backend": backend,
        "writers": writers,
        "hot_accounts": hot_accounts,
        "planned": n_postings,
        "postings": len(posted),
        "seconds": round(seconds, 4),
        "per_second": round(len(posted) / seconds, 1) if seconds > 0 else 0.0,
        "errors": sum(errors.values()),
        "retries": retries,
        "retried": retried,
        "error_kinds": dict(errors),
        "error_samples": samples,
    }
    if verify:
        result["posted_keys"] = sorted(entry.key for entry in posted)
        result["expected_balances"] = expected_balances(posted, n_accounts)
        result["peer_balances"] = peer_balances(state)
    state.engine.dispose()
    return result


def run_isolated(
    db_url: str,
    n_postings: int,
    writers: int,
    hot_accounts: int | None,
    *,
    seed: int = 0,
    retries: int = 0,
    verify: bool = False,
    python: str = sys.executable,
    timeout: float | None = None,
) -> dict[str, Any]:
    """:func:`run` in a child interpreter, so the peer's global Session listeners stay there.

    ``python`` may point at another environment that has python-accounting installed.
    Raises PeerRunError when the child fails or prints no result.
    """
    _check_url(db_url)
    _check_shape(n_postings, writers, hot_accounts)
    _check_retries(retries)
    command = [
        python, str(Path(__file__).resolve()), "--json", "--url", db_url,
        "--n", str(n_postings), "--writers", str(writers), "--seed", str(seed),
        "--retries", str(retries),
    ]
    if hot_accounts is not None:
        command += ["--hot", str(hot_accounts)]
    if verify:
        command.append("--verify")
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise PeerRunError(f"exit {done.returncode}: {done.stderr.strip()[-2000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


# --- scratch databases ----------------------------------------------------------------------


def postgres_reachable(admin_url: str = DEFAULT_ADMIN_URL) -> bool:
    """Whether the PostgreSQL server answers within two seconds."""
    import psycopg

    try:
        with psycopg.connect(_libpq(admin_url), connect_timeout=2):
            return True
    except psycopg.OperationalError:
        return False


@contextmanager
def scratch_postgres(admin_url: str, name: str) -> Iterator[str]:
    """Create database ``name`` (dropping a leftover of the same name), yield its URL, drop it.

    Only the named database is created or dropped; ``admin_url`` is used just to connect.
    """
    import psycopg

    if not _DB_NAME.fullmatch(name):
        raise PeerInputError("bad_database_name", repr(name))
    with psycopg.connect(_libpq(admin_url), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(_libpq(admin_url), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _libpq(url: str) -> str:
    # psycopg wants a libpq URL, not SQLAlchemy's "postgresql+psycopg://"
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


# --- command line ---------------------------------------------------------------------------


def _figures(n: int, admin_url: str, with_postgres: bool) -> list[dict[str, Any]]:
    results = []
    with tempfile.TemporaryDirectory(prefix="nofu-bench-peer-") as folder:
        for hot in (None, 10):
            path = Path(folder) / f"peer-{hot or 'distinct'}.db"
            results.append(run_isolated(f"sqlite:///{path}", n, 1, hot))
    if with_postgres:
        # 8 writers twice: as the library behaves, then retrying until each entry is posted
        for writers, retries in ((1, 0), (8, 0), (8, RETRY_BUDGET)):
            for hot in (None, 10):
                # a fresh database per scenario, so no run inherits another's rows
                with scratch_postgres(admin_url, DEFAULT_SCRATCH_DB) as url:
                    results.append(run_isolated(url, n, writers, hot, retries=retries))
    return results


def _print_table(results: list[dict[str, Any]]) -> None:
    print(f"{PEER} {PEER_VERSION}: one balanced 2-line Journal Entry per transaction")
    print(f"{'backend':<11}{'writers':>8}{'accounts':>10}{'retries':>8}{'posted':>8}"
          f"{'errors':>8}{'retried':>8}{'seconds':>9}{'per s':>8}")
    for r in results:
        accounts = f"{r['hot_accounts']} hot" if r["hot_accounts"] else "distinct"
        print(f"{r['backend']:<11}{r['writers']:>8}{accounts:>10}{r['retries']:>8}"
              f"{r['postings']:>8}{r['errors']:>8}{r['retried']:>8}{r['seconds']:>9.2f}"
              f"{r['per_second']:>8.1f}")
        for kind, count in r["error_kinds"].items():
            print(f"{'':>11}{count} x {kind}: {r['error_samples'][kind][:150]}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=f"Benchmark peer: {PEER} {PEER_VERSION}")
    parser.add_argument("--n", type=int, default=1000, help="postings per scenario")
    parser.add_argument("--pg-admin-url", default=DEFAULT_ADMIN_URL)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--json", action="store_true", help="run one scenario, print JSON")
    parser.add_argument("--url", help="database of the --json scenario")
    parser.add_argument("--writers", type=int, default=1)
    parser.add_argument("--hot", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--retries", type=int, default=0, help="per posting, on DB errors")
    parser.add_argument("--verify", action="store_true")
    args = parser.parse_args(argv)
    if args.json:
        if not args.url:
            parser.error("--json needs --url")
        result = run(
            args.url, args.n, args.writers, args.hot,
            seed=args.seed, retries=args.retries, verify=args.verify,
        )
        print(json.dumps(result))
        return 0
    with_postgres = not args.no_postgres and postgres_reachable(args.pg_admin_url)
    if not with_postgres and not args.no_postgres:
        print(f"PostgreSQL not reachable at {args.pg_admin_url}: SQLite only", file=sys.stderr)
    _print_table(_figures(args.n, args.pg_admin_url, with_postgres))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
