"""Building a :class:`~dispatcher.service.app.Service` from the config file.

Secrets come from the environment only: the webhook check reads Twilio's auth token from
the variable that ``provider.twilio.auth_token_env`` names (default
``TWILIO_AUTH_TOKEN``). Without it the webhooks refuse every request.

``dispatcher serve --processes N`` has uvicorn start N processes that share the port;
each builds its own app with :func:`api_process_app`.
"""

from __future__ import annotations

import datetime as dt
import gc
import os
from collections.abc import Callable, Mapping

import structlog
from fastapi import FastAPI
from sqlalchemy import Engine as DbEngine

from .. import providers, store
from ..config import Config, load_config
from ..inbound import Settings as InboundSettings
from ..logging import configure
from ..providers.base import Provider
from ..providers.credentials import DEFAULT_AUTH_TOKEN_ENV, Secret
from ..providers.simulator import SimulatorProvider
from ..store import utc_now
from ..worker import WorkerSettings
from .app import Service, create_app
from .reload import PolicyHolder
from .workers import WorkerPool

log = structlog.get_logger("dispatcher.service")

STATUS_PATH = "/webhooks/twilio/status"


def webhook_token(
    config: Config, environ: Mapping[str, str] | None = None
) -> Secret | None:
    env = os.environ if environ is None else environ
    variable = config.twilio.get("auth_token_env", DEFAULT_AUTH_TOKEN_ENV)
    value = env.get(variable)
    return Secret(value) if value else None


def build_service(
    config: Config,
    db: DbEngine,
    *,
    workers: int,
    token: Secret | None = None,
    environ: Mapping[str, str] | None = None,
    clock: Callable[[], dt.datetime] = utc_now,
) -> Service:
    """The service the config describes, with ``workers`` worker threads (0: none).

    Raises :class:`~dispatcher.errors.RulesError` for unsound rules and
    :class:`~dispatcher.errors.MissingSecret` for a Twilio provider without secrets.
    """
    public = config.twilio.get("public_base_url")
    service = Service(
        db=db,
        policies=PolicyHolder(config.rules),
        inbound=InboundSettings(config.platform_name, config.help_contact),
        public_base_url=public,
        webhook_token=token or webhook_token(config, environ),
        clock=clock,
        rates=config.billing,
    )
    if public is None:
        log.warning(
            "public_base_url_missing",
            hint="set provider.twilio.public_base_url; webhooks are checked against "
            "the URL the request arrived at, which is wrong behind a proxy",
        )
    if workers > 0:
        service.workers = _pool(config, service, workers, environ, clock)
    return service


def api_process_app() -> FastAPI:
    """The app of one of several API processes (``dispatcher serve --processes N``):
    the config that ``$DISPATCHER_CONFIG`` names, no workers in the process.

    uvicorn calls it in every process it starts. Raises as :func:`build_service` does,
    and :class:`~dispatcher.errors.StoreError` for a database not at the current schema.
    """
    config = load_config()
    configure(config.log_format, config.log_level)
    db = store.open_engine(config.effective_database_url)
    store.require_current(db)
    app = create_app(build_service(config, db, workers=0))
    freeze_start_up()
    return app


def freeze_start_up() -> None:
    """Keep what start-up made (modules, the policy, SQLAlchemy's compiled statements)
    out of the garbage collector's full passes: it lives as long as the process, and
    walking it stopped every request for 40-60 ms a few times a minute under load."""
    gc.collect()
    gc.freeze()


def _pool(
    config: Config,
    service: Service,
    size: int,
    environ: Mapping[str, str] | None,
    clock: Callable[[], dt.datetime],
) -> WorkerPool:
    callback = (
        config.twilio["public_base_url"].rstrip("/") + STATUS_PATH
        if config.provider == "twilio" and config.twilio.get("public_base_url")
        else None
    )
    settings = WorkerSettings(status_callback=callback)
    if config.provider == "simulator":
        simulator = SimulatorProvider(service.apply_callback_quietly)
        simulator.start()
        return WorkerPool(
            service.db,
            service.policies.engine,
            lambda _i: simulator,
            size=size,
            settings=settings,
            clock=clock,
            on_stop=simulator.close,
        )

    def provider_for(_i: int) -> Provider:
        return providers.from_config(config, environ=environ)

    return WorkerPool(
        service.db,
        service.policies.engine,
        provider_for,
        size=size,
        settings=settings,
        clock=clock,
    )
