"""The one error type the emulator's API answers with, as a JSON error body."""

from __future__ import annotations

__all__ = ["ApiError", "invalid_request", "not_found"]


class ApiError(Exception):
    """An API refusal: HTTP status, snake_case code and a message for humans."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def not_found(kind: str, ident: str) -> ApiError:
    """404 for an id the account does not have."""
    return ApiError(404, "not_found", f"{kind} {ident!r} not found")


def invalid_request(message: str) -> ApiError:
    """400 for a body that breaks the endpoint's schema."""
    return ApiError(400, "invalid_request", message)
