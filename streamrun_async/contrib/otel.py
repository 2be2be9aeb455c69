"""OpenTelemetry traces for a :class:`~streamrun_async.StreamrunClient`.

::

    from streamrun_async.contrib.otel import instrument

    client = StreamrunClient()
    instrument(client)          # spans go to the global tracer provider

What it traces:

- one span per public operation (``streamrun.instances.list``,
  ``streamrun.configurations.launch``, ``streamrun.launch_many``,
  ``streamrun.wait_until_running``, ``streamrun.wait_for_state``...), with the ids it
  was given and the ids it returned as attributes, and bulk launch steps as span events;
- a CLIENT child span per HTTP attempt, named by method and route template
  (``GET /instances/{instanceId}``), with W3C trace context in the request's headers;
- retries as ``streamrun.retry`` events on the operation's span;
- each tick of the shared poller as a ``streamrun.poll`` span of its own, parent of the
  tick's HTTP spans and linked to the spans of the waits it served (request fetches sent
  at a tick's end run into the next tick's span, or one of their own if none follows).

Everything is built on the client's hooks: the SDK itself never imports OpenTelemetry.
Needs ``opentelemetry-api`` only (the ``otel`` extra); spans are exported by whatever SDK
the application configures.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue
from yarl import URL

from .. import _resources
from .._bulk import LaunchEvent, LaunchReport
from .._client import StreamrunClient
from .._events import (
    PollTicked,
    RequestFinished,
    RequestStarted,
    RetryScheduled,
    WaitFinished,
    WaitStarted,
)
from .._exceptions import APIError, InvalidArgumentTypeError
from .._models import Instance, InstanceRequest

__all__ = ["instrument"]

_F = TypeVar("_F", bound=Callable[..., Any])

# The namespaces whose public methods are operations, by the name spans give them.
_NAMESPACES: Mapping[str, type[Any]] = {
    "configurations": _resources.Configurations,
    "instance_requests": _resources.InstanceRequests,
    "instances": _resources.Instances,
    "destinations": _resources.Destinations,
}
# Waits return their coroutine rather than being ``async def``; their spans are named as
# users know them.
_WAITS = {"wait_until_running", "wait_for_state"}
_CLIENT_OPERATIONS = ("launch_many",)
# Argument name -> span attribute.
_ID_ARGUMENTS = {
    "configuration_id": "streamrun.configuration.id",
    "instance_id": "streamrun.instance.id",
    "request_id": "streamrun.instance_request.id",
    "request": "streamrun.instance_request.id",
}
_patched = False


def _tracing_of(owner: Any) -> _Tracing | None:
    """The tracing hook of a client or namespace's transport, if it is instrumented."""
    for hook in owner._transport.events.hooks:
        if isinstance(hook, _Tracing):
            return hook
    return None


def instrument(client: StreamrunClient, *, tracer_provider: Any = None) -> None:
    """Trace ``client`` (and views of it made by ``with_options``) with OpenTelemetry.

    ``tracer_provider``: where spans go; the global provider by default. Instrumenting a
    client twice changes nothing.
    """
    if not isinstance(client, StreamrunClient):
        raise InvalidArgumentTypeError(
            f"instrument() takes a StreamrunClient, got {type(client).__name__}"
        )
    if _tracing_of(client) is not None:
        return
    _patch_operations()
    from .. import __version__

    tracer = trace.get_tracer("streamrun_async", __version__, tracer_provider=tracer_provider)
    client._transport.events.add(_Tracing(tracer, URL(client.base_url)))


# -- operation spans -----------------------------------------------------------------------


def _arguments(signature: inspect.Signature, args: Any, kwargs: Any) -> dict[str, Any]:
    try:
        return signature.bind(*args, **kwargs).arguments
    except TypeError:
        return {}  # the call itself will raise the clear error


def _argument_attributes(arguments: Mapping[str, Any]) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    for name, value in arguments.items():
        if name in _ID_ARGUMENTS:
            found = value if isinstance(value, str) else getattr(value, "id", None)
            if isinstance(found, str):
                attributes[_ID_ARGUMENTS[name]] = found
        elif name == "plan":
            attributes.update(_plan_attributes(value))
        elif name == "instances" and isinstance(value, (list, tuple)):
            attributes["streamrun.instances.count"] = len(value)
        elif name == "timeout" and isinstance(value, (int, float)):
            attributes["streamrun.timeout"] = float(value)
    return attributes


def _plan_attributes(plan: Any) -> dict[str, Any]:
    if isinstance(plan, Mapping):
        pairs = [(str(cfg), len(items)) for cfg, items in plan.items()]
    elif isinstance(plan, (list, tuple)):
        pairs = [
            (str(getattr(spec, "configuration_id", "")), len(getattr(spec, "instances", ())))
            for spec in plan
        ]
    else:
        return {}  # an iterator: reading it here would leave nothing to launch
    return {
        "streamrun.configuration.ids": [cfg for cfg, _ in pairs],
        "streamrun.instances.count": sum(count for _, count in pairs),
    }


