"""Service commands: ``serve`` and ``keys``."""

from __future__ import annotations

import getpass
import os
import sys
import threading
import time
from typing import Any

import click

from ..config import Config
from ..errors import MissingSecret, RulesError
from ..logging import configure
from ..providers.credentials import Secret
from ._state import EXIT_UNSOUND, State
from .data_commands import _fail, engine_for, session_for


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option(
    "--workers",
    type=click.IntRange(0, 64),
    default=2,
    show_default=True,
    help="Worker threads in this process.",
)
@click.option(
    "--no-workers",
    is_flag=True,
    help="A stateless API process; workers run elsewhere (`dispatcher worker`).",
)
@click.option(
    "--processes",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="API processes sharing the port (PostgreSQL only); with more than one, no "
    "workers run in them: run `dispatcher worker`.",
)
@click.option(
    "--demo",
    is_flag=True,
    help="Seed a demo business, numbers and customer; print how to send a message.",
)
@click.option(
    "--check",
    is_flag=True,
    help="With --demo: drive the service through HTTP, print the outcomes and exit.",
)
@click.pass_obj
def serve(
    state: State,
    /,
    host: str,
    port: int,
    workers: int,
    no_workers: bool,
    processes: int,
    demo: bool,
    check: bool,
) -> None:
    """Serve the HTTP API and Twilio's webhooks (FastAPI on uvicorn) until stopped."""
    import uvicorn

    from ..service import create_app
    from ..service import demo as demo_module
    from ..service.runtime import build_service, freeze_start_up

    config = state.config
    # The check prints its own report; only warnings and errors are logged beside it.
    configure(config.log_format, "warning" if check else config.log_level)
    db = engine_for(state)
    if processes > 1 and (check or db.dialect.name != "postgresql"):
        _fail(
            "--processes: several API processes need PostgreSQL (SQLite takes one "
            "writer at a time) and cannot run --check; use --processes 1",
            2,
        )
    token = None
    if demo:
        token = None if _token_set(config) else demo_module.demo_token()
    if processes > 1:
        no_workers = True
    try:
        service = build_service(
            config, db, workers=0 if no_workers else workers, token=token
        )
    except (RulesError, MissingSecret) as error:
        _fail(str(error), EXIT_UNSOUND)
        return
    seeded = demo_module.seed(db, service.policies.current().policy) if demo else None
    if processes > 1:
        db.dispose()
        _serve_processes(state, config, host, port, processes, token)
        return
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(service),
            host=host,
            port=port,
            access_log=False,
            log_config=None,
            lifespan="on",
        )
    )
    if not check:
        if seeded is not None:
            base = f"http://{host}:{port}"
            click.echo(f"Demo business {demo_module.NAME!r} (id {seeded.business_id}).")
            click.echo("Send a first message:\n")
            click.echo("  " + demo_module.curl_line(base, seeded) + "\n")
            click.echo(
                f"OpenAPI: {base}/docs   metrics: {base}/metrics   Ctrl-C stops."
            )
        freeze_start_up()
        server.run()
        db.dispose()
        return
    if seeded is None or service.webhook_token is None:
        _fail("--check needs --demo", 2)
        return
    ok = _check(server, seeded, service.webhook_token, host)
    db.dispose()
    click.echo("demo check: " + ("ok" if ok else "FAILED"))
    sys.exit(0 if ok else 1)


def _serve_processes(
    state: State,
    config: Config,
    host: str,
    port: int,
    processes: int,
    token: Secret | None,
) -> None:
    """``processes`` uvicorn processes on one port, each building its app from the
    config (:func:`~dispatcher.service.runtime.api_process_app`); until stopped."""
    import uvicorn

    from ..config import ENV_VAR
    from ..providers.credentials import DEFAULT_AUTH_TOKEN_ENV

    # The processes uvicorn starts read the same config and token from the
    # environment they inherit.
    if state.config_path:
        os.environ[ENV_VAR] = os.path.abspath(state.config_path)
    if token is not None:
        variable = config.twilio.get("auth_token_env", DEFAULT_AUTH_TOKEN_ENV)
        os.environ[variable] = token.reveal()
    click.echo(
        f"{processes} API processes on http://{host}:{port}; no workers run in them: "
        "run `dispatcher worker` to send."
    )
    uvicorn.run(
        "dispatcher.service.runtime:api_process_app",
        factory=True,
        host=host,
        port=port,
        workers=processes,
        access_log=False,
        log_config=None,
        lifespan="on",
    )


def _token_set(config: Any) -> bool:
    from ..service.runtime import webhook_token

    return webhook_token(config) is not None


def _check(server: Any, seeded: Any, token: Any, host: str) -> bool:
    from ..service import demo as demo_module

    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    if not server.started:
        return False
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        return demo_module.check(
            f"http://{host}:{port}", seeded, token, echo=click.echo
        )
    finally:
        server.should_exit = True
        thread.join(15)


@click.group("keys")
def keys_group() -> None:
    """API keys: one per business or more, and platform keys."""


@keys_group.command("create")
@click.option("--business", "business_ref", help="Business name or id.")
@click.option("--platform", is_flag=True, help="A platform key (every business).")
@click.option("--label", default="api", show_default=True, help="What the key is for.")
@click.pass_obj
def keys_create(
    state: State, /, business_ref: str | None, platform: bool, label: str
) -> None:
    """Make a key and print it once; only its digest is stored."""
    from ..service import auth

    if bool(business_ref) == platform:
        _fail("give exactly one of --business B and --platform", EXIT_UNSOUND)
    with session_for(state) as session:
        info, key = auth.create_key(
            session,
            None if platform else business_ref,
            label=label,
            created_by=f"cli:{getpass.getuser()}",
        )
    owner = "platform" if info.business_id is None else f"business {info.business_id}"
    click.echo(f"key {info.id} for {owner} ({info.label}); shown once:", err=True)
    click.echo(key)


@keys_group.command("list")
@click.option("--business", "business_ref", help="Only this business's keys.")
@click.pass_obj
def keys_list(state: State, /, business_ref: str | None) -> None:
    """List keys (their prefixes, never the keys)."""
    from ..service import auth

    with session_for(state, write=False) as session:
        found = auth.list_keys(session, business_ref)
    for info in found:
        owner = "platform" if info.business_id is None else str(info.business_id)
        revoked = f"revoked {info.revoked_at:%Y-%m-%d}" if info.revoked_at else "active"
        click.echo(f"{info.id}\t{owner}\t{info.prefix}...\t{info.label}\t{revoked}")


@keys_group.command("revoke")
@click.argument("key_id", type=int)
@click.pass_obj
def keys_revoke(state: State, /, key_id: int) -> None:
    """Revoke a key; it stops working at once."""
    from ..service import auth

    with session_for(state) as session:
        info = auth.revoke_key(session, key_id)
    click.echo(f"key {info.id} revoked")
