"""The benchmark peer really posts: python-accounting's own balances match the planned entries.

python-accounting hooks every SQLAlchemy Session in the process it is imported into, so the
peer only ever runs in a child interpreter here (``run_isolated``); this process never imports it.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from itertools import chain
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import create_engine

from bench.peer_python_accounting import (
    ACCOUNTS_PER_WRITER,
    DEFAULT_ADMIN_URL,
    MAX_AMOUNT,
    PeerInputError,
    PeerState,
    PlannedPosting,
    accounts_needed,
    expected_balances,
    plan,
    post_one,
    postgres_reachable,
    prepare,
    run,
    run_isolated,
    scratch_postgres,
)

REPO = Path(__file__).resolve().parents[2]
needs_peer = pytest.mark.skipif(
    importlib.util.find_spec("python_accounting") is None,
    reason="python-accounting not installed (bench extra)",
)
needs_postgres = pytest.mark.skipif(
    not postgres_reachable(DEFAULT_ADMIN_URL), reason="PostgreSQL not reachable"
)

shapes = st.tuples(
    st.integers(min_value=0, max_value=200),
    st.integers(min_value=1, max_value=8),
    st.none() | st.integers(min_value=2, max_value=12),
    st.integers(min_value=0, max_value=2**32),
)


def _all(sequences: tuple[tuple[PlannedPosting, ...], ...]) -> list[PlannedPosting]:
    return list(chain.from_iterable(sequences))


# --- the plan ------------------------------------------------------------------------------


@given(shapes)
def test_plan_posts_n_balanced_entries_within_the_accounts(shape: tuple) -> None:
    n, writers, hot, seed = shape
    sequences = plan(n, writers, hot, seed)
    entries = _all(sequences)
    n_accounts = accounts_needed(writers, hot)

    assert len(sequences) == writers
    assert len(entries) == n
    assert max(len(s) for s in sequences) - min(len(s) for s in sequences) <= 1
    assert len({e.key for e in entries}) == n
    for e in entries:
        assert e.debit_idx != e.credit_idx
        assert 0 <= e.debit_idx < n_accounts and 0 <= e.credit_idx < n_accounts
        assert isinstance(e.amount, int) and 1 <= e.amount <= MAX_AMOUNT
    assert sum(expected_balances(entries, n_accounts)) == 0
    assert plan(n, writers, hot, seed) == sequences


@given(shapes)
def test_distinct_writers_never_share_an_account(shape: tuple) -> None:
    n, writers, _, seed = shape
    owned = [
        {idx for e in sequence for idx in (e.debit_idx, e.credit_idx)}
        for sequence in plan(n, writers, None, seed)
    ]
    for w, accounts in enumerate(owned):
        assert accounts <= set(range(w * ACCOUNTS_PER_WRITER, (w + 1) * ACCOUNTS_PER_WRITER))


def test_hot_writers_share_the_hot_accounts() -> None:
    sequences = plan(400, 4, 10, seed=1)
    touched = [{i for e in s for i in (e.debit_idx, e.credit_idx)} for s in sequences]
    assert all(accounts == set(range(10)) for accounts in touched)
    assert accounts_needed(4, 10) == 10 and accounts_needed(4, None) == 4 * ACCOUNTS_PER_WRITER


def test_expected_balances_are_debit_positive() -> None:
    entries = [PlannedPosting(0, 1, 300, "a"), PlannedPosting(2, 0, 120, "b")]
    assert expected_balances(entries, 3) == [180, -300, 120]


# --- refusals ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "code"),
    [
        ((-1, 1, None), "negative_postings"),
        ((10, 0, None), "no_writers"),
        ((10, 2, 1), "too_few_hot_accounts"),
    ],
)
def test_plan_refuses_impossible_shapes(args: tuple, code: str) -> None:
    with pytest.raises(PeerInputError) as refused:
        plan(*args)
    assert refused.value.code == code


def test_run_refuses_an_unsupported_database() -> None:
    with pytest.raises(PeerInputError) as refused:
        run("mysql://root@localhost/x", 10, 1, None)
    assert refused.value.code == "unsupported_database"
    with pytest.raises(PeerInputError) as refused:
        run_isolated("mysql://root@localhost/x", 10, 1, None)
    assert refused.value.code == "unsupported_database"


def test_run_refuses_negative_retries(tmp_path: Path) -> None:
    with pytest.raises(PeerInputError) as refused:
        run_isolated(f"sqlite:///{tmp_path}/x.db", 10, 1, None, retries=-1)
    assert refused.value.code == "negative_retries"


def test_prepare_refuses_fewer_than_two_accounts(tmp_path: Path) -> None:
    with pytest.raises(PeerInputError) as refused:
        prepare(f"sqlite:///{tmp_path}/x.db", 1)
    assert refused.value.code == "too_few_accounts"


@pytest.mark.parametrize(
    ("debit", "credit", "amount", "code"),
    [
        (0, 3, 100, "unknown_account"),
        (-1, 0, 100, "unknown_account"),
        (1, 1, 100, "same_account"),
        (0, 1, 0, "invalid_amount"),
        (0, 1, -5, "invalid_amount"),
        (0, 1, 1.5, "invalid_amount"),
        (0, 1, True, "invalid_amount"),
    ],
)
def test_post_one_refuses_bad_entries(debit: int, credit: int, amount: object, code: str) -> None:
    state = PeerState(create_engine("sqlite://"), 1, 2, (10, 11, 12))
    with pytest.raises(PeerInputError) as refused:
        post_one(state, debit, credit, amount, "k")  # type: ignore[arg-type]
    assert refused.value.code == code


def test_scratch_postgres_refuses_an_unsafe_name() -> None:
    with pytest.raises(PeerInputError) as refused:
        with scratch_postgres(DEFAULT_ADMIN_URL, 'x"; DROP DATABASE test; --'):
            pass
    assert refused.value.code == "bad_database_name"


# --- isolation -----------------------------------------------------------------------------


def _child(code: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)


def test_importing_the_peer_module_leaves_python_accounting_unloaded() -> None:
    done = _child(
        "import sys, bench.peer_python_accounting\n"
        "print(any(m.startswith('python_accounting') for m in sys.modules))"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


@needs_peer
def test_python_accounting_breaks_other_sessions_in_its_process() -> None:
    """Why the peer runs in a child process; if this starts failing, isolation may go."""
    done = _child(
        "from sqlalchemy import create_engine, literal, select, text\n"
        "from sqlalchemy.orm import Session\n"
        "import python_accounting.database.session\n"
        "for stmt in (text('select 1'), select(literal(1))):\n"
        "    with Session(create_engine('sqlite://')) as s:\n"
        "        try:\n"
        "            s.execute(stmt)\n"
        "        except AttributeError as e:\n"
        "            print(e)\n"
        "        else:\n"
        "            print('ok')\n"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "'TextClause' object has no attribute 'column_descriptions'",
        "'Session' object has no attribute 'entity'",
    ]


# --- the peer really posts -----------------------------------------------------------------


def _assert_peer_books_match(result: dict, n: int, writers: int, hot: int | None) -> None:
    entries = {e.key: e for e in _all(plan(n, writers, hot))}
    posted = [entries[key] for key in result["posted_keys"]]
    expected = expected_balances(posted, accounts_needed(writers, hot))
    assert result["postings"] == len(posted)
    assert result["postings"] + result["errors"] == n
    assert result["peer_balances"] == expected
    assert any(expected)


@needs_peer
@pytest.mark.parametrize("hot", [None, 10])
def test_sqlite_peer_balances_reflect_every_posting(tmp_path: Path, hot: int | None) -> None:
    result = run_isolated(f"sqlite:///{tmp_path}/peer.db", 20, 1, hot, verify=True)

    assert result["errors"] == 0, result["error_samples"]
    assert result["postings"] == 20 and result["per_second"] > 0
    _assert_peer_books_match(result, 20, 1, hot)


@pytest.fixture
def pg_url() -> object:
    with scratch_postgres(DEFAULT_ADMIN_URL, f"nofu_bench_peer_t{os.getpid()}") as url:
        yield url


@needs_peer
@needs_postgres
@pytest.mark.postgres
def test_postgres_peer_balances_reflect_every_posting(pg_url: str) -> None:
    result = run_isolated(pg_url, 20, 1, None, verify=True)

    assert result["errors"] == 0, result["error_samples"]
    assert result["postings"] == 20
    _assert_peer_books_match(result, 20, 1, None)


@needs_peer
@needs_postgres
@pytest.mark.postgres
def test_postgres_concurrent_writers_lose_entries_only_to_counted_errors(pg_url: str) -> None:
    raced = run_isolated(pg_url, 20, 4, 10, verify=True)
    # the peer numbers entries count(*)+1: racing writers collide on the unique entry number
    assert set(raced["error_kinds"]) <= {"IntegrityError(UniqueViolation)"}
    assert raced["postings"] >= 1
    _assert_peer_books_match(raced, 20, 4, 10)

    retried = run_isolated(pg_url, 20, 4, 10, retries=100, verify=True)
    assert retried["errors"] == 0, retried["error_samples"]
    _assert_peer_books_match(retried, 20, 4, 10)
