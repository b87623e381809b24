"""SMS providers behind one interface: the simulator (default) and Twilio.

Only :mod:`dispatcher.providers.twilio_provider` imports ``twilio``; it is imported when a
Twilio provider is built, so the simulator runs without loading the vendor's client.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from ..config import Config
from ..errors import InputError
from .base import (
    CORRELATION_PARAM,
    Accepted,
    Failed,
    Match,
    MessageInfo,
    MessageStatus,
    Provider,
    Reconciliation,
    SendRequest,
    SendResult,
    StatusHook,
    StatusReport,
    mask_phone,
)
from .classification import ErrorAction, ErrorClass, classify
from .simulator import FaultPlan, SimulatorProvider

__all__ = [
    "CORRELATION_PARAM",
    "Accepted",
    "ErrorAction",
    "ErrorClass",
    "Failed",
    "FaultPlan",
    "Match",
    "MessageInfo",
    "MessageStatus",
    "Provider",
    "Reconciliation",
    "SendRequest",
    "SendResult",
    "SimulatorProvider",
    "StatusHook",
    "StatusReport",
    "classify",
    "from_config",
    "mask_phone",
]


def from_config(
    config: Config,
    *,
    hook: StatusHook | None = None,
    environ: Mapping[str, str] | None = None,
    api_base_url: str | None = None,
    timeout: float | None = None,
) -> Provider:
    """The provider the config names. ``hook`` receives the simulator's statuses.

    ``api_base_url`` sends the Twilio client's requests elsewhere than Twilio (the fake API
    in tests); ``timeout`` is its per-request timeout in seconds (default 10).

    Raises :class:`~dispatcher.errors.MissingSecret` when a Twilio secret is not set.
    """
    if config.provider == "simulator":
        return SimulatorProvider(hook)
    if config.provider == "twilio":
        from .credentials import TwilioCredentials
        from .twilio_provider import DEFAULT_TIMEOUT, TwilioProvider

        credentials = TwilioCredentials.from_settings(
            config.twilio, os.environ if environ is None else environ
        )
        return TwilioProvider(
            credentials,
            base_url=api_base_url or config.twilio.get("api_base_url"),
            timeout=DEFAULT_TIMEOUT if timeout is None else timeout,
        )
    raise InputError(
        f"provider.kind: expected simulator or twilio, got {config.provider!r}"
    )
