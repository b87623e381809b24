"""The Twilio provider: the only module that imports ``twilio``.

It drives the official client (``twilio`` 9.x) through :class:`RoutedHttpClient`, a subclass
of the client's HTTP client that can send every request to another base URL (a fake Twilio
API on loopback in the tests) and that sorts transport failures into "never sent" and
"may have been sent". The vendor's own request logging is switched off: it prints query
strings, which carry phone numbers when messages are listed.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Collection, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
import structlog
from twilio.base.exceptions import TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.request_validator import RequestValidator
from twilio.rest import Client
from urllib3.exceptions import ConnectTimeoutError

from ..errors import MessageNotFound, ProviderUnavailable
from . import classification
from .base import (
    Accepted,
    Failed,
    Match,
    MessageInfo,
    MessageStatus,
    Reconciliation,
    SendRequest,
    SendResult,
    mask_phone,
    scrub,
)
from .credentials import Secret, TwilioCredentials

log = structlog.get_logger("dispatcher.providers")

DEFAULT_TIMEOUT = 10.0
# Twilio's clock and ours disagree a little; look this far before the attempt.
CLOCK_SKEW = dt.timedelta(minutes=2)
# How many of the newest messages between the two numbers a search reads at most.
SEARCH_LIMIT = 200
# Trial accounts prefix every body with this; a search must still recognise the message.
TRIAL_PREFIX = "Sent from your Twilio trial account - "

_silent = logging.getLogger("dispatcher.providers.twilio_http")
_silent.addHandler(logging.NullHandler())
_silent.propagate = False


class _NotSent(Exception):
    """The connection was never made: the request cannot have reached Twilio."""


class _MaybeSent(Exception):
    """The request may have reached Twilio and its answer was lost."""


class RoutedHttpClient(TwilioHttpClient):  # type: ignore[misc]
    """The client's HTTP client, pointed at ``base_url`` (``None``: Twilio itself).

    Requests to ``https://api.twilio.com/2010-04-01/...`` go to
    ``{base_url}/2010-04-01/...``. No retries happen inside: a retry of a create call
    could send a message twice, so every retry is the pipeline's decision.
    """

    def __init__(self, base_url: str | None = None, timeout: float = DEFAULT_TIMEOUT):
        super().__init__(pool_connections=True, timeout=timeout, logger=_silent)
        self.base_url = base_url.rstrip("/") if base_url else None

    def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        try:
            response: Response = super().request(
                method,
                self.route(url),
                params=params,
                data=data,
                headers=headers,
                auth=auth,
                timeout=timeout,
                allow_redirects=allow_redirects,
            )
        except requests.ConnectTimeout as exc:
            raise _NotSent("connect timeout") from exc
        except requests.ConnectionError as exc:
            reason = getattr(exc.args[0], "reason", None) if exc.args else None
            if isinstance(reason, ConnectTimeoutError):  # includes connection refused
                raise _NotSent("connection refused") from exc
            raise _MaybeSent("connection dropped") from exc
        except requests.Timeout as exc:
            raise _MaybeSent("read timeout") from exc
        except requests.RequestException as exc:
            raise _MaybeSent(type(exc).__name__) from exc
        return response

    def route(self, url: str) -> str:
        if self.base_url is None:
            return url
        base = urlsplit(self.base_url)
        parts = urlsplit(url)
        path = base.path.rstrip("/") + parts.path
        return urlunsplit((base.scheme, base.netloc, path, parts.query, parts.fragment))

    def log_request(self, kwargs: dict[str, Any]) -> None:
        """Silenced: the vendor's log line would show phone numbers in query strings."""

    def log_response(self, status_code: int, response: Any) -> None:
        """Silenced, like :meth:`log_request`."""


