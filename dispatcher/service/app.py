"""The ASGI application: the business API, Twilio's webhooks, health and metrics.

:class:`Service` holds what every request shares (the database, the policy in force,
the webhook secret, the metrics, the clock); :func:`create_app` builds the FastAPI app
around one. Workers run in the same process when the service is given a
:class:`~dispatcher.service.workers.WorkerPool`, else the process is a stateless API
node and workers run elsewhere (``dispatcher worker``).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import structlog
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import Engine as DbEngine
from sqlalchemy import exc
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import store
from ..billing import Rates, record_call
from ..calls import CallReport
from ..errors import ConstraintViolation, FieldError, InputError, NotFound, StoreError
from ..inbound import Settings as InboundSettings
from ..outbox import IdempotencyConflict
from ..providers.base import StatusReport
from ..providers.credentials import Secret
from ..statuses import Applied, apply_status
from ..tables import UsageEvent
from . import api, webhooks
from .metrics import CONTENT_TYPE, Metrics
from .reload import PolicyHolder
from .workers import WorkerPool

log = structlog.get_logger("dispatcher.service")

VERSION = "1"


@dataclass
class Service:
    """What the routes share. ``public_base_url`` is the URL Twilio calls (the config's
    ``provider.twilio.public_base_url``); without it, webhooks are checked against the
    URL the request arrived at, which is wrong behind a TLS-terminating proxy.
    ``webhook_token`` is Twilio's auth token; without it every webhook is refused.
    ``rates`` price the usage report (the config's ``billing`` section)."""

    db: DbEngine
    policies: PolicyHolder
    inbound: InboundSettings
    public_base_url: str | None = None
    webhook_token: Secret | None = None
    clock: Callable[[], dt.datetime] = store.utc_now
    rates: Rates = field(default_factory=Rates.default)
    metrics: Metrics = field(init=False)
    workers: WorkerPool | None = None

    def __post_init__(self) -> None:
        self.metrics = Metrics(self.db)

    def apply_callback(self, url: str, form: Mapping[str, str]) -> Applied:
        """The one path for statuses: Twilio's verified callbacks and the simulator's.

        Raises :class:`~dispatcher.errors.InvalidStatusCallback` for a malformed form.
        """
        report = StatusReport.from_callback(url, form)
        return apply_status(
            self.db, self.policies.current().policy, report, now=self.clock()
        )

    def record_call(self, form: Mapping[str, str]) -> UsageEvent | None:
        """Bill a voice status callback: a completed call to or from one of our
        numbers, once per CallSid (:func:`~dispatcher.billing.record_call`).

        Raises :class:`~dispatcher.errors.InvalidStatusCallback` for a malformed form.
        """
        report = CallReport.from_callback(form)
        try:
            with store.transaction(self.db) as session:
                return record_call(session, report, self.clock())
        except ConstraintViolation:
            # The same callback delivered twice at once: the other one billed it.
            return None

    def apply_callback_quietly(self, url: str, form: Mapping[str, str]) -> None:
        """:meth:`apply_callback` for the simulator's hook, which wants no result."""
        self.apply_callback(url, form)

    def ready(self) -> list[str]:
        """What keeps the service from serving; empty when it is ready."""
        problems = []
        try:
            store.require_current(self.db)
        except (StoreError, exc.SQLAlchemyError) as error:
            problems.append(f"database: {error}")
        if self.workers is not None and not self.workers.alive():
            problems.append("workers: not running")
        return problems


def create_app(service: Service) -> FastAPI:
    """The FastAPI application for ``service``; starts and stops its workers."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if service.workers is not None:
            service.workers.start()
        log.info(
            "service_started",
            policy=service.policies.current().policy.short_hash,
            workers=service.workers.size if service.workers else 0,
            webhooks="on" if service.webhook_token else "off (no auth token)",
        )
        try:
            yield
        finally:
            if service.workers is not None:
                service.workers.stop()
            log.info("service_stopped")

    app = FastAPI(
        title="SMS policy dispatcher",
        version=VERSION,
        description=(
            "Send messages under the declared policy, read why each was sent or not, "
            "and receive Twilio's webhooks. Authenticate with `Authorization: Bearer "
            "<API key>`; a business key reaches only its own business."
        ),
        lifespan=lifespan,
    )
    app.state.service = service
    app.include_router(api.router)
    app.include_router(webhooks.router)
    _add_operations(app, service)
    _add_error_handlers(app)
    app.add_middleware(_RequestLog)
    return app


def _add_operations(app: FastAPI, service: Service) -> None:
    @app.get("/healthz", tags=["operations"], summary="The process is alive.")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["operations"],
        summary="The database is reachable at the current schema and workers run.",
        responses={503: {"description": "Not ready; the reasons are listed."}},
    )
    def readyz() -> JSONResponse:
        problems = service.ready()
        if problems:
            return JSONResponse({"status": "not ready", "problems": problems}, 503)
        policy = service.policies.current().policy
        return JSONResponse({"status": "ready", "policy": policy.short_hash})

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics.")
    def metrics() -> Response:
        return Response(service.metrics.render(), media_type=CONTENT_TYPE)


def _field_of(error: InputError) -> str:
    if isinstance(error, FieldError):
        return error.field
    head, sep, _ = str(error).partition(":")
    return head if sep and " " not in head.strip() else "body"


def _add_error_handlers(app: FastAPI) -> None:
    def unprocessable(request: Request, error: Exception) -> JSONResponse:
        if isinstance(error, IdempotencyConflict):
            return JSONResponse({"detail": str(error)}, 409)
        if isinstance(error, NotFound):
            return JSONResponse({"detail": str(error)}, 404)
        if not isinstance(error, InputError):  # pragma: no cover - registered for it
            raise error
        reason = error.reason if isinstance(error, FieldError) else str(error)
        detail = [
            {"loc": ["body", _field_of(error)], "msg": reason, "type": "value_error"}
        ]
        return JSONResponse({"detail": detail}, 422)

    def unavailable(request: Request, error: Exception) -> JSONResponse:
        log.error("database_unavailable", error=type(error).__name__)
        return JSONResponse({"detail": "the database is unavailable; try again"}, 503)

    app.add_exception_handler(InputError, unprocessable)
    app.add_exception_handler(StoreError, unavailable)
    app.add_exception_handler(exc.OperationalError, unavailable)


class _RequestLog:
    """One ``http_request`` line per request. A plain ASGI middleware: Starlette's
    ``BaseHTTPMiddleware`` runs each request in a task of its own, with a stream in
    between, which cost more than a webhook's own work."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await self.app(scope, receive, send_noting_status)
        log.info(
            "http_request",
            method=scope["method"],
            path=scope["path"],
            status=status,
            ms=round((time.perf_counter() - started) * 1000, 2),
        )