def _result_attributes(span: Span, result: Any) -> None:
    if isinstance(result, list):
        span.set_attribute("streamrun.result.count", len(result))
    elif isinstance(result, (InstanceRequest, Instance)):
        key = "instance_request" if isinstance(result, InstanceRequest) else "instance"
        span.set_attribute(f"streamrun.{key}.id", result.id)
        span.set_attribute("streamrun.state", result.state.value)
    elif isinstance(result, LaunchReport):
        for name in ("launched", "failed", "unknown"):
            span.set_attribute(f"streamrun.report.{name}", len(getattr(result, name)))


def _traced(span_name: str, function: _F) -> _F:
    signature = inspect.signature(function)

    async def run(tracing: _Tracing, args: Any, kwargs: Any, call: Any) -> Any:
        arguments = _arguments(signature, args, kwargs)
        attributes = _argument_attributes(arguments)
        with tracing.tracer.start_as_current_span(span_name, attributes=attributes) as span:
            # launch_many(wait=True) waits through the poller too: its ticks link to it.
            polled = arguments.get("wait") is True
            if polled:
                tracing.waiting(span)
            try:
                result = await call()
            except APIError as error:
                span.set_attribute("error.type", type(error).__name__)
                span.set_attribute("streamrun.outcome_unknown", error.outcome_unknown)
                raise
            finally:
                if polled:
                    tracing.done_waiting(span)
            _result_attributes(span, result)
            return result

    if inspect.iscoroutinefunction(function):

        @functools.wraps(function)
        async def operation(self: Any, *args: Any, **kwargs: Any) -> Any:
            tracing = _tracing_of(self)
            if tracing is None:
                return await function(self, *args, **kwargs)
            return await run(
                tracing, (self, *args), kwargs, lambda: function(self, *args, **kwargs)
            )

        return operation  # type: ignore[return-value]

    @functools.wraps(function)
    def waiting(self: Any, *args: Any, **kwargs: Any) -> Any:
        # Arguments are checked when the wait is made, as without tracing.
        coroutine = function(self, *args, **kwargs)
        tracing = _tracing_of(self)
        if tracing is None:
            return coroutine
        return run(tracing, (self, *args), kwargs, lambda: coroutine)

    return waiting  # type: ignore[return-value]


def _patch_operations() -> None:
    """Wrap the operations once; the wrappers trace only instrumented clients."""
    global _patched
    if _patched:
        return
    _patched = True
    for namespace, cls in _NAMESPACES.items():
        for name, function in list(vars(cls).items()):
            if name.startswith("_") or not callable(function):
                continue
            if name in _WAITS:
                span_name = f"streamrun.{name}"
            elif inspect.iscoroutinefunction(function):
                span_name = f"streamrun.{namespace}.{name}"
            else:
                continue  # watches: async iterators the caller drives
            setattr(cls, name, _traced(span_name, function))
    for name in _CLIENT_OPERATIONS:
        function = vars(StreamrunClient)[name]
        setattr(StreamrunClient, name, _traced(f"streamrun.{name}", function))


# -- the hook: HTTP spans, retries, waits, poller ticks ------------------------------------------