class TwilioProvider:
    """Sends through Twilio's Messages API; see :class:`~dispatcher.providers.Provider`.

    ``base_url`` sends every request elsewhere (``http://127.0.0.1:PORT`` for the fake API);
    ``timeout`` is the per-request socket timeout in seconds.
    """

    name = "twilio"

    def __init__(
        self,
        credentials: TwilioCredentials,
        *,
        base_url: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.account_sid = credentials.account_sid
        self._token = credentials.auth_token
        self._http = RoutedHttpClient(base_url, timeout)
        self._client = Client(
            credentials.account_sid,
            credentials.auth_token.reveal(),
            http_client=self._http,
            # A non-empty mapping: given an empty one the client reads os.environ for an
            # edge and a region, which would move requests away from base_url.
            environment={"TWILIO_ACCOUNT_SID": credentials.account_sid},
        )

    def __repr__(self) -> str:
        return f"TwilioProvider(account_sid={self.account_sid!r}, base_url={self._http.base_url!r})"

    def send(self, request: SendRequest) -> SendResult:
        kwargs: dict[str, Any] = {"to": request.to, "from_": request.from_}
        if request.body:
            kwargs["body"] = request.body
        if request.media_urls:
            kwargs["media_url"] = list(request.media_urls)
        if request.callback_url:
            kwargs["status_callback"] = request.callback_url
        if request.validity_period is not None:
            kwargs["validity_period"] = request.validity_period

        started = time.perf_counter()
        result = self._create(kwargs)
        self._log(request, result, time.perf_counter() - started)
        return result

    def _create(self, kwargs: dict[str, Any]) -> SendResult:
        try:
            message = self._client.messages.create(**kwargs)
        except _NotSent as exc:
            return Failed(classification.not_sent(str(exc)), f"twilio: {exc}")
        except _MaybeSent as exc:
            return Failed(classification.outcome_unknown(str(exc)), f"twilio: {exc}")
        except (TwilioRestException, TwilioServiceException) as exc:
            code, status = _code_and_status(exc)
            error = classification.classify(code, status)
            where = f"HTTP {status}" + (f", code {code}" if code is not None else "")
            return Failed(error, f"twilio: {where}: {_message(exc)}")
        except ValueError as exc:
            # A 2xx answer that is not JSON: the message may well exist.
            error = classification.outcome_unknown("unreadable answer")
            return Failed(error, f"twilio: unreadable answer ({type(exc).__name__})")
        return Accepted(
            message.sid, _status(message.status), _int_or_none(message.num_segments)
        )

    def fetch(self, sid: str) -> MessageInfo:
        try:
            message = self._client.messages(sid).fetch()
        except (TwilioRestException, TwilioServiceException) as exc:
            code, status = _code_and_status(exc)
            if status == 404:
                raise MessageNotFound(sid) from None
            raise ProviderUnavailable(
                f"twilio: fetching {sid} failed: {_message(exc)}",
                code=code,
                http_status=status,
            ) from None
        except (_NotSent, _MaybeSent, ValueError) as exc:
            raise ProviderUnavailable(f"twilio: fetching {sid} failed: {exc}") from None
        return _info(message)

    def find(
        self,
        request: SendRequest,
        *,
        attempted_at: dt.datetime,
        exclude_sids: Collection[str] = (),
    ) -> Reconciliation:
        """Search the messages from ``request.from_`` to ``request.to``, newest first.

        A match is outbound, was created no earlier than ``attempted_at`` less
        :data:`CLOCK_SKEW`, carries the same body (a trial account's prefix allowed) and the
        same number of media, and is not in ``exclude_sids``.
        """
        since = attempted_at - CLOCK_SKEW
        found: list[MessageInfo] = []
        try:
            for message in self._client.messages.stream(
                to=request.to, from_=request.from_, limit=SEARCH_LIMIT, page_size=50
            ):
                created = message.date_created
                if created is not None and created < since:
                    break  # newest first: everything after this is older still
                if _matches(message, request, exclude_sids):
                    found.append(_info(message))
        except (TwilioRestException, TwilioServiceException) as exc:
            code, status = _code_and_status(exc)
            raise ProviderUnavailable(
                f"twilio: searching messages failed: {_message(exc)}",
                code=code,
                http_status=status,
            ) from None
        except (_NotSent, _MaybeSent, ValueError) as exc:
            raise ProviderUnavailable(
                f"twilio: searching messages failed: {exc}"
            ) from None
        if not found:
            return Reconciliation(Match.NOT_FOUND)
        if len(found) == 1:
            return Reconciliation(Match.FOUND, found[0])
        return Reconciliation(Match.AMBIGUOUS, candidates=tuple(m.sid for m in found))

    def signature_is_valid(
        self, url: str, params: Mapping[str, str], signature: str
    ) -> bool:
        """Whether ``X-Twilio-Signature`` ``signature`` signs ``url`` and the POST params.

        ``url`` is the public URL Twilio called (the config's ``public_base_url`` plus the
        path and query), not the one a TLS-terminating proxy hands to the application.
        """
        return signature_is_valid(self._token, url, params, signature)

    def close(self) -> None:
        session = self._http.session
        if session is not None:
            session.close()

    def _log(self, request: SendRequest, result: SendResult, seconds: float) -> None:
        fields: dict[str, Any] = {
            "provider": self.name,
            "correlation_id": request.correlation_id,
            "to": mask_phone(request.to),
            "duration_ms": round(seconds * 1000, 1),
        }
        if isinstance(result, Accepted):
            log.info("provider_send", outcome="accepted", sid=result.sid, **fields)
        else:
            log.warning(
                "provider_send",
                outcome="failed",
                action=result.error.action.value,
                code=result.error.code,
                http_status=result.error.http_status,
                detail=result.detail,
                **fields,
            )


def signature_is_valid(
    auth_token: Secret, url: str, params: Mapping[str, str], signature: str
) -> bool:
    """Whether ``signature`` (``X-Twilio-Signature``) signs ``url`` and the POST params
    with ``auth_token``, as Twilio signs its webhooks. Needs no account or client, so
    the webhook service can check requests without building a provider."""
    validator = RequestValidator(auth_token.reveal())
    return bool(validator.validate(url, dict(params), signature))


def signature_for(auth_token: Secret, url: str, params: Mapping[str, str]) -> str:
    """The ``X-Twilio-Signature`` Twilio would send for ``url`` and ``params`` (for the
    demo and load tools, which play Twilio's part)."""
    return str(
        RequestValidator(auth_token.reveal()).compute_signature(url, dict(params))
    )


def _code_and_status(
    exc: TwilioRestException | TwilioServiceException,
) -> tuple[int | None, int | None]:
    status = _int_or_none(getattr(exc, "status", None))
    code = _int_or_none(getattr(exc, "code", None))
    # Without a JSON error body the client reports the HTTP status as the code.
    if code is not None and code == status:
        code = None
    return code, status


def _message(exc: TwilioRestException | TwilioServiceException) -> str:
    text = getattr(exc, "msg", None) or getattr(exc, "detail", None) or ""
    return scrub(str(text))


def _int_or_none(value: object) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(str(value))
    except ValueError:
        return None


def _status(value: object) -> MessageStatus:
    try:
        return MessageStatus(str(value))
    except ValueError:
        # A status newer than this table: the message exists, which is what matters.
        return MessageStatus.QUEUED


def _info(message: Any) -> MessageInfo:
    return MessageInfo(
        sid=message.sid,
        status=_status(message.status),
        to=message.to or "",
        from_=message.from_ or "",
        body=message.body or "",
        date_created=message.date_created or dt.datetime.now(dt.UTC),
        error_code=_int_or_none(message.error_code),
        segments=_int_or_none(message.num_segments),
    )


def _matches(message: Any, request: SendRequest, exclude_sids: Collection[str]) -> bool:
    if message.sid in exclude_sids:
        return False
    if not str(message.direction or "").startswith("outbound"):
        return False
    if (message.body or "") not in (request.body, TRIAL_PREFIX + request.body):
        return False
    return (_int_or_none(message.num_media) or 0) == len(request.media_urls)
