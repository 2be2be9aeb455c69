"""StreamrunClient: configuration, the transport and the resource namespaces."""

from __future__ import annotations

import copy
import os
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import timedelta
from functools import cached_property
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self

import aiohttp

from ._events import Emitter, Hook
from ._exceptions import InvalidArgumentError, InvalidArgumentTypeError, MissingAPIKeyError
from ._http import API_PREFIX, Transport, check_base_url, path_segment
from ._models import Instance, InstanceRequest, check_timeout
from ._resources import Configurations, Destinations, InstanceRequests, Instances
from ._retry import RetryPolicy
from .watch import GetRequest, ListInstances, Poller, PollPolicy

if TYPE_CHECKING:
    from ._bulk import BulkLaunch, LaunchEvent, LaunchReport, OnExisting, Plan
    from ._coordinator import Coordinator
    from ._fleet import Fleet, FleetReport
    from .guard import Guard, Leases, Spend

__all__ = ["DEFAULT_BASE_URL", "StreamrunClient"]

DEFAULT_BASE_URL = "https://streamrun.com"
API_KEY_ENV = "STREAMRUN_API_KEY"
BASE_URL_ENV = "STREAMRUN_BASE_URL"
_DEFAULT_MAX_CONNECTIONS = 100
_DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024 * 1024
# The poller retries on its next tick, within each wait's deadline, so a failed poll
# must not hold the shared loop in a retry sleep of its own.
_POLL_RETRY = RetryPolicy.disabled()


def _poll_fetchers(transport: Transport) -> tuple[ListInstances, GetRequest]:
    """The poller's two calls, on a transport view that does not retry (the next tick is
    the retry). Lists come back as raw parsed items: the poller decodes only what changed."""

    async def list_instances(configuration_id: str | None) -> list[Any]:
        segments = ["instances"]
        if configuration_id is not None:
            segments = ["configurations", path_segment(configuration_id, "configuration_id")]
            segments.append("instances")
        return await transport.get_items(segments, Instance, "instances")

    async def get_request(request_id: str) -> InstanceRequest:
        segment = path_segment(request_id, "request_id")
        response = await transport.request("GET", ["instance-requests", segment])
        return response.object(InstanceRequest, "instanceRequest")

    return list_instances, get_request


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


def _base_url(base_url: str | None, allow_insecure: bool) -> str:
    if base_url is None:
        from_env = os.environ.get(BASE_URL_ENV, "").strip()
        if from_env.rstrip("/").endswith(API_PREFIX):
            # Say where the URL came from: the caller passed none.
            raise InvalidArgumentError(
                f"{BASE_URL_ENV} must not end in {API_PREFIX} (the SDK adds it): drop it"
            )
        base_url = from_env or DEFAULT_BASE_URL
    return check_base_url(base_url, allow_insecure=allow_insecure)


def _check_max_connections(value: int | None, session: aiohttp.ClientSession | None) -> int:
    if value is None:
        return _DEFAULT_MAX_CONNECTIONS
    if session is not None:
        raise InvalidArgumentError(
            "max_connections applies to the session the client makes: set the limit on the "
            "connector of the session you pass instead"
        )
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgumentTypeError(f"max_connections must be an int, got {value!r}")
    if value < 1:
        raise InvalidArgumentError(f"max_connections must be at least 1, got {value!r}")
    return value


def _check_launch_timeout(timeout: float | timedelta | None) -> float | None:
    # None is no deadline at all for launch_many, not a default one.
    return None if timeout is None else check_timeout(timeout)


