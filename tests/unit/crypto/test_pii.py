import base64
import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from invoices.pii import (
    PiiCipher,
    PiiConfigError,
    PiiDecryptError,
    PiiUnknownKeyError,
    Redacted,
    generate_key,
)

K1 = "k1:" + base64.urlsafe_b64encode(bytes(range(32))).decode().rstrip("=")
K2 = "k2:" + base64.urlsafe_b64encode(bytes(range(32, 64))).decode().rstrip("=")
OLD = PiiCipher.from_config(K1)
NEW = PiiCipher.from_config(f"{K2},{K1}")
AAD = b"invoice:42:payer_name"
NAME = "山田 太郎"


def test_round_trip_japanese_text() -> None:
    blob = NEW.encrypt(NAME, AAD)
    assert NEW.decrypt(blob, AAD) == NAME


@given(st.text(), st.binary(max_size=64))
def test_round_trip_any_text_and_aad(text: str, aad: bytes) -> None:
    assert NEW.decrypt(NEW.encrypt(text, aad), aad) == text


def test_blob_is_ascii_and_carries_key_id_and_nonce() -> None:
    blob = NEW.encrypt(NAME, AAD)
    version, key_id, body = blob.split(".")
    assert (version, key_id) == ("v1", "k2")
    assert blob.isascii() and NAME not in blob
    raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    assert len(raw) == 12 + len(NAME.encode()) + 16


def test_encryption_uses_fresh_nonces() -> None:
    blobs = {NEW.encrypt(NAME, AAD) for _ in range(50)}
    nonces = {b.split(".")[2][:16] for b in blobs}
    assert len(blobs) == 50 and len(nonces) == 50


def test_wrong_aad_is_refused() -> None:
    blob = NEW.encrypt(NAME, AAD)
    for other in (b"invoice:43:payer_name", b"invoice:42:payer_address", b""):
        with pytest.raises(PiiDecryptError) as err:
            NEW.decrypt(blob, other)
        assert err.value.code == "pii.decrypt_failed"


