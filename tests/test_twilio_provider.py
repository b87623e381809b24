"""The Twilio provider, driving the real ``twilio`` client against the fake API on loopback."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl

import pytest
from structlog.testing import capture_logs

from dispatcher.errors import MessageNotFound, ProviderUnavailable
from dispatcher.providers import (
    Accepted,
    ErrorAction,
    Failed,
    Match,
    MessageStatus,
    SendRequest,
    StatusReport,
)
from dispatcher.providers.classification import TWILIO_ERRORS
from dispatcher.providers.credentials import Secret, TwilioCredentials
from dispatcher.providers.twilio_provider import RoutedHttpClient, TwilioProvider

from .fake_twilio import FakeTwilio, Fault

TO = "+15551234567"
FROM = "+15557654321"


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    with FakeTwilio() as server:
        yield server


@pytest.fixture
def provider(fake: FakeTwilio) -> Iterator[TwilioProvider]:
    p = TwilioProvider(fake.credentials, base_url=fake.base_url, timeout=0.5)
    yield p
    p.close()


def request(
    ref: str = "row-1", body: str = "Your order is ready", **changes: object
) -> SendRequest:
    values: dict[str, object] = {
        "correlation_id": ref,
        "to": TO,
        "from_": FROM,
        "body": body,
    }
    values.update(changes)
    return SendRequest(**values)  # type: ignore[arg-type]


def test_send_builds_twilios_form_fields(
    fake: FakeTwilio, provider: TwilioProvider
) -> None:
    result = provider.send(
        request(
            media_urls=("https://media.example/a.png", "https://media.example/b.png"),
            status_callback="https://dispatcher.example/twilio/status?v=1",
            validity_period=300,
        )
    )
    assert isinstance(result, Accepted)
    assert result.status is MessageStatus.QUEUED
    assert result.sid.startswith("SM")
    assert len(result.sid) == 34
    [sent] = fake.messages
    assert (sent.sid, sent.to, sent.from_, sent.body) == (
        result.sid,
        TO,
        FROM,
        "Your order is ready",
    )
    assert sent.media_urls == [
        "https://media.example/a.png",
        "https://media.example/b.png",
    ]
    assert (
        sent.status_callback
        == "https://dispatcher.example/twilio/status?v=1&dispatcher_ref=row-1"
    )
    assert sent.validity_period == 300
    assert fake.requests == [
        ("POST", f"/2010-04-01/Accounts/{fake.account_sid}/Messages.json")
    ]


def test_optional_fields_are_left_out(
    fake: FakeTwilio, provider: TwilioProvider
) -> None:
    assert isinstance(provider.send(request()), Accepted)
    [sent] = fake.messages
    assert (sent.status_callback, sent.validity_period, sent.media_urls) == (
        None,
        None,
        [],
    )
    assert sent.correlation_id is None


def test_media_only_message(fake: FakeTwilio, provider: TwilioProvider) -> None:
    result = provider.send(
        request(body="", media_urls=("https://media.example/a.png",))
    )
    assert isinstance(result, Accepted)


def test_wrong_token_is_an_unclassified_failure(fake: FakeTwilio) -> None:
    wrong = TwilioCredentials(fake.account_sid, Secret("not-the-token"))
    p = TwilioProvider(wrong, base_url=fake.base_url, timeout=0.5)
    result = p.send(request())
    p.close()
    assert isinstance(result, Failed)
    assert (result.error.code, result.error.http_status) == (20003, 401)
    assert result.error.action is ErrorAction.UNCLASSIFIED
    assert fake.messages == []


@pytest.mark.parametrize("code", sorted(TWILIO_ERRORS))
def test_every_error_code_is_classified(
    code: int, fake: FakeTwilio, provider: TwilioProvider
) -> None:
    fake.error_for_to[TO] = code
    result = provider.send(request())
    assert isinstance(result, Failed)
    assert result.error.code == code
    assert result.error.action is TWILIO_ERRORS[code][0]
    assert not result.error.may_have_been_sent
    assert TO not in result.detail  # the fake's message names the number; it is masked


def test_429_is_safe_to_retry_and_5xx_may_have_been_sent(
    fake: FakeTwilio, provider: TwilioProvider
) -> None:
    fake.inject(Fault.rate_limited(), Fault.http(503), Fault.http(500, code=20500))
    limited, unavailable, internal = (provider.send(request()) for _ in range(3))
    assert isinstance(limited, Failed)
    assert isinstance(unavailable, Failed)
    assert isinstance(internal, Failed)
    assert limited.error.action is ErrorAction.RETRY_WITH_BACKOFF
    assert not limited.error.may_have_been_sent
    assert (unavailable.error.http_status, unavailable.error.code) == (503, None)
    assert unavailable.error.action is ErrorAction.RETRY_WITH_BACKOFF
    assert unavailable.error.may_have_been_sent
    assert internal.error.may_have_been_sent
    assert fake.messages == []


@pytest.mark.parametrize(
    "fault",
    [Fault.timeout_after_accept(3), Fault.drop_after_accept()],
    ids=["timeout", "drop"],
)
def test_a_lost_answer_is_outcome_unknown_and_reconciliation_finds_the_message(
    fault: Fault, fake: FakeTwilio, provider: TwilioProvider
) -> None:
    attempted = dt.datetime.now(dt.UTC)
    fake.inject(fault)
    r = request(status_callback="https://dispatcher.example/status")
    result = provider.send(r)
    assert isinstance(result, Failed)
    assert result.error.action is ErrorAction.OUTCOME_UNKNOWN
    assert result.error.may_have_been_sent

    found = provider.find(r, attempted_at=attempted)
    assert found.match is Match.FOUND
    assert found.message is not None
    assert found.message.sid == fake.messages[0].sid
    # The pipeline settles with that SID instead of resending: one message, not two.
    assert fake.sends_for("row-1") == 1


def test_a_connection_dropped_before_acceptance_is_not_found_and_a_resend_is_single(
    fake: FakeTwilio, provider: TwilioProvider
) -> None:
    attempted = dt.datetime.now(dt.UTC)
    fake.inject(Fault.drop_before_accept())
    r = request(status_callback="https://dispatcher.example/status")
    first = provider.send(r)
    assert isinstance(first, Failed)
    assert first.error.action is ErrorAction.OUTCOME_UNKNOWN
    assert provider.find(r, attempted_at=attempted).match is Match.NOT_FOUND
    assert isinstance(provider.send(r), Accepted)
    assert fake.sends_for("row-1") == 1


def test_connection_refused_is_never_sent() -> None:
    with FakeTwilio() as gone:
        credentials, url = gone.credentials, gone.base_url
    p = TwilioProvider(credentials, base_url=url, timeout=0.5)
    result = p.send(request())
    assert isinstance(result, Failed)
    assert result.error.action is ErrorAction.RETRY_WITH_BACKOFF
    assert not result.error.may_have_been_sent
    with pytest.raises(ProviderUnavailable):
        p.find(request(), attempted_at=dt.datetime.now(dt.UTC))
    with pytest.raises(ProviderUnavailable):
        p.fetch("SM" + "0" * 32)
    p.close()


def test_find_matches_body_time_and_skips_settled_sids(
    fake: FakeTwilio, provider: TwilioProvider
) -> None:
    before = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    first = provider.send(request("a", body="Order 1 is ready"))
    provider.send(request("b", body="Order 2 is ready"))
    provider.send(request("c", body="Order 1 is ready", to="+15550000001"))
    assert isinstance(first, Accepted)

    found = provider.find(request("a", body="Order 1 is ready"), attempted_at=before)
    assert found.match is Match.FOUND
    assert found.message is not None
    assert found.message.sid == first.sid
    assert found.message.body == "Order 1 is ready"

    settled = provider.find(
        request("a", body="Order 1 is ready"),
        attempted_at=before,
        exclude_sids={first.sid},
    )
    assert settled.match is Match.NOT_FOUND
    later = provider.find(
        request("a", body="Order 1 is ready"),
        attempted_at=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=10),
    )
    assert later.match is Match.NOT_FOUND


def test_find_reports_ambiguity_instead_of_guessing(
    fake: FakeTwilio, provider: TwilioProvider
) -> None:
    before = dt.datetime.now(dt.UTC)
    for _ in range(2):
        provider.send(request(body="Same words"))
    result = provider.find(request(body="Same words"), attempted_at=before)
    assert result.match is Match.AMBIGUOUS
    assert set(result.candidates) == {m.sid for m in fake.messages}


def test_find_reads_past_the_first_page(
    fake: FakeTwilio, provider: TwilioProvider
) -> None:
    before = dt.datetime.now(dt.UTC)
    target = provider.send(request(body="The one"))
    for i in range(60):
        provider.send(request(body=f"Filler {i}"))
    assert isinstance(target, Accepted)
    found = provider.find(request(body="The one"), attempted_at=before)
    assert found.match is Match.FOUND
    assert found.message is not None
    assert found.message.sid == target.sid
    pages = [path for method, path in fake.requests if method == "GET"]
    assert len(pages) == 2


def test_fetch(fake: FakeTwilio, provider: TwilioProvider) -> None:
    sent = provider.send(request())
    assert isinstance(sent, Accepted)
    info = provider.fetch(sent.sid)
    assert (info.sid, info.status, info.to, info.from_) == (
        sent.sid,
        MessageStatus.QUEUED,
        TO,
        FROM,
    )
    assert TO not in repr(info)
    with pytest.raises(MessageNotFound, match="SM0000"):
        provider.fetch("SM" + "0" * 32)


def test_routed_client_keeps_path_and_query() -> None:
    client = RoutedHttpClient("http://127.0.0.1:9/prefix/", timeout=1)
    assert (
        client.route(
            "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json?To=%2B1"
        )
        == "http://127.0.0.1:9/prefix/2010-04-01/Accounts/AC1/Messages.json?To=%2B1"
    )
    assert (
        RoutedHttpClient(None).route("https://api.twilio.com/x")
        == "https://api.twilio.com/x"
    )
    client.session.close()
    RoutedHttpClient(None).session.close()


def test_logs_and_reprs_never_show_a_number_or_the_token(
    fake: FakeTwilio, provider: TwilioProvider
) -> None:
    fake.error_for_to["+15550000002"] = 21211
    with capture_logs() as logs:
        provider.send(request())
        provider.send(request(to="+15550000002"))
        provider.find(
            request(), attempted_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
        )
    text = repr(logs) + repr(provider) + repr(request()) + repr(fake.credentials)
    assert len(logs) == 2
    for secret in (TO, FROM, "+15550000002", fake.auth_token, "Your order is ready"):
        assert secret not in text
    assert logs[0]["event"] == "provider_send"
    assert logs[0]["to"] == "+•••••••••67"


class _Receiver(BaseHTTPRequestHandler):
    received: list[tuple[str, dict[str, str], str]]

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        form = dict(parse_qsl(self.rfile.read(length).decode()))
        self.received.append((self.path, form, self.headers["X-Twilio-Signature"]))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


def test_status_callbacks_carry_the_correlation_id_and_a_valid_signature(
    fake: FakeTwilio, provider: TwilioProvider
) -> None:
    handler = type("Receiver", (_Receiver,), {"received": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        sent = provider.send(request(status_callback=f"{base}/twilio/status"))
        assert isinstance(sent, Accepted)
        assert fake.deliver(sent.sid, "undelivered", error_code=30003) == 204
    finally:
        server.shutdown()
        server.server_close()
    [(path, form, signature)] = handler.received
    url = base + path
    assert provider.signature_is_valid(url, form, signature)
    assert not provider.signature_is_valid(url + "x", form, signature)
    report = StatusReport.from_callback(url, form)
    assert (report.sid, report.status, report.error_code) == (
        sent.sid,
        MessageStatus.UNDELIVERED,
        30003,
    )
    assert report.correlation_id == "row-1"
    assert report.account_sid == fake.account_sid
