"""Every error the SDK raises, in one tree.

::

    StreamrunError
    ├── InvalidArgumentError          (also ValueError) bad input, caught before sending
    │   ├── MissingAPIKeyError
    │   └── InsecureTransportError
    ├── InvalidArgumentTypeError      (also TypeError) bad input type, caught before sending
    ├── ClientClosedError             (also RuntimeError) the client was closed
    ├── EventLoopError                (also RuntimeError) used from two running event loops
    ├── APIError                      .method .url .outcome_unknown
    │   ├── APIConnectionError        no usable answer came back
    │   │   └── APITimeoutError       (also TimeoutError)
    │   ├── APIStatusError            .status .body .request_id .retry_after
    │   │   ├── BadRequestError       400
    │   │   │   └── NoCapacityError   a launch refused for want of slots (400/402/403/409)
    │   │   ├── AuthenticationError   401
    │   │   ├── PermissionDeniedError 403
    │   │   ├── NotFoundError         404
    │   │   ├── ConflictError         409
    │   │   ├── RateLimitError        429
    │   │   └── ServerError           5xx
    │   ├── ResponseDecodeError       malformed JSON or an unusable shape; .body
    │   └── IncompleteListError       a paginated list could not be read whole
    └── WaitError                     .last_seen
        ├── WaiterError               the waited thing failed or disappeared
        └── WaitTimeoutError          (also TimeoutError) the deadline passed

``outcome_unknown`` is true when the request may have been acted on although no
answer says so (a launch whose connection dropped after sending): retrying such a
call blindly could start, and bill, a second instance.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ClientClosedError",
    "ConflictError",
    "EventLoopError",
    "IncompleteListError",
    "InsecureTransportError",
    "InvalidArgumentError",
    "InvalidArgumentTypeError",
    "MissingAPIKeyError",
    "NoCapacityError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "ResponseDecodeError",
    "ServerError",
    "StreamrunError",
    "WaitError",
    "WaitTimeoutError",
    "WaiterError",
]

_BODY_PREVIEW = 500


class StreamrunError(Exception):
    """Root of every error raised by this SDK."""


class InvalidArgumentError(StreamrunError, ValueError):
    """An argument was refused before any request was sent."""


class MissingAPIKeyError(InvalidArgumentError):
    """No API key was given and ``STREAMRUN_API_KEY`` is not set."""


class InsecureTransportError(InvalidArgumentError):
    """A plain-HTTP base URL to a non-loopback host without ``allow_insecure=True``."""


class InvalidArgumentTypeError(StreamrunError, TypeError):
    """An argument of the wrong type was refused before any request was sent."""


class ClientClosedError(StreamrunError, RuntimeError):
    """The client was closed; make a new one."""


class EventLoopError(StreamrunError, RuntimeError):
    """The client is in use in another event loop that is still running.

    A client whose first loop has ended works in the next one (it opens a new session
    there); two loops running at once (threads) need a client each.
    """


class APIError(StreamrunError):
    """A request to the API failed.

    ``outcome_unknown`` tells whether the server may have acted anyway.
    """

    def __init__(
        self, message: str, *, method: str, url: str, outcome_unknown: bool = False
    ) -> None:
        super().__init__(message)
        self.message = message
        self.method = method
        self.url = url
        self.outcome_unknown = outcome_unknown


class APIConnectionError(APIError):
    """The connection failed, or dropped before a full answer arrived."""


class APITimeoutError(APIConnectionError, TimeoutError):
    """An attempt, or the whole call's retry budget, ran out of time."""


class APIStatusError(APIError):
    """The API answered with a non-success status.

    ``retry_after`` holds the server's ``Retry-After`` advice in seconds, when it gave one.
    """

    def __init__(
        self,
        message: str,
        *,
        method: str,
        url: str,
        status: int,
        body: Any = None,
        request_id: str | None = None,
        retry_after: float | None = None,
        outcome_unknown: bool = False,
    ) -> None:
        super().__init__(message, method=method, url=url, outcome_unknown=outcome_unknown)
        self.status = status
        self.body = body
        self.request_id = request_id
        self.retry_after = retry_after


class BadRequestError(APIStatusError):
    """400: the API refused the request as malformed or impossible."""


class NoCapacityError(BadRequestError):
    """A launch refused because the account has no free instance slot.

    Raised for a POST answered 400, 402, 403 or 409 whose message speaks of slots,
    capacity or a maximum number of instances; ``status`` tells which.
    """


class AuthenticationError(APIStatusError):
    """401: the API key is missing, wrong or revoked."""


class PermissionDeniedError(APIStatusError):
    """403: the key may not do this."""


class NotFoundError(APIStatusError):
    """404: no such configuration, instance, request or route."""


class ConflictError(APIStatusError):
    """409: the resource is in a state that forbids the request."""


class RateLimitError(APIStatusError):
    """429: too many requests; ``retry_after`` is the advised wait in seconds, if given."""


class ServerError(APIStatusError):
    """5xx: the service failed."""


class ResponseDecodeError(APIError):
    """The response was not JSON, or not of a shape the SDK can use.

    ``body`` holds what arrived (text, or the decoded JSON when the shape was wrong).
    """

    def __init__(
        self,
        message: str,
        *,
        method: str,
        url: str,
        body: Any = None,
        status: int | None = None,
        outcome_unknown: bool = False,
    ) -> None:
        super().__init__(message, method=method, url=url, outcome_unknown=outcome_unknown)
        self.body = body
        self.status = status


class IncompleteListError(APIError):
    """A list spread over pages could not be read whole, so none of it is returned.

    Causes: a later page failed (that error is ``__cause__``; ``retry_after`` is copied
    from it), a next-page link to another host, a link that repeats a page, or more than
    the page limit. ``pages_read`` and ``items_read`` say how far it got.
    """

    def __init__(
        self,
        message: str,
        *,
        method: str,
        url: str,
        pages_read: int,
        items_read: int,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, method=method, url=url)
        self.pages_read = pages_read
        self.items_read = items_read
        self.retry_after = retry_after


class WaitError(StreamrunError):
    """A wait ended without success; ``last_seen`` is the last state observed (or None)."""

    def __init__(self, message: str, *, last_seen: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.last_seen = last_seen


class WaiterError(WaitError):
    """The waited thing reached a failure state, or disappeared after it was seen."""


class WaitTimeoutError(WaitError, TimeoutError):
    """The wait's deadline passed before success."""


def body_preview(body: Any) -> str:
    """A short, single-line excerpt of a response body for error messages."""
    text = body if isinstance(body, str) else repr(body)
    text = " ".join(text.split())
    return text if len(text) <= _BODY_PREVIEW else text[:_BODY_PREVIEW] + "..."
