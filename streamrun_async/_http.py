"""The transport: the one place that talks to aiohttp's client.

It owns (or borrows) the session, builds URLs from safely quoted path segments, sends
JSON with the bearer key, maps statuses to typed errors, caps response sizes, logs each
attempt at DEBUG without the key, runs every call through the retry policy, and follows
a list's pages. Every body it quotes in an error is scrubbed of the API key and of the
stream keys the client has decoded.
"""

from __future__ import annotations

import asyncio
import copy
import email.utils
import functools
import ipaddress
import json
import logging
import re
import time
import typing
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp
import attrs
from aiohttp import hdrs
from multidict import CIMultiDictProxy
from yarl import URL

from . import _models
from ._converter import (
    DecodeFailure,
    decode_list,
    decode_object,
    decode_overrides,
    json_loads,
    list_items,
)
from ._events import Emitter, RequestStarted, route_of_path
from ._exceptions import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ClientClosedError,
    ConflictError,
    EventLoopError,
    IncompleteListError,
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
from ._models import Instance, Overrides
from ._retry import RetryPolicy, call_with_retries

__all__ = [
    "MAX_PAGES",
    "Response",
    "Secrets",
    "Transport",
    "check_base_url",
    "env_proxy",
    "next_page",
    "path_segment",
]

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
# A launch refused for want of room: "0 instance slots", "No free instance slot",
# "Maximum number of instances reached", "no capacity".
_NO_CAPACITY = re.compile(r"\bslots?\b|capacity|max(?:imum)? number of instances", re.IGNORECASE)
_NO_CAPACITY_STATUSES = frozenset({400, 402, 403, 409})
_REDACTED = "[REDACTED]"
# Stream keys remembered per client for scrubbing; the oldest go first beyond this.
_MAX_SECRETS = 10_000
# Shorter values are not worth scrubbing: replacing them would garble messages.
_MIN_SECRET_LENGTH = 8
MAX_PAGES = 100
_NEXT_FIELDS = ("next", "nextPage", "nextCursor")
_LINK = re.compile(r"<([^>]*)>((?:\s*;\s*[^;,]*)*)")
_LINK_REL = re.compile(r"""\brel\s*=\s*"?([^";,]*)"?""", re.IGNORECASE)


def path_segment(value: object, what: str) -> str:
    """Check an id and quote it as exactly one URL path segment."""
    if not isinstance(value, str):
        raise InvalidArgumentTypeError(f"{what} must be a str, got {type(value).__name__}")
    if not value:
        raise InvalidArgumentError(f"{what} must not be empty")
    if value in (".", ".."):
        # Even quoted as %2E, proxies normalise these: ".." would turn
        # DELETE /instances/.. into DELETE /instances, stopping everything.
        raise InvalidArgumentError(f"{what} must not be {value!r}")
    try:
        return quote(value, safe="")
    except UnicodeEncodeError:  # lone surrogates: a str that no URL can carry
        raise InvalidArgumentError(f"{what} is not valid Unicode text") from None


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
    if url.path.rstrip("/").endswith(API_PREFIX):
        raise InvalidArgumentError(
            f"base_url must not end in {API_PREFIX} (the SDK adds it): drop it, as in "
            f"{str(url.with_path(url.path.rstrip('/')[: -len(API_PREFIX)] or '/')).rstrip('/')!r}"
        )
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


