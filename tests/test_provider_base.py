"""The values that cross the provider boundary, and the error classification table."""

from __future__ import annotations

import datetime as dt

import pytest

from dispatcher.config import Config, default_config
from dispatcher.errors import InvalidSendRequest, InvalidStatusCallback, MissingSecret
from dispatcher.providers import (
    ErrorAction,
    MessageStatus,
    SendRequest,
    StatusReport,
    classify,
    from_config,
    mask_phone,
)
from dispatcher.providers.base import correlation_of, scrub, with_correlation
from dispatcher.providers.credentials import Secret, TwilioCredentials

A = ErrorAction


@pytest.mark.parametrize(
    ("code", "status", "action"),
    [
        (20429, 429, A.RETRY_WITH_BACKOFF),
        (None, 503, A.RETRY_WITH_BACKOFF),
        (21611, 400, A.SLOW_DOWN_SENDER),
        (30001, None, A.SLOW_DOWN_SENDER),
        (30003, None, A.BOUNDED_RETRY),
        (30450, None, A.RETRY_AFTER_DELAY),
        (21610, 400, A.RECORD_OPT_OUT),
        (21614, 400, A.NOT_SMS_CAPABLE),
        (21635, 400, A.NOT_SMS_CAPABLE),
        (30005, None, A.NOT_SMS_CAPABLE),
        (30006, None, A.NOT_SMS_CAPABLE),
        (21211, 400, A.REJECT),
        (30007, None, A.ALERT),
        (30032, None, A.CONFIGURATION_BLOCK),
        (30034, None, A.CONFIGURATION_BLOCK),
        (21999, 400, A.UNCLASSIFIED),
        (None, None, A.UNCLASSIFIED),
    ],
)
def test_domain_error_table(
    code: int | None, status: int | None, action: ErrorAction
) -> None:
    assert classify(code, status).action is action


def test_classification_details() -> None:
    assert classify(30450).retry_after == dt.timedelta(minutes=30)
    assert classify(30003).max_attempts == 3
    assert classify(20429, 429).may_have_been_sent is False
    assert classify(None, 500).may_have_been_sent is True
    assert A.BOUNDED_RETRY.may_retry
    assert not A.RECORD_OPT_OUT.may_retry
    assert not A.OUTCOME_UNKNOWN.may_retry
    assert not A.UNCLASSIFIED.may_retry


def test_send_request_lists_every_problem_with_numbers_masked() -> None:
    with pytest.raises(InvalidSendRequest) as caught:
        SendRequest(
            "bad id!",
            "5551234567",
            "+1555",
            "",
            media_urls=("ftp://x",),
            status_callback="nope",
            validity_period=36001,
        )
    assert caught.value.problems == (
        "correlation_id: expected 1-64 of A-Z a-z 0-9 . _ -, got 'bad id!'",
        "to: expected an E.164 number, got '••••••••67'",
        "from_: expected an E.164 number or a short code, got '•••••'",
        "media_urls[0]: expected an http(s) URL, got 'ftp://x'",
        "status_callback: expected an http(s) URL, got 'nope'",
        "validity_period: expected 1-36000 seconds, got 36001",
    )
    assert "5551234567" not in str(caught.value)


def test_send_request_limits() -> None:
    with pytest.raises(InvalidSendRequest, match="a body or at least one media URL"):
        SendRequest("r", "+15551234567", "+15557654321")
    with pytest.raises(InvalidSendRequest, match="at most 1600 characters, got 1601"):
        SendRequest("r", "+15551234567", "+15557654321", "a" * 1601)
    with pytest.raises(InvalidSendRequest, match="at most 10, got 11"):
        SendRequest(
            "r", "+15551234567", "+15557654321", media_urls=("https://m/x",) * 11
        )
    assert SendRequest(
        "r", "+15551234567", "12345", "short code sender", validity_period=1
    )


def test_send_request_repr_hides_numbers_and_body() -> None:
    text = repr(SendRequest("r", "+15551234567", "+15557654321", "secret 123456"))
    assert "+15551234567" not in text
    assert "123456" not in text
    assert "body=<13 chars>" in text


def test_correlation_in_the_callback_url() -> None:
    url = with_correlation("https://x.example/s?a=1&dispatcher_ref=old", "row-7")
    assert url == "https://x.example/s?a=1&dispatcher_ref=row-7"
    assert correlation_of(url) == "row-7"
    assert correlation_of("https://x.example/s") is None


def test_status_only_moves_forward() -> None:
    S = MessageStatus
    assert S.SENT.advances(S.QUEUED)
    assert S.DELIVERED.advances(S.SENDING)
    assert not S.SENDING.advances(S.DELIVERED)
    assert not S.UNDELIVERED.advances(S.DELIVERED)
    assert S.READ.advances(S.DELIVERED)
    assert S.QUEUED.advances(None)
    assert S.FAILED.is_final
    assert S.FAILED.is_failure
    assert not S.SENT.is_final


def test_status_report_parsing_errors() -> None:
    good = {"MessageSid": "SM1", "MessageStatus": "sent", "ErrorCode": ""}
    assert StatusReport.from_callback("https://x/s", good).error_code is None
    with pytest.raises(InvalidStatusCallback, match="MessageSid is missing"):
        StatusReport.from_callback("https://x/s", {"MessageStatus": "sent"})
    with pytest.raises(
        InvalidStatusCallback, match="MessageStatus 'lost' is not one of"
    ):
        StatusReport.from_callback(
            "https://x/s", {"MessageSid": "SM1", "MessageStatus": "lost"}
        )
    with pytest.raises(
        InvalidStatusCallback, match="ErrorCode must be an integer, got 'x'"
    ):
        StatusReport.from_callback("https://x/s", {**good, "ErrorCode": "x"})


def test_masking() -> None:
    assert mask_phone("+15551234567") == "+•••••••••67"
    assert mask_phone("1234") == "••••"
    assert (
        scrub("The 'To' number +1 (555) 123-4567 is invalid")
        == "The 'To' number +•••••••••67 is invalid"
    )
    assert scrub("error 21211 at 12:00") == "error 21211 at 12:00"


def test_secret_never_prints() -> None:
    secret = Secret("tok-123")
    assert "tok-123" not in repr(secret) + str(secret) + f"{secret}"
    assert "tok-123" not in repr(TwilioCredentials("AC1", secret))
    assert secret.reveal() == "tok-123"
    assert secret == Secret("tok-123")
    assert hash(secret) == hash(Secret("tok-123"))


def _twilio_config() -> Config:
    base = default_config()
    return Config(
        rules=base.rules,
        data_dir=base.data_dir,
        database_url=None,
        platform_name="x",
        help_contact="x",
        log_format="console",
        log_level="info",
        provider="twilio",
        twilio={"account_sid_env": "MY_SID", "auth_token_env": "MY_TOKEN"},
    )


def test_missing_secret_names_the_variable_and_the_setting() -> None:
    with pytest.raises(MissingSecret) as caught:
        from_config(_twilio_config(), environ={"MY_SID": "AC1"})
    assert str(caught.value) == (
        "environment variable MY_TOKEN is not set; the config names it in "
        "provider.twilio.auth_token_env: export it, or point "
        "provider.twilio.auth_token_env at the variable that holds it"
    )


def test_twilio_from_config() -> None:
    provider = from_config(
        _twilio_config(),
        environ={"MY_SID": "AC1", "MY_TOKEN": "t0k3n"},
        api_base_url="http://127.0.0.1:9",
        timeout=0.5,
    )
    assert provider.name == "twilio"
    assert "t0k3n" not in repr(provider)
    provider.close()
