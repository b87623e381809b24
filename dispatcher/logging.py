"""structlog, configured once for the whole process: JSON in production, readable on a
terminal, and phone numbers masked whatever a caller hands it.

Personal data is kept out of logs by construction (:class:`~dispatcher.phone.Phone` prints
masked); :func:`mask_phones` is the safety net behind that. It masks anything in an
event that looks like a phone number, in E.164 (``+12015550123``), URL-encoded
(``%2B12015550123``) or as a bare run of 10 to 15 digits, and it drops message bodies
outright, so an OTP code never reaches a log line.

The standard library's loggers (uvicorn's among them) go through the same processors.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import IO, Any

import structlog

from .providers.base import mask_phone

# Keys whose values are never logged, whatever they hold.
DROPPED_KEYS = frozenset({"body", "Body", "text", "authorization", "auth_token"})

_PHONE = re.compile(
    r"(?:\+|%2[Bb])[1-9][0-9]{6,14}(?![0-9])"
    r"|(?<![0-9A-Za-z.:])[0-9]{10,15}(?![0-9A-Za-z.:])"
)
_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def mask_text(text: str) -> str:
    """``text`` with every phone-like run masked.

    >>> mask_text("POST /v1/customers/+12015550123/consent")
    'POST /v1/customers/+•••••••••23/consent'
    """
    return _PHONE.sub(lambda m: mask_phone(m.group().replace("%2B", "+")), text)


def _mask(value: Any) -> Any:
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, Mapping):
        return {k: _mask(v) for k, v in value.items() if k not in DROPPED_KEYS}
    if isinstance(value, list | tuple):
        return [_mask(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and value >= 10**9:
        return mask_text(str(value))
    return value


def mask_phones(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """The structlog processor: masks phone-like values and drops body-like keys."""
    for key in list(event):
        if key in DROPPED_KEYS:
            del event[key]
        else:
            event[key] = _mask(event[key])
    return event


def configure(
    fmt: str = "console", level: str = "info", stream: IO[str] | None = None
) -> None:
    """Set up structlog and the standard library's logging for this process.

    ``fmt`` is ``json`` (one object per line) or ``console``; ``level`` one of debug,
    info, warning, error. Calling it again replaces the earlier set-up.
    """
    if fmt not in ("json", "console"):
        raise ValueError(f"log format: expected json or console, got {fmt!r}")
    if level not in _LEVELS:
        raise ValueError(
            f"log level: expected one of {', '.join(_LEVELS)}, got {level!r}"
        )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                mask_phones,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(_LEVELS[level])
    # uvicorn's access log would print paths unmasked and twice: the service logs one
    # http_request line per request itself.
    logging.getLogger("uvicorn.access").disabled = True
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True
    structlog.configure(
        processors=[
            # Drop what the level leaves out before any other work is done on it.
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


def configure_for_terminal(level: str = "info") -> None:
    """Console output on a terminal, JSON otherwise (a container, a log shipper)."""
    configure("console" if sys.stderr.isatty() else "json", level)