class _Tracing:
    """The hook ``instrument`` adds to a client: turns its events into spans."""

    def __init__(self, tracer: trace.Tracer, base_url: URL) -> None:
        self.tracer = tracer
        self._server: dict[str, AttributeValue] = {"server.address": base_url.host or ""}
        if base_url.explicit_port is not None:
            self._server["server.port"] = base_url.explicit_port
        self._http: dict[tuple[int, int], Span] = {}
        self._waits: dict[int, Span] = {}
        self._tick: Span | None = None
        # Calls under the open tick span still in flight (request fetches outlive a tick).
        self._tick_calls: set[tuple[int, int]] = set()

    def __repr__(self) -> str:
        return "<streamrun_async.contrib.otel tracing>"

    def __call__(self, event: object) -> None:
        if isinstance(event, RequestStarted):
            self._request_started(event)
        elif isinstance(event, RequestFinished):
            self._request_finished(event)
        elif isinstance(event, RetryScheduled):
            self._retry(event)
        elif isinstance(event, WaitStarted):
            self._waits[event.wait_id] = trace.get_current_span()
        elif isinstance(event, WaitFinished):
            self._wait_finished(event)
            self._end_idle_tick()
        elif isinstance(event, PollTicked):
            self._poll_ticked(event)
        elif isinstance(event, LaunchEvent):
            self._launch_step(event)

    def waiting(self, span: Span) -> None:
        """``span`` waits through the poller until :meth:`done_waiting`."""
        self._waits[-id(span)] = span  # wait ids are positive: no clash

    def done_waiting(self, span: Span) -> None:
        """``span`` no longer waits."""
        self._waits.pop(-id(span), None)
        self._end_idle_tick()

    def _links(self) -> list[Link]:
        return [Link(span.get_span_context()) for span in self._waits.values()]

    def _tick_span(self, start_time: int | None = None) -> Span:
        if self._tick is None:
            # A root of its own: a tick serves every wait, not the one that started the poller.
            self._tick = self.tracer.start_span(
                "streamrun.poll",
                context=otel_context.Context(),
                links=self._links(),
                start_time=start_time,
            )
        return self._tick

    def _request_started(self, event: RequestStarted) -> None:
        parent: otel_context.Context | None = None
        if not trace.get_current_span().get_span_context().is_valid:
            # Outside every operation: the shared poller's calls, part of its tick.
            parent = trace.set_span_in_context(self._tick_span())
            self._tick_calls.add((event.call_id, event.attempt))
        attributes: dict[str, AttributeValue] = {
            "http.request.method": event.method,
            "url.template": event.route,
            "streamrun.attempt": event.attempt,
            **self._server,
        }
        if event.attempt > 1:
            attributes["http.request.resend_count"] = event.attempt - 1
        span = self.tracer.start_span(
            f"{event.method} {event.route}",
            context=parent,
            kind=SpanKind.CLIENT,
            attributes=attributes,
        )
        self._http[event.call_id, event.attempt] = span
        propagate.inject(event.headers, context=trace.set_span_in_context(span))

    def _request_finished(self, event: RequestFinished) -> None:
        key = (event.call_id, event.attempt)
        span = self._http.pop(key, None)
        if span is None:
            return
        if key in self._tick_calls:
            self._tick_calls.discard(key)
            self._end_idle_tick()
        if event.status is not None:
            span.set_attribute("http.response.status_code", event.status)
        if event.request_id is not None:
            span.set_attribute("streamrun.request_id", event.request_id)
        if event.outcome_unknown:
            span.set_attribute("streamrun.outcome_unknown", True)
        if event.error is not None:  # every 4xx and 5xx answer raised, so it has one
            span.set_attribute("error.type", event.error)
            span.set_status(Status(StatusCode.ERROR))
        span.end()

    def _retry(self, event: RetryScheduled) -> None:
        attributes: dict[str, AttributeValue] = {
            "streamrun.attempt": event.attempt,
            "streamrun.retry.wait": event.wait,
            "error.type": type(event.cause).__name__,
            "url.template": event.route,
        }
        status = getattr(event.cause, "status", None)
        if isinstance(status, int):
            attributes["http.response.status_code"] = status
        span = trace.get_current_span()
        if not span.get_span_context().is_valid:
            span = self._tick_span()
        span.add_event("streamrun.retry", attributes)

    def _wait_finished(self, event: WaitFinished) -> None:
        span = self._waits.pop(event.wait_id, None)
        if span is None:
            return
        span.set_attribute("streamrun.wait.outcome", event.outcome)
        if event.state is not None:
            span.set_attribute("streamrun.wait.last_state", event.state)

    def _end_idle_tick(self) -> None:
        # The poller stops when no wait is left: a tick span its last fetches opened would
        # see no PollTicked, so it ends once they are done and nobody waits.
        if self._tick is not None and not self._tick_calls and not self._waits:
            self._tick.end()
            self._tick = None

    def _poll_ticked(self, event: PollTicked) -> None:
        now = time.time_ns()
        span = self._tick_span(start_time=now - int(event.duration * 1e9))
        self._tick = None
        self._tick_calls.clear()
        span.set_attributes(
            {
                "streamrun.poll.tick": event.tick,
                "streamrun.poll.list_calls": event.list_calls,
                "streamrun.poll.request_calls": event.request_calls,
                "streamrun.poll.budget_left": event.budget_left,
                "streamrun.poll.next_interval": event.next_interval,
            }
        )
        if event.error is not None:
            span.set_attribute("error.type", event.error)
            span.set_status(Status(StatusCode.ERROR))
        span.end(end_time=now)

    def _launch_step(self, event: LaunchEvent) -> None:
        attributes: dict[str, AttributeValue] = {
            "streamrun.configuration.id": event.configuration_id,
            "streamrun.instance.names": list(event.names),
        }
        request_id = getattr(event.request, "id", None)
        if isinstance(request_id, str):
            attributes["streamrun.instance_request.id"] = request_id
        if event.error is not None:
            attributes["error.type"] = type(event.error).__name__
        trace.get_current_span().add_event(
            f"streamrun.launch.{event.kind.value.lower()}", attributes
        )
