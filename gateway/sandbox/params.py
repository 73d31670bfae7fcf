"""Typed reads of decoded Stripe params, refusing bad values the way Stripe does.

Where Stripe's exact error code for a case is not documented the sandbox uses
`parameter_invalid`; known Stripe codes are used otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from gateway.sandbox.errors import StripeApiError, invalid_request, missing_parameter, unknown_parameter
from gateway.sandbox.forms import Params

METADATA_MAX_KEYS = 50
METADATA_KEY_MAX = 40
METADATA_VALUE_MAX = 500
ALWAYS_ALLOWED = frozenset({"expand"})


def reject_unknown(params: Params, allowed: Iterable[str]) -> None:
    """Stripe refuses any parameter it does not know; so does the sandbox (catches typos)."""
    known = ALWAYS_ALLOWED | frozenset(allowed)
    for name in params:
        if name not in known:
            raise unknown_parameter(name)


def exclusive(params: Params, *names: str) -> None:
    given = [name for name in names if params.get(name) not in (None, "")]
    if len(given) > 1:
        raise invalid_request(
            f"You may only specify one of these parameters: {', '.join(names)}.",
            param=given[1],
            code="parameters_exclusive",
        )


def get_str(params: Params, name: str, *, required: bool = False) -> str | None:
    value = params.get(name)
    if value is None:
        if required:
            raise missing_parameter(name)
        return None
    if not isinstance(value, str):
        raise invalid_request(f"Invalid string: {name}", param=name, code="parameter_invalid")
    return value


def get_int(
    params: Params, name: str, *, required: bool = False, label: str | None = None
) -> int | None:
    raw = get_str(params, name, required=required)
    if raw is None:
        return None
    digits = raw.strip()
    if not (digits.isascii() and digits.lstrip("-").isdigit()):
        raise invalid_request(
            f"Invalid integer: {raw}", param=label or name, code="parameter_invalid_integer"
        )
    return int(digits)


def get_bool(params: Params, name: str) -> bool | None:
    raw = get_str(params, name)
    if raw is None:
        return None
    if raw in ("true", "false"):
        return raw == "true"
    raise invalid_request(f"Invalid boolean: {raw}", param=name, code="parameter_invalid")


def get_choice(params: Params, name: str, choices: Iterable[str]) -> str | None:
    raw = get_str(params, name)
    options = list(choices)
    if raw is not None and raw not in options:
        raise invalid_request(
            f"Invalid {name}: must be one of {', '.join(options)}", param=name, code="parameter_invalid"
        )
    return raw


def get_hash(params: Params, name: str) -> dict[str, Any] | None:
    value = params.get(name)
    if value is None or value == "":
        return None if value is None else {}
    if isinstance(value, list):  # `metadata[0]=x` decodes as a list; Stripe reads a hash
        return {str(index): item for index, item in enumerate(value)}
    if not isinstance(value, dict):
        raise invalid_request(f"Invalid hash: {name}", param=name, code="parameter_invalid")
    return value


def get_list(params: Params, name: str) -> list[Any] | None:
    value = params.get(name)
    if value is None:
        return None
    if isinstance(value, dict):
        raise invalid_request(f"Invalid array: {name}", param=name, code="parameter_invalid")
    if isinstance(value, str):
        return [value] if value else []
    return list(value)


def get_expand(params: Params) -> list[str]:
    value = get_list(params, "expand") or []
    return [item for item in value if isinstance(item, str)]


def get_metadata(params: Params, name: str = "metadata") -> dict[str, str] | None:
    """Metadata as Stripe limits it: ≤ 50 keys, key ≤ 40 chars, value ≤ 500 chars.

    An empty value means "unset this key" on update; the caller decides how to apply it.
    """
    raw = get_hash(params, name)
    if raw is None:
        return None
    if len(raw) > METADATA_MAX_KEYS:
        raise invalid_request(
            f"Metadata can have up to {METADATA_MAX_KEYS} keys, but you passed in {len(raw)} keys.",
            param=name,
            code="parameter_invalid",
        )
    result: dict[str, str] = {}
    for key, value in raw.items():
        if not isinstance(value, str):
            raise invalid_request(f"Invalid {name}[{key}]: values must be strings", param=f"{name}[{key}]", code="parameter_invalid")
        if len(key) > METADATA_KEY_MAX:
            raise invalid_request(
                f"Metadata keys can have up to {METADATA_KEY_MAX} characters, "
                f"but you passed in a key of length {len(key)}.",
                param=f"{name}[{key}]",
                code="parameter_invalid",
            )
        if len(value) > METADATA_VALUE_MAX:
            raise invalid_request(
                f"Metadata values can have up to {METADATA_VALUE_MAX} characters, "
                f"but you passed in a value that is {len(value)} characters.",
                param=f"{name}[{key}]",
                code="parameter_invalid",
            )
        result[key] = value
    return result


def merge_metadata(current: dict[str, str], update: dict[str, str]) -> dict[str, str]:
    """Stripe's update rule: keys merge, an empty string removes the key."""
    merged = dict(current)
    for key, value in update.items():
        if value == "":
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def created_filter(params: Params, name: str = "created") -> Callable[[int], bool]:
    """`created=T` or `created[gt|gte|lt|lte]=T` as a predicate on a unix time."""
    value = params.get(name)
    if value is None:
        return lambda _: True
    if isinstance(value, str):
        exact = get_int(params, name)
        return lambda ts: ts == exact
    bounds = get_hash(params, name) or {}
    for op in bounds:
        if op not in ("gt", "gte", "lt", "lte"):
            raise unknown_parameter(f"{name}[{op}]")
    limits = {op: get_int(bounds, op, required=True, label=f"{name}[{op}]") for op in bounds}

    def matches(ts: int) -> bool:
        gt, gte, lt, lte = (limits.get(op) for op in ("gt", "gte", "lt", "lte"))
        return (
            (gt is None or ts > gt)
            and (gte is None or ts >= gte)
            and (lt is None or ts < lt)
            and (lte is None or ts <= lte)
        )

    return matches


def require(condition: bool, error: StripeApiError) -> None:
    if not condition:
        raise error
