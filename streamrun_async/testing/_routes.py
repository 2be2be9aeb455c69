"""The API table: route names as faults, stats and docs spell them."""

from __future__ import annotations

__all__ = ["API_PREFIX", "ROUTES", "check_route"]

API_PREFIX = "/api/v1"

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
