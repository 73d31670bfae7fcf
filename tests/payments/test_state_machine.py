"""The attempt state machine on its own: named transitions, refusals with a code, logging."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.payments import AttemptStatus, Event, IllegalTransition, transition
from gateway.payments.state import ACTIVE, RELEASING, TRANSITIONS, allowed

S, E = AttemptStatus, Event


def test_the_happy_paths_are_named_transitions() -> None:
    assert transition(S.CREATED, E.SUCCEED) is S.SUCCEEDED
    assert transition(S.CREATED, E.REQUIRE_ACTION) is S.REQUIRES_ACTION
    assert transition(S.REQUIRES_ACTION, E.START_PROCESSING) is S.PROCESSING
    assert transition(S.PROCESSING, E.SUCCEED) is S.SUCCEEDED
    assert transition(S.REQUIRES_ACTION, E.REOPEN) is S.CREATED
    for active in ACTIVE:
        assert transition(active, E.FAIL) is S.FAILED
        assert transition(active, E.CANCEL) is S.CANCELED
        assert transition(active, E.EXPIRE) is S.EXPIRED


def test_failed_canceled_and_expired_release_the_invoice_and_are_terminal() -> None:
    assert RELEASING == {S.FAILED, S.CANCELED, S.EXPIRED}
    assert all(status.terminal and not status.active for status in RELEASING)
    assert S.SUCCEEDED.terminal


def test_an_illegal_transition_is_refused_with_a_code_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="nofu.payments"):
        with pytest.raises(IllegalTransition) as refused:
            transition(S.SUCCEEDED, E.FAIL, attempt="pa_" + "0" * 24)
    assert refused.value.code == "payment.illegal_transition"
    assert refused.value.detail == {"status": "succeeded", "event": "fail", "attempt": "pa_" + "0" * 24}
    assert any("illegal payment transition" in r.getMessage() for r in caplog.records)


def test_unknown_names_are_refused() -> None:
    with pytest.raises(ValueError):
        transition("paid", E.SUCCEED)
    with pytest.raises(ValueError):
        transition(S.CREATED, "charge")


@given(st.lists(st.sampled_from(list(Event)), max_size=30), st.sampled_from(sorted(ACTIVE)))
def test_random_event_sequences_keep_the_rules(events: list[Event], start: AttemptStatus) -> None:
    """Whatever happens, in any order: at most one success, a terminal state never changes,
    only ``succeed`` reaches succeeded (the only transition that moves money), and every refusal
    is an IllegalTransition that leaves the state as it was."""
    status = start
    successes = 0
    for event in events:
        before = status
        if allowed(status, event):
            status = transition(status, event)
            successes += status is S.SUCCEEDED
            assert (status is S.SUCCEEDED) == (event is E.SUCCEED)
        else:
            with pytest.raises(IllegalTransition):
                transition(status, event)
            assert status is before
        if before.terminal:
            assert status is before
    assert successes <= 1


def test_the_table_has_no_exit_from_a_terminal_state() -> None:
    assert not [key for key in TRANSITIONS if key[0].terminal]
    assert all(target is S.SUCCEEDED for (_, event), target in TRANSITIONS.items() if event is E.SUCCEED)