class Secrets:
    """The API key and the stream keys one client has decoded, scrubbed from what it quotes.

    Stream keys of at least 8 characters are remembered, the 10,000 most recently
    decoded; JSON values under a stream-key field are scrubbed even when never decoded.
    """

    def __init__(self, api_key: str) -> None:
        self._api_key = api_key
        self._keys: OrderedDict[str, None] = OrderedDict()

    def __repr__(self) -> str:
        return f"<Secrets: the API key and {len(self._keys)} stream keys>"

    def learn(self, models: Iterable[Instance]) -> None:
        """Remember the stream keys the decoded instances hold."""
        keys = self._keys
        for model in models:
            # Most list items hold no key: two reads skip them (a full scan of each one's
            # raw would cost twice the JSON parse of a 10,000-instance list).
            if model.stream_key is None and not model.element_states:
                continue
            for value in _models.secret_values(model):
                if len(value) >= _MIN_SECRET_LENGTH:
                    keys[value] = None
                    keys.move_to_end(value)
        while len(keys) > _MAX_SECRETS:
            keys.popitem(last=False)

    def text(self, text: str) -> str:
        """``text`` with every known secret replaced by ``[REDACTED]``."""
        text = text.replace(self._api_key, _REDACTED)
        for key in self._keys:
            if key in text:
                text = text.replace(key, _REDACTED)
        return text

    def json(self, value: Any) -> Any:
        """A copy of decoded JSON with every known secret, and every stream-key field, scrubbed."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.json(item) for item in value]
        if isinstance(value, dict):
            return {
                self.json(k): _REDACTED
                if isinstance(v, str) and _models.is_stream_key_field(k)
                else self.json(v)
                for k, v in value.items()
            }
        return value


@attrs.frozen
class Response:
    """A successful answer: status, headers and the decoded JSON (``None`` if empty)."""

    method: str
    url: str
    status: int
    headers: CIMultiDictProxy[str] = attrs.field(repr=False)
    data: Any = attrs.field(repr=False)
    request_id: str | None
    # Scrubs secrets from what an error carries, should a server echo them back, and
    # learns the stream keys of what is decoded.
    secrets: Secrets | None = attrs.field(default=None, repr=False, eq=False)

    def _failure(self, exc: DecodeFailure) -> ResponseDecodeError:
        scrub = self.secrets.json if self.secrets is not None else _same
        try:
            body = scrub(self.data)
        except RecursionError:
            body = "(a body nested too deeply to keep)"
        return ResponseDecodeError(
            scrub(f"{self.method} {self.url}: {exc}"),
            method=self.method,
            url=self.url,
            body=body,
            status=self.status,
            outcome_unknown=self.method not in _IDEMPOTENT,
        )

    def object(self, cls: type[_M], envelope: str) -> _M:
        """Decode one model (bare or enveloped)."""
        try:
            model = decode_object(self.data, cls, envelope)
        except DecodeFailure as exc:
            raise self._failure(exc) from exc
        if isinstance(model, Instance) and self.secrets is not None:
            self.secrets.learn((model,))
        return model

    def items(self, cls: type[Any], envelope: str) -> list[Any]:
        """The raw parsed items of a list of ``cls`` (bare or enveloped), not decoded; no body
        (a 204) is an empty list."""
        try:
            return list_items(self.data, cls, envelope)
        except DecodeFailure as exc:
            raise self._failure(exc) from exc

    def list(self, cls: type[_M], envelope: str) -> list[_M]:
        """Decode a list of models (bare or enveloped); no body (a 204) is an empty list."""
        if self.data is None:
            return []
        try:
            models = decode_list(self.data, cls, envelope)
        except DecodeFailure as exc:
            raise self._failure(exc) from exc
        if cls is Instance and self.secrets is not None:
            self.secrets.learn(typing.cast("list[Instance]", models))
        return models

    def overrides(self) -> Overrides:
        """Decode an overrides object (bare or enveloped)."""
        try:
            return decode_overrides(self.data)
        except DecodeFailure as exc:
            raise self._failure(exc) from exc


def _same(value: Any) -> Any:
    return value


def _next_link(headers: CIMultiDictProxy[str]) -> str | None:
    for value in headers.getall(hdrs.LINK, ()):
        for match in _LINK.finditer(value):
            rel = _LINK_REL.search(match.group(2))
            if rel is not None and "next" in rel.group(1).lower().split():
                return match.group(1).strip()
    return None


class _Unfollowable(ValueError):
    """A next page is named in a form that cannot be followed."""


def next_page(response: Response, current: URL, first: URL) -> URL | None:
    """The URL of the page after ``response`` (read from ``current``), if it names one.

    A ``rel="next"`` Link header first, else a ``next`` / ``nextPage`` / ``nextCursor``
    field of an object body (a string, an integer, or an object with ``href``/``url``). A
    URL or path is resolved against ``current``; a bare cursor token is sent as
    ``?cursor=`` on the first page's URL, an integer ``nextPage`` as ``?page=``. Raises
    ``ValueError`` when a next page is named in a form that cannot be followed.
    """
    link = _next_link(response.headers)
    if link:
        return current.join(URL(link))
    data = response.data
    if not isinstance(data, dict):
        return None
    for field in _NEXT_FIELDS:
        value = data.get(field)
        if isinstance(value, dict) and ("href" in value or "url" in value):
            value = value.get("href") or value.get("url")
        if value is None or value is False or value == "":
            continue
        if isinstance(value, int) and not isinstance(value, bool):
            return first.update_query(page=value)
        if not isinstance(value, str) or not value.strip():
            raise _Unfollowable(f"a {field!r} field the SDK cannot follow")
        value = value.strip()
        if value.startswith(("https://", "http://")):
            return current.join(URL(value))
        if field != "nextCursor" and ("?" in value or value.startswith("/")):
            return current.join(URL(value))
        return first.update_query(cursor=value)
    return None


def _origin(url: URL) -> tuple[str, str | None, int | None]:
    return url.scheme, url.host, url.port


class _Connection:
    """What every view of one client's transport shares: the session and its loop."""

    def __init__(self, session: aiohttp.ClientSession | None, max_connections: int) -> None:
        self.session = session
        self.owns_session = session is None
        self.max_connections = max_connections
        self.loop: asyncio.AbstractEventLoop | None = None
        # Sessions of a loop that has ended, closed from the next loop.
        self.stale: list[aiohttp.ClientSession] = []
        self.closed = False
        # The environment's proxy for the API's host, read when our session is made.
        self.proxy: URL | None = None
        self.proxy_headers: dict[str, str] | None = None


