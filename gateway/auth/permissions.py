"""Roles and permissions, as data: which staff role may do what on the staff API.

=========================== =========================================== ======== ===== =======
permission                  what it allows                              treasury clerk auditor
=========================== =========================================== ======== ===== =======
``invoices:read``           look up invoices and their history          yes      yes   yes
``invoices:write``          issue, amend and cancel invoices (調定)     yes      yes   —
``payments:read``           look up payments and overpayments (過誤納金) yes      yes   yes
``payments:refund``         refund a payment or overpayment (還付)      yes      —     —
``reconciliation:read``     see reconciliation runs and their breaks    yes      —     yes
``reconciliation:run``      run the daily reconciliation (消込)         yes      —     —
``reconciliation:signoff``  sign off a reconciled business day          yes      —     —
``webhooks:replay``         replay a stored provider event              yes      —     —
``ledger:read``             read journal entries and balances           yes      —     yes
``audit:read``              read the audit log                          yes      —     yes
=========================== =========================================== ======== ===== =======

Treasury holds every permission; the auditor holds exactly the ``…:read`` ones (tests check both
rules). A route names the permission it needs (``guards=[require("payments:refund")]``), never a
role, so changing who may do what is an edit of ``PERMISSIONS`` below and nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType


class Role(StrEnum):
    TREASURY = "treasury"
    CLERK = "clerk"
    AUDITOR = "auditor"


@dataclass(frozen=True)
class Permission:
    """One permission: its name (``area:verb``), what it allows, and the roles that hold it."""

    name: str
    description: str
    roles: frozenset[Role]


def _p(name: str, description: str, *roles: Role) -> Permission:
    return Permission(name, description, frozenset(roles))


T, C, A = Role.TREASURY, Role.CLERK, Role.AUDITOR

PERMISSIONS: Mapping[str, Permission] = MappingProxyType(
    {
        p.name: p
        for p in (
            _p("invoices:read", "look up invoices and their history", T, C, A),
            _p("invoices:write", "issue, amend and cancel invoices", T, C),
            _p("payments:read", "look up payments and overpayments", T, C, A),
            _p("payments:refund", "refund a payment or an overpayment", T),
            _p("reconciliation:read", "see reconciliation runs and their breaks", T, A),
            _p("reconciliation:run", "run the daily reconciliation", T),
            _p("reconciliation:signoff", "sign off a reconciled business day", T),
            _p("webhooks:replay", "replay a stored provider event", T),
            _p("ledger:read", "read journal entries and balances", T, A),
            _p("audit:read", "read the audit log", T, A),
        )
    }
)


def permissions_of(role: Role) -> frozenset[str]:
    """Every permission the role holds."""
    return frozenset(name for name, p in PERMISSIONS.items() if role in p.roles)


def allows(role: Role, permission: str) -> bool:
    """Whether ``role`` holds ``permission``; an unknown permission is held by nobody."""
    entry = PERMISSIONS.get(permission)
    return entry is not None and role in entry.roles
