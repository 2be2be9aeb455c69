"""StreamrunClient: configuration, the transport and the resource namespaces."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from functools import cached_property
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import aiohttp

from ._exceptions import InvalidArgumentError, InvalidArgumentTypeError, MissingAPIKeyError
from ._http import Transport, check_base_url
from ._models import Instance
from ._resources import Configurations, Destinations, InstanceRequests, Instances
from ._retry import RetryPolicy
from ._watch import Poller, PollPolicy

if TYPE_CHECKING:
    from ._bulk import BulkLaunch, LaunchEvent, LaunchReport, Plan

__all__ = ["DEFAULT_BASE_URL", "StreamrunClient"]

DEFAULT_BASE_URL = "https://streamrun.com"
API_KEY_ENV = "STREAMRUN_API_KEY"
_DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024 * 1024
# The poller retries on its next tick, within each wait's deadline, so a failed poll
# must not hold the shared loop in a retry sleep of its own.
_POLL_RETRY = RetryPolicy.disabled()


def _version() -> str:
    from . import __version__

    return __version__


def _check_api_key(api_key: str | None) -> str:
    if api_key is None:
        api_key = os.environ.get(API_KEY_ENV)
        if not api_key:
            raise MissingAPIKeyError(
                f"no API key: pass api_key=... or set the {API_KEY_ENV} environment variable"
            )
    if not isinstance(api_key, str):
        raise InvalidArgumentTypeError(f"api_key must be a str, got {type(api_key).__name__}")
    if not api_key or api_key != api_key.strip() or not api_key.isprintable():
        # The message must not quote the key: it may be a real one with a stray newline.
        raise InvalidArgumentError("api_key must be non-empty printable text without spaces")
    return api_key


def _check_timeout(timeout: float | timedelta) -> float:
    seconds = timeout.total_seconds() if isinstance(timeout, timedelta) else timeout
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise InvalidArgumentTypeError(f"timeout must be seconds or a timedelta, got {timeout!r}")
    if not seconds > 0:
        raise InvalidArgumentError(f"timeout must be positive, got {timeout!r}")
    return float(seconds)


class StreamrunClient:
    """An async client for the Streamrun API. Use it with ``async with``::

        async with StreamrunClient() as client:   # key from STREAMRUN_API_KEY
            for cfg in await client.configurations.list():
                print(cfg.id, cfg.name)

    ``session``: an ``aiohttp.ClientSession`` you own and close yourself; otherwise the
    client makes one on first use and closes it in :meth:`aclose`. ``timeout`` bounds each
    attempt; ``retry`` bounds the whole call. Plain ``http://`` is refused except to
    loopback hosts (the emulator) or with ``allow_insecure=True``.
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str = DEFAULT_BASE_URL,
        session: aiohttp.ClientSession | None = None,
        retry: RetryPolicy | None = None,
        timeout: float | timedelta = 30.0,
        allow_insecure: bool = False,
        max_response_bytes: int = _DEFAULT_MAX_RESPONSE_BYTES,
        poll: PollPolicy | None = None,
    ) -> None:
        key = _check_api_key(api_key)
        if session is not None and not isinstance(session, aiohttp.ClientSession):
            raise InvalidArgumentTypeError("session must be an aiohttp.ClientSession")
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise InvalidArgumentTypeError("retry must be a RetryPolicy")
        if poll is not None and not isinstance(poll, PollPolicy):
            raise InvalidArgumentTypeError("poll must be a PollPolicy")
        self._poll_policy = poll or PollPolicy()
        if not isinstance(max_response_bytes, int) or max_response_bytes < 1:
            raise InvalidArgumentError("max_response_bytes must be a positive int")
        self._transport = Transport(
            api_key=key,
            base_url=check_base_url(base_url, allow_insecure=allow_insecure),
            session=session,
            retry=retry or RetryPolicy(),
            timeout=_check_timeout(timeout),
            max_response_bytes=max_response_bytes,
            user_agent=f"streamrun-async/{_version()}",
        )

    def __repr__(self) -> str:
        state = " closed" if self.closed else ""
        return f"<StreamrunClient {self.base_url}{state}>"

    @property
    def base_url(self) -> str:
        """The API's base URL (without ``/api/v1``)."""
        return self._transport.base_url

    @property
    def retry(self) -> RetryPolicy:
        """The retry policy of every call of this client."""
        return self._transport.retry

    @property
    def closed(self) -> bool:
        """True once :meth:`aclose` ran; a closed client refuses every call."""
        return self._transport.closed

    @cached_property
    def configurations(self) -> Configurations:
        """Configurations: list, get, launch, and their instances."""
        return Configurations(self, self._transport)

    @cached_property
    def instance_requests(self) -> InstanceRequests:
        """Instance requests: follow launches."""
        return InstanceRequests(self, self._transport)

    @cached_property
    def instances(self) -> Instances:
        """Instances: list, get, stop, restart, overrides."""
        return Instances(self, self._transport)

    @cached_property
    def destinations(self) -> Destinations:
        """Destinations to stream to."""
        return Destinations(self, self._transport)

    @cached_property
    def _poller(self) -> Poller:
        instances = Instances(self, self._transport, _POLL_RETRY)
        configurations = Configurations(self, self._transport, _POLL_RETRY)
        requests = InstanceRequests(self, self._transport, _POLL_RETRY)

        async def list_instances(configuration_id: str | None) -> list[Instance]:
            if configuration_id is None:
                return await instances.list()
            return await configurations.list_instances(configuration_id)

        return Poller(self._poll_policy, list_instances, requests.get)

    def _bulk(
        self,
        plan: Plan,
        concurrency: int,
        max_per_request: int,
        fail_fast: bool,
        rollback: bool,
        on_progress: Callable[[LaunchEvent], Any] | None,
        report: LaunchReport | None,
    ) -> BulkLaunch:
        # Imported on first use: most programs never bulk-launch, and import time counts.
        from ._bulk import BulkLaunch, normalize_plan

        return BulkLaunch(
            self,
            normalize_plan(plan),
            concurrency=concurrency,
            max_per_request=max_per_request,
            fail_fast=fail_fast,
            rollback=rollback,
            on_progress=on_progress,
            report=report,
        )

    async def launch_many(
        self,
        plan: Plan,
        *,
        concurrency: int = 8,
        max_per_request: int = 25,
        wait: bool = False,
        timeout: float | None = 900.0,
        fail_fast: bool = False,
        rollback: bool = False,
        on_progress: Callable[[LaunchEvent], Any] | None = None,
        report: LaunchReport | None = None,
    ) -> LaunchReport:
        """Launch many instances across configurations, each exactly once.

        ``plan`` maps configuration ids to :class:`InstanceSettings` (names unique in the
        plan, checked before any request), or is a sequence of :class:`LaunchSpec`.
        At most ``concurrency`` calls run at once; a configuration's instances go out in
        POSTs of up to ``max_per_request``. A launch whose answer was lost is reconciled
        by listing the configuration and relaunching only the names truly missing.
        Failures are per configuration unless ``fail_fast`` (then :class:`LaunchError`).
        ``wait=True`` waits for every request to run, through the shared poller, within
        ``timeout`` seconds for the whole plan. ``rollback=True`` stops what this call
        launched if it fails or is cancelled. Pass ``report=`` to keep the outcome even
        when the call is cancelled.
        """
        bulk = self._bulk(
            plan, concurrency, max_per_request, fail_fast, rollback, on_progress, report
        )
        return await bulk.run(wait=wait, timeout=timeout)

    def launch_many_iter(
        self,
        plan: Plan,
        *,
        concurrency: int = 8,
        max_per_request: int = 25,
        wait: bool = True,
        timeout: float | None = 900.0,
        fail_fast: bool = False,
        rollback: bool = False,
        report: LaunchReport | None = None,
    ) -> AsyncIterator[LaunchEvent]:
        """``launch_many`` as an async iterator of :class:`LaunchEvent`, for progress UIs.

        Pass ``report=LaunchReport()`` to read the outcome once the iteration ends.
        Breaking out of the loop cancels the launch (rolling back if ``rollback``).
        """
        from ._bulk import iterate_launch

        bulk = self._bulk(plan, concurrency, max_per_request, fail_fast, rollback, None, report)
        return iterate_launch(bulk, wait=wait, timeout=timeout)

    async def aclose(self) -> None:
        """Close the client (and its own session; never a session you passed in).

        Waiters and watches still running end with ``ClientClosedError``.
        """
        # Closed even if never used, so that a later wait fails at once instead of polling.
        await self._poller.close()
        await self._transport.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