class StreamrunClient:
    """An async client for the Streamrun API. Use it with ``async with``::

        async with StreamrunClient() as client:   # key from STREAMRUN_API_KEY
            for cfg in await client.configurations.list():
                print(cfg.id, cfg.name)

    ``base_url`` defaults to ``STREAMRUN_BASE_URL``, else ``https://streamrun.com``; it
    is the server's root, without ``/api/v1``. ``session``: an ``aiohttp.ClientSession``
    you own and close yourself; otherwise the client makes one on first use (honouring
    ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``NO_PROXY``, at most ``max_connections`` open
    connections, 100 by default) and closes it in :meth:`aclose`. ``timeout`` bounds each
    attempt; ``retry`` bounds the whole call. Plain ``http://`` is refused except to
    loopback hosts (the emulator) or with ``allow_insecure=True``. ``hooks``: callables
    (plain or ``async``) given every event of the client (requests, retries, poller ticks,
    waits, bulk launch steps); see the README's "Observing" section. ``coordinator``: a
    :class:`FileCoordinator` or :class:`RedisCoordinator` that makes ``launch_many``
    exactly-once across processes (one host, or many); without it, across this client's
    calls only. ``guard``: a :class:`Guard` that writes a lease before every launch, stops
    what outlives its lease and enforces a :class:`Budget` (README: "Guardrails").

    A client belongs to one event loop at a time: used again after its loop ended (a
    second ``asyncio.run``) it opens a new session; used from a second loop while the
    first still runs, it raises :class:`EventLoopError`.
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        session: aiohttp.ClientSession | None = None,
        retry: RetryPolicy | None = None,
        timeout: float | timedelta = 30.0,
        allow_insecure: bool = False,
        max_response_bytes: int = _DEFAULT_MAX_RESPONSE_BYTES,
        poll: PollPolicy | None = None,
        hooks: Iterable[Hook] | None = None,
        max_connections: int | None = None,
        coordinator: Coordinator | None = None,
        guard: Guard | None = None,
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
        if callable(hooks) or isinstance(hooks, (str, bytes)):
            raise InvalidArgumentTypeError("hooks must be a list of callables")
        self._events = Emitter(hooks)
        self._transport = Transport(
            api_key=key,
            base_url=_base_url(base_url, allow_insecure),
            session=session,
            retry=retry or RetryPolicy(),
            timeout=check_timeout(timeout),
            max_response_bytes=max_response_bytes,
            user_agent=f"streamrun-async/{_version()}",
            events=self._events,
            max_connections=_check_max_connections(max_connections, session),
        )
        # The client the caller made; views from with_options share its poller.
        self._root = self
        if coordinator is not None:
            from ._coordinator import Coordinator

            if not isinstance(coordinator, Coordinator):
                raise InvalidArgumentTypeError("coordinator must be a Coordinator")
        # launch_many's lock beyond this client (None: this client's calls only).
        self._coordinator = coordinator
        if guard is not None:
            from .guard import Guard

            if not isinstance(guard, Guard):
                raise InvalidArgumentTypeError("guard must be a Guard")
            guard._attach(
                self,
                emit=self._events.emit,
                add_snapshot_listener=lambda listener: self._poller.add_snapshot_listener(listener),
            )
        # Leases before every launch, their reaper and the budget (issue 14); None: unguarded.
        self._guard = guard

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
    def timeout(self) -> float:
        """The time limit of each attempt, in seconds."""
        return self._transport.timeout

    def with_options(
        self, *, retry: RetryPolicy | None = None, timeout: float | timedelta | None = None
    ) -> StreamrunClient:
        """A view of this client with another retry policy or attempt timeout.

        ``client.with_options(retry=RetryPolicy.disabled()).instances.list()``. The view
        shares this client's session, poller and lifetime: it is cheap to make per call,
        its ``aclose()`` does nothing, and closing this client closes it too. Options not
        given keep this client's values.
        """
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise InvalidArgumentTypeError("retry must be a RetryPolicy")
        seconds = None if timeout is None else check_timeout(timeout)
        root = self._root
        view = copy.copy(self)
        # Namespaces are bound to a transport: the view builds its own, on first use.
        for name in _BOUND_TO_TRANSPORT:
            view.__dict__.pop(name, None)
        view._transport = self._transport.with_options(retry=retry, timeout=seconds)
        # Waits through a view join the one poller of the client it came from.
        view.__dict__["_poller"] = root._poller
        return view

    @property
    def closed(self) -> bool:
        """True once :meth:`aclose` ran; a closed client refuses every call."""
        return self._transport.closed

    @cached_property
    def configurations(self) -> Configurations:
        """Configurations: list, get, launch, and their instances."""
        namespace = Configurations(self._transport, self._poller)
        namespace._guard = self._root._guard
        return namespace

    @property
    def guard(self) -> Guard | None:
        """The guard of this client's launches, if it has one."""
        return self._root._guard

    @property
    def leases(self) -> Leases:
        """The guard's leases: list, extend, release (``InvalidArgumentError`` unguarded)."""
        return self._guarded().leases

    def spend(self) -> Spend:
        """RUNNING time and cost of the guard owner's instances seen so far, per configuration."""
        return self._guarded().spend()

    def _guarded(self) -> Guard:
        guard = self._root._guard
        if guard is None:
            raise InvalidArgumentError("this client has no guard: StreamrunClient(guard=...)")
        return guard

    @cached_property
    def instance_requests(self) -> InstanceRequests:
        """Instance requests: follow launches."""
        return InstanceRequests(self._transport, self._poller)

    @cached_property
    def instances(self) -> Instances:
        """Instances: list, get, stop, restart, overrides."""
        return Instances(self._transport, self._poller)

    @cached_property
    def destinations(self) -> Destinations:
        """Destinations to stream to."""
        return Destinations(self._transport, self._poller)

    @cached_property
    def _poller(self) -> Poller:
        polling = self._transport.with_options(retry=_POLL_RETRY)
        list_instances, get_request = _poll_fetchers(polling)
        return Poller(self._poll_policy, list_instances, get_request, events=self._events)

    def _bulk(
        self,
        plan: Plan,
        on_progress: Callable[[LaunchEvent], Any] | None,
        report: LaunchReport | None,
        **options: Any,
    ) -> BulkLaunch:
        # Imported on first use: most programs never bulk-launch, and import time counts.
        from ._bulk import BulkLaunch, normalize_plan

        return BulkLaunch(
            self._root,
            normalize_plan(plan),
            on_progress=on_progress,
            report=report,
            coordinator=self._root._coordinator,
            attempt_timeout=self.timeout,
            **options,
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
        on_existing: OnExisting = "keep",
        dedupe: bool = False,
        settle: float = 2.0,
        ttl: float | timedelta | None = None,
        on_timeout: Literal["raise", "stop"] = "raise",
        on_progress: Callable[[LaunchEvent], Any] | None = None,
        report: LaunchReport | None = None,
    ) -> LaunchReport:
        """Launch many instances across configurations, each exactly once.

        ``plan`` maps configuration ids to :class:`InstanceSettings` (names unique in the
        plan, checked before any request), or is a sequence of :class:`LaunchSpec`.
        At most ``concurrency`` calls run at once; a configuration's instances go out in
        POSTs of up to ``max_per_request``. A name another call of this client is
        launching is waited for, never sent twice. A launch whose answer was lost is
        settled by listing: its names are relaunched only when two whole lists taken
        ``settle`` seconds apart agree they are absent, and never where the server is
        seen not to echo names (those are ``UNKNOWN``). Listed instances that ended
        (or are STOPPING) do not count as existing.

        ``on_existing``: a name already there is kept as it is (``"keep"``; the report's
        ``kept_with_different_overrides`` lists those whose overrides differ) or gets the
        plan's overrides patched onto it (``"update"``). ``dedupe=True``: where a name has
        several live instances, keep the oldest (``created_at``, then id) and stop the
        rest (``duplicates_stopped``). Failures are per configuration unless ``fail_fast``
        (then :class:`LaunchError`, before any waiting). ``wait=True`` waits for every
        request to run, through the shared poller. ``timeout`` bounds the whole call,
        launching and waiting (``None``: no deadline). ``rollback=True`` stops what this
        call launched if it fails or is cancelled. ``ttl`` (guarded clients): passed to
        every launch (see ``configurations.launch``). ``on_timeout="stop"``: when the
        ``timeout`` passes, what this call launched that is not RUNNING is stopped and the
        stop confirmed (those names end ``ROLLED_BACK``) before the report is returned.
        Pass ``report=`` to keep the outcome even when the call is cancelled.
        """
        bulk = self._bulk(
            plan,
            on_progress,
            report,
            concurrency=concurrency,
            max_per_request=max_per_request,
            fail_fast=fail_fast,
            rollback=rollback,
            on_existing=on_existing,
            dedupe=dedupe,
            settle=settle,
            ttl=ttl,
            on_timeout=on_timeout,
        )
        return await bulk.run(wait=wait, timeout=_check_launch_timeout(timeout))

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
        on_existing: OnExisting = "keep",
        dedupe: bool = False,
        settle: float = 2.0,
        ttl: float | timedelta | None = None,
        on_timeout: Literal["raise", "stop"] = "raise",
        report: LaunchReport | None = None,
    ) -> AsyncIterator[LaunchEvent]:
        """``launch_many`` as an async iterator of :class:`LaunchEvent`, for progress UIs.

        Pass ``report=LaunchReport()`` to read the outcome once the iteration ends.
        Breaking out of the loop cancels the launch (rolling back if ``rollback``).
        """
        from ._bulk import iterate_launch

        bulk = self._bulk(
            plan,
            None,
            report,
            concurrency=concurrency,
            max_per_request=max_per_request,
            fail_fast=fail_fast,
            rollback=rollback,
            on_existing=on_existing,
            dedupe=dedupe,
            settle=settle,
            ttl=ttl,
            on_timeout=on_timeout,
        )
        return iterate_launch(bulk, wait=wait, timeout=_check_launch_timeout(timeout))

    async def apply(
        self,
        fleet: Fleet,
        *,
        prune: bool = False,
        dry_run: bool = False,
        hourly_rate: float | None = None,
        wait: bool = False,
        timeout: float | None = 900.0,
        launch_report: LaunchReport | None = None,
    ) -> FleetReport:
        """Make the account run ``fleet`` (see :class:`Fleet`); returns the plan and report.

        Launches what is declared and missing (through ``launch_many``), patches declared
        overrides that differ, sets outputs, and with ``prune=True`` stops the owner's
        instances the fleet no longer declares. ``dry_run=True`` only plans
        (``report.plan``). Applying the same fleet again changes nothing. Pass
        ``launch_report=LaunchReport()`` to keep what was launched if the call is cancelled.
        """
        from ._fleet import apply_fleet

        return await apply_fleet(
            self,
            fleet,
            prune=prune,
            dry_run=dry_run,
            hourly_rate=hourly_rate,
            wait=wait,
            timeout=timeout,
            launch_report=launch_report,
        )

    async def aclose(self) -> None:
        """Close the client (and its own session; never a session you passed in).

        Waiters and watches still running end with ``ClientClosedError``.
        """
        if self._root is not self:
            return  # a view: the client it came from owns the session and the poller
        if self._guard is not None:
            await self._guard.aclose()
        # Closed even if never used, so that a later wait fails at once instead of polling.
        await self._poller.close()
        await self._transport.aclose()
        await self._events.aclose()

    async def __aenter__(self) -> Self:
        if self.guard is not None:
            # Sweeps what earlier runs of the owner left expired; a bad store fails here.
            await self.guard.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


# What with_options must not share: everything cached per client but the poller.
_BOUND_TO_TRANSPORT = tuple(
    name
    for name, value in vars(StreamrunClient).items()
    if isinstance(value, cached_property) and name != "_poller"
)
