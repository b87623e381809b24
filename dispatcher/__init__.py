"""SMS policy dispatcher: decide which number a message leaves from, and whether it may."""

from .decision import Decision, TraceStep
from .engine import Engine
from .errors import DispatcherError, FactsError, InputError, RulesError
from .facts import Channel, ConsentState, Facts, NumberStatus, parse_facts
from .loader import load_policy
from .policy import DeferUntil, Outcome, Policy

__version__ = "0.1.0"

__all__ = [
    "Channel",
    "ConsentState",
    "Decision",
    "DeferUntil",
    "DispatcherError",
    "Engine",
    "Facts",
    "FactsError",
    "InputError",
    "NumberStatus",
    "Outcome",
    "Policy",
    "RulesError",
    "TraceStep",
    "__version__",
    "load_policy",
    "parse_facts",
]
