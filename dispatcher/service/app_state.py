"""How a route reaches the :class:`~dispatcher.service.app.Service` it runs in."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import Request

if TYPE_CHECKING:
    from .app import Service


def service_of(request: Request) -> Service:
    service: Service = request.app.state.service
    return service
