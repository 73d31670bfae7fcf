"""`expand[]=latest_charge.balance_transaction`: replace ids by the objects they name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gateway.sandbox.errors import invalid_request

Lookup = Callable[[str], dict[str, Any] | None]
MAX_DEPTH = 4  # Stripe allows expanding at most four levels deep


def expand(obj: dict[str, Any], paths: list[str], lookup: Lookup) -> dict[str, Any]:
    """Expand each dotted path in place; `data.` paths apply to every item of a list object."""
    for path in paths:
        parts = path.split(".")
        if len(parts) > MAX_DEPTH:
            raise invalid_request(
                f"You cannot expand more than {MAX_DEPTH} levels of a property. Property: {path}",
                param="expand",
                code="parameter_invalid",
            )
        _expand(obj, parts, path, lookup)
    return obj


def _expand(obj: dict[str, Any], parts: list[str], path: str, lookup: Lookup) -> None:
    head, rest = parts[0], parts[1:]
    if obj.get("object") == "list" and head == "data":
        for item in obj["data"]:
            if rest:
                _expand(item, rest, path, lookup)
        return
    if head not in obj:
        raise _not_expandable(path, head)
    value = obj[head]
    if isinstance(value, str):
        found = lookup(value)
        if found is None:
            raise _not_expandable(path, head)
        obj[head] = value = found
    if rest and isinstance(value, dict):
        _expand(value, rest, path, lookup)


def _not_expandable(path: str, head: str) -> Exception:
    return invalid_request(
        f"This property cannot be expanded ({head}). You may want to try expanding '{path}' instead.",
        param="expand",
        code="parameter_invalid",
    )
