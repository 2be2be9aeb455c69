"""The transport: the one place that talks to aiohttp's client.

It owns (or borrows) the session, builds URLs from safely quoted path segments, sends
JSON with the bearer key, maps statuses to typed errors, caps response sizes, logs each
attempt at DEBUG without the key, and runs every call through the retry policy.
"""

from __future__ import annotations

import email.utils
import functools
import ipaddress
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp
import attrs
from aiohttp import hdrs
from multidict import CIMultiDictProxy
from yarl import URL

from ._converter import DecodeFailure, decode_list, decode_object, decode_overrides, json_loads
from ._exceptions import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ClientClosedError,
    ConflictError,
    InsecureTransportError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    NoCapacityError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ResponseDecodeError,
    ServerError,
    body_preview,
)
from ._models import Overrides
from ._retry import RetryPolicy, call_with_retries

__all__ = ["Response", "Transport", "check_base_url", "path_segment"]

_M = TypeVar("_M")
_log = logging.getLogger("streamrun_async")

API_PREFIX = "/api/v1"
_IDEMPOTENT = frozenset({"GET", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
_STATUS_ERRORS: Mapping[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    429: RateLimitError,
}
_NO_CAPACITY_MARKERS = ("instance slots", "no available slots")
_REDACTED = "[REDACTED]"


def path_segment(value: object, what: str) -> str:
    """Check an id and quote it as exactly one URL path segment."""
    if not isinstance(value, str):
        raise InvalidArgumentTypeError(f"{what} must be a str, got {type(value).__name__}")
    if not value:
        raise InvalidArgumentError(f"{what} must not be empty")
    try:
        quoted = quote(value, safe="")
    except UnicodeEncodeError:  # lone surrogates: a str that no URL can carry
        raise InvalidArgumentError(f"{what} is not valid Unicode text") from None
    # "." and ".." are unreserved, so quote() leaves them; servers would resolve them.
    return quoted.replace(".", "%2E") if not quoted.strip(".") else quoted


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_base_url(base_url: str, *, allow_insecure: bool) -> str:
    """Validate the base URL and return it without a trailing slash.

    Plain HTTP is refused unless the host is loopback or ``allow_insecure`` is set.
    """
    if not isinstance(base_url, str):
        raise InvalidArgumentTypeError(f"base_url must be a str, got {type(base_url).__name__}")
    url = URL(base_url)
    if url.scheme not in ("https", "http") or not url.host:
        raise InvalidArgumentError(f"base_url must be an http(s) URL with a host: {base_url!r}")
    if url.query_string or url.fragment or url.user or url.password:
        raise InvalidArgumentError("base_url must not carry a query, fragment or credentials")
    if url.scheme == "http" and not allow_insecure and not _is_loopback(url.host):
        raise InsecureTransportError(
            f"refusing to send the API key over plain HTTP to {url.host}: use https, or "
            "pass allow_insecure=True if you really mean it"
        )
    return str(url).rstrip("/")


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _error_message(data: Any, text: str) -> str:
    if isinstance(data, dict):
        error = data.get("error", data)
        if isinstance(error, dict):
            message = error.get("message") or error.get("detail")
            if isinstance(message, str):
                return message
        elif isinstance(error, str):
            return error
        message = data.get("message")
        if isinstance(message, str):
            return message
    return body_preview(text) if text else "(empty body)"


@functools.lru_cache(maxsize=1024)
def _url(text: str) -> URL:
    # Parsing a URL costs more than the rest of a request's bookkeeping; pollers ask for
    # the same few again and again.
    return URL(text, encoded=True)


@attrs.frozen
class Response:
    """A successful answer: status, headers and the decoded JSON (``None`` if empty)."""

    method: str
    url: str
    status: int
    headers: CIMultiDictProxy[str] = attrs.field(repr=False)
    data: Any = attrs.field(repr=False)
    request_id: str | None
    # Scrubs the key from what an error carries, should a server echo it back.
    redact: Callable[[Any], Any] = attrs.field(default=lambda value: value, repr=False, eq=False)

    def _failure(self, exc: DecodeFailure) -> ResponseDecodeError:
        try:
            body = self.redact(self.data)
        except RecursionError:
            body = "(a body nested too deeply to keep)"
        return ResponseDecodeError(
            self.redact(f"{self.method} {self.url}: {exc}"),
            method=self.method,
            url=self.url,
            body=body,
            status=self.status,
            outcome_unknown=self.method not in _IDEMPOTENT,
        )

    def object(self, cls: type[_M], envelope: str) -> _M:
        """Decode one model (bare or enveloped)."""
        try:
            return decode_object(self.data, cls, envelope)
        except DecodeFailure as exc:
            raise self._failure(exc) from exc

    def list(self, cls: type[_M], envelope: str) -> list[_M]:
        """Decode a list of models (bare or enveloped)."""
        try:
            return decode_list(self.data, cls, envelope)
        except DecodeFailure as exc:
            raise self._failure(exc) from exc

    def overrides(self) -> Overrides:
        """Decode an overrides object (bare or enveloped)."""
        try:
            return decode_overrides(self.data)
        except DecodeFailure as exc:
            raise self._failure(exc) from exc


class Transport:
    """Sends requests for one client. Not public: reach it through ``StreamrunClient``."""

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str,
        session: aiohttp.ClientSession | None,
        retry: RetryPolicy,
        timeout: float,
        max_response_bytes: int,
        user_agent: str,
    ) -> None:
        self._api_key = api_key
        self.base_url = base_url
        self._session = session
        self._owns_session = session is None
        self.retry = retry
        self.timeout = timeout
        self.max_response_bytes = max_response_bytes
        self._headers = {
            "Authorization": f"Bearer {api_key}",
            "Accept": "application/json",
            "User-Agent": user_agent,
        }
        self.closed = False

    def __repr__(self) -> str:
        return f"<Transport {self.base_url}>"

    def url(self, segments: Iterable[str]) -> URL:
        """The URL of an API path given as already-quoted segments."""
        return _url(f"{self.base_url}{API_PREFIX}/{'/'.join(segments)}")

    def _session_for_use(self) -> aiohttp.ClientSession:
        if self.closed:
            raise ClientClosedError("this StreamrunClient is closed; create a new one")
        if self._session is None:
            # Created on first use so that it binds to the loop that actually runs it.
            self._session = aiohttp.ClientSession()
        elif self._session.closed:
            raise ClientClosedError("the aiohttp session passed to StreamrunClient is closed")
        return self._session

    async def aclose(self) -> None:
        """Close the session if this transport made it; the caller's session is left open."""
        self.closed = True
        if self._owns_session and self._session is not None:
            await self._session.close()

    async def request(
        self,
        method: str,
        segments: Iterable[str],
        *,
        json_body: Any = None,
        retry: RetryPolicy | None = None,
    ) -> Response:
        """Send one call (with retries) and return the successful response."""
        self._session_for_use()
        url = self.url(segments)
        body = None if json_body is None else json.dumps(json_body).encode()
        attempts = 0

        async def attempt(seconds: float) -> Response:
            nonlocal attempts
            attempts += 1
            return await self._attempt(method, url, body, seconds, attempts)

        return await call_with_retries(
            retry or self.retry,
            attempt,
            method=method,
            url=url.path,
            idempotent=method in _IDEMPOTENT,
            attempt_timeout=self.timeout,
        )

    async def _attempt(
        self, method: str, url: URL, body: bytes | None, seconds: float, attempt: int
    ) -> Response:
        session = self._session_for_use()
        headers = self._headers
        if body is not None:
            headers = {**headers, "Content-Type": "application/json"}
        path = url.path
        started = time.monotonic()
        garbled: str | None = None
        try:
            async with session.request(
                method,
                url,
                data=body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=seconds),
                # A redirect could carry the key to another host: never follow one.
                allow_redirects=False,
                # Statuses are ours to map, whatever the caller's session says.
                raise_for_status=False,
            ) as resp:
                raw = await self._read_capped(resp, method, path)
                status = resp.status
                resp_headers = resp.headers
        except (APIConnectionError, ResponseDecodeError):
            raise
        except aiohttp.ClientResponseError as exc:
            # Not valid HTTP. This error keeps the request's headers, the key among them, in
            # request_info: keep its message only, and raise ours outside this block so that
            # it is neither the cause nor the context of ours (error trackers store both).
            garbled = body_preview(f"{type(exc).__name__}: {exc.status}, {exc.message}")
        except aiohttp.ConnectionTimeoutError as exc:
            raise APITimeoutError(
                f"{method} {path}: timed out connecting after {seconds:.1f}s",
                method=method,
                url=path,
            ) from exc
        except TimeoutError as exc:
            raise APITimeoutError(
                f"{method} {path}: no complete answer within {seconds:.1f}s"
                + self._unknown_suffix(method),
                method=method,
                url=path,
                outcome_unknown=True,
            ) from exc
        except aiohttp.ClientConnectorError as exc:
            raise APIConnectionError(
                f"{method} {path}: could not connect ({exc.os_error or exc})",
                method=method,
                url=path,
            ) from exc
        except aiohttp.ClientError as exc:
            raise APIConnectionError(
                f"{method} {path}: the connection failed after the request was sent "
                f"({type(exc).__name__})" + self._unknown_suffix(method),
                method=method,
                url=path,
                outcome_unknown=True,
            ) from exc
        if garbled is not None:
            raise APIConnectionError(
                f"{method} {path}: the answer was not valid HTTP "
                f"({garbled.replace(self._api_key, _REDACTED)})" + self._unknown_suffix(method),
                method=method,
                url=path,
                outcome_unknown=True,
            )
        elapsed = time.monotonic() - started
        request_id = resp_headers.get("X-Request-Id")
        _log.debug(
            "%s %s -> %d in %.3fs (attempt %d, request id %s)",
            method,
            path,
            status,
            elapsed,
            attempt,
            request_id,
        )
        if 200 <= status < 300:
            return Response(
                method=method,
                url=path,
                status=status,
                headers=resp_headers,
                data=self._parse_json(raw, method, path, status),
                request_id=request_id,
                redact=self._redact_json,
            )
        raise self._status_error(method, path, status, raw, resp_headers, request_id)

    @staticmethod
    def _unknown_suffix(method: str) -> str:
        if method in _IDEMPOTENT:
            return ""
        return (
            "; the server may have acted on it, so the outcome is unknown "
            "(it was not retried: that could launch twice)"
        )

    async def _read_capped(self, resp: aiohttp.ClientResponse, method: str, path: str) -> bytes:
        cap = self.max_response_bytes
        length = resp.content_length
        if length is not None and length > cap:
            raise self._too_large(method, path, resp.status)
        if length is not None and hdrs.CONTENT_ENCODING not in resp.headers:
            # A declared, uncompressed size within the cap (aiohttp stops at it): one read.
            # A compressed body may inflate far beyond its length, so it is counted below.
            return await resp.read()
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.content.iter_any():
            size += len(chunk)
            if size > cap:
                raise self._too_large(method, path, resp.status)
            chunks.append(chunk)
        return b"".join(chunks)

    def _too_large(self, method: str, path: str, status: int) -> ResponseDecodeError:
        return ResponseDecodeError(
            f"{method} {path}: the response exceeds the {self.max_response_bytes} byte cap",
            method=method,
            url=path,
            status=status,
            outcome_unknown=method not in _IDEMPOTENT,
        )

    def _redact(self, raw: bytes) -> str:
        return raw.decode("utf-8", "replace").replace(self._api_key, _REDACTED)

    def _redact_json(self, value: Any) -> Any:
        if isinstance(value, str):
            return value.replace(self._api_key, _REDACTED)
        if isinstance(value, list):
            return [self._redact_json(item) for item in value]
        if isinstance(value, dict):
            return {self._redact_json(k): self._redact_json(v) for k, v in value.items()}
        return value

    def _parse_json(self, raw: bytes, method: str, path: str, status: int) -> Any:
        if not raw.strip():
            return None
        try:
            return json_loads(raw)
        except (ValueError, RecursionError) as exc:  # stdlib json recurses on nesting
            text = self._redact(raw)
            raise ResponseDecodeError(
                f"{method} {path}: the answer is not JSON: {body_preview(text)}",
                method=method,
                url=path,
                body=text,
                status=status,
                outcome_unknown=method not in _IDEMPOTENT,
            ) from exc

    def _status_error(
        self,
        method: str,
        path: str,
        status: int,
        raw: bytes,
        headers: CIMultiDictProxy[str],
        request_id: str | None,
    ) -> APIStatusError:
        text = raw.decode("utf-8", "replace")
        try:
            # Parsed before redacting: JSON escapes ("\\/", "\\u0073") hide an echoed key
            # from a text search, and json.loads would turn them back into the key.
            data: Any = self._redact_json(json.loads(text)) if text.strip() else None
        except (ValueError, RecursionError):
            data = None
        text = text.replace(self._api_key, _REDACTED)
        message = _error_message(data, text)
        cls = _STATUS_ERRORS.get(status)
        if cls is None:
            cls = ServerError if status >= 500 else APIStatusError
        if status == 400 and any(m in text.lower() for m in _NO_CAPACITY_MARKERS):
            cls = NoCapacityError
        # A 5xx other than 503 may come after the server acted (a launch made, the
        # answer lost on the way back).
        unknown = method not in _IDEMPOTENT and status >= 500 and status != 503
        suffix = self._unknown_suffix(method) if unknown else ""
        return cls(
            f"{method} {path} -> {status}: {message}{suffix}",
            method=method,
            url=path,
            status=status,
            body=data if data is not None else text,
            request_id=request_id,
            retry_after=_retry_after(headers.get("Retry-After")),
            outcome_unknown=unknown,
        )