def env_proxy(url: URL) -> tuple[URL | None, dict[str, str] | None]:
    """The proxy ``HTTPS_PROXY`` / ``HTTP_PROXY`` name for ``url``, unless ``NO_PROXY`` spares it.

    Read once per session rather than through aiohttp's ``trust_env``, which looks the proxy
    and ``~/.netrc`` up in a thread on every request (and fails every request whose host has
    netrc credentials, since the client sends its own ``Authorization``).
    """
    import urllib.request  # only when a session is made: most imports never need it

    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get(url.scheme)
    if not proxy or urllib.request.proxy_bypass(url.host or ""):
        return None, None
    parsed = URL(proxy if "://" in proxy else f"http://{proxy}")
    auth = aiohttp.BasicAuth.from_url(parsed)
    # The proxy's own credentials, from its URL, are for the proxy only.
    headers = None if auth is None else {"Proxy-Authorization": auth.encode()}
    return parsed.with_user(None), headers


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
        max_connections: int = 100,
        events: Emitter | None = None,
    ) -> None:
        self._api_key = api_key
        # The client's hooks; views made by with_options share them.
        self.events = events if events is not None else Emitter()
        self.base_url = base_url
        self._origin = _origin(URL(base_url))
        self._conn = _Connection(session, max_connections)
        self.secrets = Secrets(api_key)
        self.retry = retry
        self.timeout = timeout
        self.max_response_bytes = max_response_bytes
        self._headers = {
            "Authorization": f"Bearer {api_key}",
            "Accept": "application/json",
            "User-Agent": user_agent,
        }

    def __repr__(self) -> str:
        return f"<Transport {self.base_url}>"

    @property
    def closed(self) -> bool:
        """True once the client that owns this transport (or any view of it) was closed."""
        return self._conn.closed

    @property
    def _session(self) -> aiohttp.ClientSession | None:
        return self._conn.session

    def with_options(
        self, *, retry: RetryPolicy | None = None, timeout: float | None = None
    ) -> Transport:
        """A view with another retry policy or attempt timeout, sharing the session.

        ``None`` keeps this transport's value.
        """
        view = copy.copy(self)
        if retry is not None:
            view.retry = retry
        if timeout is not None:
            view.timeout = timeout
        return view

    def url(self, segments: Iterable[str]) -> URL:
        """The URL of an API path given as already-quoted segments."""
        return _url(f"{self.base_url}{API_PREFIX}/{'/'.join(segments)}")

    def check_loop(self) -> bool:
        """Bind to the running event loop; True if it replaced one that has ended.

        A loop that ended (``asyncio.run`` returned) leaves its session behind: the next
        loop gets a new one. A loop still running elsewhere raises ``EventLoopError``.
        """
        loop = asyncio.get_running_loop()
        conn = self._conn
        if conn.loop is loop:
            return False
        if conn.loop is None:
            conn.loop = loop
            return False
        if conn.loop.is_running():
            raise EventLoopError(
                "this StreamrunClient is in use in another event loop that is still running; "
                "make one client per event loop (per thread)"
            )
        if not conn.owns_session:
            raise EventLoopError(
                "the aiohttp session passed to StreamrunClient belongs to an event loop that "
                "has ended; pass a session made in the running loop"
            )
        if conn.session is not None:
            conn.stale.append(conn.session)
            conn.session = None
        conn.loop = loop
        return True

    def _session_for_use(self) -> aiohttp.ClientSession:
        conn = self._conn
        if conn.closed:
            raise ClientClosedError("this StreamrunClient is closed; create a new one")
        session = conn.session
        if session is None:
            # Created on first use so that it binds to the loop that actually runs it.
            session = conn.session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=conn.max_connections)
            )
            # Proxies from HTTPS_PROXY / HTTP_PROXY / NO_PROXY, as curl and requests do.
            conn.proxy, conn.proxy_headers = env_proxy(URL(self.base_url))
        elif session.closed:
            raise ClientClosedError("the aiohttp session passed to StreamrunClient is closed")
        return session

    async def _close_stale(self) -> None:
        stale, self._conn.stale = self._conn.stale, []
        for session in stale:
            # Its loop has ended: the connector cannot touch its sockets, only let them go.
            await session.close()

    async def aclose(self) -> None:
        """Close the session if this transport made it; the caller's session is left open."""
        conn = self._conn
        conn.closed = True
        if conn.loop is not None and conn.owns_session:
            # From another loop still running, the session cannot be closed: say so
            # (EventLoopError) rather than leave it open in silence.
            self.check_loop()
        await self._close_stale()
        if conn.owns_session and conn.session is not None:
            await conn.session.close()

    async def request(
        self,
        method: str,
        segments: Iterable[str],
        *,
        json_body: Any = None,
        retry: RetryPolicy | None = None,
        lenient: bool = False,
        see_other: bool = False,
    ) -> Response:
        """Send one call (with retries) and return the successful response.

        ``lenient``: a 2xx body that is not JSON is kept as text instead of failing (stops,
        restarts and launches succeed whatever their body). ``see_other``: a 303 is an
        answer (launches), never followed.
        """
        body = None if json_body is None else json.dumps(json_body).encode()
        return await self._request_url(
            method, self.url(segments), body, retry, lenient=lenient, see_other=see_other
        )

    async def _request_url(
        self,
        method: str,
        url: URL,
        body: bytes | None,
        retry: RetryPolicy | None,
        *,
        lenient: bool = False,
        see_other: bool = False,
    ) -> Response:
        if self._conn.loop is not asyncio.get_running_loop():
            self.check_loop()
        if self._conn.stale:
            await self._close_stale()
        self._session_for_use()
        attempts = 0
        events = self.events
        # Without hooks no event is made: the happy path pays for one truth test.
        observed = bool(events)
        call_id = events.next_id() if observed else 0
        route = route_of_path(url.path) if observed else ""

        async def attempt(seconds: float) -> Response:
            nonlocal attempts
            attempts += 1
            if not observed:
                return await self._attempt(method, url, body, seconds, attempts, lenient, see_other)
            started = RequestStarted(call_id=call_id, method=method, route=route, attempt=attempts)
            return await events.attempt(
                started,
                lambda extra: self._attempt(
                    method, url, body, seconds, started.attempt, lenient, see_other, extra
                ),
            )

        return await call_with_retries(
            retry or self.retry,
            attempt,
            method=method,
            url=url.path,
            idempotent=method in _IDEMPOTENT,
            attempt_timeout=self.timeout,
            route=route,
            events=events,
            call_id=call_id,
        )

    async def get_list(
        self,
        segments: Iterable[str],
        cls: type[_M],
        envelope: str,
        *,
        retry: RetryPolicy | None = None,
    ) -> list[_M]:
        """GET a list and every page after it, decoded, or raise IncompleteListError.

        The pages are read as ``get_items`` reads them; items without a string id are left out.
        """
        items = await self.get_items(segments, cls, envelope, retry=retry)
        models = decode_list(items, cls, envelope)
        if cls is Instance:
            self.secrets.learn(typing.cast("list[Instance]", models))
        return models

    async def get_items(
        self,
        segments: Iterable[str],
        cls: type[Any],
        envelope: str,
        *,
        retry: RetryPolicy | None = None,
    ) -> list[Any]:
        """GET a list of ``cls`` and every page after it, as one list of raw parsed items (not
        decoded), or raise IncompleteListError.

        Pages are followed on the base URL's host only, at most ``MAX_PAGES`` of them, each
        through the same retry policy. An id on two pages is kept once, as last seen. A
        first page that fails raises its own error: nothing was read.
        """
        first = url = self.url(segments)
        response = await self._request_url("GET", url, None, retry)
        pages = [response.items(cls, envelope)]
        seen = {url}
        while True:
            try:
                following = next_page(response, url, first)
            except ValueError as exc:  # a field of another shape, or a link that is no URL
                raise self._incomplete(first, str(exc), pages) from None
            if following is None:
                break
            problem = None
            if _origin(following) != self._origin:
                problem = f"the next page is on another host ({following.host})"
            elif following in seen:
                problem = "the next-page link repeats a page already read"
            elif len(pages) >= MAX_PAGES:
                problem = f"it has more than {MAX_PAGES} pages"
            if problem is not None:
                raise self._incomplete(first, problem, pages)
            url = following
            seen.add(url)
            try:
                response = await self._request_url("GET", url, None, retry)
                pages.append(response.items(cls, envelope))
            except APIError as exc:
                problem = f"page {len(pages) + 1} failed ({type(exc).__name__}: {exc})"
                retry_after = getattr(exc, "retry_after", None)
                raise self._incomplete(first, problem, pages, retry_after) from exc
        if len(pages) == 1:
            return pages[0]
        # Offset pages shift while the list changes: an item may show on two of them. Items
        # without a string id are kept apart (decoding leaves them out, with its warning).
        merged: dict[Any, Any] = {}
        for page in pages:
            for item in page:
                key = item.get("id") if item.__class__ is dict else None
                merged[key if key.__class__ is str and key else id(item)] = item
        return list(merged.values())

    @staticmethod
    def _incomplete(
        first: URL, problem: str, pages: list[list[Any]], retry_after: float | None = None
    ) -> IncompleteListError:
        read = sum(map(len, pages))
        return IncompleteListError(
            f"GET {first.path}: the list cannot be read whole: {problem} "
            f"({len(pages)} pages, {read} items read)",
            method="GET",
            url=first.path,
            pages_read=len(pages),
            items_read=read,
            retry_after=retry_after,
        )

    async def _attempt(
        self,
        method: str,
        url: URL,
        body: bytes | None,
        seconds: float,
        attempt: int,
        lenient: bool,
        see_other: bool,
        extra_headers: Mapping[str, str] | None = None,
    ) -> Response:
        session = self._session_for_use()
        conn = self._conn
        headers = self._headers
        if extra_headers:
            # Hooks may add headers (trace context), never replace ours.
            headers = {**extra_headers, **headers}
        if body is not None:
            headers = {**headers, "Content-Type": "application/json"}
        if conn.proxy_headers and url.scheme == "http":
            # aiohttp sends proxy headers on the CONNECT of https only; plain http goes to
            # the proxy as the request itself.
            headers = {**headers, **conn.proxy_headers}
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
                # None with a caller's session: its own trust_env decides.
                proxy=conn.proxy,
                proxy_headers=conn.proxy_headers,
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
                f"({self.secrets.text(garbled)})" + self._unknown_suffix(method),
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
            extra={
                "streamrun": {
                    "event": "response",
                    "method": method,
                    "url": path,
                    "status": status,
                    "duration": elapsed,
                    "attempt": attempt,
                    "request_id": request_id,
                }
            },
        )
        if 200 <= status < 300 or (see_other and status == 303):
            return Response(
                method=method,
                url=path,
                status=status,
                headers=resp_headers,
                data=self._parse_json(raw, method, path, status, lenient),
                request_id=request_id,
                secrets=self.secrets,
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

    def _parse_json(self, raw: bytes, method: str, path: str, status: int, lenient: bool) -> Any:
        if not raw.strip():
            return None
        try:
            return json_loads(raw)
        except (ValueError, RecursionError) as exc:  # stdlib json recurses on nesting
            if lenient:
                # The status says it happened; a body such as "OK" only says so again.
                return raw.decode("utf-8", "replace")
            text = self.secrets.text(raw.decode("utf-8", "replace"))
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
            data: Any = self.secrets.json(json.loads(text)) if text.strip() else None
        except (ValueError, RecursionError):
            data = None
        text = self.secrets.text(text)
        message = _error_message(data, text)
        cls = _STATUS_ERRORS.get(status)
        if cls is None:
            cls = ServerError if status >= 500 else APIStatusError
        if (
            method == "POST"
            and status in _NO_CAPACITY_STATUSES
            and _NO_CAPACITY.search(message if data is not None else text)
        ):
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
