"""The dispatcher as a service: the HTTP API, Twilio's webhooks, workers in-process.

See :func:`dispatcher.service.app.create_app` and ``docs/service.md``.
"""

from .app import Service, create_app

__all__ = ["Service", "create_app"]
