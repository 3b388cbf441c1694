from __future__ import annotations

import base64
import time
from datetime import UTC, datetime

import pytest
import standardwebhooks

from app.webhooks.signing import (
    SignatureError,
    generate_secret,
    sign,
    signed_headers,
    verify,
)

BODY = b'{"type":"anomaly.detected","series":"cpu","score":4.2}'
NOW = 1_700_000_000.0
MSG_ID = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"


@pytest.fixture
def secret() -> str:
    return generate_secret()


def test_generate_secret_format(secret: str) -> None:
    assert secret.startswith("whsec_")
    assert 24 <= len(base64.b64decode(secret.removeprefix("whsec_"))) <= 32
    assert generate_secret() != secret


def test_sign_known_vector() -> None:
    # Example from the Standard Webhooks reference test suite.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    signature = sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}')
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_round_trip(secret: str) -> None:
    headers = signed_headers(secret, MSG_ID, BODY, now=NOW)
    assert headers["webhook-timestamp"] == str(int(NOW))
    assert headers["webhook-signature"] == sign(secret, MSG_ID, int(NOW), BODY)
    assert verify([secret], headers, BODY, now=NOW) == MSG_ID


def test_reference_library_accepts_our_headers(secret: str) -> None:
    headers = signed_headers(secret, MSG_ID, BODY)
    assert standardwebhooks.Webhook(secret).verify(BODY, headers) == {
        "type": "anomaly.detected",
        "series": "cpu",
        "score": 4.2,
    }


def test_we_accept_reference_library_signature(secret: str) -> None:
    timestamp = int(time.time())
    signature = standardwebhooks.Webhook(secret).sign(
        MSG_ID, datetime.fromtimestamp(timestamp, tz=UTC), BODY.decode()
    )
    headers = {"webhook-id": MSG_ID, "webhook-timestamp": str(timestamp), "webhook-signature": signature}
    assert verify([secret], headers, BODY) == MSG_ID


def test_header_lookup_is_case_insensitive(secret: str) -> None:
    headers = {k.upper(): v for k, v in signed_headers(secret, MSG_ID, BODY, now=NOW).items()}
    assert verify([secret], headers, BODY, now=NOW) == MSG_ID


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_header_is_named(secret: str, missing: str) -> None:
    headers = signed_headers(secret, MSG_ID, BODY, now=NOW)
    del headers[missing]
    with pytest.raises(SignatureError, match=missing) as info:
        verify([secret], headers, BODY, now=NOW)
    assert info.value.code == "missing_header"


def test_wrong_secret(secret: str) -> None:
    headers = signed_headers(secret, MSG_ID, BODY, now=NOW)
    with pytest.raises(SignatureError) as info:
        verify([generate_secret()], headers, BODY, now=NOW)
    assert info.value.code == "no_match"


@pytest.mark.parametrize("index", [0, 1, len(BODY) // 2, len(BODY) - 1])
def test_any_changed_body_byte_fails(secret: str, index: int) -> None:
    headers = signed_headers(secret, MSG_ID, BODY, now=NOW)
    tampered = bytearray(BODY)
    tampered[index] ^= 0x01
    with pytest.raises(SignatureError, match="no matching signature"):
        verify([secret], headers, bytes(tampered), now=NOW)


def test_changed_id_fails(secret: str) -> None:
    headers = signed_headers(secret, MSG_ID, BODY, now=NOW)
    headers["webhook-id"] = MSG_ID + "x"
    with pytest.raises(SignatureError, match="no matching signature"):
        verify([secret], headers, BODY, now=NOW)


@pytest.mark.parametrize(
    ("offset", "code"),
    [(-301, "timestamp_too_old"), (301, "timestamp_too_new"), (-299, None), (299, None), (300, None)],
)
def test_timestamp_tolerance(secret: str, offset: int, code: str | None) -> None:
    headers = signed_headers(secret, MSG_ID, BODY, now=NOW + offset)
    if code is None:
        assert verify([secret], headers, BODY, now=NOW) == MSG_ID
        return
    with pytest.raises(SignatureError) as info:
        verify([secret], headers, BODY, now=NOW)
    assert info.value.code == code


@pytest.mark.parametrize("value", ["abc", "1.7e9", "-1", "１７００００００００"])
def test_bad_timestamp(secret: str, value: str) -> None:
    headers = signed_headers(secret, MSG_ID, BODY, now=NOW)
    headers["webhook-timestamp"] = value
    with pytest.raises(SignatureError) as info:
        verify([secret], headers, BODY, now=NOW)
    assert info.value.code == "invalid_timestamp"


def test_rotation_old_secret_still_accepted(secret: str) -> None:
    new = generate_secret()
    headers = signed_headers(secret, MSG_ID, BODY, now=NOW)
    assert verify([new, secret], headers, BODY, now=NOW) == MSG_ID


def test_multiple_signatures_in_header(secret: str) -> None:
    headers = signed_headers(secret, MSG_ID, BODY, now=NOW)
    bad = "v1," + base64.b64encode(b"\0" * 32).decode()
    headers["webhook-signature"] = f"{bad} v1a,whatever garbage {headers['webhook-signature']}"
    assert verify([secret], headers, BODY, now=NOW) == MSG_ID


@pytest.mark.parametrize("bad_secret", ["whsec_", "whsec_!!!!", "not base64 at all"])
def test_bad_secret_is_config_error(bad_secret: str) -> None:
    with pytest.raises(ValueError):
        sign(bad_secret, MSG_ID, int(NOW), BODY)


def test_secrets_must_be_a_sequence(secret: str) -> None:
    headers = signed_headers(secret, MSG_ID, BODY, now=NOW)
    with pytest.raises(TypeError):
        verify(secret, headers, BODY, now=NOW)
    with pytest.raises(ValueError):
        verify([], headers, BODY, now=NOW)


@pytest.mark.parametrize("msg_id", ["", "a\r\nX-Injected: 1", "has space"])
def test_bad_message_id(secret: str, msg_id: str) -> None:
    with pytest.raises(ValueError):
        signed_headers(secret, msg_id, BODY, now=NOW)
