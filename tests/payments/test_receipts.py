"""Receipt numbers, verification codes and receipt keys (pure code)."""

from __future__ import annotations

import base64
import re
from datetime import datetime, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.payments.receipts import (
    ReceiptFields,
    ReceiptKeyError,
    ReceiptKeys,
    format_code,
    new_receipt_number,
    normalize_code,
    valid_receipt_number,
)
from gateway.payments.setup import receipt_keys
from gateway.settings import Settings, SettingsError

KEY_A = "a1:" + base64.urlsafe_b64encode(b"A" * 32).decode().rstrip("=")
KEY_B = "b2:" + base64.urlsafe_b64encode(b"B" * 32).decode().rstrip("=")
FIELDS = ReceiptFields(
    "R20260601-7KQ2M9XD", "payment", "2026-00000001-1", datetime(2026, 6, 1, 1, 2, 3, tzinfo=timezone.utc),
    1_010_100, 1_000_000, 10_100, "pi_123",
)  # fmt: skip


def test_numbers_carry_the_jst_date_of_payment() -> None:
    # 2026-05-31 16:30 UTC is already 1 June in Japan.
    number = new_receipt_number(datetime(2026, 5, 31, 16, 30, tzinfo=timezone.utc))
    assert re.fullmatch(r"R20260601-[0-9A-HJKMNP-TV-Z]{8}", number) and valid_receipt_number(number)
    assert len({new_receipt_number(FIELDS.paid_at) for _ in range(200)}) == 200
    for bad in ("R2026-0601", "r20260601-7KQ2M9XD", "R20260601-7KQ2M9XU", 12):
        assert not valid_receipt_number(bad)


def test_a_code_verifies_its_fields_in_any_typed_form_and_under_rotation() -> None:
    old = ReceiptKeys.from_config(KEY_A)
    code = old.code(FIELDS)
    assert re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{16}", code)
    rotated = ReceiptKeys.from_config(f"{KEY_B},{KEY_A}")
    assert rotated.active == "b2" and rotated.code(FIELDS) != code
    for typed in (code, code.lower(), format_code(code), " " + format_code(code).lower() + " "):
        assert rotated.verify(FIELDS, "a1", typed)
    assert not rotated.verify(FIELDS, "b2", code)
    assert not ReceiptKeys.from_config(KEY_B).verify(FIELDS, "a1", code)  # the key is gone


@given(st.sampled_from(["amount", "principal", "late_fee"]), st.integers(1, 1000))
def test_changing_any_amount_breaks_the_code(name: str, delta: int) -> None:
    keys = ReceiptKeys.from_config(KEY_A)
    code = keys.code(FIELDS)
    from dataclasses import replace

    assert not keys.verify(replace(FIELDS, **{name: getattr(FIELDS, name) + delta}), "a1", code)


def test_look_alike_characters_are_forgiven() -> None:
    assert normalize_code("oil-0-1") == "01101"


@pytest.mark.parametrize(
    "config", ["", "nokey", "a1:short", "a1:" + "!" * 43, f"{KEY_A},{KEY_A}", "bad id!:" + KEY_A.split(":")[1]]
)
def test_bad_key_configurations_are_refused(config: str) -> None:
    with pytest.raises(ReceiptKeyError):
        ReceiptKeys.from_config(config)
    if config:
        with pytest.raises(SettingsError) as refused:
            receipt_keys(Settings(receipt_keys=config))
        assert str(refused.value).startswith("NOFU_RECEIPT_KEYS")


def test_keys_are_derived_from_the_pii_keys_when_none_are_given(tmp_path: object) -> None:
    pii = "k1:" + base64.urlsafe_b64encode(b"P" * 32).decode().rstrip("=")
    derived = receipt_keys(Settings(pii_keys=pii, qr_signing_keys="q:x", dev_keys_file=f"{tmp_path}/k.env"))
    again = ReceiptKeys.derived(pii)
    assert derived.active == "p-k1" and derived.code(FIELDS) == again.code(FIELDS)
    assert derived.keys["p-k1"] != base64.urlsafe_b64decode(pii.split(":")[1] + "=")
