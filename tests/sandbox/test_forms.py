"""Decoding Stripe's bracket form encoding, checked against the SDK's own encoder."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stripe._encode import _api_encode

from gateway.sandbox.errors import StripeApiError
from gateway.sandbox.forms import decode_form, parse_key


def _sdk_body(params: dict[str, Any]) -> str:
    """Exactly what stripe-python sends (it keeps the brackets unescaped)."""
    return urlencode(list(_api_encode(params))).replace("%5B", "[").replace("%5D", "]")


def test_brackets_arrays_and_appends() -> None:
    body = "amount=1200&metadata[invoice]=INV-1&metadata[note]=&payment_method_types[0]=card" \
           "&payment_method_types[1]=paypay&expand[]=a&expand[]=b.c&automatic_payment_methods[enabled]=true"
    assert decode_form(body) == {
        "amount": "1200",
        "metadata": {"invoice": "INV-1", "note": ""},
        "payment_method_types": ["card", "paypay"],
        "expand": ["a", "b.c"],
        "automatic_payment_methods": {"enabled": "true"},
    }


def test_keys_and_utf8() -> None:
    assert parse_key("a[b][0]") == ["a", "b", "0"]
    assert parse_key("weird[") == ["weird["]
    assert decode_form("description=%E4%BD%8F%E6%B0%91%E7%A8%8E".encode()) == {"description": "住民税"}


def test_a_key_used_as_scalar_and_hash_is_refused() -> None:
    with pytest.raises(StripeApiError) as raised:
        decode_form("metadata=x&metadata[a]=1")
    assert raised.value.code == "parameter_invalid"
    with pytest.raises(StripeApiError):
        decode_form("metadata[a]=1&metadata=x")


text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=8)
key = st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=6)
leaf = text
params = st.recursive(
    leaf,
    lambda children: st.one_of(
        st.lists(children, min_size=1, max_size=4),
        st.dictionaries(key, children, min_size=1, max_size=4),
    ),
    max_leaves=12,
)


@given(st.dictionaries(key, params, max_size=5))
def test_decoding_inverts_the_sdk_encoder(original: dict[str, Any]) -> None:
    assert decode_form(_sdk_body(original)) == original


def test_invalid_utf8_is_a_400_not_a_crash() -> None:
    with pytest.raises(StripeApiError) as raised:
        decode_form(b"description=\xff\xfe")
    assert (raised.value.status, raised.value.code) == (400, "parameter_invalid")
