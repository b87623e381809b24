"""Provider secrets, read from the environment variables that the config names.

A :class:`Secret` never shows its value in a repr, a str or a log line; code that needs the
value asks for it with :meth:`Secret.reveal`, which is easy to search for.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import MissingSecret

DEFAULT_ACCOUNT_SID_ENV = "TWILIO_ACCOUNT_SID"
DEFAULT_AUTH_TOKEN_ENV = "TWILIO_AUTH_TOKEN"


class Secret:
    """A string that prints as ``Secret('********')``."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> tuple[object, ...]:
        # Pickling would write the value out; a secret stays in the process that read it.
        raise TypeError("a Secret cannot be pickled")


@dataclass(frozen=True, slots=True)
class TwilioCredentials:
    account_sid: str
    auth_token: Secret

    @classmethod
    def from_settings(
        cls, settings: Mapping[str, str], environ: Mapping[str, str] | None = None
    ) -> TwilioCredentials:
        """Read the variables named by the config's ``provider.twilio`` settings.

        Raises :class:`~dispatcher.errors.MissingSecret` naming the unset variable.
        """
        env = os.environ if environ is None else environ
        sid_var = settings.get("account_sid_env", DEFAULT_ACCOUNT_SID_ENV)
        token_var = settings.get("auth_token_env", DEFAULT_AUTH_TOKEN_ENV)
        sid = env.get(sid_var, "")
        if not sid:
            raise MissingSecret(sid_var, "provider.twilio.account_sid_env")
        token = env.get(token_var, "")
        if not token:
            raise MissingSecret(token_var, "provider.twilio.auth_token_env")
        return cls(sid, Secret(token))
