"""The dispatcher's exceptions: one root, three families.

* :class:`InputError` -- something a person or another system handed us is wrong (a rules
  file, a config file, a set of facts, an API payload). The message says where and why.
* :class:`ProviderError` -- the far side of a network boundary failed.
* :class:`InternalError` -- a bug in the dispatcher itself.

Messages never contain a full phone number, a message body or a secret.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


class DispatcherError(Exception):
    """Root of every exception the dispatcher raises on purpose."""


class InputError(DispatcherError):
    """Bad input: a rules file, a config file, facts or a payload."""


class InternalError(DispatcherError):
    """A broken invariant inside the dispatcher: a bug, never the user's fault."""


class ProviderError(DispatcherError):
    """A provider (Twilio, the simulator) failed or answered with an error."""


class MissingDependencyError(DispatcherError):
    """An optional package a feature needs is missing; the message says how to add it."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One positioned problem in an input file.

    ``line`` and ``column`` are 1-based; ``0`` means the position is unknown (for example a
    problem with the set of files as a whole).
    """

    file: str
    line: int
    column: int
    message: str
    hint: str | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}" if self.line else self.file
        text = f"{where}: {self.message}"
        if self.hint:
            text += f"\n    hint: {self.hint}"
        return text

    @property
    def sort_key(self) -> tuple[str, int, int, str]:
        return (self.file, self.line, self.column, self.message)


class ProblemsError(InputError):
    """An input file (or set of files) has one or more problems; all are listed.

    ``problems`` is sorted by file, line and column.
    """

    kind = "input"

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(
            sorted(problems, key=lambda p: p.sort_key)
        )
        count = len(self.problems)
        noun = "problem" if count == 1 else "problems"
        lines = [f"{self.kind}: {count} {noun}"]
        lines.extend(str(p) for p in self.problems)
        super().__init__("\n".join(lines))


class RulesError(ProblemsError):
    """The rules files do not make a sound policy. Nothing of them is put in force."""

    kind = "rules"


class ConfigError(ProblemsError):
    """The config file is invalid."""

    kind = "config"


class CasesError(ProblemsError):
    """A rule-test case file (``rules/tests/*.yaml``) is invalid."""

    kind = "rule tests"


class FactsError(InputError):
    """A set of facts handed to the engine is missing a fact or has a malformed one.

    ``problems`` lists each bad fact as ``"name: why"``.
    """

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("invalid facts: " + "; ".join(self.problems))


class FieldError(InputError):
    """One field of a request to the data layer is wrong; nothing was written.

    ``field`` names it (``"phone"``, ``"business"``, ``"source"``); ``reason`` says why and
    what was expected. The message never holds a full phone number.
    """

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


class NotFound(FieldError):
    """The field names a business, number or record that does not exist."""


class ConstraintViolation(FieldError):
    """The request would break a rule of the data layer (for example a second
    transactional number for one business), whether code or the database caught it."""


class StoreError(DispatcherError):
    """The database cannot be reached or is not at the schema this code expects."""


class InvalidSendRequest(InputError):
    """A send request handed to a provider is malformed; ``problems`` lists every fault.

    Each problem names the field and says what was expected; phone numbers are masked.
    """

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("invalid send request: " + "; ".join(self.problems))


class InvalidStatusCallback(InputError):
    """A status callback's form fields are missing a field or carry a malformed one."""


class MissingSecret(InputError):
    """An environment variable that the config names for a secret is unset or empty."""

    def __init__(self, variable: str, setting: str) -> None:
        self.variable = variable
        self.setting = setting
        super().__init__(
            f"environment variable {variable} is not set; the config names it in "
            f"{setting}: export it, or point {setting} at the variable that holds it"
        )


class ProviderUnavailable(ProviderError):
    """A provider call other than a send (fetch, find) failed; try again later.

    ``code`` is the provider's error code and ``http_status`` the HTTP status, when known.
    """

    def __init__(
        self, message: str, *, code: int | None = None, http_status: int | None = None
    ) -> None:
        self.code = code
        self.http_status = http_status
        super().__init__(message)


class MessageNotFound(ProviderError):
    """The provider has no message with the given SID."""

    def __init__(self, sid: str) -> None:
        self.sid = sid
        super().__init__(f"the provider has no message {sid}")
