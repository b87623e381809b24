"""A fake Twilio REST API on loopback, for tests that drive the real ``twilio`` client.

It checks requests as Twilio does (basic auth, the account in the path, required fields,
E.164 numbers, Body or MediaUrl, the body's length, ValidityPeriod 1-36000), answers with
Twilio-shaped JSON, records every accepted message, and injects faults: an HTTP error (5xx,
429 with code 20429), a given error code per To number, and the two ways an answer gets
lost after the message was accepted (the server sleeps past the client's timeout, or drops
the connection). Messages can be listed (newest first, paged) and fetched, and status
callbacks can be POSTed, signed as Twilio signs them.

    with FakeTwilio() as fake:
        provider = TwilioProvider(fake.credentials, base_url=fake.base_url, timeout=1)
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import email.utils
import hashlib
import hmac
import itertools
import json
import random
import re
import secrets
import socket
import sys
import threading
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit

from dispatcher.providers.credentials import Secret, TwilioCredentials

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "fake-auth-token-0123456789"
E164 = re.compile(r"\+[1-9][0-9]{6,14}")
SHORT_CODE = re.compile(r"[0-9]{5,6}")
API = "/2010-04-01/Accounts/"
CORRELATION_PARAM = "dispatcher_ref"


@dataclass(frozen=True)
class Fault:
    """What the next create request meets, instead of a plain success.

    ``kind``: ``"http"`` answers ``status`` with ``code`` and records nothing;
    ``"sleep_after_accept"`` records the message and answers after ``seconds``;
    ``"drop_after_accept"`` records the message and closes the connection unanswered;
    ``"drop_before_accept"`` closes the connection and records nothing.
    """

    kind: str
    status: int = 500
    code: int | None = None
    seconds: float = 5.0

    @classmethod
    def http(cls, status: int, code: int | None = None) -> Fault:
        return cls("http", status=status, code=code)

    @classmethod
    def rate_limited(cls) -> Fault:
        return cls("http", status=429, code=20429)

    @classmethod
    def timeout_after_accept(cls, seconds: float = 5.0) -> Fault:
        return cls("sleep_after_accept", seconds=seconds)

    @classmethod
    def drop_after_accept(cls) -> Fault:
        return cls("drop_after_accept")

    @classmethod
    def drop_before_accept(cls) -> Fault:
        return cls("drop_before_accept")


class RandomFaults:
    """Faults drawn at random for create requests that find no queued fault.

    ``rates`` pairs a probability with the fault it stands for; whatever is left of 1 is
    a plain success. Seeded, so a failing run can be replayed.
    """

    def __init__(self, rates: Sequence[tuple[float, Fault]], seed: int = 0) -> None:
        if sum(p for p, _ in rates) > 1:
            raise ValueError("fault rates add up to more than 1")
        self.rates = list(rates)
        self._rng = random.Random(seed)
        self.drawn: dict[str, int] = {}

    def draw(self) -> Fault | None:
        roll = self._rng.random()
        for probability, fault in self.rates:
            if roll < probability:
                key = (
                    f"{fault.kind}:{fault.status}"
                    if fault.kind == "http"
                    else fault.kind
                )
                self.drawn[key] = self.drawn.get(key, 0) + 1
                return fault
            roll -= probability
        return None


@dataclass
class FakeMessage:
    sid: str
    to: str
    from_: str
    body: str
    media_urls: list[str]
    status_callback: str | None
    validity_period: int | None
    date_created: dt.datetime
    status: str = "queued"
    error_code: int | None = None
    order: int = 0
    correlation_id: str | None = field(default=None)
    arrived: float = 0.0
    """``time.time()`` when the create request was accepted, to the microsecond."""

    def to_json(self, account_sid: str) -> dict[str, Any]:
        uri = f"{API}{account_sid}/Messages/{self.sid}.json"
        return {
            "account_sid": account_sid,
            "api_version": "2010-04-01",
            "body": self.body,
            "date_created": email.utils.format_datetime(self.date_created),
            "date_sent": None,
            "date_updated": email.utils.format_datetime(self.date_created),
            "direction": "outbound-api",
            "error_code": self.error_code,
            "error_message": None,
            "from": self.from_,
            "messaging_service_sid": None,
            "num_media": str(len(self.media_urls)),
            "num_segments": "1" if not self.body else str(-(-len(self.body) // 153)),
            "price": None,
            "price_unit": "USD",
            "sid": self.sid,
            "status": self.status,
            "subresource_uris": {"media": uri.replace(".json", "/Media.json")},
            "to": self.to,
            "uri": uri,
        }


class FakeTwilio:
    """The fake API; start it with ``with`` or :meth:`start`. Thread-safe."""

    def __init__(
        self,
        account_sid: str = ACCOUNT_SID,
        auth_token: str = AUTH_TOKEN,
        latency: float = 0.0,
    ) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        # Seconds a create request takes to be answered, as Twilio's API takes some
        # (benchmarks use it; the message counts as accepted once answered).
        self.latency = latency
        # Create requests being answered now, and the most there ever were at once.
        self.in_flight = 0
        self.most_in_flight = 0
        self.messages: list[FakeMessage] = []
        self.faults: list[Fault] = []
        self.random_faults: RandomFaults | None = None
        self.error_for_to: dict[str, int] = {}
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self._release = threading.Event()
        self._order = itertools.count()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # Lifecycle.

    def start(self) -> FakeTwilio:
        handler = type("Handler", (_Handler,), {"fake": self})
        server = _Server(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        server.block_on_close = False
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()  # wake handlers sleeping past a client's timeout
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> FakeTwilio:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._server is not None, "start the fake first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def credentials(self) -> TwilioCredentials:
        return TwilioCredentials(self.account_sid, Secret(self.auth_token))

    # What tests look at.

    def inject(self, *faults: Fault) -> None:
        """Queue faults for the next create requests, one each, in order."""
        with self.lock:
            self.faults.extend(faults)

    def sends_by_body(self) -> dict[str, int]:
        """How many accepted messages carry each body (tests give each message its own)."""
        with self.lock:
            counts: dict[str, int] = {}
            for m in self.messages:
                counts[m.body] = counts.get(m.body, 0) + 1
            return counts

    def sends_for(self, correlation_id: str) -> int:
        with self.lock:
            return sum(m.correlation_id == correlation_id for m in self.messages)

    def message(self, sid: str) -> FakeMessage:
        with self.lock:
            return next(m for m in self.messages if m.sid == sid)

    def deliver(self, sid: str, status: str, error_code: int | None = None) -> int:
        """POST a status callback for ``sid`` to its StatusCallback URL, signed.

        Returns the HTTP status of the answer.
        """
        with self.lock:
            message = next(m for m in self.messages if m.sid == sid)
            message.status = status
            message.error_code = error_code
        if message.status_callback is None:
            raise ValueError(f"{sid} has no status callback")
        form = {
            "AccountSid": self.account_sid,
            "ApiVersion": "2010-04-01",
            "From": message.from_,
            "MessageSid": sid,
            "MessageStatus": status,
            "SmsSid": sid,
            "SmsStatus": status,
            "To": message.to,
        }
        if error_code is not None:
            form["ErrorCode"] = str(error_code)
        request = urllib.request.Request(
            message.status_callback,
            data=urlencode(form).encode(),
            headers={
                "X-Twilio-Signature": sign(
                    self.auth_token, message.status_callback, form
                )
            },
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=5) as answer:
            return int(answer.status)


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet about clients that left: a client that timed out is a test's intent."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def sign(token: str, url: str, params: dict[str, str]) -> str:
    """Twilio's X-Twilio-Signature: HMAC-SHA1 of the URL and the sorted name+value pairs."""
    payload = url + "".join(k + params[k] for k in sorted(params))
    digest = hmac.new(token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def _error(status: int, code: int, message: str) -> dict[str, Any]:
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


class _Handler(BaseHTTPRequestHandler):
    fake: FakeTwilio
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes: without this, Nagle's algorithm and the
        # client's delayed ACK add 40 ms to every answer.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the test output is not the place for request lines."""

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_GET(self) -> None:
        self._dispatch("GET")

    def _dispatch(self, method: str) -> None:
        fake = self.fake
        parts = urlsplit(self.path)
        with fake.lock:
            fake.requests.append((method, parts.path))
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode() if length else ""
        if not self._authenticated():
            self._send(401, _error(401, 20003, "Authenticate"))
            return
        prefix = f"{API}{fake.account_sid}/Messages"
        if not parts.path.startswith(prefix):
            self._send(404, _error(404, 20404, "The requested resource was not found"))
            return
        rest = parts.path[len(prefix) :]
        if method == "POST" and rest == ".json":
            with fake.lock:
                fake.in_flight += 1
                fake.most_in_flight = max(fake.most_in_flight, fake.in_flight)
            try:
                self._create(parse_qs(raw, keep_blank_values=True))
            finally:
                with fake.lock:
                    fake.in_flight -= 1
        elif method == "GET" and rest == ".json":
            self._list(dict(parse_qsl(parts.query)))
        elif method == "GET" and re.fullmatch(r"/SM[0-9a-f]{32}\.json", rest):
            self._fetch(rest[1:-5])
        else:
            self._send(404, _error(404, 20404, "The requested resource was not found"))

    def _authenticated(self) -> bool:
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return hmac.compare_digest(
            f"{user}:{password}", f"{self.fake.account_sid}:{self.fake.auth_token}"
        )

    def _create(self, form: dict[str, list[str]]) -> None:
        fake = self.fake
        one = {k: v[0] for k, v in form.items()}
        problem = _validate(one, form.get("MediaUrl", []))
        if problem is not None:
            self._send(400, _error(400, *problem))
            return
        with fake.lock:
            if fake.faults:
                fault: Fault | None = fake.faults.pop(0)
            elif fake.random_faults is not None:
                fault = fake.random_faults.draw()
            else:
                fault = None
        if fault is not None and fault.kind == "http":
            code = fault.code if fault.code is not None else fault.status
            self._send(fault.status, _error(fault.status, code, "Injected fault"))
            return
        if fault is not None and fault.kind == "drop_before_accept":
            self._drop()
            return
        code = fake.error_for_to.get(one["To"])
        if code is not None:
            self._send(
                400, _error(400, code, f"Injected error {code} for To {one['To']}")
            )
            return

        callback = one.get("StatusCallback")
        message = FakeMessage(
            sid="SM" + secrets.token_hex(16),
            to=one["To"],
            from_=one["From"],
            body=one.get("Body", ""),
            media_urls=form.get("MediaUrl", []),
            status_callback=callback,
            validity_period=int(one["ValidityPeriod"])
            if "ValidityPeriod" in one
            else None,
            date_created=dt.datetime.now(dt.UTC).replace(microsecond=0),
            order=next(fake._order),
            arrived=time.time(),
            correlation_id=(
                dict(parse_qsl(urlsplit(callback).query)).get(CORRELATION_PARAM)
                if callback
                else None
            ),
        )
        with fake.lock:
            fake.messages.append(message)
        if fault is not None and fault.kind == "drop_after_accept":
            self._drop()
            return
        if fault is not None and fault.kind == "sleep_after_accept":
            fake._release.wait(fault.seconds)
        elif fake.latency:
            fake._release.wait(fake.latency)
        self._send(201, message.to_json(fake.account_sid))

    def _list(self, query: dict[str, str]) -> None:
        fake = self.fake
        page_size = min(int(query.get("PageSize", 50)), 1000)
        page = int(query.get("Page", 0))
        with fake.lock:
            chosen = [
                m
                for m in fake.messages
                if query.get("To") in (None, m.to)
                and query.get("From") in (None, m.from_)
            ]
        chosen.sort(key=lambda m: (m.date_created, m.order), reverse=True)
        window = chosen[page * page_size : (page + 1) * page_size]
        base = f"{API}{fake.account_sid}/Messages.json"
        filters = {k: query[k] for k in ("To", "From") if k in query}

        def page_uri(n: int) -> str:
            return base + "?" + urlencode({**filters, "PageSize": page_size, "Page": n})

        more = (page + 1) * page_size < len(chosen)
        self._send(
            200,
            {
                "messages": [m.to_json(fake.account_sid) for m in window],
                "end": page * page_size + len(window) - 1,
                "first_page_uri": page_uri(0),
                "next_page_uri": page_uri(page + 1) if more else None,
                "page": page,
                "page_size": page_size,
                "previous_page_uri": page_uri(page - 1) if page else None,
                "start": page * page_size,
                "uri": page_uri(page),
            },
        )

    def _fetch(self, sid: str) -> None:
        fake = self.fake
        with fake.lock:
            found = next((m for m in fake.messages if m.sid == sid), None)
        if found is None:
            self._send(
                404,
                _error(404, 20404, f"The requested resource {self.path} was not found"),
            )
            return
        self._send(200, found.to_json(fake.account_sid))

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


def _validate(one: dict[str, str], media: list[str]) -> tuple[int, str] | None:
    """The first problem Twilio would report, as (code, message), or None."""
    to, from_ = one.get("To"), one.get("From")
    if not to:
        return 21604, "A 'To' phone number is required."
    if not from_:
        return 21603, "A 'From' phone number is required."
    if not E164.fullmatch(to):
        return 21211, f"The 'To' number {to} is not a valid phone number."
    if not (E164.fullmatch(from_) or SHORT_CODE.fullmatch(from_)):
        return 21212, f"The 'From' number {from_} is not a valid phone number."
    if not one.get("Body") and not media:
        return 21602, "Message body is required."
    if len(one.get("Body", "")) > 1600:
        return 21617, "The concatenated message body exceeds the 1600 character limit."
    if len(media) > 10:
        return 21623, "Number of media files exceeds allowed limit."
    if "ValidityPeriod" in one:
        try:
            period = int(one["ValidityPeriod"])
        except ValueError:
            period = 0
        if not 1 <= period <= 36000:
            return 90007, "Invalid validity period value."
    callback = one.get("StatusCallback")
    if callback is not None and urlsplit(callback).scheme not in ("http", "https"):
        return 21609, "Invalid StatusCallback URL."
    return None