def test_tampered_blob_is_refused() -> None:
    blob = NEW.encrypt(NAME, AAD)
    version, key_id, body = blob.split(".")
    raw = bytearray(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    for index in (0, 12, len(raw) - 1):  # nonce, ciphertext, tag
        altered = bytearray(raw)
        altered[index] ^= 1
        forged = f"{version}.{key_id}." + base64.urlsafe_b64encode(altered).decode().rstrip("=")
        with pytest.raises(PiiDecryptError):
            NEW.decrypt(forged, AAD)


def test_relabelled_key_id_is_refused() -> None:
    # Same key material under two ids: the header is authenticated, so relabelling fails.
    twin = PiiCipher.from_config(f"{K2},k9:{K2.split(':')[1]}")
    blob = twin.encrypt(NAME, AAD)
    with pytest.raises(PiiDecryptError):
        twin.decrypt(blob.replace("v1.k2.", "v1.k9."), AAD)


@pytest.mark.parametrize(
    "blob",
    [
        "",
        "v1.k2",
        "v2.k2.AAAA",
        "v1..AAAA",
        "v1.k2.AAAA.extra",
        "v1.k2.!!!!",
        "v1.k2.A",
        "v1.k2." + "A" * 20,  # shorter than nonce + tag
        "v1.k2.AAAA=",
    ],
)
def test_malformed_blobs_are_refused(blob: str) -> None:
    with pytest.raises(PiiDecryptError) as err:
        NEW.decrypt(blob, AAD)
    assert err.value.code == "pii.decrypt_failed"


@given(st.text(max_size=120))
def test_arbitrary_text_only_raises_pii_errors(text: str) -> None:
    with pytest.raises((PiiDecryptError, PiiUnknownKeyError)):
        NEW.decrypt(text, AAD)


def test_unknown_key_is_refused() -> None:
    blob = NEW.encrypt(NAME, AAD)
    with pytest.raises(PiiUnknownKeyError) as err:
        OLD.decrypt(blob, AAD)
    assert err.value.code == "pii.unknown_key"


def test_rotation_reads_old_and_moves_to_active_key() -> None:
    old_blob = OLD.encrypt(NAME, AAD)
    assert NEW.needs_reencrypt(old_blob)
    assert NEW.decrypt(old_blob, AAD) == NAME
    moved = NEW.reencrypt(old_blob, AAD)
    assert moved.startswith("v1.k2.") and not NEW.needs_reencrypt(moved)
    assert NEW.decrypt(moved, AAD) == NAME
    # Once every blob moved, the old key can be dropped.
    assert PiiCipher.from_config(K2).decrypt(moved, AAD) == NAME


def test_reencrypt_of_current_blob_is_a_no_op_but_still_authenticates() -> None:
    blob = NEW.encrypt(NAME, AAD)
    assert NEW.reencrypt(blob, AAD) == blob
    with pytest.raises(PiiDecryptError):
        NEW.reencrypt(blob, b"invoice:43:payer_name")


def test_reencrypt_refuses_wrong_aad_on_old_blob() -> None:
    with pytest.raises(PiiDecryptError):
        NEW.reencrypt(OLD.encrypt(NAME, AAD), b"other")


def test_needs_reencrypt_refuses_malformed_blob() -> None:
    with pytest.raises(PiiDecryptError):
        NEW.needs_reencrypt("not a blob")


def test_generate_key_entry_is_usable() -> None:
    entry = generate_key("k3")
    cipher = PiiCipher.from_config(f"{entry},{K2}")
    assert cipher.active_key_id == "k3"
    assert cipher.decrypt(cipher.encrypt(NAME, AAD), AAD) == NAME
    assert generate_key("k3") != entry


def test_config_accepts_standard_padded_base64() -> None:
    standard = base64.b64encode(bytes(range(32, 64))).decode()
    cipher = PiiCipher.from_config(f" k2 : {standard} ")
    assert cipher.decrypt(NEW.encrypt(NAME, AAD), AAD) == NAME


@pytest.mark.parametrize(
    "config",
    [
        "",
        " , ",
        "k2",
        "k2:" + base64.b64encode(bytes(16)).decode(),  # AES-128 size: refused, we want 256
        "k2:***",
        "k.2:" + base64.b64encode(bytes(32)).decode(),  # '.' would break the blob format
        f"{K1},{K1}",
    ],
)
def test_bad_config_is_refused(config: str) -> None:
    with pytest.raises(PiiConfigError) as err:
        PiiCipher.from_config(config)
    assert err.value.code == "pii.bad_config"


def test_generate_key_refuses_bad_key_id() -> None:
    with pytest.raises(PiiConfigError):
        generate_key("a.b")


def test_errors_do_not_echo_plaintext_or_keys() -> None:
    blob = NEW.encrypt(NAME, AAD)
    with pytest.raises(PiiDecryptError) as err:
        NEW.decrypt(blob, b"x")
    assert NAME not in str(err.value) and K2.split(":")[1] not in str(err.value)


def test_redacted_never_prints_the_value(caplog: pytest.LogCaptureFixture) -> None:
    name = Redacted(NAME)
    assert repr(name) == str(name) == f"{name}" == f"{name!r}" == f"{name:>10}" == "***"
    assert NAME not in repr({"payer": name}) and NAME not in repr([name])
    with caplog.at_level(logging.INFO):
        logging.getLogger("nofu.test").info("payer %s / %r", name, name)
    assert NAME not in caplog.text and "payer *** / ***" in caplog.text
    assert name.reveal() == NAME


def test_redacted_is_immutable_and_compares_by_value() -> None:
    name = Redacted(NAME)
    assert name == Redacted(NAME) and name != Redacted("other")
    with pytest.raises(AttributeError):
        name._value = "x"  # type: ignore[misc]
