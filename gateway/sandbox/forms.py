"""Stripe's form encoding: `metadata[invoice]=…`, `payment_method_types[0]=card`, `expand[]=…`.

Decoded into plain nested values: dicts for hashes, lists for arrays, strings at the
leaves (Stripe receives everything as text and converts per parameter).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

from gateway.sandbox.errors import invalid_request

Params = dict[str, Any]

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_SEGMENT = re.compile(r"\[([^\[\]]*)\]")
_APPEND = ""  # the empty segment of `expand[]`


def parse_key(key: str) -> list[str]:
    """`a[b][0]` → ["a", "b", "0"]; a key that is not bracket notation is taken literally."""
    match = _KEY.match(key)
    if match is None:
        return [key]
    return [match.group(1), *_SEGMENT.findall(match.group(2))]


def decode_form(raw: bytes | str) -> Params:
    """Decode a form body or query string into nested params.

    Invariant: every (key, value) pair of the input is represented exactly once; a key used
    both as a scalar and as a hash (`a=1&a[b]=2`) is refused with `parameter_invalid`.
    """
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError:
        raise invalid_request("The request body is not valid UTF-8.", code="parameter_invalid") from None
    root: dict[str, Any] = {}
    for key, value in parse_qsl(text, keep_blank_values=True):
        _insert(root, parse_key(key), value, key)
    # the top level is always a hash of parameter names, even if a name looks like an index
    return {name.lstrip("\x00"): _listify(item) for name, item in root.items()}


def _insert(node: dict[str, Any], path: list[str], value: str, full_key: str) -> None:
    head, rest = path[0], path[1:]
    if not rest:
        if head == _APPEND:
            head = f"\x00{len(node)}"  # ordered slot, made into a list index by _listify
        if isinstance(node.get(head), dict):
            raise invalid_request(f"Invalid hash: {full_key}", param=full_key, code="parameter_invalid")
        node[head] = value
        return
    if head == _APPEND:
        head = f"\x00{len(node)}"
    child = node.setdefault(head, {})
    if not isinstance(child, dict):
        raise invalid_request(f"Invalid hash: {full_key}", param=full_key, code="parameter_invalid")
    _insert(child, rest, value, full_key)


def _listify(node: Any) -> Any:
    """Turn hashes whose keys are all indices (`0`, `1`, … or `[]` slots) into lists."""
    if not isinstance(node, dict):
        return node
    converted = {key: _listify(value) for key, value in node.items()}
    if converted and all(_is_index(key) for key in converted):
        return [converted[key] for key in sorted(converted, key=_index_of)]
    return {key.lstrip("\x00"): value for key, value in converted.items()}


def _is_index(key: str) -> bool:
    return key.startswith("\x00") or key.isdigit()


def _index_of(key: str) -> int:
    return int(key.lstrip("\x00"))
