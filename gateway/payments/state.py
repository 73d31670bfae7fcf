"""The payment attempt state machine: named transitions, everything else refused and logged.

::

    created ──require_action──▶ requires_action ──reopen──▶ created
       │                             │
       ├──start_processing──▶ processing ◀──start_processing──┘
       │                             │
       └──── succeed | fail | cancel | expire (from any active state) ────▶ terminal

Active states (created, requires_action, processing) hold the lock on the bill: the database
allows one per invoice. Terminal states (succeeded, failed, canceled, expired) never change again;
failed, canceled and expired release the invoice. Only ``succeed`` moves money, and only the
service's settlement takes it, on a provider's confirmed outcome (``gateway.payments.service``).
Refunds have their own small lifecycle (pending → succeeded | failed) on the refund row.
"""

from __future__ import annotations

import logging
from enum import StrEnum
from types import MappingProxyType

from gateway.payments.errors import IllegalTransition

log = logging.getLogger("nofu.payments")


class AttemptStatus(StrEnum):
    CREATED = "created"
    REQUIRES_ACTION = "requires_action"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    EXPIRED = "expired"

    @property
    def active(self) -> bool:
        return self in ACTIVE

    @property
    def terminal(self) -> bool:
        return self not in ACTIVE


class Event(StrEnum):
    REQUIRE_ACTION = "require_action"  # the provider wants a redirect (PayPay) or 3-D Secure
    REOPEN = "reopen"  # the resident came back from the redirect without paying: choose again
    START_PROCESSING = "start_processing"  # the provider accepted it and is settling
    SUCCEED = "succeed"  # the provider confirmed the money: the only event that moves money
    FAIL = "fail"  # declined, and the provider confirmed the intent can no longer take money
    CANCEL = "cancel"  # cancelled at the provider (by the resident, staff, or the provider)
    EXPIRE = "expire"  # not completed in time; cancelled at the provider first


ACTIVE = frozenset({AttemptStatus.CREATED, AttemptStatus.REQUIRES_ACTION, AttemptStatus.PROCESSING})
RELEASING = frozenset({AttemptStatus.FAILED, AttemptStatus.CANCELED, AttemptStatus.EXPIRED})

_S, _E = AttemptStatus, Event
_TRANSITIONS: dict[tuple[AttemptStatus, Event], AttemptStatus] = {
    (_S.CREATED, _E.REQUIRE_ACTION): _S.REQUIRES_ACTION,
    (_S.REQUIRES_ACTION, _E.REOPEN): _S.CREATED,
    (_S.CREATED, _E.START_PROCESSING): _S.PROCESSING,
    (_S.REQUIRES_ACTION, _E.START_PROCESSING): _S.PROCESSING,
}
for _active in ACTIVE:
    _TRANSITIONS[(_active, _E.SUCCEED)] = _S.SUCCEEDED
    _TRANSITIONS[(_active, _E.FAIL)] = _S.FAILED
    _TRANSITIONS[(_active, _E.CANCEL)] = _S.CANCELED
    _TRANSITIONS[(_active, _E.EXPIRE)] = _S.EXPIRED

TRANSITIONS = MappingProxyType(_TRANSITIONS)


def allowed(status: AttemptStatus, event: Event) -> bool:
    return (status, event) in TRANSITIONS


def transition(status: AttemptStatus | str, event: Event | str, *, attempt: str | None = None) -> AttemptStatus:
    """The state after ``event``; an event the state does not accept raises
    :class:`IllegalTransition` (code ``payment.illegal_transition``) and is logged."""
    current, happened = AttemptStatus(status), Event(event)
    target = TRANSITIONS.get((current, happened))
    if target is None:
        log.warning(
            "illegal payment transition refused: %s --%s--> ?",
            current.value,
            happened.value,
            extra={"attempt": attempt, "status": current.value, "event": happened.value},
        )
        raise IllegalTransition(
            f"a payment attempt in state {current.value} does not accept {happened.value}",
            status=current.value,
            event=happened.value,
            attempt=attempt,
        )
    return target
