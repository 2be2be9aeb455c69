"""The API table: route names as faults, stats and docs spell them."""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

__all__ = ["API_PREFIX", "OPENAPI_PATH", "ROUTES", "check_route", "openapi_document"]

API_PREFIX = "/api/v1"
OPENAPI_PATH = "/openapi.json"
"""Where the emulator serves the API's OpenAPI description (not an API route: no key
needed, no faults, not counted in the stats)."""

ROUTES: tuple[str, ...] = (
    "GET /configurations",
    "GET /configurations/{configurationId}",
    "POST /configurations/{configurationId}/instances",
    "GET /configurations/{configurationId}/instances",
    "PUT /configurations/{configurationId}/instances",
    "DELETE /configurations/{configurationId}/instances",
    "GET /instance-requests/{requestId}",
    "GET /instances",
    "DELETE /instances",
    "GET /instances/{instanceId}",
    "DELETE /instances/{instanceId}",
    "POST /instances/{instanceId}/restart",
    "GET /instances/{instanceId}/overrides",
    "PATCH /instances/{instanceId}/overrides",
    "GET /destinations",
)
"""Every route the emulator serves, as ``"<METHOD> <path template without /api/v1>"``."""


def check_route(route: str) -> str:
    """Return ``route`` if it names a route of the API, else raise ValueError (typos)."""
    if route not in ROUTES:
        raise ValueError(f"unknown route {route!r}; routes are: {', '.join(ROUTES)}")
    return route


@functools.cache
def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 description of the API (``openapi.json``, shipped in this package)."""
    text = resources.files(__package__).joinpath("openapi.json").read_text(encoding="utf-8")
    document: dict[str, Any] = json.loads(text)
    return document
