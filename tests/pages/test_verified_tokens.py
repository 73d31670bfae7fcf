"""The cache of verified payment tokens behaves exactly like verifying every time."""

from __future__ import annotations

import pytest

from gateway.pages.token_access import VerifiedTokens
from invoices.tokens import KeyRing, TokenError, generate_key


def ring() -> KeyRing:
    return KeyRing.from_config(generate_key("k1"))


def test_hits_return_the_same_claims_and_forgeries_are_never_cached() -> None:
    keyring, cache = ring(), VerifiedTokens(size=4)
    token = keyring.sign(b"\x01" * 12, 0)
    assert cache.verify(keyring, token) == keyring.verify(token)
    assert cache.verify(keyring, token) == keyring.verify(token)
    forged = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    for _ in range(3):  # checked in full every time, never remembered
        with pytest.raises(TokenError):
            cache.verify(keyring, forged)
    assert list(cache._entries) == [token]


def test_another_key_ring_never_sees_entries_of_the_old_one() -> None:
    old, new, cache = ring(), ring(), VerifiedTokens()
    token = old.sign(b"\x02" * 12, 1)
    cache.verify(old, token)
    with pytest.raises(TokenError):  # the rotated ring does not know k1's key material
        cache.verify(new, token)


def test_size_is_bounded_least_recently_used_first() -> None:
    keyring, cache = ring(), VerifiedTokens(size=2)
    a, b, c = (keyring.sign(bytes([i]) * 12, 0) for i in (1, 2, 3))
    cache.verify(keyring, a)
    cache.verify(keyring, b)
    cache.verify(keyring, a)  # a is now the most recent
    cache.verify(keyring, c)
    assert list(cache._entries) == [a, c]
